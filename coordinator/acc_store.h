/*
 * acc_store.h - a coordinator replica's stable storage: its acceptor records
 * (one per instance), the decisions it knows, and its recovery-round counter,
 * in one SQLite file (WAL, synchronous=FULL).
 *
 * Every write goes through group commit (groupcommit.h), on the store's own
 * committer thread, and the acceptor's rules (shared/core/acceptor.c) run
 * inside that transaction: a batch's answers are given only after the records
 * behind them are durable (DESIGN.md section 3: "it writes to stable storage
 * before it replies"). Reads use a connection of their own.
 */
#ifndef TPC_ACC_STORE_H
#define TPC_ACC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "groupcommit.h"
#include "node_io.h"
#include "tpc_err.h"

struct acc_store;

/* retention_ms: what is born longer ago than that is forgotten (acc_store_horizon). */
enum tpc_err acc_store_open(const char *path, uint32_t self, uint32_t n_replicas,
                            int64_t retention_ms, struct acc_store **out, char *err, size_t errlen);
void acc_store_close(struct acc_store *s);

/*
 * A durable write of the store, carried out by its committer thread (group commit) while
 * the caller goes on; done runs on that thread once the write is durable (rc TPC_OK) or
 * failed. The caller owns the op and what it points to until done.
 *
 *   ACC_OP_HANDLE    runs the acceptor on in[0..n) (PHASE1A/PHASE2A) and fills out[i] with
 *                    the answer to in[i] (PHASE1B, PHASE2B or REJECT), or type 0 when in[i]
 *                    was refused as invalid; the answers are durable before done runs
 *                    (DESIGN.md section 3: "it writes to stable storage before it replies").
 *   ACC_OP_BEGIN     records that txid (a client's own id) is begun here; fresh is false when
 *                    it was begun here before. A replica that crashed must not take a client's
 *                    txid a second time: its first transaction may be known at the others.
 *   ACC_OP_ROUND     a fresh recovery round >= round, in round (leader.h rule 4).
 *   ACC_OP_DECISION  records a decision this replica made as leader (outcome, parts; the first
 *                    one recorded stays, another is an error). It owes the participants the
 *                    outcome until an ACC_OP_TOLD; after a restart acc_store_untold lists it.
 *   ACC_OP_LEARNED   records outcomes other replicas decided (in[0..n), MSG_OUTCOME); one that
 *                    conflicts with a recorded decision is logged and left out.
 *   ACC_OP_TOLD      marks told[0..n) told (every participant acknowledged).
 *   ACC_OP_COLLECT   makes the horizon durable and forgets what is older (DESIGN.md section
 *                    11), up to a batch per table; round is set to the rows removed.
 * A DECISION or LEARNED write also removes the transaction's acceptor records: the decision
 * answers for them from then on (acceptor.h rule 4).
 */
enum acc_op_kind {
    ACC_OP_HANDLE,
    ACC_OP_BEGIN,
    ACC_OP_ROUND,
    ACC_OP_DECISION,
    ACC_OP_LEARNED,
    ACC_OP_TOLD,
    ACC_OP_COLLECT,
};

struct acc_op {
    enum acc_op_kind kind;
    const struct msg *in; /* HANDLE, LEARNED */
    size_t n;             /* HANDLE, LEARNED, TOLD */
    struct msg *out;      /* HANDLE: n answers */
    const char (*told)[TPC_TXID_MAX + 1];
    char txid[TPC_TXID_MAX + 1]; /* BEGIN, DECISION */
    enum tpc_outcome outcome;    /* DECISION */
    struct msg_parts parts;      /* DECISION */
    uint64_t born;               /* DECISION */
    uint64_t round;              /* ROUND: in, the least; out, the round */
    /* out */
    enum tpc_err rc;
    bool fresh;                      /* BEGIN */
    void (*done)(struct acc_op *op); /* on the store's thread; may free op */
    void *arg;
    /* the store's */
    struct acc_store *store;
    struct gc_job gc;
    char *parts_text;
};

/* Queues op; returns at once. */
void acc_store_post(struct acc_store *s, struct acc_op *op);
/* Queues op and returns once it is durable or failed (op->done is not used): for tests and
 * start-up. */
enum tpc_err acc_store_run(struct acc_store *s, struct acc_op *op);

/* Up to cap of them, in txid order, after txid `after` ("" for the first page). */
size_t acc_store_untold(struct acc_store *s, const char *after, struct node_txn *out, size_t cap);

/* The decision recorded for txid, or TPC_OUTCOME_NONE; parts and born may be NULL. */
enum tpc_err acc_store_decision(struct acc_store *s, const char *txid, enum tpc_outcome *o,
                                struct msg_parts *parts, uint64_t *born);

/* One acceptor record as an operator's report shows it (acc_report.c). */
struct acc_record_view {
    char instance[TPC_NAME_MAX + 1];
    struct ballot promised, accepted; /* accepted: (0, 0) with value NONE when none */
    enum tpc_value value;
};
/* The acceptor records this replica holds of txid, by instance name: at most cap. */
size_t acc_store_records(struct acc_store *s, const char *txid, struct acc_record_view *out,
                         size_t cap);
/* Whether txid's decision here is marked told (every participant acknowledged it), and when it
 * was decided (*decided_at 0: no decision here). */
bool acc_store_told(struct acc_store *s, const char *txid, int64_t *decided_at);

/* The participant list this acceptor recorded for txid (n 0 when it knows none), and born. */
enum tpc_err acc_store_parts(struct acc_store *s, const char *txid, struct msg_parts *parts,
                             uint64_t *born);

/* The horizon: now - retention, never below one used before (any thread). */
uint64_t acc_store_horizon(struct acc_store *s);

/*
 * Transactions this acceptor has records of, no decision, and no record
 * change for at least age_ms: candidates for the recovery sweep. At most cap.
 * A scan of the acceptor table, on a connection of its own: call it off the loop.
 */
size_t acc_store_stale(struct acc_store *s, int64_t age_ms, struct node_txn *out, size_t cap);
/* Makes a scan under way (acc_store_stale) stop early (any thread). */
void acc_store_interrupt_scan(struct acc_store *s);

/* Transactions this acceptor holds records of, with a participant list, no decision, and not
 * past the horizon (msg_expired), in txid order, at most limit: fn(ctx, txid, participants
 * (none if they do not parse), born_ms (0 if unknown)). */
void acc_store_undecided(struct acc_store *s, size_t limit,
                         void (*fn)(void *ctx, const char *txid, const struct msg_parts *parts,
                                    uint64_t born),
                         void *ctx);
/* Recent decisions, newest first, for listings: fn(ctx, txid, outcome, decided_at_ms). */
void acc_store_recent_decisions(struct acc_store *s, enum tpc_outcome only, size_t limit,
                                void (*fn)(void *ctx, const char *txid, enum tpc_outcome o,
                                           int64_t at_ms),
                                void *ctx);

/* Storage counters: fsyncs (process-wide), SQLite commits, durable jobs. */
void acc_store_stats(struct acc_store *s, uint64_t *fsyncs, uint64_t *groups, uint64_t *jobs);

#endif
