/*
 * outbound.c - how the replica driver's actions leave (see outbound.h): HTTP calls on the
 * agent, operations on the acceptor store, and announcements and told marks in bulk. Each
 * call's answer and each operation's completion comes back to the driver as an event of its
 * own, on the loop.
 */
#include "outbound.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "failpoint.h"
#include "log.h"

/* An HTTP call the driver asked for: a batch to an acceptor, or a participant's call. */
struct ecall {
    struct http_call http;
    struct engine *e;
    char url[CONFIG_URL_MAX + 128];
    char *body;
    int replica;      /* an acceptor's batch: its id; else -1 (a participant's call) */
    struct msg *msgs; /* what was sent (for flight and for matching answers) */
    size_t n_msgs;
    char participant[TPC_NAME_MAX + 1];
    int outcomes;         /* a batch of outcomes: the participant's config index; else -1 */
    bool prepare_counted; /* a prepare counted in its flight entry (unpark when back) */
};

/* A store operation the driver asked for: its own acceptor's batch, or writes. */
struct eop {
    struct acc_op op;
    struct loop_msg back;
    struct engine *e;
    struct msg *in, *out;      /* HANDLE: the batch and its answers; LEARNED: the outcomes */
    struct node_write *writes; /* what the driver asked to persist (completed when back) */
    size_t n_writes;
    char (*told)[TPC_TXID_MAX + 1];
};

/* ---- calls ---- */

static void ecall_free(struct ecall *k)
{
    free(k->body);
    free(k->msgs);
    free(k->http.response);
    free(k);
}

/* Feeds the acks among a batch's results ({"results": [ack | {"txid", "error"}, ...]}). */
static void feed_acks(struct engine *e, const struct ecall *k, const struct node_addr *from,
                      json_t *body)
{
    json_t *results = json_object_get(body, "results"), *one;
    char err[256];
    size_t i;

    json_array_foreach(results, i, one)
    {
        struct msg ack;

        if (i >= k->n_msgs)
            break;
        if (json_object_get(one, "error")) {
            log_debug("%s: %s", json_string_value(json_object_get(one, "txid")),
                      json_string_value(json_object_get(json_object_get(one, "error"), "code")));
            continue;
        }
        if (codec_decode(one, e->cfg->n_replicas, &ack, err, sizeof(err)) != TPC_OK)
            log_warn("bad answer from %s: %s", k->url, err);
        else if (replica_receive(&e->drv, from, &ack, err, sizeof(err)) != TPC_OK)
            log_warn("answer from %s refused: %s", k->url, err);
    }
}

/* Feeds a call's answer to the driver: one answer per message sent, at most. */
static void feed_answer(struct engine *e, struct ecall *k)
{
    struct node_addr from =
        k->replica >= 0 ? node_replica((uint32_t)k->replica) : node_participant(k->participant);
    struct msg *got = NULL;
    char err[256];
    size_t n = 0, j;
    json_t *body;

    if (k->http.err != TPC_OK || k->http.status != 200 ||
        !(body = json_loadb(k->http.response, k->http.response_len, 0, NULL))) {
        log_debug("%s: %s (status %ld)", k->url, k->http.err ? k->http.error : "error",
                  k->http.status);
        return;
    }
    got = calloc(k->n_msgs ? k->n_msgs : 1, sizeof(*got));
    if (!got) {
        log_warn("no memory for the answer of %s", k->url);
    } else if (k->replica >= 0) {
        if (codec_decode_batch(body, e->cfg->n_replicas, got, k->n_msgs, &n, err, sizeof(err)) !=
            TPC_OK)
            log_warn("bad answer from %s: %s", k->url, err);
        /* An acceptor answers for itself only: a misconfigured replica list must not let one
         * replica's answer count as another's. */
        for (j = 0; j < n; j++)
            if (got[j].acceptor == (uint32_t)k->replica &&
                replica_receive(&e->drv, &from, &got[j], err, sizeof(err)) != TPC_OK)
                log_warn("answer from %s refused: %s", k->url, err);
    } else if (k->outcomes >= 0) {
        feed_acks(e, k, &from, body);
    } else if (codec_decode(body, e->cfg->n_replicas, &got[0], err, sizeof(err)) == TPC_OK) {
        if (replica_receive(&e->drv, &from, &got[0], err, sizeof(err)) != TPC_OK)
            log_warn("answer from %s refused: %s", k->url, err);
    } else {
        log_warn("bad answer from %s: %s", k->url, err);
    }
    free(got);
    json_decref(body);
}

static void call_back(struct http_call *call)
{
    struct ecall *k = call->arg;
    struct engine *e = k->e;
    size_t i;

    e->out--;
    if (k->replica >= 0) /* its health, for choosing where votes go first */
        e->quiet_until[k->replica] =
            k->http.err == TPC_OK && k->http.status == 200 ? 0 : loop_now_ms() + 1000;
    engine_enter(e);
    if (!e->closing)
        feed_answer(e, k);
    if (k->prepare_counted)
        engine_unpark(e, k->msgs[0].txid);
    for (i = 0; i < k->n_msgs; i++)
        engine_flight_change(e, k->msgs[i].txid, -1);
    engine_leave(e, NULL);
    for (i = 0; i < k->n_msgs; i++)
        engine_changed(e, k->msgs[i].txid);
    if (k->outcomes >= 0) {
        e->outq[k->outcomes].out--;
        outbound_outcomes_flush(e, (uint32_t)k->outcomes);
    }
    ecall_free(k);
}

/* Sends k (url and body set) to the agent; done runs when it is back. */
static void post_call(struct engine *e, struct ecall *k, void (*done)(struct http_call *call))
{
    k->e = e;
    k->http.url = k->url;
    k->http.body = k->body;
    k->http.body_len = strlen(k->body);
    k->http.timeout_ms = e->cfg->prepare_ms;
    k->http.done = done;
    k->http.arg = k;
    e->out++;
    http_agent_post(e->agent, &k->http);
}

/* A call of msgs[0..n) (copied) to base + path with body (stolen), ready to post; NULL when
 * it cannot be made (closing, no memory: the messages are back in flight terms). */
static struct ecall *call_new(struct engine *e, const char *base, const char *path, json_t *body,
                              const struct msg *msgs, size_t n)
{
    struct ecall *k = calloc(1, sizeof(*k));

    if (k) {
        k->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
        k->msgs = malloc(n * sizeof(*k->msgs));
    }
    json_decref(body);
    if (!k || !k->body || !k->msgs || e->closing) {
        if (!e->closing)
            log_warn("no memory for a call to %s (the driver resends)", base);
        engine_flight_back(e, msgs, n);
        if (k)
            ecall_free(k);
        return NULL;
    }
    snprintf(k->url, sizeof(k->url), "%s%s", base, path);
    k->replica = -1;
    k->outcomes = -1;
    memcpy(k->msgs, msgs, n * sizeof(*msgs));
    k->n_msgs = n;
    return k;
}

void outbound_call(struct engine *e, const char *base, const char *path, json_t *body, int replica,
                   const char *participant, const struct msg *msgs, size_t n)
{
    struct ecall *k = call_new(e, base, path, body, msgs, n);

    if (!k)
        return;
    k->replica = replica;
    if (participant)
        snprintf(k->participant, sizeof(k->participant), "%s", participant);
    if (replica < 0 && n == 1 && msgs[0].type == MSG_PREPARE)
        k->prepare_counted = engine_prepare_out(e, msgs[0].txid);
    post_call(e, k, call_back);
}

/* ---- outcomes to participants, in batches ---- */

void outbound_outcomes_flush(struct engine *e, uint32_t p)
{
    struct engine_outq *q = &e->outq[p];
    size_t n = q->n < ENGINE_OUTCOMES_MAX ? q->n : ENGINE_OUTCOMES_MAX, i;
    json_t *list, *body;
    struct ecall *k;

    if (!n || q->out >= ENGINE_OUTCOME_CALLS || e->closing)
        return;
    list = json_array();
    for (i = 0; list && i < n; i++) {
        json_t *item = json_pack("{s:s, s:s}", "txid", q->q[i].txid, "outcome",
                                 msg_outcome_name(q->q[i].outcome));

        /* born lets a participant that forgot the branch acknowledge (resource.h rule 6) */
        if (item && q->q[i].born)
            json_object_set_new(item, "born", json_integer((json_int_t)q->q[i].born));
        if (json_array_append_new(list, item) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    body = list ? json_pack("{s:o}", "outcomes", list) : NULL;
    k = call_new(e, e->cfg->participant_url[p], "/v1/outcomes", body, q->q, n);
    q->n -= n;
    memmove(q->q, q->q + n, q->n * sizeof(*q->q));
    if (!k)
        return;
    snprintf(k->participant, sizeof(k->participant), "%s", e->cfg->participant_name[p]);
    k->outcomes = (int)p;
    q->out++;
    post_call(e, k, call_back);
}

void outbound_outcome(struct engine *e, uint32_t p, const struct msg *m)
{
    struct engine_outq *q = &e->outq[p];

    if (e->closing) { /* nothing leaves any more */
        engine_flight_back(e, m, 1);
        return;
    }
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        struct msg *bigger = realloc(q->q, cap * sizeof(*bigger));

        if (!bigger) { /* lost, as the network may lose it: the driver tells again */
            engine_flight_back(e, m, 1);
            return;
        }
        q->q = bigger;
        q->cap = cap;
    }
    q->q[q->n++] = *m;
    outbound_outcomes_flush(e, p);
}

void outbound_outcomes_drop(struct engine *e)
{
    uint32_t p;

    for (p = 0; p < sizeof(e->outq) / sizeof(e->outq[0]); p++) {
        if (e->outq[p].n)
            engine_flight_back(e, e->outq[p].q, e->outq[p].n);
        free(e->outq[p].q);
        memset(&e->outq[p], 0, sizeof(e->outq[p]));
    }
}

/*
 * How many of the n messages at m go in one batch: at most CODEC_MAX_BATCH, and about
 * ENGINE_BATCH_BYTES of JSON (a message with a long participant list is a few kilobytes; a
 * replica takes bodies of 1 MiB, and answers a phase 1a with as long a list).
 */
size_t outbound_batch_size(const struct msg *m, size_t n)
{
    size_t k, bytes = 0;

    for (k = 0; k < n && k < CODEC_MAX_BATCH; k++) {
        bytes += 256 + (size_t)m[k].parts.n * (TPC_NAME_MAX + 3);
        if (k && bytes > ENGINE_BATCH_BYTES)
            break;
    }
    return k ? k : 1;
}

/* ---- store operations ---- */

static void eop_free(struct eop *o)
{
    free(o->in);
    free(o->out);
    free(o->writes);
    free(o->told);
    free(o);
}

/* On the loop: a store operation is back. */
static void op_back(void *arg)
{
    struct eop *o = arg;
    struct engine *e = o->e;
    struct node_addr self = node_replica(e->cfg->self);
    char err[256];
    size_t i;

    e->out--;
    if (o->op.kind == ACC_OP_COLLECT) {
        e->collecting = false;
        if (o->op.rc == TPC_OK) {
            e->forgotten += o->op.round;
            if (o->op.round)
                log_debug("forgot %llu rows older than the horizon",
                          (unsigned long long)o->op.round);
        }
        eop_free(o);
        return;
    }
    engine_enter(e);
    if (o->op.kind == ACC_OP_HANDLE) {
        for (i = 0; i < o->op.n; i++) {
            engine_flight_change(e, o->in[i].txid, -1);
            if (o->out[i].type && !e->closing &&
                replica_receive(&e->drv, &self, &o->out[i], err, sizeof(err)) != TPC_OK)
                log_warn("own acceptor's answer refused: %s", err);
        }
    }
    if (o->op.kind == ACC_OP_DECISION && o->op.rc == TPC_OK)
        failpoint("leader-after-decide");
    for (i = 0; i < o->n_writes; i++) {
        if (o->op.kind == ACC_OP_ROUND) {
            o->writes[i].round = o->op.round;
            if (o->op.rc == TPC_OK)
                log_info("%s: recovery with ballot (%llu,%u)", o->writes[i].txid,
                         (unsigned long long)o->op.round, e->cfg->self);
        }
        if (o->op.rc != TPC_OK)
            log_error("%s: a durable write failed: %s", o->writes[i].txid, tpc_strerror(o->op.rc));
        replica_persisted(&e->drv, &o->writes[i], o->op.rc);
    }
    engine_leave(e, NULL);
    for (i = 0; i < o->op.n && o->op.kind == ACC_OP_HANDLE; i++)
        engine_changed(e, o->in[i].txid);
    for (i = 0; i < o->n_writes; i++)
        engine_changed(e, o->writes[i].txid);
    eop_free(o);
}

/* On the store's thread: back to the loop. */
static void op_done(struct acc_op *op)
{
    struct eop *o = op->arg;

    loop_post(o->e->loop, &o->back);
}

static struct eop *eop_new(struct engine *e, enum acc_op_kind kind)
{
    struct eop *o = calloc(1, sizeof(*o));

    if (!o)
        return NULL;
    o->e = e;
    o->op.kind = kind;
    o->op.done = op_done;
    o->op.arg = o;
    o->back.fn = op_back;
    o->back.arg = o;
    return o;
}

static void start_op(struct engine *e, struct eop *o)
{
    e->out++;
    acc_store_post(e->store, &o->op);
}

/* This replica's own acceptor on msgs[0..n). */
void outbound_self(struct engine *e, const struct msg *msgs, size_t n)
{
    struct eop *o = eop_new(e, ACC_OP_HANDLE);

    if (o) {
        o->in = malloc(n * sizeof(*o->in));
        o->out = calloc(n, sizeof(*o->out));
    }
    if (!o || !o->in || !o->out || e->closing) {
        engine_flight_back(e, msgs, n);
        if (o)
            eop_free(o);
        return;
    }
    memcpy(o->in, msgs, n * sizeof(*msgs));
    o->op.in = o->in;
    o->op.out = o->out;
    o->op.n = n;
    start_op(e, o);
}

/* One write of the driver (LEARNED ones come together in learned[0..n)). */
void outbound_write(struct engine *e, const struct node_write *w, const struct msg *learned,
                    size_t n)
{
    static const enum acc_op_kind kinds[] = {
        [NODE_WRITE_ROUND] = ACC_OP_ROUND,
        [NODE_WRITE_DECISION] = ACC_OP_DECISION,
        [NODE_WRITE_LEARNED] = ACC_OP_LEARNED,
    };
    struct eop *o = eop_new(e, kinds[w->kind]);
    size_t i, n_writes = w->kind == NODE_WRITE_LEARNED ? n : 1;

    if (o) {
        o->writes = malloc(n_writes * sizeof(*o->writes));
        if (learned)
            o->in = malloc(n * sizeof(*o->in));
    }
    if (!o || !o->writes || (learned && !o->in) || e->closing) {
        if (o)
            eop_free(o);
        if (w->kind != NODE_WRITE_LEARNED) {
            engine_write_failed(e, w);
            return;
        }
        for (i = 0; i < n; i++) {
            struct node_write lw;

            node_write_init(&lw, NODE_WRITE_LEARNED, learned[i].txid);
            lw.outcome = learned[i].outcome;
            engine_write_failed(e, &lw);
        }
        return;
    }
    if (w->kind == NODE_WRITE_LEARNED) {
        memcpy(o->in, learned, n * sizeof(*learned));
        for (i = 0; i < n; i++) {
            node_write_init(&o->writes[i], NODE_WRITE_LEARNED, learned[i].txid);
            o->writes[i].outcome = learned[i].outcome;
            o->writes[i].born = learned[i].born;
        }
        o->op.in = o->in;
        o->op.n = n;
    } else {
        o->writes[0] = *w;
        memcpy(o->op.txid, w->txid, sizeof(o->op.txid));
        o->op.outcome = w->outcome;
        o->op.born = w->born;
        o->op.parts = w->parts;
        o->op.round = w->round;
    }
    o->n_writes = n_writes;
    start_op(e, o);
}

/* ---- announcements and told marks, in bulk ---- */

void outbound_announce_later(struct engine *e, const struct msg *m)
{
    if (e->n_outcomes < ENGINE_LATER_MAX)
        e->outcomes[e->n_outcomes++] = *m;
    else
        e->dropped++; /* the other replicas learn it by asking */
}

void outbound_told_later(struct engine *e, const struct node_write *w)
{
    if (e->n_told < ENGINE_LATER_MAX) {
        memcpy(e->told[e->n_told++], w->txid, sizeof(e->told[0]));
        return;
    }
    e->dropped++;
    engine_write_failed(e, w); /* marked again later */
}

/* Writes the gathered told marks in one durable write; completed at the driver when back. */
void outbound_flush_told(struct engine *e)
{
    struct eop *o;
    size_t i;

    if (!e->n_told)
        return;
    o = eop_new(e, ACC_OP_TOLD);
    if (o) {
        o->told = malloc(e->n_told * sizeof(*o->told));
        o->writes = malloc(e->n_told * sizeof(*o->writes));
    }
    if (!o || !o->told || !o->writes) {
        if (o)
            eop_free(o);
        return; /* kept for the next tick */
    }
    memcpy(o->told, e->told, e->n_told * sizeof(*o->told));
    for (i = 0; i < e->n_told; i++)
        node_write_init(&o->writes[i], NODE_WRITE_TOLD, e->told[i]);
    o->n_writes = e->n_told;
    o->op.told = (const char(*)[TPC_TXID_MAX + 1]) o->told;
    o->op.n = e->n_told;
    e->n_told = 0;
    start_op(e, o);
}

static void announce_back(struct http_call *call)
{
    struct ecall *k = call->arg;

    k->e->announcing--;
    k->e->out--;
    ecall_free(k); /* best effort: an answer says nothing we need */
}

/* Posts the gathered outcomes to every other replica, in batches a replica takes; one
 * announcement at a time per replica, so that a silent one cannot pile calls up. */
void outbound_flush_announcements(struct engine *e)
{
    size_t k = 0, chunk;
    uint32_t a;

    if (e->announcing || !e->n_outcomes)
        return;
    if (e->cfg->n_replicas < 2) {
        e->n_outcomes = 0;
        return;
    }
    for (k = 0; k < e->n_outcomes; k += chunk) {
        json_t *batch;
        char *body;

        chunk = e->n_outcomes - k < CODEC_MAX_BATCH ? e->n_outcomes - k : CODEC_MAX_BATCH;
        batch = codec_encode_batch(&e->outcomes[k], chunk);
        body = batch ? json_dumps(batch, JSON_COMPACT) : NULL;
        json_decref(batch);
        for (a = 0; body && a < e->cfg->n_replicas; a++) {
            struct ecall *c;

            if (a == e->cfg->self || !(c = calloc(1, sizeof(*c))))
                continue;
            c->replica = -1;
            c->outcomes = -1;
            c->body = strdup(body);
            if (!c->body) {
                free(c);
                continue;
            }
            snprintf(c->url, sizeof(c->url), "%s/v1/paxos", e->cfg->replicas[a]);
            e->announcing++;
            post_call(e, c, announce_back);
        }
        free(body);
    }
    e->n_outcomes = 0;
}

/* ---- forgetting what is older than the horizon ---- */

void outbound_collect(struct engine *e)
{
    struct eop *o;

    if (e->collecting || e->closing || !(o = eop_new(e, ACC_OP_COLLECT)))
        return;
    e->collecting = true;
    start_op(e, o);
}
