/*
 * replica.c - the coordinator replica's driver (see replica.h for its states,
 * rules and invariants). Everything here runs inside one event call; the only
 * ways out are the io functions.
 */
#include "replica.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "breakable.h"

/* Where the leader's messages go; outcomes to participants wait for the record (rule 2). */
struct sink {
    struct replica *r;
    struct replica_txn *t;
};

static uint64_t now_of(const struct replica *r)
{
    return r->io.now(r->io.ctx);
}

static uint64_t rnd_of(const struct replica *r)
{
    return r->io.random(r->io.ctx);
}

static uint64_t horizon_of(const struct replica *r)
{
    return r->io.horizon ? r->io.horizon(r->io.ctx) : 0;
}

static void leader_sink(void *ctx, enum leader_dest dest, uint32_t id, const struct msg *m)
{
    struct sink *k = ctx;
    struct replica *r = k->r;
    struct node_addr to;

    switch (dest) {
    case LEADER_TO_ACCEPTOR:
        to = node_replica(id);
        r->io.send(r->io.ctx, &to, m);
        break;
    case LEADER_TO_PARTICIPANT:
        /* Rule 2: no telling before the decision record is durable; replica_persisted
         * tells once it is (leader_tell). Prepares go at once. */
        if (m->type == MSG_OUTCOME && k->t->record != REPLICA_RECORD_DURABLE &&
            !TPC_BROKEN(TPC_BREAK_TELL_BEFORE_RECORD))
            break;
        if (id >= k->t->leader.parts.n)
            break;
        to = node_participant(k->t->leader.parts.name[id]);
        r->io.send(r->io.ctx, &to, m);
        break;
    }
}

/* The leader's announcement of its decision, to every other replica: once its record is
 * durable (rule 2), so that nobody hears of a decision its leader could lose track of. */
static void announce(struct replica *r, struct replica_txn *t)
{
    struct node_addr to;
    struct msg m;
    uint32_t a;

    memset(&m, 0, sizeof(m));
    m.type = MSG_OUTCOME;
    memcpy(m.txid, t->e.id, sizeof(m.txid));
    m.outcome = t->outcome;
    m.born = t->born;
    for (a = 0; a < r->cfg.n_replicas; a++) {
        if (a == r->cfg.self)
            continue;
        to = node_replica(a);
        r->io.send(r->io.ctx, &to, &m);
    }
}

static struct leader_out out_of(struct sink *k)
{
    return (struct leader_out){leader_sink, k};
}

static struct replica_txn *txn_find(const struct replica *r, const char *txid)
{
    return (struct replica_txn *)txmap_get(&r->txns, txid);
}

static struct replica_txn *txn_make(struct replica *r, const char *txid)
{
    struct replica_txn *t = txn_find(r, txid);

    if (t)
        return t;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    if (msg_copy_str(t->e.id, TPC_TXID_MAX, txid) != TPC_OK) {
        free(t);
        return NULL;
    }
    txmap_add(&r->txns, &t->e);
    return t;
}

static void txn_forget(struct replica *r, struct replica_txn *t)
{
    txmap_del(&r->txns, &t->e);
    free(t);
}

static bool leader_config_of(const struct replica *r, struct leader_config *lc)
{
    lc->self = r->cfg.self;
    lc->n_acceptors = r->cfg.n_replicas;
    lc->prepare_timeout = r->cfg.prepare_timeout;
    lc->retry_interval = r->cfg.retry_interval < 2 ? 2 : r->cfg.retry_interval;
    lc->retry_max = r->cfg.retry_max < lc->retry_interval ? lc->retry_interval : r->cfg.retry_max;
    return true;
}

static bool lead(struct replica *r, struct replica_txn *t, const struct msg_parts *parts)
{
    struct leader_config lc;

    if (t->leading)
        return true;
    leader_config_of(r, &lc);
    if (leader_init(&t->leader, &lc, t->e.id, parts, now_of(r)) != TPC_OK)
        return false;
    t->leading = true;
    t->leader.born = t->born;
    t->parts = *parts;
    return true;
}

static void answer_client(struct replica *r, struct replica_txn *t, enum tpc_outcome o)
{
    struct node_addr to = node_client();
    struct msg m;

    if (!t->client_waiting || o == TPC_OUTCOME_NONE)
        return;
    memset(&m, 0, sizeof(m));
    m.type = MSG_OUTCOME;
    memcpy(m.txid, t->e.id, sizeof(m.txid));
    m.outcome = o;
    t->answer = o;
    t->client_waiting = false;
    r->io.send(r->io.ctx, &to, &m);
}

/* A broken rule for the simulator: answer "committed" once every vote is in, chosen or not. */
static void answer_early(struct replica *r, struct replica_txn *t)
{
    uint32_t i;

    if (!TPC_BROKEN(TPC_BREAK_ANSWER_BEFORE_CHOSEN) || !t->leading || !t->client_waiting ||
        !t->leader.started)
        return;
    for (i = 0; i < t->leader.parts.n; i++)
        if (t->leader.inst[i].vote != TPC_VALUE_PREPARED)
            return;
    answer_client(r, t, TPC_OUTCOME_COMMITTED);
}

/* The leader's decision becomes this replica's: the client is answered, the record begun. */
static void settle(struct replica *r, struct replica_txn *t)
{
    struct node_write w;

    answer_early(r, t);
    if (t->leading && t->outcome == TPC_OUTCOME_NONE && t->leader.decision != TPC_OUTCOME_NONE) {
        t->outcome = t->leader.decision;
        t->state = REPLICA_DECIDED;
        t->decided_at = now_of(r);
        if (t->outcome == TPC_OUTCOME_COMMITTED)
            r->stats.committed++;
        else
            r->stats.aborted++;
    }
    if (t->outcome != TPC_OUTCOME_NONE)
        answer_client(r, t, t->outcome);
    if (t->leading && t->outcome != TPC_OUTCOME_NONE && t->record == REPLICA_RECORD_NONE) {
        node_write_init(&w, NODE_WRITE_DECISION, t->e.id);
        w.outcome = t->outcome;
        w.born = t->born;
        w.parts = t->leader.parts;
        t->record = REPLICA_RECORD_WRITING;
        r->io.persist(r->io.ctx, &w);
    }
    /* Rule 3: every participant acknowledged (the broken rule: as soon as it is recorded). */
    if (t->leading && t->record == REPLICA_RECORD_DURABLE && !t->told && !t->told_writing &&
        (leader_done(&t->leader) || TPC_BROKEN(TPC_BREAK_TOLD_BEFORE_ACK))) {
        node_write_init(&w, NODE_WRITE_TOLD, t->e.id);
        w.outcome = t->outcome;
        t->told_writing = true;
        r->io.persist(r->io.ctx, &w);
    }
}

/* Rule 4: reserve a fresh durable round; the recovery starts when it is written. */
static void request_round(struct replica *r, struct replica_txn *t)
{
    struct node_write w;

    if (t->round_pending || !t->leading || t->leader.decision != TPC_OUTCOME_NONE)
        return;
    node_write_init(&w, NODE_WRITE_ROUND, t->e.id);
    w.round = leader_min_round(&t->leader);
    t->round_pending = true;
    r->io.persist(r->io.ctx, &w);
}

/* Begins leading t as a recovery (abort, deadline, a question, the sweep). */
static void start_recovery(struct replica *r, struct replica_txn *t, const struct msg_parts *parts)
{
    if (t->state == REPLICA_DECIDED || !lead(r, t, parts))
        return;
    t->state = REPLICA_IN_DOUBT;
    request_round(r, t);
}

/* Somebody waited long for txid: recover it here unless this replica is on it already, or it
 * is expired (rule 8). born: what the asker knows of its age (0: nothing). */
static void ensure_recovery(struct replica *r, const char *txid, const struct msg_parts *given,
                            uint64_t born)
{
    struct msg_parts parts;
    uint64_t recorded = 0;
    struct replica_txn *t;

    r->io.acceptor_parts(r->io.ctx, txid, &parts, &recorded);
    if (given->n)
        parts = *given;
    if (parts.n == 0)
        return; /* never a guessed list: only one an acceptor recorded */
    if (!born)
        born = recorded;
    t = txn_find(r, txid);
    if (!t && msg_expired(born, horizon_of(r))) {
        r->expired_refused++;
        return;
    }
    t = txn_make(r, txid);
    if (t && !t->born)
        t->born = born;
    if (t && !t->leading && t->state != REPLICA_DECIDED)
        start_recovery(r, t, &parts);
}

/* A transaction with no participant: no instance, so nothing to choose or record. */
static void decide_empty(struct replica *r, struct replica_txn *t, enum tpc_outcome o)
{
    t->state = REPLICA_DECIDED;
    t->outcome = o;
    t->decided_at = now_of(r);
    answer_client(r, t, o);
}

enum tpc_err replica_init(struct replica *r, const struct replica_config *cfg,
                          const struct node_io *io)
{
    memset(r, 0, sizeof(*r));
    if (cfg->n_replicas < 1 || cfg->n_replicas > TPC_MAX_REPLICAS || cfg->self >= cfg->n_replicas)
        return TPC_ERR_RANGE;
    r->cfg = *cfg;
    r->io = *io;
    r->last_sweep = io->now(io->ctx);
    return txmap_init(&r->txns);
}

static void free_one(void *ctx, struct txmap_entry *e)
{
    txn_forget(ctx, (struct replica_txn *)e);
}

void replica_fini(struct replica *r)
{
    if (!r->txns.bucket)
        return;
    txmap_each(&r->txns, free_one, r);
    txmap_fini(&r->txns);
}

enum tpc_err replica_start(struct replica *r)
{
    struct node_txn page[64];
    char after[TPC_TXID_MAX + 1] = "";
    size_t n, i;

    do {
        n = r->io.untold(r->io.ctx, after, page, sizeof(page) / sizeof(page[0]));
        for (i = 0; i < n; i++) {
            struct replica_txn *t = txn_make(r, page[i].txid);
            struct sink k = {r, t};
            struct leader_out out = out_of(&k);

            if (!t)
                return TPC_ERR_NOMEM;
            if (t->leading || !lead(r, t, &page[i].parts))
                continue;
            t->born = page[i].born;
            t->leader.born = page[i].born;
            t->state = REPLICA_DECIDED;
            t->outcome = page[i].outcome;
            t->record = REPLICA_RECORD_DURABLE;
            t->decided_at = now_of(r);
            leader_learn(&t->leader, page[i].outcome, now_of(r), &out);
        }
        if (n)
            memcpy(after, page[n - 1].txid, sizeof(after));
    } while (n == sizeof(page) / sizeof(page[0]));
    return TPC_OK;
}

/* ---- client calls ---- */

enum tpc_err replica_begin(struct replica *r, const char *txid, uint64_t timeout, uint64_t born)
{
    struct replica_txn *t;

    if (!msg_txid_valid(txid))
        return TPC_ERR_INVALID;
    if (txn_find(r, txid))
        return TPC_ERR_STATE;
    t = txn_make(r, txid);
    if (!t)
        return TPC_ERR_NOMEM;
    t->begun_here = true;
    t->deadline = now_of(r) + timeout;
    t->born = born ? born : r->io.wall ? r->io.wall(r->io.ctx) : 0;
    return TPC_OK;
}

enum tpc_err replica_enlist(struct replica *r, const char *txid, const char *name)
{
    struct replica_txn *t = txn_find(r, txid);

    if (!t)
        return TPC_ERR_INVALID;
    if (t->state != REPLICA_ACTIVE || t->leading)
        return TPC_ERR_STATE;
    if (msg_parts_find(&t->parts, name) >= 0)
        return TPC_OK;
    if (t->parts.n == TPC_MAX_PARTICIPANTS)
        return TPC_ERR_RANGE;
    return msg_copy_str(t->parts.name[t->parts.n++], TPC_NAME_MAX, name);
}

enum tpc_err replica_commit(struct replica *r, const char *txid, uint32_t relay_first)
{
    struct replica_txn *t = txn_find(r, txid);
    struct sink k = {r, t};
    struct leader_out out = out_of(&k);

    if (!t)
        return TPC_ERR_INVALID;
    t->client_waiting = true;
    if (t->state == REPLICA_ACTIVE && !t->leading) {
        if (t->parts.n == 0) {
            decide_empty(r, t, TPC_OUTCOME_COMMITTED);
        } else if (lead(r, t, &t->parts)) {
            t->state = REPLICA_PREPARING;
            leader_relay_first(&t->leader, relay_first);
            leader_start(&t->leader, now_of(r), &out);
        }
    }
    settle(r, t);
    return TPC_OK;
}

enum tpc_err replica_abort(struct replica *r, const char *txid)
{
    struct replica_txn *t = txn_find(r, txid);

    if (!t)
        return TPC_ERR_INVALID;
    if (t->state == REPLICA_PREPARING)
        return TPC_ERR_STATE;
    t->client_waiting = true;
    if (t->state == REPLICA_ACTIVE && t->parts.n == 0)
        decide_empty(r, t, TPC_OUTCOME_ABORTED);
    else if (t->state == REPLICA_ACTIVE)
        start_recovery(r, t, &t->parts); /* rule 5: aborted is chosen through Paxos */
    settle(r, t);
    return TPC_OK;
}

enum tpc_err replica_resolve(struct replica *r, const char *txid)
{
    struct replica_txn *t = txn_find(r, txid);
    struct msg_parts none = {0};
    uint64_t expired = r->expired_refused;

    /* Active and begun here: the client's abort (through Paxos once it has branches). An
     * entry that was not begun here is only ever recovered: with no participant list, an
     * abort would decide it without Paxos. */
    if (t && t->state == REPLICA_ACTIVE && !t->leading && t->begun_here)
        return replica_abort(r, txid);
    if (!t) {
        ensure_recovery(r, txid, &none, 0);
        t = txn_find(r, txid);
        if (!t)
            return r->expired_refused != expired ? TPC_ERR_EXPIRED : TPC_ERR_INVALID;
    }
    t->client_waiting = true;
    if (t->state != REPLICA_DECIDED && !t->leading)
        ensure_recovery(r, txid, &t->parts, t->born);
    if (t->leading)
        leader_hurry(&t->leader, now_of(r));
    settle(r, t);
    return TPC_OK;
}

static void view_of(const struct replica_txn *t, struct replica_view *v)
{
    v->state = t->state;
    v->outcome = t->outcome;
    v->answer = t->answer;
    v->parts = t->leading ? t->leader.parts : t->parts;
    v->leading = t->leading;
    v->applied = t->leading ? leader_done(&t->leader) : t->outcome != TPC_OUTCOME_NONE;
    v->decided_at = t->decided_at;
    v->deadline = t->state == REPLICA_ACTIVE ? t->deadline : 0;
    v->born = t->born;
}

const struct replica_txn *replica_find(const struct replica *r, const char *txid)
{
    return txn_find(r, txid);
}

bool replica_view(const struct replica *r, const char *txid, struct replica_view *v)
{
    const struct replica_txn *t = txn_find(r, txid);

    if (!t)
        return false;
    view_of(t, v);
    return true;
}

struct each_ctx {
    void (*fn)(void *ctx, const char *txid, const struct replica_view *v);
    void *ctx;
};

static void each_one(void *ctx, struct txmap_entry *e)
{
    struct each_ctx *c = ctx;
    struct replica_view v;

    view_of((const struct replica_txn *)e, &v);
    c->fn(c->ctx, e->id, &v);
}

void replica_foreach(const struct replica *r,
                     void (*fn)(void *ctx, const char *txid, const struct replica_view *v),
                     void *ctx)
{
    struct each_ctx c = {fn, ctx};

    txmap_each((struct txmap *)&r->txns, each_one, &c);
}

size_t replica_size(const struct replica *r)
{
    return r->txns.n;
}

/* ---- events ---- */

/* Whether a message of born `in` may be about what is known here as born `here`: not when both
 * are known and differ (a txid begun again once the first transaction was forgotten). */
static bool same_born(uint64_t here, uint64_t in)
{
    return !here || !in || here == in;
}

static void answer_status(struct replica *r, const struct node_addr *from, const struct msg *m)
{
    struct replica_txn *t = txn_find(r, m->txid);
    enum tpc_outcome o = t ? t->outcome : TPC_OUTCOME_NONE;
    uint64_t born = t ? t->born : 0;
    struct msg reply;

    if (t && !same_born(t->born, m->born))
        return; /* about another transaction of this txid than the one held here */
    if (o == TPC_OUTCOME_NONE)
        o = r->io.decision(r->io.ctx, m->txid, NULL, &born);
    if (o != TPC_OUTCOME_NONE && !same_born(born, m->born))
        o = TPC_OUTCOME_NONE; /* that decision is another transaction's (dead, collected soon) */
    if (o != TPC_OUTCOME_NONE) {
        memset(&reply, 0, sizeof(reply));
        reply.type = MSG_OUTCOME;
        memcpy(reply.txid, m->txid, sizeof(reply.txid));
        reply.outcome = o;
        reply.born = born ? born : m->born;
        r->io.send(r->io.ctx, from, &reply);
        return;
    }
    ensure_recovery(r, m->txid, &m->parts, m->born);
    if (!m->instance[0] && (t = txn_find(r, m->txid)) != NULL)
        t->client_waiting = true; /* a client asks: it gets the outcome once chosen */
}

static void learn_outcome(struct replica *r, const struct msg *m)
{
    struct replica_txn *t = txn_find(r, m->txid);
    struct sink k = {r, t};
    struct leader_out out = out_of(&k);
    struct node_write w;

    if (m->outcome == TPC_OUTCOME_NONE || (t && !same_born(t->born, m->born)))
        return; /* nothing, or another transaction's of this txid */
    if (!t && msg_expired(m->born, horizon_of(r)))
        return; /* a late word on a forgotten transaction: nothing is written again */
    if (!t || t->outcome == TPC_OUTCOME_NONE) {
        node_write_init(&w, NODE_WRITE_LEARNED, m->txid);
        w.outcome = m->outcome;
        w.born = m->born ? m->born : (t ? t->born : 0);
        r->io.persist(r->io.ctx, &w);
    }
    if (!t)
        return;
    if (t->leading) {
        leader_learn(&t->leader, m->outcome, now_of(r), &out);
    } else if (t->outcome == TPC_OUTCOME_NONE) {
        t->outcome = m->outcome;
        t->state = REPLICA_DECIDED;
        t->decided_at = now_of(r);
    }
    settle(r, t);
}

enum tpc_err replica_receive(struct replica *r, const struct node_addr *from, const struct msg *m,
                             char *err, size_t errlen)
{
    struct replica_txn *t;
    struct sink k = {r, NULL};
    struct leader_out out = out_of(&k);
    enum tpc_err rc;

    rc = msg_validate(m, r->cfg.n_replicas, err, errlen);
    if (rc)
        return rc;
    switch (m->type) {
    case MSG_VOTE:
    case MSG_PHASE1B:
    case MSG_PHASE2B:
    case MSG_REJECT:
    case MSG_ACK:
        t = txn_find(r, m->txid);
        if (!t || !t->leading)
            return TPC_OK; /* nobody here leads it (any more, or since a restart) */
        if (m->type == MSG_VOTE && !t->leader.started)
            return TPC_OK; /* rule 6: a late vote for a leader that crashed */
        k.t = t;
        rc = leader_receive(&t->leader, m, now_of(r), rnd_of(r), &out, err, errlen);
        settle(r, t);
        return rc;
    case MSG_OUTCOME:
        learn_outcome(r, m);
        return TPC_OK;
    case MSG_STATUS:
        answer_status(r, from, m);
        return TPC_OK;
    default:
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "replica: unexpected %s",
                              msg_type_name(m->type));
    }
}

void replica_persisted(struct replica *r, const struct node_write *w, enum tpc_err rc)
{
    struct replica_txn *t = txn_find(r, w->txid);
    struct sink k = {r, t};
    struct leader_out out = out_of(&k);

    if (!t)
        return;
    switch (w->kind) {
    case NODE_WRITE_ROUND:
        t->round_pending = false;
        if (rc || !t->leading || t->leader.decision != TPC_OUTCOME_NONE ||
            w->round < leader_min_round(&t->leader))
            break; /* not needed any more, or failed: the next tick asks again */
        r->stats.recoveries++;
        if (!t->foreign && !t->begun_here && !t->leader.started) {
            t->foreign = true;
            r->stats.recovered_foreign++;
        }
        leader_recover(&t->leader, w->round, now_of(r), rnd_of(r), &out);
        break;
    case NODE_WRITE_DECISION:
        if (t->record != REPLICA_RECORD_WRITING)
            break;
        if (rc) {
            t->record = REPLICA_RECORD_NONE; /* written again at the next tick */
            return;
        }
        t->record = REPLICA_RECORD_DURABLE;
        leader_tell(&t->leader, now_of(r), &out); /* rule 2: now it may tell */
        announce(r, t);
        break;
    case NODE_WRITE_TOLD:
        t->told_writing = false;
        if (rc)
            return; /* written again at the next tick */
        t->told = true;
        break;
    default:
        return;
    }
    settle(r, t);
}

struct tick_ctx {
    struct replica *r;
    uint64_t now, horizon;
};

static void tick_one(void *ctx, struct txmap_entry *e)
{
    struct tick_ctx *c = ctx;
    struct replica *r = c->r;
    struct replica_txn *t = (struct replica_txn *)e;
    struct sink k = {r, t};
    struct leader_out out = out_of(&k);
    bool finished;

    /* Rule 8: an undecided transaction that expired can be decided by nobody any more (no
     * acceptor takes a message about it): memory lets go of it. Its timeout is at most half
     * the retention, so this happens only after a long outage of F+1 replicas. */
    if (t->state != REPLICA_DECIDED && msg_expired(t->born, c->horizon)) {
        r->expired_refused++;
        txn_forget(r, t);
        return;
    }
    if (t->state == REPLICA_ACTIVE && !t->leading && t->deadline && c->now >= t->deadline) {
        if (t->parts.n)
            start_recovery(r, t, &t->parts); /* rule 5 */
        else
            decide_empty(r, t, TPC_OUTCOME_ABORTED);
    }
    if (t->leading && !(r->io.in_flight && r->io.in_flight(r->io.ctx, t->e.id)) &&
        leader_tick(&t->leader, c->now, rnd_of(r), &out))
        request_round(r, t);
    settle(r, t);
    /* Finished: storage answers for it from now on. One decided without a record (no
     * participant) is kept longer: it is known only here. */
    finished = t->state == REPLICA_DECIDED &&
               (!t->leading || (leader_done(&t->leader) && t->told)) && !t->client_waiting;
    if (finished && c->now - t->decided_at >= (t->leading ? r->cfg.keep : r->cfg.keep_unrecorded))
        txn_forget(r, t);
}

void replica_tick(struct replica *r)
{
    struct tick_ctx c = {r, now_of(r), horizon_of(r)};
    struct node_txn stale[64];
    size_t n, i;

    txmap_each(&r->txns, tick_one, &c);
    /* The sweep: undecided transactions this acceptor knows, quiet for long; their leader
     * may be gone. Recovered with the participant list the acceptor recorded. */
    if (c.now - r->last_sweep < r->cfg.stale_after)
        return;
    r->last_sweep = c.now;
    n = r->io.stale(r->io.ctx, r->cfg.stale_after, stale, sizeof(stale) / sizeof(stale[0]));
    for (i = 0; i < n; i++)
        if (r->io.decision(r->io.ctx, stale[i].txid, NULL, NULL) == TPC_OUTCOME_NONE)
            ensure_recovery(r, stale[i].txid, &stale[i].parts, stale[i].born);
}

static void check_one(void *ctx, struct txmap_entry *e)
{
    const struct replica_txn *t = (const struct replica_txn *)e;

    (void)ctx;
    (void)t;
    assert((t->state == REPLICA_DECIDED) == (t->outcome != TPC_OUTCOME_NONE)); /* I1 */
    assert(!t->leading || t->outcome == TPC_OUTCOME_NONE || t->outcome == t->leader.decision);
    assert(t->record == REPLICA_RECORD_NONE ||
           (t->leading && t->outcome != TPC_OUTCOME_NONE)); /* I2 */
    assert(!t->told || t->record == REPLICA_RECORD_DURABLE);
    assert(!t->round_pending || t->leading); /* I3 */
    assert(t->answer == TPC_OUTCOME_NONE || t->answer == t->outcome ||
           TPC_BROKEN(TPC_BREAK_ANSWER_BEFORE_CHOSEN)); /* I4 */
}

void replica_check(const struct replica *r)
{
#ifndef NDEBUG
    txmap_each((struct txmap *)&r->txns, check_one, NULL);
#else
    (void)r;
    (void)check_one;
#endif
}
