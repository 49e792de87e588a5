/*
 * sim_replica.c - a coordinator replica in the simulator: the real acceptor
 * over an in-memory "disk" (the durable fields of struct sim_replica), and the
 * real leader for the transactions it leads or recovers.
 */
#include <string.h>

#include "breakable.h"
#include "sim.h"

struct out_ctx {
    struct sim *s;
    uint32_t r, t;
};

static void leader_send(void *ctx, enum leader_dest dest, uint32_t id, const struct msg *m)
{
    struct out_ctx *c = ctx;
    uint32_t q;

    switch (dest) {
    case LEADER_TO_ACCEPTOR:
        sim_send(c->s, c->r, id, m);
        break;
    case LEADER_TO_PARTICIPANT:
        sim_send(c->s, c->r, c->s->txn[c->t].part_node[id], m);
        break;
    case LEADER_TO_REPLICAS:
        for (q = 0; q < c->s->p.n_replicas; q++)
            if (q != c->r)
                sim_send(c->s, c->r, q, m);
        break;
    }
}

static struct leader_config leader_cfg(const struct sim *s, uint32_t r)
{
    struct leader_config cfg = {
        .self = r,
        .n_acceptors = s->p.n_replicas,
        .prepare_timeout = s->p.prepare_timeout,
        .retry_interval = s->p.retry_interval,
        .retry_max = s->p.retry_max,
    };
    return cfg;
}

/* Records a decision durably at this replica (the checker verifies it) and answers the client. */
static void record_decision(struct sim *s, uint32_t r, uint32_t t, enum tpc_outcome o)
{
    struct sim_replica *rep = &s->rep[r];
    char who[32];
    struct msg m;

    if (rep->decided[t] == TPC_OUTCOME_NONE) {
        rep->decided[t] = o;
        snprintf(who, sizeof(who), "replica r%u", r);
        check_told(s, t, o, who);
        sim_trace(s, "r%u: %s decided %s", r, s->txn[t].txid, msg_outcome_name(o));
    }
    if (rep->client_waiting[t]) {
        memset(&m, 0, sizeof(m));
        m.type = MSG_OUTCOME;
        memcpy(m.txid, s->txn[t].txid, sizeof(m.txid));
        m.outcome = rep->decided[t];
        sim_send(s, r, sim_client(s), &m);
        rep->client_waiting[t] = false;
    }
}

/* After the leader of t ran: keep what it decided, and let it go once it has nothing left. */
static void after_leader(struct sim *s, uint32_t r, uint32_t t)
{
    struct sim_replica *rep = &s->rep[r];

    if (!rep->leading[t] || s->dying[r])
        return;
    if (rep->leader[t].decision != TPC_OUTCOME_NONE)
        record_decision(s, r, t, rep->leader[t].decision);
    if (leader_done(&rep->leader[t]))
        rep->leading[t] = false;
}

static void recover_round(struct sim *s, uint32_t r, uint32_t t)
{
    struct sim_replica *rep = &s->rep[r];
    struct out_ctx c = {s, r, t};
    struct leader_out out = {leader_send, &c};
    uint64_t round = rep->round + 1;

    if (round < leader_min_round(&rep->leader[t]))
        round = leader_min_round(&rep->leader[t]);
    rep->round = round; /* durable before any ballot (round, r) leaves (leader.h rule 4) */
    sim_after_persist(s, r);
    s->stats->recoveries++;
    s->txn[t].recovered_by |= 1u << r;
    sim_trace(s, "r%u: recovers %s with ballot (%llu,%u)", r, s->txn[t].txid,
              (unsigned long long)round, r);
    leader_recover(&rep->leader[t], round, s->now, prng_next(&s->rng), &out);
}

static bool start_leader(struct sim *s, uint32_t r, uint32_t t, const struct msg_parts *parts)
{
    struct sim_replica *rep = &s->rep[r];
    struct leader_config cfg = leader_cfg(s, r);
    enum tpc_err rc;

    rc = leader_init(&rep->leader[t], &cfg, s->txn[t].txid, parts, s->now);
    if (rc) {
        sim_error(s, "r%u: leader_init %s: %s", r, s->txn[t].txid, tpc_strerror(rc));
        return false;
    }
    rep->leading[t] = true;
    return true;
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
    if (m->type == MSG_PHASE1A)
        rc = acceptor_phase1b(&rep->acc[t][i], m, r, s->p.n_replicas, &next, &reply, &action, err,
                              sizeof(err));
    else
        rc = acceptor_phase2b(&rep->acc[t][i], m, r, s->p.n_replicas, &next, &reply, &action, err,
                              sizeof(err));
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
    if (action == ACCEPTOR_PERSIST_THEN_REPLY) {
        rep->acc[t][i] = next;
        if (reply.type == MSG_PHASE2B)
            check_accepted(s, t, (uint32_t)i, r, reply.ballot, reply.value);
        sim_after_persist(s, r);
    }
    sim_send(s, r, from, &reply);
}

static void on_status(struct sim *s, uint32_t r, uint32_t from, uint32_t t, const struct msg *m)
{
    struct sim_replica *rep = &s->rep[r];
    struct msg reply;

    if (rep->decided[t] != TPC_OUTCOME_NONE) {
        memset(&reply, 0, sizeof(reply));
        reply.type = MSG_OUTCOME;
        memcpy(reply.txid, m->txid, sizeof(reply.txid));
        reply.outcome = rep->decided[t];
        sim_send(s, r, from, &reply);
        return;
    }
    const struct msg_parts *parts = m->parts.n ? &m->parts : NULL;
    uint32_t i;

    if (from == sim_client(s))
        rep->client_waiting[t] = true;
    /* A participant's list is the one its leader prepared it with; a client gives none, and
     * the replica recovers only with a list its acceptor recorded (never a guessed one). */
    for (i = 0; !parts && i < s->txn[t].parts.n; i++)
        if (rep->acc[t][i].parts.n)
            parts = &rep->acc[t][i].parts;
    /* Somebody waited long for t: recover it, unless this replica is already on it. */
    if (!rep->leading[t] && parts && start_leader(s, r, t, parts))
        recover_round(s, r, t);
}

void sim_replica_receive(struct sim *s, uint32_t r, uint32_t from, const struct sim_packet *pk)
{
    struct sim_replica *rep = &s->rep[r];
    const struct msg *m = &pk->m;
    struct out_ctx c = {s, r, 0};
    struct leader_out out = {leader_send, &c};
    char err[256];
    enum tpc_err rc;
    int t = sim_txn_index(s, m->txid);

    if (t < 0) {
        sim_error(s, "r%u: message for unknown transaction %s", r, m->txid);
        return;
    }
    c.t = (uint32_t)t;
    if (pk->is_commit) {
        if (rep->decided[t] != TPC_OUTCOME_NONE || rep->leading[t]) {
            rep->client_waiting[t] = true;
        } else if (start_leader(s, r, (uint32_t)t, &m->parts)) {
            rep->client_waiting[t] = true;
            leader_relay_first(&rep->leader[t], s->txn[t].relay_first);
            leader_start(&rep->leader[t], s->now, &out);
        }
        after_leader(s, r, (uint32_t)t);
        if (rep->decided[t] != TPC_OUTCOME_NONE)
            record_decision(s, r, (uint32_t)t, rep->decided[t]);
        return;
    }
    switch (m->type) {
    case MSG_PHASE1A:
    case MSG_PHASE2A:
        on_acceptor(s, r, from, (uint32_t)t, m);
        return;
    case MSG_VOTE:
    case MSG_PHASE1B:
    case MSG_PHASE2B:
    case MSG_REJECT:
    case MSG_ACK:
        if (!rep->leading[t])
            return; /* nobody here leads t any more (or not since a crash) */
        if (m->type == MSG_VOTE && !rep->leader[t].started)
            return; /* a late vote for a leader that crashed; this one only recovers */
        rc = leader_receive(&rep->leader[t], m, s->now, prng_next(&s->rng), &out, err, sizeof(err));
        if (rc)
            sim_error(s, "r%u: leader refused input: %s", r, err);
        after_leader(s, r, (uint32_t)t);
        return;
    case MSG_OUTCOME:
        record_decision(s, r, (uint32_t)t, m->outcome);
        if (rep->leading[t]) {
            leader_learn(&rep->leader[t], m->outcome, s->now, &out);
            after_leader(s, r, (uint32_t)t);
        }
        return;
    case MSG_STATUS:
        on_status(s, r, from, (uint32_t)t, m);
        return;
    default:
        sim_error(s, "r%u: unexpected %s", r, msg_type_name(m->type));
    }
}

void sim_replica_tick(struct sim *s, uint32_t r)
{
    struct sim_replica *rep = &s->rep[r];
    uint32_t t, i;

    for (t = 0; t < s->p.n_txns && !s->dying[r]; t++) {
        struct out_ctx c = {s, r, t};
        struct leader_out out = {leader_send, &c};

        if (rep->leading[t]) {
            if (leader_tick(&rep->leader[t], s->now, prng_next(&s->rng), &out))
                recover_round(s, r, t);
            after_leader(s, r, t);
            continue;
        }
        if (rep->decided[t] != TPC_OUTCOME_NONE || s->now < rep->touched[t] + s->p.sweep_age)
            continue;
        /* The sweep: an undecided transaction this acceptor knows of, quiet for long; its
         * leader may be gone. Recover it with the participant list the acceptor recorded. */
        for (i = 0; i < s->txn[t].parts.n; i++) {
            if (rep->acc[t][i].parts.n) {
                if (start_leader(s, r, t, &rep->acc[t][i].parts))
                    recover_round(s, r, t);
                break;
            }
        }
    }
}

void sim_replica_crash(struct sim *s, uint32_t r)
{
    struct sim_replica *rep = &s->rep[r];

    memset(rep->leading, 0, sizeof(rep->leading));
    memset(rep->client_waiting, 0, sizeof(rep->client_waiting));
}

void sim_replica_restart(struct sim *s, uint32_t r)
{
    uint32_t t;

    for (t = 0; t < SIM_MAX_T; t++)
        s->rep[r].touched[t] = s->now;
}
