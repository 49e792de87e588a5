/*
 * coord_client.c - the client's calls on a coordinator replica (coord.h): begin (with its
 * first statement or not), exec (forwarded to the participant), commit, abort, oneshot; and
 * the waiting lists where commits and aborts wait for the driver's answer, checked whenever
 * the engine reports that their transaction changed and at every tick for their deadline.
 * A client is answered what the driver answered it (replica_view's answer), which is only
 * ever a chosen outcome (replica.h rule 1).
 */
#include "request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "codec.h"
#include "log.h"

/* ---- waiting for the driver ---- */

static void oneshot_next(struct creq *q);
static void oneshot_failed(struct creq *q, bool known, const struct replica_view *v);
static void exec_start(struct creq *q, json_t *body);

/* Whether q is answered (or given up) now; answers it then. */
static bool wait_check(struct creq *q, bool expired)
{
    struct coord *c = q->c;
    struct replica_view v;
    struct api_error e = {0};
    int status = 0;
    json_t *r;
    bool known = replica_view(&c->eng.drv, q->txid, &v);
    bool applied = q->wait == COORD_WAIT_APPLIED && !q->aborting;

    if (known && (v.answer == TPC_OUTCOME_NONE || (applied && !v.applied)) && !expired)
        return false;
    if (q->aborting) {
        oneshot_failed(q, known, &v);
        return true;
    }
    if (!known) {
        r = request_ended(c, q->txid, &status, &e);
    } else if (v.answer != TPC_OUTCOME_NONE) {
        status = 200;
        r = request_outcome_json(q->txid, v.answer, &v.parts);
    } else {
        r = NULL;
        api_error_set(&e, "undecided",
                      "transaction %s is not decided yet (too few replicas or participants "
                      "answer); it is never given a wrong outcome: ask for its status later",
                      q->txid);
    }
    if (r && q->kind == CREQ_ONESHOT) {
        json_object_set(r, "results", q->results);
    }
    request_reply(q, status, r, &e);
    return true;
}

/* Waits for txid's answer (unless it is there already). */
static void wait_add(struct creq *q)
{
    struct coord *c = q->c;
    struct waitlist *w;

    if (wait_check(q, c->stopping))
        return;
    q->until = loop_now_ms() + c->cfg.commit_ms;
    w = (struct waitlist *)txmap_get(&c->waiting, q->txid);
    if (!w) {
        w = calloc(1, sizeof(*w));
        if (w) {
            memcpy(w->e.id, q->txid, sizeof(w->e.id));
            if (txmap_add(&c->waiting, &w->e) != TPC_OK) {
                free(w);
                w = NULL;
            }
        }
        if (!w) {
            wait_check(q, true);
            return;
        }
    }
    q->next_waiter = w->head;
    w->head = q;
    c->n_waiting++;
}

/* Checks the requests waiting on w; expired: answer them whatever the state. */
static void wait_run(struct coord *c, struct waitlist *w, bool expired_all, int64_t now)
{
    struct creq **p = &w->head, *q;

    while ((q = *p)) {
        *p = q->next_waiter; /* unlinked while checked: an answer frees it */
        if (wait_check(q, expired_all || now >= q->until)) {
            c->n_waiting--;
            continue;
        }
        *p = q;
        p = &q->next_waiter;
    }
    if (!w->head) {
        txmap_del(&c->waiting, &w->e);
        free(w);
    }
}

void coord_client_wait(struct creq *q)
{
    wait_add(q);
}

void coord_client_changed(void *ctx, const char *txid)
{
    struct coord *c = ctx;
    struct waitlist *w = (struct waitlist *)txmap_get(&c->waiting, txid);

    if (w)
        wait_run(c, w, false, loop_now_ms());
}

struct sweep {
    struct coord *c;
    int64_t now;
    bool all;
};

static void sweep_one(void *ctx, struct txmap_entry *en)
{
    struct sweep *s = ctx;

    wait_run(s->c, (struct waitlist *)en, s->all, s->now);
}

void coord_client_sweep(struct coord *c, bool all)
{
    struct sweep s = {c, loop_now_ms(), all};

    if (c->n_waiting)
        txmap_each(&c->waiting, sweep_one, &s);
}

/* ---- begin ---- */

static void begin_finish(struct creq *q)
{
    struct coord *c = q->c;
    enum tpc_err rc;

    engine_enter(&c->eng);
    rc = replica_begin(&c->eng.drv, q->txid, q->timeout_ms, 0);
    engine_leave(&c->eng, NULL);
    if (rc == TPC_ERR_STATE) {
        request_error(q, "txid_exists", "transaction %s exists", q->txid);
        return;
    }
    if (rc) {
        request_error(q, "internal", "cannot begin %s: %s", q->txid, tpc_strerror(rc));
        return;
    }
    if (q->kind == CREQ_ONESHOT) {
        oneshot_next(q);
        return;
    }
    if (q->first) { /* the first statement rides on the begin: exec_back answers */
        exec_start(q, q->first);
        return;
    }
    request_reply(q, 201,
                  json_pack("{s:s,s:s,s:I}", "txid", q->txid, "state", "active", "timeout_ms",
                            (json_int_t)q->timeout_ms),
                  NULL);
}

/* On the loop: a client's txid is written down (or not). */
static void begun_back(void *arg)
{
    struct creq *q = arg;

    request_out_back(q);
    if (q->c->stopping) {
        request_error(q, "shutting_down", "the replica is stopping");
        return;
    }
    if (q->op.rc != TPC_OK) {
        request_error(q, "internal", "cannot record that %s is begun", q->txid);
        return;
    }
    if (!q->op.fresh) {
        request_error(q, "txid_exists", "transaction %s was begun here before", q->txid);
        return;
    }
    begin_finish(q);
}

/* Reads begin's body into q (txid, timeout); false: answered with the error. */
static bool begin_parse(struct creq *q, json_t *body)
{
    struct coord *c = q->c;
    struct msg_parts known;
    uint64_t born;
    enum tpc_outcome o;
    json_t *v;
    const char *key;
    unsigned char raw[10];
    char *txid = q->txid;
    size_t i;

    q->timeout_ms = c->cfg.txn_ms;
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "txid") && strcmp(key, "timeout_ms") &&
            (strcmp(key, "exec") || q->kind != CREQ_BEGIN)) {
            request_error(q, "bad_request", "unknown key \"%s\" (use txid, timeout_ms%s)", key,
                          q->kind == CREQ_BEGIN ? ", exec" : "");
            return false;
        }
    }
    v = json_object_get(body, "exec");
    if (v && !json_is_object(v)) {
        request_error(q, "bad_request",
                      "\"exec\" is the first statement, as the body of an exec: {\"participant\": "
                      "..., \"sql\": ...}");
        return false;
    }
    key = v ? json_string_value(json_object_get(v, "participant")) : NULL;
    if (v && (!key || !config_participant_url(&c->cfg, key))) {
        request_error(q, "unknown_participant",
                      "\"participant\" must name one of the participants in the cluster file");
        return false; /* nothing begun */
    }
    if (v)
        q->first = json_incref(v);
    v = json_object_get(body, "timeout_ms");
    if (v) {
        /* Decided long before it is forgotten: at most half the retention (config.h). */
        json_int_t max = c->cfg.retention_ms / 2 < 86400000 ? c->cfg.retention_ms / 2 : 86400000;

        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > max) {
            request_error(q, "bad_request",
                          "timeout_ms must be 1..%lld (at most half the cluster's retention_ms)",
                          (long long)max);
            return false;
        }
        q->timeout_ms = (uint32_t)json_integer_value(v);
    }
    v = json_object_get(body, "txid");
    if (v) {
        /* A transaction is led by the replica that began it, so a txid must never be begun on
         * two replicas: a client's id gets this replica's prefix, "r<id>-". */
        int n = snprintf(txid, sizeof(q->txid), "r%u-%s", c->cfg.self,
                         json_is_string(v) ? json_string_value(v) : "");

        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
            json_string_length(v) == 0 || n < 0 || (size_t)n >= sizeof(q->txid) ||
            !msg_txid_valid(txid)) {
            request_error(q, "bad_txid",
                          "txid must be 1..%d characters of [A-Za-z0-9_-] (this replica adds its "
                          "prefix r%u-, and a txid has %d at most)",
                          TPC_TXID_MAX - snprintf(NULL, 0, "r%u-", c->cfg.self), c->cfg.self,
                          TPC_TXID_MAX);
            return false;
        }
    } else {
        if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
            request_error(q, "internal", "no randomness for a transaction id");
            return false;
        }
        snprintf(txid, sizeof(q->txid), "tx-");
        for (i = 0; i < sizeof(raw); i++)
            snprintf(txid + 3 + 2 * i, 3, "%02x", raw[i]);
    }
    if (acc_store_decision(c->store, txid, &o, NULL, NULL) == TPC_OK && o != TPC_OUTCOME_NONE) {
        request_error(q, "txid_exists", "transaction %s already %s", txid, msg_outcome_name(o));
        return false;
    }
    if (acc_store_parts(c->store, txid, &known, &born) == TPC_OK && known.n) {
        request_error(q, "txid_exists", "transaction %s is known already", txid);
        return false;
    }
    return true;
}

/* Begins the transaction body asks for; then answers (begin) or runs its branches (oneshot). */
static void begin_start(struct creq *q, json_t *body)
{
    if (!begin_parse(q, body))
        return;
    /* A client's own id is taken once per replica, crashes or not: written down before the
     * transaction can reach anyone (a generated id is new by construction). */
    if (json_object_get(body, "txid")) {
        q->op.kind = ACC_OP_BEGIN;
        memcpy(q->op.txid, q->txid, sizeof(q->op.txid));
        request_post_op(q, begun_back);
        return;
    }
    begin_finish(q);
}

void coord_begin(struct coord *c, json_t *body, struct http_later *later)
{
    struct creq *q = request_new(c, CREQ_BEGIN, later);

    if (q)
        begin_start(q, body);
}
/* ---- exec ---- */

/* Answers an exec's error; a begin that carried it was begun: the client needs its txid. */
static void reply_exec_error(struct creq *q, const struct api_error *e)
{
    json_t *body = q->kind == CREQ_BEGIN ? json_pack("{s:{s:s,s:s},s:s}", "error", "code", e->code,
                                                     "message", e->message, "txid", q->txid)
                                         : NULL;

    request_reply(q, body ? e->status : 0, body, e);
}

static void exec_back(struct http_call *call)
{
    struct creq *q = call->arg;
    json_t *r = NULL;

    request_out_back(q);
    if (q->c->stopping) { /* cut off, or answered while stopping: nothing goes on */
        struct api_error e;

        api_error_set(&e, "shutting_down", "the replica is stopping");
        reply_exec_error(q, &e);
        return;
    }
    if (call->err == TPC_OK)
        r = json_loadb(call->response, call->response_len, 0, NULL);
    if (q->kind == CREQ_ONESHOT) {
        if (r && call->status == 200) {
            json_array_append_new(q->results, r);
            q->step++;
            oneshot_next(q);
            return;
        }
        q->failed = r ? r
                      : json_pack("{s:{s:s,s:s}}", "error", "code", "participant_unavailable",
                                  "message", call->err ? call->error : "answer is not JSON");
        q->failed_status = r ? (int)call->status : 502;
        oneshot_failed(q, true, NULL);
        return;
    }
    if (!r) {
        struct api_error e;

        api_error_set(&e, "participant_unavailable", "participant %s: %s", q->participant,
                      call->err ? call->error : "answer is not JSON");
        reply_exec_error(q, &e);
        return;
    }
    if (q->kind == CREQ_BEGIN) { /* begun, with its first statement's answer */
        json_object_set_new(r, "txid", json_string(q->txid));
        if (call->status == 200) {
            json_object_set_new(r, "state", json_string("active"));
            json_object_set_new(r, "timeout_ms", json_integer((json_int_t)q->timeout_ms));
            request_reply(q, 201, r, NULL);
            return;
        }
    }
    request_reply(q, (int)call->status, r, NULL); /* the participant's own answer, as it is */
}

/* Enlists body's participant and forwards body to it; exec_back answers. */
static void exec_start(struct creq *q, json_t *body)
{
    struct coord *c = q->c;
    const char *name = json_string_value(json_object_get(body, "participant")), *url;
    struct replica_view v;
    struct api_error e = {0};
    enum tpc_err rc = TPC_OK;
    int status = 0;
    json_t *fwd, *r;
    bool known;

    if (c->stopping) {
        api_error_set(&e, "shutting_down", "the replica is stopping");
        reply_exec_error(q, &e);
        return;
    }
    url = name ? config_participant_url(&c->cfg, name) : NULL;
    engine_enter(&c->eng);
    known = replica_view(&c->eng.drv, q->txid, &v);
    if (known && url)
        rc = replica_enlist(&c->eng.drv, q->txid, name);
    engine_leave(&c->eng, NULL);
    if (!known) {
        r = request_ended(c, q->txid, &status, &e);
        if (r) {
            json_decref(r);
            api_error_set(&e, "transaction_ended", "transaction %s has ended", q->txid);
        }
    } else if (!url) {
        api_error_set(&e, "unknown_participant",
                      "\"participant\" must name one of the participants in the cluster file");
    } else if (rc == TPC_ERR_STATE) {
        api_error_set(&e, "transaction_not_active", "transaction %s is %s", q->txid,
                      request_state_word(&v));
    } else if (rc == TPC_ERR_RANGE) {
        api_error_set(&e, "too_many_participants", "at most %d participants", TPC_MAX_PARTICIPANTS);
    } else if (rc) {
        api_error_set(&e, "internal", "cannot enlist %s: %s", name, tpc_strerror(rc));
    }
    if (e.status) {
        json_t *err = json_pack("{s:{s:s,s:s}}", "error", "code", e.code, "message", e.message);

        if (q->kind == CREQ_ONESHOT) {
            q->failed = err;
            q->failed_status = e.status;
            oneshot_failed(q, true, NULL);
        } else {
            json_decref(err);
            reply_exec_error(q, &e);
        }
        return;
    }
    snprintf(q->participant, sizeof(q->participant), "%s", name);
    fwd = json_deep_copy(body);
    if (fwd)
        json_object_del(fwd, "participant");
    free(q->text);
    q->text = fwd ? json_dumps(fwd, JSON_COMPACT) : NULL;
    json_decref(fwd);
    if (!q->text) {
        request_error(q, "internal", "out of memory");
        return;
    }
    /* The branch gets the transaction's own deadline (plus a second, so that it does not race
     * the leader's abort): if the leader vanishes, the participant frees the branch's rows
     * then, not after its own --branch-timeout-ms. */
    /* And its born, so that the branch's end is forgotten with the transaction (DESIGN.md
     * section 11). */
    if (v.deadline > (uint64_t)nodert_now_ms())
        snprintf(q->url, sizeof(q->url), "%s/v1/branches/%s/exec?timeout_ms=%llu&born=%llu", url,
                 q->txid, (unsigned long long)(v.deadline - (uint64_t)nodert_now_ms() + 1000),
                 (unsigned long long)v.born);
    else
        snprintf(q->url, sizeof(q->url), "%s/v1/branches/%s/exec?born=%llu", url, q->txid,
                 (unsigned long long)v.born);
    free(q->call.response);
    memset(&q->call, 0, sizeof(q->call));
    q->call.url = q->url;
    q->call.body = q->text;
    q->call.body_len = strlen(q->text);
    q->call.timeout_ms = c->cfg.commit_ms;
    q->call.done = exec_back;
    q->call.arg = q;
    request_out_add(q);
    http_agent_post(c->eng.agent, &q->call);
}

void coord_exec(struct coord *c, const char *txid, json_t *body, struct http_later *later)
{
    struct creq *q = request_new(c, CREQ_EXEC, later);

    if (!q)
        return;
    memcpy(q->txid, txid, sizeof(q->txid));
    exec_start(q, body);
}
/* ---- commit, abort ---- */

static void commit_start(struct creq *q)
{
    struct coord *c = q->c;
    struct api_error e = {0};
    int status = 0;
    enum tpc_err rc;
    json_t *r;

    engine_enter(&c->eng);
    rc = replica_commit(&c->eng.drv, q->txid, engine_relay_targets(&c->eng));
    engine_leave(&c->eng, NULL);
    if (rc) {
        r = request_ended(c, q->txid, &status, &e);
        if (r && q->kind == CREQ_ONESHOT)
            json_object_set(r, "results", q->results);
        request_reply(q, status, r, &e);
        return;
    }
    wait_add(q);
}

void coord_commit(struct coord *c, const char *txid, enum coord_wait wait, struct http_later *later)
{
    struct creq *q = request_new(c, CREQ_COMMIT, later);

    if (!q)
        return;
    memcpy(q->txid, txid, sizeof(q->txid));
    q->wait = wait;
    commit_start(q);
}

/* Starts an abort of q's transaction; false when it cannot be (*e says why, or the
 * transaction ended: then *status and the returned *ended are set). */
static bool abort_start(struct creq *q, int *status, json_t **ended, struct api_error *e)
{
    struct coord *c = q->c;
    enum tpc_err rc;

    engine_enter(&c->eng);
    rc = replica_abort(&c->eng.drv, q->txid);
    engine_leave(&c->eng, NULL);
    if (rc == TPC_ERR_STATE) {
        api_error_set(e, "commit_in_progress", "transaction %s is being committed", q->txid);
        return false;
    }
    if (rc) {
        *ended = request_ended(c, q->txid, status, e);
        return false;
    }
    return true;
}

void coord_abort(struct coord *c, const char *txid, struct http_later *later)
{
    struct creq *q = request_new(c, CREQ_ABORT, later);
    struct api_error e = {0};
    json_t *ended = NULL;
    int status = 0;

    if (!q)
        return;
    memcpy(q->txid, txid, sizeof(q->txid));
    if (!abort_start(q, &status, &ended, &e)) {
        request_reply(q, status, ended, &e);
        return;
    }
    wait_add(q);
}
/* ---- oneshot: begin, each branch, commit ---- */

static void oneshot_next(struct creq *q)
{
    json_t *b;

    if (q->step == json_array_size(q->branches)) {
        commit_start(q);
        return;
    }
    b = json_array_get(q->branches, q->step);
    if (!json_is_object(b)) {
        q->failed = json_pack("{s:{s:s,s:s}}", "error", "code", "bad_request", "message",
                              "a branch is not an object");
        q->failed_status = 400;
        oneshot_failed(q, true, NULL);
        return;
    }
    exec_start(q, b);
}

/*
 * A branch failed: the transaction is aborted, then answered with the branch's error. Called
 * first with v NULL (starts the abort), then by the wait when the abort is decided or its
 * time is up (known, v: the driver's view then).
 */
static void oneshot_failed(struct creq *q, bool known, const struct replica_view *v)
{
    const char *outcome = "undecided";
    struct api_error e = {0};
    json_t *ended = NULL;
    int status = 0;

    if (!v && !q->aborting) {
        q->aborting = true;
        if (abort_start(q, &status, &ended, &e)) {
            wait_add(q);
            return;
        }
        if (ended)
            outcome = json_string_value(json_object_get(ended, "outcome"));
    } else if (known && v->answer != TPC_OUTCOME_NONE) {
        outcome = msg_outcome_name(v->answer);
    } else if (!known) {
        ended = request_ended(q->c, q->txid, &status, &e);
        if (ended)
            outcome = json_string_value(json_object_get(ended, "outcome"));
    }
    status = q->failed_status;
    request_reply(q, status,
                  json_pack("{s:s,s:s,s:I,s:O}", "txid", q->txid, "outcome", outcome,
                            "failed_branch", (json_int_t)q->step, "error", q->failed),
                  NULL);
    json_decref(ended);
}

void coord_oneshot(struct coord *c, json_t *body, struct http_later *later)
{
    json_t *branches = json_object_get(body, "branches"), *begin, *v;
    struct creq *q = request_new(c, CREQ_ONESHOT, later);
    struct api_error e = {0};
    const char *key;

    if (!q)
        return;
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "txid") && strcmp(key, "timeout_ms") && strcmp(key, "branches") &&
            strcmp(key, "wait")) {
            request_error(q, "bad_request", "unknown key \"%s\"", key);
            return;
        }
    }
    if (coord_wait_parse(json_object_get(body, "wait"), &q->wait, &e) != TPC_OK) {
        request_reply(q, 0, NULL, &e);
        return;
    }
    /* The client's txid is what makes a retry safe: a repeat finds it taken (409) instead of
     * running the whole transaction a second time. */
    if (!json_object_get(body, "txid")) {
        request_error(q, "bad_request",
                      "a oneshot needs a \"txid\" of the client's (a retry with it runs nothing "
                      "again)");
        return;
    }
    if (!json_is_array(branches) || json_array_size(branches) == 0) {
        request_error(q, "bad_request",
                      "\"branches\" must be a non-empty array of "
                      "{\"participant\": ..., \"statements\": [...]}");
        return;
    }
    q->branches = json_incref(branches);
    q->results = json_array();
    begin = json_deep_copy(body);
    if (!begin || !q->results) {
        json_decref(begin);
        request_error(q, "internal", "out of memory");
        return;
    }
    json_object_del(begin, "branches");
    json_object_del(begin, "wait");
    begin_start(q, begin);
    json_decref(begin);
}
