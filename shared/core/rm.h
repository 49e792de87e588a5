/*
 * rm.h - the participant's side of Paxos Commit (TLA+ "RM", resource manager).
 *
 * States of one transaction branch at one participant (TLA+ rmState):
 *
 *              prepare, branch ok
 *     WORKING ------------------> PREPARED --commit--> COMMITTED
 *        |                           |
 *        | prepare, branch failed;   | abort
 *        | deadline; abort           v
 *        +--------------------->  ABORTED
 *
 *     NONE: no branch known (never began here, or lost with volatile state in
 *     a crash before it was prepared: such a branch is aborted).
 *
 *     WORKING --prepare, branch changed nothing--> READONLY: it votes prepared
 *     (read-only), records that it ended, holds nothing, needs no outcome:
 *     commit and abort alike leave it as it is.
 *
 *     PREPARED --an operator's heuristic decision--> HEUR_COMMITTED / HEUR_ABORTED:
 *     applied (or discarded) as that outcome, by an operator's authority, when
 *     the replicas that hold the outcome are lost for good (XA's heuristic
 *     outcomes). It still learns the chosen outcome, as a prepared branch
 *     would; the outcome it then learns is recorded beside it (reconciled):
 *     the same one, or the other ("heuristic mixed", reported, never hidden).
 *
 * Rules (DESIGN.md sections 3 and 4):
 *   1. Before voting (WORKING) a participant may abort on its own.
 *   2. It votes by answering its leader's PREPARE with a VOTE; the leader sends
 *      the instance's phase 2a in ballot 0 to the acceptors on its behalf
 *      (TLA+ RMPrepare / RMChooseToAbort; leader.h rule 5). A PREPARED vote is
 *      sent only after the prepared record is durable ("write before you
 *      speak"); so is an ABORTED vote for a branch whose end is not durable yet
 *      (rm_prepare says which: *persist).
 *   3. Ballot 0 carries one value: a participant's first vote is the only one
 *      it ever sends; later prepares repeat it. A branch that voted prepared
 *      and was then told ABORTED still repeats "prepared" (the simulator found
 *      that re-voting "aborted" there puts two values in ballot 0). So the
 *      vote is part of the branch's record, durable with it.
 *   4. After voting PREPARED it may not abort on its own: it waits for the
 *      outcome, holding its locks, and asks the replicas when it waits long.
 *   5. COMMITTED is applied only from PREPARED, in the same durable step that
 *      records it; a commit for a branch that never prepared is a protocol
 *      violation. Repeated prepares, commits and aborts are idempotent.
 */
#ifndef TPC_RM_H
#define TPC_RM_H

#include <stdbool.h>
#include <stdint.h>

#include "msg.h"
#include "tpc_err.h"

enum rm_state {
    RM_NONE = 0,
    RM_WORKING,
    RM_PREPARED,
    RM_COMMITTED,
    RM_ABORTED,
    RM_READONLY,
    RM_HEUR_COMMITTED,
    RM_HEUR_ABORTED,
};

/* One branch as the participant keeps it; all of it is durable once it has voted prepared. */
struct rm_branch {
    enum rm_state state;
    enum tpc_value vote; /* the value of its ballot-0 phase 2a; NONE before it voted */
};

const char *rm_state_name(enum rm_state s);

/*
 * A prepare request for branch cur; branch_ok says whether the branch can
 * commit (its statements succeeded). Sets *next (whose vote is the vote to
 * send) and *persist: when true, *next must be durable before the vote leaves.
 */
void rm_prepare(const struct rm_branch *cur, bool branch_ok, bool changed, struct rm_branch *next,
                bool *persist);

/* True when the participant may abort the branch on its own (rule 1). */
bool rm_may_abort(const struct rm_branch *cur);

/* True when the branch waits for an outcome it must learn (rule 4). */
bool rm_in_doubt(const struct rm_branch *cur);
/* The outcome an operator's heuristic decision gave the branch (NONE: none). */
enum tpc_outcome rm_heuristic(const struct rm_branch *cur);
/*
 * An operator's heuristic decision of outcome for branch cur: only a PREPARED one (*apply: its
 * changes applied or discarded now, in the durable step that records *next), or one that had
 * this same decision already (a repeat: nothing to do). TPC_ERR_STATE otherwise.
 */
enum tpc_err rm_heuristic_decide(const struct rm_branch *cur, enum tpc_outcome outcome,
                                 struct rm_branch *next, bool *apply);

/*
 * An outcome for branch cur. Sets *next and *apply (true when the branch's
 * changes must be applied (commit) or discarded (abort) now, in the same
 * durable step that records *next). TPC_ERR_PROTOCOL when the outcome
 * contradicts the branch: commit of a branch that never prepared, abort of a
 * committed one. Aborting a branch not known is fine. A heuristic branch takes
 * either outcome and stays as it is (nothing to apply): the caller records
 * what it learned.
 */
enum tpc_err rm_outcome(const struct rm_branch *cur, enum tpc_outcome outcome,
                        struct rm_branch *next, bool *apply);

/* The VOTE message to the leader (which relays it to the acceptors, leader.h rule 5). */
void rm_vote_init(const char *txid, const char *self, enum tpc_value vote, struct msg *vote_msg);

#endif
