/*
 * store.c - the participant's database (see store.h for the model).
 *
 * Invariants:
 *   1. Every SQLite call runs under st->mu; st->in_branch is true only while
 *      a branch's statements are prepared and stepped, and the authorizer
 *      refuses everything a branch may not do only then.
 *   2. store_exec never commits: it ends in ROLLBACK, whatever happens.
 *   3. Durable steps go through the shared group committer (groupcommit.h).
 */
#define SQLITE_ENABLE_SESSION 1

#include "store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "fsync_vfs.h"
#include "groupcommit.h"
#include "horizon_store.h"
#include "log.h"

#include "sqlite_reader.h"
#include "store_int.h"

static const char bookkeeping_sql[] =
    "CREATE TABLE tpc_prepared(txid TEXT PRIMARY KEY, changeset BLOB NOT NULL,"
    " participants TEXT NOT NULL, prepared_at INTEGER NOT NULL, born INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE tpc_outcome(txid TEXT PRIMARY KEY, outcome TEXT NOT NULL,"
    " vote TEXT NOT NULL, decided_at INTEGER NOT NULL, born INTEGER NOT NULL DEFAULT 0);";

/* What a database made by an older version lacks, added at every start (idempotent). */
static const char upgrade_sql[] =
    "CREATE TABLE IF NOT EXISTS tpc_meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS tpc_outcome_at ON tpc_outcome(decided_at);"
    "CREATE INDEX IF NOT EXISTS tpc_outcome_heuristic ON tpc_outcome(outcome) "
    "WHERE outcome LIKE 'heuristic%';";

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t store_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* SQLite calls this every few thousand instructions: a branch's statements stop at their
 * deadline (the database mutex must not be held without bound). */
static int progress(void *ud)
{
    struct store *st = ud;

    return st->in_branch && store_mono_ms() > st->exec_deadline;
}

bool store_is_reserved(const char *table)
{
    return sqlite3_strnicmp(table, "tpc_", 4) == 0 || sqlite3_strnicmp(table, "sqlite_", 7) == 0;
}

static int authorize_branch(struct store *st, int action, const char *a1, const char *a2);

/*
 * The SQL functions a branch may call (http-api.md): SQLite's scalar, aggregate, window, date,
 * math and JSON functions (not the table-valued ones). Left out: whatever loads code, reads files
 * or exposes the process (load_extension, fts3_tokenizer, which returns a pointer, sqlite_offset,
 * the sqlite_compileoption_* ones), and any function an extension adds.
 */
static const char *const allowed_functions[] = {"abs",
                                                "acos",
                                                "acosh",
                                                "asin",
                                                "asinh",
                                                "atan",
                                                "atan2",
                                                "atanh",
                                                "avg",
                                                "ceil",
                                                "ceiling",
                                                "changes",
                                                "char",
                                                "coalesce",
                                                "concat",
                                                "concat_ws",
                                                "cos",
                                                "cosh",
                                                "count",
                                                "cume_dist",
                                                "date",
                                                "datetime",
                                                "degrees",
                                                "dense_rank",
                                                "exp",
                                                "first_value",
                                                "floor",
                                                "format",
                                                "glob",
                                                "group_concat",
                                                "hex",
                                                "ifnull",
                                                "iif",
                                                "instr",
                                                "json",
                                                "json_array",
                                                "json_array_length",
                                                "json_extract",
                                                "json_group_array",
                                                "json_group_object",
                                                "json_insert",
                                                "json_object",
                                                "json_patch",
                                                "json_quote",
                                                "json_remove",
                                                "json_replace",
                                                "json_set",
                                                "json_type",
                                                "json_valid",
                                                "julianday",
                                                "lag",
                                                "last_insert_rowid",
                                                "last_value",
                                                "lead",
                                                "length",
                                                "like",
                                                "likelihood",
                                                "likely",
                                                "ln",
                                                "log",
                                                "log10",
                                                "log2",
                                                "lower",
                                                "ltrim",
                                                "max",
                                                "min",
                                                "mod",
                                                "nth_value",
                                                "ntile",
                                                "nullif",
                                                "octet_length",
                                                "percent_rank",
                                                "pi",
                                                "pow",
                                                "power",
                                                "printf",
                                                "quote",
                                                "radians",
                                                "random",
                                                "randomblob",
                                                "rank",
                                                "replace",
                                                "round",
                                                "row_number",
                                                "rtrim",
                                                "sign",
                                                "sin",
                                                "sinh",
                                                "sqlite_version",
                                                "sqrt",
                                                "strftime",
                                                "string_agg",
                                                "substr",
                                                "substring",
                                                "sum",
                                                "tan",
                                                "tanh",
                                                "time",
                                                "timediff",
                                                "total",
                                                "total_changes",
                                                "trim",
                                                "trunc",
                                                "typeof",
                                                "unhex",
                                                "unicode",
                                                "unixepoch",
                                                "unlikely",
                                                "upper",
                                                "zeroblob"};

static bool function_allowed(const char *name)
{
    size_t lo = 0, hi = sizeof(allowed_functions) / sizeof(allowed_functions[0]);

    while (name && lo < hi) { /* the list is sorted */
        size_t mid = (lo + hi) / 2;
        int c = sqlite3_stricmp(name, allowed_functions[mid]);

        if (c == 0)
            return true;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return false;
}

/* The branch rules of DESIGN.md section 4, as an allow-list (invariant 1). */
static int authorize(void *ud, int action, const char *a1, const char *a2, const char *db,
                     const char *trigger)
{
    struct store *st = ud;
    int verdict;

    (void)db;
    (void)trigger;
    if (!st->in_branch)
        return SQLITE_OK;
    /* Report the first refusal: later callbacks of the same statement are its consequences. */
    verdict = authorize_branch(st, action, a1, a2);
    if (verdict == SQLITE_DENY && !st->denied[0])
        snprintf(st->denied, sizeof(st->denied), "%s", st->why);
    return verdict;
}

static int authorize_branch(struct store *st, int action, const char *a1, const char *a2)
{
    switch (action) {
    case SQLITE_SELECT:
    case SQLITE_RECURSIVE:
        return SQLITE_OK;
    case SQLITE_READ:
        if (a1 && sqlite3_strnicmp(a1, "tpc_", 4) == 0) {
            snprintf(st->why, sizeof(st->why), "table %s is the participant's own", a1);
            return SQLITE_DENY;
        }
        if (a1 && sqlite3_strnicmp(a1, "pragma_", 7) == 0) { /* a PRAGMA as a table */
            snprintf(st->why, sizeof(st->why), "PRAGMA is not allowed in a branch");
            return SQLITE_DENY;
        }
        return SQLITE_OK;
    case SQLITE_FUNCTION:
        if (function_allowed(a2))
            return SQLITE_OK;
        snprintf(st->why, sizeof(st->why),
                 "function %s is not allowed in a branch (http-api.md "
                 "lists those that are)",
                 a2 ? a2 : "?");
        return SQLITE_DENY;
    case SQLITE_INSERT:
    case SQLITE_UPDATE:
    case SQLITE_DELETE:
        if (a1 &&
            (!sqlite3_stricmp(a1, "sqlite_master") || !sqlite3_stricmp(a1, "sqlite_schema"))) {
            /* also what a table-valued function (json_each) asks for on first use */
            snprintf(st->why, sizeof(st->why),
                     "schema changes and table-valued functions are not allowed in a branch");
            return SQLITE_DENY;
        }
        if (!a1 || store_is_reserved(a1)) {
            snprintf(st->why, sizeof(st->why), "table %s cannot be written in a branch",
                     a1 ? a1 : "?");
            return SQLITE_DENY;
        }
        if (store_why_not_writable(st, a1)) {
            snprintf(st->why, sizeof(st->why), "table %s cannot be written in a branch: %s", a1,
                     store_why_not_writable(st, a1));
            return SQLITE_DENY;
        }
        store_note_written(st, a1);
        return SQLITE_OK;
    case SQLITE_PRAGMA:
        /* The session extension reads table_info while recording changes (its own SQL, run
         * while a statement steps); a client's statement gets no PRAGMA at all. */
        if (!st->compiling && a1 &&
            (sqlite3_stricmp(a1, "table_info") == 0 || sqlite3_stricmp(a1, "table_xinfo") == 0))
            return SQLITE_OK;
        snprintf(st->why, sizeof(st->why), "PRAGMA is not allowed in a branch");
        return SQLITE_DENY;
    case SQLITE_ATTACH:
    case SQLITE_DETACH:
        snprintf(st->why, sizeof(st->why), "ATTACH and DETACH are not allowed");
        return SQLITE_DENY;
    case SQLITE_TRANSACTION:
    case SQLITE_SAVEPOINT:
        snprintf(st->why, sizeof(st->why),
                 "transaction control is the coordinator's: use commit or abort");
        return SQLITE_DENY;
    default:
        snprintf(st->why, sizeof(st->why),
                 "schema changes (DDL) and maintenance statements are not allowed in a branch");
        return SQLITE_DENY;
    }
}

static enum tpc_err exec_sql(struct store *st, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    enum tpc_err rc = TPC_OK;

    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_IO, "sqlite: %s", msg ? msg : "?");
        sqlite3_free(msg);
    }
    return rc;
}

static enum tpc_err read_file(const char *path, char **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    *out = NULL;
    if (!f)
        return tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot open schema file %s", path);
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || n > 16 * 1024 * 1024 ||
        fseek(f, 0, SEEK_SET) != 0)
        goto fail;
    buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
        goto fail;
    buf[n] = '\0';
    fclose(f);
    *out = buf;
    return TPC_OK;
fail:
    free(buf);
    fclose(f);
    return tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot read schema file %s (16 MiB at most)",
                          path);
}

/* A new database: the schema file and the bookkeeping tables, in one transaction. */
static enum tpc_err create_schema(struct store *st, const char *schema_file, char *err,
                                  size_t errlen)
{
    char *schema = NULL;
    enum tpc_err rc;

    if (schema_file) {
        rc = read_file(schema_file, &schema, err, errlen);
        if (rc)
            return rc;
    }
    rc = exec_sql(st, "BEGIN", err, errlen);
    if (!rc && schema)
        rc = exec_sql(st, schema, err, errlen);
    if (!rc)
        rc = exec_sql(st, bookkeeping_sql, err, errlen);
    if (!rc)
        rc = exec_sql(st, "COMMIT", err, errlen);
    else
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    free(schema);
    return rc;
}

enum tpc_err store_open(const struct store_config *cfg, struct store **out, char *err,
                        size_t errlen)
{
    struct store *st;
    sqlite3_stmt *s = NULL;
    enum tpc_err rc;
    bool fresh;

    *out = NULL;
    if (fsync_vfs_register() != SQLITE_OK)
        return tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot register the SQLite VFS shim");
    st = calloc(1, sizeof(*st));
    if (!st)
        return TPC_ERR_NOMEM;
    pthread_mutex_init(&st->mu, NULL);
    pthread_mutex_init(&st->rmu, NULL);
    st->max_rows = cfg->max_rows;
    st->statement_ms = cfg->statement_ms ? cfg->statement_ms : 5000;
    if (sqlite3_open_v2(cfg->path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                        FSYNC_VFS_NAME) != SQLITE_OK) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot open %s: %s", cfg->path,
                            st->db ? sqlite3_errmsg(st->db) : "out of memory");
        goto fail;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
    /* WAL with synchronous=FULL: a commit is durable (its WAL frames fsync'd) when it returns.
     * The WAL is cut back to 4 MiB after a checkpoint that empties it. */
    rc = exec_sql(st,
                  "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; "
                  "PRAGMA journal_size_limit=4194304;",
                  err, errlen);
    if (rc)
        goto fail;
    if (sqlite3_prepare_v2(st->db, "SELECT 1 FROM sqlite_schema WHERE name = 'tpc_outcome'", -1, &s,
                           NULL) != SQLITE_OK) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_IO, "sqlite: %s", sqlite3_errmsg(st->db));
        goto fail;
    }
    fresh = sqlite3_step(s) != SQLITE_ROW;
    sqlite3_finalize(s);
    if (fresh) {
        rc = create_schema(st, cfg->schema_file, err, errlen);
        if (rc)
            goto fail;
    }
    if (horizon_store_add_column(st->db, "tpc_prepared", "born", "INTEGER NOT NULL DEFAULT 0") !=
            SQLITE_OK ||
        horizon_store_add_column(st->db, "tpc_outcome", "born", "INTEGER NOT NULL DEFAULT 0") !=
            SQLITE_OK ||
        horizon_store_add_column(st->db, "tpc_outcome", "participants", "TEXT") != SQLITE_OK ||
        horizon_store_add_column(st->db, "tpc_outcome", "learned", "TEXT") != SQLITE_OK) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_IO, "sqlite: %s", sqlite3_errmsg(st->db));
        goto fail;
    }
    rc = exec_sql(st, upgrade_sql, err, errlen);
    if (rc)
        goto fail;
    horizon_store_init(&st->horizon, st->db, "tpc_meta",
                       cfg->retention_ms ? cfg->retention_ms : 3600000);
    st->horizon_up = true;
    rc = store_schema_load(st, err, errlen);
    if (rc)
        goto fail;
    rc = sqlite_reader_open(cfg->path, &st->rdb, err, errlen);
    if (rc)
        goto fail;
    sqlite3_set_authorizer(st->db, authorize, st);
    sqlite3_progress_handler(st->db, 10000, progress, st);
    stmt_cache_init(&st->wstmts, st->db);
    stmt_cache_init(&st->rstmts, st->rdb);
    if (groupcommit_start(st->db, &st->mu, &st->gc) != TPC_OK) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot start the group commit");
        goto fail;
    }
    *out = st;
    return TPC_OK;
fail:
    store_close(st);
    return rc;
}

void store_close(struct store *st)
{
    if (!st)
        return;
    groupcommit_stop(st->gc);
    stmt_cache_fini(&st->wstmts);
    stmt_cache_fini(&st->rstmts);
    store_schema_free(st); /* its statements before their connection */
    sqlite3_close(st->rdb);
    sqlite3_close(st->db);
    if (st->horizon_up)
        horizon_store_fini(&st->horizon);
    pthread_mutex_destroy(&st->rmu);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

/* ---- durable steps: the committer ---- */

static bool step_stmt(struct store *st, const char *sql, struct store_job *job,
                      const char *fmt_args, ...)
{
    sqlite3_stmt *s = NULL;
    va_list ap;
    int i = 1, rc;
    const char *f;

    if (!(s = stmt_get(&st->wstmts, sql)))
        goto fail;
    va_start(ap, fmt_args);
    for (f = fmt_args; *f; f++, i++) {
        if (*f == 't') {
            sqlite3_bind_text(s, i, va_arg(ap, const char *), -1, SQLITE_STATIC);
        } else if (*f == 'i') {
            sqlite3_bind_int64(s, i, va_arg(ap, int64_t));
        } else if (*f == 'b') {
            const void *p = va_arg(ap, const void *);
            int n = va_arg(ap, int);
            sqlite3_bind_blob(s, i, p, n, SQLITE_STATIC);
        }
    }
    va_end(ap);
    rc = sqlite3_step(s);
    stmt_done(s);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW)
        return true;
fail:
    snprintf(job->err, sizeof(job->err), "sqlite: %s", sqlite3_errmsg(st->db));
    job->rc = TPC_ERR_IO;
    return false;
}

/* How a recorded end reads: "committed", "aborted" or "read_only". */
enum rm_state store_end_state(const char *t)
{
    if (!t)
        return RM_NONE;
    if (strcmp(t, "committed") == 0)
        return RM_COMMITTED;
    if (strcmp(t, "read_only") == 0)
        return RM_READONLY;
    if (strcmp(t, "heuristic_committed") == 0)
        return RM_HEUR_COMMITTED;
    if (strcmp(t, "heuristic_aborted") == 0)
        return RM_HEUR_ABORTED;
    return RM_ABORTED;
}

static const char sql_recorded[] = "SELECT outcome FROM tpc_outcome WHERE txid = ?";

/* The end already recorded for txid, inside the committer's transaction. */
enum rm_state store_recorded(struct store *st, const char *txid)
{
    sqlite3_stmt *s = NULL;
    enum rm_state o = RM_NONE;

    if ((s = stmt_get(&st->wstmts, sql_recorded)) != NULL) {
        sqlite3_bind_text(s, 1, txid, -1, SQLITE_STATIC);
        if (sqlite3_step(s) == SQLITE_ROW)
            o = store_end_state((const char *)sqlite3_column_text(s, 0));
    }
    stmt_done(s);
    return o;
}

/* Applies job's changeset. A failure never happens, by the locks (DESIGN.md section 5); it is
 * counted, so that it shows if it does. */
static bool apply_job(struct store *st, struct store_job *job)
{
    if (store_apply(st, job->changeset, job->changeset_len))
        return true;
    __atomic_add_fetch(&st->apply_failures, 1, __ATOMIC_RELAXED);
    snprintf(job->err, sizeof(job->err), "cannot apply the changeset: %s", sqlite3_errmsg(st->db));
    job->rc = TPC_ERR_STATE;
    return false;
}

/* An operator's heuristic decision, or the outcome it learned later (rm.h). */
static bool run_heuristic(struct store *st, struct store_job *job, enum rm_state have)
{
    enum rm_state want =
        job->outcome == TPC_OUTCOME_COMMITTED ? RM_HEUR_COMMITTED : RM_HEUR_ABORTED;

    job->mixed = job->kind == STORE_JOB_RECONCILE && have != want;
    if (job->kind == STORE_JOB_RECONCILE)
        return step_stmt(st,
                         "UPDATE tpc_outcome SET learned = ? WHERE txid = ? AND learned IS NULL",
                         job, "tt", msg_outcome_name(job->outcome), job->txid);
    if (have == want)
        return true;
    if (have != RM_NONE) {
        snprintf(job->err, sizeof(job->err), "%s already ended (%s)", job->txid,
                 rm_state_name(have));
        job->rc = TPC_ERR_STATE;
        return false;
    }
    if (job->outcome == TPC_OUTCOME_COMMITTED && !apply_job(st, job))
        return false;
    return step_stmt(st, "DELETE FROM tpc_prepared WHERE txid = ?", job, "t", job->txid) &&
           step_stmt(st,
                     "INSERT INTO tpc_outcome(txid, outcome, vote, decided_at, born, "
                     "participants) VALUES (?, ?, 'prepared', ?, ?, ?)",
                     job, "ttiit", job->txid, rm_state_name(want), (int64_t)now_ms(),
                     (int64_t)job->born, job->participants);
}

static bool run_job(struct store *st, struct store_job *job)
{
    const char *vote = msg_value_name(job->vote);
    enum rm_state want = job->kind == STORE_JOB_COMMIT     ? RM_COMMITTED
                         : job->kind == STORE_JOB_READONLY ? RM_READONLY
                                                           : RM_ABORTED,
                  have;

    /* Nothing is prepared for a transaction that already ended here (rm.h rule 3). */
    have = store_recorded(st, job->txid);
    if (job->kind == STORE_JOB_HEURISTIC || job->kind == STORE_JOB_RECONCILE)
        return run_heuristic(st, job, have);
    if (job->kind == STORE_JOB_PREPARE && have != RM_NONE) {
        snprintf(job->err, sizeof(job->err), "%s already ended (%s)", job->txid,
                 rm_state_name(have));
        job->rc = TPC_ERR_STATE;
        return false;
    }
    if (job->kind == STORE_JOB_PREPARE)
        return step_stmt(st,
                         "INSERT OR IGNORE INTO tpc_prepared(txid, changeset, participants, "
                         "prepared_at, born) VALUES (?, ?, ?, ?, ?)",
                         job, "tbtii", job->txid, job->changeset, job->changeset_len,
                         job->participants, (int64_t)now_ms(), (int64_t)job->born);
    /* An end is recorded once; the same one again is a no-op, another one an error. */
    if (have == want)
        return true;
    if (have != RM_NONE) {
        snprintf(job->err, sizeof(job->err), "%s already ended (%s)", job->txid,
                 rm_state_name(have));
        job->rc = TPC_ERR_STATE;
        return false;
    }
    if (job->kind == STORE_JOB_READONLY)
        vote = msg_value_name(TPC_VALUE_PREPARED);
    if (job->kind == STORE_JOB_COMMIT && !apply_job(st, job))
        return false;
    return step_stmt(st, "DELETE FROM tpc_prepared WHERE txid = ?", job, "t", job->txid) &&
           step_stmt(st,
                     "INSERT INTO tpc_outcome(txid, outcome, vote, decided_at, born) "
                     "VALUES (?, ?, ?, ?, ?)",
                     job, "tttii", job->txid, rm_state_name(want), vote, (int64_t)now_ms(),
                     (int64_t)job->born);
}

/* The group-commit job: runs a store_job inside the committer's transaction. */
static bool run_gc_job(struct gc_job *g, sqlite3 *db)
{
    struct store_job *job = g->arg;
    struct store *st = job->store;
    bool ok;

    (void)db;
    job->rc = TPC_OK;
    job->err[0] = '\0';
    ok = run_job(st, job);
    if (!ok) {
        g->rc = job->rc ? job->rc : TPC_ERR_IO;
        snprintf(g->err, sizeof(g->err), "%s", job->err);
    }
    return ok;
}

enum tpc_err store_submit(struct store *st, struct store_job *job)
{
    store_submit_all(st, &job, 1);
    return job->rc;
}

void store_submit_all(struct store *st, struct store_job *const *jobs, size_t n)
{
    struct gc_job *g = calloc(n ? n : 1, sizeof(*g));
    struct gc_job **gp = calloc(n ? n : 1, sizeof(*gp));
    size_t i;

    for (i = 0; i < n; i++) {
        jobs[i]->store = st;
        jobs[i]->rc = TPC_OK;
    }
    if (!g || !gp) {
        for (i = 0; i < n; i++) {
            jobs[i]->rc = TPC_ERR_NOMEM;
            snprintf(jobs[i]->err, sizeof(jobs[i]->err), "out of memory");
        }
        goto out;
    }
    for (i = 0; i < n; i++) {
        g[i].run = run_gc_job;
        g[i].arg = jobs[i];
        gp[i] = &g[i];
    }
    groupcommit_submit_all(st->gc, gp, n);
    for (i = 0; i < n; i++) {
        if (g[i].rc == TPC_OK) {
            jobs[i]->rc = TPC_OK;
            continue;
        }
        jobs[i]->rc = g[i].rc;
        snprintf(jobs[i]->err, sizeof(jobs[i]->err), "%s", g[i].err);
    }
out:
    free(g);
    free(gp);
}

void store_group_stats(struct store *st, uint64_t *groups, uint64_t *jobs)
{
    groupcommit_stats(st->gc, groups, jobs);
}

uint64_t store_apply_failures(struct store *st)
{
    return __atomic_load_n(&st->apply_failures, __ATOMIC_RELAXED);
}

uint64_t store_fsyncs(void)
{
    return fsync_vfs_count();
}
