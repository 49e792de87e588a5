/*
 * horizon_store.c - see horizon_store.h.
 */
#include "horizon_store.h"

#include <stdio.h>
#include <time.h>

void horizon_store_init(struct horizon_store *h, sqlite3 *db, const char *table,
                        int64_t retention_ms)
{
    char sql[128];
    sqlite3_stmt *st = NULL;

    pthread_mutex_init(&h->mu, NULL);
    h->retention_ms = retention_ms;
    h->floor = 0;
    snprintf(sql, sizeof(sql), "SELECT value FROM %s WHERE key = 'horizon'", table);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        h->floor = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
}

void horizon_store_fini(struct horizon_store *h)
{
    pthread_mutex_destroy(&h->mu);
}

int64_t horizon_store_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t horizon_store_now(struct horizon_store *h)
{
    int64_t v = horizon_store_wall_ms() - h->retention_ms;

    pthread_mutex_lock(&h->mu);
    if (v < h->floor)
        v = h->floor; /* the clock went back: the horizon does not */
    pthread_mutex_unlock(&h->mu);
    return v > 0 ? (uint64_t)v : 0;
}

bool horizon_store_save(sqlite3 *db, const char *table, uint64_t horizon)
{
    char sql[128];
    sqlite3_stmt *st = NULL;
    bool ok = false;

    snprintf(sql, sizeof(sql), "INSERT OR REPLACE INTO %s(key, value) VALUES ('horizon', ?)",
             table);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)horizon);
        ok = sqlite3_step(st) == SQLITE_DONE;
    }
    sqlite3_finalize(st);
    return ok;
}

void horizon_store_raised(struct horizon_store *h, uint64_t horizon)
{
    pthread_mutex_lock(&h->mu);
    if ((int64_t)horizon > h->floor)
        h->floor = (int64_t)horizon;
    pthread_mutex_unlock(&h->mu);
}

int horizon_store_add_column(sqlite3 *db, const char *table, const char *column, const char *decl)
{
    char sql[256];
    sqlite3_stmt *st = NULL;
    int found = 0, rc;

    snprintf(sql, sizeof(sql), "SELECT 1 FROM pragma_table_info('%s') WHERE name = '%s'", table,
             column);
    rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    if (rc != SQLITE_OK || found)
        return rc;
    snprintf(sql, sizeof(sql), "ALTER TABLE %s ADD COLUMN %s %s", table, column, decl);
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}
