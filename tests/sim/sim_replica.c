/*
 * sim_replica.c - a coordinator replica in the simulator: the shipped replica
 * driver (shared/core/replica.h) over simulated I/O, and the real acceptor
 * over an in-memory disk (the durable fields of struct sim_replica).
 *
 * The driver's writes complete after a random delay, at the replica's tick; a
 * crash loses those on their way, each kept or lost at random (it may have
 * reached the disk), and never completes them. Besides the checker's own
 * invariants, this disk checks two driver rules as writes land: a told mark
 * only once every participant has the outcome durably (replica.h rule 3),
 * and (in sim_net.c) no telling before the decision record (rule 2).
 */
#include <string.h>

#include "breakable.h"
#include "sim.h"

static struct sim *sim_of(void *ctx)
{
    return ((struct sim_io_ctx *)ctx)->s;
}

static uint32_t node_of(void *ctx)
{
    return ((struct sim_io_ctx *)ctx)->node;
}

static int txn_of(struct sim *s, const char *txid)
{
    int t = sim_txn_index(s, txid);

    if (t < 0)
        sim_error(s, "the driver named an unknown transaction %s", txid);
    return t;
}

static void io_send(void *ctx, const struct node_addr *to, const struct msg *m)
{
    sim_io_send(sim_of(ctx), node_of(ctx), to, m);
}

static void io_persist(void *ctx, const struct node_write *w)
{
    struct sim_replica *rep = &sim_of(ctx)->rep[node_of(ctx)];

    sim_io_persist(sim_of(ctx), node_of(ctx), rep->pending, &rep->n_pending, w);
}

static enum tpc_outcome io_decision(void *ctx, const char *txid, struct msg_parts *parts,
                                    uint64_t *born)
{
    struct sim *s = sim_of(ctx);
    int t = txn_of(s, txid);

    if (t < 0)
        return TPC_OUTCOME_NONE;
    if (parts)
        *parts = s->rep[node_of(ctx)].decided_parts[t];
    if (born)
        *born = s->rep[node_of(ctx)].decided_born[t];
    return s->rep[node_of(ctx)].decided[t];
}

/* The participant list this acceptor recorded, if any instance of t has one. */
static const struct msg_parts *acc_parts(const struct sim *s, uint32_t r, uint32_t t)
{
    uint32_t i;

    for (i = 0; i < s->txn[t].parts.n; i++)
        if (s->rep[r].acc[t][i].parts.n)
            return &s->rep[r].acc[t][i].parts;
    return NULL;
}

/* The born this acceptor recorded for t (0: none). */
static uint64_t acc_born(const struct sim *s, uint32_t r, uint32_t t)
{
    uint64_t born = 0;
    uint32_t i;

    for (i = 0; i < s->txn[t].parts.n; i++)
        if (s->rep[r].acc[t][i].born > born)
            born = s->rep[r].acc[t][i].born;
    return born;
}

static void io_acceptor_parts(void *ctx, const char *txid, struct msg_parts *parts, uint64_t *born)
{
    struct sim *s = sim_of(ctx);
    int t = txn_of(s, txid);
    const struct msg_parts *known = t < 0 ? NULL : acc_parts(s, node_of(ctx), (uint32_t)t);

    memset(parts, 0, sizeof(*parts));
    *born = 0;
    if (known) {
        *parts = *known;
        *born = acc_born(s, node_of(ctx), (uint32_t)t);
    }
}

static size_t io_stale(void *ctx, uint64_t age, struct node_txn *out, size_t cap)
{
    struct sim *s = sim_of(ctx);
    struct sim_replica *rep = &s->rep[node_of(ctx)];
    const struct msg_parts *parts;
    size_t n = 0;
    uint32_t t;

    for (t = 0; t < s->p.n_txns && n < cap; t++) {
        parts = acc_parts(s, node_of(ctx), t);
        if (!parts || rep->decided[t] != TPC_OUTCOME_NONE || s->now < rep->touched[t] + age)
            continue;
        memset(&out[n], 0, sizeof(out[n]));
        memcpy(out[n].txid, s->txn[t].txid, sizeof(out[n].txid));
        out[n].parts = *parts;
        out[n].born = acc_born(s, node_of(ctx), t);
        n++;
    }
    return n;
}

static size_t io_untold(void *ctx, const char *after, struct node_txn *out, size_t cap)
{
    struct sim *s = sim_of(ctx);
    struct sim_replica *rep = &s->rep[node_of(ctx)];
    size_t n = 0;
    uint32_t t;

    /* txids t0..t3 sort as their indices do */
    for (t = 0; t < s->p.n_txns && n < cap; t++) {
        if (!rep->recorded[t] || rep->told[t] || strcmp(s->txn[t].txid, after) <= 0)
            continue;
        memset(&out[n], 0, sizeof(out[n]));
        memcpy(out[n].txid, s->txn[t].txid, sizeof(out[n].txid));
        out[n].outcome = rep->decided[t];
        out[n].born = rep->decided_born[t];
        out[n].parts = rep->decided_parts[t];
        n++;
    }
    return n;
}

/* A message of this replica about txid is still in the network (not delivered, not lost). */
static bool io_in_flight(void *ctx, const char *txid)
{
    struct sim *s = sim_of(ctx);
    uint32_t i;

    for (i = 0; i < s->n_net; i++)
        if (s->net[i].from == node_of(ctx) && s->net[i].req == SIM_MSG && !s->net[i].is_answer &&
            strcmp(s->net[i].m.txid, txid) == 0)
            return true;
    return false;
}

/* A write reaches the disk: its durable effect, and the checks that go with it. */
static void land(struct sim *s, uint32_t r, struct node_write *w)
{
    struct sim_replica *rep = &s->rep[r];
    int t = txn_of(s, w->txid);
    char who[32];
    uint32_t i;

    if (t < 0)
        return;
    switch (w->kind) {
    case NODE_WRITE_ROUND:
        /* A fresh round, never used before, even across crashes (leader.h rule 4). */
        rep->round = rep->round + 1 > w->round ? rep->round + 1 : w->round;
        w->round = rep->round;
        s->stats->recoveries++;
        s->txn[t].recovered_by |= 1u << r;
        sim_trace(s, "r%u: reserves round %llu for %s", r, (unsigned long long)w->round, w->txid);
        break;
    case NODE_WRITE_DECISION:
    case NODE_WRITE_LEARNED:
        snprintf(who, sizeof(who), "replica r%u", r);
        check_told(s, (uint32_t)t, w->outcome, who);
        if (rep->decided[t] == TPC_OUTCOME_NONE) {
            rep->decided[t] = w->outcome;
            sim_trace(s, "r%u: %s %s %s", r, w->kind == NODE_WRITE_DECISION ? "records" : "learns",
                      w->txid, msg_outcome_name(w->outcome));
        }
        if (!rep->decided_born[t])
            rep->decided_born[t] = w->born;
        /* The decision answers for the acceptor's records from now on (acceptor.h rule 4). */
        memset(rep->acc[t], 0, sizeof(rep->acc[t]));
        if (w->kind == NODE_WRITE_DECISION) {
            rep->recorded[t] = true;
            rep->decided_parts[t] = w->parts;
        }
        break;
    case NODE_WRITE_TOLD:
        /* replica.h rule 3: nothing owed any more only once every participant has it. */
        for (i = 0; i < rep->decided_parts[t].n; i++) {
            int k = msg_parts_find(&s->txn[t].parts, rep->decided_parts[t].name[i]);
            uint32_t p = k < 0 ? 0 : s->txn[t].part_node[k] - s->p.n_replicas;
            enum rm_state st = k < 0 ? RM_NONE : s->part[p].dur[t].state;
            /* A heuristic branch acknowledges once it has reconciled (resource.h rule 7). */
            bool reconciled = k >= 0 && rm_heuristic(&s->part[p].dur[t]) != TPC_OUTCOME_NONE &&
                              s->part[p].dur_learned[t] != TPC_OUTCOME_NONE;

            if (st != RM_COMMITTED && st != RM_ABORTED && st != RM_READONLY && !reconciled)
                sim_violation(s, "r%u marked %s told while %s has not applied it (%s)", r, w->txid,
                              rep->decided_parts[t].name[i], rm_state_name(st));
        }
        rep->told[t] = true;
        break;
    default:
        sim_error(s, "r%u: a participant's write kind %d", r, (int)w->kind);
    }
}

static void start(struct sim *s, uint32_t r)
{
    struct sim_replica *rep = &s->rep[r];
    struct replica_config cfg = {
        .self = r,
        .n_replicas = s->p.n_replicas,
        .prepare_timeout = s->p.prepare_timeout,
        .retry_interval = s->p.retry_interval,
        .retry_max = s->p.retry_max,
        .stale_after = s->p.sweep_age,
        .keep = 20,
        .keep_unrecorded = 100,
    };
    struct node_io io;

    sim_io_fill(s, r, &rep->io_ctx, &io);
    io.send = io_send;
    io.persist = io_persist;
    io.decision = io_decision;
    io.acceptor_parts = io_acceptor_parts;
    io.stale = io_stale;
    io.untold = io_untold;
    io.in_flight = io_in_flight;
    if (replica_init(&rep->drv, &cfg, &io) != TPC_OK || replica_start(&rep->drv) != TPC_OK) {
        sim_error(s, "r%u: the driver does not start", r);
        replica_fini(&rep->drv);
        return;
    }
    rep->drv_up = true;
}

static void on_acceptor(struct sim *s, uint32_t r, uint32_t from, uint32_t t, const struct msg *m)
{
    struct sim_replica *rep = &s->rep[r];
    struct acceptor_record next;
    enum acceptor_action action;
    struct msg reply;
    char err[256];
    enum tpc_err rc;
    int i = msg_parts_find(&s->txn[t].parts, m->instance);

    if (i < 0) {
        sim_error(s, "r%u: %s has no instance %s", r, m->txid, m->instance);
        return;
    }
    rc = acceptor_handle(&rep->acc[t][i], rep->decided[t], rep->decided_born[t], sim_horizon(s), m,
                         r, s->p.n_replicas, &next, &reply, &action, err, sizeof(err));
    if (rc == TPC_ERR_EXPIRED) {
        sim_trace(s, "r%u: refuses %s for %s/%s: expired", r, msg_type_name(m->type), m->txid,
                  m->instance);
        return; /* acceptor.h rule 5: nothing stored, nothing answered */
    }
    if (rc) {
        sim_error(s, "r%u: acceptor refused input: %s", r, err);
        return;
    }
    rep->touched[t] = s->now;
    if (action == ACCEPTOR_REPLY &&
        (ballot_cmp(next.mbal, rep->acc[t][i].mbal) || ballot_cmp(next.bal, rep->acc[t][i].bal) ||
         next.val != rep->acc[t][i].val || !msg_parts_equal(&next.parts, &rep->acc[t][i].parts)))
        sim_violation(s, "r%u: acceptor changed its record for %s/%s but asked for no write", r,
                      m->txid, m->instance);
    if (ballot_cmp(next.mbal, rep->acc[t][i].mbal) < 0)
        sim_violation(s, "r%u: acceptor's promise for %s/%s went down", r, m->txid, m->instance);
    /* The acceptor's record and answer are one durable step of the node's storage: the
     * record is on the disk before the answer leaves (acceptor.h rule 3). */
    if (action == ACCEPTOR_PERSIST_THEN_REPLY) {
        rep->acc[t][i] = next;
        if (reply.type == MSG_PHASE2B)
            check_accepted(s, t, (uint32_t)i, r, reply.ballot, reply.value);
        sim_after_persist(s, r);
    }
    sim_send(s, r, from, &reply);
}

/* The client's request, as the coordinator's API carries it out over the driver. */
static void on_request(struct sim *s, uint32_t r, uint32_t t, const struct sim_packet *pk)
{
    struct sim_replica *rep = &s->rep[r];
    struct replica_view v;
    struct node_addr client = node_client();
    struct msg m;
    uint32_t i;
    bool known = replica_view(&rep->drv, s->txn[t].txid, &v);

    if (pk->req == SIM_RESOLVE) {
        /* At any replica, known or not: no list recorded here, or expired, is refused (the
         * operator is told so, and asks another replica). */
        if (rep->decided[t] == TPC_OUTCOME_NONE || known)
            replica_resolve(&rep->drv, s->txn[t].txid);
        return;
    }
    if (!known && rep->decided[t] != TPC_OUTCOME_NONE) {
        /* Forgotten from memory: storage answers. */
        if (pk->req == SIM_BEGIN)
            return;
        memset(&m, 0, sizeof(m));
        m.type = MSG_OUTCOME;
        memcpy(m.txid, s->txn[t].txid, sizeof(m.txid));
        m.outcome = rep->decided[t];
        sim_io_send(s, r, &client, &m);
        return;
    }
    if (!known) {
        /* Unknown here (never begun, or lost in a crash): begun anew with its branches, as a
         * client that begins again would. Its prepares repeat the votes cast (rm.h rule 3). */
        if (s->txn[t].born && msg_expired(s->txn[t].born, sim_horizon(s)))
            return; /* forgotten: the client is told so (a 404) and stops asking */
        if (replica_begin(&rep->drv, s->txn[t].txid, s->p.txn_timeout, s->txn[t].born) != TPC_OK) {
            sim_error(s, "r%u: cannot begin %s", r, s->txn[t].txid);
            return;
        }
        for (i = 0; i < s->txn[t].parts.n; i++)
            if (replica_enlist(&rep->drv, s->txn[t].txid, s->txn[t].parts.name[i]) != TPC_OK)
                sim_error(s, "r%u: cannot enlist %s", r, s->txn[t].parts.name[i]);
        if (!s->txn[t].born && replica_view(&rep->drv, s->txn[t].txid, &v))
            s->txn[t].born = v.born; /* one born per transaction, whoever begins it again */
    }
    if (pk->req == SIM_COMMIT)
        replica_commit(&rep->drv, s->txn[t].txid, s->txn[t].relay_first);
    else if (pk->req == SIM_ABORT)
        replica_abort(&rep->drv, s->txn[t].txid); /* mid-commit: refused; the client asks */
}

void sim_replica_receive(struct sim *s, uint32_t r, uint32_t from, const struct sim_packet *pk)
{
    struct sim_replica *rep = &s->rep[r];
    const struct msg *m = &pk->m;
    struct node_addr caller = node_caller(from);
    struct msg junk;
    char err[256];
    int t = sim_txn_index(s, m->txid);

    if (t < 0) {
        sim_error(s, "r%u: message for unknown transaction %s", r, m->txid);
        return;
    }
    if (!rep->drv_up)
        return;
    if (pk->req != SIM_MSG) {
        on_request(s, r, (uint32_t)t, pk);
        return;
    }
    if (sim_junk_now(s, pk, &junk)) {
        struct acceptor_record next, cur = rep->acc[t][0];
        enum acceptor_action action;
        struct msg reply;

        if (junk.type == MSG_PHASE1A ? acceptor_phase1b(&cur, &junk, r, s->p.n_replicas, &next,
                                                        &reply, &action, err, sizeof(err)) == TPC_OK
            : junk.type == MSG_PHASE2A
                ? acceptor_phase2b(&cur, &junk, r, s->p.n_replicas, &next, &reply, &action, err,
                                   sizeof(err)) == TPC_OK
                : replica_receive(&rep->drv, &caller, &junk, err, sizeof(err)) == TPC_OK)
            sim_error(s, "r%u took junk: a spoiled %s", r, msg_type_name(m->type));
    }
    if (m->type == MSG_PHASE1A || m->type == MSG_PHASE2A) {
        on_acceptor(s, r, from, (uint32_t)t, m);
        return;
    }
    if (replica_receive(&rep->drv, &caller, m, err, sizeof(err)) != TPC_OK)
        sim_error(s, "r%u: the driver refused input: %s", r, err);
}

void sim_replica_tick(struct sim *s, uint32_t r)
{
    struct sim_replica *rep = &s->rep[r];
    struct node_write w;

    if (!rep->drv_up)
        return;
    /* Writes that are durable now, in the order they were started. */
    while (sim_io_due(s, r, rep->pending, &rep->n_pending, &w)) {
        bool failed = sim_write_fails(s);

        if (!failed) {
            land(s, r, &w);
            sim_after_persist(s, r);
        }
        if (!s->dying[r])
            replica_persisted(&rep->drv, &w, failed ? TPC_ERR_IO : TPC_OK);
    }
    if (!s->dying[r])
        replica_tick(&rep->drv);
    replica_check(&rep->drv);
    sim_replica_collect(s, r);
}

void sim_replica_crash(struct sim *s, uint32_t r)
{
    struct sim_replica *rep = &s->rep[r];
    uint32_t i;

    /* A write on its way may have reached the disk or not; its completion is lost. */
    for (i = 0; i < rep->n_pending; i++)
        if (prng_chance(&s->rng, 500000))
            land(s, r, &rep->pending[i].w);
    rep->n_pending = 0;
    sim_replica_stop(s, r);
}

void sim_replica_restart(struct sim *s, uint32_t r)
{
    uint32_t t;

    for (t = 0; t < SIM_MAX_T; t++)
        s->rep[r].touched[t] = s->now;
    start(s, r);
}

void sim_replica_stop(struct sim *s, uint32_t r)
{
    if (s->rep[r].drv_up)
        replica_fini(&s->rep[r].drv);
    s->rep[r].drv_up = false;
}

/* First start of a seed's run. */
void sim_replica_boot(struct sim *s, uint32_t r)
{
    start(s, r);
}

/*
 * What acc_store.c's ACC_OP_COLLECT forgets: acceptor records of transactions expired
 * undecided, and decisions of expired ones, but those this replica still owes participants.
 * The broken rule forgets a decision once recorded, told or not, expired or not.
 */
void sim_replica_collect(struct sim *s, uint32_t r)
{
    struct sim_replica *rep = &s->rep[r];
    uint64_t h = sim_horizon(s);
    bool broken = TPC_BROKEN(TPC_BREAK_FORGET_BEFORE_TOLD);
    uint32_t t, i;

    for (t = 0; t < s->p.n_txns; t++) {
        for (i = 0; i < SIM_MAX_P; i++)
            if (msg_expired(rep->acc[t][i].born, h)) {
                memset(&rep->acc[t][i], 0, sizeof(rep->acc[t][i]));
                s->stats->forgotten++;
            }
        if (rep->decided[t] == TPC_OUTCOME_NONE)
            continue;
        if (!broken &&
            (!msg_expired(rep->decided_born[t], h) || (rep->recorded[t] && !rep->told[t])))
            continue;
        sim_trace(s, "r%u: forgets %s (%s)", r, s->txn[t].txid, msg_outcome_name(rep->decided[t]));
        rep->decided[t] = TPC_OUTCOME_NONE;
        rep->decided_born[t] = 0;
        memset(&rep->decided_parts[t], 0, sizeof(rep->decided_parts[t]));
        rep->recorded[t] = rep->told[t] = false;
        s->stats->forgotten++;
    }
}
