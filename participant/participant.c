/*
 * participant.c - the participant's calls (see participant.h): statements of
 * a branch over SQLite, its vote, its outcome, and start and stop (what the
 * participant reports is in participant_report.c). The branch's protocol state and every rule about
 * it live in the participant driver (shared/core/resource.h), run by engine.c; this file keeps what
 * is not protocol: SQL, changesets and row locks (branch.h).
 *
 * Branch life:  exec* -> prepare -> commit | abort     (resource.h has the diagram)
 *
 * Invariants:
 *   1. A branch's row keys are locked from the exec that first changes them
 *      until the write that ends it is durable; so its changeset always
 *      re-applies cleanly on top of committed data, and no update is lost.
 *   2. A statement runs only on a branch the driver holds WORKING, checked
 *      under the branch's mutex; the prepared record is written under that
 *      mutex too, so no statement changes a branch being prepared.
 *   3. An answer to prepare or to an outcome is what the driver sent to its
 *      caller: a vote only once the record behind it is durable, an ACK only
 *      once the outcome is applied and recorded (resource.h rules 1 and 3).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_error.h"
#include "branch.h"
#include "codec.h"
#include "log.h"
#include "participant_int.h"

/* What the driver holds of a branch. */
enum held {
    HELD_WORKING, /* WORKING, no write on its way: it takes statements */
    HELD_OTHER,   /* prepared, or ending */
    HELD_NONE,    /* nothing: it ended (or never began) */
};

/*
 * What the driver holds of txid (with begin: beginning it if it is new and did not end here,
 * to abort on its own unless prepared within timeout ms, 0: --branch-timeout-ms).
 * When not HELD_WORKING, *e says why: branch_not_active or transaction_ended.
 */
static enum held branch_held(struct participant *p, const char *txid, bool begin, uint32_t timeout,
                             uint64_t born, struct api_error *e)
{
    struct nodert_box box = {0};
    const struct resource_branch *rb;
    enum tpc_err rc = TPC_OK;
    enum rm_state st = RM_NONE;
    bool busy = false;

    nodert_enter(&p->eng.rt, &box);
    if (begin)
        rc = resource_begin(&p->eng.drv, txid, timeout, born);
    rb = resource_find(&p->eng.drv, txid);
    if (rb) {
        st = rb->rm.state;
        busy = rb->writing != 0;
    }
    nodert_leave(&p->eng.rt);
    nodert_hand_off(&p->eng.rt, &box);
    if (rc == TPC_OK && rb && st == RM_WORKING && !busy)
        return HELD_WORKING;
    if (rc == TPC_ERR_IO) {
        api_error_set(e, "storage_error", "cannot read how transaction %s ended", txid);
        return HELD_OTHER;
    }
    if (rc == TPC_ERR_EXPIRED) {
        api_error_set(e, "transaction_forgotten",
                      "transaction %s is older than the retention: it may have ended here and "
                      "been forgotten, so it takes no statement",
                      txid);
        return HELD_OTHER;
    }
    if (rb) {
        api_error_set(e, "branch_not_active", "branch %s is %s: it takes no more statements", txid,
                      busy ? "ending" : rm_state_name(st));
        return HELD_OTHER;
    }
    api_error_set(e, "transaction_ended", "transaction %s already ended here", txid);
    return HELD_NONE;
}

/*
 * Takes b out of the table when nothing in it can be needed: the driver holds nothing of the
 * branch any more, or the entry holds no change, no lock and no numbered exec (a statement
 * that finds it gone makes a new one; a prepared branch always has changes). Under b->mu.
 */
static void drop_if_leftover(struct participant *p, struct branch *b)
{
    struct api_error ignored;

    if (b->e.gone)
        return;
    if ((b->cs_len == 0 && b->n_keys == 0 && !b->last_seq) ||
        branch_held(p, b->e.id, false, 0, 0, &ignored) == HELD_NONE)
        branch_end(&p->branches, p->locks, b);
}

/* What an exec numbered seq (0: none) is to branch b. Under b->mu. */
enum seq_verdict {
    SEQ_NEW,    /* run it */
    SEQ_REPEAT, /* the last one again: *answer, or *e, is its first answer */
    SEQ_BAD,    /* out of order, or its number reused for another request: *e */
};

static enum seq_verdict seq_check(const struct branch *b, const struct participant_exec_req *r,
                                  json_t **answer, struct api_error *e)
{
    if (!r->seq)
        return SEQ_NEW;
    if (b->last_seq && r->seq == b->last_seq) {
        if (!b->last_req || strcmp(r->text, b->last_req) != 0) {
            api_error_set(e, "exec_seq_reused",
                          "exec %u of branch %s was another request: a repeat must carry the "
                          "same statements and parameters",
                          r->seq, b->e.id);
            return SEQ_BAD;
        }
        if (b->last_answer && !(*answer = json_deep_copy(b->last_answer)))
            api_error_set(e, "internal", "out of memory");
        else if (!b->last_answer)
            *e = b->last_error;
        return SEQ_REPEAT;
    }
    if (r->seq != b->last_seq + 1) {
        api_error_set(e, "exec_out_of_order", "branch %s takes exec %u next, not %u", b->e.id,
                      b->last_seq + 1, r->seq);
        return SEQ_BAD;
    }
    return SEQ_NEW;
}

/* Keeps the answer of the exec numbered r->seq, for its repeats. Under b->mu. Out of memory,
 * the number is taken all the same (a repeat never runs again): without its statements a
 * repeat is refused as another request, without its answer it gets an internal error. */
static void seq_keep(struct branch *b, const struct participant_exec_req *r, json_t *answer,
                     const struct api_error *e)
{
    if (!r->seq)
        return;
    b->last_seq = r->seq;
    free(b->last_req);
    b->last_req = strdup(r->text);
    json_decref(b->last_answer);
    b->last_answer = answer ? json_deep_copy(answer) : NULL;
    if (!answer)
        b->last_error = *e;
    else if (!b->last_answer)
        api_error_set(&b->last_error, "internal", "the first answer could not be kept");
}

/* The first answer when r repeats the last numbered exec of an existing branch (prepared
 * since, say): true with *out or *e set. */
static bool repeat_of_existing(struct participant *p, const char *txid,
                               const struct participant_exec_req *r, json_t **out,
                               struct api_error *e)
{
    struct branch *b = r->seq ? (struct branch *)table_get(&p->branches, txid, false) : NULL;
    enum seq_verdict v = SEQ_NEW;

    if (!b)
        return false;
    pthread_mutex_lock(&b->mu);
    if (!b->e.gone && b->last_seq && r->seq <= b->last_seq)
        v = seq_check(b, r, out, e);
    pthread_mutex_unlock(&b->mu);
    table_put(&p->branches, &b->e);
    return v != SEQ_NEW;
}

json_t *participant_exec(struct participant *p, const char *txid, json_t *statements,
                         const struct participant_exec_req *req, struct api_error *e)
{
    struct branch_take t;
    struct branch *b = NULL;
    struct timespec deadline;
    json_t *results = NULL, *answer = NULL;
    bool numbered = false;
    void *cs = NULL;
    int cs_len = 0;
    char msg[512];
    int64_t until;
    enum store_fail fail;
    bool waited;
    int tries;

    memset(e, 0, sizeof(*e));
    if (json_array_size(statements) > p->cfg.max_statements) {
        api_error_set(e, "too_many_statements", "at most %u statements per request",
                      p->cfg.max_statements);
        return NULL;
    }
    if (repeat_of_existing(p, txid, req, &answer, e))
        return answer;
    memset(&t, 0, sizeof(t));
    /* The driver says whether the branch takes statements (and begins it if new). */
    if (branch_held(p, txid, true, req->timeout_ms, req->born, e) != HELD_WORKING) {
        /* Prepared since the check above, after the first of a repeat had run: its answer. */
        struct api_error again;

        memset(&again, 0, sizeof(again));
        if (repeat_of_existing(p, txid, req, &answer, &again)) {
            *e = again;
            return answer;
        }
        return NULL;
    }
    /* An entry somebody just took out (an empty one, see drop_if_leftover) is made again. */
    for (tries = 0;; tries++) {
        b = (struct branch *)table_get(&p->branches, txid, true);
        if (!b) {
            api_error_set(e, "internal", "out of memory");
            return NULL;
        }
        pthread_mutex_lock(&b->mu);
        if (!b->e.gone || tries == 3)
            break;
        pthread_mutex_unlock(&b->mu);
        table_put(&p->branches, &b->e);
    }
    t.locks = p->locks;
    t.store = p->store;
    t.b = b;
    /* Asked again under the branch's mutex: it may have been prepared or ended meanwhile.
     * Prepared, its changes and locks stay; ended, this entry is a leftover, and goes. */
    if (b->e.gone) {
        api_error_set(e, "branch_not_active", "branch %s is busy: try again", txid);
        goto out;
    }
    if (branch_held(p, txid, false, 0, 0, e) != HELD_WORKING) {
        drop_if_leftover(p, b);
        goto out;
    }
    switch (seq_check(b, req, &answer, e)) {
    case SEQ_REPEAT:
    case SEQ_BAD:
        goto out;
    case SEQ_NEW:
        break;
    }
    numbered = req->seq != 0;
    until = nodert_now_ms() + p->cfg.lock_timeout_ms;
    for (;;) {
        fail = store_exec(p->store, txid, b->changeset, b->cs_len, statements, branch_take_locks,
                          &t, &results, &cs, &cs_len, msg, sizeof(msg));
        if (fail != STORE_FAIL_LOCKED || t.oom)
            break;
        /* A row or value it changes is locked by another branch: wait for a release, then
         * re-run the statements so they read what that branch committed (invariant 1). */
        deadline.tv_sec = until / 1000;
        deadline.tv_nsec = (until % 1000) * 1000000;
        pthread_mutex_lock(&p->mu);
        p->lock_waiters++;
        p->lock_waits++;
        pthread_mutex_unlock(&p->mu);
        waited = nodert_now_ms() < until && locks_wait(p->locks, t.gen, &deadline);
        pthread_mutex_lock(&p->mu);
        p->lock_waiters--;
        pthread_mutex_unlock(&p->mu);
        if (!waited) {
            api_error_set(e, "lock_timeout",
                          "%s, which these statements need, is locked by transaction %s; still "
                          "locked after %u ms",
                          t.what[0] ? t.what : "a row", t.blocker, p->cfg.lock_timeout_ms);
            goto out;
        }
    }
    switch (fail) {
    case STORE_FAIL_NONE:
        if (!branch_remember_keys(&t)) {
            api_error_set(e, "internal", "out of memory"); /* the new changes are dropped */
            break;
        }
        free(b->changeset);
        b->changeset = cs;
        b->cs_len = cs_len;
        cs = NULL;
        break;
    case STORE_FAIL_SQL:
        api_error_set(e, "sql_error", "%s", msg);
        break;
    case STORE_FAIL_FORBIDDEN:
        api_error_set(e, "forbidden_statement", "%s", msg);
        break;
    case STORE_FAIL_CONSTRAINT:
        api_error_set(e, "constraint_violation", "%s", msg);
        break;
    case STORE_FAIL_ROWS:
        api_error_set(e, "too_many_rows", "%s", msg);
        break;
    case STORE_FAIL_TIMEOUT:
        api_error_set(e, "statement_timeout", "%s", msg);
        break;
    case STORE_FAIL_ENDED:
        api_error_set(e, "transaction_ended", "%s", msg);
        drop_if_leftover(p, b); /* it ended meanwhile */
        break;
    default:
        if (t.rc == TPC_ERR_TOO_BIG)
            api_error_set(e, "sql_error",
                          "a key these statements change is longer than %d bytes and cannot be "
                          "locked",
                          LOCKSET_KEY_MAX);
        else
            api_error_set(e, "internal", "%s",
                          t.oom ? (t.rc == TPC_ERR_NOMEM ? "out of memory"
                                                         : "cannot work out the locks of these "
                                                           "changes")
                                : msg);
        break;
    }
    /* Failed after the last try took its locks (e.g. out of memory copying the changeset):
     * those locks are not the branch's, so they go now (invariant 1). */
    if (fail != STORE_FAIL_NONE && t.fresh)
        for (size_t i = 0; i < t.n; i++)
            if (t.fresh[i])
                locks_release(p->locks, txid, &t.keys[i], 1);
out:
    if (results && !e->status)
        answer = json_pack("{s:s,s:O}", "txid", txid, "results", results);
    if (!answer && !e->status)
        api_error_set(e, "internal", "out of memory");
    if (numbered)
        seq_keep(b, req, answer, e);
    pthread_mutex_unlock(&b->mu);
    table_put(&p->branches, &b->e);
    free(cs);
    branch_take_free(&t);
    json_decref(results);
    return answer;
}

/* ---- voting and outcomes ---- */

/*
 * The error of a prepare or outcome call from the driver's answer (rc, err) when rc is none
 * of the call's own cases; or, when the driver accepted but no answer came back, what says so.
 */
void participant_call_error(struct api_error *e, enum tpc_err rc, const char *err, const char *txid)
{
    if (rc == TPC_ERR_BUSY)
        api_error_set(e, "branch_busy", "%s", err);
    else if (rc == TPC_ERR_IO)
        api_error_set(e, "storage_error", "%s", err);
    else if (rc == TPC_ERR_EXPIRED)
        api_error_set(e, "transaction_forgotten", "%s", err);
    else if (rc)
        api_error_set(e, "internal", "%s", tpc_strerror(rc));
    else
        api_error_set(e, "storage_error", "branch %s: the write behind the answer failed", txid);
}

/* Inside the driver: whether txid has a write on its way. */
static bool writing(struct participant *p, const char *txid)
{
    const struct resource_branch *rb = resource_find(&p->eng.drv, txid);

    return rb && rb->writing;
}

/*
 * Waits, up to until, for somebody to leave the driver, holding neither the branch's mutex
 * (the write waited for may need it) nor the driver's lock; then takes both back, in lock
 * order. False when until passed.
 */
static bool wait_other(struct participant *p, struct branch *b, int64_t until)
{
    struct nodert_box none = {0};
    bool woke;

    if (b)
        pthread_mutex_unlock(&b->mu);
    nodert_enter(&p->eng.rt, &none);
    woke = nodert_wait(&p->eng.rt, &none, until);
    nodert_leave(&p->eng.rt);
    nodert_hand_off(&p->eng.rt, &none);
    if (b)
        pthread_mutex_lock(&b->mu);
    return woke;
}

/*
 * Feeds one request's event to the driver (fn) and carries out what it asks until nothing is
 * left; returns the message the driver sent back to this caller (type 0: none). When a write
 * of another call is on its way, the driver either says TPC_ERR_BUSY or owes this caller an
 * answer that the other call's thread will carry out and keep: either way this waits for that
 * write, up to the vote timeout, and asks again (then the driver answers from what is
 * durable). b, when not NULL, is locked by the caller.
 */
enum tpc_err participant_ask(struct participant *p, struct branch *b, const char *txid,
                             enum tpc_err (*fn)(struct participant *p, const void *arg, char *err,
                                                size_t errlen),
                             const void *arg, struct msg *answer, char *err, size_t errlen)
{
    struct nodert_box box = {0}, answers = {0};
    int64_t until = nodert_now_ms() + p->cfg.vote_timeout_ms;
    enum tpc_err rc;
    bool other;
    size_t i;

    memset(answer, 0, sizeof(*answer));
    for (;;) {
        nodert_enter(&p->eng.rt, &box);
        other = writing(p, txid); /* a write of another call's, not this one's */
        rc = fn(p, arg, err, errlen);
        nodert_leave(&p->eng.rt);
        engine_finish(&p->eng, &box, &answers);
        for (i = 0; i < answers.n; i++)
            if (!answers.items[i].write)
                *answer = answers.items[i].m;
        answers.n = 0;
        if (answer->type || (rc != TPC_ERR_BUSY && (rc || !other)))
            break;
        if (!wait_other(p, b, until))
            break;
    }
    nodert_box_free(&answers);
    return rc;
}

struct prepare_arg {
    const struct msg *prep;
    struct branch *b; /* locked whenever prepare_event runs */
};

static enum tpc_err prepare_event(struct participant *p, const void *arg, char *err, size_t errlen)
{
    const struct prepare_arg *a = arg;
    struct node_addr caller = node_caller(0);
    /* Read now, under the branch's mutex: a wait before may have let a statement run. */
    bool changed = !a->b->e.gone && a->b->cs_len > 0;

    return resource_prepare(&p->eng.drv, &caller, a->prep, true, changed, err, errlen);
}

json_t *participant_prepare(struct participant *p, const struct msg *prep, bool relayed,
                            struct api_error *e)
{
    /* Made if new, so that no first statement can slip in while it votes (invariant 2). */
    struct branch *b = (struct branch *)table_get(&p->branches, prep->txid, true);
    struct prepare_arg a = {prep, NULL};
    uint64_t started = metrics_now_ns();
    struct msg vote;
    char err[256];
    enum tpc_err rc;
    json_t *r = NULL;

    (void)relayed; /* the vote always goes back to the caller, which relays it */
    memset(e, 0, sizeof(*e));
    if (!b) {
        api_error_set(e, "internal", "out of memory");
        return NULL;
    }
    pthread_mutex_lock(&b->mu); /* invariant 2: no statement runs meanwhile */
    a.b = b;
    rc = participant_ask(p, b, prep->txid, prepare_event, &a, &vote, err, sizeof(err));
    if (rc == TPC_ERR_INVALID)
        api_error_set(e, "not_a_participant", "%s", err);
    else if (rc == TPC_ERR_STATE)
        api_error_set(e, "participants_conflict", "%s", err);
    else if (rc || vote.type != MSG_VOTE)
        participant_call_error(e, rc, err, prep->txid);
    else if (!(r = codec_encode(&vote)))
        api_error_set(e, "internal", "cannot encode the vote");
    drop_if_leftover(p, b); /* a vote of a branch that ended (or never began) keeps nothing */
    pthread_mutex_unlock(&b->mu);
    table_put(&p->branches, &b->e);
    metrics_hist_since(&p->prepare_time, started);
    return r;
}

struct outcome_arg {
    const char *txid;
    enum tpc_outcome o;
    bool in_memory; /* out: the driver held the branch (for the error's code) */
};

static enum tpc_err outcome_event(struct participant *p, const void *arg, char *err, size_t errlen)
{
    struct outcome_arg *a = (struct outcome_arg *)arg;
    struct node_addr caller = node_caller(0);

    a->in_memory = resource_find(&p->eng.drv, a->txid) != NULL;
    return resource_outcome(&p->eng.drv, &caller, a->txid, a->o, 0, err, errlen);
}

/* The answer to an outcome as participant_outcome gives it, from what the driver said. */
static json_t *outcome_answer(enum tpc_err rc, const struct outcome_arg *a, const struct msg *ack,
                              const char *err, struct api_error *e)
{
    json_t *r = NULL;

    if (rc == TPC_ERR_PROTOCOL)
        api_error_set(e,
                      !a->in_memory                   ? "outcome_conflict"
                      : a->o == TPC_OUTCOME_COMMITTED ? "not_prepared"
                                                      : "already_committed",
                      "%s", err);
    else if (rc == TPC_ERR_INVALID)
        api_error_set(e, "unknown_branch", "%s", err);
    else if (rc || ack->type != MSG_ACK)
        participant_call_error(e, rc, err, a->txid);
    else if (!(r = codec_encode(ack)))
        api_error_set(e, "internal", "cannot encode the acknowledgement");
    return r;
}

json_t *participant_outcome(struct participant *p, const char *txid, enum tpc_outcome o,
                            struct api_error *e)
{
    struct branch *b = (struct branch *)table_get(&p->branches, txid, false);
    struct outcome_arg a = {txid, o, false};
    struct msg ack;
    char err[256];
    enum tpc_err rc;
    json_t *r;

    memset(e, 0, sizeof(*e));
    if (b)
        pthread_mutex_lock(&b->mu);
    rc = participant_ask(p, b, txid, outcome_event, &a, &ack, err, sizeof(err));
    r = outcome_answer(rc, &a, &ack, err, e);
    if (b) {
        pthread_mutex_unlock(&b->mu);
        table_put(&p->branches, &b->e);
    }
    return r;
}

/* What one outcome of a batch says: its answer (an ack), or {"txid", "error"}. */
static json_t *outcome_result(const char *txid, json_t *ack, const struct api_error *e)
{
    if (ack)
        return ack;
    return json_pack("{s:s, s:i, s:{s:s, s:s}}", "txid", txid, "status", e->status, "error", "code",
                     e->code, "message", e->message);
}

/*
 * Every outcome is fed to the driver in one go, so that their writes go to the store
 * together (engine.c: one group, one fsync). One that has to wait for a write of another
 * call's, or that got no answer of its own (another call for the branch took it over), is asked
 * again alone afterwards (participant_outcome waits, and answers from what is durable).
 */
json_t *participant_outcomes(struct participant *p, const struct participant_outcome_item *items,
                             size_t n, struct api_error *e)
{
    struct nodert_box box = {0}, answers = {0};
    struct outcome_arg *a = calloc(n ? n : 1, sizeof(*a));
    struct msg *acks = calloc(n ? n : 1, sizeof(*acks));
    enum tpc_err *rcs = calloc(n ? n : 1, sizeof(*rcs));
    char(*errs)[256] = calloc(n ? n : 1, sizeof(*errs));
    json_t *results = json_array(), *r = NULL;
    size_t i;

    memset(e, 0, sizeof(*e));
    if (!a || !acks || !rcs || !errs || !results) {
        api_error_set(e, "internal", "out of memory");
        goto out;
    }
    nodert_enter(&p->eng.rt, &box);
    for (i = 0; i < n; i++) {
        struct node_addr caller = node_caller((uint32_t)i);

        a[i].txid = items[i].txid;
        a[i].o = items[i].outcome;
        a[i].in_memory = resource_find(&p->eng.drv, items[i].txid) != NULL;
        rcs[i] = resource_outcome(&p->eng.drv, &caller, items[i].txid, items[i].outcome,
                                  items[i].born, errs[i], sizeof(errs[i]));
    }
    nodert_leave(&p->eng.rt);
    engine_finish(&p->eng, &box, &answers);
    for (i = 0; i < answers.n; i++) {
        const struct nodert_item *it = &answers.items[i];

        /* Another call for the same branch may have taken its answer over (the driver answers
         * the latest asker): an answer counts for the item it is about only. */
        if (!it->write && it->to.kind == NODE_CALLER && it->to.id < n &&
            strcmp(it->m.txid, items[it->to.id].txid) == 0)
            acks[it->to.id] = it->m;
    }
    for (i = 0; i < n; i++) {
        struct api_error ei;
        json_t *one;

        memset(&ei, 0, sizeof(ei));
        if (!acks[i].type && (rcs[i] == TPC_ERR_BUSY || rcs[i] == TPC_OK))
            one = participant_outcome(p, items[i].txid, items[i].outcome, &ei);
        else
            one = outcome_answer(rcs[i], &a[i], &acks[i], errs[i], &ei);
        if (json_array_append_new(results, outcome_result(items[i].txid, one, &ei)) != 0) {
            api_error_set(e, "internal", "out of memory");
            goto out;
        }
    }
    r = json_pack("{s:O}", "results", results);
    if (!r)
        api_error_set(e, "internal", "out of memory");
out:
    nodert_box_free(&answers);
    json_decref(results);
    free(a);
    free(acks);
    free(rcs);
    free(errs);
    return r;
}

/* ---- start and stop ---- */

/* Restart: prepared branches come back with their locks, in doubt (resource.h rule 5). */
static enum tpc_err reload_prepared(struct participant *p, char *err, size_t errlen)
{
    struct store_prepared *list = NULL;
    struct nodert_box box = {0};
    size_t n = 0, i;
    enum tpc_err rc;

    rc = store_load_prepared(p->store, &list, &n, err, errlen);
    if (rc)
        return rc;
    for (i = 0; i < n && !rc; i++) {
        struct branch *b = (struct branch *)table_get(&p->branches, list[i].txid, true);
        struct branch_take t;

        if (!b) {
            rc = TPC_ERR_NOMEM;
            break;
        }
        memset(&t, 0, sizeof(t));
        t.locks = p->locks;
        t.store = p->store;
        t.b = b;
        b->changeset = list[i].changeset;
        b->cs_len = list[i].changeset_len;
        list[i].changeset = NULL;
        if (!store_with_branch(p->store, b->changeset, b->cs_len, branch_take_locks, &t))
            rc = tpc_errbuf_set(err, errlen, TPC_ERR_STATE,
                                t.blocker[0] ? "prepared branches %s and %s hold the same lock"
                                             : "prepared branch %s: its locks cannot be taken%s",
                                b->e.id, t.blocker);
        else if (!branch_remember_keys(&t))
            rc = TPC_ERR_NOMEM;
        branch_take_free(&t);
        table_put(&p->branches, &b->e);
        if (!rc) {
            nodert_enter(&p->eng.rt, &box);
            rc = resource_load(&p->eng.drv, list[i].txid, &list[i].parts, list[i].born);
            nodert_leave(&p->eng.rt);
            if (rc)
                tpc_errbuf_set(err, errlen, rc, "cannot reload prepared branch %s", list[i].txid);
        }
    }
    nodert_box_free(&box);
    for (i = 0; i < n; i++)
        free(list[i].changeset);
    free(list);
    if (!rc && n)
        log_info("reloaded %zu prepared branch(es); asking the replicas for their outcome", n);
    if (!rc)
        rc = participant_reload_heuristics(p, err, errlen);
    return rc;
}

enum tpc_err participant_open(const struct participant_config *cfg, struct participant **out,
                              char *err, size_t errlen)
{
    struct store_config sc = {cfg->db_path, cfg->schema_file, cfg->max_rows, cfg->statement_ms,
                              cfg->retention_ms};
    struct participant *p;
    enum tpc_err rc;

    *out = NULL;
    p = calloc(1, sizeof(*p));
    if (!p)
        return TPC_ERR_NOMEM;
    p->cfg = *cfg;
    table_init(&p->branches, branch_create, branch_destroy, p);
    pthread_mutex_init(&p->mu, NULL);
    p->locks = locks_new();
    if (!p->locks) {
        rc = TPC_ERR_NOMEM;
        goto fail;
    }
    rc = store_open(&sc, &p->store, err, errlen);
    if (rc)
        goto fail;
    rc = engine_open(&p->eng, &p->cfg, p->store, &p->branches, p->locks, err, errlen);
    if (rc)
        goto fail;
    rc = reload_prepared(p, err, errlen);
    if (rc)
        goto fail;
    rc = engine_start(&p->eng, err, errlen);
    if (rc)
        goto fail;
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
    engine_close(&p->eng);
    store_close(p->store);
    table_fini(&p->branches);
    locks_free(p->locks);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
