/*
 * store_rows.c - a branch's changeset read row by row, each row whole (an update's unchanged
 * columns and a child's parent read from the branch's own state): the locks it needs
 * (store_branch_keys), and applying it one row at a time when SQLite cannot in place
 * (store_apply_rows).
 */
#define SQLITE_ENABLE_SESSION 1

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_int.h"

/* ---- the locks of a changeset ---- */

static void from_sqlite(struct lockset_value *out, sqlite3_value *v)
{
    memset(out, 0, sizeof(*out));
    switch (v ? sqlite3_value_type(v) : SQLITE_NULL) {
    case SQLITE_INTEGER:
        out->type = LOCKSET_INT;
        out->i = sqlite3_value_int64(v);
        break;
    case SQLITE_FLOAT:
        out->type = LOCKSET_REAL;
        out->r = sqlite3_value_double(v);
        break;
    case SQLITE_TEXT:
        out->type = LOCKSET_TEXT;
        out->p = sqlite3_value_text(v);
        out->n = (size_t)sqlite3_value_bytes(v);
        break;
    case SQLITE_BLOB:
        out->type = LOCKSET_BLOB;
        out->p = sqlite3_value_blob(v);
        out->n = (size_t)sqlite3_value_bytes(v);
        break;
    default:
        out->type = LOCKSET_NULL;
        break;
    }
}

/* Protected copies of the values a change's locks are made from (freed together). */
struct held {
    sqlite3_value **v;
    size_t n, cap;
    bool oom;
};

static sqlite3_value *hold(struct held *h, sqlite3_value *v)
{
    sqlite3_value *copy;

    if (!v)
        return NULL;
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 32;
        sqlite3_value **bigger = realloc(h->v, cap * sizeof(*bigger));

        if (!bigger) {
            h->oom = true;
            return NULL;
        }
        h->v = bigger;
        h->cap = cap;
    }
    copy = sqlite3_value_dup(v);
    if (!copy) {
        h->oom = true;
        return NULL;
    }
    h->v[h->n++] = copy;
    return copy;
}

static void held_clear(struct held *h)
{
    size_t i;

    for (i = 0; i < h->n; i++)
        sqlite3_value_free(h->v[i]);
    h->n = 0;
}

/*
 * The row as the branch left it (an update's new values), read by primary key into row
 * (t->ncol values). False when it is not there.
 */
static void bind_value(sqlite3_stmt *s, int i, const struct lockset_value *v)
{
    switch (v->type) {
    case LOCKSET_INT:
        sqlite3_bind_int64(s, i, v->i);
        break;
    case LOCKSET_REAL:
        sqlite3_bind_double(s, i, v->r);
        break;
    case LOCKSET_TEXT:
        sqlite3_bind_text(s, i, v->p, (int)v->n, SQLITE_STATIC);
        break;
    case LOCKSET_BLOB:
        sqlite3_bind_blob(s, i, v->p, (int)v->n, SQLITE_STATIC);
        break;
    default:
        sqlite3_bind_null(s, i);
        break;
    }
}

/* Binds the primary key of row (t->ncol values, the key's set) to s's parameters 1... */
static void bind_key(struct store_table *t, sqlite3_stmt *s, const struct lockset_value *row)
{
    size_t i;

    for (i = 0; i < t->t.pk.cols.n; i++)
        bind_value(s, (int)i + 1, &row[t->t.pk.cols.col[i]]);
}

static bool read_row(struct store_table *t, const struct lockset_value *key, struct held *h,
                     struct lockset_value *row)
{
    sqlite3_stmt *s = t->row_stmt;
    bool found = false;
    size_t i;

    bind_key(t, s, key);
    if (sqlite3_step(s) == SQLITE_ROW) {
        found = true;
        for (i = 0; i < t->t.ncol; i++)
            from_sqlite(&row[i], hold(h, sqlite3_column_value(s, (int)i)));
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return found && !h->oom;
}

/* The stored key values of the parent row that fks[f] of new refers to: into parent, or
 * false when there is none. */
static bool read_parent(struct store_table *t, size_t f, const struct lockset_value *new_,
                        struct held *h, struct lockset_value *parent)
{
    sqlite3_stmt *s = t->parent_stmt[f];
    const struct lockset_cols *c = &t->t.fks[f].cols;
    bool found = false;
    size_t i;

    for (i = 0; i < c->n; i++)
        bind_value(s, (int)i + 1, &new_[c->col[i]]);
    if (sqlite3_step(s) == SQLITE_ROW) {
        found = true;
        for (i = 0; i < c->n; i++)
            from_sqlite(&parent[i], hold(h, sqlite3_column_value(s, (int)i)));
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return found && !h->oom;
}

/* One change of the changeset: its locks. */
static enum tpc_err change_keys(struct store_table *t, sqlite3_changeset_iter *it, int op,
                                struct held *h, lockset_emit_fn emit, void *ctx)
{
    size_t ncol = t->t.ncol, i;
    struct lockset_value *oldv = calloc(ncol, sizeof(*oldv)), *newv = calloc(ncol, sizeof(*newv));
    struct lockset_value *pvals =
        calloc(t->t.n_fks ? t->t.n_fks : 1, LOCKSET_MAX_COLS * sizeof(*pvals));
    const struct lockset_value **parents = calloc(t->t.n_fks ? t->t.n_fks : 1, sizeof(*parents));
    bool whole = t->t.n_unique || t->t.n_fks || t->t.n_parent_keys;
    enum tpc_err rc = TPC_OK;

    if (!oldv || !newv || !pvals || !parents) {
        rc = TPC_ERR_NOMEM;
        goto out;
    }
    for (i = 0; i < ncol; i++) {
        sqlite3_value *v = NULL;

        if (op != SQLITE_INSERT && sqlite3changeset_old(it, (int)i, &v) == SQLITE_OK)
            from_sqlite(&oldv[i], v);
        v = NULL;
        if (op == SQLITE_INSERT && sqlite3changeset_new(it, (int)i, &v) == SQLITE_OK)
            from_sqlite(&newv[i], v);
    }
    if (op == SQLITE_UPDATE) {
        /* A changeset's update holds the columns it changed: the rest, as the branch left
         * them, are the same before and after. Only the key matters to a table without
         * constraints. */
        if (!whole) {
            rc = lockset_change(&t->t, oldv, oldv, NULL, emit, ctx);
            goto out;
        }
        if (!read_row(t, oldv, h, newv)) {
            rc = h->oom ? TPC_ERR_NOMEM : TPC_ERR_STATE;
            goto out;
        }
        for (i = 0; i < ncol; i++) {
            sqlite3_value *v = NULL;

            if (sqlite3changeset_old(it, (int)i, &v) != SQLITE_OK || !v)
                oldv[i] = newv[i];
        }
    }
    for (i = 0; i < t->t.n_fks; i++) {
        const struct lockset_value *o = op == SQLITE_INSERT ? NULL : oldv;
        const struct lockset_value *n = op == SQLITE_DELETE ? NULL : newv;

        if (lockset_fk_refers(&t->t, i, o, n) &&
            read_parent(t, i, newv, h, &pvals[i * LOCKSET_MAX_COLS]))
            parents[i] = &pvals[i * LOCKSET_MAX_COLS];
        if (h->oom) {
            rc = TPC_ERR_NOMEM;
            goto out;
        }
    }
    rc = lockset_change(&t->t, op == SQLITE_INSERT ? NULL : oldv, op == SQLITE_DELETE ? NULL : newv,
                        parents, emit, ctx);
out:
    free(oldv);
    free(newv);
    free(pvals);
    free(parents);
    return rc;
}

enum tpc_err store_branch_keys(struct store *st, const void *changeset, int len,
                               lockset_emit_fn emit, void *ctx)
{
    sqlite3_changeset_iter *it = NULL;
    struct held h = {0};
    enum tpc_err rc = TPC_OK;
    int r = SQLITE_DONE;

    if (len <= 0)
        return TPC_OK;
    if (sqlite3changeset_start(&it, len, (void *)changeset) != SQLITE_OK)
        return TPC_ERR_INVALID;
    while (!rc && (r = sqlite3changeset_next(it)) == SQLITE_ROW) {
        int op;
        struct store_table *t = store_change_table(st, it, &op);

        if (!t) {
            rc = TPC_ERR_STATE;
            break;
        }
        rc = change_keys(t, it, op, &h, emit, ctx);
        held_clear(&h);
    }
    if (!rc && r != SQLITE_DONE)
        rc = TPC_ERR_INVALID;
    sqlite3changeset_finalize(it);
    free(h.v);
    return rc;
}

/* ---- applying row by row ---- */

struct new_row {
    struct store_table *t;
    struct lockset_value *v; /* t->t.ncol values */
};

/* One change's first half: its old row out; its new row (an insert's, an update's whole row
 * as it ends) into *keep. */
static bool take_out(struct store_table *t, sqlite3_changeset_iter *it, int op, struct held *h,
                     struct new_row *keep)
{
    size_t ncol = t->t.ncol, i;
    struct lockset_value *oldv = calloc(ncol, sizeof(*oldv)), *newv = calloc(ncol, sizeof(*newv));
    bool ok = oldv && newv;

    for (i = 0; ok && i < ncol; i++) {
        sqlite3_value *v = NULL;

        if (op == SQLITE_INSERT) {
            if (sqlite3changeset_new(it, (int)i, &v) == SQLITE_OK)
                from_sqlite(&newv[i], hold(h, v));
        } else if (sqlite3changeset_old(it, (int)i, &v) == SQLITE_OK && v) {
            from_sqlite(&oldv[i], hold(h, v));
        }
    }
    if (ok && op == SQLITE_UPDATE) {
        ok = read_row(t, oldv, h, newv);
        for (i = 0; ok && i < ncol; i++) {
            sqlite3_value *v = NULL;

            if (sqlite3changeset_new(it, (int)i, &v) == SQLITE_OK && v)
                from_sqlite(&newv[i], hold(h, v));
        }
    }
    if (ok && op != SQLITE_INSERT) {
        bind_key(t, t->delete_stmt, oldv);
        ok = sqlite3_step(t->delete_stmt) == SQLITE_DONE &&
             sqlite3_changes(sqlite3_db_handle(t->delete_stmt)) == 1;
        sqlite3_reset(t->delete_stmt);
        sqlite3_clear_bindings(t->delete_stmt);
    }
    ok = ok && !h->oom;
    free(oldv);
    if (ok && op != SQLITE_DELETE) {
        keep->t = t;
        keep->v = newv;
    } else {
        free(newv);
    }
    return ok;
}

bool store_apply_rows(struct store *st, const void *changeset, int len, bool check_fks)
{
    sqlite3_changeset_iter *it = NULL;
    struct new_row *rows = NULL;
    size_t n = 0, cap = 0, i;
    struct held h = {0};
    bool ok = true;

    if (sqlite3_exec(st->db, "SAVEPOINT tpc_apply", NULL, NULL, NULL) != SQLITE_OK)
        return false;
    ok = sqlite3changeset_start(&it, len, (void *)changeset) == SQLITE_OK;
    while (ok && sqlite3changeset_next(it) == SQLITE_ROW) {
        int op;
        struct store_table *t = store_change_table(st, it, &op);

        if (!t) {
            ok = false;
            break;
        }
        if (n == cap) {
            struct new_row *bigger = realloc(rows, (cap ? cap * 2 : 16) * sizeof(*bigger));

            if (!bigger) {
                ok = false;
                break;
            }
            rows = bigger;
            cap = cap ? cap * 2 : 16;
        }
        rows[n].v = NULL;
        ok = take_out(t, it, op, &h, &rows[n]);
        n += rows[n].v != NULL;
    }
    if (it)
        ok = sqlite3changeset_finalize(it) == SQLITE_OK && ok;
    /* Every old row is out: the new ones go in; the branch left them consistent. */
    for (i = 0; ok && i < n; i++) {
        sqlite3_stmt *s = rows[i].t->insert_stmt;
        size_t c;

        for (c = 0; c < rows[i].t->t.ncol; c++)
            bind_value(s, (int)c + 1, &rows[i].v[c]);
        ok = sqlite3_step(s) == SQLITE_DONE;
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    }
    if (ok && check_fks) {
        int pending = 0, high = 0;

        ok = sqlite3_db_status(st->db, SQLITE_DBSTATUS_DEFERRED_FKS, &pending, &high, 0) ==
                 SQLITE_OK &&
             pending == 0;
    }
    for (i = 0; i < n; i++)
        free(rows[i].v);
    free(rows);
    held_clear(&h);
    free(h.v);
    if (!ok)
        sqlite3_exec(st->db, "ROLLBACK TO tpc_apply", NULL, NULL, NULL);
    sqlite3_exec(st->db, "RELEASE tpc_apply", NULL, NULL, NULL);
    return ok;
}
