/*
 * stmt_cache.h - the prepared statements of one SQLite connection, kept between calls:
 * preparing a statement costs more than running most of ours, and the acceptor and the
 * participant run the same few statements for every transaction.
 *
 * A statement's SQL is a string literal, and its address is the key. Use a cache under the
 * same mutex as its connection, and stmt_done every statement it gave before the next call
 * on that connection: a statement not reset keeps its read transaction (and its WAL snapshot)
 * open.
 */
#ifndef TPC_STMT_CACHE_H
#define TPC_STMT_CACHE_H

#include <sqlite3.h>
#include <stddef.h>

#define STMT_CACHE_MAX 16 /* statements per connection; more is a bug (stmt_get says NULL) */

struct stmt_cache {
    sqlite3 *db;
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } e[STMT_CACHE_MAX];
    size_t n;
};

void stmt_cache_init(struct stmt_cache *c, sqlite3 *db);
/* Finalizes every statement (before the connection closes). */
void stmt_cache_fini(struct stmt_cache *c);
/* The statement of sql, ready to bind and step; NULL when it does not prepare. */
sqlite3_stmt *stmt_get(struct stmt_cache *c, const char *sql);
/* Resets st and clears its bindings; NULL is fine. */
void stmt_done(sqlite3_stmt *st);

#endif
