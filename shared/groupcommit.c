/*
 * groupcommit.c - see groupcommit.h.
 *
 * Invariants: jobs commit in submission order; a job whose run() fails is
 * rolled back to its own savepoint and does not take the others down; a failed
 * COMMIT fails every job of its group; a submitter is woken only after its
 * group's COMMIT returned.
 */
#include "groupcommit.h"

#include <stdio.h>
#include <stdlib.h>

#include "log.h"

struct groupcommit {
    sqlite3 *db;
    pthread_mutex_t *db_mu;
    pthread_mutex_t mu;
    pthread_cond_t queued, finished;
    struct gc_job *head, *tail;
    bool stop;
    pthread_t thread;
    uint64_t groups, jobs;
};

static void run_group(struct groupcommit *g, struct gc_job *jobs)
{
    struct gc_job *j;
    bool ok;

    pthread_mutex_lock(g->db_mu);
    ok = sqlite3_exec(g->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
    for (j = jobs; j && ok; j = j->next) {
        j->rc = TPC_OK;
        j->err[0] = '\0';
        sqlite3_exec(g->db, "SAVEPOINT job", NULL, NULL, NULL);
        if (!j->run(j, g->db)) {
            if (j->rc == TPC_OK)
                j->rc = TPC_ERR_IO;
            sqlite3_exec(g->db, "ROLLBACK TO job", NULL, NULL, NULL);
        }
        sqlite3_exec(g->db, "RELEASE job", NULL, NULL, NULL);
    }
    if (ok && sqlite3_exec(g->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        ok = false;
    if (!ok) {
        log_error("group commit failed: %s", sqlite3_errmsg(g->db));
        for (j = jobs; j; j = j->next) {
            j->rc = TPC_ERR_IO;
            snprintf(j->err, sizeof(j->err), "commit failed: %s", sqlite3_errmsg(g->db));
        }
        sqlite3_exec(g->db, "ROLLBACK", NULL, NULL, NULL);
    }
    pthread_mutex_unlock(g->db_mu);
}

static void *committer(void *arg)
{
    struct groupcommit *g = arg;
    struct gc_job *jobs, *j;
    uint64_t n;

    pthread_mutex_lock(&g->mu);
    for (;;) {
        while (!g->head && !g->stop)
            pthread_cond_wait(&g->queued, &g->mu);
        if (!g->head)
            break; /* stopping, and nothing left */
        jobs = g->head;
        g->head = g->tail = NULL;
        pthread_mutex_unlock(&g->mu);
        run_group(g, jobs);
        pthread_mutex_lock(&g->mu);
        for (n = 0, j = jobs; j; j = j->next, n++)
            j->done = true;
        g->groups++;
        g->jobs += n;
        pthread_cond_broadcast(&g->finished);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
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
    pthread_cond_init(&g->queued, NULL);
    pthread_cond_init(&g->finished, NULL);
    if (pthread_create(&g->thread, NULL, committer, g) != 0) {
        pthread_cond_destroy(&g->queued);
        pthread_cond_destroy(&g->finished);
        pthread_mutex_destroy(&g->mu);
        free(g);
        return TPC_ERR_IO;
    }
    *out = g;
    return TPC_OK;
}

void groupcommit_stop(struct groupcommit *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    pthread_cond_broadcast(&g->queued);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->thread, NULL);
    pthread_cond_destroy(&g->queued);
    pthread_cond_destroy(&g->finished);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

enum tpc_err groupcommit_submit(struct groupcommit *g, struct gc_job *job)
{
    job->done = false;
    job->next = NULL;
    job->rc = TPC_OK;
    job->err[0] = '\0';
    pthread_mutex_lock(&g->mu);
    if (g->stop) {
        pthread_mutex_unlock(&g->mu);
        return job->rc = TPC_ERR_STATE;
    }
    if (g->tail)
        g->tail->next = job;
    else
        g->head = job;
    g->tail = job;
    pthread_cond_signal(&g->queued);
    while (!job->done)
        pthread_cond_wait(&g->finished, &g->mu);
    pthread_mutex_unlock(&g->mu);
    return job->rc;
}

void groupcommit_stats(struct groupcommit *g, uint64_t *groups, uint64_t *jobs)
{
    pthread_mutex_lock(&g->mu);
    *groups = g->groups;
    *jobs = g->jobs;
    pthread_mutex_unlock(&g->mu);
}
