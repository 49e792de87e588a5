/*
 * participant_report.c - what the participant reports (see participant.h): a branch's state,
 * the prepared branches, health and metrics. Reads only: no event reaches the driver from here;
 * its state is read under the driver's lock, a branch's under its own mutex.
 */
#include <string.h>

#include "branch.h"
#include "codec.h"
#include "fsync_vfs.h"
#include "http_client.h"
#include "participant_int.h"

json_t *participant_status(struct participant *p, const char *txid, struct api_error *e)
{
    struct branch *b = (struct branch *)table_get(&p->branches, txid, false);
    const struct resource_branch *rb;
    struct resource_branch copy;
    enum rm_state o = RM_NONE;
    enum tpc_value vote = TPC_VALUE_NONE;
    uint64_t born = 0;
    size_t keys = 0;
    int cs = 0;
    bool known;
    json_t *r;

    memset(e, 0, sizeof(*e));
    if (b) {
        pthread_mutex_lock(&b->mu);
        keys = b->n_keys;
        cs = b->cs_len;
        pthread_mutex_unlock(&b->mu);
        table_put(&p->branches, &b->e);
    }
    pthread_mutex_lock(&p->eng.rt.mu); /* a read: no event */
    rb = resource_find(&p->eng.drv, txid);
    known = rb != NULL;
    if (known)
        copy = *rb;
    pthread_mutex_unlock(&p->eng.rt.mu);
    if (known) {
        r = json_pack("{s:s,s:s,s:s,s:I,s:I}", "txid", txid, "state", rm_state_name(copy.rm.state),
                      "vote", msg_value_name(copy.rm.vote), "locked_rows", (json_int_t)keys,
                      "changes_bytes", (json_int_t)cs);
        if (r && copy.parts.n)
            json_object_set_new(r, "participants", codec_encode_parts(&copy.parts));
        return r;
    }
    if (store_ended(p->store, txid, &o, &vote, &born) != TPC_OK) {
        api_error_set(e, "storage_error", "cannot read the outcome of %s", txid);
        return NULL;
    }
    if (o == RM_NONE) {
        api_error_set(e, "unknown_branch", "no branch %s here", txid);
        return NULL;
    }
    return json_pack("{s:s,s:s,s:s}", "txid", txid, "state", rm_state_name(o), "vote",
                     msg_value_name(vote));
}

static void list_one(void *ctx, const struct resource_branch *b)
{
    if (b->rm.state == RM_PREPARED)
        json_array_append_new(ctx, json_pack("{s:s,s:o}", "txid", b->e.id, "participants",
                                             codec_encode_parts(&b->parts)));
}

json_t *participant_list_prepared(struct participant *p)
{
    json_t *list = json_array();

    if (list) {
        pthread_mutex_lock(&p->eng.rt.mu);
        resource_foreach(&p->eng.drv, list_one, list);
        pthread_mutex_unlock(&p->eng.rt.mu);
    }
    return json_pack("{s:o}", "prepared", list ? list : json_array());
}

static struct resource_stats stats_of(struct participant *p, size_t *live, size_t *waiting,
                                      uint64_t *waits)
{
    struct resource_stats s;

    pthread_mutex_lock(&p->eng.rt.mu);
    s = p->eng.drv.stats;
    *live = resource_size(&p->eng.drv);
    pthread_mutex_unlock(&p->eng.rt.mu);
    pthread_mutex_lock(&p->mu);
    *waiting = p->lock_waiters;
    *waits = p->lock_waits;
    pthread_mutex_unlock(&p->mu);
    return s;
}

static void count_prepared(void *ctx, const struct resource_branch *b)
{
    if (b->rm.state == RM_PREPARED)
        (*(size_t *)ctx)++;
}

json_t *participant_health(struct participant *p)
{
    uint64_t groups, jobs;
    size_t n, waiting, prepared = 0;
    uint64_t waits;
    int64_t pending, mixed;
    struct resource_stats s = stats_of(p, &n, &waiting, &waits);

    pthread_mutex_lock(&p->eng.rt.mu);
    resource_foreach(&p->eng.drv, count_prepared, &prepared);
    pthread_mutex_unlock(&p->eng.rt.mu);
    store_group_stats(p->store, &groups, &jobs);
    store_heuristic_counts(p->store, &pending, &mixed);
    return json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I,s:I},s:{s:I,s:I,s:I}}", "status",
                     "ok", "name", p->cfg.name, "branches", (json_int_t)n, "prepared",
                     (json_int_t)prepared, "waiting_for_locks", (json_int_t)waiting,
                     "in_doubt_resolved", (json_int_t)s.doubts_resolved, "heuristic", "committed",
                     (json_int_t)s.heur_committed, "aborted", (json_int_t)s.heur_aborted, "pending",
                     (json_int_t)pending, "mixed", (json_int_t)mixed, "storage", "fsyncs",
                     (json_int_t)store_fsyncs(), "commit_groups", (json_int_t)groups,
                     "durable_jobs", (json_int_t)jobs);
}

void participant_metrics(void *ctx, struct metrics_text *t)
{
    struct participant *p = ctx;
    uint64_t groups, jobs;
    size_t n, waiting;
    uint64_t waits;
    struct resource_stats s = stats_of(p, &n, &waiting, &waits);

    store_group_stats(p->store, &groups, &jobs);
    metrics_family(t, "tpc_branches_total", "counter",
                   "Transaction branches ended on this participant, by outcome.");
    metrics_sample(t, "tpc_branches_total", "outcome=\"committed\"", s.committed);
    metrics_sample(t, "tpc_branches_total", "outcome=\"aborted\"", s.aborted);
    metrics_sample(t, "tpc_branches_total", "outcome=\"read_only\"", s.read_only);
    metrics_family(t, "tpc_branches_live", "gauge", "Branches open or prepared here now.");
    metrics_sample(t, "tpc_branches_live", NULL, n);
    metrics_counter(
        t, "tpc_in_doubt_resolved_total",
        "Prepared branches whose outcome this participant learned by asking the replicas.",
        s.doubts_resolved);
    metrics_counter(t, "tpc_expired_refused_total",
                    "Prepares refused: the transaction is older than the retention, unknown here.",
                    s.expired_refused);
    metrics_counter(t, "tpc_forgotten_branches_total",
                    "Ended branches older than the retention removed from the database.",
                    (uint64_t)atomic_load(&p->eng.forgotten));
    metrics_family(t, "tpc_heuristic_decisions_total", "counter",
                   "Operators' heuristic decisions on prepared branches here, by outcome.");
    metrics_sample(t, "tpc_heuristic_decisions_total", "outcome=\"committed\"", s.heur_committed);
    metrics_sample(t, "tpc_heuristic_decisions_total", "outcome=\"aborted\"", s.heur_aborted);
    metrics_family(t, "tpc_heuristic_reconciled_total", "counter",
                   "Heuristic decisions reconciled with the chosen outcome: the same (confirmed) "
                   "or the other (mixed).");
    metrics_sample(t, "tpc_heuristic_reconciled_total", "result=\"confirmed\"", s.heur_confirmed);
    metrics_sample(t, "tpc_heuristic_reconciled_total", "result=\"mixed\"", s.heur_mixed);
    metrics_counter(t, "tpc_lock_waits_total",
                    "Statements that found a lock another branch held, and waited for it.", waits);
    metrics_counter(t, "tpc_apply_failures_total",
                    "Commits whose changes did not apply (the locks make this never happen).",
                    store_apply_failures(p->store));
    metrics_histogram(t, "tpc_prepare_duration_seconds",
                      "Prepare calls: the durable prepared record, then the vote.",
                      &p->prepare_time);
    metrics_histogram(t, "tpc_commit_duration_seconds",
                      "Applying an outcome to a branch (commit or abort), durably.",
                      &p->eng.outcome_time);
    metrics_counter(t, "tpc_commit_groups_total",
                    "SQLite transactions of the store (fsync groups).", groups);
    metrics_counter(t, "tpc_durable_jobs_total",
                    "Durable writes (prepared records, outcomes) carried by those groups.", jobs);
    fsync_vfs_metrics(t);
    http_client_metrics(t);
}

const struct participant_config *participant_config(const struct participant *p)
{
    return &p->cfg;
}
