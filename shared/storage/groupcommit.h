/*
 * groupcommit.h - durable SQLite writes shared by many threads (group commit).
 *
 * Every job queued while a group commits goes into the next group: its jobs
 * run in order inside one SQLite transaction (each in its own savepoint), one
 * COMMIT (one fsync with WAL and synchronous=FULL) makes them all durable, and
 * only then do their submitters return. The submitting threads take turns at
 * committing (no thread of its own); a lone job is run at once, and nothing
 * waits to fill a group. Jobs read and write the
 * database under the owner's database mutex, so a job may read-modify-write:
 * the jobs of one group run one after another and see each other's writes.
 */
#ifndef TPC_GROUPCOMMIT_H
#define TPC_GROUPCOMMIT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "tpc_err.h"

struct gc_job {
    /* Runs inside the group's transaction; false rolls back this job alone (set err). */
    bool (*run)(struct gc_job *job, sqlite3 *db);
    void *arg;
    /* out */
    enum tpc_err rc;
    char err[256];
    /* the committer's own */
    bool done;
    struct gc_job *next;
    pthread_cond_t wake; /* its submitter waits here: done, or its turn to commit */
};

struct groupcommit;

/* db is used under *db_mu (borrowed; both outlive g). */
enum tpc_err groupcommit_start(sqlite3 *db, pthread_mutex_t *db_mu, struct groupcommit **out);
/* Refuses new jobs, waits for the group committing now, frees g. NULL is fine. Call it
 * once no thread submits any more (a submitter may still be leaving groupcommit_submit). */
void groupcommit_stop(struct groupcommit *g);

/* Queues job and returns once it is durable, or failed (job->rc, job->err). */
enum tpc_err groupcommit_submit(struct groupcommit *g, struct gc_job *job);

/* SQLite transactions committed so far, and the jobs they carried. */
void groupcommit_stats(struct groupcommit *g, uint64_t *groups, uint64_t *jobs);

#endif
