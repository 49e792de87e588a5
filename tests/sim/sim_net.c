/*
 * sim_net.c - the simulated network: messages in flight with a delivery time;
 * loss, duplication and long delays while faults are on; delivery of all due
 * messages in a random order (so equal-time messages are reordered freely).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "sim.h"

bool sim_is_replica(const struct sim *s, uint32_t node)
{
    return node < s->p.n_replicas;
}

uint32_t sim_client(const struct sim *s)
{
    return s->p.n_replicas + s->p.n_parts;
}

int sim_txn_index(const struct sim *s, const char *txid)
{
    uint32_t t;

    for (t = 0; t < s->p.n_txns; t++)
        if (strcmp(s->txn[t].txid, txid) == 0)
            return (int)t;
    return -1;
}

const char *sim_node_name(const struct sim *s, uint32_t node, char *buf, size_t len)
{
    if (node < s->p.n_replicas)
        snprintf(buf, len, "r%u", node);
    else if (node < sim_client(s))
        snprintf(buf, len, "p%u", node - s->p.n_replicas);
    else
        snprintf(buf, len, "client");
    return buf;
}

void sim_trace(struct sim *s, const char *fmt, ...)
{
    va_list ap;

    if (!s->verbose)
        return;
    fprintf(s->log, "[t=%4llu] ", (unsigned long long)s->now);
    va_start(ap, fmt);
    vfprintf(s->log, fmt, ap);
    va_end(ap);
    fputc('\n', s->log);
}

/* Round-trips m through the JSON codec: what arrives is what the codec decodes. */
static void wire_roundtrip(struct sim *s, struct msg *m)
{
    char err[256], *text = NULL, *again = NULL;
    size_t len = 0, len2 = 0;
    struct msg back;
    enum tpc_err rc;

    rc = codec_encode_text(m, &text, &len);
    if (rc) {
        sim_error(s, "codec: cannot encode %s: %s", msg_type_name(m->type), tpc_strerror(rc));
        goto out;
    }
    rc = codec_decode_text(text, len, s->p.n_replicas, &back, err, sizeof(err));
    if (rc) {
        sim_error(s, "codec: cannot decode what it encoded (%s): %s", err, text);
        goto out;
    }
    rc = codec_encode_text(&back, &again, &len2);
    if (rc || len2 != len || memcmp(text, again, len) != 0) {
        sim_error(s, "codec: round trip changed the message: %s", text);
        goto out;
    }
    *m = back;
    s->stats->wire_checked++;
out:
    free(again);
    free(text);
}

static void push(struct sim *s, const struct sim_packet *pk)
{
    struct sim_packet *bigger;

    if (s->n_net == s->cap_net) {
        uint32_t cap = s->cap_net ? s->cap_net * 2 : 256;

        bigger = realloc(s->net, cap * sizeof(*bigger));
        if (!bigger) {
            sim_error(s, "out of memory for the network");
            return;
        }
        s->net = bigger;
        s->cap_net = cap;
    }
    s->net[s->n_net++] = *pk;
}

static uint64_t delay(struct sim *s)
{
    uint64_t d = prng_range(&s->rng, 1, s->p.max_delay);

    if (s->faults && prng_chance(&s->rng, s->p.long_delay_ppm))
        d += prng_range(&s->rng, 1, 20 * (uint64_t)s->p.max_delay + 50);
    return d;
}

static void enqueue(struct sim *s, struct sim_packet *pk)
{
    char a[16], b[16];

    s->stats->sent++;
    if (s->dying[pk->from] || !s->up[pk->from]) {
        s->stats->dropped++; /* it crashed before it could speak */
        return;
    }
    if (s->faults && prng_chance(&s->rng, s->p.loss_ppm)) {
        s->stats->dropped++;
        if (s->verbose > 1)
            sim_trace(s, "%s -> %s %s %s: lost", sim_node_name(s, pk->from, a, sizeof(a)),
                      sim_node_name(s, pk->to, b, sizeof(b)),
                      pk->is_commit ? "commit-request"
                      : pk->is_exec ? "exec"
                                    : msg_type_name(pk->m.type),
                      pk->m.txid);
        return;
    }
    pk->at = s->now + delay(s);
    push(s, pk);
    if (s->faults && prng_chance(&s->rng, s->p.dup_ppm)) {
        pk->at = s->now + delay(s);
        push(s, pk);
        s->stats->duplicated++;
    }
}

void sim_send(struct sim *s, uint32_t from, uint32_t to, const struct msg *m)
{
    struct sim_packet pk;
    char err[256];

    if (msg_validate(m, s->p.n_replicas, err, sizeof(err)) != TPC_OK) {
        sim_error(s, "core produced an invalid %s: %s", msg_type_name(m->type), err);
        return;
    }
    sim_before_send(s, from);
    if (!s->dying[from])
        check_sent(s, from, m);
    memset(&pk, 0, sizeof(pk));
    pk.from = from;
    pk.to = to;
    pk.m = *m;
    if (s->wire)
        wire_roundtrip(s, &pk.m);
    enqueue(s, &pk);
}

/* The branch's statements, as one message: it may arrive late (after the prepare), or never. */
void sim_send_exec(struct sim *s, uint32_t to, uint32_t t)
{
    struct sim_packet pk;

    memset(&pk, 0, sizeof(pk));
    pk.from = sim_client(s);
    pk.to = to;
    pk.is_exec = true;
    memcpy(pk.m.txid, s->txn[t].txid, sizeof(pk.m.txid));
    enqueue(s, &pk);
}

void sim_send_commit(struct sim *s, uint32_t to, uint32_t t)
{
    struct sim_packet pk;

    memset(&pk, 0, sizeof(pk));
    pk.from = sim_client(s);
    pk.to = to;
    pk.is_commit = true;
    memcpy(pk.m.txid, s->txn[t].txid, sizeof(pk.m.txid));
    pk.m.parts = s->txn[t].parts;
    enqueue(s, &pk);
}

static void describe(const struct sim *s, const struct sim_packet *pk, char *buf, size_t len)
{
    const struct msg *m = &pk->m;
    char a[16], b[16];
    int n;

    n = snprintf(buf, len, "%s -> %s %s %s", sim_node_name(s, pk->from, a, sizeof(a)),
                 sim_node_name(s, pk->to, b, sizeof(b)),
                 pk->is_commit ? "commit-request"
                 : pk->is_exec ? "exec"
                               : msg_type_name(m->type),
                 m->txid);
    if (n < 0 || (size_t)n >= len || pk->is_commit || pk->is_exec)
        return;
    if (m->instance[0])
        n += snprintf(buf + n, len - (size_t)n, "/%s", m->instance);
    if ((size_t)n < len && (m->type >= MSG_PHASE1A && m->type <= MSG_REJECT))
        n += snprintf(buf + n, len - (size_t)n, " ballot=(%llu,%u)",
                      (unsigned long long)m->ballot.round, m->ballot.replica);
    if ((size_t)n < len && m->value != TPC_VALUE_NONE)
        n += snprintf(buf + n, len - (size_t)n, " %s", msg_value_name(m->value));
    if ((size_t)n < len && m->outcome != TPC_OUTCOME_NONE)
        n += snprintf(buf + n, len - (size_t)n, " %s", msg_outcome_name(m->outcome));
    if ((size_t)n < len && m->type == MSG_REJECT)
        snprintf(buf + n, len - (size_t)n, " promised=(%llu,%u)",
                 (unsigned long long)m->promised.round, m->promised.replica);
}

void sim_deliver_due(struct sim *s)
{
    uint32_t i, n_due = 0;
    struct sim_packet pk;
    char line[256];

    /* Move every due packet to the front, then deliver them in random order. */
    for (i = 0; i < s->n_net; i++) {
        if (s->net[i].at <= s->now) {
            pk = s->net[n_due];
            s->net[n_due] = s->net[i];
            s->net[i] = pk;
            n_due++;
        }
    }
    for (i = n_due; i > 1; i--) {
        uint32_t j = (uint32_t)prng_below(&s->rng, i);

        pk = s->net[i - 1];
        s->net[i - 1] = s->net[j];
        s->net[j] = pk;
    }
    if (n_due == 0)
        return;
    /* Handlers append new packets (never due this tick): take the due ones off first. */
    if (n_due > s->cap_due) {
        struct sim_packet *bigger = realloc(s->due, n_due * sizeof(*bigger));

        if (!bigger) {
            sim_error(s, "out of memory delivering");
            return;
        }
        s->due = bigger;
        s->cap_due = n_due;
    }
    memcpy(s->due, s->net, n_due * sizeof(*s->due));
    memmove(s->net, s->net + n_due, (s->n_net - n_due) * sizeof(*s->net));
    s->n_net -= n_due;

    for (i = 0; i < n_due && !s->violation[0] && !s->error[0]; i++) {
        struct sim_packet *d = &s->due[i];

        if (!s->up[d->to]) {
            s->stats->dropped++;
            continue;
        }
        s->stats->delivered++;
        if (s->verbose > 1) {
            describe(s, d, line, sizeof(line));
            sim_trace(s, "%s", line);
        }
        if (sim_is_replica(s, d->to))
            sim_replica_receive(s, d->to, d->from, d);
        else if (d->to < sim_client(s) && d->is_exec)
            sim_part_begin(s, d->to - s->p.n_replicas, (uint32_t)sim_txn_index(s, d->m.txid));
        else if (d->to < sim_client(s))
            sim_part_receive(s, d->to - s->p.n_replicas, d->from, &d->m);
        else if (d->m.type == MSG_OUTCOME && sim_txn_index(s, d->m.txid) >= 0)
            check_told(s, (uint32_t)sim_txn_index(s, d->m.txid), d->m.outcome, "client");
        sim_after_handler(s, d->to);
    }
}
