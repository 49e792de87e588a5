/*
 * groupcommit.h - durable SQLite writes shared by many callers (group commit).
 *
 * One committer thread per database: every job queued while a group commits
 * goes into the next group; its jobs run in order inside one SQLite
 * transaction (each in its own savepoint), one COMMIT (one fsync with WAL and
 * synchronous=FULL) makes them all durable, and only then is each job
 * finished: its done function runs on the committer thread (groupcommit_post),
 * or its submitter returns (groupcommit_submit). Nothing waits to fill a
 * group: a lone job commits at once. Jobs read and write the database under the
 * owner's database mutex, so a job may read-modify-write: the jobs of one
 * group run one after another and see each other's writes.
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
    /* groupcommit_post: runs on the committer thread once the job is durable or failed; it
     * may free the job. */
    void (*done)(struct gc_job *job);
    void *arg;
    /* out */
    enum tpc_err rc;
    char err[256];
    /* the committer's own */
    bool finished;
    struct gc_job *next;
    pthread_cond_t *wake; /* groupcommit_submit's waiter */
};

struct groupcommit;

/* db is used under *db_mu (borrowed; both outlive g). Starts the committer thread. */
enum tpc_err groupcommit_start(sqlite3 *db, pthread_mutex_t *db_mu, struct groupcommit **out);
/* Commits what is queued, refuses new jobs (they fail with TPC_ERR_STATE), stops the
 * committer, frees g. NULL is fine. */
void groupcommit_stop(struct groupcommit *g);

/* Queues job and returns at once; job->done runs when it is durable or failed. */
void groupcommit_post(struct groupcommit *g, struct gc_job *job);
/* Queues job and returns once it is durable, or failed (job->rc, job->err). */
enum tpc_err groupcommit_submit(struct groupcommit *g, struct gc_job *job);
/* Queues jobs[0..n) together (they go into one group, in that order) and returns once every
 * one is durable or failed (each job's rc and err). */
void groupcommit_submit_all(struct groupcommit *g, struct gc_job *const *jobs, size_t n);

/* SQLite transactions committed so far, and the jobs they carried. */
void groupcommit_stats(struct groupcommit *g, uint64_t *groups, uint64_t *jobs);

#endif
