/* test_acceptor.c - the acceptor's rules (acceptor.h), including the classic Paxos example. */
#include <string.h>

#include "acceptor.h"
#include "check.h"

#define NACC 3

static struct msg_parts two_parts(void)
{
    struct msg_parts p;

    memset(&p, 0, sizeof(p));
    p.n = 2;
    snprintf(p.name[0], sizeof(p.name[0]), "%s", "bank-a");
    snprintf(p.name[1], sizeof(p.name[1]), "%s", "bank-b");
    return p;
}

static struct msg p1a(uint64_t round, uint32_t replica)
{
    struct msg m;

    memset(&m, 0, sizeof(m));
    m.type = MSG_PHASE1A;
    snprintf(m.txid, sizeof(m.txid), "%s", "tx-1");
    snprintf(m.instance, sizeof(m.instance), "%s", "bank-a");
    m.ballot = (struct ballot){round, replica};
    m.parts = two_parts();
    return m;
}

static struct msg p2a(uint64_t round, uint32_t replica, enum tpc_value v)
{
    struct msg m = p1a(round, replica);

    m.type = MSG_PHASE2A;
    m.value = v;
    return m;
}

struct step {
    enum tpc_err rc;
    struct acceptor_record next;
    struct msg reply;
    enum acceptor_action action;
};

/* Runs one message against *rec, keeps the new record as a caller that persists would. */
static struct step run(struct acceptor_record *rec, const struct msg *in)
{
    struct step s;
    char err[256];

    memset(&s, 0, sizeof(s));
    if (in->type == MSG_PHASE1A)
        s.rc = acceptor_phase1b(rec, in, 1, NACC, &s.next, &s.reply, &s.action, err, sizeof(err));
    else
        s.rc = acceptor_phase2b(rec, in, 1, NACC, &s.next, &s.reply, &s.action, err, sizeof(err));
    if (s.rc == TPC_OK) {
        CHECK(acceptor_record_valid(&s.next, NACC));
        CHECK_EQ_INT(msg_validate(&s.reply, NACC, err, sizeof(err)), TPC_OK);
        *rec = s.next;
    }
    return s;
}

static bool same_ballot(struct ballot a, uint64_t round, uint32_t replica)
{
    return a.round == round && a.replica == replica;
}

/* prepare 1 is promised; accept(1, v) is accepted; prepare 2 is promised and reports v at 1;
 * a prepare or an accept with a lower ballot is refused. */
static void test_classic_example(void)
{
    struct acceptor_record rec;
    struct msg m;
    struct step s;

    memset(&rec, 0, sizeof(rec));
    m = p1a(1, 0);
    s = run(&rec, &m);
    CHECK_EQ_INT(s.rc, TPC_OK);
    CHECK_EQ_INT(s.reply.type, MSG_PHASE1B);
    CHECK_EQ_INT(s.action, ACCEPTOR_PERSIST_THEN_REPLY);
    CHECK(same_ballot(s.reply.ballot, 1, 0));
    CHECK_EQ_INT(s.reply.value, TPC_VALUE_NONE);
    CHECK_EQ_INT(s.reply.acceptor, 1);
    CHECK(same_ballot(rec.mbal, 1, 0));

    m = p2a(1, 0, TPC_VALUE_ABORTED);
    s = run(&rec, &m);
    CHECK_EQ_INT(s.rc, TPC_OK);
    CHECK_EQ_INT(s.reply.type, MSG_PHASE2B);
    CHECK_EQ_INT(s.action, ACCEPTOR_PERSIST_THEN_REPLY);
    CHECK_EQ_INT(s.reply.value, TPC_VALUE_ABORTED);
    CHECK(same_ballot(rec.bal, 1, 0));
    CHECK_EQ_INT(rec.val, TPC_VALUE_ABORTED);

    m = p1a(2, 2);
    s = run(&rec, &m);
    CHECK_EQ_INT(s.reply.type, MSG_PHASE1B);
    CHECK_EQ_INT(s.action, ACCEPTOR_PERSIST_THEN_REPLY);
    CHECK(same_ballot(s.reply.accepted_ballot, 1, 0));
    CHECK_EQ_INT(s.reply.value, TPC_VALUE_ABORTED);
    CHECK_EQ_INT(s.reply.parts.n, 2);
    CHECK(same_ballot(rec.mbal, 2, 2));

    m = p1a(1, 2); /* lower than (2, 2) */
    s = run(&rec, &m);
    CHECK_EQ_INT(s.rc, TPC_OK);
    CHECK_EQ_INT(s.reply.type, MSG_REJECT);
    CHECK_EQ_INT(s.action, ACCEPTOR_REPLY);
    CHECK(same_ballot(s.reply.promised, 2, 2));
    CHECK(same_ballot(rec.mbal, 2, 2));

    m = p2a(2, 1, TPC_VALUE_PREPARED); /* (2,1) < (2,2) */
    s = run(&rec, &m);
    CHECK_EQ_INT(s.reply.type, MSG_REJECT);
    CHECK_EQ_INT(s.action, ACCEPTOR_REPLY);
    CHECK_EQ_INT(rec.val, TPC_VALUE_ABORTED);
    CHECK(same_ballot(rec.bal, 1, 0));
}

static void test_ballot_zero_and_duplicates(void)
{
    struct acceptor_record rec;
    struct msg m;
    struct step s;
    char err[256];

    /* The participant's own vote: ballot 0 skips phase 1 and is accepted on a fresh record. */
    memset(&rec, 0, sizeof(rec));
    m = p2a(0, 0, TPC_VALUE_PREPARED);
    s = run(&rec, &m);
    CHECK_EQ_INT(s.reply.type, MSG_PHASE2B);
    CHECK_EQ_INT(s.action, ACCEPTOR_PERSIST_THEN_REPLY);
    CHECK_EQ_INT(rec.parts.n, 2);

    /* The same 2a again: the same 2b, nothing to persist. */
    s = run(&rec, &m);
    CHECK_EQ_INT(s.reply.type, MSG_PHASE2B);
    CHECK_EQ_INT(s.action, ACCEPTOR_REPLY);

    /* Another value in the same ballot is a protocol error and changes nothing. */
    m = p2a(0, 0, TPC_VALUE_ABORTED);
    CHECK_EQ_INT(
        acceptor_phase2b(&rec, &m, 1, NACC, &s.next, &s.reply, &s.action, err, sizeof(err)),
        TPC_ERR_PROTOCOL);
    CHECK_EQ_INT(rec.val, TPC_VALUE_PREPARED);

    /* A recovery promise, then a late ballot-0 vote: refused. */
    m = p1a(1, 2);
    s = run(&rec, &m);
    CHECK_EQ_INT(s.reply.value, TPC_VALUE_PREPARED);
    CHECK(same_ballot(s.reply.accepted_ballot, 0, 0));

    /* A duplicate 1a at the promised ballot repeats the promise without a write. */
    s = run(&rec, &m);
    CHECK_EQ_INT(s.reply.type, MSG_PHASE1B);
    CHECK_EQ_INT(s.action, ACCEPTOR_REPLY);

    memset(&rec, 0, sizeof(rec));
    m = p1a(1, 2);
    run(&rec, &m);
    m = p2a(0, 0, TPC_VALUE_PREPARED);
    s = run(&rec, &m);
    CHECK_EQ_INT(s.reply.type, MSG_REJECT);
    CHECK_EQ_INT(rec.val, TPC_VALUE_NONE);

    /* Accept at exactly the promised ballot (b >= promised). */
    m = p2a(1, 2, TPC_VALUE_ABORTED);
    s = run(&rec, &m);
    CHECK_EQ_INT(s.reply.type, MSG_PHASE2B);
    CHECK_EQ_INT(rec.val, TPC_VALUE_ABORTED);

    /* Accept at a ballot above the promise raises the promise too. */
    m = p2a(4, 0, TPC_VALUE_ABORTED);
    s = run(&rec, &m);
    CHECK(same_ballot(rec.mbal, 4, 0));
    CHECK(same_ballot(rec.bal, 4, 0));
}

static void test_bad_input(void)
{
    struct acceptor_record rec, next;
    enum acceptor_action action;
    struct msg m, reply;
    char err[256];

    memset(&rec, 0, sizeof(rec));
    m = p1a(0, 0); /* phase 1 has no ballot 0 */
    CHECK(acceptor_phase1b(&rec, &m, 0, NACC, &next, &reply, &action, err, sizeof(err)) != 0);
    m = p2a(1, 0, TPC_VALUE_PREPARED); /* wrong entry point */
    CHECK(acceptor_phase1b(&rec, &m, 0, NACC, &next, &reply, &action, err, sizeof(err)) != 0);
    m = p1a(1, 3); /* replica 3 of 3 */
    CHECK(acceptor_phase1b(&rec, &m, 0, NACC, &next, &reply, &action, err, sizeof(err)) != 0);
    m = p1a(1, 0);
    CHECK(acceptor_phase1b(&rec, &m, 3, NACC, &next, &reply, &action, err, sizeof(err)) != 0);
    snprintf(m.instance, sizeof(m.instance), "%s", "bank-z"); /* not a participant */
    CHECK(acceptor_phase1b(&rec, &m, 0, NACC, &next, &reply, &action, err, sizeof(err)) != 0);
    m = p2a(1, 0, TPC_VALUE_NONE);
    CHECK(acceptor_phase2b(&rec, &m, 0, NACC, &next, &reply, &action, err, sizeof(err)) != 0);

    /* A participant list other than the recorded one. */
    m = p2a(0, 0, TPC_VALUE_PREPARED);
    CHECK_EQ_INT(acceptor_phase2b(&rec, &m, 0, NACC, &next, &reply, &action, err, sizeof(err)),
                 TPC_OK);
    rec = next;
    m = p1a(2, 1);
    m.parts.n = 1;
    CHECK_EQ_INT(acceptor_phase1b(&rec, &m, 0, NACC, &next, &reply, &action, err, sizeof(err)),
                 TPC_ERR_PROTOCOL);
    CHECK(strstr(err, "participant list") != NULL);

    /* A corrupt stored record is refused, not trusted. */
    rec.bal = (struct ballot){9, 0};
    m = p1a(10, 0);
    CHECK_EQ_INT(acceptor_phase1b(&rec, &m, 0, NACC, &next, &reply, &action, err, sizeof(err)),
                 TPC_ERR_STATE);
}

/* Rules 4 and 5: a decision answers instead of the record; nothing is made for an expired
 * transaction; a dead record is replaced; another born for a live one is refused. */
static void test_decision_and_horizon(void)
{
    struct acceptor_record rec, next;
    enum acceptor_action action;
    struct msg m, reply;
    char err[256];

    /* A fresh 2a carries born; the record keeps it, durably. */
    memset(&rec, 0, sizeof(rec));
    m = p2a(0, 0, TPC_VALUE_PREPARED);
    m.born = 5000;
    CHECK_EQ_INT(acceptor_handle(&rec, TPC_OUTCOME_NONE, 0, 1000, &m, 1, NACC, &next, &reply,
                                 &action, err, sizeof(err)),
                 TPC_OK);
    CHECK_EQ_INT(reply.type, MSG_PHASE2B);
    CHECK_EQ_INT(action, ACCEPTOR_PERSIST_THEN_REPLY);
    CHECK_EQ_INT(next.born, 5000);
    rec = next;

    /* With the decision held, the answer is the decision and nothing changes. */
    m = p1a(3, 2);
    m.born = 5000;
    CHECK_EQ_INT(acceptor_handle(&rec, TPC_OUTCOME_COMMITTED, 0, 1000, &m, 1, NACC, &next, &reply,
                                 &action, err, sizeof(err)),
                 TPC_OK);
    CHECK_EQ_INT(reply.type, MSG_OUTCOME);
    CHECK_EQ_INT(reply.outcome, TPC_OUTCOME_COMMITTED);
    CHECK_EQ_INT(action, ACCEPTOR_REPLY);
    CHECK(memcmp(&next, &rec, sizeof(rec)) == 0);

    /* A decision of another born is another transaction's: refused while it lives, as if
     * absent once expired (then the record below answers). */
    CHECK_EQ_INT(acceptor_handle(&rec, TPC_OUTCOME_COMMITTED, 4000, 1000, &m, 1, NACC, &next,
                                 &reply, &action, err, sizeof(err)),
                 TPC_ERR_PROTOCOL);
    CHECK_EQ_INT(acceptor_handle(&rec, TPC_OUTCOME_COMMITTED, 900, 1000, &m, 1, NACC, &next, &reply,
                                 &action, err, sizeof(err)),
                 TPC_OK);
    CHECK_EQ_INT(reply.type, MSG_PHASE1B);
    /* The same born: the decision answers, with its born. */
    CHECK_EQ_INT(acceptor_handle(&rec, TPC_OUTCOME_ABORTED, 5000, 1000, &m, 1, NACC, &next, &reply,
                                 &action, err, sizeof(err)),
                 TPC_OK);
    CHECK_EQ_INT(reply.type, MSG_OUTCOME);
    CHECK(reply.born == 5000);

    /* Another born for a live record: refused. */
    m.born = 6000;
    CHECK_EQ_INT(acceptor_handle(&rec, TPC_OUTCOME_NONE, 0, 1000, &m, 1, NACC, &next, &reply,
                                 &action, err, sizeof(err)),
                 TPC_ERR_PROTOCOL);

    /* No record, and the transaction older than the horizon: refused, nothing made, whatever
     * the ballot (it may have been forgotten here). */
    memset(&rec, 0, sizeof(rec));
    m = p1a(7, 0);
    m.born = 900;
    CHECK_EQ_INT(acceptor_handle(&rec, TPC_OUTCOME_NONE, 0, 1000, &m, 1, NACC, &next, &reply,
                                 &action, err, sizeof(err)),
                 TPC_ERR_EXPIRED);
    m = p2a(0, 0, TPC_VALUE_ABORTED);
    m.born = 900;
    CHECK_EQ_INT(acceptor_handle(&rec, TPC_OUTCOME_NONE, 0, 1000, &m, 1, NACC, &next, &reply,
                                 &action, err, sizeof(err)),
                 TPC_ERR_EXPIRED);
    /* Unknown born (a message a person wrote): never expired. */
    m.born = 0;
    CHECK_EQ_INT(acceptor_handle(&rec, TPC_OUTCOME_NONE, 0, 1000, &m, 1, NACC, &next, &reply,
                                 &action, err, sizeof(err)),
                 TPC_OK);

    /* A stored record of an expired transaction is dead: a txid used again starts afresh. */
    memset(&rec, 0, sizeof(rec));
    rec.mbal = (struct ballot){4, 2};
    rec.born = 900;
    rec.parts = two_parts();
    m = p2a(0, 0, TPC_VALUE_PREPARED);
    m.born = 2000;
    CHECK_EQ_INT(acceptor_handle(&rec, TPC_OUTCOME_NONE, 0, 1000, &m, 1, NACC, &next, &reply,
                                 &action, err, sizeof(err)),
                 TPC_OK);
    CHECK_EQ_INT(reply.type, MSG_PHASE2B); /* the old promise of (4,2) is gone with it */
    CHECK_EQ_INT(next.born, 2000);
    CHECK_EQ_INT(action, ACCEPTOR_PERSIST_THEN_REPLY);
}

void run_tests(void)
{
    test_classic_example();
    test_ballot_zero_and_duplicates();
    test_bad_input();
    test_decision_and_horizon();
}

CHECK_MAIN("acceptor")
