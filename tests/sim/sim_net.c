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
/* Encodes m as the programs send it: alone, or in a {"messages": [...]} batch. */
static enum tpc_err wire_encode(const struct msg *m, bool batch, char **text, size_t *len)
{
    json_t *j;

    if (!batch)
        return codec_encode_text(m, text, len);
    j = codec_encode_batch(m, 1);
    *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    *len = *text ? strlen(*text) : 0;
    return *text ? TPC_OK : TPC_ERR_NOMEM;
}

static enum tpc_err wire_decode(const struct sim *s, const char *text, size_t len, bool batch,
                                struct msg *m, char *err, size_t errlen)
{
    json_t *j;
    size_t n = 0;
    enum tpc_err rc;

    if (!batch)
        return codec_decode_text(text, len, s->p.n_replicas, m, err, errlen);
    j = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    if (!j)
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "not JSON");
    rc = codec_decode_batch(j, s->p.n_replicas, m, 1, &n, err, errlen);
    json_decref(j);
    if (!rc && n != 1)
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "%zu messages in a batch of one", n);
    return rc;
}

/* Round-trips m through the JSON codec: what arrives is what the codec decodes. */
static void wire_roundtrip(struct sim *s, struct msg *m)
{
    char err[256], *text = NULL, *again = NULL;
    size_t len = 0, len2 = 0;
    bool batch = prng_chance(&s->rng, 500000);
    struct msg back;
    enum tpc_err rc;

    rc = wire_encode(m, batch, &text, &len);
    if (rc) {
        sim_error(s, "codec: cannot encode %s: %s", msg_type_name(m->type), tpc_strerror(rc));
        goto out;
    }
    rc = wire_decode(s, text, len, batch, &back, err, sizeof(err));
    if (rc) {
        sim_error(s, "codec: cannot decode what it encoded (%s): %s", err, text);
        goto out;
    }
    rc = wire_encode(&back, batch, &again, &len2);
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

/*
 * Junk on the wire (--wire): a copy of m spoiled in one way that makes it invalid (a key
 * missing or unknown, a wrong JSON type, a value out of its range, a bad id or list), as a
 * confused or foreign sender would post it to a node's protocol endpoint. The codec must
 * refuse every one: a node never acts on it (the endpoint answers 400 and changes nothing).
 */
static json_t *spoil(struct sim *s, const struct msg *m)
{
    json_t *j = codec_encode(m), *v;
    const char *key;
    char name[80];
    size_t i, n = 0;
    uint32_t k;

    if (!j)
        return NULL;
    switch (prng_below(&s->rng, 12)) {
    case 0: /* a key it must have, or any key it has, gone */
        json_object_foreach(j, key, v) n++;
        k = (uint32_t)prng_below(&s->rng, n);
        json_object_foreach(j, key, v)
        {
            if (k-- == 0) {
                json_object_del(j, key);
                break;
            }
        }
        /* What is left may still be a message (an optional key went): make sure it is not. */
        if (json_object_size(j) == n - 1 && json_object_get(j, "type") &&
            json_object_get(j, "txid"))
            json_object_del(j, "txid");
        break;
    case 1:
        json_object_set_new(j, "bogus", json_true());
        break;
    case 2:
        json_object_set_new(j, "txid", json_integer(7));
        break;
    case 3:
        json_object_set_new(j, "type", json_string("hello"));
        break;
    case 4:
        json_object_set_new(j, "txid", json_string(prng_chance(&s->rng, 500000) ? "a b" : ""));
        break;
    case 5:
        for (i = 0; i < sizeof(name) - 1; i++)
            name[i] = 'x';
        name[sizeof(name) - 1] = '\0';
        json_object_set_new(j, "txid", json_string(name));
        break;
    case 6:
        json_object_set_new(
            j, "ballot",
            json_pack("{s:I,s:i}", "round", (json_int_t)1, "replica", (int)s->p.n_replicas));
        break;
    case 7:
        json_object_set_new(j, "ballot", json_pack("{s:s}", "round", "one"));
        break;
    case 8:
        json_object_set_new(j, "value", json_string("maybe"));
        break;
    case 9:
        json_object_set_new(j, "outcome", json_integer(1));
        break;
    case 10:
        json_object_set_new(j, "participants", json_pack("[s,s]", m->txid, m->txid));
        break;
    default:
        json_object_set_new(j, "acceptor", json_integer((json_int_t)s->p.n_replicas + 3));
        break;
    }
    return j;
}

static void junk_refused(struct sim *s, const struct msg *m)
{
    json_t *j = spoil(s, m), *batch;
    char err[256], *text;
    struct msg back;
    size_t n = 0;

    if (!j)
        return;
    text = json_dumps(j, JSON_COMPACT);
    if (text &&
        codec_decode_text(text, strlen(text), s->p.n_replicas, &back, err, sizeof(err)) == TPC_OK)
        sim_error(s, "codec: took junk for a %s: %s", msg_type_name(back.type), text);
    batch = json_pack("{s:[O]}", "messages", j);
    if (batch &&
        codec_decode_batch(batch, s->p.n_replicas, &back, 1, &n, err, sizeof(err)) == TPC_OK)
        sim_error(s, "codec: took a batch with junk: %s", text ? text : "?");
    s->stats->junk_refused++;
    json_decref(batch);
    json_decref(j);
    free(text);
}

/*
 * Junk at a node (while faults are on): before a message is handed to a node, now and then
 * a copy of it spoiled in one way that makes it invalid (an unknown type, a bad id or name, a
 * field out of its range or one its type does not use, a list with a name twice) is handed
 * to the same entry point first. The node must refuse it: the drivers, the acceptor and the
 * codec each validate what they are given (msg_validate), and nothing changes.
 */
static void spoil_struct(struct sim *s, struct msg *m)
{
    switch (prng_below(&s->rng, 11)) {
    case 0:
        m->type = (enum msg_type)99;
        break;
    case 1:
        m->txid[0] = '\0';
        break;
    case 2:
        m->acceptor = s->p.n_replicas + 1;
        break;
    case 3:
        m->ballot = (struct ballot){3, s->p.n_replicas};
        break;
    case 4:
        m->value = (enum tpc_value)7;
        break;
    case 5:
        m->outcome = (enum tpc_outcome)9;
        break;
    case 6:
        m->acks = 1u << 20;
        break;
    case 7:
        if (m->parts.n && m->parts.n < TPC_MAX_PARTICIPANTS) {
            memcpy(m->parts.name[m->parts.n], m->parts.name[0], sizeof(m->parts.name[0]));
            m->parts.n++;
        } else {
            m->txid[0] = '\0';
        }
        break;
    case 8:
        snprintf(m->instance, sizeof(m->instance), "bad name!");
        break;
    case 9:
        m->ballot = (struct ballot){0, s->p.n_replicas > 1 ? 1 : 0};
        m->accepted_ballot = (struct ballot){0, 1};
        break;
    default:
        m->promised = m->type == MSG_REJECT ? m->ballot : (struct ballot){5, 0};
        if (m->type == MSG_REJECT)
            m->promised.round = m->ballot.round ? m->ballot.round - 1 : 0;
        break;
    }
}

bool sim_junk_now(struct sim *s, const struct sim_packet *pk, struct msg *junk)
{
    if (!s->faults || pk->req != SIM_MSG || !prng_chance(&s->rng, 20000))
        return false;
    *junk = pk->m;
    spoil_struct(s, junk);
    s->stats->junk_refused++;
    return true;
}

static const char *req_name(const struct sim_packet *pk)
{
    switch (pk->req) {
    case SIM_EXEC:
        return "exec";
    case SIM_BEGIN:
        return "begin-request";
    case SIM_COMMIT:
        return "commit-request";
    case SIM_ABORT:
        return "abort-request";
    case SIM_RESOLVE:
        return "resolve-request";
    case SIM_MSG:
        break;
    }
    return msg_type_name(pk->m.type);
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
                      sim_node_name(s, pk->to, b, sizeof(b)), req_name(pk), pk->m.txid);
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

static void send_pk(struct sim *s, uint32_t from, uint32_t to, const struct msg *m, bool answer)
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
    pk.is_answer = answer;
    pk.m = *m;
    if (s->wire) {
        wire_roundtrip(s, &pk.m);
        if (s->faults && prng_chance(&s->rng, 50000))
            junk_refused(s, &pk.m);
    }
    enqueue(s, &pk);
}

void sim_send(struct sim *s, uint32_t from, uint32_t to, const struct msg *m)
{
    send_pk(s, from, to, m, false);
}

void sim_io_send(struct sim *s, uint32_t from, const struct node_addr *to, const struct msg *m)
{
    int t = sim_txn_index(s, m->txid), i;

    switch (to->kind) {
    case NODE_REPLICA:
        /* replica.h rule 2 again: announcements only of a durably recorded decision. */
        if (m->type == MSG_OUTCOME && sim_is_replica(s, from) && t >= 0 &&
            !s->rep[from].recorded[t])
            sim_violation(s, "r%u announced %s %s before its decision record was durable", from,
                          msg_outcome_name(m->outcome), m->txid);
        if (to->id < s->p.n_replicas)
            send_pk(s, from, to->id, m, false);
        return;
    case NODE_PARTICIPANT:
        i = t < 0 ? -1 : msg_parts_find(&s->txn[t].parts, to->name);
        if (i < 0) {
            sim_error(s, "a message for %s to %s, not one of its participants", m->txid, to->name);
            return;
        }
        /* replica.h rule 2: a leader tells only what it has recorded durably. */
        if (m->type == MSG_OUTCOME && sim_is_replica(s, from) && !s->rep[from].recorded[t])
            sim_violation(s, "r%u told %s %s to %s before its decision record was durable", from,
                          msg_outcome_name(m->outcome), m->txid, to->name);
        send_pk(s, from, s->txn[t].part_node[i], m, false);
        return;
    case NODE_CLIENT:
        send_pk(s, from, sim_client(s), m, false);
        return;
    case NODE_CALLER:
        if (to->id < SIM_MAX_NODES)
            send_pk(s, from, to->id, m, true);
        return;
    }
}

void sim_io_persist(struct sim *s, uint32_t node, struct sim_write *pending, uint32_t *n_pending,
                    const struct node_write *w)
{
    if (*n_pending == SIM_MAX_WRITES) {
        sim_error(s, "node %u: more than %d writes on their way", node, SIM_MAX_WRITES);
        return;
    }
    pending[*n_pending].w = *w;
    pending[*n_pending].at = s->now + prng_below(&s->rng, s->p.write_delay + 1);
    (*n_pending)++;
}

bool sim_write_fails(struct sim *s)
{
    return s->faults && prng_chance(&s->rng, s->p.write_fail_ppm);
}

bool sim_io_due(struct sim *s, uint32_t node, struct sim_write *pending, uint32_t *n_pending,
                struct node_write *w)
{
    uint32_t i;

    if (!*n_pending || pending[0].at > s->now || s->dying[node])
        return false;
    *w = pending[0].w;
    (*n_pending)--;
    for (i = 0; i < *n_pending; i++)
        pending[i] = pending[i + 1];
    return true;
}

static uint64_t io_now(void *ctx)
{
    return ((struct sim_io_ctx *)ctx)->s->now;
}

static uint64_t io_random(void *ctx)
{
    return prng_next(&((struct sim_io_ctx *)ctx)->s->rng);
}

uint64_t sim_wall(const struct sim *s)
{
    return s->now + SIM_WALL_OFFSET;
}

uint64_t sim_horizon(const struct sim *s)
{
    return sim_wall(s) > s->p.retention ? sim_wall(s) - s->p.retention : 0;
}

static uint64_t io_wall(void *ctx)
{
    return sim_wall(((struct sim_io_ctx *)ctx)->s);
}

static uint64_t io_horizon(void *ctx)
{
    return sim_horizon(((struct sim_io_ctx *)ctx)->s);
}

void sim_io_fill(struct sim *s, uint32_t node, struct sim_io_ctx *ctx, struct node_io *io)
{
    ctx->s = s;
    ctx->node = node;
    memset(io, 0, sizeof(*io));
    io->ctx = ctx;
    io->now = io_now;
    io->random = io_random;
    io->wall = io_wall;
    io->horizon = io_horizon;
}

/* Keeps a copy of a delivered protocol message, to arrive again later (sim_replay). */
static void keep_for_replay(struct sim *s, const struct sim_packet *pk)
{
    uint32_t i;

    if (pk->req != SIM_MSG || pk->to >= sim_client(s) || !s->p.replay_ppm)
        return;
    if (s->n_replay < SIM_REPLAY_KEEP) {
        s->replay[s->n_replay++] = *pk;
        return;
    }
    i = (uint32_t)prng_below(&s->rng, SIM_REPLAY_KEEP * 4);
    if (i < SIM_REPLAY_KEEP)
        s->replay[i] = *pk; /* a sample of the whole run, old ones included */
}

void sim_replay(struct sim *s)
{
    struct sim_packet pk;

    if (!s->n_replay || !prng_chance(&s->rng, s->p.replay_ppm))
        return;
    pk = s->replay[prng_below(&s->rng, s->n_replay)];
    pk.at = s->now + 1;
    s->stats->replayed++;
    push(s, &pk); /* in the network all along: whether its sender is up does not matter */
}

void sim_send_request(struct sim *s, uint32_t to, uint32_t t, enum sim_req req)
{
    struct sim_packet pk;

    memset(&pk, 0, sizeof(pk));
    pk.from = sim_client(s);
    pk.to = to;
    pk.req = req;
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
                 sim_node_name(s, pk->to, b, sizeof(b)), req_name(pk), m->txid);
    if (n < 0 || (size_t)n >= len || pk->req != SIM_MSG)
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
        keep_for_replay(s, d);
        if (s->verbose > 1) {
            describe(s, d, line, sizeof(line));
            sim_trace(s, "%s", line);
        }
        if (sim_is_replica(s, d->to))
            sim_replica_receive(s, d->to, d->from, d);
        else if (d->to < sim_client(s) && d->req == SIM_EXEC)
            sim_part_begin(s, d->to - s->p.n_replicas, (uint32_t)sim_txn_index(s, d->m.txid));
        else if (d->to < sim_client(s))
            sim_part_receive(s, d->to - s->p.n_replicas, d->from, d);
        else if (d->m.type == MSG_OUTCOME && sim_txn_index(s, d->m.txid) >= 0)
            check_told(s, (uint32_t)sim_txn_index(s, d->m.txid), d->m.outcome, "client");
        sim_after_handler(s, d->to);
    }
}
