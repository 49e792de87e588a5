/*
 * acc_store.h - a coordinator replica's stable storage: its acceptor records
 * (one per instance), the decisions it knows, and its recovery-round counter,
 * in one SQLite file (WAL, synchronous=FULL).
 *
 * Every write goes through group commit (groupcommit.h), and the acceptor's
 * rules (shared/acceptor.c) run inside that transaction: a batch's answers
 * are returned only after the records behind them are durable (DESIGN.md
 * section 3: "it writes to stable storage before it replies").
 */
#ifndef TPC_ACC_STORE_H
#define TPC_ACC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "node_io.h"
#include "tpc_err.h"

struct acc_store;

enum tpc_err acc_store_open(const char *path, uint32_t self, uint32_t n_replicas,
                            struct acc_store **out, char *err, size_t errlen);
void acc_store_close(struct acc_store *s);

/*
 * Runs the acceptor on n PHASE1A/PHASE2A messages and fills out[i] with the
 * answer to in[i] (PHASE1B, PHASE2B or REJECT), or with type 0 when in[i] was
 * refused as invalid (errs[i] says why, if errs is not NULL). Returns once
 * every changed record is durable.
 */
enum tpc_err acc_store_handle(struct acc_store *s, const struct msg *in, size_t n, struct msg *out,
                              char (*errs)[128]);

/*
 * Records durably that txid (a client's own id) is begun here; *fresh is false when it was
 * begun here before. A replica that crashed must not take a client's txid a second time: its
 * first transaction may be known (even decided) at the other replicas.
 */
enum tpc_err acc_store_begin(struct acc_store *s, const char *txid, bool *fresh);

/* A fresh recovery round >= min, made durable before it is returned (leader.h rule 4). */
enum tpc_err acc_store_next_round(struct acc_store *s, uint64_t min, uint64_t *round);

/*
 * Records a decision this replica made as leader (the first one recorded stays; another
 * one is an error). It owes the participants the outcome until acc_store_mark_told_many;
 * after a restart acc_store_untold lists what it still owes.
 */
enum tpc_err acc_store_record_decision(struct acc_store *s, const char *txid, enum tpc_outcome o,
                                       const struct msg_parts *parts);
/* Marks n decisions told (every participant acknowledged), in one durable write. */
enum tpc_err acc_store_mark_told_many(struct acc_store *s, const char (*txids)[TPC_TXID_MAX + 1],
                                      size_t n);
/* Records outcomes other replicas decided (MSG_OUTCOME messages) in one durable write; one
 * that conflicts with a recorded decision is logged and left out. */
enum tpc_err acc_store_record_learned(struct acc_store *s, const struct msg *outcomes, size_t n);

/* Up to cap of them, in txid order, after txid `after` ("" for the first page). */
size_t acc_store_untold(struct acc_store *s, const char *after, struct node_txn *out, size_t cap);

/* The decision recorded for txid, or TPC_OUTCOME_NONE; parts may be NULL. */
enum tpc_err acc_store_decision(struct acc_store *s, const char *txid, enum tpc_outcome *o,
                                struct msg_parts *parts);

/* The participant list this acceptor recorded for txid (n 0 when it knows none). */
enum tpc_err acc_store_parts(struct acc_store *s, const char *txid, struct msg_parts *parts);

/*
 * Transactions this acceptor has records of, no decision, and no record
 * change for at least age_ms: candidates for the recovery sweep. At most cap.
 */
size_t acc_store_stale(struct acc_store *s, int64_t age_ms, struct node_txn *out, size_t cap);

/* Recent decisions, newest first, for listings: fn(ctx, txid, outcome, decided_at_ms). */
void acc_store_recent_decisions(struct acc_store *s, enum tpc_outcome only, size_t limit,
                                void (*fn)(void *ctx, const char *txid, enum tpc_outcome o,
                                           int64_t at_ms),
                                void *ctx);

/* Storage counters: fsyncs (process-wide), SQLite commits, durable jobs. */
void acc_store_stats(struct acc_store *s, uint64_t *fsyncs, uint64_t *groups, uint64_t *jobs);

#endif
