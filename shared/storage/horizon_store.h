/*
 * horizon_store.h - what both stores need to forget old transactions
 * (DESIGN.md section 11): a durable horizon that never goes down, and the
 * columns a state file of an older version lacks.
 *
 * The horizon is now - retention, but never below the highest one made
 * durable: what a store deleted below it stays refused below it, even if the
 * clock goes back.
 */
#ifndef TPC_HORIZON_STORE_H
#define TPC_HORIZON_STORE_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

struct horizon_store {
    pthread_mutex_t mu; /* floor */
    int64_t retention_ms;
    int64_t floor; /* the highest horizon made durable */
};

/* Reads the durable horizon from table(key TEXT PRIMARY KEY, value INTEGER), row 'horizon'. */
void horizon_store_init(struct horizon_store *h, sqlite3 *db, const char *table,
                        int64_t retention_ms);
void horizon_store_fini(struct horizon_store *h);
/* Milliseconds since 1970 (the clock a transaction's born is read on). */
int64_t horizon_store_wall_ms(void);
/* The horizon now (any thread). */
uint64_t horizon_store_now(struct horizon_store *h);
/* Inside the writer's transaction: makes horizon durable in table before anything below it is
 * deleted; horizon_store_raised once that transaction committed. */
bool horizon_store_save(sqlite3 *db, const char *table, uint64_t horizon);
void horizon_store_raised(struct horizon_store *h, uint64_t horizon);

/* Adds column `decl` to table unless it has it (a state file of an older version): SQLITE_OK
 * or SQLite's error. */
int horizon_store_add_column(sqlite3 *db, const char *table, const char *column, const char *decl);

#endif
