/*
 * coord.c - see coord.h. The client API, the protocol endpoint and the
 * replica's health and metrics, over the replica driver that engine.c runs.
 *
 * Everything runs on the loop. A request is a struct creq that lives from the
 * handler to its answer: each step is an event for the driver (replica.h), or
 * a call or write that comes back as an event; a commit or abort waits in the
 * waiting list of its transaction, checked whenever the engine reports a change
 * of that transaction and at every tick for its deadline. A client is
 * answered what the driver answered it (replica_view's answer), which is only
 * ever a chosen outcome (replica.h rule 1).
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
#include "txmap.h"

#define COORD_TICK_MS 20

/* A request in progress. */
enum creq_kind { CREQ_BEGIN, CREQ_EXEC, CREQ_COMMIT, CREQ_ABORT, CREQ_ONESHOT, CREQ_PAXOS };

struct creq {
    struct coord *c;
    struct http_later *later;
    enum creq_kind kind;
    bool aborting; /* a oneshot whose branch failed: its abort is under way */
    char txid[TPC_TXID_MAX + 1];
    uint32_t timeout_ms;
    enum coord_wait wait;
    uint64_t started; /* ns, for the commit histogram */
    /* a oneshot; a begin's first statement (first) */
    json_t *branches, *results, *failed, *first; /* failed: the failing branch's answer */
    size_t step;
    int failed_status;
    /* a forwarded exec */
    struct http_call call;
    char url[CONFIG_URL_MAX + 128];
    char *text;
    char participant[TPC_NAME_MAX + 1];
    /* a write: begin with a client's txid, or the acceptor's batch of /v1/paxos */
    struct acc_op op;
    struct loop_msg back;
    struct msg *in, *out;
    json_t *answers;
    /* waiting for the driver's answer */
    int64_t until;
    struct creq *next_waiter;
    /* a call or write of its own is out (in c->outs) */
    struct creq *out_prev, *out_next;
};

/* The requests waiting on one transaction. */
struct waitlist {
    struct txmap_entry e;
    struct creq *head;
};

struct coord {
    struct coord_config cfg;
    struct loop *loop;
    struct acc_store *store;
    struct engine eng;
    struct txmap waiting; /* struct waitlist by txid */
    size_t n_waiting;
    size_t out;         /* requests with a call or write out */
    struct creq *outs;  /* those requests */
    struct loop_timer tick;
    struct metrics_hist commit_time; /* client commit calls, from request to answer */
    bool eng_up;
    bool stopping; /* coord_shutdown began: nothing new starts, requests are answered */
    bool stopped;
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

/* ---- requests ---- */

/* q has a call or write of its own out, until out_back. */
static void out_add(struct creq *q)
{
    struct coord *c = q->c;

    q->out_prev = NULL;
    q->out_next = c->outs;
    if (c->outs)
        c->outs->out_prev = q;
    c->outs = q;
    c->out++;
}

static void out_back(struct creq *q)
{
    struct coord *c = q->c;

    if (q->out_prev)
        q->out_prev->out_next = q->out_next;
    else
        c->outs = q->out_next;
    if (q->out_next)
        q->out_next->out_prev = q->out_prev;
    q->out_prev = q->out_next = NULL;
    c->out--;
}

static struct creq *creq_new(struct coord *c, enum creq_kind kind, struct http_later *later)
{
    struct creq *q = calloc(1, sizeof(*q));

    if (!q) {
        http_answer(later, 500,
                    json_pack("{s:{s:s,s:s}}", "error", "code", "internal", "message",
                              "out of memory"));
        return NULL;
    }
    q->c = c;
    q->kind = kind;
    q->later = later;
    q->started = metrics_now_ns();
    return q;
}

static void creq_free(struct creq *q)
{
    json_decref(q->branches);
    json_decref(q->first);
    json_decref(q->results);
    json_decref(q->failed);
    json_decref(q->answers);
    free(q->call.response);
    free(q->text);
    free(q->in);
    free(q->out);
    free(q);
}

/* Answers q with body (stolen) and status, or with *e when body is NULL; frees q. */
static void reply(struct creq *q, int status, json_t *body, const struct api_error *e)
{
    struct http_response res = {500, NULL};

    if (body)
        http_respond(&res, status ? status : 200, body);
    else
        http_respond_api_error(&res, e);
    if (q->kind == CREQ_COMMIT || q->kind == CREQ_ONESHOT)
        metrics_hist_since(&q->c->commit_time, q->started);
    if (q->later) /* NULL: given up at the stop, the server answered it */
        http_answer_res(q->later, &res);
    else
        json_decref(res.body);
    creq_free(q);
}

static void reply_error(struct creq *q, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_error(struct creq *q, const char *code, const char *fmt, ...)
{
    struct api_error e;
    va_list ap;

    va_start(ap, fmt);
    api_error_vset(&e, code, fmt, ap);
    va_end(ap);
    reply(q, 0, NULL, &e);
}

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
        r = ended_or_unknown(c, q->txid, &status, &e);
    } else if (v.answer != TPC_OUTCOME_NONE) {
        status = 200;
        r = outcome_json(q->txid, v.answer, &v.parts);
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
    reply(q, status, r, &e);
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

/* The engine's report: txid changed. */
static void on_change(void *ctx, const char *txid)
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

static void coord_tick(void *arg)
{
    struct coord *c = arg;
    struct sweep s = {c, loop_now_ms(), false};

    loop_timer_at(c->loop, &c->tick, s.now + COORD_TICK_MS);
    if (c->n_waiting)
        txmap_each(&c->waiting, sweep_one, &s);
}

/* ---- begin ---- */

static void begin_finish(struct creq *q)
{
    struct coord *c = q->c;
    enum tpc_err rc;

    engine_enter(&c->eng);
    rc = replica_begin(&c->eng.drv, q->txid, q->timeout_ms);
    engine_leave(&c->eng, NULL);
    if (rc == TPC_ERR_STATE) {
        reply_error(q, "txid_exists", "transaction %s exists", q->txid);
        return;
    }
    if (rc) {
        reply_error(q, "internal", "cannot begin %s: %s", q->txid, tpc_strerror(rc));
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
    reply(q, 201,
          json_pack("{s:s,s:s,s:I}", "txid", q->txid, "state", "active", "timeout_ms",
                    (json_int_t)q->timeout_ms),
          NULL);
}

/* On the loop: a client's txid is written down (or not). */
static void begun_back(void *arg)
{
    struct creq *q = arg;

    out_back(q);
    if (q->c->stopping) {
        reply_error(q, "shutting_down", "the replica is stopping");
        return;
    }
    if (q->op.rc != TPC_OK) {
        reply_error(q, "internal", "cannot record that %s is begun", q->txid);
        return;
    }
    if (!q->op.fresh) {
        reply_error(q, "txid_exists", "transaction %s was begun here before", q->txid);
        return;
    }
    begin_finish(q);
}

static void op_done(struct acc_op *op)
{
    struct creq *q = op->arg;

    loop_post(q->c->loop, &q->back);
}

/* Reads begin's body into q (txid, timeout); false: answered with the error. */
static bool begin_parse(struct creq *q, json_t *body)
{
    struct coord *c = q->c;
    struct msg_parts known;
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
            reply_error(q, "bad_request", "unknown key \"%s\" (use txid, timeout_ms%s)", key,
                        q->kind == CREQ_BEGIN ? ", exec" : "");
            return false;
        }
    }
    v = json_object_get(body, "exec");
    if (v && !json_is_object(v)) {
        reply_error(q, "bad_request",
                    "\"exec\" is the first statement, as the body of an exec: {\"participant\": "
                    "..., \"sql\": ...}");
        return false;
    }
    key = v ? json_string_value(json_object_get(v, "participant")) : NULL;
    if (v && (!key || !config_participant_url(&c->cfg, key))) {
        reply_error(q, "unknown_participant",
                    "\"participant\" must name one of the participants in the cluster file");
        return false; /* nothing begun */
    }
    if (v)
        q->first = json_incref(v);
    v = json_object_get(body, "timeout_ms");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 86400000) {
            reply_error(q, "bad_request", "timeout_ms must be 1..86400000");
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
            reply_error(q, "bad_txid",
                          "txid must be 1..%d characters of [A-Za-z0-9_-] (the replica adds its "
                          "prefix r<id>-)",
                          TPC_TXID_MAX - 4);
            return false;
        }
    } else {
        if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
            reply_error(q, "internal", "no randomness for a transaction id");
            return false;
        }
        snprintf(txid, sizeof(q->txid), "tx-");
        for (i = 0; i < sizeof(raw); i++)
            snprintf(txid + 3 + 2 * i, 3, "%02x", raw[i]);
    }
    if (acc_store_decision(c->store, txid, &o, NULL) == TPC_OK && o != TPC_OUTCOME_NONE) {
        reply_error(q, "txid_exists", "transaction %s already %s", txid, msg_outcome_name(o));
        return false;
    }
    if (acc_store_parts(c->store, txid, &known) == TPC_OK && known.n) {
        reply_error(q, "txid_exists", "transaction %s is known already", txid);
        return false;
    }
    return true;
}

/* Begins the transaction body asks for; then answers (begin) or runs its branches (oneshot). */
static void begin_start(struct creq *q, json_t *body)
{
    struct coord *c = q->c;

    if (!begin_parse(q, body))
        return;
    /* A client's own id is taken once per replica, crashes or not: written down before the
     * transaction can reach anyone (a generated id is new by construction). */
    if (json_object_get(body, "txid")) {
        q->op.kind = ACC_OP_BEGIN;
        memcpy(q->op.txid, q->txid, sizeof(q->op.txid));
        q->op.done = op_done;
        q->op.arg = q;
        q->back.fn = begun_back;
        q->back.arg = q;
        out_add(q);
        acc_store_post(c->store, &q->op);
        return;
    }
    begin_finish(q);
}

void coord_begin(struct coord *c, json_t *body, struct http_later *later)
{
    struct creq *q = creq_new(c, CREQ_BEGIN, later);

    if (q)
        begin_start(q, body);
}

/* ---- exec ---- */

/* Answers an exec's error; a begin that carried it was begun: the client needs its txid. */
static void reply_exec_error(struct creq *q, const struct api_error *e)
{
    json_t *body = q->kind == CREQ_BEGIN ? json_pack("{s:{s:s,s:s},s:s}", "error", "code",
                                                     e->code, "message", e->message, "txid",
                                                     q->txid)
                                         : NULL;

    reply(q, body ? e->status : 0, body, e);
}

static void exec_back(struct http_call *call)
{
    struct creq *q = call->arg;
    json_t *r = NULL;

    out_back(q);
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
            reply(q, 201, r, NULL);
            return;
        }
    }
    reply(q, (int)call->status, r, NULL); /* the participant's own answer, as it is */
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
        r = ended_or_unknown(c, q->txid, &status, &e);
        if (r) {
            json_decref(r);
            api_error_set(&e, "transaction_ended", "transaction %s has ended", q->txid);
        }
    } else if (!url) {
        api_error_set(&e, "unknown_participant",
                      "\"participant\" must name one of the participants in the cluster file");
    } else if (rc == TPC_ERR_STATE) {
        api_error_set(&e, "transaction_not_active", "transaction %s is %s", q->txid,
                      state_word(&v));
    } else if (rc == TPC_ERR_RANGE) {
        api_error_set(&e, "too_many_participants", "at most %d participants",
                      TPC_MAX_PARTICIPANTS);
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
        reply_error(q, "internal", "out of memory");
        return;
    }
    snprintf(q->url, sizeof(q->url), "%s/v1/branches/%s/exec", url, q->txid);
    free(q->call.response);
    memset(&q->call, 0, sizeof(q->call));
    q->call.url = q->url;
    q->call.body = q->text;
    q->call.body_len = strlen(q->text);
    q->call.timeout_ms = c->cfg.commit_ms;
    q->call.done = exec_back;
    q->call.arg = q;
    out_add(q);
    http_agent_post(c->eng.agent, &q->call);
}

void coord_exec(struct coord *c, const char *txid, json_t *body, struct http_later *later)
{
    struct creq *q = creq_new(c, CREQ_EXEC, later);

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
        r = ended_or_unknown(c, q->txid, &status, &e);
        if (r && q->kind == CREQ_ONESHOT)
            json_object_set(r, "results", q->results);
        reply(q, status, r, &e);
        return;
    }
    wait_add(q);
}

void coord_commit(struct coord *c, const char *txid, enum coord_wait wait,
                  struct http_later *later)
{
    struct creq *q = creq_new(c, CREQ_COMMIT, later);

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
        *ended = ended_or_unknown(c, q->txid, status, e);
        return false;
    }
    return true;
}

void coord_abort(struct coord *c, const char *txid, struct http_later *later)
{
    struct creq *q = creq_new(c, CREQ_ABORT, later);
    struct api_error e = {0};
    json_t *ended = NULL;
    int status = 0;

    if (!q)
        return;
    memcpy(q->txid, txid, sizeof(q->txid));
    if (!abort_start(q, &status, &ended, &e)) {
        reply(q, status, ended, &e);
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
        ended = ended_or_unknown(q->c, q->txid, &status, &e);
        if (ended)
            outcome = json_string_value(json_object_get(ended, "outcome"));
    }
    status = q->failed_status;
    reply(q, status,
          json_pack("{s:s,s:s,s:I,s:O}", "txid", q->txid, "outcome", outcome, "failed_branch",
                    (json_int_t)q->step, "error", q->failed),
          NULL);
    json_decref(ended);
}

void coord_oneshot(struct coord *c, json_t *body, struct http_later *later)
{
    json_t *branches = json_object_get(body, "branches"), *begin, *v;
    struct creq *q = creq_new(c, CREQ_ONESHOT, later);
    struct api_error e = {0};
    const char *key;

    if (!q)
        return;
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "txid") && strcmp(key, "timeout_ms") && strcmp(key, "branches") &&
            strcmp(key, "wait")) {
            reply_error(q, "bad_request", "unknown key \"%s\"", key);
            return;
        }
    }
    if (coord_wait_parse(json_object_get(body, "wait"), &q->wait, &e) != TPC_OK) {
        reply(q, 0, NULL, &e);
        return;
    }
    if (!json_is_array(branches) || json_array_size(branches) == 0) {
        reply_error(q, "bad_request",
                    "\"branches\" must be a non-empty array of "
                    "{\"participant\": ..., \"statements\": [...]}");
        return;
    }
    q->branches = json_incref(branches);
    q->results = json_array();
    begin = json_deep_copy(body);
    if (!begin || !q->results) {
        json_decref(begin);
        reply_error(q, "internal", "out of memory");
        return;
    }
    json_object_del(begin, "branches");
    json_object_del(begin, "wait");
    begin_start(q, begin);
    json_decref(begin);
}

json_t *coord_status(struct coord *c, const char *txid, int *status, struct api_error *e)
{
    struct replica_view v;
    struct msg_parts parts;
    enum tpc_outcome o;
    json_t *r;
    bool known;

    known = replica_view(&c->eng.drv, txid, &v); /* a read: no event, nothing to carry out */
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
        replica_foreach(&c->eng.drv, list_live, &l);
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

    out_back(q);
    if (q->op.rc == TPC_OK)
        for (i = 0; i < q->op.n; i++)
            if (q->out[i].type)
                json_array_append_new(q->answers, codec_encode(&q->out[i]));
    reply(q, 200, json_pack("{s:O}", "messages", q->answers), NULL);
}

void coord_paxos(struct coord *c, const struct msg *in, size_t n, struct http_later *later)
{
    struct creq *q = creq_new(c, CREQ_PAXOS, later);
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
        reply_error(q, "internal", "out of memory");
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
        reply(q, 200, json_pack("{s:O}", "messages", q->answers), NULL);
        return;
    }
    /* The acceptor: its records and answers are one durable step (acceptor.h rule 3). */
    q->op.kind = ACC_OP_HANDLE;
    q->op.in = q->in;
    q->op.out = q->out;
    q->op.n = n_acc;
    q->op.done = op_done;
    q->op.arg = q;
    q->back.fn = paxos_back;
    q->back.arg = q;
    out_add(q);
    acc_store_post(c->store, &q->op);
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
    rc = acc_store_open(cfg->db_path, cfg->self, cfg->n_replicas, &c->store, err, errlen);
    if (rc)
        goto fail;
    c->eng_up = true;
    rc = engine_open(&c->eng, &c->cfg, c->store, loop, on_change, c, err, errlen);
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
    struct sweep s = {c, 0, true};
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
    s.now = loop_now_ms();
    if (c->n_waiting)
        txmap_each(&c->waiting, sweep_one, &s);
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
