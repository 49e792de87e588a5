/*
 * resource.c - the participant's driver (see resource.h for its states, rules
 * and invariants). Everything here runs inside one event call; the only ways
 * out are the io functions.
 */
#include "resource.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "breakable.h"

static uint64_t now_of(const struct resource *d)
{
    return d->io.now(d->io.ctx);
}

static uint64_t horizon_of(const struct resource *d)
{
    return d->io.horizon ? d->io.horizon(d->io.ctx) : 0;
}

static struct resource_branch *find(const struct resource *d, const char *txid)
{
    return (struct resource_branch *)txmap_get(&d->branches, txid);
}

static struct resource_branch *make(struct resource *d, const char *txid)
{
    struct resource_branch *b = calloc(1, sizeof(*b));

    if (!b)
        return NULL;
    if (msg_copy_str(b->e.id, TPC_TXID_MAX, txid) != TPC_OK) {
        free(b);
        return NULL;
    }
    txmap_add(&d->branches, &b->e);
    return b;
}

static void forget(struct resource *d, struct resource_branch *b)
{
    txmap_del(&d->branches, &b->e);
    free(b);
}

static void send_vote(struct resource *d, const struct node_addr *to, const char *txid,
                      const struct rm_branch *br)
{
    struct msg v;

    rm_vote_init(txid, d->cfg.self, br->vote, &v);
    v.read_only = br->state == RM_READONLY;
    d->io.send(d->io.ctx, to, &v);
}

static void send_ack(struct resource *d, const struct node_addr *to, const char *txid,
                     enum tpc_outcome o)
{
    struct msg a;

    memset(&a, 0, sizeof(a));
    a.type = MSG_ACK;
    msg_copy_str(a.txid, TPC_TXID_MAX, txid);
    msg_copy_str(a.instance, TPC_NAME_MAX, d->cfg.self);
    a.outcome = o;
    d->io.send(d->io.ctx, to, &a);
}

/* Starts the write that takes b to next; what waits for it is answered on completion. */
static void start_write(struct resource *d, struct resource_branch *b, enum node_write_kind kind,
                        const struct rm_branch *next, enum tpc_outcome o)
{
    struct node_write w;

    node_write_init(&w, kind, b->e.id);
    w.outcome = o;
    w.vote = next->vote;
    w.born = b->born;
    w.parts = b->parts;
    b->writing = kind;
    b->next = *next;
    b->outcome = o;
    d->io.persist(d->io.ctx, &w);
}

enum tpc_err resource_init(struct resource *d, const struct resource_config *cfg,
                           const struct node_io *io)
{
    memset(d, 0, sizeof(*d));
    if (!msg_name_valid(cfg->self) || cfg->n_replicas > TPC_MAX_REPLICAS)
        return TPC_ERR_RANGE;
    d->cfg = *cfg;
    if (d->cfg.doubt_after < 1)
        d->cfg.doubt_after = 1;
    if (d->cfg.doubt_max < d->cfg.doubt_after)
        d->cfg.doubt_max = d->cfg.doubt_after;
    d->io = *io;
    return txmap_init(&d->branches);
}

static void free_one(void *ctx, struct txmap_entry *e)
{
    forget(ctx, (struct resource_branch *)e);
}

void resource_fini(struct resource *d)
{
    if (!d->branches.bucket)
        return;
    txmap_each(&d->branches, free_one, d);
    txmap_fini(&d->branches);
}

enum tpc_err resource_load(struct resource *d, const char *txid, const struct msg_parts *parts,
                           uint64_t born)
{
    struct resource_branch *b;

    if (find(d, txid) || msg_parts_find(parts, d->cfg.self) < 0)
        return TPC_ERR_STATE;
    b = make(d, txid);
    if (!b)
        return TPC_ERR_NOMEM;
    b->rm = (struct rm_branch){RM_PREPARED, TPC_VALUE_PREPARED};
    b->parts = *parts;
    b->born = born;
    b->next_query = now_of(d); /* rule 5: ask soon */
    return TPC_OK;
}

enum tpc_err resource_load_heuristic(struct resource *d, const char *txid,
                                     const struct msg_parts *parts, uint64_t born,
                                     enum tpc_outcome heur)
{
    struct resource_branch *b;
    enum tpc_err rc;

    if (heur != TPC_OUTCOME_COMMITTED && heur != TPC_OUTCOME_ABORTED)
        return TPC_ERR_INVALID;
    rc = resource_load(d, txid, parts, born);
    if (rc)
        return rc;
    b = find(d, txid);
    b->rm.state = heur == TPC_OUTCOME_COMMITTED ? RM_HEUR_COMMITTED : RM_HEUR_ABORTED;
    return TPC_OK;
}

enum tpc_err resource_heuristic(struct resource *d, const char *txid, enum tpc_outcome o, char *err,
                                size_t errlen)
{
    struct resource_branch *b = find(d, txid);
    struct rm_branch cur = {RM_NONE, TPC_VALUE_NONE}, next;
    uint64_t born = 0;
    int ended = RM_NONE;
    bool changes;

    if (o != TPC_OUTCOME_COMMITTED && o != TPC_OUTCOME_ABORTED)
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "no outcome");
    if (b && b->writing)
        return tpc_errbuf_set(err, errlen, TPC_ERR_BUSY, "branch %s is busy: ask again", txid);
    if (b) {
        cur = b->rm;
    } else {
        if (d->io.ended(d->io.ctx, txid, &ended, &cur.vote, &born) != TPC_OK)
            return tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot read how %s ended", txid);
        cur.state = (enum rm_state)ended;
    }
    if (rm_heuristic_decide(&cur, o, &next, &changes) != TPC_OK)
        return tpc_errbuf_set(err, errlen, TPC_ERR_STATE, "branch %s is %s, not prepared", txid,
                              b || cur.state != RM_NONE ? rm_state_name(cur.state) : "unknown");
    if (changes && !b) /* a prepared branch is always in memory (rule 5) */
        return tpc_errbuf_set(err, errlen, TPC_ERR_STATE, "branch %s is not here", txid);
    if (changes)
        start_write(d, b, NODE_WRITE_HEURISTIC, &next, o);
    return TPC_OK;
}

enum tpc_err resource_begin(struct resource *d, const char *txid, uint64_t timeout, uint64_t born)
{
    struct resource_branch *b = find(d, txid);
    enum tpc_value vote = TPC_VALUE_NONE;
    uint64_t ended_born = 0;
    int ended = RM_NONE;

    if (b)
        return b->rm.state == RM_WORKING && !b->writing ? TPC_OK : TPC_ERR_STATE;
    if (!msg_txid_valid(txid))
        return TPC_ERR_INVALID;
    if (d->io.ended(d->io.ctx, txid, &ended, &vote, &ended_born) != TPC_OK)
        return TPC_ERR_IO;
    if (ended != RM_NONE)
        return TPC_ERR_STATE; /* it ended here: no statement may start it again */
    if (msg_expired(born, horizon_of(d)))
        return TPC_ERR_EXPIRED; /* rule 6: it may have ended here and been forgotten */
    b = make(d, txid);
    if (!b)
        return TPC_ERR_NOMEM;
    b->rm.state = RM_WORKING;
    b->born = born;
    b->deadline = now_of(d) + (timeout ? timeout : d->cfg.branch_timeout);
    return TPC_OK;
}

enum tpc_err resource_prepare(struct resource *d, const struct node_addr *from,
                              const struct msg *prep, bool ok, bool changed, char *err,
                              size_t errlen)
{
    struct resource_branch *b = find(d, prep->txid);
    struct rm_branch cur = {RM_NONE, TPC_VALUE_NONE}, next;
    uint64_t held_born = 0;
    int ended = RM_NONE;
    bool persist;

    if (prep->type != MSG_PREPARE)
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "not a prepare");
    if (msg_validate(prep, d->cfg.n_replicas ? d->cfg.n_replicas : 1, err, errlen) != TPC_OK)
        return TPC_ERR_INVALID;
    if (msg_parts_find(&prep->parts, d->cfg.self) < 0)
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "participant list does not name %s",
                              d->cfg.self);
    if (b && b->writing) {
        /* The vote is decided by the write on its way (or, for an outcome without a vote,
         * not yet): answer once it is durable, or ask again. */
        if (b->next.vote == TPC_VALUE_NONE)
            return tpc_errbuf_set(err, errlen, TPC_ERR_BUSY, "branch %s is ending", prep->txid);
        b->vote_owed = true;
        b->vote_to = *from;
        return TPC_OK;
    }
    if (b) {
        cur = b->rm;
        held_born = b->born;
    } else {
        if (d->io.ended(d->io.ctx, prep->txid, &ended, &cur.vote, &held_born) != TPC_OK)
            return tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot read how %s ended", prep->txid);
        cur.state = (enum rm_state)ended;
    }
    /* A branch of another transaction of this txid (begun again once the first was
     * forgotten elsewhere) gives no vote for this one. */
    if (held_born && prep->born && held_born != prep->born)
        return tpc_errbuf_set(err, errlen, TPC_ERR_STATE,
                              "branch %s belongs to the transaction born at %llu, not %llu",
                              prep->txid, (unsigned long long)held_born,
                              (unsigned long long)prep->born);
    /* Rule 6: no fresh vote for an expired transaction (it may have voted and forgotten);
     * a vote already decided (prepared, or an end recorded) is repeated. */
    if ((cur.state == RM_NONE || cur.state == RM_WORKING) &&
        msg_expired(prep->born, horizon_of(d))) {
        d->stats.expired_refused++;
        return tpc_errbuf_set(err, errlen, TPC_ERR_EXPIRED,
                              "transaction %s is older than the horizon: forgotten", prep->txid);
    }
    /* One transaction, one list: a prepared branch keeps the one it was prepared with. */
    if (cur.state == RM_PREPARED && !msg_parts_equal(&b->parts, &prep->parts))
        return tpc_errbuf_set(err, errlen, TPC_ERR_STATE,
                              "branch %s was prepared with another participant list", prep->txid);
    rm_prepare(&cur, ok, changed, &next, &persist);
    if (!persist) {
        send_vote(d, from, prep->txid, &next); /* rule 2: the first vote, again */
        return TPC_OK;
    }
    if (!b && !(b = make(d, prep->txid)))
        return TPC_ERR_NOMEM;
    b->parts = prep->parts;
    if (!b->born)
        b->born = prep->born;
    b->vote_owed = true;
    b->vote_to = *from;
    if (next.state == RM_PREPARED)
        start_write(d, b, NODE_WRITE_PREPARED, &next, TPC_OUTCOME_NONE);
    else if (next.state == RM_READONLY)
        start_write(d, b, NODE_WRITE_READONLY, &next, TPC_OUTCOME_NONE);
    else
        start_write(d, b, NODE_WRITE_OUTCOME, &next, TPC_OUTCOME_ABORTED);
    if (TPC_BROKEN(TPC_BREAK_VOTE_BEFORE_DURABLE)) {
        b->vote_owed = false;
        send_vote(d, from, prep->txid, &next);
    }
    return TPC_OK;
}

/* Applies outcome o to b (in memory, no write on its way); ack_to, when not NULL, is told. */
static enum tpc_err apply(struct resource *d, struct resource_branch *b, enum tpc_outcome o,
                          const struct node_addr *ack_to, char *err, size_t errlen)
{
    struct rm_branch next;
    bool changes;

    if (rm_outcome(&b->rm, o, &next, &changes) != TPC_OK)
        return tpc_errbuf_set(err, errlen, TPC_ERR_PROTOCOL, "branch %s is %s; it cannot be %s",
                              b->e.id, rm_state_name(b->rm.state), msg_outcome_name(o));
    if (ack_to) {
        b->ack_owed = true;
        b->ack_to = *ack_to;
    }
    /* Rule 7: a heuristic branch records what it learned; nothing to apply. */
    if (rm_heuristic(&b->rm) != TPC_OUTCOME_NONE) {
        start_write(d, b, NODE_WRITE_RECONCILE, &next, o);
        return TPC_OK;
    }
    /* Rule 3: applied (or discarded) and recorded in one durable write. */
    start_write(d, b, NODE_WRITE_OUTCOME, &next, o);
    return TPC_OK;
}

enum tpc_err resource_outcome(struct resource *d, const struct node_addr *from, const char *txid,
                              enum tpc_outcome o, uint64_t born, char *err, size_t errlen)
{
    struct resource_branch *b = find(d, txid);
    struct rm_branch known = {RM_NONE, TPC_VALUE_NONE};
    uint64_t ended_born = 0;
    int ended = RM_NONE;

    if (o != TPC_OUTCOME_COMMITTED && o != TPC_OUTCOME_ABORTED)
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "no outcome");
    if (!msg_txid_valid(txid))
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "not a transaction id");
    if (b && b->writing) {
        if ((b->writing == NODE_WRITE_OUTCOME || b->writing == NODE_WRITE_RECONCILE) &&
            b->outcome == o) {
            b->ack_owed = true; /* the same outcome is being applied: answer with it */
            b->ack_to = *from;
            return TPC_OK;
        }
        return tpc_errbuf_set(err, errlen, TPC_ERR_BUSY, "branch %s is busy: ask again", txid);
    }
    if (b)
        return apply(d, b, o, from, err, errlen);
    /* Not in memory: it ended before, or never began here. */
    if (d->io.ended(d->io.ctx, txid, &ended, &known.vote, &ended_born) != TPC_OK)
        return tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot read how %s ended", txid);
    known.state = (enum rm_state)ended;
    if (known.state == RM_READONLY || (known.state == RM_COMMITTED && o == TPC_OUTCOME_COMMITTED) ||
        (known.state == RM_ABORTED && o == TPC_OUTCOME_ABORTED) ||
        rm_heuristic(&known) != TPC_OUTCOME_NONE) {
        /* Repeated, read-only, or heuristic and reconciled (rule 7): nothing to do. A
         * heuristic one not reconciled yet is always in memory (decided there, or reloaded at
         * start, every one of them), so one that storage answers for is reconciled. */
        send_ack(d, from, txid, o);
        return TPC_OK;
    }
    if (known.state != RM_NONE)
        return tpc_errbuf_set(err, errlen, TPC_ERR_PROTOCOL, "transaction %s is already %s here",
                              txid, rm_state_name(known.state));
    if (msg_expired(born, horizon_of(d))) {
        send_ack(d, from, txid, o); /* rule 6: ended and forgotten, or never begun here */
        return TPC_OK;
    }
    if (o == TPC_OUTCOME_COMMITTED)
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID,
                              "no branch %s here, and no commit recorded for it", txid);
    /* Abort of a branch never seen: recorded, which keeps a late statement out. */
    b = make(d, txid);
    if (!b)
        return TPC_ERR_NOMEM;
    b->born = born;
    return apply(d, b, o, from, err, errlen);
}

enum tpc_err resource_receive(struct resource *d, const struct msg *m, char *err, size_t errlen)
{
    struct resource_branch *b;

    if (msg_validate(m, d->cfg.n_replicas ? d->cfg.n_replicas : 1, err, errlen) != TPC_OK)
        return TPC_ERR_INVALID;
    if (m->type != MSG_OUTCOME)
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "participant: unexpected %s",
                              msg_type_name(m->type));
    b = find(d, m->txid);
    if (!b || b->writing ||
        (b->rm.state != RM_PREPARED && rm_heuristic(&b->rm) == TPC_OUTCOME_NONE))
        return TPC_OK; /* not in doubt (any more): nothing to learn */
    if (apply(d, b, m->outcome, NULL, err, errlen) == TPC_OK)
        d->stats.doubts_resolved++;
    return TPC_OK;
}

void resource_persisted(struct resource *d, const struct node_write *w, enum tpc_err rc)
{
    struct resource_branch *b = find(d, w->txid);
    bool owed_vote, owed_ack;
    struct node_addr vote_to, ack_to;

    if (!b || b->writing != w->kind)
        return;
    b->writing = 0;
    owed_vote = b->vote_owed;
    owed_ack = b->ack_owed;
    vote_to = b->vote_to;
    ack_to = b->ack_to;
    b->vote_owed = b->ack_owed = false;
    if (rc) {
        /* Nothing durable: nothing said. A branch never seen leaves memory again. */
        if (b->rm.state == RM_NONE)
            forget(d, b);
        return;
    }
    b->rm = b->next;
    if (owed_vote)
        send_vote(d, &vote_to, w->txid, &b->rm);
    if (owed_ack)
        send_ack(d, &ack_to, w->txid, b->outcome);
    if (w->kind == NODE_WRITE_RECONCILE) { /* rule 7: reconciled, ended */
        if (w->outcome == rm_heuristic(&b->rm))
            d->stats.heur_confirmed++;
        else
            d->stats.heur_mixed++;
        forget(d, b);
        return;
    }
    switch (b->rm.state) {
    case RM_HEUR_COMMITTED:
    case RM_HEUR_ABORTED:
        if (w->kind == NODE_WRITE_HEURISTIC) {
            if (b->rm.state == RM_HEUR_COMMITTED)
                d->stats.heur_committed++;
            else
                d->stats.heur_aborted++;
        }
        b->next_query = now_of(d); /* rule 7: learn the chosen outcome, to reconcile */
        b->query_tries = 0;
        return;
    case RM_PREPARED:
        b->next_query = now_of(d) + d->cfg.doubt_after;
        b->query_tries = 0;
        return;
    case RM_COMMITTED:
        d->stats.committed++;
        break;
    case RM_READONLY:
        d->stats.read_only++;
        break;
    default:
        d->stats.aborted++;
        break;
    }
    forget(d, b); /* ended: storage answers for it from now on */
}

struct tick_ctx {
    struct resource *d;
    uint64_t now;
};

static void ask(struct resource *d, struct resource_branch *b, uint64_t now)
{
    struct node_addr to;
    struct msg q;
    uint64_t wait;

    memset(&q, 0, sizeof(q));
    q.type = MSG_STATUS;
    memcpy(q.txid, b->e.id, sizeof(q.txid));
    msg_copy_str(q.instance, TPC_NAME_MAX, d->cfg.self);
    q.parts = b->parts;
    q.born = b->born;
    to = node_replica(b->query_tries % d->cfg.n_replicas);
    d->io.send(d->io.ctx, &to, &q);
    /* Round robin over the replicas, with backoff and a little jitter. */
    wait = d->cfg.doubt_after << (b->query_tries < 6 ? b->query_tries : 6);
    if (wait > d->cfg.doubt_max)
        wait = d->cfg.doubt_max;
    b->query_tries++;
    b->next_query = now + wait + d->io.random(d->io.ctx) % d->cfg.doubt_after;
}

static void tick_one(void *ctx, struct txmap_entry *e)
{
    struct tick_ctx *c = ctx;
    struct resource_branch *b = (struct resource_branch *)e;
    char err[128];

    if (b->writing)
        return;
    if (b->rm.state == RM_WORKING && c->now >= b->deadline && rm_may_abort(&b->rm)) {
        /* Rule 1 of rm.h: not prepared by its deadline, it aborts on its own, durably: a
         * late statement cannot start it again, nor a later prepare vote prepared. */
        apply(c->d, b, TPC_OUTCOME_ABORTED, NULL, err, sizeof(err));
        return;
    }
    if ((rm_in_doubt(&b->rm) || rm_heuristic(&b->rm) != TPC_OUTCOME_NONE) &&
        c->now >= b->next_query && c->d->cfg.n_replicas)
        ask(c->d, b, c->now);
}

void resource_tick(struct resource *d)
{
    struct tick_ctx c = {d, now_of(d)};

    txmap_each(&d->branches, tick_one, &c);
}

const struct resource_branch *resource_find(const struct resource *d, const char *txid)
{
    return find(d, txid);
}

size_t resource_size(const struct resource *d)
{
    return d->branches.n;
}

struct each_ctx {
    void (*fn)(void *ctx, const struct resource_branch *b);
    void *ctx;
};

static void each_one(void *ctx, struct txmap_entry *e)
{
    struct each_ctx *c = ctx;

    c->fn(c->ctx, (const struct resource_branch *)e);
}

void resource_foreach(const struct resource *d,
                      void (*fn)(void *ctx, const struct resource_branch *b), void *ctx)
{
    struct each_ctx c = {fn, ctx};

    txmap_each((struct txmap *)&d->branches, each_one, &c);
}

static void check_one(void *ctx, struct txmap_entry *e)
{
    const struct resource_branch *b = (const struct resource_branch *)e;
    const struct resource *d = ctx;

    (void)b;
    (void)d;
    assert(b->writing || b->rm.state == RM_WORKING || b->rm.state == RM_PREPARED ||
           rm_heuristic(&b->rm) != TPC_OUTCOME_NONE);                                  /* I1 */
    assert(b->writing || (!b->vote_owed && !b->ack_owed));                             /* I2 */
    assert(b->rm.state != RM_PREPARED || msg_parts_find(&b->parts, d->cfg.self) >= 0); /* I3 */
}

void resource_check(const struct resource *d)
{
#ifndef NDEBUG
    txmap_each((struct txmap *)&d->branches, check_one, (void *)d);
#else
    (void)d;
    (void)check_one;
#endif
}
