/*
 * locks.c - the key lock table of locks.h: a chained hash table with one
 * entry per (key, owner) held, one mutex, one condition variable broadcast
 * on release. Releases are rare compared with lookups, so a broadcast is
 * cheap enough.
 *
 * Invariant (asserted): a key's entries are one exclusive, or any number
 * shared, each of a different owner.
 */
#include "locks.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"

#define LOCKS_BUCKETS 4096

struct lock_entry {
    struct lock_entry *next;
    char owner[TPC_TXID_MAX + 1];
    bool shared;
    size_t len;
    unsigned char key[]; /* len bytes */
};

struct locks {
    pthread_mutex_t mu;
    pthread_cond_t released;
    uint64_t generation; /* bumped on every release, so a waiter sees it happened */
    struct lock_entry *bucket[LOCKS_BUCKETS];
};

static uint32_t hash(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t h = 2166136261u; /* FNV-1a */
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

struct locks *locks_new(void)
{
    struct locks *l = calloc(1, sizeof(*l));
    pthread_condattr_t attr;

    if (!l)
        return NULL;
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&l->released, &attr);
    pthread_condattr_destroy(&attr);
    return l;
}

void locks_free(struct locks *l)
{
    size_t b;

    if (!l)
        return;
    for (b = 0; b < LOCKS_BUCKETS; b++) {
        struct lock_entry *e = l->bucket[b], *next;

        for (; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    pthread_cond_destroy(&l->released);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static bool same_key(const struct lock_entry *e, const struct lock_key *k)
{
    return e->len == k->len && memcmp(e->key, k->data, k->len) == 0;
}

/* owner's entry for k, or NULL. */
static struct lock_entry *find_own(struct locks *l, const struct lock_key *k, const char *owner)
{
    struct lock_entry *e = l->bucket[hash(k->data, k->len) % LOCKS_BUCKETS];

    for (; e; e = e->next)
        if (same_key(e, k) && strcmp(e->owner, owner) == 0)
            return e;
    return NULL;
}

/* Another owner's entry that keeps owner from holding k in k's mode, or NULL. */
static struct lock_entry *find_conflict(struct locks *l, const struct lock_key *k,
                                        const char *owner)
{
    struct lock_entry *e = l->bucket[hash(k->data, k->len) % LOCKS_BUCKETS];
    size_t exclusive = 0, holders = 0;
    struct lock_entry *found = NULL;

    for (; e; e = e->next) {
        if (!same_key(e, k))
            continue;
        holders++;
        exclusive += !e->shared;
        if (!found && strcmp(e->owner, owner) != 0 && (!k->shared || !e->shared))
            found = e;
    }
    assert(exclusive == 0 || holders == 1);
    (void)exclusive;
    (void)holders;
    return found;
}

bool locks_try_take(struct locks *l, const char *owner, const struct lock_key *keys, size_t n,
                    size_t *blocked, char *blocker, size_t blocker_len, uint64_t *gen,
                    bool *fresh_out)
{
    struct lock_entry **fresh = calloc(n ? n : 1, sizeof(*fresh));
    bool ok = fresh != NULL;
    size_t i;

    if (blocker_len)
        blocker[0] = '\0';
    *blocked = 0;
    for (i = 0; fresh_out && i < n; i++)
        fresh_out[i] = false;
    pthread_mutex_lock(&l->mu);
    *gen = l->generation;
    /* 1: any key another owner's hold conflicts with means none is taken. */
    for (i = 0; ok && i < n; i++) {
        struct lock_entry *e = find_conflict(l, &keys[i], owner);

        if (e) {
            if (blocker_len)
                snprintf(blocker, blocker_len, "%s", e->owner);
            *blocked = i;
            ok = false;
        }
    }
    /* 2: allocate every new entry before inserting any, so failure leaves nothing behind. */
    for (i = 0; ok && i < n; i++) {
        if (find_own(l, &keys[i], owner))
            continue;
        fresh[i] = malloc(sizeof(*fresh[i]) + keys[i].len);
        if (!fresh[i]) {
            ok = false;
            if (blocker_len)
                snprintf(blocker, blocker_len, "(out of memory)");
        }
    }
    /* 3: insert, or make a shared hold exclusive (a key given twice is held once, in the
     * stronger mode). */
    for (i = 0; i < n && fresh; i++) {
        struct lock_entry *e = fresh[i], *own;
        uint32_t b;

        if (!ok) {
            free(e);
            continue;
        }
        own = find_own(l, &keys[i], owner);
        if (own) {
            free(e);
            if (!keys[i].shared)
                own->shared = false;
            continue;
        }
        if (fresh_out)
            fresh_out[i] = true;
        snprintf(e->owner, sizeof(e->owner), "%s", owner);
        e->shared = keys[i].shared;
        e->len = keys[i].len;
        memcpy(e->key, keys[i].data, keys[i].len);
        b = hash(keys[i].data, keys[i].len) % LOCKS_BUCKETS;
        e->next = l->bucket[b];
        l->bucket[b] = e;
    }
    pthread_mutex_unlock(&l->mu);
    free(fresh);
    return ok;
}

void locks_release(struct locks *l, const char *owner, const struct lock_key *keys, size_t n)
{
    bool any = false;
    size_t i;

    pthread_mutex_lock(&l->mu);
    for (i = 0; i < n; i++) {
        struct lock_entry **pp = &l->bucket[hash(keys[i].data, keys[i].len) % LOCKS_BUCKETS];

        for (; *pp; pp = &(*pp)->next) {
            struct lock_entry *e = *pp;

            if (same_key(e, &keys[i]) && strcmp(e->owner, owner) == 0) {
                *pp = e->next;
                free(e);
                any = true;
                break;
            }
        }
    }
    if (any) {
        l->generation++;
        pthread_cond_broadcast(&l->released);
    }
    pthread_mutex_unlock(&l->mu);
}

bool locks_wait(struct locks *l, uint64_t gen, const struct timespec *deadline)
{
    int rc = 0;

    bool released;

    pthread_mutex_lock(&l->mu);
    while (gen == l->generation && rc == 0)
        rc = pthread_cond_timedwait(&l->released, &l->mu, deadline);
    released = gen != l->generation;
    pthread_mutex_unlock(&l->mu);
    return released;
}
