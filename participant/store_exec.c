/*
 * store_exec.c - a branch's statements (see store.h): run inside a SQLite
 * transaction on top of the branch's earlier changes, the cumulative
 * changeset recorded with the session extension, then rolled back (store.c
 * invariant 2); and how a changeset is applied.
 */
#define SQLITE_ENABLE_SESSION 1

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_int.h"

static int user_tables_only(void *ctx, const char *table)
{
    (void)ctx;
    return !store_is_reserved(table);
}

/* sqlite3changeset_apply's conflict handler: any conflict aborts the apply; its kind is kept. */
static int conflict_abort(void *ctx, int kind, sqlite3_changeset_iter *it)
{
    (void)it;
    *(int *)ctx = kind;
    return SQLITE_CHANGESET_ABORT;
}

bool store_apply(struct store *st, const void *changeset, int len)
{
    bool fk_off = store_fires_actions(st, changeset, len), ok;
    int kind = 0;

    if (len <= 0)
        return true;
    /* Turning enforcement off and on makes SQLite prepare the connection's statements again,
     * so only when an action could fire. */
    if (fk_off)
        sqlite3_db_config(st->db, SQLITE_DBCONFIG_ENABLE_FKEY, 0, NULL);
    ok = sqlite3changeset_apply(st->db, len, (void *)changeset, NULL, conflict_abort, &kind) ==
         SQLITE_OK;
    /* In place, one row at a time, a changeset that moved UNIQUE values between its own rows
     * (a swap) fails in any order (a CONSTRAINT conflict, SQLite having retried the failed rows
     * last); then it goes row by row, every old row out, then every new row in, foreign keys
     * checked at its end (a parent may go before its child). Any other conflict is a
     * failure. */
    if (!ok && kind == SQLITE_CHANGESET_CONSTRAINT) {
        if (!fk_off)
            sqlite3_exec(st->db, "PRAGMA defer_foreign_keys = ON", NULL, NULL, NULL);
        ok = store_apply_rows(st, changeset, len, !fk_off);
        if (!fk_off)
            sqlite3_exec(st->db, "PRAGMA defer_foreign_keys = OFF", NULL, NULL, NULL);
    }
    if (fk_off)
        sqlite3_db_config(st->db, SQLITE_DBCONFIG_ENABLE_FKEY, 1, NULL);
    return ok;
}

static char *base64(const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    size_t i;

    if (!out)
        return NULL;
    for (i = 0; i + 2 < n; i += 3) {
        *o++ = tab[p[i] >> 2];
        *o++ = tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
        *o++ = tab[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
        *o++ = tab[p[i + 2] & 63];
    }
    if (i < n) {
        *o++ = tab[p[i] >> 2];
        if (i + 1 < n) {
            *o++ = tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
            *o++ = tab[(p[i + 1] & 15) << 2];
        } else {
            *o++ = tab[(p[i] & 3) << 4];
            *o++ = '=';
        }
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

static json_t *column_value(sqlite3_stmt *s, int i)
{
    switch (sqlite3_column_type(s, i)) {
    case SQLITE_INTEGER:
        return json_integer(sqlite3_column_int64(s, i));
    case SQLITE_FLOAT: {
        json_t *r = json_real(sqlite3_column_double(s, i));
        return r ? r : json_null(); /* NaN and infinities have no JSON form */
    }
    case SQLITE_TEXT: {
        json_t *t = json_stringn((const char *)sqlite3_column_text(s, i),
                                 (size_t)sqlite3_column_bytes(s, i));
        if (t)
            return t;
        /* Not UTF-8: hand the bytes over as a blob. */
    }
        /* fall through */
    case SQLITE_BLOB: {
        const void *p = sqlite3_column_blob(s, i);
        char *b = base64(p, (size_t)sqlite3_column_bytes(s, i));
        json_t *v = b ? json_pack("{s:s}", "base64", b) : NULL;

        free(b);
        return v;
    }
    default:
        return json_null();
    }
}

static bool bind_param(sqlite3_stmt *s, int i, json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
        return sqlite3_bind_null(s, i) == SQLITE_OK;
    case JSON_TRUE:
    case JSON_FALSE:
        return sqlite3_bind_int(s, i, json_is_true(v)) == SQLITE_OK;
    case JSON_INTEGER:
        return sqlite3_bind_int64(s, i, json_integer_value(v)) == SQLITE_OK;
    case JSON_REAL:
        return sqlite3_bind_double(s, i, json_real_value(v)) == SQLITE_OK;
    case JSON_STRING:
        return sqlite3_bind_text(s, i, json_string_value(v), (int)json_string_length(v),
                                 SQLITE_TRANSIENT) == SQLITE_OK;
    default:
        return false;
    }
}

/* p past blanks, semicolons and comments. */
static const char *skip_blanks(const char *p)
{
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ';')
            p++;
        if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *end = strstr(p + 2, "*/");
            if (!end)
                return p + strlen(p);
            p = end + 2;
        } else {
            return p;
        }
    }
}

static bool only_blanks(const char *p)
{
    return *skip_blanks(p) == '\0';
}

/* The statements a branch may run, by their first word (http-api.md): reads and row changes.
 * Every other kind of statement SQLite has (DDL, PRAGMA, ATTACH, VACUUM, transaction control,
 * EXPLAIN) is refused before SQLite sees it, also when it would change nothing (DROP TABLE IF
 * EXISTS of no table). A word that starts no statement is left to SQLite: a syntax error. */
static const char *const allowed_words[] = {"SELECT",  "INSERT", "UPDATE", "DELETE",
                                            "REPLACE", "WITH",   "VALUES"};
static const char *const refused_words[] = {
    "ALTER", "ANALYZE", "ATTACH", "BEGIN",   "COMMIT",  "CREATE",   "DETACH",    "DROP",
    "END",   "EXPLAIN", "PRAGMA", "REINDEX", "RELEASE", "ROLLBACK", "SAVEPOINT", "VACUUM"};

static bool word_in(const char *p, size_t n, const char *const *words, size_t n_words)
{
    size_t i;

    for (i = 0; i < n_words; i++)
        if (n == strlen(words[i]) && sqlite3_strnicmp(p, words[i], (int)n) == 0)
            return true;
    return false;
}

/* The word sql starts with (in word) when it starts a statement a branch may not run; else
 * NULL. */
static const char *not_allowed(const char *sql, char *word, size_t len)
{
    const char *p = skip_blanks(sql);
    size_t n = 0;

    while (p[n] && ((p[n] >= 'A' && p[n] <= 'Z') || (p[n] >= 'a' && p[n] <= 'z')))
        n++;
    if (word_in(p, n, allowed_words, sizeof(allowed_words) / sizeof(allowed_words[0])) ||
        !word_in(p, n, refused_words, sizeof(refused_words) / sizeof(refused_words[0])))
        return NULL;
    snprintf(word, len, "%.*s", (int)n, p);
    return word;
}

#define FAIL(kind, ...)                                                                            \
    do {                                                                                           \
        snprintf(msg, msglen, __VA_ARGS__);                                                        \
        fail = (kind);                                                                             \
        goto out;                                                                                  \
    } while (0)

/* Runs one statement of a branch and appends its result; under st->mu, in_branch set. */
static enum store_fail run_statement(struct store *st, size_t idx, json_t *stmt, json_t *results,
                                     char *msg, size_t msglen)
{
    const char *sql = json_string_value(json_object_get(stmt, "sql")), *tail = NULL;
    json_t *params = json_object_get(stmt, "params"), *columns = NULL, *rows = NULL, *row;
    enum store_fail fail = STORE_FAIL_NONE;
    sqlite3_stmt *s = NULL;
    sqlite3_int64 rowid;
    int rc, i, ncol;
    size_t n_params = params ? json_array_size(params) : 0, n_rows = 0;
    char word[32];

    st->denied[0] = '\0';
    if (not_allowed(sql, word, sizeof(word)))
        FAIL(STORE_FAIL_FORBIDDEN,
             "statement %zu: a branch runs SELECT, INSERT, UPDATE, DELETE, REPLACE, WITH and "
             "VALUES statements only, not %s",
             idx, word);
    st->compiling = true; /* the client's own SQL: no PRAGMA at all (store.c) */
    rc = sqlite3_prepare_v2(st->db, sql, -1, &s, &tail);
    st->compiling = false;
    if (rc != SQLITE_OK) {
        if (st->denied[0])
            FAIL(STORE_FAIL_FORBIDDEN, "statement %zu: %s", idx, st->denied);
        FAIL(STORE_FAIL_SQL, "statement %zu: %s", idx, sqlite3_errmsg(st->db));
    }
    if (!s)
        FAIL(STORE_FAIL_SQL, "statement %zu is empty", idx);
    if (tail && !only_blanks(tail))
        FAIL(STORE_FAIL_SQL,
             "statement %zu holds more than one SQL statement; give each its own entry", idx);
    if ((size_t)sqlite3_bind_parameter_count(s) != n_params)
        FAIL(STORE_FAIL_SQL, "statement %zu takes %d parameters, %zu given", idx,
             sqlite3_bind_parameter_count(s), n_params);
    for (i = 0; (size_t)i < n_params; i++)
        if (!bind_param(s, i + 1, json_array_get(params, (size_t)i)))
            FAIL(STORE_FAIL_SQL,
                 "statement %zu, parameter %d: only null, booleans, numbers and strings bind", idx,
                 i + 1);
    /* Zero first, so the result shows this statement's own insert, not an earlier one's. */
    sqlite3_set_last_insert_rowid(st->db, 0);
    ncol = sqlite3_column_count(s);
    columns = json_array();
    rows = json_array();
    if (!columns || !rows)
        FAIL(STORE_FAIL_INTERNAL, "out of memory");
    for (i = 0; i < ncol; i++)
        json_array_append_new(columns, json_string(sqlite3_column_name(s, i)));
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (++n_rows > st->max_rows)
            FAIL(STORE_FAIL_ROWS, "statement %zu returns more than %u rows; add a LIMIT", idx,
                 st->max_rows);
        row = json_array();
        if (!row || json_array_append_new(rows, row) != 0)
            FAIL(STORE_FAIL_INTERNAL, "out of memory");
        for (i = 0; i < ncol; i++)
            json_array_append_new(row, column_value(s, i));
    }
    if (rc != SQLITE_DONE) {
        if (rc == SQLITE_INTERRUPT)
            FAIL(STORE_FAIL_TIMEOUT, "statement %zu ran longer than %u ms and was stopped", idx,
                 st->statement_ms);
        if ((sqlite3_extended_errcode(st->db) & 0xff) == SQLITE_CONSTRAINT)
            FAIL(STORE_FAIL_CONSTRAINT, "statement %zu: %s", idx, sqlite3_errmsg(st->db));
        if (st->denied[0])
            FAIL(STORE_FAIL_FORBIDDEN, "statement %zu: %s", idx, st->denied);
        FAIL(STORE_FAIL_SQL, "statement %zu: %s", idx, sqlite3_errmsg(st->db));
    }
    rowid = sqlite3_last_insert_rowid(st->db);
    if (json_array_append_new(
            results,
            json_pack("{s:o,s:o,s:I,s:o}", "columns", columns, "rows", rows, "changes",
                      (json_int_t)(sqlite3_stmt_readonly(s) ? 0 : sqlite3_changes64(st->db)),
                      "last_insert_rowid", rowid ? json_integer(rowid) : json_null())) != 0)
        fail = STORE_FAIL_INTERNAL;
    columns = rows = NULL; /* stolen by json_pack's "o" */
out:
    json_decref(columns);
    json_decref(rows);
    sqlite3_finalize(s);
    return fail;
}

enum store_fail store_exec(struct store *st, const char *txid, const void *changeset, int len,
                           json_t *statements, store_accept_fn accept, void *ctx, json_t **results,
                           void **out, int *out_len, char *msg, size_t msglen)
{
    enum store_fail fail = STORE_FAIL_NONE;
    enum rm_state ended = RM_NONE;
    const char *null_key;
    sqlite3_session *sess = NULL;
    json_t *res = NULL;
    void *cs = NULL;
    int cs_len = 0;
    size_t i;

    *results = NULL;
    *out = NULL;
    *out_len = 0;
    pthread_mutex_lock(&st->mu);
    if (sqlite3_exec(st->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        FAIL(STORE_FAIL_INTERNAL, "BEGIN: %s", sqlite3_errmsg(st->db));
    /* Under the lock, so that no end is recorded between this check and the statements. */
    ended = store_recorded(st, txid);
    if (ended != RM_NONE)
        FAIL(STORE_FAIL_ENDED, "transaction %s already ended here (%s)", txid,
             rm_state_name(ended));
    if (sqlite3session_create(st->db, "main", &sess) != SQLITE_OK)
        FAIL(STORE_FAIL_INTERNAL, "cannot create a session");
    sqlite3session_table_filter(sess, user_tables_only, NULL);
    if (sqlite3session_attach(sess, NULL) != SQLITE_OK)
        FAIL(STORE_FAIL_INTERNAL, "cannot attach the session");
    /* The branch's earlier changes first: its locks keep them valid, so they apply cleanly. */
    if (!store_apply(st, changeset, len))
        FAIL(STORE_FAIL_INTERNAL, "cannot re-apply the branch's changes: %s",
             sqlite3_errmsg(st->db));
    res = json_array();
    if (!res)
        FAIL(STORE_FAIL_INTERNAL, "out of memory");
    st->exec_deadline = store_mono_ms() + st->statement_ms;
    store_null_keys(st, false); /* what an earlier exec that failed may have noted */
    st->in_branch = true;
    for (i = 0; i < json_array_size(statements) && !fail; i++)
        fail = run_statement(st, i, json_array_get(statements, i), res, msg, msglen);
    st->in_branch = false;
    if (fail)
        goto out;
    null_key = store_null_keys(st, true);
    if (null_key)
        FAIL(STORE_FAIL_CONSTRAINT,
             "a row of %s has a NULL in its PRIMARY KEY, which a branch cannot record: declare "
             "the key's columns NOT NULL",
             null_key);
    /* A DEFERRABLE INITIALLY DEFERRED foreign key is checked here, at the end of each request:
     * the changeset must hold every foreign key, so that it applies with enforcement off. */
    {
        int pending = 0, high = 0;

        if (sqlite3_db_status(st->db, SQLITE_DBSTATUS_DEFERRED_FKS, &pending, &high, 0) !=
                SQLITE_OK ||
            pending)
            FAIL(STORE_FAIL_CONSTRAINT,
                 "FOREIGN KEY constraint failed (a deferred foreign key must hold at the end "
                 "of each exec request)");
    }
    if (sqlite3session_changeset(sess, &cs_len, &cs) != SQLITE_OK)
        FAIL(STORE_FAIL_INTERNAL, "cannot read the changeset");
    if (accept && !accept(ctx, cs, cs_len))
        FAIL(STORE_FAIL_LOCKED, "a row is locked by another transaction");
    if (cs_len > 0) {
        *out = malloc((size_t)cs_len);
        if (!*out)
            FAIL(STORE_FAIL_INTERNAL, "out of memory");
        memcpy(*out, cs, (size_t)cs_len);
        *out_len = cs_len;
    }
    *results = res;
    res = NULL;
out:
    st->in_branch = false;
    sqlite3_free(cs);
    if (sess)
        sqlite3session_delete(sess);
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL); /* invariant 2 */
    pthread_mutex_unlock(&st->mu);
    json_decref(res);
    return fail;
}

#undef FAIL

bool store_with_branch(struct store *st, const void *changeset, int len, store_accept_fn accept,
                       void *ctx)
{
    bool ok;

    pthread_mutex_lock(&st->mu);
    ok = sqlite3_exec(st->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK &&
         store_apply(st, changeset, len) && accept(ctx, changeset, len);
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL); /* invariant 2 */
    pthread_mutex_unlock(&st->mu);
    return ok;
}
