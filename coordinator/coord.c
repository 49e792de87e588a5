/*
 * coord.c - see coord.h. The client API, the protocol endpoint and the
 * replica's health and metrics, over the replica driver that engine.c runs.
 *
 * Every call on a transaction is an event for the driver (replica.h), fed
 * under the driver's lock; what the driver asks for is carried out by the
 * calling thread until the call can be answered, and handed to the engine's
 * workers after. A client is answered what the driver answered it
 * (replica_view's answer), which is only ever a chosen outcome (replica.h
 * rule 1).
 */
#include "coord.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "acc_store.h"
#include "codec.h"
#include "engine.h"
#include "fsync_vfs.h"
#include "http_client.h"
#include "api_error.h"
#include "log.h"

struct coord {
    struct coord_config cfg;
    struct acc_store *store;
    struct engine eng;
    struct metrics_hist commit_time; /* client commit calls, from request to answer */
};

static const char *const state_names[] = {"active", "preparing", "in_doubt", "decided"};

static const char *state_word(const struct replica_view *v)
{
    return v->state == REPLICA_DECIDED ? msg_outcome_name(v->outcome) : state_names[v->state];
}

static json_t *outcome_json(const char *txid, enum tpc_outcome o, const struct msg_parts *parts)
{
    json_t *j = json_pack("{s:s,s:s,s:s}", "txid", txid, "state", msg_outcome_name(o), "outcome",
                          msg_outcome_name(o));

    if (j && parts && parts->n)
        json_object_set_new(j, "participants", codec_encode_parts(parts));
    return j;
}

/* The decision of a transaction no longer (or never) in memory, as an answer. */
static json_t *ended_or_unknown(struct coord *c, const char *txid, int *status, struct api_error *e)
{
    struct msg_parts parts;
    enum tpc_outcome o;

    if (acc_store_decision(c->store, txid, &o, &parts) == TPC_OK && o != TPC_OUTCOME_NONE) {
        *status = 200;
        return outcome_json(txid, o, &parts);
    }
    api_error_set(e, "unknown_transaction", "no transaction %s at this replica", txid);
    return NULL;
}

/*
 * Carries out box until the driver has answered txid's client (with applied: and every
 * participant acknowledged), or until `until`. Fills *v and returns whether txid is still in
 * memory; what is left of box goes to the workers.
 */
static bool await(struct coord *c, const char *txid, struct nodert_box *box, int64_t until,
                  bool applied, struct replica_view *v)
{
    struct nodert *rt = &c->eng.rt;
    bool known, done;

    for (;;) {
        nodert_enter(rt, box);
        known = replica_view(&c->eng.drv, txid, v);
        done = !known || (v->answer != TPC_OUTCOME_NONE && (!applied || v->applied));
        /* Nothing of its own to carry out: another thread's work (a worker, the ticker's
         * resends) moves it on; wait for that. */
        while (!done && !box->n && nodert_wait(rt, box, until)) {
            known = replica_view(&c->eng.drv, txid, v);
            done = !known || (v->answer != TPC_OUTCOME_NONE && (!applied || v->applied));
        }
        nodert_leave(rt);
        if (done || nodert_now_ms() >= until)
            break;
        engine_round(&c->eng, box, NULL);
    }
    nodert_hand_off(rt, box);
    return known;
}

json_t *coord_begin(struct coord *c, json_t *body, int *status, struct api_error *e)
{
    char txid[TPC_TXID_MAX + 1];
    struct msg_parts known;
    struct nodert_box box = {0};
    json_t *v;
    enum tpc_outcome o;
    enum tpc_err rc;
    uint32_t timeout = c->cfg.txn_ms;
    const char *key;
    unsigned char raw[10];
    size_t i;

    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "txid") && strcmp(key, "timeout_ms")) {
            api_error_set(e, "bad_request", "unknown key \"%s\" (use txid, timeout_ms)", key);
            return NULL;
        }
    }
    v = json_object_get(body, "timeout_ms");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 86400000) {
            api_error_set(e, "bad_request", "timeout_ms must be 1..86400000");
            return NULL;
        }
        timeout = (uint32_t)json_integer_value(v);
    }
    v = json_object_get(body, "txid");
    if (v) {
        /* A transaction is led by the replica that began it, so a txid must never be begun on
         * two replicas: a client's id gets this replica's prefix, "r<id>-". */
        int n = snprintf(txid, sizeof(txid), "r%u-%s", c->cfg.self,
                         json_is_string(v) ? json_string_value(v) : "");

        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
            json_string_length(v) == 0 || n < 0 || (size_t)n >= sizeof(txid) ||
            !msg_txid_valid(txid)) {
            api_error_set(e, "bad_txid",
                          "txid must be 1..%d characters of [A-Za-z0-9_-] (the replica adds its "
                          "prefix r<id>-)",
                          TPC_TXID_MAX - 4);
            return NULL;
        }
    } else {
        if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
            api_error_set(e, "internal", "no randomness for a transaction id");
            return NULL;
        }
        snprintf(txid, sizeof(txid), "tx-");
        for (i = 0; i < sizeof(raw); i++)
            snprintf(txid + 3 + 2 * i, 3, "%02x", raw[i]);
    }
    if (acc_store_decision(c->store, txid, &o, NULL) == TPC_OK && o != TPC_OUTCOME_NONE) {
        api_error_set(e, "txid_exists", "transaction %s already %s", txid, msg_outcome_name(o));
        return NULL;
    }
    if (acc_store_parts(c->store, txid, &known) == TPC_OK && known.n) {
        api_error_set(e, "txid_exists", "transaction %s is known already", txid);
        return NULL;
    }
    /* A client's own id is taken once per replica, crashes or not: written down before the
     * transaction can reach anyone (a generated id is new by construction). */
    if (v) {
        bool fresh;

        if (acc_store_begin(c->store, txid, &fresh) != TPC_OK) {
            api_error_set(e, "internal", "cannot record that %s is begun", txid);
            return NULL;
        }
        if (!fresh) {
            api_error_set(e, "txid_exists", "transaction %s was begun here before", txid);
            return NULL;
        }
    }
    nodert_enter(&c->eng.rt, &box);
    rc = replica_begin(&c->eng.drv, txid, timeout);
    nodert_leave(&c->eng.rt);
    nodert_hand_off(&c->eng.rt, &box);
    if (rc == TPC_ERR_STATE) {
        api_error_set(e, "txid_exists", "transaction %s exists", txid);
        return NULL;
    }
    if (rc) {
        api_error_set(e, "internal", "cannot begin %s: %s", txid, tpc_strerror(rc));
        return NULL;
    }
    *status = 201;
    return json_pack("{s:s,s:s,s:I}", "txid", txid, "state", "active", "timeout_ms",
                     (json_int_t)timeout);
}

json_t *coord_exec(struct coord *c, const char *txid, json_t *body, int *status,
                   struct api_error *e)
{
    const char *name = json_string_value(json_object_get(body, "participant")), *url;
    struct nodert_box box = {0};
    struct replica_view v;
    struct http_client *hc = NULL;
    struct http_call call;
    char target[CONFIG_URL_MAX + 128];
    json_t *fwd = NULL, *r = NULL;
    char *text = NULL;
    enum tpc_err rc = TPC_OK;
    bool known;

    url = name ? config_participant_url(&c->cfg, name) : NULL;
    nodert_enter(&c->eng.rt, &box);
    known = replica_view(&c->eng.drv, txid, &v);
    if (known && url)
        rc = replica_enlist(&c->eng.drv, txid, name);
    nodert_leave(&c->eng.rt);
    nodert_hand_off(&c->eng.rt, &box);
    if (!known) {
        r = ended_or_unknown(c, txid, status, e);
        if (r) {
            json_decref(r);
            api_error_set(e, "transaction_ended", "transaction %s has ended", txid);
        }
        return NULL;
    }
    if (!url) {
        api_error_set(e, "unknown_participant",
                      "\"participant\" must name one of the participants in the cluster file");
        return NULL;
    }
    if (rc == TPC_ERR_STATE) {
        api_error_set(e, "transaction_not_active", "transaction %s is %s", txid, state_word(&v));
        return NULL;
    }
    if (rc == TPC_ERR_RANGE) {
        api_error_set(e, "too_many_participants", "at most %d participants", TPC_MAX_PARTICIPANTS);
        return NULL;
    }
    if (rc) {
        api_error_set(e, "internal", "cannot enlist %s: %s", name, tpc_strerror(rc));
        return NULL;
    }
    fwd = json_deep_copy(body);
    if (fwd)
        json_object_del(fwd, "participant");
    text = fwd ? json_dumps(fwd, JSON_COMPACT) : NULL;
    hc = http_pool_get(c->eng.pool);
    if (!text || !hc) {
        api_error_set(e, "internal", "out of memory");
        goto out;
    }
    snprintf(target, sizeof(target), "%s/v1/branches/%s/exec", url, txid);
    memset(&call, 0, sizeof(call));
    call.url = target;
    call.body = text;
    call.body_len = strlen(text);
    http_client_post_all(hc, &call, 1, c->cfg.commit_ms);
    if (call.err || !(r = json_loadb(call.response, call.response_len, 0, NULL))) {
        api_error_set(e, "participant_unavailable", "participant %s: %s", name,
                      call.err ? call.error : "answer is not JSON");
    } else {
        *status = (int)call.status; /* the participant's own answer, as it is */
    }
    free(call.response);
out:
    http_pool_put(c->eng.pool, hc);
    free(text);
    json_decref(fwd);
    return r;
}

json_t *coord_commit(struct coord *c, const char *txid, enum coord_wait wait, int *status,
                     struct api_error *e)
{
    struct nodert_box box = {0};
    struct replica_view v;
    uint64_t started = metrics_now_ns();
    enum tpc_err rc;
    json_t *r = NULL;

    nodert_enter(&c->eng.rt, &box);
    rc = replica_commit(&c->eng.drv, txid, engine_relay_targets(&c->eng));
    nodert_leave(&c->eng.rt);
    if (rc) {
        nodert_hand_off(&c->eng.rt, &box);
        return ended_or_unknown(c, txid, status, e);
    }
    if (!await(c, txid, &box, nodert_now_ms() + c->cfg.commit_ms, wait == COORD_WAIT_APPLIED, &v))
        return ended_or_unknown(c, txid, status, e);
    if (v.answer != TPC_OUTCOME_NONE) {
        *status = 200;
        r = outcome_json(txid, v.answer, &v.parts);
    } else {
        api_error_set(e, "undecided",
                      "transaction %s is not decided yet (too few replicas or participants "
                      "answer); it is never given a wrong outcome: ask for its status later",
                      txid);
    }
    metrics_hist_since(&c->commit_time, started);
    return r;
}

json_t *coord_abort(struct coord *c, const char *txid, int *status, struct api_error *e)
{
    struct nodert_box box = {0};
    struct replica_view v;
    enum tpc_err rc;

    nodert_enter(&c->eng.rt, &box);
    rc = replica_abort(&c->eng.drv, txid);
    nodert_leave(&c->eng.rt);
    if (rc == TPC_ERR_STATE) {
        nodert_hand_off(&c->eng.rt, &box);
        api_error_set(e, "commit_in_progress", "transaction %s is being committed", txid);
        return NULL;
    }
    if (rc) {
        nodert_hand_off(&c->eng.rt, &box);
        return ended_or_unknown(c, txid, status, e);
    }
    if (!await(c, txid, &box, nodert_now_ms() + c->cfg.commit_ms, false, &v))
        return ended_or_unknown(c, txid, status, e);
    if (v.answer != TPC_OUTCOME_NONE) {
        *status = 200;
        return outcome_json(txid, v.answer, &v.parts);
    }
    api_error_set(e, "undecided", "transaction %s is not decided yet; ask later", txid);
    return NULL;
}

json_t *coord_status(struct coord *c, const char *txid, int *status, struct api_error *e)
{
    struct replica_view v;
    struct msg_parts parts;
    enum tpc_outcome o;
    json_t *r;
    bool known;

    pthread_mutex_lock(&c->eng.rt.mu); /* a read: no event, nothing to carry out */
    known = replica_view(&c->eng.drv, txid, &v);
    pthread_mutex_unlock(&c->eng.rt.mu);
    if (known) {
        r = json_pack("{s:s,s:s}", "txid", txid, "state", state_word(&v));
        if (r && v.outcome != TPC_OUTCOME_NONE)
            json_object_set_new(r, "outcome", json_string(msg_outcome_name(v.outcome)));
        if (r && v.parts.n)
            json_object_set_new(r, "participants", codec_encode_parts(&v.parts));
        *status = 200;
        return r;
    }
    if (acc_store_decision(c->store, txid, &o, &parts) == TPC_OK && o != TPC_OUTCOME_NONE) {
        *status = 200;
        return outcome_json(txid, o, &parts);
    }
    /* Known to this acceptor but not decided here: in doubt; the sweep recovers it once
     * it is stale. */
    if (acc_store_parts(c->store, txid, &parts) == TPC_OK && parts.n) {
        *status = 200;
        return json_pack("{s:s,s:s,s:o}", "txid", txid, "state", "in_doubt", "participants",
                         codec_encode_parts(&parts));
    }
    api_error_set(e, "unknown_transaction", "no transaction %s at this replica", txid);
    return NULL;
}

struct list_ctx {
    json_t *list;
    int want; /* -1: every state */
};

static void list_live(void *ctx, const char *txid, const struct replica_view *v)
{
    struct list_ctx *l = ctx;

    if (v->state != REPLICA_DECIDED && (l->want < 0 || l->want == (int)v->state))
        json_array_append_new(l->list,
                              json_pack("{s:s,s:s}", "txid", txid, "state", state_names[v->state]));
}

static void list_decided(void *ctx, const char *txid, enum tpc_outcome o, int64_t at)
{
    json_array_append_new(ctx, json_pack("{s:s,s:s,s:I}", "txid", txid, "state",
                                         msg_outcome_name(o), "decided_at_ms", (json_int_t)at));
}

json_t *coord_list(struct coord *c, const char *state, int *status, struct api_error *e)
{
    struct list_ctx l = {json_array(), -1};
    int i;

    if (state) {
        for (i = 0; i < 3; i++)
            if (!strcmp(state, state_names[i]))
                l.want = i;
        if (l.want < 0 && strcmp(state, "committed") && strcmp(state, "aborted")) {
            json_decref(l.list);
            api_error_set(e, "bad_state",
                          "state is one of active, preparing, in_doubt, committed, aborted");
            return NULL;
        }
    }
    if (!state || l.want >= 0) {
        pthread_mutex_lock(&c->eng.rt.mu);
        replica_foreach(&c->eng.drv, list_live, &l);
        pthread_mutex_unlock(&c->eng.rt.mu);
    }
    if (!state || l.want < 0)
        acc_store_recent_decisions(c->store,
                                   !state                        ? TPC_OUTCOME_NONE
                                   : !strcmp(state, "committed") ? TPC_OUTCOME_COMMITTED
                                                                 : TPC_OUTCOME_ABORTED,
                                   1000, list_decided, l.list);
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

json_t *coord_oneshot(struct coord *c, json_t *body, int *status, struct api_error *e)
{
    json_t *branches = json_object_get(body, "branches"), *begin, *r, *results, *v;
    enum coord_wait wait;
    const char *txid, *key;
    int st = 0;
    size_t i;

    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "txid") && strcmp(key, "timeout_ms") && strcmp(key, "branches") &&
            strcmp(key, "wait")) {
            api_error_set(e, "bad_request", "unknown key \"%s\"", key);
            return NULL;
        }
    }
    if (coord_wait_parse(json_object_get(body, "wait"), &wait, e) != TPC_OK)
        return NULL;
    if (!json_is_array(branches) || json_array_size(branches) == 0) {
        api_error_set(e, "bad_request",
                      "\"branches\" must be a non-empty array of "
                      "{\"participant\": ..., \"statements\": [...]}");
        return NULL;
    }
    begin = json_deep_copy(body);
    if (!begin) {
        api_error_set(e, "internal", "out of memory");
        return NULL;
    }
    json_object_del(begin, "branches");
    json_object_del(begin, "wait");
    r = coord_begin(c, begin, &st, e);
    json_decref(begin);
    if (!r)
        return NULL;
    txid = json_string_value(json_object_get(r, "txid"));
    results = json_array();
    for (i = 0; i < json_array_size(branches); i++) {
        json_t *b = json_array_get(branches, i), *res;

        st = 0;
        res = json_is_object(b) ? coord_exec(c, txid, b, &st, e) : NULL;
        if (!json_is_object(b))
            api_error_set(e, "bad_request", "branches[%zu] is not an object", i);
        if (!res || st != 200) {
            struct api_error ae = {0};
            int ast = 0;
            json_t *ab = coord_abort(c, txid, &ast, &ae), *out;

            out = json_pack(
                "{s:s,s:s,s:I,s:o}", "txid", txid, "outcome",
                ab ? json_string_value(json_object_get(ab, "outcome")) : "undecided",
                "failed_branch", (json_int_t)i, "error",
                res ? res
                    : json_pack("{s:{s:s,s:s}}", "error", "code", e->code, "message", e->message));
            json_decref(ab);
            json_decref(results);
            json_decref(r);
            *status = res ? st : e->status;
            memset(e, 0, sizeof(*e));
            return out;
        }
        json_array_append_new(results, res);
    }
    v = coord_commit(c, txid, wait, &st, e);
    if (v)
        json_object_set_new(v, "results", results);
    else
        json_decref(results);
    json_decref(r);
    *status = st;
    return v;
}

static struct replica_stats stats_of(struct coord *c, size_t *live)
{
    struct replica_stats s;

    pthread_mutex_lock(&c->eng.rt.mu);
    s = c->eng.drv.stats;
    *live = replica_size(&c->eng.drv);
    pthread_mutex_unlock(&c->eng.rt.mu);
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
    metrics_counter(t, "tpc_commit_groups_total",
                    "SQLite transactions of the acceptor store (each one fsync group).", groups);
    metrics_counter(t, "tpc_durable_jobs_total",
                    "Durable writes (acceptor records, decisions) carried by those groups.", jobs);
    fsync_vfs_metrics(t);
    http_client_metrics(t);
}

/* ---- the protocol endpoint ---- */

json_t *coord_paxos(struct coord *c, const struct msg *in, size_t n)
{
    struct msg *acc_in = calloc(n ? n : 1, sizeof(*acc_in)), *acc_out = NULL;
    json_t *answers = json_array();
    struct nodert_box box = {0};
    struct node_addr caller = node_caller(0);
    char err[256];
    size_t i, n_acc = 0, kept = 0;

    if (!acc_in || !answers)
        goto out;
    /* The driver: questions, outcomes of other replicas, answers for a leader here. */
    nodert_enter(&c->eng.rt, &box);
    for (i = 0; i < n; i++) {
        if (in[i].type == MSG_PHASE1A || in[i].type == MSG_PHASE2A)
            acc_in[n_acc++] = in[i];
        else if (replica_receive(&c->eng.drv, &caller, &in[i], err, sizeof(err)) != TPC_OK)
            log_warn("%s: %s refused: %s", in[i].txid, msg_type_name(in[i].type), err);
    }
    nodert_leave(&c->eng.rt);
    /* Its answers to the caller go back in this response; the rest to the workers. */
    for (i = 0; i < box.n; i++) {
        if (!box.items[i].write && box.items[i].to.kind == NODE_CALLER)
            json_array_append_new(answers, codec_encode(&box.items[i].m));
        else
            box.items[kept++] = box.items[i];
    }
    box.n = kept;
    nodert_hand_off(&c->eng.rt, &box);
    /* The acceptor: its records and answers are one durable step (acceptor.h rule 3). */
    if (n_acc) {
        acc_out = calloc(n_acc, sizeof(*acc_out));
        if (acc_out && acc_store_handle(c->store, acc_in, n_acc, acc_out, NULL) == TPC_OK)
            for (i = 0; i < n_acc; i++)
                if (acc_out[i].type)
                    json_array_append_new(answers, codec_encode(&acc_out[i]));
    }
out:
    free(acc_in);
    free(acc_out);
    return json_pack("{s:o}", "messages", answers ? answers : json_array());
}

/* ---- start, stop ---- */

enum tpc_err coord_open(const struct coord_config *cfg, struct coord **out, char *err,
                        size_t errlen)
{
    struct coord *c = calloc(1, sizeof(*c));
    enum tpc_err rc;

    *out = NULL;
    if (!c)
        return TPC_ERR_NOMEM;
    c->cfg = *cfg;
    rc = acc_store_open(cfg->db_path, cfg->self, cfg->n_replicas, &c->store, err, errlen);
    if (rc)
        goto fail;
    rc = engine_open(&c->eng, &c->cfg, c->store, err, errlen);
    if (rc)
        goto fail;
    *out = c;
    return TPC_OK;
fail:
    coord_close(c);
    return rc;
}

void coord_close(struct coord *c)
{
    if (!c)
        return;
    engine_close(&c->eng);
    acc_store_close(c->store);
    free(c);
}

const struct coord_config *coord_config(const struct coord *c)
{
    return &c->cfg;
}
