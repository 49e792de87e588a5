/*
 * groupcommit.c - see groupcommit.h.
 *
 * Leader/follower: there is no committer thread. A submitter that finds no
 * group running commits every job queued at that moment, its own among them;
 * others queue and wait, and when the group is done one of them commits the
 * next group. Under load the groups grow; alone, a job runs at once on its own
 * thread.
 *
 * Invariants: one group runs at a time (busy), so jobs commit in submission
 * order; a job whose run() fails is rolled back to its own savepoint and does
 * not take the others down; a failed COMMIT fails every job of its group; a
 * job is marked done only after its group's COMMIT returned.
 */
#include "groupcommit.h"

#include <stdio.h>
#include <stdlib.h>

#include "log.h"

struct groupcommit {
    sqlite3 *db;
    pthread_mutex_t *db_mu;
    pthread_mutex_t mu;
    pthread_cond_t finished; /* for groupcommit_stop: the group running has finished */
    struct gc_job *head, *tail;
    bool busy; /* a submitter is committing a group now */
    bool stop;
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

enum tpc_err groupcommit_start(sqlite3 *db, pthread_mutex_t *db_mu, struct groupcommit **out)
{
    struct groupcommit *g = calloc(1, sizeof(*g));

    *out = NULL;
    if (!g)
        return TPC_ERR_NOMEM;
    g->db = db;
    g->db_mu = db_mu;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->finished, NULL);
    *out = g;
    return TPC_OK;
}

void groupcommit_stop(struct groupcommit *g)
{
    if (!g)
        return;
    /* Refuse new jobs, and wait for a group that is running to finish. */
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    while (g->busy || g->head)
        pthread_cond_wait(&g->finished, &g->mu);
    pthread_mutex_unlock(&g->mu);
    pthread_mutex_lock(g->db_mu);
    for (size_t i = 0; i < sizeof(g->stmt) / sizeof(g->stmt[0]); i++)
        sqlite3_finalize(g->stmt[i]);
    pthread_mutex_unlock(g->db_mu);
    pthread_cond_destroy(&g->finished);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

enum tpc_err groupcommit_submit(struct groupcommit *g, struct gc_job *job)
{
    struct gc_job *jobs, *j;
    uint64_t n;

    job->done = false;
    job->next = NULL;
    job->rc = TPC_OK;
    job->err[0] = '\0';
    pthread_mutex_lock(&g->mu);
    if (g->stop) {
        pthread_mutex_unlock(&g->mu);
        return job->rc = TPC_ERR_STATE;
    }
    pthread_cond_init(&job->wake, NULL);
    if (g->tail)
        g->tail->next = job;
    else
        g->head = job;
    g->tail = job;
    while (!job->done) {
        if (g->busy) {
            /* Another submitter is committing a group; ours goes in the next one. Each
             * submitter sleeps on its own condition, so a finished group wakes only its own
             * submitters and the one whose turn it is to commit, not every waiter. */
            pthread_cond_wait(&job->wake, &g->mu);
            continue;
        }
        /* Nobody is committing: this thread commits everything queued, its own job among it
         * (no hand-off to another thread, so a lone job costs no context switch). */
        g->busy = true;
        jobs = g->head;
        g->head = g->tail = NULL;
        pthread_mutex_unlock(&g->mu);
        run_group(g, jobs);
        pthread_mutex_lock(&g->mu);
        /* Under g->mu: a woken submitter cannot return (and free its job) before we let go. */
        for (n = 0, j = jobs; j; j = j->next, n++) {
            j->done = true;
            if (j != job)
                pthread_cond_signal(&j->wake);
        }
        g->groups++;
        g->jobs += n;
        g->busy = false;
        if (g->head) /* the oldest waiting job's submitter commits the next group */
            pthread_cond_signal(&g->head->wake);
        if (g->stop)
            pthread_cond_broadcast(&g->finished);
    }
    pthread_mutex_unlock(&g->mu);
    pthread_cond_destroy(&job->wake);
    return job->rc;
}

void groupcommit_stats(struct groupcommit *g, uint64_t *groups, uint64_t *jobs)
{
    pthread_mutex_lock(&g->mu);
    *groups = g->groups;
    *jobs = g->jobs;
    pthread_mutex_unlock(&g->mu);
}
