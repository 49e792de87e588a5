/* branch.c - see branch.h. */
#include "branch.h"

#include <stdlib.h>
#include <string.h>

#include "lockset.h"
#include "store.h"

struct table_entry *branch_create(void *ctx, const char *txid)
{
    struct branch *b = calloc(1, sizeof(*b));
    pthread_mutexattr_t attr;

    (void)ctx;
    (void)txid;
    if (!b)
        return NULL;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&b->mu, &attr);
    pthread_mutexattr_destroy(&attr);
    return &b->e;
}

static void free_keys(struct lock_key *keys, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free((void *)keys[i].data);
    free(keys);
}

void branch_destroy(struct table_entry *e)
{
    struct branch *b = (struct branch *)e;

    free_keys(b->keys, b->n_keys);
    free(b->changeset);
    free(b->last_req);
    json_decref(b->last_answer);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static void collect_key(void *ctx, const void *key, size_t n, bool shared)
{
    struct branch_take *t = ctx;
    struct lock_key *bigger;
    void *copy;

    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;

        bigger = realloc(t->keys, cap * sizeof(*bigger));
        if (!bigger) {
            t->oom = true;
            return;
        }
        t->keys = bigger;
        t->cap = cap;
    }
    copy = malloc(n);
    if (!copy) {
        t->oom = true;
        return;
    }
    memcpy(copy, key, n);
    t->keys[t->n].data = copy;
    t->keys[t->n].len = n;
    t->keys[t->n].shared = shared;
    t->n++;
}

void branch_take_free(struct branch_take *t)
{
    free_keys(t->keys, t->n);
    free(t->fresh);
    t->keys = NULL;
    t->fresh = NULL;
    t->n = t->cap = 0;
}

bool branch_take_locks(void *ctx, const void *changeset, int len)
{
    struct branch_take *t = ctx;
    size_t blocked = 0;

    branch_take_free(t);
    t->oom = false;
    t->what[0] = '\0';
    t->rc = store_branch_keys(t->store, changeset, len, collect_key, t);
    if (!t->rc && (t->oom || !(t->fresh = calloc(t->n ? t->n : 1, sizeof(*t->fresh)))))
        t->rc = TPC_ERR_NOMEM;
    if (t->rc) {
        t->oom = true;
        return false;
    }
    if (locks_try_take(t->locks, t->b->e.id, t->keys, t->n, &blocked, t->blocker,
                       sizeof(t->blocker), &t->gen, t->fresh))
        return true;
    if (blocked < t->n)
        lockset_describe(t->keys[blocked].data, t->keys[blocked].len, t->what, sizeof(t->what));
    return false;
}

bool branch_remember_keys(struct branch_take *t)
{
    struct branch *b = t->b;
    size_t i, fresh = 0;

    for (i = 0; i < t->n; i++)
        fresh += t->fresh[i];
    if (b->n_keys + fresh > b->cap_keys) {
        size_t cap = b->n_keys + fresh + 16;
        struct lock_key *bigger = realloc(b->keys, cap * sizeof(*bigger));

        if (!bigger) {
            for (i = 0; i < t->n; i++)
                if (t->fresh[i])
                    locks_release(t->locks, b->e.id, &t->keys[i], 1);
            return false;
        }
        b->keys = bigger;
        b->cap_keys = cap;
    }
    for (i = 0; i < t->n; i++) {
        if (!t->fresh[i])
            continue;
        b->keys[b->n_keys++] = t->keys[i];
        t->keys[i].data = NULL; /* moved */
    }
    return true;
}

void branch_end(struct table *branches, struct locks *locks, struct branch *b)
{
    if (b->e.gone)
        return;
    locks_release(locks, b->e.id, b->keys, b->n_keys);
    table_remove(branches, &b->e);
}
