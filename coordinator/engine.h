/*
 * engine.h - the replica driver (shared/core/replica.h) over the real world:
 * its node_io carried out with HTTP calls (libcurl), the acceptor store
 * (SQLite, group commit) and the monotonic clock, under the runtime of
 * shared/runtime/nodert.h (one lock, outboxes, worker threads).
 *
 * How the driver's actions travel:
 *   - phase 1a/2a to an acceptor: one {"messages": [...]} batch per acceptor
 *     and round to POST /v1/paxos; this replica's own acceptor is called in
 *     process, on the calling thread, while the other calls are out;
 *   - PREPARE to a participant: POST /v1/branches/{txid}/prepare?relay=1, whose
 *     answer is its VOTE; OUTCOME: POST .../commit or .../abort, answered by
 *     its ACK;
 *   - OUTCOME to the other replicas (announcements) and told marks: gathered
 *     and sent or written in bulk (engine_flush), since neither is needed for
 *     safety: a lost announcement leaves the others to learn by asking, a lost
 *     told mark makes a restarted leader tell again what was told;
 *   - writes: recovery rounds, decision records and learned outcomes go to
 *     the acceptor store at once; their completion is fed back when durable.
 * Every answer and completion is fed back to the driver under the lock.
 *
 * Threads: the client's request thread carries out what its own call asked
 * for until it is answered, then hands the rest to the workers; a ticker calls
 * replica_tick every 20 ms and hands off what that asks for.
 */
#ifndef TPC_COORD_ENGINE_H
#define TPC_COORD_ENGINE_H

#include <stdatomic.h>
#include <stdint.h>

#include "acc_store.h"
#include "config.h"
#include "http_client.h"
#include "nodert.h"
#include "replica.h"
#include "ticker.h"
#include "txmap.h"

#define ENGINE_WORKERS     16
#define ENGINE_LATER_MAX   4096         /* announcements, told marks gathered between flushes */
#define ENGINE_BATCH_BYTES (512 * 1024) /* about this much JSON in one batch to an acceptor */
#define ENGINE_STALE_MAX   64           /* sweep candidates asked for at a time */

struct engine_later {
    pthread_mutex_t mu;
    struct msg *outcomes;
    size_t n_outcomes;
    char (*told)[TPC_TXID_MAX + 1];
    size_t n_told;
    bool announcing; /* an announcement is under way; others wait for the next chance */
    size_t dropped;  /* entries that found a buffer full, since the last flush */
};

struct engine {
    struct nodert rt; /* first: the driver's node_io context is the engine (nodert.h) */
    const struct coord_config *cfg; /* borrowed from the coordinator */
    struct acc_store *store;        /* borrowed */
    struct replica drv;             /* under rt.mu */
    struct http_pool *pool;
    struct engine_later later;
    struct ticker bg;
    struct txmap flight; /* under rt.mu: calls per transaction on their way (io in_flight) */
    struct node_txn stale[ENGINE_STALE_MAX]; /* under rt.mu: the sweep's candidates (io stale) */
    size_t n_stale;
    int64_t stale_at; /* the ticker's: when it last asked the store for them */
    /* Per replica: until when (mono ms) it counts as unresponsive, after a call to it failed. */
    _Atomic int64_t quiet_until[TPC_MAX_REPLICAS];
    bool drv_up, rt_up;
};

/* Starts the driver (resuming what it owes after a restart), the workers and the ticker. */
enum tpc_err engine_open(struct engine *e, const struct coord_config *cfg, struct acc_store *store,
                         char *err, size_t errlen);
void engine_close(struct engine *e);

/*
 * Carries out one round of box (its sends in parallel, its writes) and feeds the answers and
 * completions back to the driver, which may fill box again. Answers addressed to the caller
 * (NODE_CALLER) are moved to *answers when it is not NULL, else dropped.
 */
void engine_round(struct engine *e, struct nodert_box *box, struct nodert_box *answers);
/* Carries out box until nothing is left (the workers' function). */
void engine_run(void *ctx, struct nodert_box *box);

/* The acceptors votes are relayed to first: this one and the next F that answer lately. */
uint32_t engine_relay_targets(struct engine *e);

/* Writes the gathered told marks (told) and sends the gathered announcements. */
void engine_flush(struct engine *e, bool told, bool announcements);

#endif
