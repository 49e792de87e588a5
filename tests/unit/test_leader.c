/* test_leader.c - the decision rule and recovery of leader.h, driven message by message. */
#include <string.h>

#include "check.h"
#include "leader.h"

#define NACC 3 /* F = 1 */

struct sent {
    enum leader_dest dest;
    uint32_t id;
    struct msg m;
};

static struct sent outbox[256];
static uint32_t n_out;

static void capture(void *ctx, enum leader_dest dest, uint32_t id, const struct msg *m)
{
    (void)ctx;
    if (n_out < sizeof(outbox) / sizeof(outbox[0]))
        outbox[n_out++] = (struct sent){dest, id, *m};
}

static const struct leader_out out = {capture, NULL};

static uint32_t count(enum msg_type type, enum leader_dest dest)
{
    uint32_t i, n = 0;

    for (i = 0; i < n_out; i++)
        n += outbox[i].m.type == type && outbox[i].dest == dest;
    return n;
}

static const struct sent *find(enum msg_type type, const char *instance)
{
    uint32_t i;

    for (i = 0; i < n_out; i++)
        if (outbox[i].m.type == type && (!instance || !strcmp(outbox[i].m.instance, instance)))
            return &outbox[i];
    return NULL;
}

static void init(struct leader_txn *t, uint32_t self)
{
    struct leader_config cfg = {self, NACC, 100, 10, 80};
    struct msg_parts parts;

    memset(&parts, 0, sizeof(parts));
    parts.n = 2;
    snprintf(parts.name[0], sizeof(parts.name[0]), "a");
    snprintf(parts.name[1], sizeof(parts.name[1]), "b");
    CHECK_EQ_INT(leader_init(t, &cfg, "tx", &parts, 0), TPC_OK);
    n_out = 0;
}

static struct msg mk(enum msg_type type, const char *instance)
{
    struct msg m;

    memset(&m, 0, sizeof(m));
    m.type = type;
    snprintf(m.txid, sizeof(m.txid), "tx");
    snprintf(m.instance, sizeof(m.instance), "%s", instance);
    return m;
}

static enum tpc_err give(struct leader_txn *t, const struct msg *m, uint64_t now)
{
    char err[256];

    return leader_receive(t, m, now, 7, &out, err, sizeof(err));
}

static enum tpc_err vote(struct leader_txn *t, const char *who, enum tpc_value v, uint32_t acks)
{
    struct msg m = mk(MSG_VOTE, who);

    m.value = v;
    m.acks = acks;
    return give(t, &m, 1);
}

static enum tpc_err p2b(struct leader_txn *t, const char *who, uint32_t acceptor, uint64_t round,
                        uint32_t replica, enum tpc_value v)
{
    struct msg m = mk(MSG_PHASE2B, who);

    m.acceptor = acceptor;
    m.ballot = (struct ballot){round, replica};
    m.value = v;
    return give(t, &m, 1);
}

static enum tpc_err p1b(struct leader_txn *t, const char *who, uint32_t acceptor,
                        struct ballot promise, struct ballot acc, enum tpc_value v)
{
    struct msg m = mk(MSG_PHASE1B, who);

    m.acceptor = acceptor;
    m.ballot = promise;
    m.accepted_ballot = acc;
    m.value = v;
    return give(t, &m, 200);
}

static void test_commit(void)
{
    struct leader_txn t;

    init(&t, 0);
    leader_start(&t, 0, &out);
    CHECK_EQ_INT(count(MSG_PREPARE, LEADER_TO_PARTICIPANT), 2);
    CHECK_EQ_INT(find(MSG_PREPARE, NULL)->m.parts.n, 2);
    n_out = 0;

    /* a voted prepared with a quorum of 2b: chosen, but b is still open: no decision. */
    CHECK_EQ_INT(vote(&t, "a", TPC_VALUE_PREPARED, 0x3), TPC_OK);
    CHECK_EQ_INT(t.inst[0].chosen, TPC_VALUE_PREPARED);
    CHECK_EQ_INT(leader_decide(&t), TPC_OUTCOME_NONE);
    CHECK_EQ_INT(n_out, 0);

    /* b voted prepared, but only acceptor 2 answered: not chosen yet, so no decision; the
     * leader re-sends b's own ballot-0 2a to acceptors 0 and 1 (rule 5). */
    CHECK_EQ_INT(vote(&t, "b", TPC_VALUE_PREPARED, 0x4), TPC_OK);
    CHECK_EQ_INT(leader_decide(&t), TPC_OUTCOME_NONE);
    CHECK_EQ_INT(count(MSG_PHASE2A, LEADER_TO_ACCEPTOR), 2);
    CHECK(find(MSG_PHASE2A, "b")->m.value == TPC_VALUE_PREPARED);
    CHECK(ballot_is_zero(find(MSG_PHASE2A, "b")->m.ballot));
    n_out = 0;

    /* A second 2b in ballot 0 makes it chosen: COMMITTED, told to both participants. */
    CHECK_EQ_INT(p2b(&t, "b", 0, 0, 0, TPC_VALUE_PREPARED), TPC_OK);
    CHECK_EQ_INT(t.decision, TPC_OUTCOME_COMMITTED);
    CHECK_EQ_INT(count(MSG_OUTCOME, LEADER_TO_PARTICIPANT), 2);
    CHECK(!leader_done(&t));

    /* Until both acknowledge, the outcome is re-sent to whoever has not. */
    struct msg ack = mk(MSG_ACK, "a");
    ack.outcome = TPC_OUTCOME_COMMITTED;
    CHECK_EQ_INT(give(&t, &ack, 2), TPC_OK);
    n_out = 0;
    CHECK(!leader_tick(&t, 1000, 3, &out));
    CHECK_EQ_INT(count(MSG_OUTCOME, LEADER_TO_PARTICIPANT), 1);
    CHECK_STR(msg_parts_find(&t.parts, "b") == 1 ? "b" : "?", "b");
    CHECK_EQ_INT(outbox[0].id, 1);
    snprintf(ack.instance, sizeof(ack.instance), "b");
    CHECK_EQ_INT(give(&t, &ack, 2), TPC_OK);
    CHECK(leader_done(&t));
}

/* The acceptors a relayed 2a went to, as a mask. */
static uint32_t relayed_to(const char *instance)
{
    uint32_t i, mask = 0;

    for (i = 0; i < n_out; i++)
        if (outbox[i].m.type == MSG_PHASE2A && outbox[i].dest == LEADER_TO_ACCEPTOR &&
            !strcmp(outbox[i].m.instance, instance)) {
            CHECK(ballot_is_zero(outbox[i].m.ballot));
            mask |= 1u << outbox[i].id;
        }
    return mask;
}

static void test_relay_first_to_a_quorum(void)
{
    struct leader_txn t;

    /* Votes relayed by the leader (no acceptor got them) go first to acceptors 0 and 2 only:
     * F+1 of 3 can choose them. */
    init(&t, 0);
    leader_relay_first(&t, 0x5);
    leader_start(&t, 0, &out);
    n_out = 0;
    CHECK_EQ_INT(vote(&t, "a", TPC_VALUE_PREPARED, 0), TPC_OK);
    CHECK_EQ_INT(vote(&t, "b", TPC_VALUE_PREPARED, 0), TPC_OK);
    CHECK_EQ_INT(relayed_to("a"), 0x5);
    CHECK_EQ_INT(relayed_to("b"), 0x5);
    /* a is chosen by those two; b hears from acceptor 0 only, and at the next tick its vote
     * goes to every acceptor still silent: 1 and 2. */
    CHECK_EQ_INT(p2b(&t, "a", 0, 0, 0, TPC_VALUE_PREPARED), TPC_OK);
    CHECK_EQ_INT(p2b(&t, "a", 2, 0, 0, TPC_VALUE_PREPARED), TPC_OK);
    CHECK_EQ_INT(p2b(&t, "b", 0, 0, 0, TPC_VALUE_PREPARED), TPC_OK);
    CHECK_EQ_INT(t.inst[0].chosen, TPC_VALUE_PREPARED);
    CHECK_EQ_INT(t.decision, TPC_OUTCOME_NONE);
    n_out = 0;
    CHECK(!leader_tick(&t, t.timer, 3, &out));
    CHECK_EQ_INT(relayed_to("a"), 0);
    CHECK_EQ_INT(relayed_to("b"), 0x6);
    CHECK_EQ_INT(p2b(&t, "b", 1, 0, 0, TPC_VALUE_PREPARED), TPC_OK);
    CHECK_EQ_INT(t.decision, TPC_OUTCOME_COMMITTED);

    /* Fewer than F+1 first targets: the relay goes to every acceptor without the vote. */
    init(&t, 0);
    leader_relay_first(&t, 0x1);
    leader_start(&t, 0, &out);
    n_out = 0;
    CHECK_EQ_INT(vote(&t, "a", TPC_VALUE_ABORTED, 0x2), TPC_OK);
    CHECK_EQ_INT(relayed_to("a"), 0x5);
    CHECK(find(MSG_PHASE2A, "a")->m.value == TPC_VALUE_ABORTED);
}

static void test_read_only_vote(void)
{
    struct leader_txn t;
    struct msg m;

    init(&t, 0);
    leader_start(&t, 0, &out);
    m = mk(MSG_VOTE, "b");
    m.value = TPC_VALUE_PREPARED;
    m.acks = 0x3;
    m.read_only = true;
    CHECK_EQ_INT(give(&t, &m, 1), TPC_OK);
    n_out = 0;
    CHECK_EQ_INT(vote(&t, "a", TPC_VALUE_PREPARED, 0x3), TPC_OK);
    CHECK_EQ_INT(t.decision, TPC_OUTCOME_COMMITTED);
    /* Left out of the second phase: the outcome goes to a only. */
    CHECK_EQ_INT(count(MSG_OUTCOME, LEADER_TO_PARTICIPANT), 1);
    CHECK_EQ_INT(find(MSG_OUTCOME, NULL)->id, 0);
    m = mk(MSG_ACK, "a");
    m.outcome = TPC_OUTCOME_COMMITTED;
    CHECK_EQ_INT(give(&t, &m, 2), TPC_OK);
    CHECK(leader_done(&t));
}

static void test_abort_vote(void)
{
    struct leader_txn t;

    init(&t, 1);
    leader_start(&t, 0, &out);
    /* One instance chosen aborted decides ABORTED, whatever the other does. */
    CHECK_EQ_INT(vote(&t, "b", TPC_VALUE_ABORTED, 0x5), TPC_OK);
    CHECK_EQ_INT(t.decision, TPC_OUTCOME_ABORTED);
    /* A vote, unlike a chosen value, decides nothing: only aborted votes with no quorum. */
    init(&t, 1);
    CHECK_EQ_INT(vote(&t, "a", TPC_VALUE_ABORTED, 0x1), TPC_ERR_STATE); /* sent no prepares */
    leader_start(&t, 0, &out);
    CHECK_EQ_INT(vote(&t, "a", TPC_VALUE_ABORTED, 0x1), TPC_OK);
    CHECK_EQ_INT(vote(&t, "b", TPC_VALUE_PREPARED, 0x1), TPC_OK);
    CHECK_EQ_INT(t.decision, TPC_OUTCOME_NONE);
    /* A participant votes once: a different second vote is refused. */
    CHECK_EQ_INT(vote(&t, "a", TPC_VALUE_PREPARED, 0x1), TPC_ERR_PROTOCOL);
}

static void test_recovery(void)
{
    struct leader_txn t;
    struct ballot zero = {0, 0}, mine;
    const struct sent *s;

    init(&t, 2);
    leader_start(&t, 0, &out);
    /* a's vote got through (chosen prepared); b never answered. */
    CHECK_EQ_INT(vote(&t, "a", TPC_VALUE_PREPARED, 0x6), TPC_OK);
    CHECK(!leader_tick(&t, 50, 1, &out)); /* before the deadline: re-send the prepare */
    CHECK(leader_tick(&t, 100, 1, &out)); /* at it: a recovery round is due */
    CHECK_EQ_INT(leader_min_round(&t), 1);
    n_out = 0;
    leader_recover(&t, 4, 100, 1, &out);
    /* Phase 1 only where nothing is known chosen: b, at all three acceptors. */
    CHECK_EQ_INT(count(MSG_PHASE1A, LEADER_TO_ACCEPTOR), 3);
    s = find(MSG_PHASE1A, "b");
    CHECK(s && s->m.ballot.round == 4 && s->m.ballot.replica == 2 && s->m.parts.n == 2);
    CHECK(find(MSG_PHASE1A, "a") == NULL);
    mine = (struct ballot){4, 2};
    n_out = 0;

    /* One promise is not a quorum; a stale promise for another ballot is ignored. */
    CHECK_EQ_INT(p1b(&t, "b", 0, mine, zero, TPC_VALUE_NONE), TPC_OK);
    CHECK_EQ_INT(p1b(&t, "b", 1, (struct ballot){3, 1}, zero, TPC_VALUE_NONE), TPC_OK);
    CHECK_EQ_INT(n_out, 0);
    /* Second promise, nothing accepted anywhere: propose aborted (never prepared). */
    CHECK_EQ_INT(p1b(&t, "b", 2, mine, zero, TPC_VALUE_NONE), TPC_OK);
    CHECK_EQ_INT(count(MSG_PHASE2A, LEADER_TO_ACCEPTOR), 3);
    s = find(MSG_PHASE2A, "b");
    CHECK(s && s->m.value == TPC_VALUE_ABORTED && s->m.ballot.round == 4);
    CHECK_EQ_INT(t.decision, TPC_OUTCOME_NONE);
    CHECK_EQ_INT(p2b(&t, "b", 0, 4, 2, TPC_VALUE_ABORTED), TPC_OK);
    CHECK_EQ_INT(p2b(&t, "b", 1, 4, 2, TPC_VALUE_ABORTED), TPC_OK);
    CHECK_EQ_INT(t.decision, TPC_OUTCOME_ABORTED);
}

static void test_recovery_keeps_accepted(void)
{
    struct leader_txn t;
    struct ballot zero = {0, 0}, mine = {9, 0};
    const struct sent *s;

    /* The highest accepted value among the promises wins over lower ones. */
    init(&t, 0);
    leader_recover(&t, 9, 0, 1, &out);
    n_out = 0;
    CHECK_EQ_INT(p1b(&t, "a", 1, mine, zero, TPC_VALUE_PREPARED), TPC_OK);
    CHECK_EQ_INT(p1b(&t, "a", 2, mine, (struct ballot){5, 1}, TPC_VALUE_ABORTED), TPC_OK);
    s = find(MSG_PHASE2A, "a");
    CHECK(s && s->m.value == TPC_VALUE_ABORTED);

    /* A prepared vote seen by one promise is re-proposed: it may have been chosen. */
    n_out = 0;
    CHECK_EQ_INT(p1b(&t, "b", 0, mine, zero, TPC_VALUE_NONE), TPC_OK);
    CHECK_EQ_INT(p1b(&t, "b", 2, mine, zero, TPC_VALUE_PREPARED), TPC_OK);
    s = find(MSG_PHASE2A, "b");
    CHECK(s && s->m.value == TPC_VALUE_PREPARED && s->m.ballot.round == 9);

    /* Two promises reporting different values in one ballot: refused, not guessed. */
    init(&t, 0);
    leader_recover(&t, 9, 0, 1, &out);
    CHECK_EQ_INT(p1b(&t, "a", 1, mine, zero, TPC_VALUE_PREPARED), TPC_OK);
    CHECK_EQ_INT(p1b(&t, "a", 2, mine, zero, TPC_VALUE_ABORTED), TPC_ERR_PROTOCOL);
    CHECK_EQ_INT(t.inst[0].phase, LEADER_PHASE1);

    /* Promises that report the same accepted value in one ballot show it chosen. */
    init(&t, 0);
    leader_recover(&t, 9, 0, 1, &out);
    CHECK_EQ_INT(p1b(&t, "a", 1, mine, zero, TPC_VALUE_PREPARED), TPC_OK);
    CHECK_EQ_INT(p1b(&t, "a", 2, mine, zero, TPC_VALUE_PREPARED), TPC_OK);
    CHECK_EQ_INT(t.inst[0].chosen, TPC_VALUE_PREPARED);
}

static void test_reject_and_backoff(void)
{
    struct leader_txn t;
    struct msg r;

    init(&t, 1);
    leader_recover(&t, 1, 0, 1, &out);
    r = mk(MSG_REJECT, "a");
    r.acceptor = 0;
    r.ballot = (struct ballot){1, 1};
    r.promised = (struct ballot){7, 2};
    CHECK_EQ_INT(give(&t, &r, 10), TPC_OK);
    CHECK_EQ_INT(t.inst[0].phase, LEADER_IDLE);
    /* The next round must beat the promise it was refused for. */
    CHECK_EQ_INT(leader_min_round(&t), 8);
    /* Not before the randomized backoff. It is the second wait of this leader, so it is
     * drawn from [10, 20] ticks; the random number 7 given with the refusal makes it 17. */
    CHECK_EQ_INT(t.timer, 27);
    CHECK(!leader_tick(&t, 26, 1, &out));
    CHECK(leader_tick(&t, 27, 1, &out));
}

static void test_bad_input(void)
{
    struct leader_txn t;
    struct msg m;
    struct msg_parts other;

    init(&t, 0);
    m = mk(MSG_VOTE, "zz"); /* not a participant */
    m.value = TPC_VALUE_PREPARED;
    CHECK(give(&t, &m, 1) != TPC_OK);
    m = mk(MSG_VOTE, "a");
    m.value = TPC_VALUE_PREPARED;
    snprintf(m.txid, sizeof(m.txid), "other");
    CHECK(give(&t, &m, 1) != TPC_OK);
    CHECK(p2b(&t, "a", 3, 0, 0, TPC_VALUE_PREPARED) != TPC_OK); /* acceptor 3 of 3 */
    m = mk(MSG_PREPARE, "");
    m.parts = t.parts;
    CHECK(give(&t, &m, 1) != TPC_OK);
    m = mk(MSG_PHASE1B, "a");
    m.ballot = (struct ballot){1, 0};
    other = t.parts;
    other.n = 1;
    m.parts = other;
    CHECK_EQ_INT(give(&t, &m, 1), TPC_ERR_PROTOCOL);
    CHECK_EQ_INT(t.inst[0].vote, TPC_VALUE_NONE);
    CHECK_EQ_INT(t.decision, TPC_OUTCOME_NONE);

    struct leader_config bad = {3, 3, 1, 10, 80};
    CHECK_EQ_INT(leader_init(&t, &bad, "tx", &other, 0), TPC_ERR_RANGE);
}

void run_tests(void)
{
    test_commit();
    test_relay_first_to_a_quorum();
    test_abort_vote();
    test_read_only_vote();
    test_recovery();
    test_recovery_keeps_accepted();
    test_reject_and_backoff();
    test_bad_input();
}

CHECK_MAIN("leader")
