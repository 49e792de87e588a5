/*
 * acc_store.c - see acc_store.h.
 *
 *   acceptor(txid, instance, mbal_round, mbal_replica, bal_round, bal_replica, val,
 *            participants, updated_at, born)         one row per instance (TLA+ aState),
 *                                                  while the transaction is undecided here
 *   decision(txid, outcome, participants, decided_at, told, born)   told: 0 while this
 *                                                  replica, the leader, still owes
 *                                                  participants the outcome (resumed after a
 *                                                  restart), 1 once it does not, 2 for one
 *                                                  learned from another replica
 *   meta(key, value)                                 'round': highest recovery round used;
 *                                                  'horizon': the highest horizon used
 *   begun(txid, begun_at)                            clients' own txids begun here (once each)
 *
 * What is forgotten, and when (DESIGN.md section 11): a transaction's acceptor rows once its
 * decision is recorded here (the decision answers for them, acceptor.h rule 4); everything
 * about a transaction born before the horizon, now - retention (never lower than before),
 * except a decision this replica still owes participants.
 */
#include "acc_store.h"

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acceptor.h"
#include "codec.h"
#include "failpoint.h"
#include "fsync_vfs.h"
#include "groupcommit.h"
#include "horizon_store.h"
#include "log.h"
#include "sqlite_reader.h"
#include "stmt_cache.h"

#include "acc_store_int.h"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS acceptor(txid TEXT NOT NULL, instance TEXT NOT NULL,"
    " mbal_round INTEGER NOT NULL, mbal_replica INTEGER NOT NULL,"
    " bal_round INTEGER NOT NULL, bal_replica INTEGER NOT NULL, val TEXT NOT NULL,"
    " participants TEXT, updated_at INTEGER NOT NULL, born INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(txid, instance));"
    "CREATE TABLE IF NOT EXISTS decision(txid TEXT PRIMARY KEY, outcome TEXT NOT NULL,"
    " participants TEXT, decided_at INTEGER NOT NULL, told INTEGER NOT NULL,"
    " born INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS decision_at ON decision(decided_at);"
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS begun(txid TEXT PRIMARY KEY, begun_at INTEGER NOT NULL);";

/* Indexes on columns a state file made before they existed gets by ALTER TABLE. */
static const char gc_index_sql[] = "CREATE INDEX IF NOT EXISTS decision_born ON decision(born);"
                                   "CREATE INDEX IF NOT EXISTS begun_at ON begun(begun_at);";

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum tpc_err acc_store_open(const char *path, uint32_t self, uint32_t n_replicas,
                            int64_t retention_ms, struct acc_store **out, char *err, size_t errlen)
{
    struct acc_store *s;
    char *msg = NULL;
    enum tpc_err rc = TPC_OK;

    *out = NULL;
    if (fsync_vfs_register() != SQLITE_OK)
        return tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot register the SQLite VFS shim");
    s = calloc(1, sizeof(*s));
    if (!s)
        return TPC_ERR_NOMEM;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->rmu, NULL);
    pthread_mutex_init(&s->smu, NULL);
    s->self = self;
    s->n_replicas = n_replicas;
    s->retention_ms = retention_ms;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, FSYNC_VFS_NAME) !=
        SQLITE_OK) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot open %s: %s", path,
                            s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    /* WAL with synchronous=FULL: a COMMIT is on disk when it returns. The WAL is cut back
     * to 4 MiB after each checkpoint that empties it, so it does not keep its largest size. */
    if (sqlite3_exec(s->db,
                     "PRAGMA page_size=1024; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                     "PRAGMA busy_timeout=5000; PRAGMA journal_size_limit=4194304;",
                     NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(s->db, schema_sql, NULL, NULL, &msg) != SQLITE_OK ||
        horizon_store_add_column(s->db, "acceptor", "born", "INTEGER NOT NULL DEFAULT 0") !=
            SQLITE_OK ||
        horizon_store_add_column(s->db, "decision", "born", "INTEGER NOT NULL DEFAULT 0") !=
            SQLITE_OK ||
        sqlite3_exec(s->db, gc_index_sql, NULL, NULL, &msg) != SQLITE_OK) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_IO, "%s: %s", path, msg ? msg : "?");
        sqlite3_free(msg);
        goto fail;
    }
    rc = sqlite_reader_open(path, &s->rdb, err, errlen);
    if (rc == TPC_OK)
        rc = sqlite_reader_open(path, &s->sdb, err, errlen);
    if (rc)
        goto fail;
    stmt_cache_init(&s->wstmts, s->db);
    stmt_cache_init(&s->rstmts, s->rdb);
    horizon_store_init(&s->horizon, s->db, "meta", retention_ms);
    s->horizon_up = true;
    /* A state file of an older version kept acceptor records of decided transactions: the
     * decision answers for them now (acceptor.h rule 4), and they would never expire (no
     * born). Idempotent, and quick once done. */
    if (sqlite3_exec(s->db, "DELETE FROM acceptor WHERE txid IN (SELECT txid FROM decision)", NULL,
                     NULL, &msg) != SQLITE_OK) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_IO, "%s: %s", path, msg ? msg : "?");
        sqlite3_free(msg);
        goto fail;
    }
    if (groupcommit_start(s->db, &s->mu, &s->gc) != TPC_OK) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot start the group commit");
        goto fail;
    }
    *out = s;
    return TPC_OK;
fail:
    acc_store_close(s);
    return rc;
}

void acc_store_close(struct acc_store *s)
{
    if (!s)
        return;
    groupcommit_stop(s->gc);
    stmt_cache_fini(&s->wstmts);
    stmt_cache_fini(&s->rstmts);
    sqlite3_close(s->rdb);
    sqlite3_close(s->sdb);
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->smu);
    if (s->horizon_up)
        horizon_store_fini(&s->horizon);
    pthread_mutex_destroy(&s->rmu);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static enum tpc_value value_of(const char *t)
{
    if (t && strcmp(t, "prepared") == 0)
        return TPC_VALUE_PREPARED;
    if (t && strcmp(t, "aborted") == 0)
        return TPC_VALUE_ABORTED;
    return TPC_VALUE_NONE;
}

static enum tpc_err parts_from_text(const char *text, struct msg_parts *parts)
{
    json_t *a;
    enum tpc_err rc;

    memset(parts, 0, sizeof(*parts));
    if (!text)
        return TPC_OK;
    a = json_loads(text, 0, NULL);
    rc = a ? codec_decode_parts(a, parts, NULL, 0) : TPC_ERR_INVALID;
    json_decref(a);
    return rc;
}

/* text of a participant list (malloc'd), or NULL for none */
static char *parts_to_text(const struct msg_parts *parts)
{
    json_t *a = parts->n ? codec_encode_parts(parts) : NULL;
    char *t = a ? json_dumps(a, JSON_COMPACT) : NULL;

    json_decref(a);
    return t;
}

static const char sql_load[] = "SELECT mbal_round, mbal_replica, bal_round, bal_replica, val, "
                               "participants, born FROM acceptor WHERE txid = ? AND instance = ?";
static const char sql_save[] =
    "INSERT OR REPLACE INTO acceptor(txid, instance, mbal_round, mbal_replica, bal_round, "
    "bal_replica, val, participants, updated_at, born) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char sql_forget_records[] = "DELETE FROM acceptor WHERE txid = ?";
static const char sql_decided[] = "SELECT outcome, born FROM decision WHERE txid = ?";
static const char sql_take_over[] =
    "UPDATE decision SET participants = ?, told = 0, born = max(born, ?) "
    "WHERE txid = ? AND (participants IS NULL OR told = 2)";
static const char sql_forget_decision[] = "DELETE FROM decision WHERE txid = ?";
static const char sql_decide[] = "INSERT INTO decision(txid, outcome, participants, decided_at, "
                                 "told, born) VALUES (?, ?, ?, ?, ?, ?)";
static const char sql_told[] = "UPDATE decision SET told = 1 WHERE txid = ?";
static const char sql_decision[] =
    "SELECT outcome, participants, born FROM decision WHERE txid = ?";
static const char sql_parts[] = "SELECT participants, born FROM acceptor WHERE txid = ? AND "
                                "participants IS NOT NULL LIMIT 1";

/* Loads one instance's record (all zero when none); under the DB mutex. */
static enum tpc_err load_record(struct acc_store *s, const char *txid, const char *instance,
                                struct acceptor_record *r)
{
    sqlite3_stmt *st = NULL;
    enum tpc_err rc = TPC_OK;
    int step;

    memset(r, 0, sizeof(*r));
    if (!(st = stmt_get(&s->wstmts, sql_load)))
        return TPC_ERR_IO;
    sqlite3_bind_text(st, 1, txid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, instance, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        r->mbal.round = (uint64_t)sqlite3_column_int64(st, 0);
        r->mbal.replica = (uint32_t)sqlite3_column_int64(st, 1);
        r->bal.round = (uint64_t)sqlite3_column_int64(st, 2);
        r->bal.replica = (uint32_t)sqlite3_column_int64(st, 3);
        r->val = value_of((const char *)sqlite3_column_text(st, 4));
        rc = parts_from_text((const char *)sqlite3_column_text(st, 5), &r->parts);
        r->born = (uint64_t)sqlite3_column_int64(st, 6);
    } else if (step != SQLITE_DONE) {
        rc = TPC_ERR_IO;
    }
    stmt_done(st);
    return rc;
}

static enum tpc_err save_record(struct acc_store *s, const char *txid, const char *instance,
                                const struct acceptor_record *r)
{
    sqlite3_stmt *st = NULL;
    char *parts = parts_to_text(&r->parts);
    int step = SQLITE_ERROR;

    if ((st = stmt_get(&s->wstmts, sql_save)) != NULL) {
        sqlite3_bind_text(st, 1, txid, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, instance, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)r->mbal.round);
        sqlite3_bind_int64(st, 4, r->mbal.replica);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)r->bal.round);
        sqlite3_bind_int64(st, 6, r->bal.replica);
        sqlite3_bind_text(st, 7, msg_value_name(r->val), -1, SQLITE_STATIC);
        if (parts)
            sqlite3_bind_text(st, 8, parts, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 9, now_ms());
        sqlite3_bind_int64(st, 10, (sqlite3_int64)r->born);
        step = sqlite3_step(st);
    }
    stmt_done(st);
    free(parts);
    return step == SQLITE_DONE ? TPC_OK : TPC_ERR_IO;
}

/* The decision recorded for txid (TPC_OUTCOME_NONE: none) and its born, on the writer's
 * connection. */
static enum tpc_err decided_of(struct acc_store *s, const char *txid, enum tpc_outcome *o,
                               uint64_t *born)
{
    sqlite3_stmt *st = stmt_get(&s->wstmts, sql_decided);
    int step;

    *o = TPC_OUTCOME_NONE;
    *born = 0;
    if (!st)
        return TPC_ERR_IO;
    sqlite3_bind_text(st, 1, txid, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *o = strcmp((const char *)sqlite3_column_text(st, 0), "committed") == 0
                 ? TPC_OUTCOME_COMMITTED
                 : TPC_OUTCOME_ABORTED;
        *born = (uint64_t)sqlite3_column_int64(st, 1);
    }
    stmt_done(st);
    return step == SQLITE_ROW || step == SQLITE_DONE ? TPC_OK : TPC_ERR_IO;
}

uint64_t acc_store_horizon(struct acc_store *s)
{
    return horizon_store_now(&s->horizon);
}

/* ---- durable writes, inside the group transaction ---- */

static bool run_handle(struct acc_store *s, struct acc_op *op, sqlite3 *db, char *gerr, size_t gl)
{
    struct acceptor_record cur, next;
    enum acceptor_action action;
    enum tpc_outcome decided;
    uint64_t horizon = acc_store_horizon(s), decided_born;
    char err[128];
    size_t i;

    for (i = 0; i < op->n; i++) {
        const struct msg *m = &op->in[i];
        enum tpc_err rc;

        memset(&op->out[i], 0, sizeof(op->out[i]));
        err[0] = '\0';
        if (m->type != MSG_PHASE1A && m->type != MSG_PHASE2A) {
            rc = TPC_ERR_INVALID;
        } else if ((rc = decided_of(s, m->txid, &decided, &decided_born)) != TPC_OK ||
                   (rc = load_record(s, m->txid, m->instance, &cur)) != TPC_OK) {
            snprintf(gerr, gl, "cannot read acceptor state: %s", sqlite3_errmsg(db));
            return false;
        } else {
            rc = acceptor_handle(&cur, decided, decided_born, horizon, m, s->self, s->n_replicas,
                                 &next, &op->out[i], &action, err, sizeof(err));
        }
        if (rc) {
            memset(&op->out[i], 0, sizeof(op->out[i])); /* refused: no answer, nothing stored */
            log_debug("%s: %s refused by the acceptor: %s", m->txid, msg_type_name(m->type),
                      err[0] ? err : "an acceptor takes phase1a and phase2a");
            continue;
        }
        if (action == ACCEPTOR_PERSIST_THEN_REPLY &&
            save_record(s, m->txid, m->instance, &next) != TPC_OK) {
            snprintf(gerr, gl, "cannot write acceptor state: %s", sqlite3_errmsg(db));
            return false;
        }
    }
    return true;
}

static bool run_round(struct acc_op *op, sqlite3 *db, char *gerr, size_t gl)
{
    sqlite3_stmt *st = NULL;
    uint64_t cur = 0;
    bool ok = false;

    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'round'", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        cur = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    op->round = cur + 1 > op->round ? cur + 1 : op->round;
    if (op->round > BALLOT_ROUND_MAX) {
        snprintf(gerr, gl, "recovery rounds exhausted");
        return false;
    }
    if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta(key, value) VALUES ('round', ?)", -1,
                           &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)op->round);
        ok = sqlite3_step(st) == SQLITE_DONE;
    }
    sqlite3_finalize(st);
    return ok;
}

static bool run_begun(struct acc_op *op, sqlite3 *db, char *gerr, size_t gl)
{
    sqlite3_stmt *st = NULL;
    enum tpc_outcome decided = TPC_OUTCOME_NONE;
    uint64_t born;
    bool ok = false;

    /* A txid whose decision is still kept is not fresh, even once its begun row is gone. */
    if (decided_of(op->store, op->txid, &decided, &born) != TPC_OK) {
        snprintf(gerr, gl, "sqlite: %s", sqlite3_errmsg(db));
        return false;
    }
    if (decided != TPC_OUTCOME_NONE) {
        op->fresh = false;
        return true;
    }
    if (sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO begun(txid, begun_at) VALUES (?, ?)", -1, &st,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, op->txid, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now_ms());
        ok = sqlite3_step(st) == SQLITE_DONE;
        op->fresh = ok && sqlite3_changes(db) == 1;
    }
    sqlite3_finalize(st);
    if (!ok)
        snprintf(gerr, gl, "sqlite: %s", sqlite3_errmsg(db));
    return ok;
}

/* Runs sql on the writer's connection with txid as its one parameter. */
static bool run_txid(struct acc_store *s, const char *sql, const char *txid)
{
    sqlite3_stmt *st = stmt_get(&s->wstmts, sql);
    int step = SQLITE_ERROR;

    if (st) {
        sqlite3_bind_text(st, 1, txid, -1, SQLITE_STATIC);
        step = sqlite3_step(st);
    }
    stmt_done(st);
    return step == SQLITE_DONE;
}

/*
 * Records a decision unless one is: TPC_OK (also when the same one is), TPC_ERR_PROTOCOL
 * (another one is recorded, or one of another born that is not expired), or TPC_ERR_IO. A
 * leader's own decision (parts given, not told) over the same outcome learned from another
 * replica takes the row over: it owes the telling now (replica.h rule 2), and a restart must
 * find that (io->untold). A learned one keeps the list its acceptor's records had, for status
 * answers. Once the decision is recorded, the acceptor's records of the transaction go: the
 * decision answers for them (acceptor.h rule 4).
 */
static enum tpc_err insert_decision(struct acc_store *s, const char *txid, enum tpc_outcome o,
                                    const char *parts, int told, uint64_t born)
{
    sqlite3_stmt *st = NULL;
    char *kept = NULL;
    enum tpc_outcome had;
    uint64_t had_born;
    enum tpc_err rc = TPC_ERR_IO;
    int step = SQLITE_ERROR;

    if (decided_of(s, txid, &had, &had_born) != TPC_OK)
        return TPC_ERR_IO;
    if (had != TPC_OUTCOME_NONE && had_born && born && had_born != born) {
        /* Another transaction of the same txid (begun again): its decision is dead once it
         * expired, and gives way; while it lives, this one is refused. */
        if (!msg_expired(had_born, acc_store_horizon(s)))
            return TPC_ERR_PROTOCOL;
        if (!run_txid(s, sql_forget_decision, txid))
            return TPC_ERR_IO;
        had = TPC_OUTCOME_NONE;
    }
    if (had != TPC_OUTCOME_NONE) {
        if (had != o)
            return TPC_ERR_PROTOCOL;
        if (parts && !told && (st = stmt_get(&s->wstmts, sql_take_over)) != NULL) {
            sqlite3_bind_text(st, 1, parts, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, (sqlite3_int64)born);
            sqlite3_bind_text(st, 3, txid, -1, SQLITE_STATIC);
            step = sqlite3_step(st);
            stmt_done(st);
            if (step != SQLITE_DONE)
                return TPC_ERR_IO;
        }
        return run_txid(s, sql_forget_records, txid) ? TPC_OK : TPC_ERR_IO;
    }
    if (!parts && (st = stmt_get(&s->wstmts, sql_parts)) != NULL) {
        sqlite3_bind_text(st, 1, txid, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            kept = strdup((const char *)sqlite3_column_text(st, 0));
        stmt_done(st);
    }
    if ((st = stmt_get(&s->wstmts, sql_decide)) != NULL) {
        sqlite3_bind_text(st, 1, txid, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, msg_outcome_name(o), -1, SQLITE_STATIC);
        if (parts || kept)
            sqlite3_bind_text(st, 3, parts ? parts : kept, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, now_ms());
        sqlite3_bind_int(st, 5, told);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)born);
        step = sqlite3_step(st);
    }
    stmt_done(st);
    free(kept);
    if (step == SQLITE_DONE && run_txid(s, sql_forget_records, txid))
        rc = TPC_OK;
    return rc;
}

static bool run_learned(struct acc_op *op)
{
    size_t i;

    for (i = 0; i < op->n; i++) {
        /* told 2: learned, nothing owed here (1 in files of older versions, with no list) */
        enum tpc_err rc =
            insert_decision(op->store, op->in[i].txid, op->in[i].outcome, NULL, 2, op->in[i].born);

        if (rc == TPC_ERR_IO)
            return false;
        if (rc == TPC_ERR_PROTOCOL) /* one bad message does not lose the others */
            log_error("%s: conflicting decision %s received", op->in[i].txid,
                      msg_outcome_name(op->in[i].outcome));
    }
    return true;
}

static bool run_told(struct acc_op *op)
{
    sqlite3_stmt *st = stmt_get(&op->store->wstmts, sql_told);
    size_t i;

    for (i = 0; st && i < op->n; i++) {
        sqlite3_bind_text(st, 1, op->told[i], -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
            stmt_done(st);
            return false;
        }
        sqlite3_reset(st);
    }
    stmt_done(st);
    return st != NULL;
}

static bool run_op(struct gc_job *g, sqlite3 *db)
{
    struct acc_op *op = g->arg;
    struct acc_store *s = op->store;

    switch (op->kind) {
    case ACC_OP_HANDLE:
        return run_handle(s, op, db, g->err, sizeof(g->err));
    case ACC_OP_BEGIN:
        return run_begun(op, db, g->err, sizeof(g->err));
    case ACC_OP_ROUND:
        return run_round(op, db, g->err, sizeof(g->err));
    case ACC_OP_DECISION:
        g->rc = insert_decision(s, op->txid, op->outcome, op->parts_text, !op->parts.n, op->born);
        if (g->rc == TPC_ERR_PROTOCOL)
            snprintf(g->err, sizeof(g->err), "%s: another decision is recorded", op->txid);
        return g->rc == TPC_OK;
    case ACC_OP_LEARNED:
        return run_learned(op);
    case ACC_OP_TOLD:
        return run_told(op);
    case ACC_OP_COLLECT:
        return acc_collect(s, op, db, g->err, sizeof(g->err));
    }
    return false;
}

/* What every op's result is once its group is done. */
static void op_result(struct acc_op *op)
{
    size_t i;

    op->rc = op->gc.rc;
    free(op->parts_text);
    op->parts_text = NULL;
    if (op->kind == ACC_OP_HANDLE) {
        if (op->rc) /* nothing is durable, so nothing may be answered */
            for (i = 0; i < op->n; i++)
                memset(&op->out[i], 0, sizeof(op->out[i]));
        else
            failpoint("acceptor-after-persist");
    }
    if (op->kind == ACC_OP_ROUND && op->rc)
        op->round = 0;
    if (op->kind == ACC_OP_BEGIN && op->rc)
        op->fresh = false;
    if (op->rc && op->gc.err[0])
        log_error("store: %s", op->gc.err);
}

static void op_done(struct gc_job *g)
{
    struct acc_op *op = g->arg;

    op_result(op);
    op->done(op);
}

/* Fills op's job; false (op->rc set) when there is nothing to write or no memory. */
static bool op_prepare(struct acc_store *s, struct acc_op *op)
{
    memset(&op->gc, 0, sizeof(op->gc));
    op->gc.run = run_op;
    op->gc.arg = op;
    op->store = s;
    op->rc = TPC_OK;
    op->parts_text = NULL;
    if (op->kind == ACC_OP_DECISION && op->parts.n &&
        !(op->parts_text = parts_to_text(&op->parts))) {
        op->rc = TPC_ERR_NOMEM;
        return false;
    }
    return true;
}

void acc_store_post(struct acc_store *s, struct acc_op *op)
{
    if (!op_prepare(s, op)) {
        op->done(op);
        return;
    }
    op->gc.done = op_done;
    groupcommit_post(s->gc, &op->gc);
}

enum tpc_err acc_store_run(struct acc_store *s, struct acc_op *op)
{
    if (!op_prepare(s, op))
        return op->rc;
    groupcommit_submit(s->gc, &op->gc);
    op_result(op);
    return op->rc;
}

size_t acc_store_untold(struct acc_store *s, const char *after, struct node_txn *out, size_t cap)
{
    sqlite3_stmt *st = NULL;
    size_t n = 0;

    pthread_mutex_lock(&s->rmu);
    if (sqlite3_prepare_v2(s->rdb,
                           "SELECT txid, outcome, participants, born FROM decision WHERE told = 0 "
                           "AND participants IS NOT NULL AND txid > ? ORDER BY txid LIMIT ?",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, after, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)cap);
        while (n < cap && sqlite3_step(st) == SQLITE_ROW) {
            const char *txid = (const char *)sqlite3_column_text(st, 0);

            if (!txid || msg_copy_str(out[n].txid, TPC_TXID_MAX, txid) != TPC_OK ||
                parts_from_text((const char *)sqlite3_column_text(st, 2), &out[n].parts) !=
                    TPC_OK ||
                !out[n].parts.n)
                continue;
            out[n].outcome = strcmp((const char *)sqlite3_column_text(st, 1), "committed") == 0
                                 ? TPC_OUTCOME_COMMITTED
                                 : TPC_OUTCOME_ABORTED;
            out[n].born = (uint64_t)sqlite3_column_int64(st, 3);
            n++;
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->rmu);
    return n;
}

enum tpc_err acc_store_decision(struct acc_store *s, const char *txid, enum tpc_outcome *o,
                                struct msg_parts *parts, uint64_t *born)
{
    sqlite3_stmt *st = NULL;
    enum tpc_err rc = TPC_OK;
    int step;

    *o = TPC_OUTCOME_NONE;
    if (born)
        *born = 0;
    if (parts)
        memset(parts, 0, sizeof(*parts));
    pthread_mutex_lock(&s->rmu);
    if (!(st = stmt_get(&s->rstmts, sql_decision))) {
        rc = TPC_ERR_IO;
        goto out;
    }
    sqlite3_bind_text(st, 1, txid, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *o = strcmp((const char *)sqlite3_column_text(st, 0), "committed") == 0
                 ? TPC_OUTCOME_COMMITTED
                 : TPC_OUTCOME_ABORTED;
        if (parts)
            parts_from_text((const char *)sqlite3_column_text(st, 1), parts);
        if (born)
            *born = (uint64_t)sqlite3_column_int64(st, 2);
    } else if (step != SQLITE_DONE) {
        rc = TPC_ERR_IO;
    }
out:
    stmt_done(st);
    pthread_mutex_unlock(&s->rmu);
    return rc;
}

enum tpc_err acc_store_parts(struct acc_store *s, const char *txid, struct msg_parts *parts,
                             uint64_t *born)
{
    sqlite3_stmt *st = NULL;
    enum tpc_err rc = TPC_OK;

    memset(parts, 0, sizeof(*parts));
    *born = 0;
    pthread_mutex_lock(&s->rmu);
    if (!(st = stmt_get(&s->rstmts, sql_parts))) {
        rc = TPC_ERR_IO;
    } else {
        sqlite3_bind_text(st, 1, txid, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            rc = parts_from_text((const char *)sqlite3_column_text(st, 0), parts);
            *born = (uint64_t)sqlite3_column_int64(st, 1);
        }
    }
    stmt_done(st);
    pthread_mutex_unlock(&s->rmu);
    return rc;
}

size_t acc_store_stale(struct acc_store *s, int64_t age_ms, struct node_txn *out, size_t cap)
{
    sqlite3_stmt *st = NULL;
    size_t n = 0;

    pthread_mutex_lock(&s->smu);
    if (sqlite3_prepare_v2(s->sdb,
                           "SELECT a.txid, max(a.participants), max(a.updated_at), max(a.born) "
                           "FROM acceptor a "
                           "WHERE NOT EXISTS (SELECT 1 FROM decision d WHERE d.txid = a.txid) "
                           "GROUP BY a.txid HAVING max(a.updated_at) <= ? LIMIT ?",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, now_ms() - age_ms);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)cap);
        while (n < cap && sqlite3_step(st) == SQLITE_ROW) {
            const char *txid = (const char *)sqlite3_column_text(st, 0);

            if (!txid || msg_copy_str(out[n].txid, TPC_TXID_MAX, txid) != TPC_OK ||
                parts_from_text((const char *)sqlite3_column_text(st, 1), &out[n].parts) !=
                    TPC_OK ||
                out[n].parts.n == 0)
                continue; /* no participant list known: nothing to recover with */
            out[n].born = (uint64_t)sqlite3_column_int64(st, 3);
            n++;
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->smu);
    return n;
}

void acc_store_interrupt_scan(struct acc_store *s)
{
    sqlite3_interrupt(s->sdb);
}

void acc_store_recent_decisions(struct acc_store *s, enum tpc_outcome only, size_t limit,
                                void (*fn)(void *ctx, const char *txid, enum tpc_outcome o,
                                           int64_t at_ms),
                                void *ctx)
{
    sqlite3_stmt *st = NULL;

    pthread_mutex_lock(&s->rmu);
    if (sqlite3_prepare_v2(s->rdb,
                           "SELECT txid, outcome, decided_at FROM decision WHERE ?1 IS NULL OR "
                           "outcome = ?1 ORDER BY decided_at DESC LIMIT ?2",
                           -1, &st, NULL) == SQLITE_OK) {
        if (only != TPC_OUTCOME_NONE)
            sqlite3_bind_text(st, 1, msg_outcome_name(only), -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *o = (const char *)sqlite3_column_text(st, 1);

            fn(ctx, (const char *)sqlite3_column_text(st, 0),
               strcmp(o, "committed") == 0 ? TPC_OUTCOME_COMMITTED : TPC_OUTCOME_ABORTED,
               sqlite3_column_int64(st, 2));
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->rmu);
}

void acc_store_undecided(struct acc_store *s, size_t limit,
                         void (*fn)(void *ctx, const char *txid, const struct msg_parts *parts,
                                    uint64_t born),
                         void *ctx)
{
    sqlite3_stmt *st = NULL;
    struct msg_parts parts;
    uint64_t horizon = acc_store_horizon(s);

    pthread_mutex_lock(&s->rmu);
    /* Only those with a participant list and not past the horizon (msg_expired), before the
     * limit: records the GC has yet to remove must not crowd out the ones in doubt. */
    if (sqlite3_prepare_v2(
            s->rdb,
            "SELECT a.txid, max(a.participants), max(a.born) FROM acceptor a "
            "WHERE NOT EXISTS (SELECT 1 FROM decision d WHERE d.txid = a.txid) "
            "GROUP BY a.txid HAVING max(a.participants) IS NOT NULL AND "
            "(coalesce(max(a.born), 0) = 0 OR max(a.born) >= ?2) ORDER BY a.txid LIMIT ?1",
            -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)limit);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)horizon);
        while (sqlite3_step(st) == SQLITE_ROW) {
            /* A row whose participants do not parse is passed without them. */
            if (parts_from_text((const char *)sqlite3_column_text(st, 1), &parts) != TPC_OK)
                memset(&parts, 0, sizeof(parts));
            fn(ctx, (const char *)sqlite3_column_text(st, 0), &parts,
               (uint64_t)sqlite3_column_int64(st, 2));
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->rmu);
}

void acc_store_stats(struct acc_store *s, uint64_t *fsyncs, uint64_t *groups, uint64_t *jobs)
{
    *fsyncs = fsync_vfs_count();
    groupcommit_stats(s->gc, groups, jobs);
}
