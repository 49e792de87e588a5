/*
 * branch.h - what the participant program keeps of a branch besides its
 * protocol state (which the driver, shared/core/resource.h, keeps): the
 * cumulative changeset of its statements and the locks it holds.
 *
 * A branch lives in the table from its first statement (or its reload after a
 * restart) until the write that ends it is durable; then its locks are
 * released and it leaves the table. Its mutex serializes what touches its
 * changeset: a statement running, the write that prepares or ends it. It is
 * recursive, because a thread that holds it to prepare or end the branch also
 * carries out the write (engine.c), which takes it too. Lock order: a
 * branch's mutex before the driver's lock, never the other way.
 */
#ifndef TPC_PART_BRANCH_H
#define TPC_PART_BRANCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "api_error.h"
#include "locks.h"
#include "msg.h"
#include "table.h"

struct branch {
    struct table_entry e; /* first: the table's entry; e.id is the txid, e.gone once ended */
    pthread_mutex_t mu;   /* recursive; see above */
    void *changeset;
    int cs_len;
    struct lock_key *keys; /* each data malloc'd */
    size_t n_keys, cap_keys;
    /* The last exec that carried a sequence number: a repeat of it gets its answer again and
     * runs nothing (participant.c). */
    uint32_t last_seq;   /* 0: none yet */
    char *last_req;      /* its statements, as canonical JSON */
    json_t *last_answer; /* its answer, or NULL and last_error */
    struct api_error last_error;
};

/* The table's callbacks (table_init(..., branch_create, branch_destroy, NULL)). */
struct table_entry *branch_create(void *ctx, const char *txid);
void branch_destroy(struct table_entry *e);

/* The locks a changeset needs, taken for the branch (store_exec's accept callback). */
struct branch_take {
    struct locks *locks;
    struct store *store;
    struct branch *b;
    struct lock_key *keys;
    size_t n, cap;
    bool oom;
    enum tpc_err rc; /* why the keys could not be made (oom set too) */
    char blocker[TPC_TXID_MAX + 1];
    char what[160]; /* the key blocked, as lockset_describe says it */
    uint64_t gen;
    bool *fresh; /* keys[i] newly taken by the last try */
};

/* store_accept_fn: takes the locks the changeset needs (lockset.h), all or none. */
bool branch_take_locks(void *ctx, const void *changeset, int len);
/*
 * Adds the keys the last try newly locked to the branch's list, for release at its end.
 * Out of memory: gives those locks back and says so (the caller drops the new changes).
 */
bool branch_remember_keys(struct branch_take *t);
void branch_take_free(struct branch_take *t);

/* Releases the branch's locks and takes it out of the table (under b->mu). */
void branch_end(struct table *branches, struct locks *locks, struct branch *b);

#endif
