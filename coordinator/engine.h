/*
 * engine.h - the replica driver (shared/core/replica.h) on the process's
 * event loop: its node_io carried out with HTTP calls (http_agent), the
 * acceptor store (its committer thread) and the monotonic clock.
 *
 * Everything here runs on the loop's thread, so the driver needs no lock:
 * an event (a client's call, an answer, a write's completion, a tick) is fed
 * between engine_enter and engine_leave, and engine_leave starts at once what
 * the driver asked for during it. Nothing blocks: calls are out on the agent,
 * writes on the store's thread, and each one's answer or completion is a new
 * event when it comes back.
 *
 * How the driver's actions travel (outbound.c carries them out):
 *   - phase 1a/2a to an acceptor: one {"messages": [...]} batch per acceptor
 *     and event to POST /v1/paxos; this replica's own acceptor is an
 *     ACC_OP_HANDLE on the store;
 *   - PREPARE to a participant: POST /v1/branches/{txid}/prepare?relay=1, whose
 *     answer is its VOTE; OUTCOME: in batches to POST /v1/outcomes, each answered
 *     by its ACK: a batch leaves at once unless ENGINE_OUTCOME_CALLS are out to
 *     that participant, and then carries everything queued when one comes back
 *     (no delay alone, fewer calls under load);
 *   - OUTCOME to the other replicas (announcements) and told marks: gathered
 *     and sent (every ENGINE_ANNOUNCE_MS) or written (every tick) in bulk, since
 *     neither is needed for safety: a lost announcement leaves the others to learn by asking, a
 * lost told mark makes a restarted leader tell again what was told;
 *   - writes: recovery rounds, decision records and learned outcomes go to the
 *     store at once; their completion is fed back when durable.
 *   - answers to a client (NODE_CLIENT) and changes of a transaction are
 *     reported to the owner (on_change), which answers its waiting requests.
 */
#ifndef TPC_COORD_ENGINE_H
#define TPC_COORD_ENGINE_H

#include <stdint.h>

#include "acc_store.h"
#include "config.h"
#include "http_client.h"
#include "loop.h"
#include "nodert.h"
#include "replica.h"
#include "ticker.h"
#include "txmap.h"

#define ENGINE_TICK_MS       20
#define ENGINE_ANNOUNCE_MS   100  /* outcomes announced to the other replicas at most this often */
#define ENGINE_LATER_MAX     4096 /* announcements, told marks gathered between ticks */
#define ENGINE_BATCH_BYTES   (512 * 1024) /* about this much JSON in one batch to an acceptor */
#define ENGINE_STALE_MAX     64           /* sweep candidates asked for at a time */
#define ENGINE_COLLECT_MS    1000 /* what is older than the horizon is forgotten this often */
#define ENGINE_OUTCOME_CALLS 2    /* outcome batches out to one participant at a time, at most */
#define ENGINE_OUTCOMES_MAX  256  /* outcomes in one batch (a participant takes 1,000) */

/* Outcomes on their way to one participant: queued while ENGINE_OUTCOME_CALLS batches to it
 * are out, sent together when one comes back. */
struct engine_outq {
    struct msg *q;
    size_t n, cap;
    uint32_t out; /* batches out */
};

struct engine {
    struct nodert rt; /* first: the driver's node_io context is the engine (nodert.h) */
    const struct coord_config *cfg; /* borrowed from the coordinator, like the next two */
    struct acc_store *store;
    struct loop *loop;
    struct http_agent *agent;
    struct replica drv;
    struct nodert_box box; /* what the driver asks for during an event */
    /* told marks and announcements, gathered between ticks */
    struct msg *outcomes;
    size_t n_outcomes;
    char (*told)[TPC_TXID_MAX + 1];
    size_t n_told;
    size_t announcing;    /* announcement calls out */
    int64_t announced_at; /* when the last announcements left */
    size_t dropped;       /* entries that found a buffer full, since the last tick */
    struct loop_timer tick;
    struct txmap flight; /* calls and own-acceptor batches per transaction on their way */
    struct node_txn stale[ENGINE_STALE_MAX]; /* the sweep's candidates (io stale) */
    size_t n_stale;
    /* The sweep's scan of the acceptor table runs on a thread of its own (scanner) and posts
     * its result (scanned, under scan_mu) to the loop: a scan must not stall the loop. */
    struct ticker scanner;
    pthread_mutex_t scan_mu;
    struct node_txn scanned[ENGINE_STALE_MAX];
    size_t n_scanned;
    bool scan_posted; /* under scan_mu: scan_msg is on its way to the loop */
    struct loop_msg scan_msg;
    struct engine_outq outq[TPC_MAX_PARTICIPANTS * 4]; /* per participant of the config */
    size_t out;                                        /* calls and store operations not back yet */
    bool collecting;                                   /* an ACC_OP_COLLECT is on its way */
    int64_t collected_at;                              /* when the last one left (mono ms) */
    uint64_t forgotten;                                /* rows the collections removed */
    bool closing; /* engine_close began: what the driver asks for is given up */
    /* Per replica: until when (mono ms) it counts as unresponsive, after a call to it failed. */
    int64_t quiet_until[TPC_MAX_REPLICAS];
    /* The owner's: txid's client was answered, or its state changed (on the loop). */
    void (*on_change)(void *ctx, const char *txid);
    void *owner;
    bool drv_up, rt_up;
};

/* Starts the driver (resuming what it owes after a restart) and the tick, on loop. */
enum tpc_err engine_open(struct engine *e, const struct coord_config *cfg, struct acc_store *store,
                         struct loop *loop, void (*on_change)(void *ctx, const char *txid),
                         void *owner, char *err, size_t errlen);
/* On the loop's thread, after loop_run returned: cuts the calls out off (their done functions
 * run now, feeding nothing), stops the tick and the scanner; what the driver asks for from
 * now on is given up. Store operations still out come back through the loop's queue. */
void engine_stop(struct engine *e);
/* Whether a store operation or a scan result is still on its way back. */
bool engine_busy(struct engine *e);
/* engine_stop if not done, waits (bounded) for what is on its way, frees e's own. */
void engine_close(struct engine *e);

/* An event: the driver may be called between the two. engine_leave starts what it asked for;
 * answers for the caller (NODE_CALLER) are moved to *answers when it is not NULL. */
void engine_enter(struct engine *e);
void engine_leave(struct engine *e, struct nodert_box *answers);

/* The acceptors votes are relayed to first: this one and the next F that answer lately. */
uint32_t engine_relay_targets(struct engine *e);

#endif
