/*
 * locks.h - per-primary-key write locks of transaction branches (DESIGN.md section 4).
 *
 * A key is a byte string naming one row: table name and primary-key values
 * (made by branch.c from a changeset). A branch takes the keys its changes
 * touch and holds them until its outcome is applied, so no two branches have
 * uncommitted changes to one row. Waiting for a key happens outside the
 * database lock, bounded by a deadline: a conflict ends in an error, never a
 * hang.
 *
 * Thread-safe; all functions take the table's own mutex.
 */
#ifndef TPC_LOCKS_H
#define TPC_LOCKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct locks;

struct lock_key {
    const void *data;
    size_t len;
};

struct locks *locks_new(void);
void locks_free(struct locks *l);

/*
 * Takes every key for owner, all or none. Keys the owner holds already are
 * fine. Returns true when all are taken; otherwise takes none and copies the
 * first conflicting owner's id into blocker (of blocker_len bytes). *gen is
 * set to the release count seen, for locks_wait. When fresh is not NULL,
 * fresh[i] says whether keys[i] was taken by this call (not held before).
 */
bool locks_try_take(struct locks *l, const char *owner, const struct lock_key *keys, size_t n,
                    char *blocker, size_t blocker_len, uint64_t *gen, bool *fresh_out);

/* Releases those of keys that owner holds, and wakes the waiters. */
void locks_release(struct locks *l, const char *owner, const struct lock_key *keys, size_t n);

/*
 * Waits until a release happens after the one counted in gen, or the absolute
 * CLOCK_MONOTONIC deadline passes (then false). Callers retry locks_try_take.
 */
bool locks_wait(struct locks *l, uint64_t gen, const struct timespec *deadline);

#endif
