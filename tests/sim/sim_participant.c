/*
 * sim_participant.c - a participant in the simulator: the shipped participant
 * driver (shared/core/resource.h) over simulated I/O and an in-memory disk
 * (struct sim_part.dur). A branch begins WORKING when its first statement
 * arrives (as if the client's statements had run); whether it can commit and
 * whether it changed anything are drawn per branch. Writes complete after a
 * random delay; a crash loses everything but the disk (each write on its way
 * kept or lost at random).
 */
#include <string.h>

#include "sim.h"

static uint32_t node_of(const struct sim *s, uint32_t p)
{
    return s->p.n_replicas + p;
}

static struct sim *sim_of(void *ctx)
{
    return ((struct sim_io_ctx *)ctx)->s;
}

static uint32_t part_of(void *ctx)
{
    struct sim_io_ctx *c = ctx;

    return c->node - c->s->p.n_replicas;
}

static void io_send(void *ctx, const struct node_addr *to, const struct msg *m)
{
    struct sim_io_ctx *c = ctx;

    sim_io_send(c->s, c->node, to, m);
}

static void io_persist(void *ctx, const struct node_write *w)
{
    struct sim_part *pa = &sim_of(ctx)->part[part_of(ctx)];

    sim_io_persist(sim_of(ctx), ((struct sim_io_ctx *)ctx)->node, pa->pending, &pa->n_pending, w);
}

static bool ended_state(enum rm_state st)
{
    return st == RM_COMMITTED || st == RM_ABORTED || st == RM_READONLY || st == RM_HEUR_COMMITTED ||
           st == RM_HEUR_ABORTED;
}

static enum tpc_err io_ended(void *ctx, const char *txid, int *state, enum tpc_value *vote,
                             uint64_t *born)
{
    struct sim *s = sim_of(ctx);
    int t = sim_txn_index(s, txid);
    const struct rm_branch *d =
        t < 0 || s->part[part_of(ctx)].forgotten[t] ? NULL : &s->part[part_of(ctx)].dur[t];

    *state = d && ended_state(d->state) ? (int)d->state : RM_NONE;
    *vote = d && ended_state(d->state) ? d->vote : TPC_VALUE_NONE;
    *born = d && ended_state(d->state) ? s->part[part_of(ctx)].dur_born[t] : 0;
    return TPC_OK;
}

enum rm_state sim_part_state(const struct sim *s, uint32_t p, uint32_t t)
{
    const struct sim_part *pa = &s->part[p];
    const struct resource_branch *b;

    if (!s->up[node_of(s, p)] || !pa->drv_up)
        return pa->dur[t].state;
    b = resource_find(&pa->drv, s->txn[t].txid);
    /* In memory: WORKING or PREPARED (or on its way to an end, not durable yet). */
    return b ? b->rm.state : pa->dur[t].state;
}

/* A write reaches the disk. */
static void land(struct sim *s, uint32_t p, const struct node_write *w)
{
    struct sim_part *pa = &s->part[p];
    int t = sim_txn_index(s, w->txid);
    enum rm_state before, after;

    if (t < 0) {
        sim_error(s, "p%u: a write for unknown %s", p, w->txid);
        return;
    }
    before = pa->dur[t].state;
    if (pa->forgotten[t]) {
        /* A write about a branch storage forgot: the checker compares it with what it was. */
        sim_trace(s, "p%u: writes %s again after forgetting it", p, w->txid);
        pa->forgotten[t] = false;
    }
    if (w->born)
        pa->dur_born[t] = w->born;
    pa->dur_ended_at[t] = sim_wall(s);
    switch (w->kind) {
    case NODE_WRITE_PREPARED:
        pa->dur[t] = (struct rm_branch){RM_PREPARED, TPC_VALUE_PREPARED};
        pa->dur_parts[t] = w->parts;
        break;
    case NODE_WRITE_READONLY:
        pa->dur[t] = (struct rm_branch){RM_READONLY, TPC_VALUE_PREPARED};
        break;
    case NODE_WRITE_OUTCOME:
        after = w->outcome == TPC_OUTCOME_COMMITTED ? RM_COMMITTED : RM_ABORTED;
        pa->dur[t] = (struct rm_branch){after, w->vote};
        break;
    case NODE_WRITE_HEURISTIC: /* an operator's decision: no rule to check but its state */
        if (before != RM_PREPARED) {
            sim_violation(s, "p%u decided %s heuristically while %s", p, w->txid,
                          rm_state_name(before));
            return;
        }
        after = w->outcome == TPC_OUTCOME_COMMITTED ? RM_HEUR_COMMITTED : RM_HEUR_ABORTED;
        pa->dur[t] = (struct rm_branch){after, TPC_VALUE_PREPARED};
        pa->dur_learned[t] = TPC_OUTCOME_NONE;
        return;
    case NODE_WRITE_RECONCILE: /* it must have learned the chosen outcome */
        check_learned(s, (uint32_t)t, p, w->outcome);
        if (pa->dur_learned[t] == TPC_OUTCOME_NONE && w->outcome != rm_heuristic(&pa->dur[t]))
            s->stats->heur_mixed++;
        if (pa->dur_learned[t] == TPC_OUTCOME_NONE)
            pa->dur_learned[t] = w->outcome;
        sim_trace(s, "p%u: %s heuristic %s reconciled: chosen %s (durable)", p, w->txid,
                  msg_outcome_name(rm_heuristic(&pa->dur[t])), msg_outcome_name(w->outcome));
        return;
    default:
        sim_error(s, "p%u: a replica's write kind %d", p, (int)w->kind);
        return;
    }
    after = pa->dur[t].state;
    if (before != after)
        sim_trace(s, "p%u: %s %s -> %s (durable)", p, w->txid, rm_state_name(before),
                  rm_state_name(after));
    check_applied(s, (uint32_t)t, p, before, after);
}

static void start(struct sim *s, uint32_t p)
{
    struct sim_part *pa = &s->part[p];
    struct resource_config cfg;
    struct node_io io;
    uint32_t t;

    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.self, sizeof(cfg.self), "p%u", p);
    cfg.n_replicas = s->p.n_replicas;
    cfg.branch_timeout = s->p.branch_timeout;
    cfg.doubt_after = s->p.prepare_timeout + s->p.retry_interval;
    cfg.doubt_max = s->p.retry_interval << 6;
    sim_io_fill(s, node_of(s, p), &pa->io_ctx, &io);
    io.send = io_send;
    io.persist = io_persist;
    io.ended = io_ended;
    if (resource_init(&pa->drv, &cfg, &io) != TPC_OK) {
        sim_error(s, "p%u: the driver does not start", p);
        return;
    }
    pa->drv_up = true;
    /* Prepared branches come back from the disk and ask the replicas (resource.h rule 5). */
    for (t = 0; t < s->p.n_txns; t++)
        if (pa->dur[t].state == RM_PREPARED && !pa->forgotten[t] &&
            resource_load(&pa->drv, s->txn[t].txid, &pa->dur_parts[t], pa->dur_born[t]) != TPC_OK)
            sim_error(s, "p%u: cannot reload %s", p, s->txn[t].txid);
    /* So do heuristic decisions not reconciled yet (resource.h rule 7). */
    for (t = 0; t < s->p.n_txns; t++)
        if (rm_heuristic(&pa->dur[t]) != TPC_OUTCOME_NONE &&
            pa->dur_learned[t] == TPC_OUTCOME_NONE &&
            resource_load_heuristic(&pa->drv, s->txn[t].txid, &pa->dur_parts[t], pa->dur_born[t],
                                    rm_heuristic(&pa->dur[t])) != TPC_OK)
            sim_error(s, "p%u: cannot reload heuristic %s", p, s->txn[t].txid);
}

/* A branch's first statement arrives: it begins, unless the transaction ended here already. */
void sim_part_begin(struct sim *s, uint32_t p, uint32_t t)
{
    struct sim_part *pa = &s->part[p];
    char name[16];
    int i;

    snprintf(name, sizeof(name), "p%u", p);
    i = msg_parts_find(&s->txn[t].parts, name);
    if (i < 0 || !pa->drv_up)
        return;
    if (resource_begin(&pa->drv, s->txn[t].txid, 0, s->txn[t].born) == TPC_OK)
        s->txn[t].had_branch[i] = true;
}

void sim_part_receive(struct sim *s, uint32_t p, uint32_t from, const struct sim_packet *pk)
{
    struct sim_part *pa = &s->part[p];
    const struct msg *m = &pk->m;
    struct node_addr caller = node_caller(from);
    int t = sim_txn_index(s, m->txid), i;
    char name[16], err[256];
    struct msg junk;
    enum tpc_err rc;

    snprintf(name, sizeof(name), "p%u", p);
    if (t < 0 || (i = msg_parts_find(&s->txn[t].parts, name)) < 0) {
        sim_error(s, "p%u: message for a transaction it is not in: %s", p, m->txid);
        return;
    }
    if (!pa->drv_up)
        return;
    if (sim_junk_now(s, pk, &junk)) {
        rc = junk.type == MSG_PREPARE
                 ? resource_prepare(&pa->drv, &caller, &junk, true, true, err, sizeof(err))
             : pk->is_answer ? resource_receive(&pa->drv, &junk, err, sizeof(err))
             : junk.outcome == m->outcome && !strcmp(junk.txid, m->txid)
                 ? TPC_ERR_INVALID /* spoiled where an outcome call does not look */
                 : resource_outcome(&pa->drv, &caller, junk.txid, junk.outcome, junk.born, err,
                                    sizeof(err));
        if (rc == TPC_OK)
            sim_error(s, "p%u took junk: a spoiled %s", p, msg_type_name(m->type));
    }
    switch (m->type) {
    case MSG_PREPARE:
        rc = resource_prepare(&pa->drv, &caller, m, s->txn[t].branch_ok[i], s->txn[t].changed[i],
                              err, sizeof(err));
        if (rc && rc != TPC_ERR_BUSY && rc != TPC_ERR_EXPIRED)
            sim_error(s, "p%u: prepare refused: %s", p, err);
        return;
    case MSG_OUTCOME:
        if (pk->is_answer) { /* a replica answers its in-doubt question */
            if (resource_receive(&pa->drv, m, err, sizeof(err)) != TPC_OK)
                sim_error(s, "p%u: an answer refused: %s", p, err);
            return;
        }
        rc = resource_outcome(&pa->drv, &caller, m->txid, m->outcome, m->born, err, sizeof(err));
        if (rc == TPC_ERR_PROTOCOL || rc == TPC_ERR_INVALID)
            sim_violation(s, "p%u was told %s %s: %s", p, m->txid, msg_outcome_name(m->outcome),
                          err);
        return;
    default:
        sim_error(s, "p%u: unexpected %s", p, msg_type_name(m->type));
    }
}

/* An operator who gave up on the replicas: a prepared branch decided heuristically. */
static void operator_heuristic(struct sim *s, uint32_t p)
{
    struct sim_part *pa = &s->part[p];
    uint32_t t = (uint32_t)prng_below(&s->rng, s->p.n_txns);
    const struct resource_branch *b = resource_find(&pa->drv, s->txn[t].txid);
    enum tpc_outcome o = prng_below(&s->rng, 2) ? TPC_OUTCOME_COMMITTED : TPC_OUTCOME_ABORTED;
    char err[256];

    if (!b || b->rm.state != RM_PREPARED || b->writing)
        return;
    sim_trace(s, "operator: p%u decides %s %s heuristically", p, s->txn[t].txid,
              msg_outcome_name(o));
    if (resource_heuristic(&pa->drv, s->txn[t].txid, o, err, sizeof(err)) != TPC_OK)
        sim_error(s, "p%u: heuristic decision refused: %s", p, err);
    else
        s->stats->heuristics++;
}

void sim_part_tick(struct sim *s, uint32_t p)
{
    struct sim_part *pa = &s->part[p];
    uint32_t node = node_of(s, p);
    struct node_write w;

    if (!pa->drv_up)
        return;
    while (sim_io_due(s, node, pa->pending, &pa->n_pending, &w)) {
        bool failed = sim_write_fails(s);

        if (!failed) {
            land(s, p, &w);
            sim_after_persist(s, node);
        }
        if (!s->dying[node])
            resource_persisted(&pa->drv, &w, failed ? TPC_ERR_IO : TPC_OK);
    }
    if (!s->dying[node] && s->faults && s->p.heuristic_ppm &&
        prng_chance(&s->rng, s->p.heuristic_ppm))
        operator_heuristic(s, p);
    if (!s->dying[node])
        resource_tick(&pa->drv);
    resource_check(&pa->drv);
    sim_part_collect(s, p);
}

/* What store.c's store_collect forgets: a branch that voted prepared once its transaction is
 * expired; any other end a retention after it ended. Prepared branches are never forgotten. */
void sim_part_collect(struct sim *s, uint32_t p)
{
    struct sim_part *pa = &s->part[p];
    uint64_t h = sim_horizon(s);
    uint32_t t;

    for (t = 0; t < s->p.n_txns; t++) {
        const struct rm_branch *d = &pa->dur[t];

        if (pa->forgotten[t] || !ended_state(d->state) || rm_heuristic(d) != TPC_OUTCOME_NONE)
            continue; /* store.c keeps heuristic decisions for good */
        /* store.c: ended before the horizon, and expired (or, born unknown, not a prepared vote) */
        if (pa->dur_ended_at[t] >= h ||
            (pa->dur_born[t] ? !msg_expired(pa->dur_born[t], h) : d->vote == TPC_VALUE_PREPARED))
            continue;
        sim_trace(s, "p%u: forgets %s (%s)", p, s->txn[t].txid, rm_state_name(d->state));
        pa->forgotten[t] = true;
        s->stats->forgotten++;
    }
}

void sim_part_crash(struct sim *s, uint32_t p)
{
    struct sim_part *pa = &s->part[p];
    uint32_t i;

    for (i = 0; i < pa->n_pending; i++)
        if (prng_chance(&s->rng, 500000))
            land(s, p, &pa->pending[i].w);
    pa->n_pending = 0;
    sim_part_stop(s, p);
}

void sim_part_restart(struct sim *s, uint32_t p)
{
    start(s, p);
}

void sim_part_stop(struct sim *s, uint32_t p)
{
    if (s->part[p].drv_up)
        resource_fini(&s->part[p].drv);
    s->part[p].drv_up = false;
}

void sim_part_boot(struct sim *s, uint32_t p)
{
    start(s, p);
}
