/* rm.c - the participant's state transitions (see rm.h for the diagram and rules). */
#include "rm.h"

#include "breakable.h"

#include <string.h>

#include "quorum.h"

const char *rm_state_name(enum rm_state s)
{
    switch (s) {
    case RM_NONE:
        return "none";
    case RM_WORKING:
        return "working";
    case RM_PREPARED:
        return "prepared";
    case RM_COMMITTED:
        return "committed";
    case RM_ABORTED:
        return "aborted";
    case RM_READONLY:
        return "read_only";
    case RM_HEUR_COMMITTED:
        return "heuristic_committed";
    case RM_HEUR_ABORTED:
        return "heuristic_aborted";
    }
    return "?";
}

void rm_prepare(const struct rm_branch *cur, bool branch_ok, bool changed, struct rm_branch *next,
                bool *persist)
{
    *next = *cur;
    *persist = false;
    if (cur->vote != TPC_VALUE_NONE)
        return; /* rule 3: it voted already; the same vote again */
    if (cur->state == RM_WORKING && branch_ok) {
        /* Read-only or not, the vote is prepared and durable first: a participant that forgot
         * a read-only vote would vote aborted when asked again, a second value in ballot 0. */
        next->state = changed ? RM_PREPARED : RM_READONLY;
        next->vote = TPC_VALUE_PREPARED;
        *persist = true;
        return;
    }
    /* No branch, a failed branch, or one aborted before it voted: it never prepared, so it
     * votes aborted. Unless the branch's end is durable already (an aborted branch), that vote
     * is made durable first: otherwise, after a crash, a late first statement could start the
     * branch again and a later prepare vote prepared, a second value in ballot 0 (rule 3). */
    next->state = RM_ABORTED;
    next->vote = TPC_VALUE_ABORTED;
    *persist = cur->state == RM_WORKING ||
               (cur->state == RM_NONE && !TPC_BROKEN(TPC_BREAK_FORGET_ABORTED_VOTE));
}

bool rm_may_abort(const struct rm_branch *cur)
{
    return cur->vote != TPC_VALUE_PREPARED && cur->state != RM_COMMITTED &&
           cur->state != RM_READONLY;
}

bool rm_in_doubt(const struct rm_branch *cur)
{
    return cur->state == RM_PREPARED;
}

enum tpc_outcome rm_heuristic(const struct rm_branch *cur)
{
    return cur->state == RM_HEUR_COMMITTED ? TPC_OUTCOME_COMMITTED
           : cur->state == RM_HEUR_ABORTED ? TPC_OUTCOME_ABORTED
                                           : TPC_OUTCOME_NONE;
}

enum tpc_err rm_heuristic_decide(const struct rm_branch *cur, enum tpc_outcome outcome,
                                 struct rm_branch *next, bool *apply)
{
    *next = *cur;
    *apply = false;
    if (outcome != TPC_OUTCOME_COMMITTED && outcome != TPC_OUTCOME_ABORTED)
        return TPC_ERR_INVALID;
    if (rm_heuristic(cur) == outcome)
        return TPC_OK;
    if (cur->state != RM_PREPARED)
        return TPC_ERR_STATE;
    next->state = outcome == TPC_OUTCOME_COMMITTED ? RM_HEUR_COMMITTED : RM_HEUR_ABORTED;
    *apply = true;
    return TPC_OK;
}

enum tpc_err rm_outcome(const struct rm_branch *cur, enum tpc_outcome outcome,
                        struct rm_branch *next, bool *apply)
{
    *next = *cur;
    *apply = false;
    if (cur->state == RM_READONLY || rm_heuristic(cur) != TPC_OUTCOME_NONE)
        return outcome == TPC_OUTCOME_COMMITTED || outcome == TPC_OUTCOME_ABORTED
                   ? TPC_OK
                   : TPC_ERR_INVALID; /* nothing to apply either way */
    if (outcome == TPC_OUTCOME_COMMITTED) {
        if (cur->state == RM_COMMITTED)
            return TPC_OK;
        if (cur->state != RM_PREPARED)
            return TPC_ERR_PROTOCOL;
        next->state = RM_COMMITTED;
        *apply = true;
        return TPC_OK;
    }
    if (outcome != TPC_OUTCOME_ABORTED)
        return TPC_ERR_INVALID;
    if (cur->state == RM_COMMITTED)
        return TPC_ERR_PROTOCOL;
    next->state = RM_ABORTED;
    *apply = cur->state == RM_WORKING || cur->state == RM_PREPARED;
    return TPC_OK;
}

void rm_vote_init(const char *txid, const char *self, enum tpc_value vote, struct msg *vote_msg)
{
    memset(vote_msg, 0, sizeof(*vote_msg));
    vote_msg->type = MSG_VOTE;
    msg_copy_str(vote_msg->txid, TPC_TXID_MAX, txid);
    msg_copy_str(vote_msg->instance, TPC_NAME_MAX, self);
    vote_msg->value = vote;
}
