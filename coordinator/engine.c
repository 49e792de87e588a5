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
#include "outbound.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "failpoint.h"
#include "log.h"

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
void engine_flight_change(struct engine *e, const char *txid, int delta)
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

bool engine_prepare_out(struct engine *e, const char *txid)
{
    struct flight *f = (struct flight *)txmap_get(&e->flight, txid);

    if (f)
        f->prepares++;
    return f != NULL; /* not counted: nothing will be held back for it */
}

/* Inside an event: a prepare of txid is back. Once none is out, what was held back goes into
 * this event's box, to leave with what the event itself asks for. */
void engine_unpark(struct engine *e, const char *txid)
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
            engine_flight_change(e, it->m.txid, -1);
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
void engine_changed(struct engine *e, const char *txid)
{
    if (e->on_change)
        e->on_change(e->owner, txid);
}

/* A write that will not be carried out: it failed (the driver writes it again). */
void engine_write_failed(struct engine *e, const struct node_write *w)
{
    engine_enter(e);
    replica_persisted(&e->drv, w, TPC_ERR_NOMEM);
    engine_leave(e, NULL);
}

/* msgs[0..n) will not be answered: they are not on their way (any more). */
void engine_flight_back(struct engine *e, const struct msg *msgs, size_t n)
{
    size_t i;

    engine_enter(e);
    for (i = 0; i < n; i++)
        engine_flight_change(e, msgs[i].txid, -1);
    engine_leave(e, NULL);
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
        int pi;

        if (it->write) {
            if (it->w.kind == NODE_WRITE_TOLD) {
                outbound_told_later(e, &it->w);
            } else if (it->w.kind == NODE_WRITE_LEARNED && learned) {
                memset(&learned[n_learned], 0, sizeof(learned[n_learned]));
                learned[n_learned].type = MSG_OUTCOME;
                memcpy(learned[n_learned].txid, it->w.txid, sizeof(it->w.txid));
                learned[n_learned].born = it->w.born;
                learned[n_learned++].outcome = it->w.outcome;
            } else if (it->w.kind == NODE_WRITE_ROUND || it->w.kind == NODE_WRITE_DECISION) {
                outbound_write(e, &it->w, NULL, 0);
            } else {
                engine_write_failed(e, &it->w);
            }
            continue;
        }
        switch (it->to.kind) {
        case NODE_REPLICA:
            if (it->m.type == MSG_OUTCOME)
                outbound_announce_later(e, &it->m);
            else if (it->to.id < cfg->n_replicas && park(e, it))
                break;
            else if (it->to.id < cfg->n_replicas && per_acc)
                per_acc[it->to.id * cap + n_acc[it->to.id]++] = it->m;
            else if (it->to.id < cfg->n_replicas) /* no memory: lost, as the network may */
                engine_flight_change(e, it->m.txid, -1);
            break;
        case NODE_PARTICIPANT:
            pi = config_participant_index(cfg, it->to.name);
            if (pi < 0) {
                log_warn("%s: no URL for participant %s", it->m.txid, it->to.name);
                engine_flight_change(e, it->m.txid, -1);
                break;
            }
            purl = cfg->participant_url[pi];
            if (it->m.type == MSG_OUTCOME) {
                outbound_outcome(e, (uint32_t)pi, &it->m);
                break;
            }
            /* Votes come back here and go to the acceptors from here, in one batch per
             * acceptor for all participants: one durable write per acceptor (leader.h
             * rule 5). */
            snprintf(path, sizeof(path), "/v1/branches/%s/prepare?relay=1", it->m.txid);
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
            outbound_call(e, purl, path, codec_encode(&it->m), -1, it->to.name, &it->m, 1);
            break;
        case NODE_CALLER:
            if (answers) {
                if (answers->n == answers->cap) {
                    size_t ncap = answers->cap ? answers->cap * 2 : 4;
                    struct nodert_item *bigger = realloc(answers->items, ncap * sizeof(*bigger));

                    if (!bigger)
                        break;
                    answers->items = bigger;
                    answers->cap = ncap;
                }
                answers->items[answers->n++] = *it;
            }
            break;
        case NODE_CLIENT:
            engine_changed(e, it->m.txid);
            break;
        }
    }
    if (n_learned)
        outbound_write(e, &(struct node_write){.kind = NODE_WRITE_LEARNED}, learned, n_learned);
    for (a = 0; a < cfg->n_replicas && per_acc; a++) {
        for (k = 0; k < n_acc[a]; k += chunk) {
            const struct msg *first = &per_acc[a * cap + k];

            chunk = outbound_batch_size(first, n_acc[a] - k);
            if (a == cfg->self)
                outbound_self(e, first, chunk);
            else
                outbound_call(e, cfg->replicas[a], "/v1/paxos", codec_encode_batch(first, chunk),
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

static enum tpc_outcome io_decision(void *ctx, const char *txid, struct msg_parts *parts,
                                    uint64_t *born)
{
    struct engine *e = ctx;
    enum tpc_outcome o = TPC_OUTCOME_NONE;

    if (parts)
        memset(parts, 0, sizeof(*parts));
    if (acc_store_decision(e->store, txid, &o, parts, born) != TPC_OK)
        return TPC_OUTCOME_NONE;
    return o;
}

static void io_acceptor_parts(void *ctx, const char *txid, struct msg_parts *parts, uint64_t *born)
{
    struct engine *e = ctx;

    if (acc_store_parts(e->store, txid, parts, born) != TPC_OK) {
        memset(parts, 0, sizeof(*parts));
        *born = 0;
    }
}

static uint64_t io_wall(void *ctx)
{
    struct timespec ts;

    (void)ctx;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t io_horizon(void *ctx)
{
    struct engine *e = ctx;

    return acc_store_horizon(e->store);
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
        engine_flight_change(e, m->txid, +1);
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
    outbound_flush_told(e);
    if (now - e->announced_at >= ENGINE_ANNOUNCE_MS) {
        e->announced_at = now;
        outbound_flush_announcements(e);
    }
    if (now - e->collected_at >= ENGINE_COLLECT_MS) {
        e->collected_at = now;
        outbound_collect(e);
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
                         .wall = io_wall,
                         .horizon = io_horizon,
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
    outbound_outcomes_drop(e);
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
    outbound_outcomes_drop(e); /* queued by completions that came back meanwhile: none */
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
