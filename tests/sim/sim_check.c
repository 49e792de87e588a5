/*
 * sim_check.c - the simulator's checker. It keeps its own ground truth of
 * every acceptance ever made durable, independent of the core's quorum code,
 * and after every step tests the invariants of DESIGN.md section 3:
 *
 *   1. per instance, at most one value is ever chosen (F+1 acceptors, one ballot);
 *   2. TCConsistent (TLA+ TCommit): no participant committed while another aborted;
 *   3. nothing applied without a decision: a participant commits only when every
 *      instance is chosen prepared, and aborts a prepared branch only when some
 *      instance is chosen aborted;
 *   4. every decision a replica records and every outcome a client is told
 *      equals the decision the chosen values make;
 *   5. (liveness, once faults stop) every transaction decides, the client is
 *      told, and every participant ends in the decided state.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "breakable.h"
#include "sim.h"

void sim_violation(struct sim *s, const char *fmt, ...)
{
    va_list ap;

    if (s->violation[0])
        return; /* the first one is the one to replay */
    va_start(ap, fmt);
    vsnprintf(s->violation, sizeof(s->violation), fmt, ap);
    va_end(ap);
    sim_trace(s, "VIOLATION: %s", s->violation);
}

void sim_error(struct sim *s, const char *fmt, ...)
{
    char buf[sizeof(s->error)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    sim_trace(s, "error: %s", buf);
    /* With a rule broken on purpose the core may meet inputs it refuses; only the invariants
     * decide whether the checker caught the break. */
    if (tpc_broken_rule == TPC_BREAK_NONE && !s->error[0])
        memcpy(s->error, buf, sizeof(buf));
}

static uint32_t popcount(uint32_t x)
{
    uint32_t n = 0;

    for (; x; x &= x - 1)
        n++;
    return n;
}

void check_accepted(struct sim *s, uint32_t t, uint32_t i, uint32_t acceptor, struct ballot b,
                    enum tpc_value v)
{
    struct check_inst *ci = &s->inst[t][i];
    struct check_accept *a = NULL;
    uint32_t k;

    for (k = 0; k < ci->n; k++)
        if (ci->acc[k].ballot.round == b.round && ci->acc[k].ballot.replica == b.replica)
            a = &ci->acc[k];
    if (a && a->value != v) {
        sim_violation(s, "%s/%s: two values accepted in ballot (%llu,%u)", s->txn[t].txid,
                      s->txn[t].parts.name[i], (unsigned long long)b.round, b.replica);
        return;
    }
    if (!a) {
        if (ci->n == ci->cap) {
            uint32_t cap = ci->cap ? ci->cap * 2 : 8;
            struct check_accept *bigger = realloc(ci->acc, cap * sizeof(*bigger));

            if (!bigger) {
                sim_error(s, "checker out of memory");
                return;
            }
            ci->acc = bigger;
            ci->cap = cap;
        }
        a = &ci->acc[ci->n++];
        a->ballot = b;
        a->value = v;
        a->acceptors = 0;
    }
    a->acceptors |= 1u << acceptor;
    if (popcount(a->acceptors) < s->p.f + 1)
        return;
    if (ci->chosen != TPC_VALUE_NONE && ci->chosen != v) {
        sim_violation(s, "%s/%s: both %s and %s chosen", s->txn[t].txid, s->txn[t].parts.name[i],
                      msg_value_name(ci->chosen), msg_value_name(v));
        return;
    }
    if (ci->chosen == TPC_VALUE_NONE)
        sim_trace(s, "chosen: %s/%s = %s in ballot (%llu,%u)", s->txn[t].txid,
                  s->txn[t].parts.name[i], msg_value_name(v), (unsigned long long)b.round,
                  b.replica);
    ci->chosen = v;
}

/* Finds or adds the (ballot, value) entry of list; NULL when out of memory. */
static struct check_accept *entry(struct sim *s, struct check_accept **list, uint32_t *n,
                                  uint32_t *cap, struct ballot b, enum tpc_value v, bool *fresh)
{
    uint32_t k;

    *fresh = false;
    for (k = 0; k < *n; k++)
        if (ballot_cmp((*list)[k].ballot, b) == 0)
            return &(*list)[k];
    if (*n == *cap) {
        uint32_t c = *cap ? *cap * 2 : 8;
        struct check_accept *bigger = realloc(*list, c * sizeof(*bigger));

        if (!bigger) {
            sim_error(s, "checker out of memory");
            return NULL;
        }
        *list = bigger;
        *cap = c;
    }
    *fresh = true;
    (*list)[*n] = (struct check_accept){b, v, 0};
    return &(*list)[(*n)++];
}

void check_sent(struct sim *s, uint32_t from, const struct msg *m)
{
    int t = sim_txn_index(s, m->txid), i;
    struct check_accept *p;
    enum tpc_outcome d;
    bool fresh;

    if (t < 0)
        return;
    if (m->type == MSG_PHASE2A && (i = msg_parts_find(&s->txn[t].parts, m->instance)) >= 0) {
        struct check_inst *ci = &s->inst[t][i];

        /* Paxos: a ballot is owned by one proposer, who proposes one value in it. */
        p = entry(s, &ci->prop, &ci->n_prop, &ci->cap_prop, m->ballot, m->value, &fresh);
        if (p && p->value != m->value)
            sim_violation(s, "%s/%s: two values proposed in ballot (%llu,%u)", m->txid, m->instance,
                          (unsigned long long)m->ballot.round, m->ballot.replica);
    }
    if (m->type == MSG_OUTCOME && sim_is_replica(s, from)) {
        d = check_decision(s, (uint32_t)t);
        if (m->outcome != d)
            sim_violation(s, "r%u sent %s as %s but the chosen values decide %s", from, m->txid,
                          msg_outcome_name(m->outcome), msg_outcome_name(d));
    }
}

enum tpc_outcome check_decision(const struct sim *s, uint32_t t)
{
    bool all = true;
    uint32_t i;

    for (i = 0; i < s->txn[t].parts.n; i++) {
        if (s->inst[t][i].chosen == TPC_VALUE_ABORTED)
            return TPC_OUTCOME_ABORTED;
        if (s->inst[t][i].chosen != TPC_VALUE_PREPARED)
            all = false;
    }
    return all ? TPC_OUTCOME_COMMITTED : TPC_OUTCOME_NONE;
}

void check_applied(struct sim *s, uint32_t t, uint32_t p, enum rm_state before, enum rm_state after)
{
    enum tpc_outcome d = check_decision(s, t);

    if (after == RM_COMMITTED && before != RM_COMMITTED && d != TPC_OUTCOME_COMMITTED)
        sim_violation(s, "p%u applied commit of %s without a commit decision (%s)", p,
                      s->txn[t].txid, msg_outcome_name(d));
    if (after == RM_ABORTED && before == RM_PREPARED && d != TPC_OUTCOME_ABORTED)
        sim_violation(s, "p%u aborted prepared %s without an abort decision (%s)", p,
                      s->txn[t].txid, msg_outcome_name(d));
}

void check_learned(struct sim *s, uint32_t t, uint32_t p, enum tpc_outcome o)
{
    enum tpc_outcome d = check_decision(s, t);

    if (o != d)
        sim_violation(s,
                      "p%u reconciled its heuristic decision on %s with %s, but the chosen "
                      "values decide %s",
                      p, s->txn[t].txid, msg_outcome_name(o), msg_outcome_name(d));
}

void check_told(struct sim *s, uint32_t t, enum tpc_outcome o, const char *who)
{
    enum tpc_outcome d = check_decision(s, t);

    if (o != d)
        sim_violation(s, "%s holds %s as %s but the chosen values decide %s", who, s->txn[t].txid,
                      msg_outcome_name(o), msg_outcome_name(d));
    if (strcmp(who, "client") == 0 && s->txn[t].told == TPC_OUTCOME_NONE) {
        s->txn[t].told = o;
        sim_trace(s, "client: %s %s", s->txn[t].txid, msg_outcome_name(o));
    }
}

/* The participant's state as TCommit sees it: a lost working branch is an aborted one. */
static enum rm_state effective(const struct sim *s, uint32_t t, uint32_t i)
{
    uint32_t p = s->txn[t].part_node[i] - s->p.n_replicas;
    enum rm_state st = sim_part_state(s, p, t);

    if (st == RM_NONE && s->txn[t].had_branch[i])
        return RM_ABORTED;
    return st;
}

/* A replica's outcome in memory is the chosen one. */
static void replica_memory(void *ctx, const char *txid, const struct replica_view *v)
{
    struct sim *s = ctx;
    int t = sim_txn_index(s, txid);

    if (t >= 0 && v->outcome != TPC_OUTCOME_NONE && v->outcome != check_decision(s, (uint32_t)t))
        sim_violation(s, "a replica holds %s %s in memory but the chosen values decide %s", txid,
                      msg_outcome_name(v->outcome),
                      msg_outcome_name(check_decision(s, (uint32_t)t)));
}

struct part_ctx {
    struct sim *s;
    uint32_t p;
};

/* A branch a participant holds PREPARED in memory is prepared on its disk. */
static void part_memory(void *ctx, const struct resource_branch *b)
{
    struct part_ctx *c = ctx;
    int t = sim_txn_index(c->s, b->e.id);

    if (t >= 0 && b->rm.state == RM_PREPARED && c->s->part[c->p].dur[t].state != RM_PREPARED)
        sim_violation(c->s, "p%u holds %s prepared in memory, %s on its disk", c->p, b->e.id,
                      rm_state_name(c->s->part[c->p].dur[t].state));
}

void check_step(struct sim *s)
{
    uint32_t t, i;

    for (i = 0; i < s->p.n_replicas; i++)
        if (s->up[i] && s->rep[i].drv_up)
            replica_foreach(&s->rep[i].drv, replica_memory, s);
    for (i = 0; i < s->p.n_parts; i++) {
        struct part_ctx c = {s, i};

        if (s->up[s->p.n_replicas + i] && s->part[i].drv_up)
            resource_foreach(&s->part[i].drv, part_memory, &c);
    }

    for (t = 0; t < s->p.n_txns && !s->violation[0]; t++) {
        int committed = -1, aborted = -1;

        for (i = 0; i < s->txn[t].parts.n; i++) {
            enum rm_state st = effective(s, t, i);

            if (st == RM_COMMITTED)
                committed = (int)i;
            if (st == RM_ABORTED)
                aborted = (int)i;
        }
        if (committed >= 0 && aborted >= 0)
            sim_violation(s, "TCConsistent: %s committed at %s and aborted at %s", s->txn[t].txid,
                          s->txn[t].parts.name[committed], s->txn[t].parts.name[aborted]);
    }
}

bool check_settled(struct sim *s, char *why, size_t len)
{
    uint32_t t, i;

    for (t = 0; t < s->p.n_txns; t++) {
        enum tpc_outcome d = check_decision(s, t);

        if (!s->txn[t].started) {
            snprintf(why, len, "%s has not started", s->txn[t].txid);
            return false;
        }
        if (d == TPC_OUTCOME_NONE) {
            snprintf(why, len, "%s is not decided", s->txn[t].txid);
            return false;
        }
        if (s->txn[t].told == TPC_OUTCOME_NONE) {
            snprintf(why, len, "the client has not learned the outcome of %s", s->txn[t].txid);
            return false;
        }
        for (i = 0; i < s->txn[t].parts.n; i++) {
            enum rm_state st = effective(s, t, i);
            uint32_t p = s->txn[t].part_node[i] - s->p.n_replicas;
            struct rm_branch heur = {st, TPC_VALUE_PREPARED};
            bool ok = st == RM_READONLY ||
                      (d == TPC_OUTCOME_COMMITTED ? st == RM_COMMITTED
                                                  : (st == RM_ABORTED || st == RM_NONE)) ||
                      (rm_heuristic(&heur) != TPC_OUTCOME_NONE &&
                       s->part[p].dur_learned[t] == d); /* reconciled: it learned the outcome */
            if (!ok) {
                snprintf(why, len, "%s is %s but %s is %s", s->txn[t].txid, msg_outcome_name(d),
                         s->txn[t].parts.name[i], rm_state_name(st));
                return false;
            }
        }
    }
    return true;
}

bool check_drained(struct sim *s, char *why, size_t len)
{
    uint32_t i;

    for (i = 0; i < s->p.n_replicas; i++) {
        if (s->rep[i].drv_up && replica_size(&s->rep[i].drv)) {
            snprintf(why, len, "r%u holds %zu transaction(s) in memory", i,
                     replica_size(&s->rep[i].drv));
            return false;
        }
    }
    for (i = 0; i < s->p.n_parts; i++) {
        if (s->part[i].drv_up && resource_size(&s->part[i].drv)) {
            snprintf(why, len, "p%u holds %zu branch(es) in memory", i,
                     resource_size(&s->part[i].drv));
            return false;
        }
    }
    return true;
}

void check_free(struct sim *s)
{
    uint32_t t, i;

    for (t = 0; t < SIM_MAX_T; t++)
        for (i = 0; i < SIM_MAX_P; i++) {
            free(s->inst[t][i].acc);
            free(s->inst[t][i].prop);
            memset(&s->inst[t][i], 0, sizeof(s->inst[t][i]));
        }
}

bool check_collected(struct sim *s, char *why, size_t len)
{
    static const struct acceptor_record none;
    uint32_t r, p, t, i;

    for (t = 0; t < s->p.n_txns; t++) {
        if (!msg_expired(s->txn[t].born, sim_horizon(s))) {
            snprintf(why, len, "%s is not expired yet", s->txn[t].txid);
            return false;
        }
        for (r = 0; r < s->p.n_replicas; r++) {
            if (s->rep[r].decided[t] != TPC_OUTCOME_NONE) {
                snprintf(why, len, "r%u still holds the decision on %s", r, s->txn[t].txid);
                return false;
            }
            for (i = 0; i < SIM_MAX_P; i++)
                if (memcmp(&s->rep[r].acc[t][i], &none, sizeof(none)) != 0) {
                    snprintf(why, len, "r%u still holds an acceptor record of %s", r,
                             s->txn[t].txid);
                    return false;
                }
        }
        for (p = 0; p < s->p.n_parts; p++)
            if (s->part[p].dur[t].state != RM_NONE && !s->part[p].forgotten[t] &&
                rm_heuristic(&s->part[p].dur[t]) == TPC_OUTCOME_NONE) { /* those stay for good */
                snprintf(why, len, "p%u still holds %s (%s)", p, s->txn[t].txid,
                         rm_state_name(s->part[p].dur[t].state));
                return false;
            }
    }
    return true;
}
