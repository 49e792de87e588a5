/*
 * acc_store_int.h - what acc_store.c and acc_collect.c share of the replica's store (see
 * acc_store.h); nobody else includes it.
 */
#ifndef TPC_ACC_STORE_INT_H
#define TPC_ACC_STORE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "acc_store.h"
#include "horizon_store.h"
#include "stmt_cache.h"

struct acc_store {
    pthread_mutex_t mu; /* every SQLite call on db */
    sqlite3 *db;
    pthread_mutex_t rmu;      /* every call on rdb */
    sqlite3 *rdb;             /* the reads: never behind the writer's transaction or fsync */
    struct stmt_cache wstmts; /* db's statements (under mu) */
    struct stmt_cache rstmts; /* rdb's statements (under rmu) */
    pthread_mutex_t smu;      /* every call on sdb */
    sqlite3 *sdb;             /* the sweep's long scan, so that it holds up no other read */
    struct groupcommit *gc;
    uint32_t self, n_replicas;
    struct horizon_store horizon; /* meta 'horizon' */
    bool horizon_up;
    int64_t retention_ms;
};

/* ACC_OP_COLLECT inside the committer's transaction (acc_collect.c): false with gerr set when
 * it failed. */
bool acc_collect(struct acc_store *s, struct acc_op *op, sqlite3 *db, char *gerr, size_t gl);

#endif
