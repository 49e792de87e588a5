/*
 * resource.h - the driver of a participant (TLA+ "resource manager"): the life
 * of every branch it holds, from its first statement to its outcome, as pure
 * event-driven code over struct node_io (node_io.h). The participant program
 * (participant/) and the simulator (tests/sim/) run this same code; the
 * program keeps what is not protocol (the SQL, the changeset, row locks) and
 * carries out the writes this driver asks for.
 *
 * States of one branch (rm.h has the rules of one branch; this adds the writes
 * and the messages around them):
 *
 *   (none) --statement--> WORKING --prepare--> [write PREPARED] --durable--> PREPARED
 *                           |    \                                 (vote sent now)   |
 *                           |     +--prepare, nothing changed--> [write READONLY] --> ended
 *                           |                                                        |
 *                           +--deadline, abort, failed branch--> [write OUTCOME] --> ended
 *                                                                                    |
 *   PREPARED --commit/abort--> [write OUTCOME: applied and recorded in one step] --> ended
 *   PREPARED, no outcome for a while --> STATUS to a replica (round robin, backoff) --> ...
 *
 *   PREPARED --operator's heuristic decision--> [write HEURISTIC: applied or discarded] -->
 *   HEUR_*: locks gone, still asks the replicas --outcome--> [write RECONCILE] --> ended
 *
 *   A branch in [brackets] has a write on its way: it takes no other event that
 *   would change it until the write completes. An ended branch leaves memory;
 *   storage answers for it from then on (io->ended).
 *
 * Rules (DESIGN.md sections 3 and 4; rm.h):
 *   1. Write before you speak: a prepared vote leaves only once the prepared
 *      record is durable; an aborted vote for a branch never seen here, only
 *      once that end is durable (so no late statement can start the branch and
 *      a later prepare vote prepared: ballot 0 carries one value).
 *   2. The vote to a leader goes to it alone (it relays the vote to the
 *      acceptors as its ballot-0 phase 2a, leader.h rule 5); a repeated
 *      prepare repeats the first vote.
 *   3. An outcome is applied in the same durable write that records it, and
 *      acknowledged only after that write.
 *   4. A prepared branch never aborts on its own: it asks the replicas, with
 *      backoff, until it learns the outcome (in-doubt resolution).
 *   5. After a restart, prepared branches come back (resource_load) and ask.
 *   6. A prepare of a transaction older than the horizon (io->horizon,
 *      msg_expired) is refused, with no vote and no write, unless its branch
 *      is here (in memory, or its end recorded: that vote is repeated). Storage
 *      forgets ended branches of such transactions (DESIGN.md section 11), so
 *      "never seen" may mean "forgotten", and a fresh vote could contradict the
 *      first one. Every write and question carries the branch's born. An
 *      outcome of an expired transaction with nothing here is acknowledged.
 *   7. A heuristic decision (an operator's, resource_heuristic) is taken only by a
 *      PREPARED branch and recorded as heuristic. The branch then learns the
 *      chosen outcome like an in-doubt one (rules 4, 5) and records it beside
 *      the decision: confirmed, or heuristic mixed (counted, reported); either
 *      way the outcome is acknowledged, for there is nothing left to do.
 *
 * Invariants (resource_check() asserts them in debug builds):
 *   I1. A branch in memory is WORKING, PREPARED, heuristic (not reconciled
 *       yet), or has a write on its way.
 *   I2. vote_owed or ack_owed only while a write is on its way.
 *   I3. A PREPARED branch has its participant list (n > 0) naming this node.
 */
#ifndef TPC_RESOURCE_H
#define TPC_RESOURCE_H

#include <stdbool.h>
#include <stdint.h>

#include "msg.h"
#include "node_io.h"
#include "rm.h"
#include "tpc_err.h"
#include "txmap.h"

struct resource_config {
    char self[TPC_NAME_MAX + 1];
    uint32_t n_replicas;
    uint64_t branch_timeout; /* a WORKING branch not prepared by then aborts on its own */
    uint64_t doubt_after;    /* a PREPARED branch asks a replica after this, then with backoff */
    uint64_t doubt_max;      /* cap of that backoff */
};

struct resource_branch {
    struct txmap_entry e; /* first; e.id is the txid */
    struct rm_branch rm;  /* as durable (or, for WORKING, as in memory) */
    struct msg_parts parts;
    uint64_t born;                /* the transaction's begin, from its prepare (0: unknown) */
    uint64_t deadline;            /* WORKING: abort on its own after this */
    uint64_t next_query;          /* PREPARED: ask a replica at this time */
    uint32_t query_tries;         /* for the backoff and the round robin */
    enum node_write_kind writing; /* 0: none on its way */
    struct rm_branch next;        /* the state once that write is durable */
    enum tpc_outcome outcome;     /* NODE_WRITE_OUTCOME: the outcome written */
    bool vote_owed, ack_owed;     /* answer these once the write is durable */
    struct node_addr vote_to, ack_to;
};

struct resource_stats {
    uint64_t committed, aborted, read_only; /* branches ended here */
    uint64_t doubts_resolved;               /* learned by asking a replica */
    uint64_t expired_refused;               /* prepares refused: expired (rule 6) */
    uint64_t heur_committed, heur_aborted;  /* operators' heuristic decisions (rule 7) */
    uint64_t heur_confirmed, heur_mixed;    /* ... reconciled: same outcome, or the other */
};

struct resource {
    struct resource_config cfg;
    struct node_io io;
    struct txmap branches;
    struct resource_stats stats;
};

enum tpc_err resource_init(struct resource *d, const struct resource_config *cfg,
                           const struct node_io *io);
void resource_fini(struct resource *d);
/* After a restart: a prepared branch from storage, in doubt (rule 5). */
enum tpc_err resource_load(struct resource *d, const char *txid, const struct msg_parts *parts,
                           uint64_t born);

/* After a restart: a branch an operator decided heuristically (heur), not reconciled yet. */
enum tpc_err resource_load_heuristic(struct resource *d, const char *txid,
                                     const struct msg_parts *parts, uint64_t born,
                                     enum tpc_outcome heur);
/*
 * An operator's heuristic decision for txid (rule 7): TPC_OK once started (or made already,
 * the same); the caller learns the result from resource_find / io->ended after the write.
 * TPC_ERR_STATE: the branch is not prepared here (err says what it is); TPC_ERR_BUSY: a write
 * on its way; TPC_ERR_INVALID: no outcome.
 */
enum tpc_err resource_heuristic(struct resource *d, const char *txid, enum tpc_outcome o, char *err,
                                size_t errlen);
/*
 * A statement for branch txid is about to run: TPC_OK when the branch is WORKING (begun now
 * if it is new, to abort on its own unless prepared within timeout, 0: cfg.branch_timeout, its
 * transaction born at born, 0: unknown),
 * TPC_ERR_STATE when it takes no statements (prepared, ending or ended).
 * Every event that reads storage (io->ended) refuses with TPC_ERR_IO when it cannot.
 */
enum tpc_err resource_begin(struct resource *d, const char *txid, uint64_t timeout, uint64_t born);

/*
 * A PREPARE from `from` (an invalid one is TPC_ERR_INVALID and changes nothing): ok says whether
 * the branch can commit, changed whether it changed anything. The VOTE goes to `from`, now or once
 * the write behind it is durable. TPC_ERR_INVALID: the list does not name this node; TPC_ERR_STATE:
 * the branch was prepared with another list; TPC_ERR_BUSY: it is ending (a write without a vote is
 * on its way); TPC_ERR_EXPIRED: rule 6.
 */
enum tpc_err resource_prepare(struct resource *d, const struct node_addr *from,
                              const struct msg *prepare, bool ok, bool changed, char *err,
                              size_t errlen);

/*
 * A leader's outcome for txid; the ACK goes to `from` once it is applied and durable.
 * TPC_ERR_PROTOCOL: the outcome contradicts the branch (commit of one not prepared, or the
 * other outcome recorded); TPC_ERR_INVALID: commit of a branch never seen here;
 * TPC_ERR_BUSY: a write of another kind is on its way (ask again). born: the transaction's
 * begin as the leader says it (0: not said); for an expired one with nothing here, the outcome
 * is acknowledged and nothing written (rule 6: its end was forgotten, or it never had a branch
 * here; a commit means it voted prepared, so it did, and applied it).
 */
enum tpc_err resource_outcome(struct resource *d, const struct node_addr *from, const char *txid,
                              enum tpc_outcome o, uint64_t born, char *err, size_t errlen);

/*
 * A replica's answer to this node's STATUS question (an OUTCOME): applied like an outcome.
 * Anything else, or an invalid message, is an error and changes nothing.
 */
enum tpc_err resource_receive(struct resource *d, const struct msg *m, char *err, size_t errlen);

/* A write started with io->persist is durable (rc TPC_OK) or failed. */
void resource_persisted(struct resource *d, const struct node_write *w, enum tpc_err rc);

/* Does what is due: deadlines of working branches, questions of in-doubt ones. */
void resource_tick(struct resource *d);

/* The branch txid in memory, or NULL (borrowed: valid until the next call into d). */
const struct resource_branch *resource_find(const struct resource *d, const char *txid);
size_t resource_size(const struct resource *d);
void resource_foreach(const struct resource *d,
                      void (*fn)(void *ctx, const struct resource_branch *b), void *ctx);

/* Asserts the invariants above (a no-op under NDEBUG). */
void resource_check(const struct resource *d);

#endif
