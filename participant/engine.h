/*
 * engine.h - the participant driver (shared/core/resource.h) over the real
 * world: its writes carried out on the SQLite store (group commit) with the
 * branch's changeset and row locks (branch.h), its in-doubt questions sent to
 * the replicas' POST /v1/paxos with libcurl, under the runtime of
 * shared/runtime/nodert.h (one lock, outboxes, worker threads).
 *
 * Answers to the caller of a request (a VOTE for a prepare, an ACK for an
 * outcome) are handed back to that request's thread, which puts them in its
 * HTTP response. A ticker calls resource_tick every 50 ms (deadlines of
 * working branches, questions of in-doubt ones) and hands off what it asks.
 */
#ifndef TPC_PART_ENGINE_H
#define TPC_PART_ENGINE_H

#include <stdatomic.h>

#include "http_client.h"
#include "locks.h"
#include "metrics.h"
#include "nodert.h"
#include "participant.h"
#include "resource.h"
#include "store.h"
#include "table.h"
#include "ticker.h"

#define ENGINE_WORKERS 2 /* in-doubt questions and deadlines, handed off by the ticker */

struct engine {
    struct nodert rt; /* first: the driver's node_io context is the engine (nodert.h) */
    const struct participant_config *cfg; /* borrowed, like the next three */
    struct store *store;
    struct table *branches;
    struct locks *locks;
    struct resource drv; /* under rt.mu */
    struct http_pool *pool;
    struct ticker bg;
    struct metrics_hist outcome_time; /* applying an outcome, durably */
    int64_t collected_at;             /* the ticker's last store_collect (mono ms) */
    atomic_uint_fast64_t forgotten;   /* ended branches store_collect removed (the ticker adds) */
    bool drv_up, rt_up;
};

#define ENGINE_COLLECT_MS                                                                          \
    1000 /* ended branches older than the horizon are forgotten this often                         \
          */

enum tpc_err engine_open(struct engine *e, const struct participant_config *cfg,
                         struct store *store, struct table *branches, struct locks *locks,
                         char *err, size_t errlen);
/* Starts the ticker (after the prepared branches were reloaded). */
enum tpc_err engine_start(struct engine *e, char *err, size_t errlen);
void engine_close(struct engine *e);

/*
 * Carries out one round of box (writes, questions to replicas) and feeds completions and
 * answers back, which may fill box again. Messages for the caller go to *answers (dropped
 * when it is NULL).
 */
void engine_round(struct engine *e, struct nodert_box *box, struct nodert_box *answers);
/* Asserts participant.c's invariant 1 over every branch (a no-op under NDEBUG). */
void engine_check(struct engine *e);
/* Carries out box until nothing is left, answers to *answers. */
void engine_finish(struct engine *e, struct nodert_box *box, struct nodert_box *answers);

#endif
