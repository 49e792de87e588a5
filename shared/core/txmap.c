/* txmap.c - see txmap.h. FNV-1a over the id; chains; the table doubles at load 1. */
#include "txmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TXMAP_START 2 /* it doubles as it fills: a large map costs a few doublings */

static size_t hash(const char *id)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 1099511628211ULL;
    return (size_t)h;
}

enum tpc_err txmap_init(struct txmap *m)
{
    m->n = 0;
    m->n_buckets = TXMAP_START;
    m->bucket = calloc(m->n_buckets, sizeof(*m->bucket));
    return m->bucket ? TPC_OK : TPC_ERR_NOMEM;
}

void txmap_fini(struct txmap *m)
{
    free(m->bucket);
    m->bucket = NULL;
    m->n = m->n_buckets = 0;
}

struct txmap_entry *txmap_get(const struct txmap *m, const char *id)
{
    struct txmap_entry *e;

    for (e = m->bucket[hash(id) % m->n_buckets]; e; e = e->next)
        if (strcmp(e->id, id) == 0)
            return e;
    return NULL;
}

static void grow(struct txmap *m)
{
    size_t nb = m->n_buckets * 2, i;
    struct txmap_entry **b = calloc(nb, sizeof(*b)), *e, *next;

    if (!b)
        return; /* longer chains, still correct */
    for (i = 0; i < m->n_buckets; i++) {
        for (e = m->bucket[i]; e; e = next) {
            size_t k = hash(e->id) % nb;

            next = e->next;
            e->next = b[k];
            b[k] = e;
        }
    }
    free(m->bucket);
    m->bucket = b;
    m->n_buckets = nb;
}

enum tpc_err txmap_add(struct txmap *m, struct txmap_entry *e)
{
    size_t k;

    if (m->n >= m->n_buckets)
        grow(m);
    k = hash(e->id) % m->n_buckets;
    e->next = m->bucket[k];
    m->bucket[k] = e;
    m->n++;
    return TPC_OK;
}

void txmap_del(struct txmap *m, struct txmap_entry *e)
{
    struct txmap_entry **p = &m->bucket[hash(e->id) % m->n_buckets];

    for (; *p; p = &(*p)->next) {
        if (*p == e) {
            *p = e->next;
            e->next = NULL;
            m->n--;
            return;
        }
    }
}

void txmap_each(struct txmap *m, void (*fn)(void *ctx, struct txmap_entry *e), void *ctx)
{
    struct txmap_entry *e, *next;
    size_t i;

    for (i = 0; i < m->n_buckets; i++) {
        for (e = m->bucket[i]; e; e = next) {
            next = e->next;
            fn(ctx, e);
        }
    }
}
