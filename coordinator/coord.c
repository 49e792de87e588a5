/*
 * coord.c - see coord.h.
 *
 * The leader core (shared/leader.c) is pure: it emits messages into an outbox.
 * drive() carries one round of them at a time, all in parallel: PREPARE and
 * OUTCOME to participants' HTTP endpoints, phase 1a/2a to the acceptors
 * (this replica's own in-process, the others' over /v1/paxos in one batch
 * each), OUTCOME to the other replicas; and feeds every answer back to the
 * leader, which fills the next round. Timers (resends, recovery rounds) come
 * from leader_tick.
 *
 * A commit is answered as soon as the leader knows the outcome is chosen: every
 * participant's vote chosen (accepted by F+1 acceptors, each after its fsync),
 * which makes the decision durable with no write of the leader's own (DESIGN
 * section 2). The rest happens off the client's critical path, on a teller
 * thread: the decision record at this replica, telling the participants, and
 * marking the decision told once all acknowledge. A client that asks
 * {"wait": "applied"} is answered only after that first round of telling.
 *
 * Invariants:
 *   1. One driver per transaction at a time: t->mu is held while driving.
 *   2. A client is told an outcome only once it is chosen (leader.h's decision
 *      rule); this leader tells participants only after its decision record is
 *      durable (acc_store_record_decision), so that a restart resumes telling.
 *      (A participant that asks may learn a chosen outcome before that: safe.)
 *   3. A recovery round is durable (acc_store_next_round) before its phase 1a
 *      messages leave (leader.h rule 4).
 */
#include "coord.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "acc_store.h"
#include "codec.h"
#include "failpoint.h"
#include "fsync_vfs.h"
#include "http_client.h"
#include "leader.h"
#include "log.h"
#include "table.h"
#include "ticker.h"

enum ctx_state {
    CTX_ACTIVE,
    CTX_PREPARING,
    CTX_RECOVERING,
    CTX_DECIDED,
};

static const char *const state_names[] = {"active", "preparing", "in_doubt", "decided"};

struct out_item {
    enum leader_dest dest;
    uint32_t id;
    struct msg m;
};

struct outbox {
    struct out_item *items;
    size_t n, cap;
    bool oom;
};

/* Decided transactions whose record and telling are left to the teller threads. */
#define COORD_TELLERS    16
#define COORD_TELL_QUEUE 4096

struct tellers {
    pthread_mutex_t mu;
    pthread_cond_t more;
    char (*txids)[TPC_TXID_MAX + 1]; /* a ring of COORD_TELL_QUEUE */
    size_t head, n;
    bool stop;
    pthread_t threads[COORD_TELLERS];
    size_t started;
};

/*
 * What goes in bulk: outcomes for the other replicas (one batch each, recorded there in one
 * write), sent when a teller is done unless a batch is on its way already, and by every
 * background pass (20 ms); and the told marks (one write per background pass). Neither is needed
 * for safety: a lost announcement leaves the other replicas to learn by asking, a lost told mark
 * makes a restarted leader tell again what was told.
 */
#define COORD_LATER_MAX 4096

struct later {
    pthread_mutex_t mu;
    struct msg *outcomes;
    size_t n_outcomes;
    char (*told)[TPC_TXID_MAX + 1];
    size_t n_told;
    bool announcing; /* an announcement is under way; others wait for the next chance */
    size_t dropped;  /* entries that found a buffer full, since the last flush */
};

struct ctxn {
    struct table_entry e; /* e.id: the txid */
    pthread_mutex_t mu;   /* invariant 1 */
    enum ctx_state state;
    struct msg_parts parts; /* enlisted while ACTIVE; fixed once committing */
    int64_t created, deadline, decided_at;
    bool leading;
    struct leader_txn leader;
    struct outbox out;
    enum tpc_outcome outcome;
    bool recorded;       /* the decision record is durable here (invariant 2) */
    bool queued;         /* waiting for a teller: the background pass leaves it alone */
    bool told;           /* every participant acknowledged the outcome */
    bool foreign;        /* recovered here, begun at another replica (counted once) */
    _Atomic int learned; /* an outcome another replica told us (enum tpc_outcome) */
};

struct coord {
    struct coord_config cfg;
    struct acc_store *store;
    struct http_pool *cluster; /* calls with the cluster token */
    struct table txns;
    struct ticker bg; /* deadlines, unfinished leaders, the sweep: every 20 ms */
    _Atomic uint64_t recoveries, committed, aborted;
    _Atomic uint64_t recovered_foreign; /* transactions recovered here that another replica led */
    struct metrics_hist commit_time;    /* client commit calls, from request to answer */
    struct tellers tell;                /* decided transactions to record and tell */
    struct later later;                 /* outcomes to announce, told marks to write */
    /* Per replica: until when (mono ms) it counts as unresponsive, after a call to it failed. */
    _Atomic int64_t quiet_until[TPC_MAX_REPLICAS];
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t rnd(void)
{
    static _Thread_local uint64_t x;

    if (!x && (getrandom(&x, sizeof(x), 0) != sizeof(x) || !x))
        x = (uint64_t)mono_ms() | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

static void set_error(struct coord_error *e, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_error(struct coord_error *e, int status, const char *code, const char *fmt, ...)
{
    va_list ap;

    e->status = status;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

/* ---- the transaction table ---- */

static struct table_entry *ctxn_create(void *ctx, const char *id)
{
    struct ctxn *t = calloc(1, sizeof(*t));

    (void)ctx;
    (void)id;
    if (!t)
        return NULL;
    pthread_mutex_init(&t->mu, NULL);
    t->created = mono_ms();
    return &t->e;
}

static void ctxn_destroy(struct table_entry *e)
{
    struct ctxn *t = (struct ctxn *)e;

    free(t->out.items);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static struct ctxn *txn_get(struct coord *c, const char *txid, bool create)
{
    return (struct ctxn *)table_get(&c->txns, txid, create);
}

static void txn_put(struct coord *c, struct ctxn *t)
{
    table_put(&c->txns, &t->e);
}

/* ---- driving the leader ---- */

static void outbox_add(void *ctx, enum leader_dest dest, uint32_t id, const struct msg *m)
{
    struct outbox *o = ctx;

    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 32;
        struct out_item *bigger = realloc(o->items, cap * sizeof(*bigger));

        if (!bigger) {
            o->oom = true; /* lost messages are resent by leader_tick */
            return;
        }
        o->items = bigger;
        o->cap = cap;
    }
    o->items[o->n++] = (struct out_item){dest, id, *m};
}

static void later_announce(struct coord *c, const struct msg *m)
{
    struct later *l = &c->later;

    pthread_mutex_lock(&l->mu);
    if (l->n_outcomes < COORD_LATER_MAX) /* else dropped: see struct later */
        l->outcomes[l->n_outcomes++] = *m;
    else
        l->dropped++;
    pthread_mutex_unlock(&l->mu);
}

static void later_told(struct coord *c, const char *txid)
{
    struct later *l = &c->later;

    pthread_mutex_lock(&l->mu);
    if (l->n_told < COORD_LATER_MAX)
        memcpy(l->told[l->n_told++], txid, sizeof(l->told[0]));
    else
        l->dropped++;
    pthread_mutex_unlock(&l->mu);
}

/* Sends the outcomes gathered since the last pass and writes the told marks. */
/* told_too: also the told marks (the background pass); a teller announces outcomes only,
 * unless another announcement is on its way, which makes announcements batch under load. */
static void later_flush(struct coord *c, bool told_too)
{
    struct later *l = &c->later;
    struct msg *outcomes = NULL;
    char(*told)[TPC_TXID_MAX + 1] = NULL;
    struct http_call calls[TPC_MAX_REPLICAS];
    char urls[TPC_MAX_REPLICAS][CONFIG_URL_MAX + 16], *body = NULL;
    size_t n_out, n_told, n = 0, i;
    struct http_client *hc;
    bool mine;
    uint32_t a;

    /* Copies of what is gathered, sized by it: this runs often, mostly with little. The
     * told marks are written whatever else happens; outcomes go out in one announcement at
     * a time (the others gather meanwhile). */
    pthread_mutex_lock(&l->mu);
    if (l->dropped) {
        log_warn("%zu outcome announcements or told marks dropped (buffers full): other "
                 "replicas learn them by asking, a restart tells them again",
                 l->dropped);
        l->dropped = 0;
    }
    mine = !l->announcing;
    l->announcing = true;
    n_out = mine ? l->n_outcomes : 0;
    n_told = told_too ? l->n_told : 0;
    if (n_out && (outcomes = malloc(n_out * sizeof(*outcomes))))
        memcpy(outcomes, l->outcomes, n_out * sizeof(*outcomes));
    if (n_told && (told = malloc(n_told * sizeof(*told))))
        memcpy(told, l->told, n_told * sizeof(*told));
    l->n_outcomes = outcomes ? 0 : l->n_outcomes;
    l->n_told = told ? 0 : l->n_told;
    pthread_mutex_unlock(&l->mu);
    n_out = outcomes ? n_out : 0;
    n_told = told ? n_told : 0;
    if (n_told && acc_store_mark_told_many(c->store, (const char(*)[TPC_TXID_MAX + 1]) told,
                                           n_told) != TPC_OK)
        log_warn("cannot mark %zu decisions told; a restart tells them again", n_told);
    if (!mine)
        goto out_told;
    if (!n_out || c->cfg.n_replicas < 2)
        goto out;
    {
        json_t *batch = codec_encode_batch(outcomes, n_out);

        body = batch ? json_dumps(batch, JSON_COMPACT) : NULL;
        json_decref(batch);
    }
    if (!body)
        goto out;
    for (a = 0; a < c->cfg.n_replicas; a++) {
        if (a == c->cfg.self)
            continue;
        snprintf(urls[n], sizeof(urls[n]), "%s/v1/paxos", c->cfg.replicas[a]);
        memset(&calls[n], 0, sizeof(calls[n]));
        calls[n].url = urls[n];
        calls[n].body = body;
        calls[n].body_len = strlen(body);
        n++;
    }
    hc = http_pool_get(c->cluster);
    if (hc) {
        http_client_post_all(hc, calls, n, c->cfg.prepare_ms);
        http_pool_put(c->cluster, hc);
    }
    for (i = 0; i < n; i++)
        free(calls[i].response); /* best effort: an answer says nothing we need */
out:
    pthread_mutex_lock(&l->mu);
    l->announcing = false;
    pthread_mutex_unlock(&l->mu);
out_told:
    free(body);
    free(outcomes);
    free(told);
}

/* One HTTP call of a round, and how to read its answer. */
struct call {
    struct http_call http;
    char url[CONFIG_URL_MAX + 128];
    char *body;
    bool batch; /* the answer is a {"messages": [...]} batch, else one message */
    bool ignore;
    int replica; /* the acceptor called, or -1 */
};

struct round {
    struct call *calls;
    size_t n;
    struct msg *self_in, *self_out; /* for this replica's own acceptor: room for the round */
    size_t n_self;
};

static struct call *add_call(struct round *r, const char *url, const char *path, json_t *body,
                             bool batch)
{
    struct call *k = &r->calls[r->n];

    memset(k, 0, sizeof(*k));
    snprintf(k->url, sizeof(k->url), "%s%s", url, path);
    k->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!k->body)
        return NULL;
    k->http.url = k->url;
    k->http.body = k->body;
    k->http.body_len = strlen(k->body);
    k->batch = batch;
    k->replica = -1;
    r->n++;
    return k;
}

static void feed(struct coord *c, struct ctxn *t, const struct msg *m)
{
    struct leader_out out = {outbox_add, &t->out};
    char err[256];

    if (strcmp(m->txid, t->e.id) != 0)
        return;
    if (leader_receive(&t->leader, m, (uint64_t)mono_ms(), rnd(), &out, err, sizeof(err)))
        log_warn("%s: answer refused: %s", t->e.id, err);
    (void)c;
}

/* Carries out the messages in items (one round) and feeds the answers to the leader. */
static void dispatch(struct coord *c, struct ctxn *t, struct out_item *items, size_t n)
{
    const struct coord_config *cfg = &c->cfg;
    /* Sized by the round, not by the maxima: a struct msg is over a kilobyte, and this runs
     * several times per transaction. Acceptor a's messages are per_acc[a * n ...]. */
    struct msg *per_acc = malloc((cfg->n_replicas * n + 1) * sizeof(*per_acc));
    size_t n_acc[TPC_MAX_REPLICAS] = {0};
    struct round *rp = calloc(1, sizeof(*rp));
    struct http_call *calls;
    struct http_client *hc = NULL;
    size_t i, k;
    uint32_t a;

    /* At most one call per participant message and one batch per acceptor (outcomes for the
     * other replicas go in bulk: later_announce). Large buffers live on the heap. */
    if (!per_acc || !rp || !(rp->self_in = malloc((n + 1) * sizeof(*rp->self_in))) ||
        !(rp->self_out = malloc((n + 1) * sizeof(*rp->self_out))) ||
        !(rp->calls = calloc(n + cfg->n_replicas + 1, sizeof(*rp->calls)))) {
        if (rp) {
            free(rp->self_in);
            free(rp->self_out);
        }
        free(per_acc);
        free(rp);
        return;
    }
    for (i = 0; i < n; i++) {
        struct out_item *it = &items[i];
        const char *purl;
        char path[TPC_TXID_MAX + 64];

        switch (it->dest) {
        case LEADER_TO_ACCEPTOR:
            if (it->id == cfg->self)
                rp->self_in[rp->n_self++] = it->m;
            else if (it->id < cfg->n_replicas)
                per_acc[it->id * n + n_acc[it->id]++] = it->m;
            break;
        case LEADER_TO_PARTICIPANT:
            purl = config_participant_url(cfg, t->leader.parts.name[it->id]);
            if (!purl) {
                log_warn("%s: no URL for participant %s", t->e.id, t->leader.parts.name[it->id]);
                break;
            }
            /* Votes come back here and go to the acceptors from here, in one batch per
             * acceptor for all participants: one durable write per acceptor (rule 5). */
            snprintf(path, sizeof(path), "/v1/branches/%s/%s", t->e.id,
                     it->m.type == MSG_PREPARE                ? "prepare?relay=1"
                     : it->m.outcome == TPC_OUTCOME_COMMITTED ? "commit"
                                                              : "abort");
            add_call(rp, purl, path,
                     it->m.type == MSG_PREPARE ? codec_encode(&it->m) : json_object(), false);
            break;
        case LEADER_TO_REPLICAS:
            later_announce(c, &it->m);
            break;
        }
    }
    for (a = 0; a < cfg->n_replicas; a++) {
        struct call *k2 = n_acc[a] ? add_call(rp, cfg->replicas[a], "/v1/paxos",
                                              codec_encode_batch(&per_acc[a * n], n_acc[a]), true)
                                   : NULL;

        if (k2)
            k2->replica = (int)a;
    }
    /* A fault test: the leader sends its first prepare alone, then dies. */
    if (failpoint_armed("leader-after-some-prepares") && n > 1 &&
        items[0].dest == LEADER_TO_PARTICIPANT && items[0].m.type == MSG_PREPARE && rp->n > 1) {
        struct http_client *one = http_pool_get(c->cluster);

        if (one)
            http_client_post_all(one, &rp->calls[0].http, 1, cfg->prepare_ms);
        failpoint("leader-after-some-prepares");
    }
    /* The network calls leave first; this replica's own acceptor runs in-process on this
     * thread while they are out; then their answers are collected. */
    calls = rp->n ? malloc(rp->n * sizeof(*calls)) : NULL;
    hc = calls ? http_pool_get(c->cluster) : NULL;
    if (hc) {
        for (k = 0; k < rp->n; k++)
            calls[k] = rp->calls[k].http;
        http_client_start(hc, calls, rp->n, cfg->prepare_ms);
    }
    if (rp->n_self &&
        acc_store_handle(c->store, rp->self_in, rp->n_self, rp->self_out, NULL) != TPC_OK)
        rp->n_self = 0; /* nothing durable: no answers */
    if (hc) {
        http_client_finish(hc, calls, rp->n);
        for (k = 0; k < rp->n; k++)
            rp->calls[k].http = calls[k];
        http_pool_put(c->cluster, hc);
    }
    free(calls);
    for (i = 0; i < rp->n_self; i++)
        if (rp->self_out[i].type)
            feed(c, t, &rp->self_out[i]);
    for (k = 0; k < rp->n; k++) {
        struct call *kc = &rp->calls[k];
        struct msg answers[TPC_MAX_PARTICIPANTS * 2], one;
        char err[256];
        size_t got = 0, j;
        json_t *body;

        if (!kc->ignore && kc->http.err == TPC_OK && kc->http.status == 200 &&
            (body = json_loadb(kc->http.response, kc->http.response_len, 0, NULL)) != NULL) {
            if (kc->batch) {
                if (codec_decode_batch(body, cfg->n_replicas, answers,
                                       sizeof(answers) / sizeof(answers[0]), &got, err,
                                       sizeof(err)) != TPC_OK)
                    log_warn("%s: bad answer from %s: %s", t->e.id, kc->url, err);
                /* An acceptor answers for itself only: a misconfigured replica list must
                 * not let one replica's answer count as another's. */
                for (j = 0; j < got; j++)
                    if (kc->replica < 0 || answers[j].acceptor == (uint32_t)kc->replica)
                        feed(c, t, &answers[j]);
            } else if (codec_decode(body, cfg->n_replicas, &one, err, sizeof(err)) == TPC_OK) {
                feed(c, t, &one);
            } else {
                log_warn("%s: bad answer from %s: %s", t->e.id, kc->url, err);
            }
            json_decref(body);
        } else if (!kc->ignore) {
            log_debug("%s: %s: %s (status %ld)", t->e.id, kc->url,
                      kc->http.err ? kc->http.error : "error", kc->http.status);
        }
        if (kc->replica >= 0) /* its health, for choosing where votes go first */
            atomic_store(&c->quiet_until[kc->replica],
                         kc->http.err == TPC_OK && kc->http.status == 200 ? 0 : mono_ms() + 1000);
        free(kc->http.response);
        free(kc->body);
    }
    free(rp->calls);
    free(rp->self_in);
    free(rp->self_out);
    free(rp);
    free(per_acc);
}

/* Makes the leader's decision visible: it is chosen, so clients may be told. Under t->mu. */
static void settle(struct coord *c, struct ctxn *t)
{
    enum tpc_outcome o = t->leader.decision;

    if (o == TPC_OUTCOME_NONE || t->outcome != TPC_OUTCOME_NONE)
        return;
    t->outcome = o;
    t->state = CTX_DECIDED;
    t->decided_at = mono_ms();
    if (o == TPC_OUTCOME_COMMITTED)
        atomic_fetch_add(&c->committed, 1);
    else
        atomic_fetch_add(&c->aborted, 1);
    log_debug("%s %s", t->e.id, msg_outcome_name(o));
}

/* Makes the decision durable here before any participant is told (invariant 2). Under t->mu. */
static bool record(struct coord *c, struct ctxn *t)
{
    if (t->recorded)
        return true;
    if (acc_store_record_decision(c->store, t->e.id, t->outcome, &t->leader.parts) != TPC_OK) {
        log_error("%s: cannot record the decision %s", t->e.id, msg_outcome_name(t->outcome));
        return false;
    }
    failpoint("leader-after-decide");
    t->recorded = true;
    return true;
}

/* Starts a recovery round (phase 1 with a fresh, durable ballot). Under t->mu. */
static void recover_round(struct coord *c, struct ctxn *t)
{
    struct leader_out out = {outbox_add, &t->out};
    uint64_t round;

    if (acc_store_next_round(c->store, leader_min_round(&t->leader), &round) != TPC_OK) {
        log_error("%s: cannot reserve a recovery round", t->e.id);
        return;
    }
    atomic_fetch_add(&c->recoveries, 1);
    /* Begun elsewhere (no begin here, no prepares sent from here): another replica's. */
    if (!t->foreign && !t->deadline && !t->leader.started) {
        t->foreign = true;
        atomic_fetch_add(&c->recovered_foreign, 1);
    }
    log_info("%s: recovery with ballot (%llu,%u)", t->e.id, (unsigned long long)round, c->cfg.self);
    leader_recover(&t->leader, round, (uint64_t)mono_ms(), rnd(), &out);
}

enum drive_until {
    DRIVE_DECIDED, /* stop once the outcome is chosen (a client is waiting for it) */
    DRIVE_TOLD,    /* stop after one round of telling the participants */
    DRIVE_DUE,     /* do only what is due (a background pass) */
};

/*
 * Runs t's leader until `until` (monotonic ms), or until `enough` is reached,
 * or until it has nothing left to do. Under t->mu.
 */
static void drive(struct coord *c, struct ctxn *t, int64_t until, enum drive_until enough)
{
    struct leader_out out = {outbox_add, &t->out};
    struct out_item *items;
    bool told = false, ticked = false;
    size_t n;

    while (t->leading) {
        int learned = atomic_exchange(&t->learned, TPC_OUTCOME_NONE);
        int64_t now = mono_ms();

        if (learned != TPC_OUTCOME_NONE && t->leader.decision == TPC_OUTCOME_NONE)
            leader_learn(&t->leader, (enum tpc_outcome)learned, (uint64_t)now, &out);
        settle(c, t);
        if (enough == DRIVE_DECIDED && t->outcome != TPC_OUTCOME_NONE)
            return; /* the teller records and tells */
        if (t->outcome != TPC_OUTCOME_NONE && !record(c, t))
            break; /* nobody is told before the record; the next drive tries again */
        if (t->out.n == 0) {
            int64_t wake;
            struct timespec ts;

            if (leader_done(&t->leader) || (enough == DRIVE_TOLD && told))
                break;
            /* What is due now is done even when `until` has come (a background drive). */
            if ((int64_t)t->leader.timer <= now && !ticked) {
                ticked = true;
                if (leader_tick(&t->leader, (uint64_t)now, rnd(), &out))
                    recover_round(c, t);
                continue;
            }
            if (now >= until)
                break;
            /* A retry timer, not a wait for a condition: nothing to do before it. */
            ticked = false;
            wake = (int64_t)t->leader.timer > now ? (int64_t)t->leader.timer : now + 1;
            wake = wake < until ? wake : until;
            ts.tv_sec = (wake - now) / 1000;
            ts.tv_nsec = ((wake - now) % 1000) * 1000000L;
            nanosleep(&ts, NULL);
            continue;
        }
        ticked = false;
        /* Take this round's messages; answers fill the next one. */
        items = t->out.items;
        n = t->out.n;
        t->out.items = NULL;
        t->out.n = t->out.cap = 0;
        told = told || t->leader.decision != TPC_OUTCOME_NONE;
        dispatch(c, t, items, n);
        free(items);
    }
    settle(c, t);
    if (t->leading && leader_done(&t->leader) && t->recorded && !t->told) {
        later_told(c, t->e.id); /* every participant acknowledged: nothing owed */
        t->told = true;
    }
}

/*
 * Where relayed votes go first: this replica's own acceptor and the next F replicas after it
 * that have answered lately (F+1 acceptors choose a vote; the others are sent it only if one
 * of these stays silent, at the leader's next tick). Each replica writes for itself and the F
 * before it, so the writes are spread evenly when clients are. 0 (all) when too few answer.
 */
static uint32_t relay_targets(struct coord *c)
{
    uint32_t n = c->cfg.n_replicas, f = n / 2, mask = 1u << c->cfg.self, got = 0, k;
    int64_t now = mono_ms();

    for (k = 1; k < n && got < f; k++) {
        uint32_t a = (c->cfg.self + k) % n;

        if (atomic_load(&c->quiet_until[a]) <= now) {
            mask |= 1u << a;
            got++;
        }
    }
    return got == f ? mask : 0;
}

/* ---- tellers: the decision record and the second phase, off the client's path ---- */

/* A leader with work left: participants to tell, or its decision to record or announce (a
 * transaction whose branches only read is done with its participants at once). Under t->mu. */
static bool owed(const struct ctxn *t)
{
    return t->leading && (!leader_done(&t->leader) ||
                          (t->outcome != TPC_OUTCOME_NONE && (!t->recorded || t->out.n)));
}

/* Queues t for a teller when its decision still has to be recorded or told. Under t->mu. */
static void tell_later(struct coord *c, struct ctxn *t)
{
    struct tellers *q = &c->tell;

    if (!owed(t) || t->queued)
        return;
    pthread_mutex_lock(&q->mu);
    /* A full queue leaves the work to the background pass, which drives every leader. */
    if (q->n < COORD_TELL_QUEUE && q->txids) {
        memcpy(q->txids[(q->head + q->n) % COORD_TELL_QUEUE], t->e.id, sizeof(q->txids[0]));
        q->n++;
        t->queued = true;
        pthread_cond_signal(&q->more);
    }
    pthread_mutex_unlock(&q->mu);
}

static void *teller(void *arg)
{
    struct coord *c = arg;
    struct tellers *q = &c->tell;
    char txid[TPC_TXID_MAX + 1];

    for (;;) {
        struct ctxn *t;

        pthread_mutex_lock(&q->mu);
        while (!q->n && !q->stop)
            pthread_cond_wait(&q->more, &q->mu);
        if (!q->n) { /* stopping, and nothing left */
            pthread_mutex_unlock(&q->mu);
            return NULL;
        }
        memcpy(txid, q->txids[q->head], sizeof(txid));
        q->head = (q->head + 1) % COORD_TELL_QUEUE;
        q->n--;
        pthread_mutex_unlock(&q->mu);
        t = txn_get(c, txid, false);
        if (!t)
            continue;
        pthread_mutex_lock(&t->mu);
        t->queued = false;
        if (owed(t))
            drive(c, t, mono_ms() + c->cfg.prepare_ms, DRIVE_TOLD);
        pthread_mutex_unlock(&t->mu);
        txn_put(c, t);
        later_flush(c, false); /* the other replicas learn the outcome without waiting */
    }
}

static enum tpc_err tellers_start(struct coord *c)
{
    struct tellers *q = &c->tell;

    q->txids = calloc(COORD_TELL_QUEUE, sizeof(*q->txids));
    if (!q->txids)
        return TPC_ERR_NOMEM;
    for (q->started = 0; q->started < COORD_TELLERS; q->started++)
        if (pthread_create(&q->threads[q->started], NULL, teller, c) != 0)
            return TPC_ERR_IO;
    return TPC_OK;
}

/* Tells what is queued, then stops the tellers. */
static void tellers_stop(struct coord *c)
{
    struct tellers *q = &c->tell;
    size_t i;

    pthread_mutex_lock(&q->mu);
    q->stop = true;
    pthread_cond_broadcast(&q->more);
    pthread_mutex_unlock(&q->mu);
    for (i = 0; i < q->started; i++)
        pthread_join(q->threads[i], NULL);
    q->started = 0;
    free(q->txids);
    q->txids = NULL;
}

/* Begins leading t as a recovery (abort, deadline, stale, or asked). Under t->mu. */
static bool start_recovery(struct coord *c, struct ctxn *t, const struct msg_parts *parts)
{
    struct leader_config lc = {c->cfg.self, c->cfg.n_replicas, c->cfg.prepare_ms,
                               c->cfg.retry_ms < 2 ? 2 : c->cfg.retry_ms, c->cfg.retry_max_ms};

    if (!t->leading) {
        if (lc.retry_max < lc.retry_interval)
            lc.retry_max = lc.retry_interval;
        if (leader_init(&t->leader, &lc, t->e.id, parts, (uint64_t)mono_ms()) != TPC_OK)
            return false;
        t->leading = true;
        t->parts = *parts;
    }
    if (t->state != CTX_DECIDED)
        t->state = CTX_RECOVERING;
    recover_round(c, t);
    return true;
}

/* A transaction with no participant: every instance (there are none) is prepared, or the
 * client aborts it; no Paxos instance, so nothing goes to the decision table either. */
static void decide_empty(struct ctxn *t, enum tpc_outcome o)
{
    t->state = CTX_DECIDED;
    t->outcome = o;
    t->decided_at = mono_ms();
}

/* ---- client API ---- */

static json_t *txn_json(const struct ctxn *t)
{
    json_t *j =
        json_pack("{s:s,s:s}", "txid", t->e.id, "state",
                  t->state == CTX_DECIDED ? msg_outcome_name(t->outcome) : state_names[t->state]);

    if (j && t->parts.n)
        json_object_set_new(j, "participants", codec_encode_parts(&t->parts));
    return j;
}

static json_t *outcome_json(const char *txid, enum tpc_outcome o, const struct msg_parts *parts)
{
    json_t *j = json_pack("{s:s,s:s,s:s}", "txid", txid, "state", msg_outcome_name(o), "outcome",
                          msg_outcome_name(o));

    if (j && parts && parts->n)
        json_object_set_new(j, "participants", codec_encode_parts(parts));
    return j;
}

json_t *coord_begin(struct coord *c, json_t *body, int *status, struct coord_error *e)
{
    char txid[TPC_TXID_MAX + 1];
    struct msg_parts known;
    json_t *v, *r;
    struct ctxn *t;
    enum tpc_outcome o;
    uint32_t timeout = c->cfg.txn_ms;
    const char *key;
    unsigned char raw[10];
    size_t i;

    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "txid") && strcmp(key, "timeout_ms")) {
            set_error(e, 400, "bad_request", "unknown key \"%s\" (use txid, timeout_ms)", key);
            return NULL;
        }
    }
    v = json_object_get(body, "timeout_ms");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 86400000) {
            set_error(e, 400, "bad_request", "timeout_ms must be 1..86400000");
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
            set_error(e, 400, "bad_txid",
                      "txid must be 1..%d characters of [A-Za-z0-9_-] (the replica adds its "
                      "prefix r<id>-)",
                      TPC_TXID_MAX - 4);
            return NULL;
        }
    } else {
        if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
            set_error(e, 500, "internal", "no randomness for a transaction id");
            return NULL;
        }
        snprintf(txid, sizeof(txid), "tx-");
        for (i = 0; i < sizeof(raw); i++)
            snprintf(txid + 3 + 2 * i, 3, "%02x", raw[i]);
    }
    if (acc_store_decision(c->store, txid, &o, NULL) == TPC_OK && o != TPC_OUTCOME_NONE) {
        set_error(e, 409, "txid_exists", "transaction %s already %s", txid, msg_outcome_name(o));
        return NULL;
    }
    if (acc_store_parts(c->store, txid, &known) == TPC_OK && known.n) {
        set_error(e, 409, "txid_exists", "transaction %s is known already", txid);
        return NULL;
    }
    t = txn_get(c, txid, true);
    if (!t) {
        set_error(e, 500, "internal", "out of memory");
        return NULL;
    }
    pthread_mutex_lock(&t->mu);
    if (t->leading || t->parts.n || t->state != CTX_ACTIVE || t->deadline) {
        pthread_mutex_unlock(&t->mu);
        txn_put(c, t);
        set_error(e, 409, "txid_exists", "transaction %s exists", txid);
        return NULL;
    }
    t->deadline = mono_ms() + timeout;
    r = json_pack("{s:s,s:s,s:I}", "txid", txid, "state", "active", "timeout_ms",
                  (json_int_t)timeout);
    pthread_mutex_unlock(&t->mu);
    txn_put(c, t);
    *status = 201;
    return r;
}

/* The decision of a transaction no longer (or never) in the table, as an answer. */
static json_t *ended_or_unknown(struct coord *c, const char *txid, int *status,
                                struct coord_error *e)
{
    struct msg_parts parts;
    enum tpc_outcome o;

    if (acc_store_decision(c->store, txid, &o, &parts) == TPC_OK && o != TPC_OUTCOME_NONE) {
        *status = 200;
        return outcome_json(txid, o, &parts);
    }
    set_error(e, 404, "unknown_transaction", "no transaction %s at this replica", txid);
    return NULL;
}

json_t *coord_exec(struct coord *c, const char *txid, json_t *body, int *status,
                   struct coord_error *e)
{
    const char *name = json_string_value(json_object_get(body, "participant")), *url;
    struct ctxn *t = txn_get(c, txid, false);
    struct http_client *hc = NULL;
    struct http_call call;
    char target[CONFIG_URL_MAX + 128];
    json_t *fwd = NULL, *r = NULL;
    char *text = NULL;

    if (!t) {
        r = ended_or_unknown(c, txid, status, e);
        if (r) {
            json_decref(r);
            set_error(e, 409, "transaction_ended", "transaction %s has ended", txid);
        }
        return NULL;
    }
    if (!name || !(url = config_participant_url(&c->cfg, name))) {
        set_error(e, 400, "unknown_participant",
                  "\"participant\" must name one of the "
                  "participants in the cluster file");
        goto out;
    }
    pthread_mutex_lock(&t->mu);
    if (t->state != CTX_ACTIVE || t->leading) {
        set_error(e, 409, "transaction_not_active", "transaction %s is %s", txid,
                  t->state == CTX_DECIDED ? msg_outcome_name(t->outcome) : state_names[t->state]);
    } else if (msg_parts_find(&t->parts, name) < 0) {
        if (t->parts.n == TPC_MAX_PARTICIPANTS)
            set_error(e, 400, "too_many_participants", "at most %d participants",
                      TPC_MAX_PARTICIPANTS);
        else
            msg_copy_str(t->parts.name[t->parts.n++], TPC_NAME_MAX, name); /* enlisted */
    }
    pthread_mutex_unlock(&t->mu);
    if (e->status)
        goto out;
    fwd = json_deep_copy(body);
    if (fwd)
        json_object_del(fwd, "participant");
    text = fwd ? json_dumps(fwd, JSON_COMPACT) : NULL;
    hc = http_pool_get(c->cluster);
    if (!text || !hc) {
        set_error(e, 500, "internal", "out of memory");
        goto out;
    }
    snprintf(target, sizeof(target), "%s/v1/branches/%s/exec", url, txid);
    memset(&call, 0, sizeof(call));
    call.url = target;
    call.body = text;
    call.body_len = strlen(text);
    http_client_post_all(hc, &call, 1, c->cfg.commit_ms);
    if (call.err || !(r = json_loadb(call.response, call.response_len, 0, NULL))) {
        set_error(e, 502, "participant_unavailable", "participant %s: %s", name,
                  call.err ? call.error : "answer is not JSON");
    } else {
        *status = (int)call.status; /* the participant's own answer, as it is */
    }
    free(call.response);
out:
    http_pool_put(c->cluster, hc);
    free(text);
    json_decref(fwd);
    txn_put(c, t);
    return r;
}

json_t *coord_commit(struct coord *c, const char *txid, enum coord_wait wait, int *status,
                     struct coord_error *e)
{
    struct ctxn *t = txn_get(c, txid, false);
    struct leader_config lc = {c->cfg.self, c->cfg.n_replicas, c->cfg.prepare_ms,
                               c->cfg.retry_ms < 2 ? 2 : c->cfg.retry_ms, c->cfg.retry_max_ms};
    struct leader_out out;
    json_t *r = NULL;
    uint64_t started = metrics_now_ns();

    if (!t)
        return ended_or_unknown(c, txid, status, e);
    if (lc.retry_max < lc.retry_interval)
        lc.retry_max = lc.retry_interval;
    pthread_mutex_lock(&t->mu);
    out = (struct leader_out){outbox_add, &t->out};
    if (t->state == CTX_ACTIVE && !t->leading) {
        if (t->parts.n == 0) {
            decide_empty(t, TPC_OUTCOME_COMMITTED);
        } else if (leader_init(&t->leader, &lc, txid, &t->parts, (uint64_t)mono_ms()) == TPC_OK) {
            t->leading = true;
            t->state = CTX_PREPARING;
            leader_relay_first(&t->leader, relay_targets(c));
            leader_start(&t->leader, (uint64_t)mono_ms(), &out);
        }
    }
    if (t->leading && t->state != CTX_DECIDED)
        drive(c, t, mono_ms() + c->cfg.commit_ms,
              wait == COORD_WAIT_APPLIED ? DRIVE_TOLD : DRIVE_DECIDED);
    else if (wait == COORD_WAIT_APPLIED && owed(t))
        drive(c, t, mono_ms() + c->cfg.prepare_ms, DRIVE_TOLD); /* tell whoever has not heard */
    if (t->state == CTX_DECIDED) {
        *status = 200;
        r = outcome_json(txid, t->outcome, &t->parts);
        tell_later(c, t);
    } else {
        set_error(e, 503, "undecided",
                  "transaction %s is not decided yet (too few replicas or participants "
                  "answer); it is never given a wrong outcome: ask for its status later",
                  txid);
    }
    pthread_mutex_unlock(&t->mu);
    txn_put(c, t);
    metrics_hist_since(&c->commit_time, started);
    return r;
}

json_t *coord_abort(struct coord *c, const char *txid, int *status, struct coord_error *e)
{
    struct ctxn *t = txn_get(c, txid, false);
    json_t *r = NULL;

    if (!t)
        return ended_or_unknown(c, txid, status, e);
    pthread_mutex_lock(&t->mu);
    if (t->state == CTX_PREPARING) {
        set_error(e, 409, "commit_in_progress", "transaction %s is being committed", txid);
        goto out;
    }
    if (t->state == CTX_ACTIVE && t->parts.n == 0) {
        decide_empty(t, TPC_OUTCOME_ABORTED);
    } else if (t->state == CTX_ACTIVE) {
        /* Abort is chosen through Paxos: phase 1 finds no vote, so aborted is proposed. */
        start_recovery(c, t, &t->parts);
    }
    if (t->leading)
        drive(c, t, mono_ms() + c->cfg.commit_ms, DRIVE_DECIDED);
    if (t->state == CTX_DECIDED) {
        *status = 200;
        r = outcome_json(txid, t->outcome, &t->parts);
        tell_later(c, t);
    } else {
        set_error(e, 503, "undecided", "transaction %s is not decided yet; ask later", txid);
    }
out:
    pthread_mutex_unlock(&t->mu);
    txn_put(c, t);
    return r;
}

json_t *coord_status(struct coord *c, const char *txid, int *status, struct coord_error *e)
{
    struct ctxn *t = txn_get(c, txid, false);
    struct msg_parts parts;
    enum tpc_outcome o;
    json_t *r;

    if (t) {
        pthread_mutex_lock(&t->mu);
        r = txn_json(t);
        pthread_mutex_unlock(&t->mu);
        txn_put(c, t);
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
    set_error(e, 404, "unknown_transaction", "no transaction %s at this replica", txid);
    return NULL;
}

struct list_ctx {
    json_t *list;
    int want; /* -1: every state */
};

static void list_live(struct table_entry *en, void *ctx)
{
    struct list_ctx *l = ctx;
    struct ctxn *t = (struct ctxn *)en;

    /* A racy read of state is fine for a listing; the entry itself is safe under the table. */
    if (t->state != CTX_DECIDED && (l->want < 0 || l->want == (int)t->state))
        json_array_append_new(
            l->list, json_pack("{s:s,s:s}", "txid", t->e.id, "state", state_names[t->state]));
}

static void list_decided(void *ctx, const char *txid, enum tpc_outcome o, int64_t at)
{
    json_array_append_new(ctx, json_pack("{s:s,s:s,s:I}", "txid", txid, "state",
                                         msg_outcome_name(o), "decided_at_ms", (json_int_t)at));
}

json_t *coord_list(struct coord *c, const char *state, int *status, struct coord_error *e)
{
    struct list_ctx l = {json_array(), -1};
    int i;

    if (state) {
        for (i = 0; i < 3; i++)
            if (!strcmp(state, state_names[i]))
                l.want = i;
        if (l.want < 0 && strcmp(state, "committed") && strcmp(state, "aborted")) {
            json_decref(l.list);
            set_error(e, 400, "bad_state",
                      "state is one of active, preparing, in_doubt, "
                      "committed, aborted");
            return NULL;
        }
    }
    if (!state || l.want >= 0)
        table_foreach(&c->txns, list_live, &l);
    if (!state || l.want < 0)
        acc_store_recent_decisions(c->store,
                                   !state                        ? TPC_OUTCOME_NONE
                                   : !strcmp(state, "committed") ? TPC_OUTCOME_COMMITTED
                                                                 : TPC_OUTCOME_ABORTED,
                                   1000, list_decided, l.list);
    *status = 200;
    return json_pack("{s:o}", "transactions", l.list);
}

enum tpc_err coord_wait_parse(json_t *v, enum coord_wait *wait, struct coord_error *e)
{
    const char *s = json_string_value(v);

    *wait = COORD_WAIT_DECIDED;
    if (!v || (s && !strcmp(s, "decided")))
        return TPC_OK;
    if (s && !strcmp(s, "applied")) {
        *wait = COORD_WAIT_APPLIED;
        return TPC_OK;
    }
    set_error(e, 400, "bad_request", "\"wait\" is \"decided\" or \"applied\"");
    return TPC_ERR_INVALID;
}

json_t *coord_oneshot(struct coord *c, json_t *body, int *status, struct coord_error *e)
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
            set_error(e, 400, "bad_request", "unknown key \"%s\"", key);
            return NULL;
        }
    }
    if (coord_wait_parse(json_object_get(body, "wait"), &wait, e) != TPC_OK)
        return NULL;
    if (!json_is_array(branches) || json_array_size(branches) == 0) {
        set_error(e, 400, "bad_request",
                  "\"branches\" must be a non-empty array of "
                  "{\"participant\": ..., \"statements\": [...]}");
        return NULL;
    }
    begin = json_deep_copy(body);
    if (!begin) {
        set_error(e, 500, "internal", "out of memory");
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
            set_error(e, 400, "bad_request", "branches[%zu] is not an object", i);
        if (!res || st != 200) {
            struct coord_error ae = {0};
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

json_t *coord_health(struct coord *c)
{
    uint64_t fsyncs, groups, jobs;

    acc_store_stats(c->store, &fsyncs, &groups, &jobs);
    return json_pack(
        "{s:s,s:I,s:I,s:I,s:{s:I,s:I},s:I,s:I,s:{s:I,s:I,s:I}}", "status", "ok", "replica",
        (json_int_t)c->cfg.self, "replicas", (json_int_t)c->cfg.n_replicas, "transactions",
        (json_int_t)table_size(&c->txns), "decided", "committed",
        (json_int_t)atomic_load(&c->committed), "aborted", (json_int_t)atomic_load(&c->aborted),
        "recoveries", (json_int_t)atomic_load(&c->recoveries), "recovered_for_others",
        (json_int_t)atomic_load(&c->recovered_foreign), "storage", "fsyncs", (json_int_t)fsyncs,
        "commit_groups", (json_int_t)groups, "durable_jobs", (json_int_t)jobs);
}

void coord_metrics(void *ctx, struct metrics_text *t)
{
    struct coord *c = ctx;
    uint64_t fsyncs, groups, jobs;

    acc_store_stats(c->store, &fsyncs, &groups, &jobs);
    metrics_family(t, "tpc_transactions_total", "counter",
                   "Transactions this replica decided as their leader, by outcome.");
    metrics_sample(t, "tpc_transactions_total", "outcome=\"committed\"",
                   atomic_load(&c->committed));
    metrics_sample(t, "tpc_transactions_total", "outcome=\"aborted\"", atomic_load(&c->aborted));
    metrics_family(t, "tpc_transactions_live", "gauge",
                   "Transactions this replica holds in memory.");
    metrics_sample(t, "tpc_transactions_live", NULL, table_size(&c->txns));
    metrics_counter(t, "tpc_recoveries_total",
                    "Recovery rounds (phase 1 with a new ballot) started here.",
                    atomic_load(&c->recoveries));
    metrics_counter(t, "tpc_recovered_for_others_total",
                    "Transactions another replica began that this one recovered.",
                    atomic_load(&c->recovered_foreign));
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

/* ---- replica and participant API ---- */

/* Somebody waited long for txid: recover it here unless a driver is on it already. */
static void ensure_recovery(struct coord *c, const char *txid, const struct msg_parts *given)
{
    struct msg_parts parts = *given;
    struct ctxn *t;

    if (parts.n == 0 && (acc_store_parts(c->store, txid, &parts) != TPC_OK || parts.n == 0))
        return;
    t = txn_get(c, txid, true);
    if (!t)
        return;
    if (pthread_mutex_trylock(&t->mu) == 0) {
        if (!t->leading && t->state != CTX_DECIDED)
            start_recovery(c, t, &parts);
        pthread_mutex_unlock(&t->mu);
    }
    txn_put(c, t);
}

json_t *coord_paxos(struct coord *c, const struct msg *in, size_t n)
{
    struct msg *acc_in = calloc(n ? n : 1, sizeof(*acc_in)), *acc_out = NULL, reply;
    struct msg *learned = calloc(n ? n : 1, sizeof(*learned));
    json_t *answers = json_array(), *batch;
    enum tpc_outcome o;
    struct ctxn *t;
    size_t i, n_acc = 0, n_learned = 0;

    if (!acc_in || !learned || !answers)
        goto out;
    for (i = 0; i < n; i++) {
        const struct msg *m = &in[i];

        switch (m->type) {
        case MSG_PHASE1A:
        case MSG_PHASE2A:
            acc_in[n_acc++] = *m;
            break;
        case MSG_STATUS:
            /* Decided here and not recorded yet (a teller is about to), or recorded. */
            o = TPC_OUTCOME_NONE;
            if ((t = txn_get(c, m->txid, false)) != NULL) {
                if (pthread_mutex_trylock(&t->mu) == 0) {
                    if (t->state == CTX_DECIDED && t->leading)
                        o = t->outcome;
                    pthread_mutex_unlock(&t->mu);
                }
                txn_put(c, t);
            }
            if (o != TPC_OUTCOME_NONE ||
                (acc_store_decision(c->store, m->txid, &o, NULL) == TPC_OK &&
                 o != TPC_OUTCOME_NONE)) {
                memset(&reply, 0, sizeof(reply));
                reply.type = MSG_OUTCOME;
                memcpy(reply.txid, m->txid, sizeof(reply.txid));
                reply.outcome = o;
                json_array_append_new(answers, codec_encode(&reply));
            } else {
                ensure_recovery(c, m->txid, &m->parts);
            }
            break;
        case MSG_OUTCOME:
            learned[n_learned++] = *m; /* recorded below, all in one write */
            break;
        default:
            break;
        }
    }
    if (n_acc) {
        acc_out = calloc(n_acc, sizeof(*acc_out));
        if (acc_out && acc_store_handle(c->store, acc_in, n_acc, acc_out, NULL) == TPC_OK)
            for (i = 0; i < n_acc; i++)
                if (acc_out[i].type)
                    json_array_append_new(answers, codec_encode(&acc_out[i]));
    }
    /* Other replicas' decisions: kept, and handed to a local leader of the same transaction
     * so that it tells its participants. */
    if (acc_store_record_learned(c->store, learned, n_learned) != TPC_OK)
        log_error("cannot record %zu decisions of other replicas", n_learned);
    for (i = 0; i < n_learned; i++) {
        t = txn_get(c, learned[i].txid, false);
        if (t) {
            atomic_store(&t->learned, learned[i].outcome);
            txn_put(c, t);
        }
    }
out:
    free(acc_in);
    free(learned);
    free(acc_out);
    batch = json_pack("{s:o}", "messages", answers ? answers : json_array());
    return batch;
}

/* ---- background: unfinished leaders, deadlines, the sweep, forgetting ---- */

static void background_pass(struct coord *c)
{
    static struct acc_stale stale[64];
    static int64_t last_sweep;
    struct table_entry **all;
    size_t i, n, total = table_snapshot(&c->txns, &all);

    for (i = 0; i < total; i++) {
        struct ctxn *t = (struct ctxn *)all[i];
        int64_t now = mono_ms();

        if (!ticker_stopping(&c->bg) && pthread_mutex_trylock(&t->mu) == 0) {
            if (t->state == CTX_ACTIVE && !t->leading && t->deadline && now >= t->deadline) {
                log_info("%s: not committed within its timeout: aborting", t->e.id);
                if (t->parts.n)
                    start_recovery(c, t, &t->parts);
                else
                    decide_empty(t, TPC_OUTCOME_ABORTED);
            }
            /* Only what is due now: a background drive never waits, so that one transaction's
             * timers cannot hold up the others'. One queued for a teller is the teller's: this
             * pass drives one transaction after another, the tellers in parallel. */
            if (owed(t) && !t->queued)
                drive(c, t, now, DRIVE_DUE);
            /* Finished: the decision table answers for it from now on. Kept a moment, for a
             * client repeating its commit; one decided without Paxos (no participant) has no
             * record, and is kept for a minute. Every pass visits every transaction held, so
             * holding many would cost every pass. */
            if (t->state == CTX_DECIDED && (!t->leading || leader_done(&t->leader)) &&
                now - t->decided_at > (t->recorded && t->told ? 1000 : 60000))
                table_remove(&c->txns, &t->e);
            pthread_mutex_unlock(&t->mu);
        }
        txn_put(c, t);
    }
    free(all);
    later_flush(c, true);
    /* The sweep, every stale_ms: undecided transactions this acceptor knows, quiet for long. */
    if (mono_ms() - last_sweep < (int64_t)c->cfg.stale_ms)
        return;
    last_sweep = mono_ms();
    n = acc_store_stale(c->store, c->cfg.stale_ms, stale, sizeof(stale) / sizeof(stale[0]));
    for (i = 0; i < n && !ticker_stopping(&c->bg); i++)
        ensure_recovery(c, stale[i].txid, &stale[i].parts);
}

static void background_tick(void *arg)
{
    background_pass(arg);
}

/* ---- start, stop ---- */

/*
 * After a restart: the outcomes this replica decided but had not yet told every
 * participant are told again, in the background, until each acknowledges.
 */
static void resume_untold(struct coord *c)
{
    static struct acc_untold owed[256];
    struct leader_config lc = {c->cfg.self, c->cfg.n_replicas, c->cfg.prepare_ms,
                               c->cfg.retry_ms < 2 ? 2 : c->cfg.retry_ms, c->cfg.retry_max_ms};
    char after[TPC_TXID_MAX + 1] = "";
    size_t i, n, total = 0;

    if (lc.retry_max < lc.retry_interval)
        lc.retry_max = lc.retry_interval;
    do {
        n = acc_store_untold(c->store, after, owed, sizeof(owed) / sizeof(owed[0]));
        for (i = 0; i < n; i++) {
            struct leader_out out;
            struct ctxn *t = txn_get(c, owed[i].txid, true);

            if (!t)
                continue;
            out = (struct leader_out){outbox_add, &t->out};
            if (leader_init(&t->leader, &lc, t->e.id, &owed[i].parts, (uint64_t)mono_ms()) ==
                TPC_OK) {
                t->leading = true;
                t->parts = owed[i].parts;
                t->state = CTX_DECIDED;
                t->outcome = owed[i].outcome;
                t->recorded = true;
                t->decided_at = mono_ms();
                leader_learn(&t->leader, owed[i].outcome, (uint64_t)mono_ms(), &out);
            }
            txn_put(c, t);
        }
        if (n)
            memcpy(after, owed[n - 1].txid, sizeof(after));
        total += n;
    } while (n == sizeof(owed) / sizeof(owed[0]));
    if (total)
        log_info("resuming: %zu decided transaction(s) still to tell their participants", total);
}

enum tpc_err coord_open(const struct coord_config *cfg, struct coord **out, char *err,
                        size_t errlen)
{
    struct coord *c = calloc(1, sizeof(*c));
    enum tpc_err rc;

    *out = NULL;
    if (!c)
        return TPC_ERR_NOMEM;
    c->cfg = *cfg;
    table_init(&c->txns, ctxn_create, ctxn_destroy, c);
    pthread_mutex_init(&c->later.mu, NULL);
    pthread_mutex_init(&c->tell.mu, NULL);
    pthread_cond_init(&c->tell.more, NULL);
    c->later.outcomes = calloc(COORD_LATER_MAX, sizeof(*c->later.outcomes));
    c->later.told = calloc(COORD_LATER_MAX, sizeof(*c->later.told));
    if (!c->later.outcomes || !c->later.told) {
        rc = TPC_ERR_NOMEM;
        goto fail;
    }
    c->cluster = http_pool_new(cfg->cluster_token);
    if (!c->cluster) {
        rc = TPC_ERR_NOMEM;
        goto fail;
    }
    rc = acc_store_open(cfg->db_path, cfg->self, cfg->n_replicas, &c->store, err, errlen);
    if (rc)
        goto fail;
    resume_untold(c);
    if (tellers_start(c) != TPC_OK) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot start the teller threads");
        goto fail;
    }
    if (ticker_start(&c->bg, 20, background_tick, c) != TPC_OK) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot start the background thread");
        goto fail;
    }
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
    tellers_stop(c);
    pthread_cond_destroy(&c->tell.more);
    pthread_mutex_destroy(&c->tell.mu);
    ticker_stop(&c->bg);
    if (c->later.outcomes && c->later.told)
        later_flush(c, true);
    pthread_mutex_destroy(&c->later.mu);
    free(c->later.outcomes);
    free(c->later.told);
    acc_store_close(c->store);
    http_pool_free(c->cluster);
    table_fini(&c->txns);
    free(c);
}

const struct coord_config *coord_config(const struct coord *c)
{
    return &c->cfg;
}
