/*
 * participant.c - branches, votes and outcomes (see participant.h).
 *
 * Branch life:  exec* -> prepare -> commit | abort     (rm.h has the state diagram)
 *
 * Invariants:
 *   1. A branch's row keys are locked from the exec that first changes them
 *      until its outcome is durable; so its changeset always re-applies
 *      cleanly on top of committed data, and no update is lost.
 *   2. The prepared record is durable before the ballot-0 phase 2a leaves
 *      (rm.h rule 2); the vote sent is always the branch's first vote (rule 3).
 *   3. An outcome is applied, its prepared record deleted and the outcome
 *      recorded in one SQLite transaction; locks are released after it.
 *   4. A branch leaves the table only once its outcome is durable; from then
 *      on tpc_outcome answers for it.
 */
#include "participant.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "failpoint.h"
#include "fsync_vfs.h"
#include "http_client.h"
#include "locks.h"
#include "log.h"
#include "rm.h"
#include "store.h"
#include "table.h"
#include "ticker.h"

struct branch {
    struct table_entry e; /* first: the table's entry; e.id is the txid, e.gone once ended */
    pthread_mutex_t mu;   /* serializes operations on this branch */
    struct rm_branch rm;
    void *changeset;
    int cs_len;
    struct lock_key *keys; /* each data malloc'd */
    size_t n_keys, cap_keys;
    struct msg_parts parts;
    int64_t deadline;     /* WORKING: monotonic ms after which it aborts on its own */
    int64_t next_query;   /* PREPARED: when to ask the replicas next */
    uint32_t query_tries; /* for the backoff */
};

struct participant {
    struct participant_config cfg;
    struct store *store;
    struct locks *locks;
    struct table branches;
    pthread_mutex_t mu;     /* lock_waiters */
    struct http_pool *pool; /* keep-alive connections to the replicas */
    /* the background thread: deadlines and in-doubt resolution */
    struct ticker bg;           /* deadlines and in-doubt branches */
    size_t lock_waiters;        /* under mu: branches waiting for a row lock now */
    uint64_t doubts_resolved;   /* under mu: in-doubt branches settled by asking the replicas */
    _Atomic uint64_t ended[3];  /* branches ended here: committed, aborted, read-only */
    _Atomic uint64_t one_phase; /* of the committed: the only participant, without phase 2 */
    struct metrics_hist prepare_time, outcome_time; /* prepare calls; applying an outcome */
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_error(struct participant_error *e, int status, const char *code, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));

static void set_error(struct participant_error *e, int status, const char *code, const char *fmt,
                      ...)
{
    va_list ap;

    e->status = status;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

static struct http_client *client_get(struct participant *p)
{
    return http_pool_get(p->pool);
}

static void client_put(struct participant *p, struct http_client *c)
{
    http_pool_put(p->pool, c);
}

/* ---- the branch table ---- */

static struct table_entry *branch_create(void *ctx, const char *txid)
{
    struct participant *p = ctx;
    struct branch *b = calloc(1, sizeof(*b));

    (void)txid;
    if (!b)
        return NULL;
    pthread_mutex_init(&b->mu, NULL);
    b->rm.state = RM_WORKING;
    b->deadline = mono_ms() + p->cfg.branch_timeout_ms;
    return &b->e;
}

static void branch_destroy(struct table_entry *e)
{
    struct branch *b = (struct branch *)e;
    size_t i;

    for (i = 0; i < b->n_keys; i++)
        free((void *)b->keys[i].data);
    free(b->keys);
    free(b->changeset);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* Finds (and with create, makes) txid's branch, with a reference the caller puts back. */
static struct branch *branch_get(struct participant *p, const char *txid, bool create)
{
    return (struct branch *)table_get(&p->branches, txid, create);
}

static void branch_put(struct participant *p, struct branch *b)
{
    table_put(&p->branches, &b->e);
}

/* Takes b out of the table (invariant 4); the last reference frees it. Under b->mu. */
static void branch_remove(struct participant *p, struct branch *b)
{
    table_remove(&p->branches, &b->e);
}

/* A branch whose transaction already ended here: free its rows and forget it. Under b->mu. */
static void drop_branch(struct participant *p, struct branch *b)
{
    locks_release(p->locks, b->e.id, b->keys, b->n_keys);
    branch_remove(p, b);
}

/* ---- exec ---- */

struct take_ctx {
    struct participant *p;
    struct branch *b;
    struct lock_key *keys;
    size_t n, cap;
    bool oom;
    char blocker[TPC_TXID_MAX + 1];
    uint64_t gen;
    bool *fresh; /* keys[i] newly taken by the last try */
};

static void collect_key(void *ctx, const void *key, size_t n)
{
    struct take_ctx *t = ctx;
    struct lock_key *bigger;
    void *copy;

    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;

        bigger = realloc(t->keys, cap * sizeof(*bigger));
        if (!bigger) {
            t->oom = true;
            return;
        }
        t->keys = bigger;
        t->cap = cap;
    }
    copy = malloc(n);
    if (!copy) {
        t->oom = true;
        return;
    }
    memcpy(copy, key, n);
    t->keys[t->n].data = copy;
    t->keys[t->n].len = n;
    t->n++;
}

static void free_keys(struct lock_key *keys, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free((void *)keys[i].data);
    free(keys);
}

/* store_exec's callback: lock the rows the new changeset touches, still under the DB mutex. */
static bool take_locks(void *ctx, const void *changeset, int len)
{
    struct take_ctx *t = ctx;

    free_keys(t->keys, t->n);
    free(t->fresh);
    t->keys = NULL;
    t->fresh = NULL;
    t->n = t->cap = 0;
    t->oom = false;
    if (store_changeset_keys(changeset, len, collect_key, t) != TPC_OK || t->oom ||
        !(t->fresh = calloc(t->n ? t->n : 1, sizeof(*t->fresh)))) {
        t->oom = true;
        return false;
    }
    return locks_try_take(t->p->locks, t->b->e.id, t->keys, t->n, t->blocker, sizeof(t->blocker),
                          &t->gen, t->fresh);
}

/*
 * Adds the keys the last try newly locked to the branch's list, for release at its outcome.
 * Out of memory: it gives those locks back and says so (the caller drops the new changes).
 */
static bool remember_keys(struct participant *p, struct branch *b, struct take_ctx *t)
{
    size_t i, fresh = 0;

    for (i = 0; i < t->n; i++)
        fresh += t->fresh[i];
    if (b->n_keys + fresh > b->cap_keys) {
        size_t cap = b->n_keys + fresh + 16;
        struct lock_key *bigger = realloc(b->keys, cap * sizeof(*bigger));

        if (!bigger) {
            for (i = 0; i < t->n; i++)
                if (t->fresh[i])
                    locks_release(p->locks, b->e.id, &t->keys[i], 1);
            return false;
        }
        b->keys = bigger;
        b->cap_keys = cap;
    }
    for (i = 0; i < t->n; i++) {
        if (!t->fresh[i])
            continue;
        b->keys[b->n_keys++] = t->keys[i];
        t->keys[i].data = NULL; /* moved */
    }
    return true;
}

static const char *state_word(enum rm_state s)
{
    return rm_state_name(s);
}

json_t *participant_exec(struct participant *p, const char *txid, json_t *statements,
                         struct participant_error *e)
{
    struct take_ctx t;
    struct branch *b;
    struct timespec deadline;
    json_t *results = NULL;
    void *cs = NULL;
    int cs_len = 0;
    char msg[512];
    int64_t until;
    enum store_fail fail;
    bool waited;

    memset(e, 0, sizeof(*e));
    if (json_array_size(statements) > p->cfg.max_statements) {
        set_error(e, 400, "too_many_statements", "at most %u statements per request",
                  p->cfg.max_statements);
        return NULL;
    }
    /* An ended transaction is refused by store_exec, and the new empty branch dropped. */
    b = branch_get(p, txid, true);
    if (!b) {
        set_error(e, 500, "internal", "out of memory");
        return NULL;
    }
    pthread_mutex_lock(&b->mu);
    memset(&t, 0, sizeof(t));
    t.p = p;
    t.b = b;
    if (b->e.gone || b->rm.state != RM_WORKING) {
        set_error(e, 409, "branch_not_active", "branch %s is %s: it takes no more statements", txid,
                  b->e.gone ? "ended" : state_word(b->rm.state));
        goto out;
    }
    until = mono_ms() + p->cfg.lock_timeout_ms;
    for (;;) {
        fail = store_exec(p->store, txid, b->changeset, b->cs_len, statements, take_locks, &t,
                          &results, &cs, &cs_len, msg, sizeof(msg));
        if (fail != STORE_FAIL_LOCKED || t.oom)
            break;
        /* A row it changes is locked by another branch: wait for a release, then re-run
         * the statements so they read the value that branch committed (invariant 1). */
        deadline.tv_sec = until / 1000;
        deadline.tv_nsec = (until % 1000) * 1000000;
        pthread_mutex_lock(&p->mu);
        p->lock_waiters++;
        pthread_mutex_unlock(&p->mu);
        waited = mono_ms() < until && locks_wait(p->locks, t.gen, &deadline);
        pthread_mutex_lock(&p->mu);
        p->lock_waiters--;
        pthread_mutex_unlock(&p->mu);
        if (!waited) {
            set_error(e, 409, "lock_timeout",
                      "a row this statement changes is locked by transaction %s; still locked "
                      "after %u ms",
                      t.blocker, p->cfg.lock_timeout_ms);
            goto out;
        }
    }
    switch (fail) {
    case STORE_FAIL_NONE:
        if (!remember_keys(p, b, &t)) {
            set_error(e, 500, "internal", "out of memory"); /* the new changes are dropped */
            break;
        }
        free(b->changeset);
        b->changeset = cs;
        b->cs_len = cs_len;
        cs = NULL;
        break;
    case STORE_FAIL_SQL:
        set_error(e, 400, "sql_error", "%s", msg);
        break;
    case STORE_FAIL_FORBIDDEN:
        set_error(e, 403, "forbidden_statement", "%s", msg);
        break;
    case STORE_FAIL_CONSTRAINT:
        set_error(e, 409, "constraint_violation", "%s", msg);
        break;
    case STORE_FAIL_ROWS:
        set_error(e, 400, "too_many_rows", "%s", msg);
        break;
    case STORE_FAIL_TIMEOUT:
        set_error(e, 400, "statement_timeout", "%s", msg);
        break;
    case STORE_FAIL_ENDED:
        set_error(e, 409, "transaction_ended", "%s", msg);
        if (b->rm.state == RM_WORKING)
            drop_branch(p, b); /* it ended meanwhile: this branch is a leftover */
        break;
    default:
        set_error(e, 500, "internal", "%s", t.oom ? "out of memory" : msg);
        break;
    }
out:
    pthread_mutex_unlock(&b->mu);
    branch_put(p, b);
    free(cs);
    free_keys(t.keys, t.n);
    free(t.fresh);
    if (results && e->status)
        json_decref(results), results = NULL;
    return results ? json_pack("{s:s,s:o}", "txid", txid, "results", results) : NULL;
}

/* ---- voting ---- */

/* POSTs one message to each replica's /v1/paxos and hands each valid answer to fn. */
static void to_replicas(struct participant *p, const struct msg *m, const uint32_t *which,
                        uint32_t n_which, long timeout_ms,
                        void (*fn)(void *ctx, uint32_t replica, const struct msg *answer),
                        void *ctx)
{
    struct http_call calls[PARTICIPANT_MAX_REPLICAS];
    char urls[PARTICIPANT_MAX_REPLICAS][512], err[256];
    struct http_client *c = client_get(p);
    json_t *batch = codec_encode_batch(m, 1);
    char *text = batch ? json_dumps(batch, JSON_COMPACT) : NULL;
    struct msg answers[4];
    uint32_t i;
    size_t n, k;

    json_decref(batch);
    if (!c || !text)
        goto out;
    memset(calls, 0, sizeof(calls));
    for (i = 0; i < n_which; i++) {
        snprintf(urls[i], sizeof(urls[i]), "%s/v1/paxos", p->cfg.replicas[which[i]]);
        calls[i].url = urls[i];
        calls[i].body = text;
        calls[i].body_len = strlen(text);
    }
    http_client_post_all(c, calls, n_which, timeout_ms);
    for (i = 0; i < n_which; i++) {
        json_t *j;

        if (calls[i].err || calls[i].status != 200) {
            log_debug("%s: replica %u: %s (status %ld)", m->txid, which[i],
                      calls[i].err ? calls[i].error : "bad status", calls[i].status);
            free(calls[i].response);
            continue;
        }
        j = json_loadb(calls[i].response, calls[i].response_len, JSON_REJECT_DUPLICATES, NULL);
        if (j &&
            codec_decode_batch(j, p->cfg.n_replicas, answers, 4, &n, err, sizeof(err)) == TPC_OK) {
            for (k = 0; k < n; k++)
                fn(ctx, which[i], &answers[k]);
        } else {
            log_warn("%s: replica %u answered badly: %s", m->txid, which[i], j ? err : "not JSON");
        }
        json_decref(j);
        free(calls[i].response);
    }
out:
    free(text);
    client_put(p, c);
}

struct vote_ctx {
    struct msg *vote;
    uint32_t n;
};

static void on_vote_answer(void *ctx, uint32_t replica, const struct msg *a)
{
    struct vote_ctx *v = ctx;

    /* Only an acceptor's own answer counts: a misconfigured replica order must not. */
    if ((a->type == MSG_PHASE2B || a->type == MSG_REJECT) && a->acceptor == replica)
        rm_vote_add(v->vote, a, v->n);
}

/* Sends the ballot-0 phase 2a to every replica and returns the VOTE with their answers. */
/* Returns true when the vote is chosen: F+1 acceptors answered it. */
static bool send_vote(struct participant *p, const struct msg_parts *parts, const char *txid,
                      enum tpc_value value, bool read_only, struct msg *vote)
{
    struct vote_ctx v = {vote, p->cfg.n_replicas};
    uint32_t which[PARTICIPANT_MAX_REPLICAS], i;
    struct msg a, none;

    rm_phase2a(txid, p->cfg.name, parts, value, &a);
    rm_vote_init(txid, p->cfg.name, value, vote);
    vote->read_only = read_only;
    for (i = 0; i < p->cfg.n_replicas; i++)
        which[i] = i;
    to_replicas(p, &a, which, p->cfg.n_replicas, p->cfg.vote_timeout_ms, on_vote_answer, &v);
    memset(&none, 0, sizeof(none));
    return p->cfg.n_replicas > 0 && rm_vote_add(vote, &none, p->cfg.n_replicas);
}

/* Applies an outcome to a branch in the table; under b->mu. */
static bool apply_outcome(struct participant *p, struct branch *b, enum tpc_outcome o,
                          struct participant_error *e)
{
    struct rm_branch next;
    struct store_job job;
    bool apply;
    uint64_t started = metrics_now_ns();

    if (o == TPC_OUTCOME_COMMITTED)
        failpoint("participant-before-commit");
    if (rm_outcome(&b->rm, o, &next, &apply) != TPC_OK) {
        set_error(e, 409, o == TPC_OUTCOME_COMMITTED ? "not_prepared" : "already_committed",
                  "branch %s is %s; it cannot be %s", b->e.id, state_word(b->rm.state),
                  msg_outcome_name(o));
        return false;
    }
    memset(&job, 0, sizeof(job));
    job.kind = o == TPC_OUTCOME_COMMITTED ? STORE_JOB_COMMIT : STORE_JOB_ABORT;
    job.txid = b->e.id;
    job.changeset = b->changeset;
    job.changeset_len = b->cs_len;
    job.vote = b->rm.vote;
    if (store_submit(p->store, &job) != TPC_OK) {
        set_error(e, 500, "storage_error", "cannot record the outcome: %s", job.err);
        return false;
    }
    if (o == TPC_OUTCOME_COMMITTED)
        failpoint("participant-after-commit");
    /* Invariant 3: durable first, then the rows are free for others. */
    b->rm = next;
    locks_release(p->locks, b->e.id, b->keys, b->n_keys);
    branch_remove(p, b);
    atomic_fetch_add(&p->ended[o == TPC_OUTCOME_COMMITTED ? 0 : 1], 1);
    metrics_hist_since(&p->outcome_time, started);
    log_debug("%s %s", b->e.id, msg_outcome_name(o));
    return true;
}

json_t *participant_prepare(struct participant *p, const struct msg *prep, bool relayed,
                            struct participant_error *e)
{
    struct branch *b = branch_get(p, prep->txid, false);
    struct rm_branch cur = {RM_NONE, TPC_VALUE_NONE}, next, ended;
    struct store_job job;
    json_t *pj = NULL, *vote = NULL;
    char *ptext = NULL;
    struct msg vm;
    bool persist, chosen;
    uint64_t started = metrics_now_ns();

    memset(e, 0, sizeof(*e));
    if (msg_parts_find(&prep->parts, p->cfg.name) < 0) {
        set_error(e, 400, "not_a_participant", "participant list does not name %s", p->cfg.name);
        goto out_put;
    }
    if (b) {
        pthread_mutex_lock(&b->mu);
        if (!b->e.gone)
            cur = b->rm;
    }
    /* The recorded end comes first, branch or not: an exec racing an earlier aborted vote may
     * have left a working branch behind, and it must not turn the vote into prepared (rm.h
     * rule 3). Such a leftover is dropped. */
    if (store_ended(p->store, prep->txid, &ended.state, &ended.vote) != TPC_OK) {
        set_error(e, 500, "storage_error", "cannot read the outcome of %s", prep->txid);
        goto out;
    }
    if (ended.state != RM_NONE) {
        if (b && !b->e.gone)
            drop_branch(p, b);
        cur = ended;
    }
    /* A prepared branch keeps the list it was prepared with: one transaction, one list. */
    if (cur.state == RM_PREPARED && !msg_parts_equal(&b->parts, &prep->parts)) {
        set_error(e, 409, "participants_conflict",
                  "branch %s was prepared with another participant list", prep->txid);
        goto out;
    }
    rm_prepare(&cur, true, b && b->cs_len > 0, &next, &persist);
    if (persist && next.state == RM_READONLY) {
        /* It changed nothing: its prepared vote is recorded as the branch's end, and it holds
         * nothing and needs no outcome (the leader leaves it out of the second phase). */
        memset(&job, 0, sizeof(job));
        job.kind = STORE_JOB_READONLY;
        job.txid = prep->txid;
        if (store_submit(p->store, &job) != TPC_OK) {
            set_error(e, 500, "storage_error", "cannot record the read-only vote: %s", job.err);
            goto out;
        }
        b->rm = next;
        locks_release(p->locks, b->e.id, b->keys, b->n_keys);
        branch_remove(p, b);
        atomic_fetch_add(&p->ended[2], 1);
    } else if (persist) {
        /* Invariant 2: the prepared record, changes included, is durable before the vote. */
        pj = codec_encode_parts(&prep->parts);
        ptext = pj ? json_dumps(pj, JSON_COMPACT) : NULL;
        if (!ptext) {
            set_error(e, 500, "internal", "out of memory");
            goto out;
        }
        memset(&job, 0, sizeof(job));
        job.kind = STORE_JOB_PREPARE;
        job.txid = prep->txid;
        job.changeset = b->changeset;
        job.changeset_len = b->cs_len;
        job.participants = ptext;
        if (store_submit(p->store, &job) != TPC_OK) {
            set_error(e, 500, "storage_error", "cannot make the prepared record durable: %s",
                      job.err);
            goto out;
        }
        b->parts = prep->parts;
        b->next_query = mono_ms() + p->cfg.doubt_ms;
        b->query_tries = 0;
        b->rm = next;
        failpoint("participant-after-prepare");
    } else if (cur.state == RM_NONE) {
        /* No branch and no outcome: it votes aborted, and records that first, so that a late
         * statement cannot start the branch again and a later prepare vote prepared: ballot 0
         * carries one value (rm.h rule 3). */
        memset(&job, 0, sizeof(job));
        job.kind = STORE_JOB_ABORT;
        job.txid = prep->txid;
        job.vote = TPC_VALUE_ABORTED;
        if (store_submit(p->store, &job) != TPC_OK) {
            set_error(e, 500, "storage_error", "cannot record the aborted vote: %s", job.err);
            goto out;
        }
    }
    if (relayed) {
        /* The vote is cast all the same: this is the one value ballot 0 carries for it. */
        rm_vote_init(prep->txid, p->cfg.name, next.vote, &vm);
        vm.read_only = next.state == RM_READONLY;
        chosen = false;
    } else {
        chosen = send_vote(p, &prep->parts, prep->txid, next.vote, next.state == RM_READONLY, &vm);
    }
    /* One participant and its prepared vote chosen: by the decision rule the transaction is
     * COMMITTED already, so it commits in one phase, without waiting to be told. */
    if (chosen && prep->parts.n == 1 && b && !b->e.gone && b->rm.state == RM_PREPARED &&
        next.vote == TPC_VALUE_PREPARED) {
        if (apply_outcome(p, b, TPC_OUTCOME_COMMITTED, e)) {
            atomic_fetch_add(&p->one_phase, 1);
            log_debug("%s: the only participant, its vote chosen: committed in one phase",
                      prep->txid);
        } else {
            log_warn("%s: one-phase commit deferred: %s", prep->txid, e->message);
        }
    }
    memset(e, 0, sizeof(*e)); /* the vote stands whether or not it could commit now */
    vote = codec_encode(&vm);
    if (!vote)
        set_error(e, 500, "internal", "cannot encode the vote");
    metrics_hist_since(&p->prepare_time, started);
out:
    if (b)
        pthread_mutex_unlock(&b->mu);
out_put:
    if (b)
        branch_put(p, b);
    json_decref(pj);
    free(ptext);
    return vote;
}

/* ---- outcomes ---- */

static json_t *ack_json(const struct participant *p, const char *txid, enum tpc_outcome o)
{
    struct msg ack;

    memset(&ack, 0, sizeof(ack));
    ack.type = MSG_ACK;
    msg_copy_str(ack.txid, TPC_TXID_MAX, txid);
    msg_copy_str(ack.instance, TPC_NAME_MAX, p->cfg.name);
    ack.outcome = o;
    return codec_encode(&ack);
}

json_t *participant_outcome(struct participant *p, const char *txid, enum tpc_outcome o,
                            struct participant_error *e)
{
    struct branch *b = branch_get(p, txid, false);
    enum rm_state known = RM_NONE;
    enum tpc_value vote;
    struct store_job job;
    bool ok = false;

    memset(e, 0, sizeof(*e));
    if (b) {
        pthread_mutex_lock(&b->mu);
        if (!b->e.gone) {
            ok = apply_outcome(p, b, o, e);
            pthread_mutex_unlock(&b->mu);
            branch_put(p, b);
            return ok ? ack_json(p, txid, o) : NULL;
        }
        pthread_mutex_unlock(&b->mu);
        branch_put(p, b);
    }
    /* Not in the table: it ended before, or never began here. */
    if (store_ended(p->store, txid, &known, &vote) != TPC_OK) {
        set_error(e, 500, "storage_error", "cannot read the outcome of %s", txid);
        return NULL;
    }
    if (known == RM_READONLY || (known == RM_COMMITTED && o == TPC_OUTCOME_COMMITTED) ||
        (known == RM_ABORTED && o == TPC_OUTCOME_ABORTED))
        return ack_json(p, txid, o); /* repeated, or read-only: a no-op */
    if (known != RM_NONE) {
        set_error(e, 409, "outcome_conflict", "transaction %s is already %s here", txid,
                  rm_state_name(known));
        return NULL;
    }
    if (o == TPC_OUTCOME_COMMITTED) {
        set_error(e, 404, "unknown_branch", "no branch %s here, and no commit recorded for it",
                  txid);
        return NULL;
    }
    /* Abort of an unknown branch is fine; recording it keeps a late statement out. */
    memset(&job, 0, sizeof(job));
    job.kind = STORE_JOB_ABORT;
    job.txid = txid;
    if (store_submit(p->store, &job) != TPC_OK) {
        set_error(e, 500, "storage_error", "cannot record the abort: %s", job.err);
        return NULL;
    }
    return ack_json(p, txid, o);
}

/* ---- reads ---- */

json_t *participant_status(struct participant *p, const char *txid, struct participant_error *e)
{
    struct branch *b = branch_get(p, txid, false);
    enum rm_state o = RM_NONE;
    enum tpc_value vote = TPC_VALUE_NONE;
    json_t *r = NULL;

    memset(e, 0, sizeof(*e));
    if (b) {
        pthread_mutex_lock(&b->mu);
        if (!b->e.gone) {
            r = json_pack("{s:s,s:s,s:s,s:I,s:I}", "txid", txid, "state", state_word(b->rm.state),
                          "vote", msg_value_name(b->rm.vote), "locked_rows", (json_int_t)b->n_keys,
                          "changes_bytes", (json_int_t)b->cs_len);
            if (r && b->parts.n)
                json_object_set_new(r, "participants", codec_encode_parts(&b->parts));
        }
        pthread_mutex_unlock(&b->mu);
        branch_put(p, b);
        if (r)
            return r;
    }
    if (store_ended(p->store, txid, &o, &vote) != TPC_OK) {
        set_error(e, 500, "storage_error", "cannot read the outcome of %s", txid);
        return NULL;
    }
    if (o == RM_NONE) {
        set_error(e, 404, "unknown_branch", "no branch %s here", txid);
        return NULL;
    }
    return json_pack("{s:s,s:s,s:s}", "txid", txid, "state", rm_state_name(o), "vote",
                     msg_value_name(vote));
}

json_t *participant_list_prepared(struct participant *p)
{
    struct table_entry **all;
    size_t i, n = table_snapshot(&p->branches, &all);
    json_t *list = json_array();

    for (i = 0; i < n; i++) {
        struct branch *b = (struct branch *)all[i];

        pthread_mutex_lock(&b->mu);
        if (list && !b->e.gone && b->rm.state == RM_PREPARED)
            json_array_append_new(list, json_pack("{s:s,s:o}", "txid", b->e.id, "participants",
                                                  codec_encode_parts(&b->parts)));
        pthread_mutex_unlock(&b->mu);
        branch_put(p, b);
    }
    free(all);
    return json_pack("{s:o}", "prepared", list ? list : json_array());
}

json_t *participant_health(struct participant *p)
{
    uint64_t groups, jobs;
    size_t n, waiting;
    uint64_t resolved;

    store_group_stats(p->store, &groups, &jobs);
    n = table_size(&p->branches);
    pthread_mutex_lock(&p->mu);
    waiting = p->lock_waiters;
    resolved = p->doubts_resolved;
    pthread_mutex_unlock(&p->mu);
    return json_pack("{s:s,s:s,s:I,s:I,s:I,s:{s:I,s:I,s:I}}", "status", "ok", "name", p->cfg.name,
                     "branches", (json_int_t)n, "waiting_for_locks", (json_int_t)waiting,
                     "in_doubt_resolved", (json_int_t)resolved, "storage", "fsyncs",
                     (json_int_t)store_fsyncs(), "commit_groups", (json_int_t)groups,
                     "durable_jobs", (json_int_t)jobs);
}

void participant_metrics(void *ctx, struct metrics_text *t)
{
    struct participant *p = ctx;
    uint64_t groups, jobs, resolved;

    store_group_stats(p->store, &groups, &jobs);
    pthread_mutex_lock(&p->mu);
    resolved = p->doubts_resolved;
    pthread_mutex_unlock(&p->mu);
    metrics_family(t, "tpc_branches_total", "counter",
                   "Transaction branches ended on this participant, by outcome.");
    metrics_sample(t, "tpc_branches_total", "outcome=\"committed\"", atomic_load(&p->ended[0]));
    metrics_sample(t, "tpc_branches_total", "outcome=\"aborted\"", atomic_load(&p->ended[1]));
    metrics_sample(t, "tpc_branches_total", "outcome=\"read_only\"", atomic_load(&p->ended[2]));
    metrics_counter(t, "tpc_one_phase_commits_total",
                    "Of the committed: the only participant, committed once its vote was chosen.",
                    atomic_load(&p->one_phase));
    metrics_family(t, "tpc_branches_live", "gauge", "Branches open or prepared here now.");
    metrics_sample(t, "tpc_branches_live", NULL, table_size(&p->branches));
    metrics_counter(
        t, "tpc_in_doubt_resolved_total",
        "Prepared branches whose outcome this participant learned by asking the replicas.",
        resolved);
    metrics_histogram(t, "tpc_prepare_duration_seconds",
                      "Prepare calls: the durable prepared record (and, without relay, the vote).",
                      &p->prepare_time);
    metrics_histogram(t, "tpc_commit_duration_seconds",
                      "Applying an outcome to a branch (commit or abort), durably.",
                      &p->outcome_time);
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

/* ---- background: deadlines and in-doubt branches ---- */

struct due {
    char txid[TPC_TXID_MAX + 1];
    bool prepared; /* else: a working branch past its deadline */
    struct msg_parts parts;
    uint32_t replica;
};

static void on_status_answer(void *ctx, uint32_t replica, const struct msg *a)
{
    enum tpc_outcome *o = ctx;

    (void)replica;
    if (a->type == MSG_OUTCOME && *o == TPC_OUTCOME_NONE)
        *o = a->outcome;
}

/* Asks one replica for the outcome of an in-doubt branch; it recovers the transaction if need be.
 */
static enum tpc_outcome ask_outcome(struct participant *p, const struct due *d)
{
    enum tpc_outcome o = TPC_OUTCOME_NONE;
    struct msg q;

    memset(&q, 0, sizeof(q));
    q.type = MSG_STATUS;
    msg_copy_str(q.txid, TPC_TXID_MAX, d->txid);
    msg_copy_str(q.instance, TPC_NAME_MAX, p->cfg.name);
    q.parts = d->parts;
    to_replicas(p, &q, &d->replica, 1, p->cfg.vote_timeout_ms, on_status_answer, &o);
    return o;
}

/* Working branches past their deadline and prepared ones due to ask, read under their locks. */
static size_t collect_due(struct participant *p, struct due *due, size_t cap)
{
    const struct participant_config *cfg = &p->cfg;
    struct table_entry **all;
    size_t i, n = 0, total = table_snapshot(&p->branches, &all);
    int64_t now = mono_ms();

    for (i = 0; i < total; i++) {
        struct branch *b = (struct branch *)all[i];
        struct due *x = &due[n];
        bool working, doubt;

        /* A busy branch (being prepared or applied) is looked at next time. */
        if (n < cap && pthread_mutex_trylock(&b->mu) == 0) {
            working = !b->e.gone && b->rm.state == RM_WORKING && now >= b->deadline;
            doubt = !b->e.gone && b->rm.state == RM_PREPARED && now >= b->next_query;
            if (working || doubt) {
                msg_copy_str(x->txid, TPC_TXID_MAX, b->e.id);
                x->prepared = doubt;
                x->parts = b->parts;
                if (doubt) {
                    /* Round-robin over the replicas, with backoff up to 30 s. */
                    x->replica = cfg->n_replicas ? b->query_tries % cfg->n_replicas : 0;
                    b->query_tries++;
                    b->next_query = now + (int64_t)cfg->doubt_ms *
                                              (b->query_tries < 5 ? (1 << b->query_tries) : 32);
                    if (b->next_query > now + 30000)
                        b->next_query = now + 30000;
                }
                n++;
            }
            pthread_mutex_unlock(&b->mu);
        }
        branch_put(p, b);
    }
    free(all);
    return n;
}

/*
 * A working branch past its deadline aborts on its own (rm.h rule 1), unless it
 * has been prepared meanwhile: checked under the branch's mutex.
 */
static void abort_if_working(struct participant *p, const char *txid)
{
    struct branch *b = branch_get(p, txid, false);
    struct participant_error e;

    if (!b)
        return;
    memset(&e, 0, sizeof(e));
    pthread_mutex_lock(&b->mu);
    if (!b->e.gone && b->rm.state == RM_WORKING && rm_may_abort(&b->rm) &&
        mono_ms() >= b->deadline) {
        struct rm_branch ended;

        if (store_ended(p->store, txid, &ended.state, &ended.vote) == TPC_OK &&
            ended.state != RM_NONE)
            drop_branch(p, b); /* it ended another way: a leftover */
        else if (apply_outcome(p, b, TPC_OUTCOME_ABORTED, &e))
            log_info("%s: not prepared within %u ms: aborted", txid, p->cfg.branch_timeout_ms);
    }
    pthread_mutex_unlock(&b->mu);
    branch_put(p, b);
}

/* Every 50 ms: working branches past their deadline abort; in-doubt ones ask a replica. */
static void background_tick(void *arg)
{
    struct participant *p = arg;
    static struct due due[256];
    struct participant_error e;
    int64_t until = mono_ms() + 500; /* questions beyond this wait for the next tick */
    size_t n, i;

    n = collect_due(p, due, sizeof(due) / sizeof(due[0]));
    /* Local work first: deadlines never wait behind questions to the replicas. */
    for (i = 0; i < n; i++)
        if (!due[i].prepared)
            abort_if_working(p, due[i].txid);
    for (i = 0; i < n && !ticker_stopping(&p->bg) && mono_ms() < until; i++) {
        enum tpc_outcome o;

        if (!due[i].prepared || !p->cfg.n_replicas)
            continue;
        o = ask_outcome(p, &due[i]);
        if (o == TPC_OUTCOME_NONE)
            continue; /* asked again after the backoff */
        memset(&e, 0, sizeof(e));
        json_decref(participant_outcome(p, due[i].txid, o, &e));
        if (e.status && e.status != 409)
            log_warn("%s: cannot apply %s: %s", due[i].txid, msg_outcome_name(o), e.message);
        if (!e.status) {
            log_info("%s: in doubt, learned %s from a replica", due[i].txid, msg_outcome_name(o));
            pthread_mutex_lock(&p->mu);
            p->doubts_resolved++;
            pthread_mutex_unlock(&p->mu);
        }
    }
}

/* ---- start and stop ---- */

/* Restart: prepared branches come back with their locks, in doubt (DESIGN.md section 4). */
static enum tpc_err reload_prepared(struct participant *p, char *err, size_t errlen)
{
    struct store_prepared *list = NULL;
    size_t n = 0, i;
    enum tpc_err rc;

    rc = store_load_prepared(p->store, &list, &n, err, errlen);
    if (rc)
        return rc;
    for (i = 0; i < n && !rc; i++) {
        struct branch *b = branch_get(p, list[i].txid, true);
        struct take_ctx t;

        if (!b) {
            rc = TPC_ERR_NOMEM;
            break;
        }
        memset(&t, 0, sizeof(t));
        t.p = p;
        t.b = b;
        b->rm.state = RM_PREPARED;
        b->rm.vote = TPC_VALUE_PREPARED;
        b->parts = list[i].parts;
        b->changeset = list[i].changeset;
        b->cs_len = list[i].changeset_len;
        list[i].changeset = NULL;
        b->next_query = mono_ms(); /* ask soon */
        if (!take_locks(&t, b->changeset, b->cs_len))
            rc =
                tpc_errbuf_set(err, errlen, TPC_ERR_STATE,
                               "prepared branches %s and %s hold the same row", b->e.id, t.blocker);
        else if (!remember_keys(p, b, &t))
            rc = TPC_ERR_NOMEM;
        free_keys(t.keys, t.n);
        free(t.fresh);
        branch_put(p, b);
    }
    for (i = 0; i < n; i++)
        free(list[i].changeset);
    free(list);
    if (!rc && n)
        log_info("reloaded %zu prepared branch(es); asking the replicas for their outcome", n);
    return rc;
}

enum tpc_err participant_open(const struct participant_config *cfg, struct participant **out,
                              char *err, size_t errlen)
{
    struct store_config sc = {cfg->db_path, cfg->schema_file, cfg->max_rows, cfg->statement_ms};
    struct participant *p;
    enum tpc_err rc;

    *out = NULL;
    p = calloc(1, sizeof(*p));
    if (!p)
        return TPC_ERR_NOMEM;
    p->cfg = *cfg;
    table_init(&p->branches, branch_create, branch_destroy, p);
    pthread_mutex_init(&p->mu, NULL);
    p->pool = http_pool_new(cfg->token);
    p->locks = locks_new();
    if (!p->locks || !p->pool) {
        rc = TPC_ERR_NOMEM;
        goto fail;
    }
    rc = store_open(&sc, &p->store, err, errlen);
    if (rc)
        goto fail;
    rc = reload_prepared(p, err, errlen);
    if (rc)
        goto fail;
    if (ticker_start(&p->bg, 50, background_tick, p) != TPC_OK) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot start the background thread");
        goto fail;
    }
    *out = p;
    return TPC_OK;
fail:
    participant_close(p);
    return rc;
}

void participant_close(struct participant *p)
{
    if (!p)
        return;
    ticker_stop(&p->bg);
    store_close(p->store);
    table_fini(&p->branches);
    http_pool_free(p->pool);
    locks_free(p->locks);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
