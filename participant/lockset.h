/*
 * lockset.h - which locks a change to one row needs, so that a branch that
 * voted prepared can always be applied (DESIGN.md section 5, "Locks").
 *
 * Pure: a table's constraints as the participant loaded them (store_schema.c
 * reads them from SQLite), a row's values before and after, and out come the
 * lock keys (locks.h), each exclusive or shared:
 *
 *   row      R  the primary key                    insert, update, delete: exclusive
 *   unique   U  each UNIQUE index's key values     insert: new; delete: old; update that
 *                                                  changes them (any update, for a partial
 *                                                  index): old and new; exclusive
 *   parent   F  a key other tables' FOREIGN KEYs   delete, or update that changes it: old,
 *               refer to (this table's side)       exclusive (no new child meanwhile)
 *   child    F  the parent key a row refers to     insert, or update that changes the
 *               (the parent's stored values)       foreign key columns: shared (the parent
 *                                                  stays; other children may join)
 *
 * A value is locked as the constraint compares it: text under the index's
 * collation (NOCASE folds ASCII letters and, as SQLite's does, compares up to a
 * NUL character and the lengths; RTRIM drops trailing spaces), a real with an
 * integral value as that integer; a key holding a NULL constrains
 * nothing and locks nothing. Long texts and blobs are locked by length, hash and
 * prefix: two different values may then share a lock (a needless wait, never a
 * missed conflict).
 */
#ifndef TPC_LOCKSET_H
#define TPC_LOCKSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpc_err.h"

#define LOCKSET_MAX_COLS 64   /* columns in one key */
#define LOCKSET_KEY_MAX  4096 /* bytes in one lock key */

enum lockset_type { LOCKSET_NULL, LOCKSET_INT, LOCKSET_REAL, LOCKSET_TEXT, LOCKSET_BLOB };

struct lockset_value {
    enum lockset_type type;
    int64_t i;
    double r;
    const void *p; /* TEXT, BLOB: n bytes */
    size_t n;
};

enum lockset_coll { LOCKSET_BINARY, LOCKSET_NOCASE, LOCKSET_RTRIM };

/* Columns of one key, by their position in the table's rows. */
struct lockset_cols {
    size_t n;
    int col[LOCKSET_MAX_COLS];
    enum lockset_coll coll[LOCKSET_MAX_COLS];
};

/* A key of a table: a UNIQUE index's, or one that foreign keys refer to. name: its column
 * names, comma-separated (the lock keys carry it). */
struct lockset_key {
    char *name;
    struct lockset_cols cols;
    bool partial; /* a partial UNIQUE index: whether a row is in it may change with any column */
};

/* A FOREIGN KEY of this table: cols refer to key `keyname` of table `parent` (whose columns
 * come in ascending position; cols in the same order). */
struct lockset_fk {
    char *parent;
    char *keyname;
    size_t parent_key; /* its index in the parent's parent_keys */
    struct lockset_cols cols;
};

struct lockset_table {
    char *name;
    size_t ncol;
    char **colnames;
    struct lockset_key pk;
    struct lockset_key *unique; /* UNIQUE indexes besides the primary key */
    size_t n_unique;
    struct lockset_fk *fks;
    size_t n_fks;
    struct lockset_key *parent_keys; /* the keys other tables' foreign keys refer to */
    size_t n_parent_keys;
};

typedef void (*lockset_emit_fn)(void *ctx, const void *key, size_t len, bool shared);

/*
 * True when a change from old to new (NULL old: an insert; NULL new: a delete) makes
 * fks[fk] refer to a parent row, so that lockset_change wants that row's key values.
 */
bool lockset_fk_refers(const struct lockset_table *t, size_t fk, const struct lockset_value *old,
                       const struct lockset_value *new_);

/*
 * Emits every lock the change of one row from old to new needs (rows of t->ncol values;
 * old NULL for an insert, new NULL for a delete). parents[i], for each fks[i] that
 * lockset_fk_refers, is the referred parent row's key values as stored (NULL when
 * there is none). TPC_ERR_TOO_BIG: a key would exceed LOCKSET_KEY_MAX.
 */
enum tpc_err lockset_change(const struct lockset_table *t, const struct lockset_value *old,
                            const struct lockset_value *new_,
                            const struct lockset_value *const *parents, lockset_emit_fn emit,
                            void *ctx);

/* A key as people read it, for error messages: "row users(7)", "UNIQUE users.email 'a@x'". */
void lockset_describe(const void *key, size_t len, char *buf, size_t buflen);

void lockset_table_free(struct lockset_table *t);

#endif
