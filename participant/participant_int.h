/*
 * participant_int.h - what the participant's files share of it: the struct behind
 * participant.h's handle. Private to participant/ (participant.c, participant_report.c).
 */
#ifndef TPC_PART_PARTICIPANT_INT_H
#define TPC_PART_PARTICIPANT_INT_H

#include <pthread.h>

#include "engine.h"
#include "locks.h"
#include "metrics.h"
#include "participant.h"
#include "store.h"
#include "table.h"

struct participant {
    struct participant_config cfg;
    struct store *store;
    struct locks *locks;
    struct table branches;            /* branch.h: changesets and row locks */
    struct engine eng;                /* the driver */
    pthread_mutex_t mu;               /* lock_waiters */
    size_t lock_waiters;              /* under mu: branches waiting for a lock now */
    uint64_t lock_waits;              /* under mu: waits for a lock another branch held, ever */
    struct metrics_hist prepare_time; /* prepare calls */
};
/*
 * participant.c: feeds one request's event (fn with arg) to the driver and carries out what
 * it asks; *answer is the message it sent back to this caller (type 0: none). b, when not
 * NULL, is the branch the caller holds locked.
 */
struct branch;
enum tpc_err participant_ask(struct participant *p, struct branch *b, const char *txid,
                             enum tpc_err (*fn)(struct participant *p, const void *arg, char *err,
                                                size_t errlen),
                             const void *arg, struct msg *answer, char *err, size_t errlen);
/* The API error of a driver's refusal that is none of the call's own cases. */
void participant_call_error(struct api_error *e, enum tpc_err rc, const char *err,
                            const char *txid);
/* participant_heuristic.c: at start, the heuristic decisions not reconciled yet come back to
 * the driver, which asks the replicas for their outcome (resource.h rule 7). */
enum tpc_err participant_reload_heuristics(struct participant *p, char *err, size_t errlen);

#endif
