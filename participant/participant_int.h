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

#endif
