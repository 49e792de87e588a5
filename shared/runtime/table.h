/*
 * table.h - a thread-safe table of reference-counted entries keyed by id
 * (transaction ids), for the participant's branches and the coordinator's
 * transactions.
 *
 * An entry is embedded at the start of the owner's struct. table_get returns
 * it with a reference; table_put gives the reference back; table_remove takes
 * it out of the table (lookups no longer find it), and the last table_put of
 * a removed entry frees it with the table's free function.
 */
#ifndef TPC_TABLE_H
#define TPC_TABLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "msg.h"

#define TABLE_BUCKETS 1024

struct table_entry {
    struct table_entry *next;
    char id[TPC_TXID_MAX + 1];
    int refs;
    bool gone; /* removed from the table */
};

struct table {
    pthread_mutex_t mu;
    struct table_entry *bucket[TABLE_BUCKETS];
    size_t n;
    /* Makes a new zeroed entry for id (NULL when out of memory); frees one. */
    struct table_entry *(*create)(void *ctx, const char *id);
    void (*destroy)(struct table_entry *e);
    void *ctx;
};

void table_init(struct table *t, struct table_entry *(*create)(void *ctx, const char *id),
                void (*destroy)(struct table_entry *e), void *ctx);
/* Frees every entry still in the table (no references may be held). */
void table_fini(struct table *t);

/* id's entry with a reference, created when missing and create is true; else NULL. */
struct table_entry *table_get(struct table *t, const char *id, bool create);
void table_put(struct table *t, struct table_entry *e);
void table_remove(struct table *t, struct table_entry *e);
size_t table_size(struct table *t);

/*
 * A snapshot: every entry, each with a reference (put each back with table_put).
 * *out is malloc'd (free it); NULL and 0 when empty or out of memory. Callers then
 * look at each entry under its own lock, not under the table's.
 */
size_t table_snapshot(struct table *t, struct table_entry ***out);

/* Calls fn on every entry under the table's lock; fn must not call back into the table. */
void table_foreach(struct table *t, void (*fn)(struct table_entry *e, void *ctx), void *ctx);

#endif
