/*
 * lockset.c - the locks of a row change (see lockset.h).
 *
 * A lock key is: its kind ('R', 'U' or 'F'), the table's name, NUL, the key's
 * column names, NUL, then each value as a tag byte and bytes. Values are put
 * in the form the constraint compares them in, so that two values SQLite
 * would find equal make one key.
 */
#include "lockset.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LONG_VALUE 128 /* longer texts and blobs go in as length, hash and prefix */
#define PREFIX     32

struct keybuf {
    unsigned char b[LOCKSET_KEY_MAX];
    size_t n;
    bool over;
};

static void put(struct keybuf *k, const void *p, size_t n)
{
    if (k->over || n > sizeof(k->b) - k->n) {
        k->over = true;
        return;
    }
    memcpy(k->b + k->n, p, n);
    k->n += n;
}

static void put_byte(struct keybuf *k, unsigned char c)
{
    put(k, &c, 1);
}

static unsigned char fold(unsigned char c, bool nocase)
{
    return nocase && c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/*
 * Text or blob bytes (tag 't' or 'b'): its length, then n of its bytes, NOCASE-folded when asked
 * (n is less than len for NOCASE text with a NUL: SQLite's NOCASE compares the lengths and the
 * bytes up to the first NUL only); a long one as its length, a hash and a prefix (tag 'T' or
 * 'B').
 */
static void put_bytes(struct keybuf *k, char tag, const unsigned char *p, size_t len, size_t n,
                      bool nocase)
{
    uint32_t len32 = (uint32_t)len, n32 = (uint32_t)n;
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    size_t i;

    if (n <= LONG_VALUE) {
        put_byte(k, (unsigned char)tag);
        put(k, &len32, sizeof(len32));
        put(k, &n32, sizeof(n32));
        for (i = 0; i < n; i++)
            put_byte(k, fold(p[i], nocase));
        return;
    }
    for (i = 0; i < n; i++) {
        h ^= fold(p[i], nocase);
        h *= 1099511628211ull;
    }
    put_byte(k, (unsigned char)(tag == 't' ? 'T' : 'B'));
    put(k, &len32, sizeof(len32));
    put(k, &h, sizeof(h));
    for (i = 0; i < PREFIX; i++)
        put_byte(k, fold(p[i], nocase));
}

/* A real SQLite finds equal to an integer is that integer. */
static bool integral(double r, int64_t *out)
{
    if (!(r >= -9223372036854775808.0 && r < 9223372036854775808.0))
        return false;
    *out = (int64_t)r;
    return (double)*out == r;
}

static void put_value(struct keybuf *k, const struct lockset_value *v, enum lockset_coll coll)
{
    size_t n = v->n;
    int64_t iv;

    switch (v->type) {
    case LOCKSET_INT:
        put_byte(k, 'i');
        put(k, &v->i, sizeof(v->i));
        return;
    case LOCKSET_REAL:
        if (integral(v->r, &iv)) {
            put_byte(k, 'i');
            put(k, &iv, sizeof(iv));
        } else {
            put_byte(k, 'r');
            put(k, &v->r, sizeof(v->r));
        }
        return;
    case LOCKSET_TEXT: {
        const unsigned char *nul;

        if (coll == LOCKSET_RTRIM)
            while (n > 0 && ((const unsigned char *)v->p)[n - 1] == ' ')
                n--;
        if (coll == LOCKSET_NOCASE && n > 0 && (nul = memchr(v->p, '\0', n)) != NULL) {
            put_bytes(k, 't', v->p, n, (size_t)(nul - (const unsigned char *)v->p) + 1, true);
            return;
        }
        put_bytes(k, 't', v->p, n, n, coll == LOCKSET_NOCASE);
        return;
    }
    case LOCKSET_BLOB:
        put_bytes(k, 'b', v->p, n, n, false);
        return;
    case LOCKSET_NULL:
    default:
        put_byte(k, 'n');
        return;
    }
}

/* Whether every column of key c holds a value (a NULL makes the key constrain nothing). */
static bool all_set(const struct lockset_cols *c, const struct lockset_value *row)
{
    size_t i;

    for (i = 0; i < c->n; i++)
        if (row[c->col[i]].type == LOCKSET_NULL)
            return false;
    return true;
}

static bool same_value(const struct lockset_value *a, const struct lockset_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case LOCKSET_INT:
        return a->i == b->i;
    case LOCKSET_REAL:
        return a->r == b->r;
    case LOCKSET_TEXT:
    case LOCKSET_BLOB:
        return a->n == b->n && (a->n == 0 || memcmp(a->p, b->p, a->n) == 0);
    default:
        return true;
    }
}

static bool changed(const struct lockset_cols *c, const struct lockset_value *old,
                    const struct lockset_value *new_)
{
    size_t i;

    for (i = 0; i < c->n; i++)
        if (!same_value(&old[c->col[i]], &new_[c->col[i]]))
            return true;
    return false;
}

/* One key: kind, table, key name, values (vals[i] for column i of c, in c's order). */
static enum tpc_err emit_key(char kind, const char *table, const char *name,
                             const struct lockset_cols *c, const struct lockset_value *const *vals,
                             bool shared, lockset_emit_fn emit, void *ctx)
{
    struct keybuf *k = malloc(sizeof(*k));
    size_t i;

    if (!k)
        return TPC_ERR_NOMEM;
    k->n = 0;
    k->over = false;
    put_byte(k, (unsigned char)kind);
    put(k, table, strlen(table) + 1);
    put(k, name, strlen(name) + 1);
    for (i = 0; i < c->n; i++)
        put_value(k, vals[i], kind == 'F' ? LOCKSET_BINARY : c->coll[i]);
    if (k->over) {
        free(k);
        return TPC_ERR_TOO_BIG;
    }
    emit(ctx, k->b, k->n, shared);
    free(k);
    return TPC_OK;
}

/* The key of c in row (a full row of the table). */
static enum tpc_err emit_row_key(char kind, const struct lockset_table *t,
                                 const struct lockset_key *key, const struct lockset_value *row,
                                 bool shared, lockset_emit_fn emit, void *ctx)
{
    const struct lockset_value *vals[LOCKSET_MAX_COLS];
    size_t i;

    for (i = 0; i < key->cols.n; i++)
        vals[i] = &row[key->cols.col[i]];
    return emit_key(kind, t->name, key->name, &key->cols, vals, shared, emit, ctx);
}

bool lockset_fk_refers(const struct lockset_table *t, size_t fk, const struct lockset_value *old,
                       const struct lockset_value *new_)
{
    const struct lockset_cols *c = &t->fks[fk].cols;

    return new_ && all_set(c, new_) && (!old || changed(c, old, new_));
}

enum tpc_err lockset_change(const struct lockset_table *t, const struct lockset_value *old,
                            const struct lockset_value *new_,
                            const struct lockset_value *const *parents, lockset_emit_fn emit,
                            void *ctx)
{
    enum tpc_err rc;
    size_t i, j;

    /* The row itself: its primary key, which an update never changes (a changeset shows a
     * new key as a delete and an insert). */
    rc = emit_row_key('R', t, &t->pk, old ? old : new_, false, emit, ctx);
    /* Unique values: the old one (freed only at the outcome) and the new one. */
    for (i = 0; i < t->n_unique && !rc; i++) {
        const struct lockset_key *u = &t->unique[i];

        if (old && new_ && !u->partial && !changed(&u->cols, old, new_))
            continue;
        if (old && all_set(&u->cols, old))
            rc = emit_row_key('U', t, u, old, false, emit, ctx);
        if (!rc && new_ && all_set(&u->cols, new_))
            rc = emit_row_key('U', t, u, new_, false, emit, ctx);
    }
    /* This row as a parent: the key it gives up, against new children. */
    for (i = 0; i < t->n_parent_keys && !rc && old; i++) {
        const struct lockset_key *pk = &t->parent_keys[i];

        if (new_ && !changed(&pk->cols, old, new_))
            continue;
        if (all_set(&pk->cols, old))
            rc = emit_row_key('F', t, pk, old, false, emit, ctx);
    }
    /* This row as a child: the parent it refers to stays. */
    for (i = 0; i < t->n_fks && !rc; i++) {
        const struct lockset_fk *fk = &t->fks[i];
        const struct lockset_value *vals[LOCKSET_MAX_COLS];

        if (!lockset_fk_refers(t, i, old, new_) || !parents || !parents[i])
            continue;
        for (j = 0; j < fk->cols.n; j++)
            vals[j] = &parents[i][j];
        rc = emit_key('F', fk->parent, fk->keyname, &fk->cols, vals, true, emit, ctx);
    }
    return rc;
}

/* ---- descriptions ---- */

struct out {
    char *b;
    size_t len, n;
};

static void say(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int w;

    if (o->n + 1 >= o->len)
        return;
    va_start(ap, fmt);
    w = vsnprintf(o->b + o->n, o->len - o->n, fmt, ap);
    va_end(ap);
    if (w > 0)
        o->n = o->n + (size_t)w < o->len ? o->n + (size_t)w : o->len - 1;
}

/* Text as printable ASCII (error messages are), at most 40 characters. */
static void say_text(struct out *o, const unsigned char *p, size_t n, bool more)
{
    size_t i;

    say(o, "'");
    for (i = 0; i < n && i < 40; i++)
        say(o, "%c", p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\'' ? p[i] : '?');
    say(o, "%s'", n > 40 || more ? "..." : "");
}

void lockset_describe(const void *key, size_t len, char *buf, size_t buflen)
{
    const unsigned char *p = key, *end = p + len;
    struct out o = {buf, buflen, 0};
    const char *table, *cols;
    int values = 0;

    if (!buflen)
        return;
    buf[0] = '\0';
    if (len < 3 || !memchr(p + 1, '\0', len - 1))
        return;
    table = (const char *)p + 1;
    cols = table + strlen(table) + 1;
    if ((const unsigned char *)cols >= end ||
        !memchr(cols, '\0', (size_t)(end - (const unsigned char *)cols)))
        return;
    say(&o, "%s %s(%s) = (",
        p[0] == 'R'   ? "the row"
        : p[0] == 'U' ? "the UNIQUE value"
                      : "the referenced key",
        table, cols);
    p = (const unsigned char *)cols + strlen(cols) + 1;
    while (p < end) {
        unsigned char tag = *p++;
        uint32_t n = 0;

        if (values++)
            say(&o, ", ");
        if ((tag == 'i' || tag == 'r') && end - p >= 8) {
            int64_t iv;
            double dv;

            if (tag == 'i') {
                memcpy(&iv, p, 8);
                say(&o, "%lld", (long long)iv);
            } else {
                memcpy(&dv, p, 8);
                say(&o, "%.17g", dv);
            }
            p += 8;
            continue;
        }
        if (end - p < 4)
            break;
        memcpy(&n, p, 4); /* the value's length */
        p += 4;
        if ((tag == 't' || tag == 'b') && end - p >= 4) {
            uint32_t bytes;

            memcpy(&bytes, p, 4);
            p += 4;
            if ((size_t)(end - p) < bytes)
                break;
            if (tag == 't')
                say_text(&o, p, bytes, bytes < n);
            else
                say(&o, "a blob of %u bytes", n);
            p += bytes;
        } else if ((tag == 'T' || tag == 'B') && end - p >= 8 + PREFIX) {
            if (tag == 'T')
                say_text(&o, p + 8, PREFIX, true);
            else
                say(&o, "a blob of %u bytes", n);
            p += 8 + PREFIX;
        } else {
            break;
        }
    }
    say(&o, ")");
}

static void key_free(struct lockset_key *k)
{
    free(k->name);
}

void lockset_table_free(struct lockset_table *t)
{
    size_t i;

    if (!t)
        return;
    free(t->name);
    for (i = 0; i < t->ncol && t->colnames; i++)
        free(t->colnames[i]);
    free(t->colnames);
    key_free(&t->pk);
    for (i = 0; i < t->n_unique; i++)
        key_free(&t->unique[i]);
    free(t->unique);
    for (i = 0; i < t->n_fks; i++) {
        free(t->fks[i].parent);
        free(t->fks[i].keyname);
    }
    free(t->fks);
    for (i = 0; i < t->n_parent_keys; i++)
        key_free(&t->parent_keys[i]);
    free(t->parent_keys);
    memset(t, 0, sizeof(*t));
}
