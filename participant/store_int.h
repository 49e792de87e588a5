/*
 * store_int.h - what store.c (open, durable steps, reads) and store_exec.c
 * (branch execution) share: the store itself. Private to the participant's
 * storage; everyone else uses store.h.
 */
#ifndef TPC_STORE_INT_H
#define TPC_STORE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "groupcommit.h"
#include "horizon_store.h"
#include "lockset.h"
#include "stmt_cache.h"
#include "store.h"

#define STORE_MAX_TABLES 1024

/* A user table: its constraints (lockset.h), and the statements store_rows.c reads and writes
 * its rows with. */
struct store_table {
    struct lockset_table t;
    char *why_not;               /* why a branch may not write it; NULL: it may */
    sqlite3_stmt *row_stmt;      /* its row by primary key, every column */
    sqlite3_stmt *delete_stmt;   /* DELETE by primary key */
    sqlite3_stmt *insert_stmt;   /* INSERT of every column */
    sqlite3_stmt **parent_stmt;  /* per t.fks[i]: the parent's key values by the child's */
    bool fires_actions;          /* a foreign key refers to it with ON DELETE/UPDATE CASCADE,
                                    SET NULL or SET DEFAULT */
    bool nullable_key;           /* a rowid table whose PRIMARY KEY may hold NULL */
    sqlite3_stmt *null_key_stmt; /* whether a row's key holds a NULL */
    bool written;                /* a statement of the running exec may write it */
};

struct store {
    pthread_mutex_t mu;
    sqlite3 *db;
    uint32_t max_rows, statement_ms;
    int64_t exec_deadline; /* monotonic ms; while in_branch, statements stop past it */
    bool in_branch;
    bool compiling;   /* a client's statement is being prepared (not the session's own SQL) */
    char denied[256]; /* the first refusal of the statement, for the error message */
    char why[256];    /* scratch for the latest refusal */
    struct store_table *tables; /* the user tables (store_schema.c) */
    size_t n_tables;
    bool any_actions;             /* some table fires_actions */
    uint64_t apply_failures;      /* commits whose changeset did not apply (atomic) */
    struct groupcommit *gc;       /* durable steps (groupcommit.h) */
    pthread_mutex_t rmu;          /* rdb */
    sqlite3 *rdb;                 /* reads that must not wait for the writer (sqlite_reader.h) */
    struct stmt_cache wstmts;     /* db's own statements (under mu) */
    struct stmt_cache rstmts;     /* rdb's (under rmu) */
    struct horizon_store horizon; /* tpc_meta 'horizon' (DESIGN.md section 11) */
    bool horizon_up;
};

/* Monotonic milliseconds. */
int64_t store_mono_ms(void);
/* A bookkeeping or SQLite table: no branch may touch it. */
bool store_is_reserved(const char *table);
/* The end a tpc_outcome row's text names. */
enum rm_state store_end_state(const char *t);
/* How txid ended here (RM_NONE: it did not). Under st->mu. */
enum rm_state store_recorded(struct store *st, const char *txid);
/*
 * Applies a branch's changeset (under st->mu, inside a transaction); false when it does not
 * apply (nothing of it is left then). Foreign keys are enforced, but for a changeset that
 * deletes or updates a row foreign keys refer to with an action (CASCADE, SET NULL): the
 * changeset holds what the action did when its statements ran, which must not happen twice,
 * so it applies with enforcement off (DESIGN.md section 5.1).
 */
bool store_apply(struct store *st, const void *changeset, int len);
/* Whether applying changeset with foreign keys enforced could fire an action. */
bool store_fires_actions(struct store *st, const void *changeset, int len);

/* The tables' constraints and statements (store_schema.c), loaded at open. */
enum tpc_err store_schema_load(struct store *st, char *err, size_t errlen);
void store_schema_free(struct store *st);
/* The user table name (any case), or NULL. */
struct store_table *store_table_find(struct store *st, const char *name);
/* The table a changeset's current change is to, and its op; NULL (logged) when no branch could
 * have made it (a table unknown, read-only, or of another shape). */
struct store_table *store_change_table(struct store *st, sqlite3_changeset_iter *it, int *op);
/* store_apply's way when sqlite3changeset_apply cannot: every old row out, then every new row
 * in (a branch that swapped two UNIQUE values). Under st->mu; check_fks: foreign keys are
 * enforced and deferred, and none may be left failing at the end. */
bool store_apply_rows(struct store *st, const void *changeset, int len, bool check_fks);
/* Why a branch may not write table (NULL: it may, or it is not a user table). */
const char *store_why_not_writable(struct store *st, const char *table);
/* A branch's statement being compiled may write table: store_null_keys looks at it. */
void store_note_written(struct store *st, const char *table);
/* After an exec's statements (check): a table it wrote that holds a row whose PRIMARY KEY has
 * a NULL (the session extension would record nothing of that row), or NULL. Forgets what was
 * written, which is all it does when check is false. */
const char *store_null_keys(struct store *st, bool check);

#endif
