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
    /* One that cannot, or no branch at all, votes aborted, durably: its end is not
     * recorded yet, and a late statement must not start it again (rule 3). */
    rm_prepare(&cur, false, true, &next, &persist);
    CHECK_EQ_INT(next.state, RM_ABORTED);
    CHECK_EQ_INT(next.vote, TPC_VALUE_ABORTED);
    CHECK(persist);
    cur = br(RM_NONE, TPC_VALUE_NONE);
    rm_prepare(&cur, true, true, &next, &persist);
    CHECK_EQ_INT(next.vote, TPC_VALUE_ABORTED);
    CHECK(persist);
    /* One aborted before it voted (its end is durable): aborted, nothing more to write. */
    cur = br(RM_ABORTED, TPC_VALUE_NONE);
    rm_prepare(&cur, true, true, &next, &persist);
    CHECK_EQ_INT(next.vote, TPC_VALUE_ABORTED);
    CHECK(!persist);
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

static void test_vote_message(void)
{
    struct msg v;

    rm_vote_init("tx", "p", TPC_VALUE_PREPARED, &v);
    CHECK_EQ_INT(v.type, MSG_VOTE);
    CHECK_EQ_INT(v.value, TPC_VALUE_PREPARED);
    CHECK(strcmp(v.instance, "p") == 0 && strcmp(v.txid, "tx") == 0);
    CHECK_EQ_INT(v.acks, 0);
}

/* An operator's heuristic decision: only of a prepared branch; it keeps its vote, takes
 * either outcome afterwards without applying anything (resource.h reconciles), and repeats. */
static void test_heuristic(void)
{
    struct rm_branch next, cur = br(RM_PREPARED, TPC_VALUE_PREPARED), h;
    bool apply, persist;

    CHECK_EQ_INT(rm_heuristic_decide(&cur, TPC_OUTCOME_COMMITTED, &next, &apply), TPC_OK);
    CHECK_EQ_INT(next.state, RM_HEUR_COMMITTED);
    CHECK_EQ_INT(next.vote, TPC_VALUE_PREPARED);
    CHECK(apply);
    CHECK_EQ_INT(rm_heuristic(&next), TPC_OUTCOME_COMMITTED);
    CHECK(!rm_in_doubt(&next) && !rm_may_abort(&next));
    h = next;
    /* The same again: nothing to do; the other one: refused. */
    CHECK_EQ_INT(rm_heuristic_decide(&h, TPC_OUTCOME_COMMITTED, &next, &apply), TPC_OK);
    CHECK(!apply);
    CHECK_EQ_INT(next.state, RM_HEUR_COMMITTED);
    CHECK_EQ_INT(rm_heuristic_decide(&h, TPC_OUTCOME_ABORTED, &next, &apply), TPC_ERR_STATE);
    /* Learning either outcome later applies nothing: it is reconciled, not applied. */
    CHECK_EQ_INT(rm_outcome(&h, TPC_OUTCOME_ABORTED, &next, &apply), TPC_OK);
    CHECK(!apply);
    CHECK_EQ_INT(next.state, RM_HEUR_COMMITTED);
    CHECK_EQ_INT(rm_outcome(&h, TPC_OUTCOME_COMMITTED, &next, &apply), TPC_OK);
    CHECK(!apply);
    /* A repeated prepare still votes prepared (rule 3). */
    rm_prepare(&h, true, true, &next, &persist);
    CHECK_EQ_INT(next.vote, TPC_VALUE_PREPARED);
    CHECK(!persist);
    /* Not prepared: working, ended, unknown, read-only: refused. */
    cur = br(RM_WORKING, TPC_VALUE_NONE);
    CHECK_EQ_INT(rm_heuristic_decide(&cur, TPC_OUTCOME_ABORTED, &next, &apply), TPC_ERR_STATE);
    cur = br(RM_COMMITTED, TPC_VALUE_PREPARED);
    CHECK_EQ_INT(rm_heuristic_decide(&cur, TPC_OUTCOME_ABORTED, &next, &apply), TPC_ERR_STATE);
    cur = br(RM_NONE, TPC_VALUE_NONE);
    CHECK_EQ_INT(rm_heuristic_decide(&cur, TPC_OUTCOME_COMMITTED, &next, &apply), TPC_ERR_STATE);
    cur = br(RM_READONLY, TPC_VALUE_PREPARED);
    CHECK_EQ_INT(rm_heuristic_decide(&cur, TPC_OUTCOME_COMMITTED, &next, &apply), TPC_ERR_STATE);
    cur = br(RM_PREPARED, TPC_VALUE_PREPARED);
    CHECK_EQ_INT(rm_heuristic_decide(&cur, TPC_OUTCOME_NONE, &next, &apply), TPC_ERR_INVALID);
    CHECK(strcmp(rm_state_name(RM_HEUR_ABORTED), "heuristic_aborted") == 0);
}

void run_tests(void)
{
    test_heuristic();
    test_prepare();
    test_read_only();
    test_outcome();
    test_may_abort();
    test_vote_message();
}

CHECK_MAIN("rm")
