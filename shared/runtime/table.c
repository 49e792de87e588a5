/* table.c - see table.h: chained hash buckets under one mutex. */
#include "table.h"

#include <stdlib.h>
#include <string.h>

static size_t bucket_of(const char *id)
{
    size_t h = 5381;

    while (*id)
        h = h * 33 + (unsigned char)*id++;
    return h % TABLE_BUCKETS;
}

void table_init(struct table *t, struct table_entry *(*create)(void *ctx, const char *id),
                void (*destroy)(struct table_entry *e), void *ctx)
{
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->mu, NULL);
    t->create = create;
    t->destroy = destroy;
    t->ctx = ctx;
}

void table_fini(struct table *t)
{
    struct table_entry *e, *next;
    size_t i;

    for (i = 0; i < TABLE_BUCKETS; i++)
        for (e = t->bucket[i]; e; e = next) {
            next = e->next;
            t->destroy(e);
        }
    pthread_mutex_destroy(&t->mu);
}

struct table_entry *table_get(struct table *t, const char *id, bool create)
{
    size_t b = bucket_of(id);
    struct table_entry *e;

    pthread_mutex_lock(&t->mu);
    for (e = t->bucket[b]; e; e = e->next)
        if (strcmp(e->id, id) == 0)
            break;
    if (!e && create && (e = t->create(t->ctx, id)) != NULL) {
        msg_copy_str(e->id, TPC_TXID_MAX, id);
        e->next = t->bucket[b];
        t->bucket[b] = e;
        t->n++;
    }
    if (e)
        e->refs++;
    pthread_mutex_unlock(&t->mu);
    return e;
}

void table_put(struct table *t, struct table_entry *e)
{
    bool last;

    pthread_mutex_lock(&t->mu);
    last = --e->refs == 0 && e->gone;
    pthread_mutex_unlock(&t->mu);
    if (last)
        t->destroy(e);
}

void table_remove(struct table *t, struct table_entry *e)
{
    struct table_entry **pp;

    pthread_mutex_lock(&t->mu);
    for (pp = &t->bucket[bucket_of(e->id)]; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            t->n--;
            break;
        }
    }
    e->gone = true;
    pthread_mutex_unlock(&t->mu);
}

size_t table_size(struct table *t)
{
    size_t n;

    pthread_mutex_lock(&t->mu);
    n = t->n;
    pthread_mutex_unlock(&t->mu);
    return n;
}

void table_foreach(struct table *t, void (*fn)(struct table_entry *e, void *ctx), void *ctx)
{
    struct table_entry *e;
    size_t i;

    pthread_mutex_lock(&t->mu);
    for (i = 0; i < TABLE_BUCKETS; i++)
        for (e = t->bucket[i]; e; e = e->next)
            fn(e, ctx);
    pthread_mutex_unlock(&t->mu);
}

size_t table_snapshot(struct table *t, struct table_entry ***out)
{
    struct table_entry *e, **list;
    size_t i, n = 0;

    *out = NULL;
    pthread_mutex_lock(&t->mu);
    list = t->n ? malloc(t->n * sizeof(*list)) : NULL;
    for (i = 0; list && i < TABLE_BUCKETS; i++)
        for (e = t->bucket[i]; e; e = e->next) {
            e->refs++;
            list[n++] = e;
        }
    pthread_mutex_unlock(&t->mu);
    *out = list;
    return n;
}
