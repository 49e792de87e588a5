/*
 * groupcommit.c - see groupcommit.h.
 *
 * The committer thread takes every job queued at that moment as one group.
 * Under load the groups grow, since jobs gather while a group's fsync runs.
 * A submitter that waits (groupcommit_submit) and finds nothing running and
 * nothing queued runs its lone job at once on its own thread: no hand-off, no
 * context switch, when there is nothing to share the fsync with.
 *
 * Invariants: one group runs at a time (the committer's), so jobs commit in
 * submission order; a job whose run() fails is rolled back to its own
 * savepoint and does not take the others down; a failed COMMIT fails every job
 * of its group; a job is finished only after its group's COMMIT returned.
 */
#include "groupcommit.h"

#include <stdio.h>
#include <stdlib.h>

#include "log.h"

struct groupcommit {
    sqlite3 *db;
    pthread_mutex_t *db_mu;
    pthread_mutex_t mu;
    pthread_cond_t work; /* the committer waits here for jobs */
    struct gc_job *head, *tail;
    bool busy; /* a group is running (the committer's, or a lone submitter's own) */
    bool stop;
    pthread_t thread;
    bool started;
    uint64_t groups, jobs;
    sqlite3_stmt *stmt[6]; /* the statements below, prepared once (under db_mu) */
};

enum { SQL_BEGIN, SQL_SAVEPOINT, SQL_ROLLBACK_TO, SQL_RELEASE, SQL_COMMIT, SQL_ROLLBACK };

static const char *const sql_text[] = {"BEGIN IMMEDIATE", "SAVEPOINT job", "ROLLBACK TO job",
                                       "RELEASE job",     "COMMIT",        "ROLLBACK"};

/* Runs one of the statements above; SQLITE_OK when it is done. Under db_mu. */
static int run_sql(struct groupcommit *g, int which)
{
    sqlite3_stmt *st = g->stmt[which];
    int rc;

    if (!st && sqlite3_prepare_v3(g->db, sql_text[which], -1, SQLITE_PREPARE_PERSISTENT,
                                  &g->stmt[which], NULL) != SQLITE_OK)
        return SQLITE_ERROR;
    st = g->stmt[which];
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void run_group(struct groupcommit *g, struct gc_job *jobs)
{
    struct gc_job *j;
    bool ok;

    pthread_mutex_lock(g->db_mu);
    ok = run_sql(g, SQL_BEGIN) == SQLITE_OK;
    for (j = jobs; j && ok; j = j->next) {
        j->rc = TPC_OK;
        j->err[0] = '\0';
        run_sql(g, SQL_SAVEPOINT);
        if (!j->run(j, g->db)) {
            if (j->rc == TPC_OK)
                j->rc = TPC_ERR_IO;
            /* Some errors (disk full, I/O, no memory) make SQLite roll the whole transaction
             * back: then the group is lost, not just this job, and nothing may commit. */
            if (sqlite3_get_autocommit(g->db)) {
                ok = false;
                break;
            }
            run_sql(g, SQL_ROLLBACK_TO);
        }
        run_sql(g, SQL_RELEASE);
    }
    if (ok && run_sql(g, SQL_COMMIT) != SQLITE_OK)
        ok = false;
    if (!ok) {
        log_error("group commit failed: %s", sqlite3_errmsg(g->db));
        for (j = jobs; j; j = j->next) {
            j->rc = TPC_ERR_IO;
            snprintf(j->err, sizeof(j->err), "commit failed: %s", sqlite3_errmsg(g->db));
        }
        run_sql(g, SQL_ROLLBACK);
    }
    pthread_mutex_unlock(g->db_mu);
}

/* Finishes the jobs of a group that ran (or never ran: rc set). */
static void finish(struct groupcommit *g, struct gc_job *jobs)
{
    struct gc_job *j, *next;

    for (j = jobs; j; j = next) {
        next = j->next; /* done may free j */
        if (j->done) {
            j->done(j);
        } else {
            pthread_mutex_lock(&g->mu);
            j->finished = true;
            pthread_cond_signal(j->wake);
            pthread_mutex_unlock(&g->mu);
        }
    }
}

static void *committer(void *arg)
{
    struct groupcommit *g = arg;

    for (;;) {
        struct gc_job *jobs, *j;
        uint64_t n = 0;

        pthread_mutex_lock(&g->mu);
        while ((!g->head || g->busy) && !(g->stop && !g->busy && !g->head))
            pthread_cond_wait(&g->work, &g->mu);
        jobs = g->head;
        g->head = g->tail = NULL;
        for (j = jobs; j; j = j->next)
            n++;
        if (n) {
            g->groups++;
            g->jobs += n;
            g->busy = true;
        }
        pthread_mutex_unlock(&g->mu);
        if (!jobs) /* stopping, and nothing left */
            return NULL;
        run_group(g, jobs);
        pthread_mutex_lock(&g->mu);
        g->busy = false;
        pthread_mutex_unlock(&g->mu);
        finish(g, jobs);
    }
}

enum tpc_err groupcommit_start(sqlite3 *db, pthread_mutex_t *db_mu, struct groupcommit **out)
{
    struct groupcommit *g = calloc(1, sizeof(*g));

    *out = NULL;
    if (!g)
        return TPC_ERR_NOMEM;
    g->db = db;
    g->db_mu = db_mu;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->work, NULL);
    if (pthread_create(&g->thread, NULL, committer, g) != 0) {
        groupcommit_stop(g);
        return TPC_ERR_IO;
    }
    g->started = true;
    *out = g;
    return TPC_OK;
}

void groupcommit_stop(struct groupcommit *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    pthread_cond_signal(&g->work);
    pthread_mutex_unlock(&g->mu);
    if (g->started)
        pthread_join(g->thread, NULL); /* it commits what is queued first */
    pthread_mutex_lock(g->db_mu);
    for (size_t i = 0; i < sizeof(g->stmt) / sizeof(g->stmt[0]); i++)
        sqlite3_finalize(g->stmt[i]);
    pthread_mutex_unlock(g->db_mu);
    pthread_cond_destroy(&g->work);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

void groupcommit_post(struct groupcommit *g, struct gc_job *job)
{
    job->finished = false;
    job->next = NULL;
    job->rc = TPC_OK;
    job->err[0] = '\0';
    pthread_mutex_lock(&g->mu);
    if (g->stop) {
        pthread_mutex_unlock(&g->mu);
        job->rc = TPC_ERR_STATE;
        snprintf(job->err, sizeof(job->err), "the store is closing");
        finish(g, job);
        return;
    }
    if (g->tail)
        g->tail->next = job;
    else
        g->head = job;
    g->tail = job;
    pthread_cond_signal(&g->work);
    pthread_mutex_unlock(&g->mu);
}

enum tpc_err groupcommit_submit(struct groupcommit *g, struct gc_job *job)
{
    struct gc_job *one = job;

    groupcommit_submit_all(g, &one, 1);
    return job->rc;
}

/* Whether every job of jobs[0..n) is finished. Under g->mu. */
static bool all_finished(struct gc_job *const *jobs, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (!jobs[i]->finished)
            return false;
    return true;
}

void groupcommit_submit_all(struct groupcommit *g, struct gc_job *const *jobs, size_t n)
{
    pthread_cond_t wake;
    size_t i;

    if (!n)
        return;
    for (i = 0; i < n; i++) {
        jobs[i]->next = i + 1 < n ? jobs[i + 1] : NULL;
        jobs[i]->rc = TPC_OK;
        jobs[i]->err[0] = '\0';
        jobs[i]->finished = false;
        jobs[i]->done = NULL;
    }
    pthread_mutex_lock(&g->mu);
    if (!g->busy && !g->head && !g->stop) { /* alone: run them here and now */
        g->busy = true;
        g->groups++;
        g->jobs += n;
        pthread_mutex_unlock(&g->mu);
        run_group(g, jobs[0]);
        pthread_mutex_lock(&g->mu);
        g->busy = false;
        if (g->head || g->stop) /* jobs that came meanwhile: the committer's now */
            pthread_cond_signal(&g->work);
        pthread_mutex_unlock(&g->mu);
        return;
    }
    if (g->stop) {
        pthread_mutex_unlock(&g->mu);
        for (i = 0; i < n; i++) {
            jobs[i]->rc = TPC_ERR_STATE;
            snprintf(jobs[i]->err, sizeof(jobs[i]->err), "the store is closing");
        }
        return;
    }
    /* Queued as one chain, so the committer takes them into the same group. */
    pthread_cond_init(&wake, NULL);
    for (i = 0; i < n; i++)
        jobs[i]->wake = &wake;
    if (g->tail)
        g->tail->next = jobs[0];
    else
        g->head = jobs[0];
    g->tail = jobs[n - 1];
    pthread_cond_signal(&g->work);
    while (!all_finished(jobs, n))
        pthread_cond_wait(&wake, &g->mu);
    pthread_mutex_unlock(&g->mu);
    pthread_cond_destroy(&wake);
}

void groupcommit_stats(struct groupcommit *g, uint64_t *groups, uint64_t *jobs)
{
    pthread_mutex_lock(&g->mu);
    *groups = g->groups;
    *jobs = g->jobs;
    pthread_mutex_unlock(&g->mu);
}
