/*
 * coord_operator.c - an operator's calls on a coordinator replica (coord.h): resolve (an
 * undecided transaction aborted through Paxos, at any replica), a transaction's detail (what
 * this replica's leader and acceptor hold of it), and the cluster view (every replica and
 * participant probed), which the dashboard (GET /ui) shows.
 */
#include "request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

#define PROBE_TIMEOUT_MS 1000

/* ---- resolve ---- */

void coord_resolve(struct coord *c, const char *txid, struct http_later *later)
{
    struct creq *q = request_new(c, CREQ_RESOLVE, later);
    struct replica_view v;
    struct api_error e = {0};
    int status = 0;
    enum tpc_err rc;
    json_t *r;

    if (!q)
        return;
    memcpy(q->txid, txid, sizeof(q->txid));
    if (c->stopping) {
        request_error(q, "shutting_down", "the replica is stopping");
        return;
    }
    if (!replica_view(&c->eng.drv, txid, &v) && (r = request_ended(c, txid, &status, &e))) {
        request_reply(q, status, r, NULL); /* decided already: nothing to resolve */
        return;
    }
    engine_enter(&c->eng);
    rc = replica_resolve(&c->eng.drv, txid);
    engine_leave(&c->eng, NULL);
    if (rc == TPC_ERR_EXPIRED) {
        request_error(q, "unknown_transaction",
                      "transaction %s is older than the retention (%lld ms): nobody may decide it "
                      "any more",
                      txid, (long long)c->cfg.retention_ms);
        return;
    }
    if (rc) {
        request_error(q, "unknown_transaction",
                      "this replica holds no participant list of %s (no vote of it reached its "
                      "acceptor): resolve it at a replica whose GET /v1/transactions/%s says "
                      "in_doubt, or at its leader",
                      txid, txid);
        return;
    }
    coord_client_wait(q);
}

/* ---- detail ---- */

static const char *const phase_names[] = {"wait", "phase1", "phase2", "idle", "chosen"};

static json_t *ballot_json(struct ballot b)
{
    return json_pack("{s:I,s:I}", "round", (json_int_t)b.round, "replica", (json_int_t)b.replica);
}

static json_t *value_json(enum tpc_value v)
{
    return v == TPC_VALUE_NONE ? json_null() : json_string(msg_value_name(v));
}

/* What the leader here knows of instance i: the vote, its phase, the ballots accepted and by
 * which acceptors, and whether the participant acknowledged the outcome. */
static json_t *instance_json(const struct leader_txn *l, uint32_t i)
{
    const struct leader_inst *in = &l->inst[i];
    json_t *acc = json_array(), *ids;
    uint32_t s, a;

    for (s = 0; s < in->q.used && s < QUORUM_SLOTS; s++) {
        const struct quorum_slot *sl = &in->q.slot[s];

        if (!sl->acceptors)
            continue;
        ids = json_array();
        for (a = 0; a < 32; a++)
            if (sl->acceptors & (1u << a))
                json_array_append_new(ids, json_integer(a));
        json_array_append_new(acc, json_pack("{s:o,s:o,s:o}", "ballot", ballot_json(sl->ballot),
                                             "value", value_json(sl->value), "acceptors", ids));
    }
    return json_pack(
        "{s:s,s:o,s:s,s:o,s:o,s:o,s:b}", "participant", l->parts.name[i], "vote",
        value_json(in->vote), "phase",
        in->phase < sizeof(phase_names) / sizeof(phase_names[0]) ? phase_names[in->phase] : "?",
        "chosen", value_json(in->chosen), "ballot", ballot_json(in->bal), "accepted", acc, "told",
        l->decision != TPC_OUTCOME_NONE && (l->acked & (1u << i)));
}

json_t *coord_detail(struct coord *c, const char *txid, int *status, struct api_error *e)
{
    struct acc_record_view recs[TPC_MAX_PARTICIPANTS];
    const struct replica_txn *t;
    json_t *r = coord_status(c, txid, status, e), *d, *insts, *acc;
    struct msg_parts parts;
    int64_t decided_at = 0;
    uint64_t now, born = 0;
    size_t n, i;
    bool told;

    if (!r)
        return NULL;
    d = json_pack("{s:I,s:b}", "replica", (json_int_t)c->cfg.self, "leading", false);
    t = replica_find(&c->eng.drv, txid);
    if (t) {
        now = (uint64_t)nodert_now_ms();
        json_object_set_new(d, "leading", json_boolean(t->leading));
        if (t->born)
            json_object_set_new(d, "born_ms", json_integer((json_int_t)t->born));
        if (t->state == REPLICA_ACTIVE && t->deadline)
            json_object_set_new(
                d, "deadline_in_ms",
                json_integer(t->deadline > now ? (json_int_t)(t->deadline - now) : 0));
        if (t->leading) {
            insts = json_array();
            for (i = 0; i < t->leader.parts.n; i++)
                json_array_append_new(insts, instance_json(&t->leader, (uint32_t)i));
            json_object_set_new(d, "instances", insts);
        }
    } else if (acc_store_parts(c->store, txid, &parts, &born) == TPC_OK && born) {
        json_object_set_new(d, "born_ms", json_integer((json_int_t)born)); /* as its votes say */
    }
    told = acc_store_told(c->store, txid, &decided_at);
    if (decided_at) {
        json_object_set_new(d, "decided_at_ms", json_integer(decided_at));
        json_object_set_new(d, "told", json_boolean(told));
    }
    acc = json_array();
    n = acc_store_records(c->store, txid, recs, TPC_MAX_PARTICIPANTS);
    for (i = 0; i < n; i++) {
        json_t *one = json_pack("{s:s,s:o}", "participant", recs[i].instance, "promised",
                                ballot_json(recs[i].promised));

        if (recs[i].value != TPC_VALUE_NONE) {
            json_object_set_new(one, "accepted_ballot", ballot_json(recs[i].accepted));
            json_object_set_new(one, "value", value_json(recs[i].value));
        }
        json_array_append_new(acc, one);
    }
    json_object_set_new(d, "acceptor", acc);
    json_object_set_new(r, "detail", d);
    return r;
}

/* ---- the cluster view ---- */

static void cluster_answer(struct creq *q, json_t *view)
{
    if (view)
        request_reply(q, 200, view, NULL);
    else
        request_error(q, "internal", "out of memory");
}

/* Every probe is back: the view, each node up or down with its answer. */
static void cluster_reply(struct creq *q)
{
    struct coord *c = q->c;
    const struct coord_config *cfg = &c->cfg;
    json_t *reps = json_array(), *parts = json_array(), *node, *body, *view;
    uint32_t i;

    for (i = 0; i < q->n_probes; i++) {
        struct probe_call *p = &q->probes[i];
        bool replica = i < cfg->n_replicas, heur = !replica && (i - cfg->n_replicas) % 2 == 1;
        bool up;

        body = NULL;
        if (replica && i == cfg->self)
            body = coord_health(c);
        else if (p->call.err == TPC_OK && p->call.status == 200)
            body = json_loadb(p->call.response, p->call.response_len, 0, NULL);
        up = body != NULL;
        if (heur) { /* the participant's heuristic decisions, with its health just before */
            node = json_array_get(parts, json_array_size(parts) - 1);
            json_object_set_new(node, "heuristics",
                                body ? json_incref(json_object_get(body, "heuristics"))
                                     : json_null());
            json_decref(body);
            continue;
        }
        node = replica ? json_pack("{s:I,s:s}", "id", (json_int_t)i, "url", cfg->replicas[i])
                       : json_pack("{s:s,s:s}", "name",
                                   cfg->participant_name[(i - cfg->n_replicas) / 2], "url",
                                   cfg->participant_url[(i - cfg->n_replicas) / 2]);
        json_object_set_new(node, "up", json_boolean(up));
        json_object_set_new(node, "latency_ms", up ? json_real(p->ms) : json_null());
        json_object_set_new(node, "health", body ? body : json_null());
        if (up)
            json_object_set_new(node, "error", json_null());
        else if (p->call.err != TPC_OK)
            json_object_set_new(node, "error", json_string(p->call.error));
        else
            json_object_set_new(node, "error", json_sprintf("answered %ld", p->call.status));
        json_array_append_new(replica ? reps : parts, node);
    }
    view = json_pack("{s:I,s:s,s:o,s:o}", "self", (json_int_t)cfg->self, "cluster_id",
                     cfg->cluster_id, "replicas", reps, "participants", parts);
    if (c->cluster_round == q)
        c->cluster_round = NULL;
    while (q->followers) { /* asked while this round was out: the same view */
        struct creq *f = q->followers;

        q->followers = f->next_follower;
        request_out_back(f);
        cluster_answer(f, view ? json_deep_copy(view) : NULL);
    }
    cluster_answer(q, view);
}

static void probe_back(struct http_call *call)
{
    struct creq *q = call->arg;
    struct probe_call *p = (struct probe_call *)call; /* call is the first member */

    p->ms = (double)(metrics_now_ns() - q->started) / 1e6;
    if (--q->probes_left == 0) {
        request_out_back(q);
        cluster_reply(q);
    }
}

void coord_cluster(struct coord *c, struct http_later *later)
{
    struct creq *q = request_new(c, CREQ_CLUSTER, later);
    const struct coord_config *cfg = &c->cfg;
    size_t i, n;

    if (!q)
        return;
    if (c->stopping) {
        request_error(q, "shutting_down", "the replica is stopping");
        return;
    }
    if (c->cluster_round) { /* one round of probes at a time, however many pages poll */
        q->next_follower = c->cluster_round->followers;
        c->cluster_round->followers = q;
        request_out_add(q);
        return;
    }
    n = cfg->n_replicas + 2 * (size_t)cfg->n_participants;
    q->probes = calloc(n, sizeof(*q->probes));
    if (!q->probes) {
        request_error(q, "internal", "out of memory");
        return;
    }
    q->n_probes = n;
    for (i = 0; i < n; i++) {
        struct probe_call *p = &q->probes[i];
        size_t j = (i - cfg->n_replicas) / 2;

        if (i < cfg->n_replicas)
            snprintf(p->url, sizeof(p->url), "%s/health", cfg->replicas[i]);
        else
            snprintf(p->url, sizeof(p->url), "%s%s", cfg->participant_url[j],
                     (i - cfg->n_replicas) % 2 ? "/v1/heuristics" : "/health");
        p->call.url = p->url;
        p->call.timeout_ms = PROBE_TIMEOUT_MS;
        p->call.done = probe_back;
        p->call.arg = q;
    }
    q->probes_left = n - 1; /* not itself */
    request_out_add(q);
    c->cluster_round = q;
    for (i = 0; i < n; i++)
        if (i != cfg->self)
            http_agent_post(c->eng.agent, &q->probes[i].call);
    if (q->probes_left == 0) {
        request_out_back(q);
        cluster_reply(q);
    }
}
