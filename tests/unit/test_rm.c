/* test_rm.c - the participant's rules (rm.h). */
#include <string.h>

#include "check.h"
#include "rm.h"

static struct rm_branch br(enum rm_state s, enum tpc_value v)
{
    struct rm_branch b = {s, v};
    return b;
}

static void test_prepare(void)
{
    struct rm_branch next, cur;
    bool persist;

    /* A working branch that can commit prepares, durably, and votes prepared. */
    cur = br(RM_WORKING, TPC_VALUE_NONE);
    rm_prepare(&cur, true, true, &next, &persist);
    CHECK_EQ_INT(next.state, RM_PREPARED);
    CHECK_EQ_INT(next.vote, TPC_VALUE_PREPARED);
    CHECK(persist);
    /* One that cannot, or no branch at all, votes aborted; nothing to persist. */
    rm_prepare(&cur, false, true, &next, &persist);
    CHECK_EQ_INT(next.state, RM_ABORTED);
    CHECK_EQ_INT(next.vote, TPC_VALUE_ABORTED);
    CHECK(!persist);
    cur = br(RM_NONE, TPC_VALUE_NONE);
    rm_prepare(&cur, true, true, &next, &persist);
    CHECK_EQ_INT(next.vote, TPC_VALUE_ABORTED);
    /* Repeated prepares repeat the first vote, whatever happened since (rule 3): a branch
     * that voted prepared and was then aborted by the decision must not re-vote aborted. */
    cur = br(RM_ABORTED, TPC_VALUE_PREPARED);
    rm_prepare(&cur, false, true, &next, &persist);
    CHECK_EQ_INT(next.vote, TPC_VALUE_PREPARED);
    CHECK_EQ_INT(next.state, RM_ABORTED);
    CHECK(!persist);
    cur = br(RM_PREPARED, TPC_VALUE_PREPARED);
    rm_prepare(&cur, true, true, &next, &persist);
    CHECK_EQ_INT(next.vote, TPC_VALUE_PREPARED);
    CHECK(!persist);
    cur = br(RM_ABORTED, TPC_VALUE_ABORTED);
    rm_prepare(&cur, true, true, &next, &persist);
    CHECK_EQ_INT(next.vote, TPC_VALUE_ABORTED);
}

static void test_read_only(void)
{
    struct rm_branch next, cur = br(RM_WORKING, TPC_VALUE_NONE), ro;
    bool persist, apply;

    /* A branch that changed nothing votes prepared, read-only, durably. */
    rm_prepare(&cur, true, false, &next, &persist);
    CHECK_EQ_INT(next.state, RM_READONLY);
    CHECK_EQ_INT(next.vote, TPC_VALUE_PREPARED);
    CHECK(persist);
    ro = next;
    CHECK(!rm_in_doubt(&ro));
    CHECK(!rm_may_abort(&ro));
    /* Asked again: the same vote. Either outcome: nothing to do. */
    rm_prepare(&ro, true, false, &next, &persist);
    CHECK(next.state == RM_READONLY && next.vote == TPC_VALUE_PREPARED && !persist);
    CHECK_EQ_INT(rm_outcome(&ro, TPC_OUTCOME_COMMITTED, &next, &apply), TPC_OK);
    CHECK(!apply && next.state == RM_READONLY);
    CHECK_EQ_INT(rm_outcome(&ro, TPC_OUTCOME_ABORTED, &next, &apply), TPC_OK);
    CHECK(!apply && next.state == RM_READONLY);
}

static void test_outcome(void)
{
    struct rm_branch next, cur;
    bool apply;

    cur = br(RM_PREPARED, TPC_VALUE_PREPARED);
    CHECK_EQ_INT(rm_outcome(&cur, TPC_OUTCOME_COMMITTED, &next, &apply), TPC_OK);
    CHECK_EQ_INT(next.state, RM_COMMITTED);
    CHECK(apply);
    /* Again: a no-op. */
    cur = next;
    CHECK_EQ_INT(rm_outcome(&cur, TPC_OUTCOME_COMMITTED, &next, &apply), TPC_OK);
    CHECK(!apply);
    /* Aborting a committed branch, or committing one that never prepared: violations. */
    CHECK_EQ_INT(rm_outcome(&cur, TPC_OUTCOME_ABORTED, &next, &apply), TPC_ERR_PROTOCOL);
    cur = br(RM_WORKING, TPC_VALUE_NONE);
    CHECK_EQ_INT(rm_outcome(&cur, TPC_OUTCOME_COMMITTED, &next, &apply), TPC_ERR_PROTOCOL);
    cur = br(RM_ABORTED, TPC_VALUE_ABORTED);
    CHECK_EQ_INT(rm_outcome(&cur, TPC_OUTCOME_COMMITTED, &next, &apply), TPC_ERR_PROTOCOL);
    cur = br(RM_NONE, TPC_VALUE_NONE);
    CHECK_EQ_INT(rm_outcome(&cur, TPC_OUTCOME_COMMITTED, &next, &apply), TPC_ERR_PROTOCOL);
    /* Abort: of a prepared or working branch discards it; of an unknown one is fine. */
    cur = br(RM_PREPARED, TPC_VALUE_PREPARED);
    CHECK_EQ_INT(rm_outcome(&cur, TPC_OUTCOME_ABORTED, &next, &apply), TPC_OK);
    CHECK(apply && next.state == RM_ABORTED && next.vote == TPC_VALUE_PREPARED);
    cur = br(RM_NONE, TPC_VALUE_NONE);
    CHECK_EQ_INT(rm_outcome(&cur, TPC_OUTCOME_ABORTED, &next, &apply), TPC_OK);
    CHECK(!apply && next.state == RM_ABORTED);
    CHECK_EQ_INT(rm_outcome(&cur, TPC_OUTCOME_NONE, &next, &apply), TPC_ERR_INVALID);
}

static void test_may_abort(void)
{
    struct rm_branch w = br(RM_WORKING, TPC_VALUE_NONE), p = br(RM_PREPARED, TPC_VALUE_PREPARED);

    CHECK(rm_may_abort(&w));
    CHECK(!rm_may_abort(&p));
    CHECK(rm_in_doubt(&p));
    CHECK(!rm_in_doubt(&w));
}

static void test_vote_counting(void)
{
    struct msg v, a;
    struct msg_parts parts = {0};

    parts.n = 1;
    snprintf(parts.name[0], sizeof(parts.name[0]), "p");
    rm_vote_init("tx", "p", TPC_VALUE_PREPARED, &v);
    rm_phase2a("tx", "p", &parts, TPC_VALUE_PREPARED, &a);
    CHECK_EQ_INT(a.type, MSG_PHASE2A);
    CHECK(ballot_is_zero(a.ballot));

    memset(&a, 0, sizeof(a));
    a.type = MSG_PHASE2B;
    snprintf(a.txid, sizeof(a.txid), "tx");
    snprintf(a.instance, sizeof(a.instance), "p");
    a.value = TPC_VALUE_PREPARED;
    a.acceptor = 2;
    CHECK(!rm_vote_add(&v, &a, 3));
    CHECK(!rm_vote_add(&v, &a, 3)); /* the same acceptor twice is one */
    a.acceptor = 0;
    a.ballot = (struct ballot){1, 0}; /* another ballot: not an answer to the vote */
    CHECK(!rm_vote_add(&v, &a, 3));
    a.ballot = (struct ballot){0, 0};
    a.value = TPC_VALUE_ABORTED; /* another value: not either */
    CHECK(!rm_vote_add(&v, &a, 3));
    a.value = TPC_VALUE_PREPARED;
    CHECK(rm_vote_add(&v, &a, 3));
    CHECK_EQ_INT(v.acks, 0x5);
}

void run_tests(void)
{
    test_prepare();
    test_read_only();
    test_outcome();
    test_may_abort();
    test_vote_counting();
}

CHECK_MAIN("rm")
