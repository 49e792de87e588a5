/*
 * fuzz_exec_sql.c - libFuzzer target: a branch's SQL at a participant (participant/store_exec.c
 * and store.c: the first-word gate, the authorizer, defensive mode) against a real database.
 *
 * An input is up to 8 statements, one per line, run as one exec of a branch, each with the
 * branch's changeset so far (a changeset carried from one exec to the next). Whatever the
 * SQL, nothing may outlive the exec: it commits nothing, so the database's schema and rows are
 * what they were, the bookkeeping tables are untouched, no other database is attached, no
 * pragma changed (journal mode, foreign keys), and extension loading stays off. The locks of
 * every changeset are worked out as an exec does (store_rows.c, lockset.c): they must be made,
 * and read as printable ASCII.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "store_int.h"

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char schema[] =
    "CREATE TABLE accounts(id INTEGER PRIMARY KEY, owner TEXT NOT NULL, balance INTEGER NOT NULL"
    " CHECK (balance >= 0));"
    "CREATE TABLE notes(k TEXT PRIMARY KEY, v BLOB);"
    "CREATE TABLE ledger(id INTEGER PRIMARY KEY, ref TEXT UNIQUE);"
    "CREATE TABLE customers(id INTEGER PRIMARY KEY, email TEXT UNIQUE COLLATE NOCASE,"
    " code BLOB UNIQUE);"
    "CREATE TABLE orders(id INTEGER PRIMARY KEY, cid REFERENCES customers(id) ON DELETE CASCADE"
    " ON UPDATE CASCADE, tag TEXT COLLATE RTRIM, UNIQUE (cid, tag));"
    "CREATE TABLE notes2(a, b, PRIMARY KEY (a, b), FOREIGN KEY (a) REFERENCES customers(email)"
    " ON DELETE SET NULL) WITHOUT ROWID;"
    "INSERT INTO customers VALUES (1, 'Ann', x'01'), (2, 'bob', NULL);"
    "INSERT INTO orders VALUES (10, 1, 'a '), (11, 2, NULL);"
    "INSERT INTO accounts VALUES (1, 'alice', 100), (2, 'bob', 50);"
    "INSERT INTO notes VALUES ('a', x'00ff');";

static struct store *st;
static char *baseline;
static void *cs;
static int cs_len;

static void described(void *ctx, const void *key, size_t len, bool shared)
{
    char text[200];
    size_t i;

    (void)ctx;
    (void)shared;
    lockset_describe(key, len, text, sizeof(text));
    check(text[0] != '\0');
    for (i = 0; text[i]; i++)
        check(text[i] >= 0x20 && text[i] < 0x7f);
}

static bool accept_all(void *ctx, const void *changeset, int len)
{
    enum tpc_err rc = store_branch_keys(st, changeset, len, described, ctx);

    check(rc == TPC_OK || rc == TPC_ERR_TOO_BIG);
    return true;
}

/* Everything that must not change, as one text: the schema, every row of every table (the
 * bookkeeping ones included), the attached databases, the pragmas that matter. */
static char *snapshot(void)
{
    static const char *const queries[] = {
        ("SELECT group_concat(type || name || tbl_name || ifnull(sql, ''), ';') FROM "
         "(SELECT * FROM sqlite_schema ORDER BY name)"),
        "SELECT group_concat(id || owner || balance, ';') FROM accounts",
        "SELECT group_concat(k || hex(v), ';') FROM notes",
        "SELECT count(*) FROM ledger",
        "SELECT group_concat(id || ifnull(email, '-') || ifnull(hex(code), '-'), ';') FROM "
        "customers",
        "SELECT group_concat(id || ifnull(cid, '-') || ifnull(tag, '-'), ';') FROM orders",
        "SELECT count(*) FROM notes2",
        "SELECT count(*) FROM tpc_prepared",
        "SELECT count(*) FROM tpc_outcome",
        "SELECT group_concat(name, ';') FROM pragma_database_list",
        "PRAGMA journal_mode",
        "PRAGMA foreign_keys",
    };
    char *out = strdup(""), *next;
    size_t i;
    int on = -1;

    pthread_mutex_lock(&st->mu);
    for (i = 0; out && i < sizeof(queries) / sizeof(queries[0]); i++) {
        sqlite3_stmt *s = NULL;
        const char *v = "?";

        if (sqlite3_prepare_v2(st->db, queries[i], -1, &s, NULL) == SQLITE_OK &&
            sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
            v = (const char *)sqlite3_column_text(s, 0);
        size_t len = strlen(out) + strlen(v) + 2;

        next = malloc(len);
        if (next)
            snprintf(next, len, "%s%s|", out, v);
        sqlite3_finalize(s);
        free(out);
        out = next;
    }
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, -1, &on);
    pthread_mutex_unlock(&st->mu);
    check(on == 0);
    return out;
}

static void setup(void)
{
    char path[64], schema_path[64], err[256];
    struct store_config cfg = {0};

    fuzz_database_dir(schema, path, schema_path);
    cfg.path = path;
    cfg.schema_file = schema_path;
    cfg.max_rows = 100;
    cfg.statement_ms = 200;
    check(store_open(&cfg, &st, err, sizeof(err)) == TPC_OK);
    baseline = snapshot();
    check(baseline != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *statements = json_array(), *results = NULL;
    char *text = strndup((const char *)data, size), *line, *save = NULL, msg[256];
    void *out = NULL;
    int out_len = 0, n = 0;
    char *now;

    if (!st)
        setup();
    for (line = text ? strtok_r(text, "\n", &save) : NULL; line && n < 8;
         line = strtok_r(NULL, "\n", &save), n++)
        json_array_append_new(statements, json_pack("{s:s}", "sql", line));
    if (n && store_exec(st, "fuzz", cs, cs_len, statements, accept_all, NULL, &results, &out,
                        &out_len, msg, sizeof(msg)) == STORE_FAIL_NONE) {
        /* Carried on, as a branch's next exec would; a fresh branch now and then. */
        free(cs);
        cs = out_len > 0 && out_len < 65536 && (size & 3) ? out : NULL;
        cs_len = cs ? out_len : 0;
        if (!cs)
            free(out);
    }
    json_decref(results);
    json_decref(statements);
    free(text);
    now = snapshot();
    check(now != NULL && strcmp(now, baseline) == 0);
    free(now);
    return 0;
}
