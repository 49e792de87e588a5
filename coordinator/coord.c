/*
 * coord.c - see coord.h. A coordinator replica: its start and stop, the reads of the client
 * API (status, list, health, metrics) and the protocol endpoint, over the replica driver
 * that engine.c runs on the loop. The client's other calls are in coord_client.c.
 */
#include "request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "fsync_vfs.h"
#include "log.h"

json_t *coord_status(struct coord *c, const char *txid, int *status, struct api_error *e)
{
    struct replica_view v;
    struct msg_parts parts;
    uint64_t born = 0;
    json_t *r;
    bool known;

    known = replica_view(&c->eng.drv, txid, &v); /* a read: no event, nothing to carry out */
    if (known) {
        r = json_pack("{s:s,s:s}", "txid", txid, "state", request_state_word(&v));
        if (r && v.outcome != TPC_OUTCOME_NONE)
            json_object_set_new(r, "outcome", json_string(msg_outcome_name(v.outcome)));
        if (r)
            json_object_set_new(r, "participants", request_parts_json(&v.parts));
        *status = 200;
        return r;
    }
    if ((r = request_ended(c, txid, status, e)) != NULL)
        return r;
    memset(e, 0, sizeof(*e));
    /* Known to this acceptor but not decided here: in doubt; the sweep recovers it once
     * it is stale. */
    if (acc_store_parts(c->store, txid, &parts, &born) == TPC_OK && parts.n &&
        !msg_expired(born, acc_store_horizon(c->store))) {
        *status = 200;
        return json_pack("{s:s,s:s,s:o}", "txid", txid, "state", "in_doubt", "participants",
                         codec_encode_parts(&parts));
    }
    api_error_set(e, "unknown_transaction",
                  "no transaction %s at this replica: never begun, or forgotten (a transaction "
                  "is kept for retention_ms, %lld ms, from its begin)",
                  txid, (long long)c->cfg.retention_ms);
    return NULL;
}

struct list_ctx {
    json_t *list;
    int want; /* -1: every state */
    struct coord *c;
};

/* One live transaction of a listing; parts is taken; born 0: unknown. */
static void list_add(struct list_ctx *l, const char *txid, const char *state, json_t *parts,
                     uint64_t born)
{
    json_t *one = json_pack("{s:s,s:s,s:o}", "txid", txid, "state", state, "participants", parts);

    if (one && born)
        json_object_set_new(one, "born_ms", json_integer((json_int_t)born));
    json_array_append_new(l->list, one);
}

/* A transaction this acceptor holds votes of and no decision (within the retention:
 * acc_store_undecided), and not in the driver: in doubt here, as its status says
 * (coord_status). */
static void list_doubt(void *ctx, const char *txid, const struct msg_parts *parts, uint64_t born)
{
    struct list_ctx *l = ctx;
    struct replica_view v;

    if (replica_view(&l->c->eng.drv, txid, &v) || !parts->n) /* !n: a list that did not parse */
        return;
    list_add(l, txid, "in_doubt", codec_encode_parts(parts), born);
}

static void list_live(void *ctx, const char *txid, const struct replica_view *v)
{
    struct list_ctx *l = ctx;

    if (v->state == REPLICA_DECIDED || (l->want >= 0 && l->want != (int)v->state))
        return;
    list_add(l, txid, request_state_names[v->state], request_parts_json(&v->parts), v->born);
}

static void list_decided(void *ctx, const char *txid, enum tpc_outcome o, int64_t at)
{
    json_array_append_new(ctx, json_pack("{s:s,s:s,s:I}", "txid", txid, "state",
                                         msg_outcome_name(o), "decided_at_ms", (json_int_t)at));
}

json_t *coord_list(struct coord *c, const char *state, int *status, struct api_error *e)
{
    struct list_ctx l = {json_array(), -1, c};
    int i;

    if (state) {
        for (i = 0; i < 3; i++)
            if (!strcmp(state, request_state_names[i]))
                l.want = i;
        if (l.want < 0 && strcmp(state, "committed") && strcmp(state, "aborted")) {
            json_decref(l.list);
            api_error_set(e, "bad_state",
                          "state is one of active, preparing, in_doubt, committed, aborted");
            return NULL;
        }
    }
    if (!state || l.want >= 0) {
        replica_foreach(&c->eng.drv, list_live, &l);
        if (l.want < 0 || l.want == REPLICA_IN_DOUBT) {
            acc_store_undecided(c->store, COORD_LIST_MAX, list_doubt, &l);
        }
    }
    if (!state || l.want < 0)
        acc_store_recent_decisions(c->store,
                                   !state                        ? TPC_OUTCOME_NONE
                                   : !strcmp(state, "committed") ? TPC_OUTCOME_COMMITTED
                                                                 : TPC_OUTCOME_ABORTED,
                                   COORD_LIST_MAX, list_decided, l.list);
    *status = 200;
    return json_pack("{s:o}", "transactions", l.list);
}

enum tpc_err coord_wait_parse(json_t *v, enum coord_wait *wait, struct api_error *e)
{
    const char *s = json_string_value(v);

    *wait = COORD_WAIT_DECIDED;
    if (!v || (s && !strcmp(s, "decided")))
        return TPC_OK;
    if (s && !strcmp(s, "applied")) {
        *wait = COORD_WAIT_APPLIED;
        return TPC_OK;
    }
    api_error_set(e, "bad_request", "\"wait\" is \"decided\" or \"applied\"");
    return TPC_ERR_INVALID;
}

static struct replica_stats stats_of(struct coord *c, size_t *live)
{
    struct replica_stats s;

    s = c->eng.drv.stats;
    *live = replica_size(&c->eng.drv);
    return s;
}

json_t *coord_health(struct coord *c)
{
    uint64_t fsyncs, groups, jobs;
    size_t live;
    struct replica_stats s = stats_of(c, &live);

    acc_store_stats(c->store, &fsyncs, &groups, &jobs);
    return json_pack("{s:s,s:I,s:I,s:I,s:{s:I,s:I},s:I,s:I,s:{s:I,s:I,s:I}}", "status", "ok",
                     "replica", (json_int_t)c->cfg.self, "replicas", (json_int_t)c->cfg.n_replicas,
                     "transactions", (json_int_t)live, "decided", "committed",
                     (json_int_t)s.committed, "aborted", (json_int_t)s.aborted, "recoveries",
                     (json_int_t)s.recoveries, "recovered_for_others",
                     (json_int_t)s.recovered_foreign, "storage", "fsyncs", (json_int_t)fsyncs,
                     "commit_groups", (json_int_t)groups, "durable_jobs", (json_int_t)jobs);
}

void coord_metrics(void *ctx, struct metrics_text *t)
{
    struct coord *c = ctx;
    uint64_t fsyncs, groups, jobs;
    size_t live;
    struct replica_stats s = stats_of(c, &live);

    acc_store_stats(c->store, &fsyncs, &groups, &jobs);
    metrics_family(t, "tpc_transactions_total", "counter",
                   "Transactions this replica decided as their leader, by outcome.");
    metrics_sample(t, "tpc_transactions_total", "outcome=\"committed\"", s.committed);
    metrics_sample(t, "tpc_transactions_total", "outcome=\"aborted\"", s.aborted);
    metrics_family(t, "tpc_transactions_live", "gauge",
                   "Transactions this replica holds in memory.");
    metrics_sample(t, "tpc_transactions_live", NULL, live);
    metrics_counter(t, "tpc_recoveries_total",
                    "Recovery rounds (phase 1 with a new ballot) started here.", s.recoveries);
    metrics_counter(t, "tpc_recovered_for_others_total",
                    "Transactions another replica began that this one recovered.",
                    s.recovered_foreign);
    metrics_histogram(t, "tpc_commit_duration_seconds",
                      "Client commit calls on this replica, from request to answer.",
                      &c->commit_time);
    metrics_counter(t, "tpc_expired_refused_total",
                    "Recoveries not started, or undecided transactions let go of: older than the "
                    "retention.",
                    c->eng.drv.expired_refused);
    metrics_counter(t, "tpc_forgotten_rows_total",
                    "Rows of transactions older than the retention removed from the state file.",
                    c->eng.forgotten);
    metrics_counter(t, "tpc_commit_groups_total",
                    "SQLite transactions of the acceptor store (each one fsync group).", groups);
    metrics_counter(t, "tpc_durable_jobs_total",
                    "Durable writes (acceptor records, decisions) carried by those groups.", jobs);
    fsync_vfs_metrics(t);
    http_client_metrics(t);
}
/* ---- the protocol endpoint ---- */

/* On the loop: the acceptor's records are durable (or not); answers the batch. */
static void paxos_back(void *arg)
{
    struct creq *q = arg;
    size_t i;

    request_out_back(q);
    if (q->op.rc == TPC_OK)
        for (i = 0; i < q->op.n; i++)
            if (q->out[i].type)
                json_array_append_new(q->answers, codec_encode(&q->out[i]));
    request_reply(q, 200, json_pack("{s:O}", "messages", q->answers), NULL);
}

void coord_paxos(struct coord *c, const struct msg *in, size_t n, struct http_later *later)
{
    struct creq *q = request_new(c, CREQ_PAXOS, later);
    struct nodert_box answers = {0};
    struct node_addr caller = node_caller(0);
    char err[256];
    size_t i, n_acc = 0;

    if (!q)
        return;
    q->in = calloc(n ? n : 1, sizeof(*q->in));
    q->out = calloc(n ? n : 1, sizeof(*q->out));
    q->answers = json_array();
    if (!q->in || !q->out || !q->answers) {
        request_error(q, "internal", "out of memory");
        return;
    }
    /* The driver: questions, outcomes of other replicas, answers for a leader here. Its
     * answers to the caller go back in this response. */
    engine_enter(&c->eng);
    for (i = 0; i < n; i++) {
        if (in[i].type == MSG_PHASE1A || in[i].type == MSG_PHASE2A)
            q->in[n_acc++] = in[i];
        else if (replica_receive(&c->eng.drv, &caller, &in[i], err, sizeof(err)) != TPC_OK)
            log_warn("%s: %s refused: %s", in[i].txid, msg_type_name(in[i].type), err);
    }
    engine_leave(&c->eng, &answers);
    for (i = 0; i < answers.n; i++)
        json_array_append_new(q->answers, codec_encode(&answers.items[i].m));
    nodert_box_free(&answers);
    if (!n_acc) {
        request_reply(q, 200, json_pack("{s:O}", "messages", q->answers), NULL);
        return;
    }
    /* The acceptor: its records and answers are one durable step (acceptor.h rule 3). */
    q->op.kind = ACC_OP_HANDLE;
    q->op.in = q->in;
    q->op.out = q->out;
    q->op.n = n_acc;
    request_post_op(q, paxos_back);
}

static void coord_tick(void *arg)
{
    struct coord *c = arg;

    loop_timer_at(c->loop, &c->tick, loop_now_ms() + COORD_TICK_MS);
    coord_client_sweep(c, false);
}

/* ---- start, stop ---- */

enum tpc_err coord_open(const struct coord_config *cfg, struct loop *loop, struct coord **out,
                        char *err, size_t errlen)
{
    struct coord *c = calloc(1, sizeof(*c));
    enum tpc_err rc;

    *out = NULL;
    if (!c)
        return TPC_ERR_NOMEM;
    c->cfg = *cfg;
    c->loop = loop;
    c->tick.fn = coord_tick;
    c->tick.arg = c;
    rc = txmap_init(&c->waiting);
    if (rc)
        goto fail;
    rc = acc_store_open(cfg->db_path, cfg->self, cfg->n_replicas, cfg->retention_ms, &c->store, err,
                        errlen);
    if (rc)
        goto fail;
    c->eng_up = true;
    rc = engine_open(&c->eng, &c->cfg, c->store, loop, coord_client_changed, c, err, errlen);
    if (rc)
        goto fail;
    loop_timer_at(loop, &c->tick, loop_now_ms() + COORD_TICK_MS);
    *out = c;
    return TPC_OK;
fail:
    coord_close(c);
    return rc;
}

void coord_shutdown(struct coord *c)
{
    int64_t until = loop_now_ms() + 10000;

    if (!c || c->stopped)
        return;
    c->stopping = true;
    loop_timer_stop(c->loop, &c->tick);
    /* Calls out are cut off now (their requests are answered shutting_down); store operations
     * come back through the loop's queue and answer theirs. */
    if (c->eng_up)
        engine_stop(&c->eng);
    while ((c->out || (c->eng_up && engine_busy(&c->eng))) && loop_now_ms() < until)
        loop_run_posted(c->loop, 100);
    if (c->out) {
        struct creq *q;

        log_error("%zu requests still wait for a write; the server answers them", c->out);
        for (q = c->outs; q; q = q->out_next)
            q->later = NULL; /* their write may still come back: it must not answer */
    }
    /* What still waits for the driver is answered with what it knows now. */
    coord_client_sweep(c, true);
    c->stopped = true;
}

void coord_close(struct coord *c)
{
    if (!c)
        return;
    if (c->waiting.bucket)
        coord_shutdown(c);
    if (c->eng_up)
        engine_close(&c->eng);
    if (c->waiting.bucket)
        txmap_fini(&c->waiting);
    acc_store_close(c->store);
    free(c);
}

const struct coord_config *coord_config(const struct coord *c)
{
    return &c->cfg;
}
