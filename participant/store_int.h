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
#include "stmt_cache.h"
#include "store.h"

#define STORE_MAX_TABLES 1024

struct store {
    pthread_mutex_t mu;
    sqlite3 *db;
    uint32_t max_rows, statement_ms;
    int64_t exec_deadline; /* monotonic ms; while in_branch, statements stop past it */
    bool in_branch;
    bool compiling;   /* a client's statement is being prepared (not the session's own SQL) */
    char denied[256]; /* the first refusal of the statement, for the error message */
    char why[256];    /* scratch for the latest refusal */
    char *tables[STORE_MAX_TABLES];  /* the user tables */
    char *why_not[STORE_MAX_TABLES]; /* why a branch may not write one; NULL: it may */
    size_t n_tables;
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
/* sqlite3changeset_apply's conflict handler: any conflict aborts the apply. */
int store_conflict_abort(void *ctx, int kind, sqlite3_changeset_iter *it);

#endif
