/*
 * txmap.h - transactions by id: an intrusive hash map for the drivers.
 *
 * The caller embeds struct txmap_entry first in its own struct and owns the
 * memory: the map only links entries. Not thread-safe (the drivers are called
 * one event at a time). The bucket array doubles as the map grows; it never
 * shrinks below its start size.
 */
#ifndef TPC_TXMAP_H
#define TPC_TXMAP_H

#include <stdbool.h>
#include <stddef.h>

#include "msg.h"
#include "tpc_err.h"

struct txmap_entry {
    struct txmap_entry *next;
    char id[TPC_TXID_MAX + 1];
};

struct txmap {
    struct txmap_entry **bucket;
    size_t n_buckets, n;
};

enum tpc_err txmap_init(struct txmap *m);
/* Frees the bucket array; entries still linked are the caller's to free first. */
void txmap_fini(struct txmap *m);
struct txmap_entry *txmap_get(const struct txmap *m, const char *id);
/* Links e (e->id set, not linked yet). TPC_ERR_NOMEM leaves the map as it was. */
enum tpc_err txmap_add(struct txmap *m, struct txmap_entry *e);
void txmap_del(struct txmap *m, struct txmap_entry *e);
/* Calls fn on every entry; fn may unlink (and free) the entry it is given, no other. */
void txmap_each(struct txmap *m, void (*fn)(void *ctx, struct txmap_entry *e), void *ctx);

#endif
