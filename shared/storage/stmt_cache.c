/* stmt_cache.c - see stmt_cache.h. */
#include "stmt_cache.h"

#include <string.h>

void stmt_cache_init(struct stmt_cache *c, sqlite3 *db)
{
    memset(c, 0, sizeof(*c));
    c->db = db;
}

void stmt_cache_fini(struct stmt_cache *c)
{
    size_t i;

    for (i = 0; i < c->n; i++)
        sqlite3_finalize(c->e[i].st);
    c->n = 0;
}

sqlite3_stmt *stmt_get(struct stmt_cache *c, const char *sql)
{
    sqlite3_stmt *st = NULL;
    size_t i;

    for (i = 0; i < c->n; i++)
        if (c->e[i].sql == sql)
            return c->e[i].st;
    if (c->n == STMT_CACHE_MAX || !c->db ||
        sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return NULL;
    }
    c->e[c->n].sql = sql;
    c->e[c->n++].st = st;
    return st;
}

void stmt_done(sqlite3_stmt *st)
{
    if (!st)
        return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}
