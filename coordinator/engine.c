/*
 * engine.c - see engine.h.
 *
 * Invariants:
 *   1. The driver is called only between nodert_enter and nodert_leave.
 *   2. Nothing is carried out under the driver's lock: HTTP calls and writes
 *      run after nodert_leave, their results are fed back under the lock.
 *   3. A write's completion is fed back only after acc_store says it is
 *      durable (told marks: after the bulk write of engine_flush).
 */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "failpoint.h"
#include "log.h"

/* One HTTP call of a round. */
struct call {
    struct http_call http;
    char url[CONFIG_URL_MAX + 128];
    char *body;
    int replica;   /* an acceptor's batch: its id; else -1 (a participant's call) */
    size_t n_msgs; /* messages in the batch: at most one answer each */
    char participant[TPC_NAME_MAX + 1];
};

/* A round: what box held, sorted by where it goes. Large; lives on the heap. */
struct round {
    struct msg *per_acc; /* acceptor a's messages: per_acc[a * cap ...] */
    size_t n_acc[TPC_MAX_REPLICAS], cap;
    struct msg *self_in, *self_out;
    size_t n_self;
    struct call *calls;
    size_t n_calls;
    struct node_write *writes;
    size_t n_writes;
    struct msg *learned; /* NODE_WRITE_LEARNED, written in one go */
    size_t n_learned;
};

static void round_free(struct round *r)
{
    size_t i;

    if (!r)
        return;
    for (i = 0; i < r->n_calls; i++) {
        free(r->calls[i].body);
        free(r->calls[i].http.response);
    }
    free(r->calls);
    free(r->per_acc);
    free(r->self_in);
    free(r->self_out);
    free(r->writes);
    free(r->learned);
    free(r);
}

/* ---- calls on their way, per transaction (node_io in_flight) ---- */

struct flight {
    struct txmap_entry e;
    uint32_t n;
};

/* A call that answers back to the driver: to an acceptor or a participant (not an
 * announcement, which goes in bulk, nor an answer to a caller). */
static bool answered(const struct nodert_item *it)
{
    return !it->write && ((it->to.kind == NODE_REPLICA && it->m.type != MSG_OUTCOME) ||
                          it->to.kind == NODE_PARTICIPANT);
}

/* Counts a call of txid on its way (+1) or back (-1). Under rt.mu. */
static void flight_change(struct engine *e, const char *txid, int delta)
{
    struct flight *f = (struct flight *)txmap_get(&e->flight, txid);

    if (!f && delta > 0 && (f = calloc(1, sizeof(*f))) != NULL) {
        memcpy(f->e.id, txid, sizeof(f->e.id));
        txmap_add(&e->flight, &f->e);
    }
    if (!f)
        return;
    if (delta > 0) {
        f->n++;
    } else if (--f->n == 0) {
        txmap_del(&e->flight, &f->e);
        free(f);
    }
}

/* The calls of items are back (answered, failed, or never made). Under rt.mu. */
static void flight_back(struct engine *e, const struct nodert_box *items)
{
    size_t i;

    for (i = 0; i < items->n; i++)
        if (answered(&items->items[i]))
            flight_change(e, items->items[i].m.txid, -1);
}

/* items will not be carried out: their calls are not on their way, their writes failed (the
 * driver writes them again). */
static void give_up(struct engine *e, struct nodert_box *items)
{
    struct nodert_box box = {0};
    size_t i;

    nodert_enter(&e->rt, &box);
    flight_back(e, items);
    for (i = 0; i < items->n; i++)
        if (items->items[i].write)
            replica_persisted(&e->drv, &items->items[i].w, TPC_ERR_NOMEM);
    nodert_leave(&e->rt);
    nodert_hand_off(&e->rt, &box);
}

static struct round *round_new(size_t n, uint32_t n_replicas)
{
    struct round *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->cap = n;
    r->per_acc = malloc(n_replicas * n * sizeof(*r->per_acc));
    r->self_in = malloc(n * sizeof(*r->self_in));
    r->self_out = calloc(n, sizeof(*r->self_out));
    /* A participant's call per message, each acceptor's messages in batches (batch_size): at
     * most one call per item, every item going to one place. */
    r->calls = calloc(n, sizeof(*r->calls));
    r->writes = malloc(n * sizeof(*r->writes));
    r->learned = calloc(n, sizeof(*r->learned));
    if (!r->per_acc || !r->self_in || !r->self_out || !r->calls || !r->writes || !r->learned) {
        round_free(r);
        return NULL;
    }
    return r;
}

static struct call *add_call(struct round *r, const char *base, const char *path, json_t *body)
{
    struct call *k = &r->calls[r->n_calls];

    memset(k, 0, sizeof(*k));
    snprintf(k->url, sizeof(k->url), "%s%s", base, path);
    k->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!k->body)
        return NULL;
    k->http.url = k->url;
    k->http.body = k->body;
    k->http.body_len = strlen(k->body);
    k->replica = -1;
    r->n_calls++;
    return k;
}

/* ---- announcements and told marks, in bulk ---- */

static void later_announce(struct engine *e, const struct msg *m)
{
    struct engine_later *l = &e->later;

    pthread_mutex_lock(&l->mu);
    if (l->n_outcomes < ENGINE_LATER_MAX)
        l->outcomes[l->n_outcomes++] = *m;
    else
        l->dropped++; /* the other replicas learn it by asking */
    pthread_mutex_unlock(&l->mu);
}

static bool later_told(struct engine *e, const char *txid)
{
    struct engine_later *l = &e->later;
    bool kept = false;

    pthread_mutex_lock(&l->mu);
    if (l->n_told < ENGINE_LATER_MAX) {
        memcpy(l->told[l->n_told++], txid, sizeof(l->told[0]));
        kept = true;
    } else {
        l->dropped++;
    }
    pthread_mutex_unlock(&l->mu);
    return kept;
}

/* Writes the gathered told marks in one durable write, then completes them at the driver. */
static void flush_told(struct engine *e)
{
    struct engine_later *l = &e->later;
    char(*told)[TPC_TXID_MAX + 1] = NULL;
    struct nodert_box box = {0};
    struct node_write w;
    enum tpc_err rc;
    size_t n, i;

    pthread_mutex_lock(&l->mu);
    n = l->n_told;
    if (n && (told = malloc(n * sizeof(*told))) != NULL) {
        memcpy(told, l->told, n * sizeof(*told));
        l->n_told = 0;
    }
    pthread_mutex_unlock(&l->mu);
    if (!told)
        return;
    rc = acc_store_mark_told_many(e->store, (const char(*)[TPC_TXID_MAX + 1]) told, n);
    if (rc)
        log_warn("cannot mark %zu decisions told; they are marked again", n);
    nodert_enter(&e->rt, &box);
    for (i = 0; i < n; i++) {
        node_write_init(&w, NODE_WRITE_TOLD, told[i]);
        replica_persisted(&e->drv, &w, rc);
    }
    nodert_leave(&e->rt);
    nodert_hand_off(&e->rt, &box);
    free(told);
}

/* Posts outcomes[0..n) to every other replica, in batches a replica takes. */
static void announce(struct engine *e, const struct msg *outcomes, size_t n)
{
    struct http_call calls[TPC_MAX_REPLICAS];
    char urls[TPC_MAX_REPLICAS][CONFIG_URL_MAX + 16];
    struct http_client *hc = http_pool_get(e->pool);
    size_t k, i, chunk, n_calls;
    uint32_t a;

    for (k = 0; hc && k < n; k += chunk) {
        json_t *batch;
        char *body;

        chunk = n - k < CODEC_MAX_BATCH ? n - k : CODEC_MAX_BATCH;
        batch = codec_encode_batch(&outcomes[k], chunk);
        body = batch ? json_dumps(batch, JSON_COMPACT) : NULL;
        json_decref(batch);
        if (!body)
            break;
        for (a = 0, n_calls = 0; a < e->cfg->n_replicas; a++) {
            if (a == e->cfg->self)
                continue;
            snprintf(urls[n_calls], sizeof(urls[n_calls]), "%s/v1/paxos", e->cfg->replicas[a]);
            memset(&calls[n_calls], 0, sizeof(calls[n_calls]));
            calls[n_calls].url = urls[n_calls];
            calls[n_calls].body = body;
            calls[n_calls].body_len = strlen(body);
            n_calls++;
        }
        http_client_post_all(hc, calls, n_calls, e->cfg->prepare_ms);
        for (i = 0; i < n_calls; i++)
            free(calls[i].response); /* best effort: an answer says nothing we need */
        free(body);
    }
    http_pool_put(e->pool, hc);
}

void engine_flush(struct engine *e, bool told, bool announcements)
{
    struct engine_later *l = &e->later;
    struct msg *outcomes;
    size_t n;

    pthread_mutex_lock(&l->mu);
    if (l->dropped) {
        log_warn("%zu outcome announcements or told marks dropped (buffers full): other "
                 "replicas learn them by asking, a restart tells them again",
                 l->dropped);
        l->dropped = 0;
    }
    pthread_mutex_unlock(&l->mu);
    if (told)
        flush_told(e);
    /* One announcer at a time; it goes on while more gather, so none is left behind. */
    while (announcements) {
        outcomes = NULL;
        n = 0;
        pthread_mutex_lock(&l->mu);
        if (!l->announcing && l->n_outcomes &&
            (outcomes = malloc(l->n_outcomes * sizeof(*outcomes))) != NULL) {
            n = l->n_outcomes;
            memcpy(outcomes, l->outcomes, n * sizeof(*outcomes));
            l->n_outcomes = 0;
            l->announcing = true;
        }
        pthread_mutex_unlock(&l->mu);
        if (!outcomes)
            return;
        if (e->cfg->n_replicas > 1)
            announce(e, outcomes, n);
        free(outcomes);
        pthread_mutex_lock(&l->mu);
        l->announcing = false;
        pthread_mutex_unlock(&l->mu);
    }
}

/* ---- one round ---- */

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

/* Sorts box's items into r; answers for the caller go to *answers. */
static void sort_items(struct engine *e, struct round *r, struct nodert_box *items,
                       struct nodert_box *answers)
{
    const struct coord_config *cfg = e->cfg;
    char path[TPC_TXID_MAX + 64];
    size_t i;

    for (i = 0; i < items->n; i++) {
        struct nodert_item *it = &items->items[i];
        const char *purl;
        struct call *k;

        if (it->write) {
            if (it->w.kind == NODE_WRITE_LEARNED) {
                r->learned[r->n_learned].type = MSG_OUTCOME;
                memcpy(r->learned[r->n_learned].txid, it->w.txid, sizeof(it->w.txid));
                r->learned[r->n_learned++].outcome = it->w.outcome;
            }
            r->writes[r->n_writes++] = it->w;
            continue;
        }
        switch (it->to.kind) {
        case NODE_REPLICA:
            if (it->m.type == MSG_OUTCOME)
                later_announce(e, &it->m);
            else if (it->to.id == cfg->self)
                r->self_in[r->n_self++] = it->m;
            else if (it->to.id < cfg->n_replicas)
                r->per_acc[it->to.id * r->cap + r->n_acc[it->to.id]++] = it->m;
            break;
        case NODE_PARTICIPANT:
            purl = config_participant_url(cfg, it->to.name);
            if (!purl) {
                log_warn("%s: no URL for participant %s", it->m.txid, it->to.name);
                break;
            }
            /* Votes come back here and go to the acceptors from here, in one batch per
             * acceptor for all participants: one durable write per acceptor (leader.h
             * rule 5). */
            snprintf(path, sizeof(path), "/v1/branches/%s/%s", it->m.txid,
                     it->m.type == MSG_PREPARE                ? "prepare?relay=1"
                     : it->m.outcome == TPC_OUTCOME_COMMITTED ? "commit"
                                                              : "abort");
            k = add_call(r, purl, path,
                         it->m.type == MSG_PREPARE ? codec_encode(&it->m) : json_object());
            if (k)
                memcpy(k->participant, it->to.name, sizeof(k->participant));
            break;
        case NODE_CALLER:
            if (answers && answers->n < answers->cap) {
                answers->items[answers->n++] = *it;
                break;
            }
            if (answers) { /* grow, keeping what is there */
                size_t cap = answers->cap ? answers->cap * 2 : 4;
                struct nodert_item *bigger = realloc(answers->items, cap * sizeof(*bigger));

                if (bigger) {
                    answers->items = bigger;
                    answers->cap = cap;
                    answers->items[answers->n++] = *it;
                }
            }
            break;
        case NODE_CLIENT:
            break; /* waiters read the driver's answer (replica_view) themselves */
        }
    }
}

/* Feeds one answer body of a call to the driver. Under the lock. */
static void feed_answer(struct engine *e, struct call *k)
{
    struct msg *answers = NULL, one;
    struct node_addr from =
        k->replica >= 0 ? node_replica((uint32_t)k->replica) : node_participant(k->participant);
    char err[256];
    size_t got = 0, j;
    json_t *body;

    if (k->http.err != TPC_OK || k->http.status != 200 ||
        !(body = json_loadb(k->http.response, k->http.response_len, 0, NULL))) {
        log_debug("%s: %s (status %ld)", k->url, k->http.err ? k->http.error : "error",
                  k->http.status);
        return;
    }
    if (k->replica >= 0) {
        /* One answer per message sent, at most. */
        answers = calloc(k->n_msgs ? k->n_msgs : 1, sizeof(*answers));
        if (!answers || codec_decode_batch(body, e->cfg->n_replicas, answers, k->n_msgs, &got, err,
                                           sizeof(err)) != TPC_OK)
            log_warn("bad answer from %s: %s", k->url, answers ? err : "out of memory");
        /* An acceptor answers for itself only: a misconfigured replica list must not let one
         * replica's answer count as another's. */
        for (j = 0; j < got; j++)
            if (answers[j].acceptor == (uint32_t)k->replica &&
                replica_receive(&e->drv, &from, &answers[j], err, sizeof(err)) != TPC_OK)
                log_warn("answer from %s refused: %s", k->url, err);
    } else if (codec_decode(body, e->cfg->n_replicas, &one, err, sizeof(err)) == TPC_OK) {
        if (replica_receive(&e->drv, &from, &one, err, sizeof(err)) != TPC_OK)
            log_warn("answer from %s refused: %s", k->url, err);
    } else {
        log_warn("bad answer from %s: %s", k->url, err);
    }
    free(answers);
    json_decref(body);
}

/* Carries out r's writes (on this thread) and returns each one's result in rcs. */
static void do_writes(struct engine *e, struct round *r, enum tpc_err *rcs)
{
    enum tpc_err learned_rc = TPC_OK;
    size_t i;

    if (r->n_learned &&
        (learned_rc = acc_store_record_learned(e->store, r->learned, r->n_learned)) != TPC_OK)
        log_error("cannot record %zu decisions of other replicas", r->n_learned);
    for (i = 0; i < r->n_writes; i++) {
        struct node_write *w = &r->writes[i];

        switch (w->kind) {
        case NODE_WRITE_ROUND:
            rcs[i] = acc_store_next_round(e->store, w->round, &w->round);
            if (rcs[i])
                log_error("%s: cannot reserve a recovery round", w->txid);
            else
                log_info("%s: recovery with ballot (%llu,%u)", w->txid,
                         (unsigned long long)w->round, e->cfg->self);
            break;
        case NODE_WRITE_DECISION:
            rcs[i] = acc_store_record_decision(e->store, w->txid, w->outcome, &w->parts);
            if (rcs[i])
                log_error("%s: cannot record the decision %s", w->txid,
                          msg_outcome_name(w->outcome));
            else
                failpoint("leader-after-decide");
            log_debug("%s %s", w->txid, msg_outcome_name(w->outcome));
            break;
        case NODE_WRITE_LEARNED:
            rcs[i] = learned_rc;
            break;
        case NODE_WRITE_TOLD:
            /* Written in bulk by engine_flush, which feeds the completion then. */
            rcs[i] = later_told(e, w->txid) ? TPC_ERR_STATE : TPC_ERR_IO;
            break;
        default:
            rcs[i] = TPC_ERR_INVALID;
        }
    }
}

void engine_round(struct engine *e, struct nodert_box *box, struct nodert_box *answers)
{
    const struct coord_config *cfg = e->cfg;
    struct nodert_box items;
    struct http_call *calls = NULL;
    struct http_client *hc = NULL;
    struct round *r;
    enum tpc_err *rcs = NULL;
    char err[256];
    size_t i, k;
    uint32_t a;

    nodert_box_move(&items, box);
    if (!items.n)
        return;
    r = round_new(items.n, cfg->n_replicas);
    if (!r || !(rcs = calloc(items.n, sizeof(*rcs)))) {
        log_error("out of memory for a round of %zu messages (resent later)", items.n);
        round_free(r);
        give_up(e, &items);
        nodert_box_free(&items);
        return;
    }
    sort_items(e, r, &items, answers);
    for (a = 0; a < cfg->n_replicas; a++) {
        size_t chunk;

        for (k = 0; k < r->n_acc[a]; k += chunk) {
            const struct msg *first = &r->per_acc[a * r->cap + k];
            struct call *c;

            chunk = batch_size(first, r->n_acc[a] - k);
            c = add_call(r, cfg->replicas[a], "/v1/paxos", codec_encode_batch(first, chunk));
            if (c) {
                c->replica = (int)a;
                c->n_msgs = chunk;
            }
        }
    }
    /* A fault test: the leader sends its first prepare alone, then dies. */
    if (failpoint_armed("leader-after-some-prepares") && r->n_calls > 1 &&
        strstr(r->calls[0].url, "/prepare")) {
        struct http_client *one = http_pool_get(e->pool);

        if (one)
            http_client_post_all(one, &r->calls[0].http, 1, cfg->prepare_ms);
        failpoint("leader-after-some-prepares");
    }
    /* The calls leave first; this replica's own acceptor and the writes run on this thread
     * while they are out; then their answers are collected. */
    calls = r->n_calls ? malloc(r->n_calls * sizeof(*calls)) : NULL;
    hc = calls ? http_pool_get(e->pool) : NULL;
    if (hc) {
        for (k = 0; k < r->n_calls; k++)
            calls[k] = r->calls[k].http;
        http_client_start(hc, calls, r->n_calls, cfg->prepare_ms);
    }
    if (r->n_self && acc_store_handle(e->store, r->self_in, r->n_self, r->self_out, NULL) != TPC_OK)
        r->n_self = 0; /* nothing durable: no answers */
    do_writes(e, r, rcs);
    if (hc) {
        http_client_finish(hc, calls, r->n_calls);
        for (k = 0; k < r->n_calls; k++)
            r->calls[k].http = calls[k];
        http_pool_put(e->pool, hc);
    }
    free(calls);
    for (k = 0; k < r->n_calls; k++) /* its health, for choosing where votes go first */
        if (r->calls[k].replica >= 0)
            atomic_store(&e->quiet_until[r->calls[k].replica],
                         r->calls[k].http.err == TPC_OK && r->calls[k].http.status == 200
                             ? 0
                             : nodert_now_ms() + 1000);
    nodert_enter(&e->rt, box);
    flight_back(e, &items);
    for (i = 0; i < r->n_self; i++) {
        struct node_addr self = node_replica(cfg->self);

        if (r->self_out[i].type &&
            replica_receive(&e->drv, &self, &r->self_out[i], err, sizeof(err)) != TPC_OK)
            log_warn("own acceptor's answer refused: %s", err);
    }
    for (k = 0; k < r->n_calls; k++)
        feed_answer(e, &r->calls[k]);
    for (i = 0; i < r->n_writes; i++)
        if (rcs[i] != TPC_ERR_STATE) /* told marks: completed by engine_flush */
            replica_persisted(&e->drv, &r->writes[i], rcs[i]);
    replica_check(&e->drv);
    nodert_leave(&e->rt);
    free(rcs);
    round_free(r);
    nodert_box_free(&items);
}

void engine_run(void *ctx, struct nodert_box *box)
{
    struct engine *e = ctx;
    int rounds;

    /* Bounded: a driver that kept asking would be a bug, not a reason to spin. The timers
     * resend whatever is left. */
    for (rounds = 0; box->n && rounds < 64; rounds++)
        engine_round(e, box, NULL);
    if (box->n) { /* given up: the driver's timers redo what is left */
        struct nodert_box left;

        log_warn("%zu actions left after %d rounds: given up", box->n, rounds);
        nodert_box_move(&left, box);
        give_up(e, &left);
        nodert_box_free(&left);
    }
    nodert_box_free(box);
    engine_flush(e, false, true); /* the other replicas learn outcomes without waiting */
}

uint32_t engine_relay_targets(struct engine *e)
{
    uint32_t n = e->cfg->n_replicas, f = n / 2, mask = 1u << e->cfg->self, got = 0, k;
    int64_t now = nodert_now_ms();

    for (k = 1; k < n && got < f; k++) {
        uint32_t a = (e->cfg->self + k) % n;

        if (atomic_load(&e->quiet_until[a]) <= now) {
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

/* The sweep's candidates, from the last query the ticker made outside the driver's lock (a
 * scan of the acceptor table must not hold every other event up). Each list is given once. */
static size_t io_stale(void *ctx, uint64_t age, struct node_txn *out, size_t cap)
{
    struct engine *e = ctx;
    size_t n = e->n_stale < cap ? e->n_stale : cap;

    (void)age; /* the ticker queried with the same age, the configured stale_ms */
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
    struct nodert_box *box = e->rt.cur;
    size_t before = box ? box->n : 0;

    nodert_io_send(&e->rt, to, m);
    if (box && box->n > before && answered(&box->items[box->n - 1]))
        flight_change(e, m->txid, +1);
}

static bool io_in_flight(void *ctx, const char *txid)
{
    struct engine *e = ctx;

    return txmap_get(&e->flight, txid) != NULL;
}

static void flight_free(void *ctx, struct txmap_entry *en)
{
    (void)ctx;
    free(en);
}

static void tick(void *arg)
{
    struct engine *e = arg;
    struct nodert_box box = {0};
    struct node_txn stale[ENGINE_STALE_MAX];
    int64_t now = nodert_now_ms();
    size_t n = 0;
    bool queried = false;

    if (now - e->stale_at >= (int64_t)e->cfg->stale_ms / 2) {
        n = acc_store_stale(e->store, e->cfg->stale_ms, stale, ENGINE_STALE_MAX);
        e->stale_at = now;
        queried = true;
    }
    nodert_enter(&e->rt, &box);
    if (queried) {
        memcpy(e->stale, stale, n * sizeof(*stale));
        e->n_stale = n;
    }
    replica_tick(&e->drv);
    replica_check(&e->drv);
    nodert_leave(&e->rt);
    /* Announcements are HTTP calls, which a worker makes (engine_run ends with them), so that
     * a silent replica cannot hold up the ticks: one gathered meanwhile gets a worker. */
    pthread_mutex_lock(&e->later.mu);
    box.nudge = box.nudge || (e->later.n_outcomes && !e->later.announcing);
    pthread_mutex_unlock(&e->later.mu);
    nodert_hand_off(&e->rt, &box);
    engine_flush(e, true, false);
}

enum tpc_err engine_open(struct engine *e, const struct coord_config *cfg, struct acc_store *store,
                         char *err, size_t errlen)
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
    struct nodert_box box = {0};
    enum tpc_err rc_;

    memset(e, 0, sizeof(*e));
    e->cfg = cfg;
    e->store = store;
    pthread_mutex_init(&e->later.mu, NULL);
    e->later.outcomes = calloc(ENGINE_LATER_MAX, sizeof(*e->later.outcomes));
    e->later.told = calloc(ENGINE_LATER_MAX, sizeof(*e->later.told));
    e->pool = http_pool_new(cfg->cluster_token);
    if (txmap_init(&e->flight) != TPC_OK || !e->later.outcomes || !e->later.told || !e->pool)
        return tpc_errbuf_set(err, errlen, TPC_ERR_NOMEM, "out of memory");
    rc_ = replica_init(&e->drv, &rc, &io);
    if (rc_)
        return tpc_errbuf_set(err, errlen, rc_, "cannot start the replica driver");
    e->drv_up = true;
    rc_ = nodert_init(&e->rt, ENGINE_WORKERS, engine_run, e);
    e->rt_up = true;
    if (rc_)
        return tpc_errbuf_set(err, errlen, rc_, "cannot start the worker threads");
    nodert_enter(&e->rt, &box);
    rc_ = replica_start(&e->drv);
    if (replica_size(&e->drv))
        log_info("resuming: %zu decided transaction(s) still to tell their participants",
                 replica_size(&e->drv));
    nodert_leave(&e->rt);
    nodert_hand_off(&e->rt, &box);
    if (rc_)
        return tpc_errbuf_set(err, errlen, rc_, "cannot resume the decisions owed");
    if (ticker_start(&e->bg, 20, tick, e) != TPC_OK)
        return tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot start the background thread");
    return TPC_OK;
}

void engine_close(struct engine *e)
{
    ticker_stop(&e->bg);
    if (e->rt_up) {
        nodert_stop(&e->rt); /* what the workers had is carried out */
        if (e->drv_up && e->later.outcomes && e->later.told)
            engine_flush(e, true, true);
        nodert_fini(&e->rt);
    }
    if (e->drv_up)
        replica_fini(&e->drv);
    e->rt_up = e->drv_up = false;
    if (e->flight.bucket) {
        txmap_each(&e->flight, flight_free, NULL);
        txmap_fini(&e->flight);
    }
    pthread_mutex_destroy(&e->later.mu);
    free(e->later.outcomes);
    free(e->later.told);
    http_pool_free(e->pool);
}
