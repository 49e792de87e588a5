/*
 * sim_participant.c - a participant in the simulator: the real rm.c rules
 * over an in-memory "disk" (struct sim_part.dur). A branch begins WORKING when
 * its transaction starts (as if the client's statements had run); crashes
 * lose everything but the durable states.
 */
#include <string.h>

#include "breakable.h"
#include "sim.h"

static uint32_t node_of(const struct sim *s, uint32_t p)
{
    return s->p.n_replicas + p;
}

static void name_of(uint32_t p, char *buf, size_t len)
{
    snprintf(buf, len, "p%u", p);
}

/* Changes the branch's state; durable ones are written first (and may be followed by a crash). */
static void set_state(struct sim *s, uint32_t p, uint32_t t, const struct rm_branch *next,
                      bool persist)
{
    struct sim_part *pa = &s->part[p];
    enum rm_state before = pa->st[t].state;

    pa->st[t] = *next;
    if (persist)
        pa->dur[t] = *next;
    if (before != next->state)
        sim_trace(s, "p%u: %s %s -> %s%s", p, s->txn[t].txid, rm_state_name(before),
                  rm_state_name(next->state), persist ? " (durable)" : "");
    check_applied(s, t, p, before, next->state);
    if (persist)
        sim_after_persist(s, node_of(s, p));
}

/* A branch's first statement arrives: it begins, unless the transaction ended here already. */
void sim_part_begin(struct sim *s, uint32_t p, uint32_t t)
{
    struct sim_part *pa = &s->part[p];
    char name[16];
    int i;

    name_of(p, name, sizeof(name));
    i = msg_parts_find(&s->txn[t].parts, name);
    if (i < 0 || !s->up[node_of(s, p)] || pa->st[t].state != RM_NONE)
        return;
    s->txn[t].had_branch[i] = true;
    pa->st[t].state = RM_WORKING;
    pa->branch_deadline[t] = s->now + s->p.branch_timeout;
}

static void on_prepare(struct sim *s, uint32_t p, uint32_t from, uint32_t t, int i,
                       const struct msg *m)
{
    struct sim_part *pa = &s->part[p];
    struct rm_branch next;
    struct msg a;
    bool persist;
    char name[16];
    uint32_t r;

    name_of(p, name, sizeof(name));
    rm_prepare(&pa->st[t], s->txn[t].branch_ok[i], s->txn[t].changed[i], &next, &persist);
    /* As the real participant does: an aborted vote for a branch it never had is recorded,
     * so that a late first statement cannot start the branch and a later prepare vote
     * prepared (rm.h rule 3). */
    persist = persist || (pa->st[t].state == RM_NONE && !TPC_BROKEN(TPC_BREAK_FORGET_ABORTED_VOTE));
    set_state(s, p, t, &next, persist); /* write before you speak */
    rm_vote_init(m->txid, name, next.vote, &pa->vote[t]);
    pa->vote[t].read_only = next.state == RM_READONLY;
    if (s->txn[t].relay) {
        /* prepare?relay=1: the vote goes to the leader alone, which relays it (rule 5). */
        sim_send(s, node_of(s, p), from, &pa->vote[t]);
        pa->vote_pending[t] = false;
    } else {
        rm_phase2a(m->txid, name, &m->parts, next.vote, &a);
        for (r = 0; r < s->p.n_replicas; r++)
            sim_send(s, node_of(s, p), r, &a);
        pa->vote_pending[t] = true;
        pa->vote_to[t] = from;
        pa->vote_deadline[t] = s->now + s->p.vote_wait;
    }
    if (rm_in_doubt(&next)) {
        pa->doubt_timer[t] = s->now + s->p.prepare_timeout + s->p.vote_wait;
        pa->doubt_attempts[t] = 0;
    }
}

static void on_outcome(struct sim *s, uint32_t p, uint32_t from, uint32_t t, const struct msg *m)
{
    struct sim_part *pa = &s->part[p];
    struct rm_branch next;
    struct msg ack;
    bool apply;
    char name[16];

    if (rm_outcome(&pa->st[t], m->outcome, &next, &apply) != TPC_OK) {
        sim_violation(s, "p%u was told %s %s while its branch was %s", p, m->txid,
                      msg_outcome_name(m->outcome), rm_state_name(pa->st[t].state));
        return;
    }
    /* The outcome is applied in the same durable step that records it. */
    if (next.state != pa->st[t].state || next.state != pa->dur[t].state)
        set_state(s, p, t, &next, true);
    if (!sim_is_replica(s, from))
        return;
    name_of(p, name, sizeof(name));
    memset(&ack, 0, sizeof(ack));
    ack.type = MSG_ACK;
    memcpy(ack.txid, m->txid, sizeof(ack.txid));
    msg_copy_str(ack.instance, TPC_NAME_MAX, name);
    ack.outcome = m->outcome;
    sim_send(s, node_of(s, p), from, &ack);
    (void)apply;
}

/*
 * The only participant, its prepared vote chosen (F+1 acceptors answered it): the decision
 * rule makes the transaction COMMITTED already, so it commits in one phase.
 */
static void one_phase(struct sim *s, uint32_t p, uint32_t t)
{
    struct sim_part *pa = &s->part[p];
    struct rm_branch next;
    bool apply;

    if (s->txn[t].parts.n != 1 || pa->st[t].state != RM_PREPARED || s->dying[node_of(s, p)])
        return;
    if (rm_outcome(&pa->st[t], TPC_OUTCOME_COMMITTED, &next, &apply) == TPC_OK)
        set_state(s, p, t, &next, true);
}

void sim_part_receive(struct sim *s, uint32_t p, uint32_t from, const struct msg *m)
{
    struct sim_part *pa = &s->part[p];
    int t = sim_txn_index(s, m->txid), i;
    char name[16];

    name_of(p, name, sizeof(name));
    if (t < 0 || (i = msg_parts_find(&s->txn[t].parts, name)) < 0) {
        sim_error(s, "p%u: message for a transaction it is not in: %s", p, m->txid);
        return;
    }
    switch (m->type) {
    case MSG_PREPARE:
        on_prepare(s, p, from, (uint32_t)t, i, m);
        return;
    case MSG_PHASE2B:
    case MSG_REJECT:
        if (pa->vote_pending[t] && rm_vote_add(&pa->vote[t], m, s->p.n_replicas)) {
            sim_send(s, node_of(s, p), pa->vote_to[t], &pa->vote[t]);
            pa->vote_pending[t] = false;
            one_phase(s, p, (uint32_t)t);
        }
        return;
    case MSG_OUTCOME:
        on_outcome(s, p, from, (uint32_t)t, m);
        return;
    default:
        sim_error(s, "p%u: unexpected %s", p, msg_type_name(m->type));
    }
}

void sim_part_tick(struct sim *s, uint32_t p)
{
    struct sim_part *pa = &s->part[p];
    struct msg q;
    char name[16];
    uint32_t t;

    name_of(p, name, sizeof(name));
    for (t = 0; t < s->p.n_txns && !s->dying[node_of(s, p)]; t++) {
        if (pa->vote_pending[t] && s->now >= pa->vote_deadline[t]) {
            /* Not every acceptor answered in time: vote with what it has; the leader
             * re-sends the ballot-0 2a to the others (leader.h rule 5). */
            sim_send(s, node_of(s, p), pa->vote_to[t], &pa->vote[t]);
            pa->vote_pending[t] = false;
        }
        if (pa->st[t].state == RM_WORKING && s->now >= pa->branch_deadline[t] &&
            rm_may_abort(&pa->st[t])) {
            struct rm_branch aborted = {RM_ABORTED, pa->st[t].vote};

            /* Not prepared by its deadline: recorded durably, as the real participant does
             * (apply_outcome), so that after a crash a late statement cannot start the branch
             * again and a later prepare vote prepared after an aborted vote (rm.h rule 3). */
            set_state(s, p, t, &aborted, true);
        }
        if (rm_in_doubt(&pa->st[t]) && s->now >= pa->doubt_timer[t]) {
            /* In doubt for long: ask a replica, which recovers the transaction if need be. */
            memset(&q, 0, sizeof(q));
            q.type = MSG_STATUS;
            memcpy(q.txid, s->txn[t].txid, sizeof(q.txid));
            msg_copy_str(q.instance, TPC_NAME_MAX, name);
            q.parts = s->txn[t].parts;
            sim_send(s, node_of(s, p), (uint32_t)prng_below(&s->rng, s->p.n_replicas), &q);
            if (pa->doubt_attempts[t] < 6)
                pa->doubt_attempts[t]++;
            pa->doubt_timer[t] = s->now + (s->p.retry_interval << pa->doubt_attempts[t]) +
                                 prng_below(&s->rng, s->p.retry_interval);
        }
    }
}

void sim_part_crash(struct sim *s, uint32_t p)
{
    struct sim_part *pa = &s->part[p];

    /* Volatile state is gone: a WORKING branch is lost (so it is aborted). */
    memcpy(pa->st, pa->dur, sizeof(pa->st));
    memset(pa->vote_pending, 0, sizeof(pa->vote_pending));
}

void sim_part_restart(struct sim *s, uint32_t p)
{
    struct sim_part *pa = &s->part[p];
    uint32_t t;

    /* Prepared branches are reloaded and resolved with the replicas soon. */
    for (t = 0; t < s->p.n_txns; t++) {
        pa->doubt_timer[t] = s->now + prng_range(&s->rng, 1, s->p.retry_interval);
        pa->doubt_attempts[t] = 0;
    }
}
