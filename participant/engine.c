/*
 * engine.c - see engine.h.
 *
 * Invariants:
 *   1. The driver is called only between nodert_enter and nodert_leave; no
 *      write or call is carried out under that lock.
 *   2. A write's completion is fed back only once store_submit says it is
 *      durable; then, for a branch that ended, its row locks are released
 *      (invariant 1 of participant.c).
 *   3. A branch's mutex is held while its changeset is written, so no
 *      statement changes it meanwhile.
 */
#include "engine.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "branch.h"
#include "codec.h"
#include "failpoint.h"
#include "log.h"

/* One write of the driver on its way to the store. */
struct wjob {
    struct store_job job;
    struct branch *b; /* taken, its mutex held, from write_start to write_finish */
    json_t *pj;
    char *ptext;
    uint64_t started;
};

/* Lets go of what write_start took. */
static void write_release(struct engine *e, struct wjob *x)
{
    if (x->b) {
        pthread_mutex_unlock(&x->b->mu);
        table_put(e->branches, &x->b->e);
    }
    json_decref(x->pj);
    free(x->ptext);
    memset(x, 0, sizeof(*x));
}

/*
 * Readies w's store job in *x, the branch's data from the branch table, its mutex held
 * (invariant 3). With try, a branch whose mutex another thread holds is left for later:
 * TPC_ERR_BUSY, nothing taken. Any other error: nothing taken, nothing to write.
 */
static enum tpc_err write_start(struct engine *e, const struct node_write *w, struct wjob *x,
                                bool try)
{
    struct branch *b = (struct branch *)table_get(e->branches, w->txid, false);

    memset(x, 0, sizeof(*x));
    x->started = metrics_now_ns();
    if (b && try && pthread_mutex_trylock(&b->mu) != 0) {
        table_put(e->branches, &b->e);
        return TPC_ERR_BUSY;
    }
    if (b && !try)
        pthread_mutex_lock(&b->mu);
    x->b = b;
    x->job.txid = w->txid;
    x->job.vote = w->vote;
    x->job.born = w->born;
    switch (w->kind) {
    case NODE_WRITE_PREPARED:
    case NODE_WRITE_HEURISTIC:
        /* The branch's changes and its participant list: prepared, or decided by an operator. */
        x->pj = codec_encode_parts(&w->parts);
        x->ptext = x->pj ? json_dumps(x->pj, JSON_COMPACT) : NULL;
        if (!x->ptext || !b || b->e.gone) {
            log_error("%s: no branch to write (%s)", w->txid, x->ptext ? "no branch" : "no memory");
            write_release(e, x);
            return TPC_ERR_STATE;
        }
        x->job.kind = w->kind == NODE_WRITE_PREPARED ? STORE_JOB_PREPARE : STORE_JOB_HEURISTIC;
        x->job.outcome = w->outcome;
        x->job.changeset = b->changeset;
        x->job.changeset_len = b->cs_len;
        x->job.participants = x->ptext;
        return TPC_OK;
    case NODE_WRITE_READONLY:
        x->job.kind = STORE_JOB_READONLY;
        return TPC_OK;
    case NODE_WRITE_RECONCILE:
        x->job.kind = STORE_JOB_RECONCILE;
        x->job.outcome = w->outcome;
        return TPC_OK;
    case NODE_WRITE_OUTCOME:
        if (w->outcome != TPC_OUTCOME_COMMITTED) {
            x->job.kind = STORE_JOB_ABORT;
            return TPC_OK;
        }
        failpoint("participant-before-commit");
        if (!b || b->e.gone) {
            log_error("%s: a commit without its changes", w->txid);
            write_release(e, x);
            return TPC_ERR_STATE;
        }
        x->job.kind = STORE_JOB_COMMIT;
        x->job.changeset = b->changeset;
        x->job.changeset_len = b->cs_len;
        return TPC_OK;
    default:
        write_release(e, x);
        return TPC_ERR_INVALID;
    }
}

/* After the store has x's job done (or failed): what follows it, and x let go of. */
static enum tpc_err write_finish(struct engine *e, const struct node_write *w, struct wjob *x)
{
    enum tpc_err rc = x->job.rc;

    if (rc) {
        log_error("%s: a durable write failed: %s", w->txid, x->job.err);
    } else {
        if (w->kind == NODE_WRITE_PREPARED)
            failpoint("participant-after-prepare");
        if (w->kind == NODE_WRITE_HEURISTIC)
            log_warn("%s: heuristic decision by an operator: %s (recorded; reconciled once the "
                     "replicas tell the chosen outcome)",
                     w->txid, msg_outcome_name(w->outcome));
        if (w->kind == NODE_WRITE_RECONCILE && x->job.mixed)
            log_error("%s: HEURISTIC MIXED: the chosen outcome is %s, the heuristic decision "
                      "made here was the other one (see GET /v1/heuristics)",
                      w->txid, msg_outcome_name(w->outcome));
        else if (w->kind == NODE_WRITE_RECONCILE)
            log_info("%s: heuristic decision confirmed: the chosen outcome is %s", w->txid,
                     msg_outcome_name(w->outcome));
        if (w->kind == NODE_WRITE_OUTCOME) {
            if (w->outcome == TPC_OUTCOME_COMMITTED)
                failpoint("participant-after-commit");
            metrics_hist_since(&e->outcome_time, x->started);
            log_debug("%s %s", w->txid, msg_outcome_name(w->outcome));
        }
        /* Durable: an ended branch frees its rows for others. */
        if (x->b && w->kind != NODE_WRITE_PREPARED)
            branch_end(e->branches, e->locks, x->b);
    }
    write_release(e, x);
    return rc;
}

/*
 * Carries out the writes among items[0..n) (rcs[i]: how each went). They go to the store
 * together, one group and one fsync, but for a branch whose mutex another thread holds: that
 * one is waited for and written alone afterwards, so that this thread never waits for one
 * branch's mutex while it holds another's (a statement holding its branch's mutex may be
 * waiting for a row lock that these very writes release).
 */
static void write_all(struct engine *e, struct nodert_item *items, size_t n, enum tpc_err *rcs)
{
    struct wjob *x = calloc(n, sizeof(*x));
    struct store_job **jobs = calloc(n, sizeof(*jobs));
    size_t i, n_writes = 0, n_jobs = 0;
    bool *later = calloc(n, sizeof(*later)), *started = calloc(n, sizeof(*started));

    for (i = 0; i < n; i++)
        n_writes += items[i].write;
    if (!x || !jobs || !later || !started) {
        for (i = 0; i < n; i++)
            rcs[i] = TPC_ERR_NOMEM;
        goto out;
    }
    for (i = 0; i < n; i++) {
        if (!items[i].write)
            continue;
        rcs[i] = write_start(e, &items[i].w, &x[i], n_writes > 1);
        if (rcs[i] == TPC_ERR_BUSY)
            later[i] = true;
        else if (rcs[i] == TPC_OK)
            jobs[n_jobs++] = &x[i].job, started[i] = true;
    }
    store_submit_all(e->store, jobs, n_jobs);
    for (i = 0; i < n; i++)
        if (started[i])
            rcs[i] = write_finish(e, &items[i].w, &x[i]);
    for (i = 0; i < n; i++) {
        if (!later[i])
            continue;
        rcs[i] = write_start(e, &items[i].w, &x[i], false);
        if (rcs[i] != TPC_OK)
            continue;
        store_submit(e->store, &x[i].job);
        rcs[i] = write_finish(e, &items[i].w, &x[i]);
    }
out:
    free(x);
    free(jobs);
    free(later);
    free(started);
}

static void keep_answer(struct nodert_box *answers, const struct nodert_item *it)
{
    if (!answers)
        return;
    if (answers->n == answers->cap) {
        size_t cap = answers->cap ? answers->cap * 2 : 4;
        struct nodert_item *bigger = realloc(answers->items, cap * sizeof(*bigger));

        if (!bigger)
            return;
        answers->items = bigger;
        answers->cap = cap;
    }
    answers->items[answers->n++] = *it;
}

/* items will not be carried out: their writes failed (the driver tries again). */
static void give_up(struct engine *e, struct nodert_box *items)
{
    struct nodert_box box = {0};
    size_t i;

    nodert_enter(&e->rt, &box);
    for (i = 0; i < items->n; i++)
        if (items->items[i].write)
            resource_persisted(&e->drv, &items->items[i].w, TPC_ERR_NOMEM);
    nodert_leave(&e->rt);
    nodert_hand_off(&e->rt, &box);
}

void engine_round(struct engine *e, struct nodert_box *box, struct nodert_box *answers)
{
    struct nodert_box items;
    struct http_call *calls = NULL;
    char(*urls)[512] = NULL, **bodies = NULL, err[256];
    enum tpc_err *rcs = NULL;
    struct http_client *hc = NULL;
    size_t i, n_calls = 0, k, got;
    struct msg got_msgs[8];

    nodert_box_move(&items, box);
    if (!items.n)
        return;
    rcs = calloc(items.n, sizeof(*rcs));
    calls = calloc(items.n, sizeof(*calls));
    urls = calloc(items.n, sizeof(*urls));
    bodies = calloc(items.n, sizeof(*bodies));
    if (!rcs || !calls || !urls || !bodies) {
        log_error("out of memory for %zu actions (the timers try again)", items.n);
        give_up(e, &items);
        goto out;
    }
    /* Questions to the replicas leave first; the writes run while they are out. */
    for (i = 0; i < items.n; i++) {
        struct nodert_item *it = &items.items[i];
        json_t *batch;

        if (it->write)
            continue;
        if (it->to.kind == NODE_CALLER) {
            keep_answer(answers, it);
            continue;
        }
        if (it->to.kind != NODE_REPLICA || it->to.id >= e->cfg->n_replicas)
            continue;
        batch = codec_encode_batch(&it->m, 1);
        bodies[n_calls] = batch ? json_dumps(batch, JSON_COMPACT) : NULL;
        json_decref(batch);
        if (!bodies[n_calls])
            continue;
        snprintf(urls[n_calls], sizeof(urls[n_calls]), "%s/v1/paxos", e->cfg->replicas[it->to.id]);
        calls[n_calls].url = urls[n_calls];
        calls[n_calls].body = bodies[n_calls];
        calls[n_calls].body_len = strlen(bodies[n_calls]);
        n_calls++;
    }
    hc = n_calls ? http_pool_get(e->pool) : NULL;
    if (hc)
        http_client_start(hc, calls, n_calls, e->cfg->vote_timeout_ms);
    write_all(e, items.items, items.n, rcs);
    if (hc) {
        http_client_finish(hc, calls, n_calls);
        http_pool_put(e->pool, hc);
    }
    nodert_enter(&e->rt, box);
    for (i = 0; i < items.n; i++)
        if (items.items[i].write)
            resource_persisted(&e->drv, &items.items[i].w, rcs[i]);
    for (k = 0; hc && k < n_calls; k++) {
        json_t *j = NULL;

        if (calls[k].err == TPC_OK && calls[k].status == 200)
            j = json_loadb(calls[k].response, calls[k].response_len, JSON_REJECT_DUPLICATES, NULL);
        if (j && codec_decode_batch(j, e->cfg->n_replicas, got_msgs, 8, &got, err, sizeof(err)) ==
                     TPC_OK) {
            for (i = 0; i < got; i++) {
                uint64_t before = e->drv.stats.doubts_resolved;

                if (resource_receive(&e->drv, &got_msgs[i], err, sizeof(err)) != TPC_OK)
                    log_warn("%s: answer refused: %s", got_msgs[i].txid, err);
                if (e->drv.stats.doubts_resolved != before)
                    log_info("%s: in doubt, learned %s from a replica", got_msgs[i].txid,
                             msg_outcome_name(got_msgs[i].outcome));
            }
        } else {
            log_debug("%s: %s (status %ld)", calls[k].url,
                      calls[k].err ? calls[k].error : "no answer", calls[k].status);
        }
        json_decref(j);
    }
    resource_check(&e->drv);
    nodert_leave(&e->rt);
out:
    for (k = 0; calls && bodies && k < n_calls; k++) {
        free(calls[k].response);
        free(bodies[k]);
    }
    free(rcs);
    free(calls);
    free(urls);
    free(bodies);
    nodert_box_free(&items);
}

void engine_finish(struct engine *e, struct nodert_box *box, struct nodert_box *answers)
{
    int rounds;

    /* Bounded: the driver's timers redo whatever is left. */
    for (rounds = 0; box->n && rounds < 16; rounds++)
        engine_round(e, box, answers);
    if (box->n) {
        struct nodert_box left;

        log_warn("%zu actions left after %d rounds: given up", box->n, rounds);
        nodert_box_move(&left, box);
        give_up(e, &left);
        nodert_box_free(&left);
    }
    nodert_box_free(box);
}

static void run(void *ctx, struct nodert_box *box)
{
    engine_finish(ctx, box, NULL);
}

/*
 * Invariant 1 of participant.c, asserted in debug builds: a branch that holds row locks is
 * one the driver holds (working, prepared or ending): no lock outlives its branch. A branch
 * busy now (its mutex taken) is looked at next time.
 */
void engine_check(struct engine *e)
{
#ifndef NDEBUG
    struct table_entry **all;
    size_t i, n = table_snapshot(e->branches, &all);

    for (i = 0; i < n; i++) {
        struct branch *b = (struct branch *)all[i];

        if (pthread_mutex_trylock(&b->mu) == 0) {
            if (!b->e.gone && b->n_keys) {
                pthread_mutex_lock(&e->rt.mu);
                assert(resource_find(&e->drv, b->e.id) != NULL);
                pthread_mutex_unlock(&e->rt.mu);
            }
            pthread_mutex_unlock(&b->mu);
        }
        table_put(e->branches, &b->e);
    }
    free(all);
#else
    (void)e;
#endif
}

static void tick(void *arg)
{
    struct engine *e = arg;
    struct nodert_box box = {0};

    nodert_enter(&e->rt, &box);
    resource_tick(&e->drv);
    resource_check(&e->drv);
    nodert_leave(&e->rt);
    nodert_hand_off(&e->rt, &box);
    engine_check(e);
    if (nodert_now_ms() - e->collected_at >= ENGINE_COLLECT_MS) {
        int64_t n = store_collect(e->store);

        e->collected_at = nodert_now_ms();
        if (n > 0)
            atomic_fetch_add(&e->forgotten, (uint_fast64_t)n);
    }
}

static uint64_t io_horizon(void *ctx)
{
    struct engine *e = ctx;

    return store_horizon(e->store);
}

static enum tpc_err io_ended(void *ctx, const char *txid, int *state, enum tpc_value *vote,
                             uint64_t *born)
{
    struct engine *e = ctx;
    enum rm_state st = RM_NONE;

    *vote = TPC_VALUE_NONE;
    *state = RM_NONE;
    if (store_ended(e->store, txid, &st, vote, born) != TPC_OK) {
        log_error("%s: cannot read how it ended", txid);
        return TPC_ERR_IO;
    }
    *state = (int)st;
    return TPC_OK;
}

enum tpc_err engine_open(struct engine *e, const struct participant_config *cfg,
                         struct store *store, struct table *branches, struct locks *locks,
                         char *err, size_t errlen)
{
    struct resource_config rc;
    struct node_io io = {.ctx = e,
                         .now = nodert_io_now,
                         .random = nodert_io_random,
                         .send = nodert_io_send,
                         .persist = nodert_io_persist,
                         .horizon = io_horizon,
                         .ended = io_ended};
    enum tpc_err r;

    memset(e, 0, sizeof(*e));
    e->cfg = cfg;
    e->store = store;
    e->branches = branches;
    e->locks = locks;
    memset(&rc, 0, sizeof(rc));
    msg_copy_str(rc.self, TPC_NAME_MAX, cfg->name);
    rc.n_replicas = cfg->n_replicas;
    rc.branch_timeout = cfg->branch_timeout_ms;
    rc.doubt_after = cfg->doubt_ms;
    rc.doubt_max = 30000;
    e->pool = http_pool_new(cfg->token);
    if (!e->pool)
        return tpc_errbuf_set(err, errlen, TPC_ERR_NOMEM, "out of memory");
    r = resource_init(&e->drv, &rc, &io);
    if (r)
        return tpc_errbuf_set(err, errlen, r, "cannot start the participant driver");
    e->drv_up = true;
    r = nodert_init(&e->rt, ENGINE_WORKERS, run, e);
    e->rt_up = true;
    if (r)
        return tpc_errbuf_set(err, errlen, r, "cannot start the worker threads");
    return TPC_OK;
}

enum tpc_err engine_start(struct engine *e, char *err, size_t errlen)
{
    if (ticker_start(&e->bg, 50, tick, e) != TPC_OK)
        return tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot start the background thread");
    return TPC_OK;
}

void engine_close(struct engine *e)
{
    ticker_stop(&e->bg);
    if (e->rt_up)
        nodert_fini(&e->rt);
    if (e->drv_up)
        resource_fini(&e->drv);
    e->rt_up = e->drv_up = false;
    http_pool_free(e->pool);
    e->pool = NULL;
}
