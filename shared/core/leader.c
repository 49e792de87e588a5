/*
 * leader.c - leading and recovering one transaction (see leader.h for the
 * state diagram and the rules it cites).
 */
#include "leader.h"

#include <assert.h>
#include <string.h>

#include "breakable.h"

static void msg_start(const struct leader_txn *t, enum msg_type type, const char *instance,
                      struct msg *m)
{
    memset(m, 0, sizeof(*m));
    m->type = type;
    memcpy(m->txid, t->txid, sizeof(m->txid));
    if (instance)
        memcpy(m->instance, instance, sizeof(m->instance));
    if (type == MSG_PREPARE || type == MSG_PHASE1A || type == MSG_PHASE2A || type == MSG_OUTCOME)
        m->born = t->born; /* how old the transaction is, for every receiver's horizon */
}

static void send_all_acceptors(const struct leader_txn *t, const struct msg *m,
                               const struct leader_out *out)
{
    uint32_t a;

    for (a = 0; a < t->cfg.n_acceptors; a++)
        out->send(out->ctx, LEADER_TO_ACCEPTOR, a, m);
}

/* Randomized exponential backoff: in [d/2, d] with d = retry_interval * 2^attempts, capped. */
static uint64_t backoff(struct leader_txn *t, uint64_t rnd)
{
    uint64_t d = t->cfg.retry_interval;
    uint32_t i;

    for (i = 0; i < t->attempts && d < t->cfg.retry_max; i++)
        d *= 2;
    if (d > t->cfg.retry_max)
        d = t->cfg.retry_max;
    if (t->attempts < 32)
        t->attempts++;
    return d / 2 + rnd % (d / 2 + 1);
}

static void see_round(struct leader_txn *t, struct ballot b)
{
    if (b.round > t->max_round)
        t->max_round = b.round;
}

enum tpc_err leader_init(struct leader_txn *t, const struct leader_config *cfg, const char *txid,
                         const struct msg_parts *parts, uint64_t now)
{
    if (cfg->n_acceptors < 1 || cfg->n_acceptors > TPC_MAX_REPLICAS ||
        cfg->self >= cfg->n_acceptors || cfg->retry_interval < 2 ||
        cfg->retry_max < cfg->retry_interval)
        return TPC_ERR_RANGE;
    if (!msg_txid_valid(txid) || !msg_parts_valid(parts))
        return TPC_ERR_INVALID;
    memset(t, 0, sizeof(*t));
    t->cfg = *cfg;
    msg_copy_str(t->txid, TPC_TXID_MAX, txid);
    t->parts = *parts;
    t->deadline = now + cfg->prepare_timeout;
    t->timer = t->deadline;
    return TPC_OK;
}

static void send_prepare(const struct leader_txn *t, uint32_t i, const struct leader_out *out)
{
    struct msg m;

    msg_start(t, MSG_PREPARE, NULL, &m);
    m.parts = t->parts;
    out->send(out->ctx, LEADER_TO_PARTICIPANT, i, &m);
}

void leader_start(struct leader_txn *t, uint64_t now, const struct leader_out *out)
{
    uint32_t i;

    t->started = true;
    for (i = 0; i < t->parts.n; i++)
        send_prepare(t, i, out);
    t->deadline = now + t->cfg.prepare_timeout;
    t->timer = now + t->cfg.retry_interval;
    if (t->timer > t->deadline)
        t->timer = t->deadline;
}

enum tpc_outcome leader_decide(const struct leader_txn *t)
{
    bool all_prepared = true, all_voted_prepared = true;
    uint32_t i;

    for (i = 0; i < t->parts.n; i++) {
        if (t->inst[i].chosen == TPC_VALUE_ABORTED)
            return TPC_OUTCOME_ABORTED;
        if (t->inst[i].chosen != TPC_VALUE_PREPARED)
            all_prepared = false;
        if (t->inst[i].chosen != TPC_VALUE_PREPARED && t->inst[i].vote != TPC_VALUE_PREPARED)
            all_voted_prepared = false;
    }
    if (TPC_BROKEN(TPC_BREAK_DECIDE_ON_VOTES) && all_voted_prepared)
        return TPC_OUTCOME_COMMITTED;
    return all_prepared ? TPC_OUTCOME_COMMITTED : TPC_OUTCOME_NONE;
}

static void send_outcome(const struct leader_txn *t, uint32_t i, const struct leader_out *out)
{
    struct msg m;

    msg_start(t, MSG_OUTCOME, NULL, &m);
    m.outcome = t->decision;
    out->send(out->ctx, LEADER_TO_PARTICIPANT, i, &m);
}

/* Records a decision and tells the participants; leader_tick resends to those silent. */
static void set_decision(struct leader_txn *t, enum tpc_outcome o, uint64_t now,
                         const struct leader_out *out)
{
    assert(o != TPC_OUTCOME_NONE && t->decision == TPC_OUTCOME_NONE);
    t->decision = o;
    leader_tell(t, now, out);
}

static void maybe_decide(struct leader_txn *t, uint64_t now, const struct leader_out *out)
{
    enum tpc_outcome o;

    if (t->decision != TPC_OUTCOME_NONE)
        return;
    o = leader_decide(t);
    if (o != TPC_OUTCOME_NONE)
        set_decision(t, o, now, out);
}

/* An acceptor accepted (b, v) in instance i: learn whether that makes v chosen (rule 1). */
static enum tpc_err learn_accepted(struct leader_txn *t, uint32_t i, uint32_t acceptor,
                                   struct ballot b, enum tpc_value v)
{
    struct leader_inst *in = &t->inst[i];
    enum tpc_value chosen;
    enum tpc_err rc;

    see_round(t, b);
    rc = quorum_add(&in->q, t->cfg.n_acceptors, acceptor, b, v, &chosen);
    if (rc)
        return rc;
    if (chosen != TPC_VALUE_NONE) {
        /* Paxos: a later choice in the same instance can only repeat the first. */
        if (in->chosen != TPC_VALUE_NONE && in->chosen != chosen)
            return TPC_ERR_PROTOCOL;
        in->chosen = chosen;
        in->phase = LEADER_CHOSEN;
    }
    return TPC_OK;
}

static void send_phase2a(const struct leader_txn *t, uint32_t i, struct ballot b, enum tpc_value v,
                         int only_acceptor, const struct leader_out *out)
{
    struct msg m;

    msg_start(t, MSG_PHASE2A, t->parts.name[i], &m);
    m.ballot = b;
    m.value = v;
    m.parts = t->parts;
    if (only_acceptor >= 0)
        out->send(out->ctx, LEADER_TO_ACCEPTOR, (uint32_t)only_acceptor, &m);
    else
        send_all_acceptors(t, &m, out);
}

static void send_phase1a(const struct leader_txn *t, uint32_t i, const struct leader_out *out)
{
    struct msg m;
    uint32_t a;

    msg_start(t, MSG_PHASE1A, t->parts.name[i], &m);
    m.ballot = t->inst[i].bal;
    m.parts = t->parts;
    for (a = 0; a < t->cfg.n_acceptors; a++)
        if (!(t->inst[i].promised & (1u << a)))
            out->send(out->ctx, LEADER_TO_ACCEPTOR, a, &m);
}

void leader_relay_first(struct leader_txn *t, uint32_t acceptors)
{
    t->relay_first = acceptors;
}

/* The acceptors heard to have accepted ballot 0 in instance i. */
static uint32_t accepted_at_zero(const struct leader_inst *in)
{
    static const struct ballot zero;
    uint32_t k;

    for (k = 0; k < in->q.used && k < QUORUM_SLOTS; k++)
        if (ballot_cmp(in->q.slot[k].ballot, zero) == 0)
            return in->q.slot[k].acceptors;
    return 0;
}

/* Rule 5: the participant's own ballot-0 2a, to the acceptors in `to` that have not answered
 * it (`to` 0: every acceptor). */
static void relay_vote(const struct leader_txn *t, uint32_t i, uint32_t to,
                       const struct leader_out *out)
{
    static const struct ballot zero;
    uint32_t a, have = accepted_at_zero(&t->inst[i]);

    for (a = 0; a < t->cfg.n_acceptors; a++)
        if ((!to || (to & (1u << a))) && !(have & (1u << a)))
            send_phase2a(t, i, zero, t->inst[i].vote, (int)a, out);
}

static uint32_t count_bits(uint32_t x)
{
    uint32_t n = 0;

    for (; x; x &= x - 1)
        n++;
    return n;
}

static enum tpc_err on_vote(struct leader_txn *t, uint32_t i, const struct msg *m,
                            const struct leader_out *out)
{
    struct leader_inst *in = &t->inst[i];
    static const struct ballot zero;
    enum tpc_err rc;
    uint32_t a;

    if (in->vote != TPC_VALUE_NONE && in->vote != m->value)
        return TPC_ERR_PROTOCOL; /* a participant votes once */
    in->vote = m->value;
    if (m->read_only)
        t->acked |= 1u << i; /* a branch that changed nothing needs no outcome */
    for (a = 0; a < t->cfg.n_acceptors; a++) {
        if (!(m->acks & (1u << a)))
            continue;
        rc = learn_accepted(t, i, a, zero, m->value);
        if (rc)
            return rc;
    }
    if (in->chosen != TPC_VALUE_NONE)
        return TPC_OK;
    /* Rule 5: re-send the participant's own ballot-0 2a where it did not get through; first
     * only to the chosen acceptors when they are enough to choose it. */
    relay_vote(t, i,
               count_bits(t->relay_first & ((1u << t->cfg.n_acceptors) - 1)) >=
                       quorum_size(t->cfg.n_acceptors)
                   ? t->relay_first
                   : 0,
               out);
    return TPC_OK;
}

static enum tpc_err on_phase1b(struct leader_txn *t, uint32_t i, const struct msg *m,
                               const struct leader_out *out)
{
    struct leader_inst *in = &t->inst[i];
    uint32_t n = 0, x;

    if (in->phase != LEADER_PHASE1 || ballot_cmp(m->ballot, in->bal) != 0)
        return TPC_OK; /* a stale or duplicate promise */
    if (m->value != TPC_VALUE_NONE && in->best_val != TPC_VALUE_NONE &&
        ballot_cmp(m->accepted_ballot, in->best_bal) == 0 && m->value != in->best_val)
        return TPC_ERR_PROTOCOL; /* one ballot, two values: some proposer broke a rule */
    in->promised |= 1u << m->acceptor;
    if (m->value != TPC_VALUE_NONE &&
        (in->best_val == TPC_VALUE_NONE || ballot_cmp(m->accepted_ballot, in->best_bal) > 0)) {
        in->best_bal = m->accepted_ballot;
        in->best_val = m->value;
    }
    for (x = in->promised; x; x &= x - 1)
        n++;
    if (n < quorum_size(t->cfg.n_acceptors))
        return TPC_OK;
    /* Rule 3 (TLA+ Phase2a): the highest accepted value, else aborted. */
    in->proposed = in->best_val;
    if (in->proposed == TPC_VALUE_NONE)
        in->proposed =
            TPC_BROKEN(TPC_BREAK_RECOVER_PREPARED) ? TPC_VALUE_PREPARED : TPC_VALUE_ABORTED;
    in->phase = LEADER_PHASE2;
    send_phase2a(t, i, in->bal, in->proposed, -1, out);
    return TPC_OK;
}

enum tpc_err leader_receive(struct leader_txn *t, const struct msg *m, uint64_t now, uint64_t rnd,
                            const struct leader_out *out, char *err, size_t errlen)
{
    struct leader_inst *in;
    enum tpc_err rc;
    int i;

    rc = msg_validate(m, t->cfg.n_acceptors, err, errlen);
    if (rc)
        return rc;
    if (strcmp(m->txid, t->txid) != 0)
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "leader: message for %s given to %s",
                              m->txid, t->txid);
    i = msg_parts_find(&t->parts, m->instance);
    if (i < 0)
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "leader: %s has no participant '%s'",
                              t->txid, m->instance);
    if (m->parts.n && !msg_parts_equal(&m->parts, &t->parts))
        return tpc_errbuf_set(err, errlen, TPC_ERR_PROTOCOL,
                              "leader: participant list of %s differs", t->txid);
    in = &t->inst[i];
    switch (m->type) {
    case MSG_VOTE:
        /* Only the leader that sent the prepares takes votes: its participant list is the
         * one they voted under (a vote carries no list of its own). */
        if (!t->started)
            return tpc_errbuf_set(err, errlen, TPC_ERR_STATE,
                                  "leader: %s: a vote, but this replica did not send prepares",
                                  t->txid);
        rc = on_vote(t, (uint32_t)i, m, out);
        break;
    case MSG_PHASE1B:
        see_round(t, m->ballot);
        if (m->value != TPC_VALUE_NONE)
            rc = learn_accepted(t, (uint32_t)i, m->acceptor, m->accepted_ballot, m->value);
        if (!rc)
            rc = on_phase1b(t, (uint32_t)i, m, out);
        break;
    case MSG_PHASE2B:
        rc = learn_accepted(t, (uint32_t)i, m->acceptor, m->ballot, m->value);
        break;
    case MSG_REJECT:
        see_round(t, m->promised);
        if ((in->phase == LEADER_PHASE1 || in->phase == LEADER_PHASE2) &&
            ballot_cmp(m->ballot, in->bal) == 0) {
            /* Someone holds a higher ballot: retreat, and come back later with a higher one
             * after a randomized backoff, so that dueling recoveries settle. */
            in->phase = LEADER_IDLE;
            t->timer = now + backoff(t, rnd);
        }
        break;
    case MSG_ACK:
        if (m->outcome == t->decision)
            t->acked |= 1u << i;
        break;
    default:
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "leader: unexpected %s message",
                              msg_type_name(m->type));
    }
    if (rc)
        return tpc_errbuf_set(err, errlen, rc, "leader: %s/%s: conflicting values learned", t->txid,
                              m->instance);
    maybe_decide(t, now, out);
    return TPC_OK;
}

bool leader_done(const struct leader_txn *t)
{
    uint32_t all = t->parts.n >= 32 ? 0xffffffffu : (1u << t->parts.n) - 1;

    return t->decision != TPC_OUTCOME_NONE && (t->acked & all) == all;
}

void leader_hurry(struct leader_txn *t, uint64_t now)
{
    if (t->decision != TPC_OUTCOME_NONE)
        return;
    if (t->deadline > now)
        t->deadline = now;
    t->timer = now;
}

bool leader_tick(struct leader_txn *t, uint64_t now, uint64_t rnd, const struct leader_out *out)
{
    bool need_round = false;
    uint32_t i;

    if (now < t->timer || leader_done(t))
        return false;
    if (t->decision != TPC_OUTCOME_NONE) {
        for (i = 0; i < t->parts.n; i++)
            if (!(t->acked & (1u << i)))
                send_outcome(t, i, out);
        t->timer = now + backoff(t, rnd);
        return false;
    }
    for (i = 0; i < t->parts.n; i++) {
        struct leader_inst *in = &t->inst[i];

        switch (in->phase) {
        case LEADER_WAIT:
            if (now >= t->deadline)
                need_round = true;
            else if (in->vote == TPC_VALUE_NONE)
                send_prepare(t, i, out); /* the prepare or the vote may have been lost */
            else
                relay_vote(t, i, 0, out); /* rule 5: every acceptor still silent */
            break;
        case LEADER_PHASE1:
            send_phase1a(t, i, out); /* same ballot: acceptors answer duplicates alike */
            break;
        case LEADER_PHASE2:
            send_phase2a(t, i, in->bal, in->proposed, -1, out);
            break;
        case LEADER_IDLE:
            need_round = true;
            break;
        case LEADER_CHOSEN:
            break;
        }
    }
    if (!need_round) {
        t->timer = now + backoff(t, rnd);
        if (t->deadline > now && t->timer > t->deadline)
            t->timer = t->deadline;
    }
    return need_round;
}

uint64_t leader_min_round(const struct leader_txn *t)
{
    return t->max_round + 1;
}

void leader_recover(struct leader_txn *t, uint64_t round, uint64_t now, uint64_t rnd,
                    const struct leader_out *out)
{
    struct ballot b = {round, t->cfg.self};
    uint32_t i;

    assert(round >= leader_min_round(t) && round <= BALLOT_ROUND_MAX);
    see_round(t, b);
    t->deadline = now; /* from now on, missing votes are recovered, not waited for */
    for (i = 0; i < t->parts.n; i++) {
        struct leader_inst *in = &t->inst[i];

        if (in->phase == LEADER_CHOSEN)
            continue;
        in->phase = LEADER_PHASE1;
        in->bal = b;
        in->promised = 0;
        in->best_val = TPC_VALUE_NONE;
        in->best_bal = (struct ballot){0, 0};
        in->proposed = TPC_VALUE_NONE;
        send_phase1a(t, i, out);
    }
    t->timer = now + backoff(t, rnd);
}

void leader_learn(struct leader_txn *t, enum tpc_outcome outcome, uint64_t now,
                  const struct leader_out *out)
{
    if (t->decision != TPC_OUTCOME_NONE || outcome == TPC_OUTCOME_NONE)
        return;
    t->decision = outcome;
    leader_tell(t, now, out);
}

void leader_tell(struct leader_txn *t, uint64_t now, const struct leader_out *out)
{
    uint32_t i;

    if (t->decision == TPC_OUTCOME_NONE)
        return;
    t->attempts = 0;
    t->timer = now + t->cfg.retry_interval;
    for (i = 0; i < t->parts.n; i++)
        if (!(t->acked & (1u << i)))
            send_outcome(t, i, out);
}
