/*
 * store_schema.c - the tables' constraints as lockset.h models them, read from SQLite at
 * start (the schema never changes: a branch runs no DDL): which tables a branch may write and
 * why not, each table's keys and foreign keys, and the statements that read and write its rows
 * (store_rows.c uses them).
 */
#define SQLITE_ENABLE_SESSION 1

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_int.h"

static char *dup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *dup_printf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !(s = malloc((size_t)n + 1)))
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* SQL text that grows; an out-of-memory leaves it NULL for good. */
struct sqlbuf {
    char *s;
    size_t n, cap;
};

static void sql_add(struct sqlbuf *b, const char *p, size_t n)
{
    char *bigger;

    if (!b->s && b->cap)
        return; /* failed before */
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;

        bigger = realloc(b->s, cap);
        if (!bigger) {
            free(b->s);
            b->s = NULL;
            b->cap = 1;
            return;
        }
        b->s = bigger;
        b->cap = cap;
    }
    memcpy(b->s + b->n, p, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sql_str(struct sqlbuf *b, const char *s)
{
    sql_add(b, s, strlen(s));
}

/* An identifier, quoted. */
static void sql_ident(struct sqlbuf *b, const char *name)
{
    const char *q;

    sql_add(b, "\"", 1);
    while ((q = strchr(name, '"')) != NULL) {
        sql_add(b, name, (size_t)(q - name) + 1);
        sql_add(b, "\"", 1);
        name = q + 1;
    }
    sql_str(b, name);
    sql_add(b, "\"", 1);
}

/* SELECT cols FROM table WHERE keycols = ?1 AND ...: every column when cols is NULL. */
static char *select_sql(const struct lockset_table *t, const struct lockset_cols *cols,
                        const struct lockset_cols *where)
{
    struct sqlbuf b = {0};
    char num[32];
    size_t i, n = cols ? cols->n : t->ncol;

    sql_str(&b, "SELECT ");
    for (i = 0; i < n; i++) {
        if (i)
            sql_str(&b, ", ");
        sql_ident(&b, t->colnames[cols ? (size_t)cols->col[i] : i]);
    }
    sql_str(&b, " FROM ");
    sql_ident(&b, t->name);
    for (i = 0; i < where->n; i++) {
        sql_str(&b, i ? " AND " : " WHERE ");
        sql_ident(&b, t->colnames[where->col[i]]);
        snprintf(num, sizeof(num), " = ?%zu", i + 1);
        sql_str(&b, num);
    }
    return b.s;
}

/* DELETE FROM table WHERE pk = ?1 AND ...; INSERT INTO table(every column) VALUES (?1, ...). */
static char *write_sql(const struct lockset_table *t, bool insert)
{
    struct sqlbuf b = {0};
    char num[32];
    size_t i;

    sql_str(&b, insert ? "INSERT INTO " : "DELETE FROM ");
    sql_ident(&b, t->name);
    if (!insert) {
        for (i = 0; i < t->pk.cols.n; i++) {
            sql_str(&b, i ? " AND " : " WHERE ");
            sql_ident(&b, t->colnames[t->pk.cols.col[i]]);
            snprintf(num, sizeof(num), " = ?%zu", i + 1);
            sql_str(&b, num);
        }
        return b.s;
    }
    for (i = 0; i < t->ncol; i++) {
        sql_str(&b, i ? ", " : "(");
        sql_ident(&b, t->colnames[i]);
    }
    for (i = 0; i < t->ncol; i++) {
        snprintf(num, sizeof(num), "%s?%zu", i ? ", " : ") VALUES (", i + 1);
        sql_str(&b, num);
    }
    sql_str(&b, ")");
    return b.s;
}

static int col_of(const struct lockset_table *t, const char *name)
{
    size_t i;

    for (i = 0; name && i < t->ncol; i++)
        if (sqlite3_stricmp(t->colnames[i], name) == 0)
            return (int)i;
    return -1;
}

static bool coll_of(const char *name, enum lockset_coll *out)
{
    if (!name || sqlite3_stricmp(name, "BINARY") == 0)
        *out = LOCKSET_BINARY;
    else if (sqlite3_stricmp(name, "NOCASE") == 0)
        *out = LOCKSET_NOCASE;
    else if (sqlite3_stricmp(name, "RTRIM") == 0)
        *out = LOCKSET_RTRIM;
    else
        return false;
    return true;
}

/* The column names of cols, comma-separated. */
static char *cols_name(const struct lockset_table *t, const struct lockset_cols *cols)
{
    struct sqlbuf b = {0};
    size_t i;

    sql_str(&b, "");
    for (i = 0; i < cols->n; i++) {
        if (i)
            sql_str(&b, ",");
        sql_str(&b, t->colnames[cols->col[i]]);
    }
    return b.s;
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;

    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
        sqlite3_finalize(s);
        return NULL;
    }
    return s;
}

/* The first ON CONFLICT REPLACE, IGNORE or ROLLBACK in a table's definition, or NULL. (ABORT
 * and FAIL, the default's kind, are fine.) A comment that says so refuses too: harmless. */
static const char *conflict_clause(const char *sql)
{
    static const char *const words[] = {"REPLACE", "IGNORE", "ROLLBACK"};
    size_t at, i;

    for (at = 0; sql && sql[at]; at++) {
        const char *q = sql + at;
        char before = at ? sql[at - 1] : ' ';

        if ((before >= 'A' && before <= 'Z') || (before >= 'a' && before <= 'z') ||
            (before >= '0' && before <= '9') || before == '_' ||
            sqlite3_strnicmp(q, "ON", 2) != 0 || !strchr(" \t\r\n", q[2]))
            continue;
        for (q += 2; *q && strchr(" \t\r\n", *q); q++)
            ;
        if (sqlite3_strnicmp(q, "CONFLICT", 8) != 0)
            continue;
        for (q += 8; *q && strchr(" \t\r\n", *q); q++)
            ;
        for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
            if (sqlite3_strnicmp(q, words[i], (int)strlen(words[i])) == 0)
                return words[i];
    }
    return NULL;
}

#define REFUSE(...)                                                                                \
    do {                                                                                           \
        if (!st->why_not)                                                                          \
            st->why_not = dup_printf(__VA_ARGS__);                                                 \
    } while (0)

/* The table's columns, primary key, UNIQUE indexes; what makes it read-only to branches. */
static enum tpc_err load_table(sqlite3 *db, struct store_table *st)
{
    struct lockset_table *t = &st->t;
    sqlite3_stmt *s = NULL, *x = NULL;
    enum tpc_err rc = TPC_OK;
    size_t cap = 0;

    bool int_key = false, null_key = false;

    /* A rowid table's PRIMARY KEY other than an INTEGER one takes NULL (an old quirk of
     * SQLite's) unless its columns say NOT NULL; the session extension records nothing of a row
     * whose key holds one (store_null_keys). */
    s = prepare(db, "SELECT name, pk, upper(type) = 'INTEGER', \"notnull\" FROM "
                    "pragma_table_info(?1) ORDER BY cid");
    if (!s)
        return TPC_ERR_IO;
    sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
    while (sqlite3_step(s) == SQLITE_ROW) {
        int pk = sqlite3_column_int(s, 1);

        if (pk > 0) {
            int_key = sqlite3_column_int(s, 2) != 0;
            null_key = null_key || !sqlite3_column_int(s, 3);
        }

        if (t->ncol == cap) {
            char **bigger = realloc(t->colnames, (cap ? cap * 2 : 8) * sizeof(*bigger));

            if (!bigger)
                goto nomem;
            t->colnames = bigger;
            cap = cap ? cap * 2 : 8;
        }
        t->colnames[t->ncol] = strdup((const char *)sqlite3_column_text(s, 0));
        if (!t->colnames[t->ncol])
            goto nomem;
        if (pk > 0 && pk <= LOCKSET_MAX_COLS) {
            t->pk.cols.col[pk - 1] = (int)t->ncol;
            t->pk.cols.coll[pk - 1] = LOCKSET_BINARY;
            if ((size_t)pk > t->pk.cols.n)
                t->pk.cols.n = (size_t)pk;
        } else if (pk > LOCKSET_MAX_COLS) {
            REFUSE("its PRIMARY KEY has more than %d columns", LOCKSET_MAX_COLS);
        }
        t->ncol++;
    }
    sqlite3_finalize(s);
    s = NULL;
    if (null_key && !(int_key && t->pk.cols.n == 1)) {
        s = prepare(db, "SELECT NOT wr FROM pragma_table_list(?1)");
        if (!s)
            return TPC_ERR_IO;
        sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
        st->nullable_key = sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0);
        sqlite3_finalize(s);
        s = NULL;
    }
    if (t->pk.cols.n == 0)
        REFUSE("it has no declared PRIMARY KEY");
    if (!(t->pk.name = cols_name(t, &t->pk.cols)))
        goto nomem;

    s = prepare(db, "SELECT 1 FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = ?1 "
                    "COLLATE NOCASE");
    if (!s)
        return TPC_ERR_IO;
    sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW)
        REFUSE("it has a trigger (a trigger's writes could not be locked for it)");
    sqlite3_finalize(s);
    s = prepare(db, "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1");
    if (!s)
        return TPC_ERR_IO;
    sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW && conflict_clause((const char *)sqlite3_column_text(s, 0)))
        REFUSE("a constraint of it says ON CONFLICT %s (a commit would then replace, skip or "
               "roll back rows instead of applying the branch's changes as they were made)",
               conflict_clause((const char *)sqlite3_column_text(s, 0)));
    sqlite3_finalize(s);
    s = prepare(db, "SELECT 1 FROM pragma_table_xinfo(?1) WHERE hidden IN (2, 3)");
    if (!s)
        return TPC_ERR_IO;
    sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW)
        REFUSE("it has a generated column (SQLite's session extension, which records a "
               "branch's changes, cannot)");
    sqlite3_finalize(s);

    /* Indexes: the primary key's collations, and every other UNIQUE one. */
    s = prepare(db, "SELECT name, origin, \"unique\", partial FROM pragma_index_list(?1)");
    x = prepare(db, "SELECT name, coll FROM pragma_index_xinfo(?1) WHERE key ORDER BY seqno");
    if (!s || !x) {
        rc = TPC_ERR_IO;
        goto out;
    }
    sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *iname = (const char *)sqlite3_column_text(s, 0);
        bool is_pk = strcmp((const char *)sqlite3_column_text(s, 1), "pk") == 0;
        struct lockset_key k;

        if (!is_pk && !sqlite3_column_int(s, 2))
            continue;
        memset(&k, 0, sizeof(k));
        k.partial = sqlite3_column_int(s, 3) != 0;
        sqlite3_bind_text(x, 1, iname, -1, SQLITE_TRANSIENT);
        while (sqlite3_step(x) == SQLITE_ROW) {
            /* By name: the index counts generated columns, which rows here leave out. */
            int cid = col_of(t, (const char *)sqlite3_column_text(x, 0));
            enum lockset_coll coll;
            size_t i;

            if (cid < 0) {
                REFUSE("it has a UNIQUE index on %s", sqlite3_column_type(x, 0) == SQLITE_NULL
                                                          ? "an expression"
                                                          : "a generated column");
                continue;
            }
            if (!coll_of((const char *)sqlite3_column_text(x, 1), &coll)) {
                REFUSE("a UNIQUE index of it uses collation %s", sqlite3_column_text(x, 1));
                continue;
            }
            if (is_pk) {
                for (i = 0; i < t->pk.cols.n; i++)
                    if (t->pk.cols.col[i] == cid)
                        t->pk.cols.coll[i] = coll;
                continue;
            }
            if (k.cols.n == LOCKSET_MAX_COLS) {
                REFUSE("a UNIQUE index of it has more than %d columns", LOCKSET_MAX_COLS);
                continue;
            }
            k.cols.col[k.cols.n] = cid;
            k.cols.coll[k.cols.n++] = coll;
        }
        sqlite3_reset(x);
        if (is_pk || k.cols.n == 0)
            continue;
        /* A partial index constrains only the rows it holds; its values are locked for every
         * row (more waiting than needed, never less), and at any update (its WHERE may read
         * another column). */
        if (!(k.name = cols_name(t, &k.cols)))
            goto nomem;
        {
            struct lockset_key *bigger = realloc(t->unique, (t->n_unique + 1) * sizeof(*bigger));

            if (!bigger) {
                free(k.name);
                goto nomem;
            }
            t->unique = bigger;
            t->unique[t->n_unique++] = k;
        }
    }
    goto out;
nomem:
    rc = TPC_ERR_NOMEM;
out:
    sqlite3_finalize(s);
    sqlite3_finalize(x);
    return rc;
}

struct store_table *store_table_find(struct store *st, const char *name)
{
    size_t i;

    for (i = 0; name && i < st->n_tables; i++)
        if (sqlite3_stricmp(st->tables[i].t.name, name) == 0)
            return &st->tables[i];
    return NULL;
}

/* The parent's key that cols (column names in the parent, NULL: its primary key) name, added
 * to its list if new: its index there, or -1 (why_not of child says why). */
static int parent_key(struct store_table *parent, struct store_table *st, const char **to,
                      const char **from, size_t n, struct lockset_fk *fk)
{
    struct lockset_table *p = &parent->t, *c = &st->t;
    struct lockset_cols pc;
    size_t i, j;

    memset(&pc, 0, sizeof(pc));
    if (n > LOCKSET_MAX_COLS || (!to[0] && n != p->pk.cols.n)) {
        REFUSE("its FOREIGN KEY to %s does not match that table's key", p->name);
        return -1;
    }
    for (i = 0; i < n; i++) {
        int pcol = to[i] ? col_of(p, to[i]) : p->pk.cols.col[i];
        int ccol = col_of(c, from[i]);

        if (pcol < 0 || ccol < 0) {
            REFUSE("its FOREIGN KEY to %s names a column that is not there", p->name);
            return -1;
        }
        /* Insert in ascending parent position, the child's column alongside. */
        for (j = pc.n; j > 0 && pc.col[j - 1] > pcol; j--) {
            pc.col[j] = pc.col[j - 1];
            fk->cols.col[j] = fk->cols.col[j - 1];
        }
        pc.col[j] = pcol;
        fk->cols.col[j] = ccol;
        pc.n++;
        fk->cols.n++;
    }
    for (i = 0; i < p->n_parent_keys; i++)
        if (p->parent_keys[i].cols.n == pc.n &&
            memcmp(p->parent_keys[i].cols.col, pc.col, pc.n * sizeof(pc.col[0])) == 0)
            return (int)i;
    {
        struct lockset_key *bigger =
            realloc(p->parent_keys, (p->n_parent_keys + 1) * sizeof(*bigger));

        if (!bigger)
            return -2;
        p->parent_keys = bigger;
        bigger[p->n_parent_keys].cols = pc;
        if (!(bigger[p->n_parent_keys].name = cols_name(p, &pc)))
            return -2;
        return (int)p->n_parent_keys++;
    }
}

/* The table's FOREIGN KEYs, once every table's columns are known. */
static enum tpc_err load_fks(struct store *store, struct store_table *st)
{
    sqlite3_stmt *s = prepare(store->db, "SELECT id, \"table\", \"from\", \"to\" FROM "
                                         "pragma_foreign_key_list(?1) ORDER BY id, seq");
    const char *to[LOCKSET_MAX_COLS], *from[LOCKSET_MAX_COLS];
    char *strs[2 * LOCKSET_MAX_COLS + 1];
    enum tpc_err rc = TPC_OK;
    size_t n = 0, ns = 0, i;
    int id = -1, r;
    char *ptable = NULL;

    if (!s)
        return TPC_ERR_IO;
    sqlite3_bind_text(s, 1, st->t.name, -1, SQLITE_STATIC);
    do {
        r = sqlite3_step(s);
        /* A FOREIGN KEY ends where the next begins, or at the end. */
        if (n > 0 && (r != SQLITE_ROW || sqlite3_column_int(s, 0) != id)) {
            struct store_table *parent = store_table_find(store, ptable);
            struct lockset_fk fk;
            int k = -1;

            memset(&fk, 0, sizeof(fk));
            if (!parent)
                REFUSE("its FOREIGN KEY refers to %s, which is not a table here", ptable);
            else
                k = parent_key(parent, st, to, from, n, &fk);
            if (k == -2) {
                rc = TPC_ERR_NOMEM;
                break;
            }
            if (k >= 0) {
                struct lockset_fk *bigger = NULL;

                fk.parent = strdup(parent->t.name);
                fk.keyname = strdup(parent->t.parent_keys[k].name);
                fk.parent_key = (size_t)k;
                if (fk.parent && fk.keyname)
                    bigger = realloc(st->t.fks, (st->t.n_fks + 1) * sizeof(*bigger));
                if (!bigger) {
                    free(fk.parent);
                    free(fk.keyname);
                    rc = TPC_ERR_NOMEM;
                    break;
                }
                st->t.fks = bigger;
                st->t.fks[st->t.n_fks++] = fk;
            }
            for (i = 0; i < ns; i++)
                free(strs[i]);
            n = ns = 0;
            ptable = NULL;
        }
        if (r != SQLITE_ROW)
            break;
        if (n == LOCKSET_MAX_COLS) {
            REFUSE("a FOREIGN KEY of it has more than %d columns", LOCKSET_MAX_COLS);
            continue;
        }
        id = sqlite3_column_int(s, 0);
        if (!ptable && (ptable = strs[ns] = strdup((const char *)sqlite3_column_text(s, 1))))
            ns++;
        from[n] = strs[ns] = strdup((const char *)sqlite3_column_text(s, 2));
        ns += strs[ns] != NULL;
        to[n] = NULL;
        if (sqlite3_column_type(s, 3) != SQLITE_NULL &&
            (to[n] = strs[ns] = strdup((const char *)sqlite3_column_text(s, 3))))
            ns++;
        if (!ptable || !from[n]) {
            rc = TPC_ERR_NOMEM;
            break;
        }
        n++;
    } while (r == SQLITE_ROW);
    for (i = 0; i < ns; i++)
        free(strs[i]);
    sqlite3_finalize(s);
    return rc;
}

#undef REFUSE

/* Marks the tables that st's foreign keys refer to with an action (CASCADE, SET NULL, SET
 * DEFAULT): a delete or key change of theirs makes SQLite change other rows. */
static enum tpc_err load_actions(struct store *store, struct store_table *st)
{
    sqlite3_stmt *s = prepare(store->db, "SELECT \"table\" FROM pragma_foreign_key_list(?1) "
                                         "WHERE on_update NOT IN ('NO ACTION', 'RESTRICT') "
                                         "OR on_delete NOT IN ('NO ACTION', 'RESTRICT')");

    if (!s)
        return TPC_ERR_IO;
    sqlite3_bind_text(s, 1, st->t.name, -1, SQLITE_STATIC);
    while (sqlite3_step(s) == SQLITE_ROW) {
        struct store_table *parent =
            store_table_find(store, (const char *)sqlite3_column_text(s, 0));

        if (parent) {
            parent->fires_actions = true;
            store->any_actions = true;
        }
    }
    sqlite3_finalize(s);
    return TPC_OK;
}

/* The statements that read a row, and each foreign key's parent. */
static enum tpc_err prepare_reads(struct store *store, struct store_table *st)
{
    char *sql;
    size_t i;

    if (st->why_not)
        return TPC_OK;
    sql = select_sql(&st->t, NULL, &st->t.pk.cols);
    st->row_stmt = sql ? prepare(store->db, sql) : NULL;
    free(sql);
    if (!st->row_stmt)
        return TPC_ERR_IO;
    sql = write_sql(&st->t, false);
    st->delete_stmt = sql ? prepare(store->db, sql) : NULL;
    free(sql);
    sql = write_sql(&st->t, true);
    st->insert_stmt = sql ? prepare(store->db, sql) : NULL;
    free(sql);
    if (!st->delete_stmt || !st->insert_stmt)
        return TPC_ERR_IO;
    if (st->nullable_key) {
        struct sqlbuf b = {0};

        sql_str(&b, "SELECT 1 FROM ");
        sql_ident(&b, st->t.name);
        for (i = 0; i < st->t.pk.cols.n; i++) {
            sql_str(&b, i ? " OR " : " WHERE ");
            sql_ident(&b, st->t.colnames[st->t.pk.cols.col[i]]);
            sql_str(&b, " IS NULL");
        }
        sql_str(&b, " LIMIT 1");
        st->null_key_stmt = b.s ? prepare(store->db, b.s) : NULL;
        free(b.s);
        if (!st->null_key_stmt)
            return TPC_ERR_IO;
    }
    st->parent_stmt = calloc(st->t.n_fks ? st->t.n_fks : 1, sizeof(*st->parent_stmt));
    if (!st->parent_stmt)
        return TPC_ERR_NOMEM;
    for (i = 0; i < st->t.n_fks; i++) {
        struct store_table *p = store_table_find(store, st->t.fks[i].parent);
        struct lockset_cols *pc = p && st->t.fks[i].parent_key < p->t.n_parent_keys
                                      ? &p->t.parent_keys[st->t.fks[i].parent_key].cols
                                      : NULL;

        sql = pc ? select_sql(&p->t, pc, pc) : NULL;
        st->parent_stmt[i] = sql ? prepare(store->db, sql) : NULL;
        free(sql);
        if (!st->parent_stmt[i])
            return TPC_ERR_IO;
    }
    return TPC_OK;
}

enum tpc_err store_schema_load(struct store *st, char *err, size_t errlen)
{
    sqlite3_stmt *s = prepare(st->db, "SELECT name FROM sqlite_schema WHERE type = 'table'");
    enum tpc_err rc = TPC_OK;
    size_t i;

    if (!s)
        return tpc_errbuf_set(err, errlen, TPC_ERR_IO, "sqlite: %s", sqlite3_errmsg(st->db));
    while (!rc && sqlite3_step(s) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(s, 0);
        struct store_table *bigger;

        if (!name || store_is_reserved(name))
            continue;
        if (st->n_tables == STORE_MAX_TABLES) {
            rc = tpc_errbuf_set(err, errlen, TPC_ERR_TOO_BIG, "more than %d tables",
                                STORE_MAX_TABLES);
            break;
        }
        bigger = realloc(st->tables, (st->n_tables + 1) * sizeof(*bigger));
        if (!bigger) {
            rc = TPC_ERR_NOMEM;
            break;
        }
        st->tables = bigger;
        memset(&st->tables[st->n_tables], 0, sizeof(st->tables[0]));
        if (!(st->tables[st->n_tables].t.name = strdup(name))) {
            rc = TPC_ERR_NOMEM;
            break;
        }
        st->n_tables++;
        rc = load_table(st->db, &st->tables[st->n_tables - 1]);
    }
    sqlite3_finalize(s);
    for (i = 0; i < st->n_tables && !rc; i++)
        rc = load_fks(st, &st->tables[i]);
    for (i = 0; i < st->n_tables && !rc; i++)
        rc = load_actions(st, &st->tables[i]);
    /* A table refers to one read-only to branches: it is too (its rows' parents could not be
     * held). Repeat until nothing changes: chains of references. */
    for (bool more = true; more && !rc;) {
        more = false;
        for (i = 0; i < st->n_tables; i++) {
            struct store_table *t = &st->tables[i];

            for (size_t f = 0; f < t->t.n_fks && !t->why_not; f++) {
                struct store_table *p = store_table_find(st, t->t.fks[f].parent);

                if (p && p->why_not) {
                    t->why_not = dup_printf("its FOREIGN KEY refers to %s, which is read-only "
                                            "to branches",
                                            p->t.name);
                    more = true;
                }
            }
        }
    }
    for (i = 0; i < st->n_tables && !rc; i++)
        rc = prepare_reads(st, &st->tables[i]);
    for (i = 0; i < st->n_tables && !rc; i++)
        if (st->tables[i].why_not)
            log_info("table %s is read-only to branches: %s", st->tables[i].t.name,
                     st->tables[i].why_not);
    if (rc && !err[0])
        tpc_errbuf_set(err, errlen, rc, "cannot load the tables' constraints: %s",
                       sqlite3_errmsg(st->db));
    return rc;
}

void store_schema_free(struct store *st)
{
    size_t i, f;

    for (i = 0; i < st->n_tables; i++) {
        struct store_table *t = &st->tables[i];

        sqlite3_finalize(t->row_stmt);
        sqlite3_finalize(t->delete_stmt);
        sqlite3_finalize(t->insert_stmt);
        sqlite3_finalize(t->null_key_stmt);
        for (f = 0; t->parent_stmt && f < t->t.n_fks; f++)
            sqlite3_finalize(t->parent_stmt[f]);
        free(t->parent_stmt);
        free(t->why_not);
        lockset_table_free(&t->t);
    }
    free(st->tables);
    st->tables = NULL;
    st->n_tables = 0;
}

struct store_table *store_change_table(struct store *st, sqlite3_changeset_iter *it, int *op)
{
    const char *table;
    int ncol, indirect;
    struct store_table *t;

    sqlite3changeset_op(it, &table, &ncol, op, &indirect);
    t = store_table_find(st, table);
    if (!t || t->why_not || (size_t)ncol != t->t.ncol) {
        log_error("a changeset holds a change to %s that no branch can make", table);
        return NULL;
    }
    return t;
}

bool store_fires_actions(struct store *st, const void *changeset, int len)
{
    sqlite3_changeset_iter *it = NULL;
    bool fires = false;

    if (!st->any_actions || len <= 0)
        return false;
    if (sqlite3changeset_start(&it, len, (void *)changeset) != SQLITE_OK)
        return true; /* the apply will say what is wrong */
    while (!fires && sqlite3changeset_next(it) == SQLITE_ROW) {
        const char *table;
        int ncol, op, indirect;
        struct store_table *t;

        sqlite3changeset_op(it, &table, &ncol, &op, &indirect);
        t = store_table_find(st, table);
        fires = op != SQLITE_INSERT && (!t || t->fires_actions);
    }
    sqlite3changeset_finalize(it);
    return fires;
}

const char *store_why_not_writable(struct store *st, const char *table)
{
    struct store_table *t = store_table_find(st, table);

    return t ? t->why_not : NULL;
}

void store_note_written(struct store *st, const char *table)
{
    struct store_table *t = store_table_find(st, table);

    if (t)
        t->written = true;
}

const char *store_null_keys(struct store *st, bool check)
{
    const char *bad = NULL;
    size_t i;

    for (i = 0; i < st->n_tables; i++) {
        struct store_table *t = &st->tables[i];

        if (check && t->written && t->null_key_stmt && !bad &&
            sqlite3_step(t->null_key_stmt) == SQLITE_ROW)
            bad = t->t.name;
        if (t->null_key_stmt)
            sqlite3_reset(t->null_key_stmt);
        t->written = false;
    }
    return bad;
}
