/*
 * engine.c - see engine.h.
 *
 * Invariants:
 *   1. The driver is called only between engine_enter and engine_leave, on the loop.
 *   2. Nothing blocks the loop: every call and write is started, and its answer or
 *      completion comes back as an event of its own.
 *   3. A write's completion is fed back only after the store says it is durable.
 *   4. Every call or store operation started is counted in e->out until it is back, and
 *      every message that expects an answer in e->flight until then (node_io in_flight).
 */
#include "engine.h"

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
    int replica;     /* an acceptor's batch: its id; else -1 (a participant's call) */
    struct msg *msgs; /* what was sent (for flight and for matching answers) */
    size_t n_msgs;
    char participant[TPC_NAME_MAX + 1];
    bool prepare_counted; /* a prepare counted in its flight entry (unpark when back) */
};

/* A store operation the driver asked for: its own acceptor's batch, or writes. */
struct eop {
    struct acc_op op;
    struct loop_msg back;
    struct engine *e;
    struct msg *in, *out;       /* HANDLE: the batch and its answers; LEARNED: the outcomes */
    struct node_write *writes; /* what the driver asked to persist (completed when back) */
    size_t n_writes;
    char (*told)[TPC_TXID_MAX + 1];
};

/* ---- messages on their way, per transaction (node_io in_flight) ---- */

struct flight {
    struct txmap_entry e;
    uint32_t n;
    /* Prepares out to participants, and the phase 2a messages held back while they are:
     * relayed together once the last vote is in (or its call failed), one batch and one
     * durable write per acceptor for every participant (leader.h rule 5). The last vote's
     * write is on the decision's path anyway; the earlier ones wait for nothing. */
    uint32_t prepares;
    struct nodert_item *parked;
    size_t n_parked, cap_parked;
};

static void flight_entry_free(struct flight *f)
{
    free(f->parked);
    free(f);
}

/* A message that answers back to the driver: to an acceptor or a participant (not an
 * announcement, which goes in bulk, nor an answer to a caller). */
static bool answered(const struct node_addr *to, const struct msg *m)
{
    return (to->kind == NODE_REPLICA && m->type != MSG_OUTCOME) || to->kind == NODE_PARTICIPANT;
}

/* Counts a message of txid on its way (+1) or back (-1). */
static void flight_change(struct engine *e, const char *txid, int delta)
{
    struct flight *f = (struct flight *)txmap_get(&e->flight, txid);

    if (!f && delta > 0 && (f = calloc(1, sizeof(*f))) != NULL) {
        memcpy(f->e.id, txid, sizeof(f->e.id));
        if (txmap_add(&e->flight, &f->e) != TPC_OK) {
            free(f);
            f = NULL;
        }
    }
    if (!f)
        return;
    if (delta > 0) {
        f->n++;
    } else if (--f->n == 0) {
        txmap_del(&e->flight, &f->e);
        flight_entry_free(f);
    }
}

static void flight_free(void *ctx, struct txmap_entry *en)
{
    struct engine *e = ctx;

    txmap_del(&e->flight, en);
    flight_entry_free((struct flight *)en);
}

/* Holds a phase 2a back while prepares of its transaction are out; false: send it now. */
static bool park(struct engine *e, const struct nodert_item *it)
{
    struct flight *f = (struct flight *)txmap_get(&e->flight, it->m.txid);

    if (it->m.type != MSG_PHASE2A || !f || !f->prepares)
        return false;
    if (f->n_parked == f->cap_parked) {
        size_t cap = f->cap_parked ? f->cap_parked * 2 : 4;
        struct nodert_item *bigger = realloc(f->parked, cap * sizeof(*bigger));

        if (!bigger)
            return false;
        f->parked = bigger;
        f->cap_parked = cap;
    }
    f->parked[f->n_parked++] = *it;
    return true;
}

/* Inside an event: a prepare of txid is back. Once none is out, what was held back goes into
 * this event's box, to leave with what the event itself asks for. */
static void unpark(struct engine *e, const char *txid)
{
    struct flight *f = (struct flight *)txmap_get(&e->flight, txid);
    size_t i, n;

    if (!f || --f->prepares || !f->n_parked)
        return;
    n = f->n_parked;
    f->n_parked = 0;
    for (i = 0; i < n; i++) {
        struct nodert_item *it = &f->parked[i];
        size_t before = e->box.n;

        nodert_io_send(&e->rt, &it->to, &it->m); /* counted in flight already */
        if (e->box.n == before) /* no memory: lost, as the network may; not on its way */
            flight_change(e, it->m.txid, -1);
    }
}

/* ---- events ---- */

void engine_enter(struct engine *e)
{
    nodert_enter(&e->rt, &e->box);
}

static void dispatch(struct engine *e, struct nodert_box *items, struct nodert_box *answers);

void engine_leave(struct engine *e, struct nodert_box *answers)
{
    struct nodert_box items;

    replica_check(&e->drv);
    nodert_leave(&e->rt);
    nodert_box_move(&items, &e->box);
    dispatch(e, &items, answers);
    nodert_box_free(&items);
}

/* Tells the owner that txid changed (its waiting requests may be answerable now). */
static void changed(struct engine *e, const char *txid)
{
    if (e->on_change)
        e->on_change(e->owner, txid);
}

/* A write that will not be carried out: it failed (the driver writes it again). */
static void write_failed(struct engine *e, const struct node_write *w)
{
    engine_enter(e);
    replica_persisted(&e->drv, w, TPC_ERR_NOMEM);
    engine_leave(e, NULL);
}

/* msgs[0..n) will not be answered: they are not on their way (any more). */
static void flight_back(struct engine *e, const struct msg *msgs, size_t n)
{
    size_t i;

    engine_enter(e);
    for (i = 0; i < n; i++)
        flight_change(e, msgs[i].txid, -1);
    engine_leave(e, NULL);
}

/* ---- calls ---- */

static void ecall_free(struct ecall *k)
{
    free(k->body);
    free(k->msgs);
    free(k->http.response);
    free(k);
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
        e->quiet_until[k->replica] = k->http.err == TPC_OK && k->http.status == 200
                                         ? 0
                                         : loop_now_ms() + 1000;
    engine_enter(e);
    if (!e->closing)
        feed_answer(e, k);
    if (k->prepare_counted)
        unpark(e, k->msgs[0].txid);
    for (i = 0; i < k->n_msgs; i++)
        flight_change(e, k->msgs[i].txid, -1);
    engine_leave(e, NULL);
    for (i = 0; i < k->n_msgs; i++)
        changed(e, k->msgs[i].txid);
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

/* Starts a call of msgs[0..n) (copied) to base + path with body (stolen). */
static void start_call(struct engine *e, const char *base, const char *path, json_t *body,
                       int replica, const char *participant, const struct msg *msgs, size_t n)
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
        flight_back(e, msgs, n);
        if (k)
            ecall_free(k);
        return;
    }
    snprintf(k->url, sizeof(k->url), "%s%s", base, path);
    k->replica = replica;
    if (participant)
        snprintf(k->participant, sizeof(k->participant), "%s", participant);
    memcpy(k->msgs, msgs, n * sizeof(*msgs));
    k->n_msgs = n;
    if (replica < 0 && n == 1 && msgs[0].type == MSG_PREPARE) {
        struct flight *f = (struct flight *)txmap_get(&e->flight, msgs[0].txid);

        if (f) {
            f->prepares++;
            k->prepare_counted = true;
        }
    }
    post_call(e, k, call_back);
}

/*
 * How many of the n messages at m go in one batch: at most CODEC_MAX_BATCH, and about
 * ENGINE_BATCH_BYTES of JSON (a message with a long participant list is a few kilobytes; a
 * replica takes bodies of 1 MiB, and answers a phase 1a with as long a list).
 */
static size_t batch_size(const struct msg *m, size_t n)
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
    engine_enter(e);
    if (o->op.kind == ACC_OP_HANDLE) {
        for (i = 0; i < o->op.n; i++) {
            flight_change(e, o->in[i].txid, -1);
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
            log_error("%s: a durable write failed: %s", o->writes[i].txid,
                      tpc_strerror(o->op.rc));
        replica_persisted(&e->drv, &o->writes[i], o->op.rc);
    }
    engine_leave(e, NULL);
    for (i = 0; i < o->op.n && o->op.kind == ACC_OP_HANDLE; i++)
        changed(e, o->in[i].txid);
    for (i = 0; i < o->n_writes; i++)
        changed(e, o->writes[i].txid);
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
static void start_self(struct engine *e, const struct msg *msgs, size_t n)
{
    struct eop *o = eop_new(e, ACC_OP_HANDLE);

    if (o) {
        o->in = malloc(n * sizeof(*o->in));
        o->out = calloc(n, sizeof(*o->out));
    }
    if (!o || !o->in || !o->out || e->closing) {
        flight_back(e, msgs, n);
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
static void start_write(struct engine *e, const struct node_write *w, const struct msg *learned,
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
            write_failed(e, w);
            return;
        }
        for (i = 0; i < n; i++) {
            struct node_write lw;

            node_write_init(&lw, NODE_WRITE_LEARNED, learned[i].txid);
            lw.outcome = learned[i].outcome;
            write_failed(e, &lw);
        }
        return;
    }
    if (w->kind == NODE_WRITE_LEARNED) {
        memcpy(o->in, learned, n * sizeof(*learned));
        for (i = 0; i < n; i++) {
            node_write_init(&o->writes[i], NODE_WRITE_LEARNED, learned[i].txid);
            o->writes[i].outcome = learned[i].outcome;
        }
        o->op.in = o->in;
        o->op.n = n;
    } else {
        o->writes[0] = *w;
        memcpy(o->op.txid, w->txid, sizeof(o->op.txid));
        o->op.outcome = w->outcome;
        o->op.parts = w->parts;
        o->op.round = w->round;
    }
    o->n_writes = n_writes;
    start_op(e, o);
}

/* ---- announcements and told marks, in bulk ---- */

static void later_announce(struct engine *e, const struct msg *m)
{
    if (e->n_outcomes < ENGINE_LATER_MAX)
        e->outcomes[e->n_outcomes++] = *m;
    else
        e->dropped++; /* the other replicas learn it by asking */
}

static void later_told(struct engine *e, const struct node_write *w)
{
    if (e->n_told < ENGINE_LATER_MAX) {
        memcpy(e->told[e->n_told++], w->txid, sizeof(e->told[0]));
        return;
    }
    e->dropped++;
    write_failed(e, w); /* marked again later */
}

/* Writes the gathered told marks in one durable write; completed at the driver when back. */
static void flush_told(struct engine *e)
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
    o->op.told = (const char(*)[TPC_TXID_MAX + 1])o->told;
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
static void flush_announcements(struct engine *e)
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

/* ---- carrying out what the driver asked for ---- */

/* Starts every item of items; answers for the caller go to *answers. */
static void dispatch(struct engine *e, struct nodert_box *items, struct nodert_box *answers)
{
    const struct coord_config *cfg = e->cfg;
    struct msg *per_acc = NULL, *learned = NULL;
    size_t n_acc[TPC_MAX_REPLICAS] = {0}, n_learned = 0, i, k, chunk, cap = items->n;
    char path[TPC_TXID_MAX + 64];
    uint32_t a;

    if (!items->n)
        return;
    per_acc = malloc(cfg->n_replicas * cap * sizeof(*per_acc));
    learned = malloc(cap * sizeof(*learned));
    for (i = 0; i < items->n; i++) {
        struct nodert_item *it = &items->items[i];
        const char *purl;

        if (it->write) {
            if (it->w.kind == NODE_WRITE_TOLD) {
                later_told(e, &it->w);
            } else if (it->w.kind == NODE_WRITE_LEARNED && learned) {
                learned[n_learned].type = MSG_OUTCOME;
                memcpy(learned[n_learned].txid, it->w.txid, sizeof(it->w.txid));
                learned[n_learned++].outcome = it->w.outcome;
            } else if (it->w.kind == NODE_WRITE_ROUND || it->w.kind == NODE_WRITE_DECISION) {
                start_write(e, &it->w, NULL, 0);
            } else {
                write_failed(e, &it->w);
            }
            continue;
        }
        switch (it->to.kind) {
        case NODE_REPLICA:
            if (it->m.type == MSG_OUTCOME)
                later_announce(e, &it->m);
            else if (it->to.id < cfg->n_replicas && park(e, it))
                break;
            else if (it->to.id < cfg->n_replicas && per_acc)
                per_acc[it->to.id * cap + n_acc[it->to.id]++] = it->m;
            else if (it->to.id < cfg->n_replicas) /* no memory: lost, as the network may */
                flight_change(e, it->m.txid, -1);
            break;
        case NODE_PARTICIPANT:
            purl = config_participant_url(cfg, it->to.name);
            if (!purl) {
                log_warn("%s: no URL for participant %s", it->m.txid, it->to.name);
                flight_change(e, it->m.txid, -1);
                break;
            }
            /* Votes come back here and go to the acceptors from here, in one batch per
             * acceptor for all participants: one durable write per acceptor (leader.h
             * rule 5). */
            snprintf(path, sizeof(path), "/v1/branches/%s/%s", it->m.txid,
                     it->m.type == MSG_PREPARE                ? "prepare?relay=1"
                     : it->m.outcome == TPC_OUTCOME_COMMITTED ? "commit"
                                                              : "abort");
            /* A fault test: the leader sends its first prepare alone, then dies (the one
             * blocking call on the loop, in a process about to be killed). */
            if (it->m.type == MSG_PREPARE && failpoint_armed("leader-after-some-prepares")) {
                struct http_client *one = http_client_new(cfg->cluster_token);
                char url[CONFIG_URL_MAX + 128], *body = json_dumps(codec_encode(&it->m), 0);
                struct http_call call = {0};

                snprintf(url, sizeof(url), "%s%s", purl, path);
                call.url = url;
                call.body = body ? body : "{}";
                call.body_len = strlen(call.body);
                if (one)
                    http_client_post_all(one, &call, 1, cfg->prepare_ms);
                free(call.response);
                free(body);
                http_client_free(one);
                failpoint("leader-after-some-prepares");
            }
            start_call(e, purl, path,
                       it->m.type == MSG_PREPARE ? codec_encode(&it->m) : json_object(), -1,
                       it->to.name, &it->m, 1);
            break;
        case NODE_CALLER:
            if (answers) {
                if (answers->n == answers->cap) {
                    size_t ncap = answers->cap ? answers->cap * 2 : 4;
                    struct nodert_item *bigger =
                        realloc(answers->items, ncap * sizeof(*bigger));

                    if (!bigger)
                        break;
                    answers->items = bigger;
                    answers->cap = ncap;
                }
                answers->items[answers->n++] = *it;
            }
            break;
        case NODE_CLIENT:
            changed(e, it->m.txid);
            break;
        }
    }
    if (n_learned)
        start_write(e, &(struct node_write){.kind = NODE_WRITE_LEARNED}, learned, n_learned);
    for (a = 0; a < cfg->n_replicas && per_acc; a++) {
        for (k = 0; k < n_acc[a]; k += chunk) {
            const struct msg *first = &per_acc[a * cap + k];

            chunk = batch_size(first, n_acc[a] - k);
            if (a == cfg->self)
                start_self(e, first, chunk);
            else
                start_call(e, cfg->replicas[a], "/v1/paxos", codec_encode_batch(first, chunk),
                           (int)a, NULL, first, chunk);
        }
    }
    free(per_acc);
    free(learned);
}

uint32_t engine_relay_targets(struct engine *e)
{
    uint32_t n = e->cfg->n_replicas, f = n / 2, mask = 1u << e->cfg->self, got = 0, k;
    int64_t now = nodert_now_ms();

    for (k = 1; k < n && got < f; k++) {
        uint32_t a = (e->cfg->self + k) % n;

        if (e->quiet_until[a] <= now) {
            mask |= 1u << a;
            got++;
        }
    }
    return got == f ? mask : 0;
}

/* ---- node_io reads, from the acceptor store ---- */

static enum tpc_outcome io_decision(void *ctx, const char *txid, struct msg_parts *parts)
{
    struct engine *e = ctx;
    enum tpc_outcome o = TPC_OUTCOME_NONE;

    if (parts)
        memset(parts, 0, sizeof(*parts));
    if (acc_store_decision(e->store, txid, &o, parts) != TPC_OK)
        return TPC_OUTCOME_NONE;
    return o;
}

static void io_acceptor_parts(void *ctx, const char *txid, struct msg_parts *parts)
{
    struct engine *e = ctx;

    memset(parts, 0, sizeof(*parts));
    if (acc_store_parts(e->store, txid, parts) != TPC_OK)
        memset(parts, 0, sizeof(*parts));
}

/* The sweep's candidates, from the scanner's last result (a scan of the acceptor table must
 * not hold the loop up). Each list is given once. */
static size_t io_stale(void *ctx, uint64_t age, struct node_txn *out, size_t cap)
{
    struct engine *e = ctx;
    size_t n = e->n_stale < cap ? e->n_stale : cap;

    (void)age; /* the scanner queried with the same age, the configured stale_ms */
    memcpy(out, e->stale, n * sizeof(*out));
    e->n_stale = 0;
    return n;
}

static size_t io_untold(void *ctx, const char *after, struct node_txn *out, size_t cap)
{
    struct engine *e = ctx;

    return acc_store_untold(e->store, after, out, cap);
}

static void io_send(void *ctx, const struct node_addr *to, const struct msg *m)
{
    struct engine *e = ctx;

    nodert_io_send(&e->rt, to, m);
    if (answered(to, m))
        flight_change(e, m->txid, +1);
}

static bool io_in_flight(void *ctx, const char *txid)
{
    struct engine *e = ctx;

    return txmap_get(&e->flight, txid) != NULL;
}

/* On the loop: the scanner's result. */
static void scan_back(void *arg)
{
    struct engine *e = arg;

    pthread_mutex_lock(&e->scan_mu);
    memcpy(e->stale, e->scanned, e->n_scanned * sizeof(e->stale[0]));
    e->n_stale = e->n_scanned;
    e->scan_posted = false;
    pthread_mutex_unlock(&e->scan_mu);
}

/* On the scanner's thread, every stale_ms / 2. */
static void scan(void *arg)
{
    struct engine *e = arg;
    struct node_txn found[ENGINE_STALE_MAX];
    size_t n = acc_store_stale(e->store, e->cfg->stale_ms, found, ENGINE_STALE_MAX);

    pthread_mutex_lock(&e->scan_mu);
    memcpy(e->scanned, found, n * sizeof(found[0]));
    e->n_scanned = n;
    if (!e->scan_posted) {
        e->scan_posted = true;
        loop_post(e->loop, &e->scan_msg);
    }
    pthread_mutex_unlock(&e->scan_mu);
}

static void tick(void *arg)
{
    struct engine *e = arg;
    int64_t now = loop_now_ms();

    loop_timer_at(e->loop, &e->tick, now + ENGINE_TICK_MS);
    engine_enter(e);
    replica_tick(&e->drv);
    engine_leave(e, NULL);
    if (e->dropped) {
        log_warn("%zu outcome announcements or told marks dropped (buffers full): other "
                 "replicas learn them by asking, a restart tells them again",
                 e->dropped);
        e->dropped = 0;
    }
    flush_told(e);
    if (now - e->announced_at >= ENGINE_ANNOUNCE_MS) {
        e->announced_at = now;
        flush_announcements(e);
    }
}

enum tpc_err engine_open(struct engine *e, const struct coord_config *cfg, struct acc_store *store,
                         struct loop *loop, void (*on_change)(void *ctx, const char *txid),
                         void *owner, char *err, size_t errlen)
{
    struct replica_config rc = {
        .self = cfg->self,
        .n_replicas = cfg->n_replicas,
        .prepare_timeout = cfg->prepare_ms,
        .retry_interval = cfg->retry_ms,
        .retry_max = cfg->retry_max_ms,
        .stale_after = cfg->stale_ms,
        .keep = 1000,
        .keep_unrecorded = 60000,
    };
    struct node_io io = {.ctx = e,
                         .now = nodert_io_now,
                         .random = nodert_io_random,
                         .send = io_send,
                         .persist = nodert_io_persist,
                         .decision = io_decision,
                         .acceptor_parts = io_acceptor_parts,
                         .stale = io_stale,
                         .untold = io_untold,
                         .in_flight = io_in_flight};
    enum tpc_err rc_;

    memset(e, 0, sizeof(*e));
    e->cfg = cfg;
    e->store = store;
    e->loop = loop;
    e->on_change = on_change;
    e->owner = owner;
    e->tick.fn = tick;
    e->tick.arg = e;
    e->scan_msg.fn = scan_back;
    e->scan_msg.arg = e;
    pthread_mutex_init(&e->scan_mu, NULL);
    e->outcomes = calloc(ENGINE_LATER_MAX, sizeof(*e->outcomes));
    e->told = calloc(ENGINE_LATER_MAX, sizeof(*e->told));
    e->agent = http_agent_new(loop, cfg->cluster_token);
    if (txmap_init(&e->flight) != TPC_OK || !e->outcomes || !e->told || !e->agent)
        return tpc_errbuf_set(err, errlen, TPC_ERR_NOMEM, "out of memory");
    rc_ = replica_init(&e->drv, &rc, &io);
    if (rc_)
        return tpc_errbuf_set(err, errlen, rc_, "cannot start the replica driver");
    e->drv_up = true;
    rc_ = nodert_init(&e->rt, 0, NULL, e);
    e->rt_up = true;
    if (rc_)
        return tpc_errbuf_set(err, errlen, rc_, "cannot start the driver's runtime");
    engine_enter(e);
    rc_ = replica_start(&e->drv);
    if (replica_size(&e->drv))
        log_info("resuming: %zu decided transaction(s) still to tell their participants",
                 replica_size(&e->drv));
    engine_leave(e, NULL);
    if (rc_)
        return tpc_errbuf_set(err, errlen, rc_, "cannot resume the decisions owed");
    loop_timer_at(loop, &e->tick, loop_now_ms() + ENGINE_TICK_MS);
    if (ticker_start(&e->scanner, cfg->stale_ms / 2 ? cfg->stale_ms / 2 : 1, scan, e) != TPC_OK)
        return tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot start the scanner thread");
    return TPC_OK;
}

void engine_stop(struct engine *e)
{
    if (e->closing)
        return;
    e->closing = true;
    if (e->loop)
        loop_timer_stop(e->loop, &e->tick);
    if (e->store)
        acc_store_interrupt_scan(e->store); /* a long scan under way ends now */
    ticker_stop(&e->scanner);
    /* Calls out are cut off: their done functions run now, and feed nothing. */
    http_agent_free(e->agent);
    e->agent = NULL;
}

bool engine_busy(struct engine *e)
{
    bool posted;

    pthread_mutex_lock(&e->scan_mu);
    posted = e->scan_posted;
    pthread_mutex_unlock(&e->scan_mu);
    return e->out || posted;
}

void engine_close(struct engine *e)
{
    int64_t until = loop_now_ms() + 10000;

    engine_stop(e);
    /* Store operations finish; their completions come back through the loop's queue. */
    while (engine_busy(e) && loop_now_ms() < until)
        loop_run_posted(e->loop, 100);
    if (engine_busy(e))
        log_error("%zu store operations did not come back", e->out);
    if (e->drv_up)
        replica_fini(&e->drv);
    if (e->rt_up)
        nodert_fini(&e->rt);
    nodert_box_free(&e->box);
    e->rt_up = e->drv_up = false;
    if (e->flight.bucket) {
        txmap_each(&e->flight, flight_free, e);
        txmap_fini(&e->flight);
    }
    pthread_mutex_destroy(&e->scan_mu);
    free(e->outcomes);
    free(e->told);
}
