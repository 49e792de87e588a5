/*
 * locks.h - the locks of transaction branches (DESIGN.md section 5).
 *
 * A key is a byte string naming a row, a UNIQUE value or a referenced key
 * (lockset.h makes them from a branch's changes). A branch takes the keys its
 * changes need and holds them until its outcome is applied. A key is held
 * exclusively by one branch, or shared by any number (a child row's hold on
 * its parent); a branch that alone shares a key may make its hold exclusive.
 * Waiting for a key happens outside the database lock, bounded by a deadline:
 * a conflict ends in an error, never a hang.
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
    bool shared;
};

struct locks *locks_new(void);
void locks_free(struct locks *l);

/*
 * Takes every key for owner, all or none, each in its mode. A key the owner
 * holds already is fine (a shared hold becomes exclusive when asked and no one
 * else holds it). Returns true when all are taken; otherwise takes none and
 * sets *blocked to the index of the first conflicting key and copies its
 * holder's id into blocker (of blocker_len bytes). *gen is set to the release
 * count seen, for locks_wait. When fresh is not NULL, fresh[i] says whether
 * keys[i] was taken by this call (not held before).
 */
bool locks_try_take(struct locks *l, const char *owner, const struct lock_key *keys, size_t n,
                    size_t *blocked, char *blocker, size_t blocker_len, uint64_t *gen,
                    bool *fresh_out);

/* Releases those of keys that owner holds (whatever the mode), and wakes the waiters. */
void locks_release(struct locks *l, const char *owner, const struct lock_key *keys, size_t n);

/*
 * Waits until a release happens after the one counted in gen, or the absolute
 * CLOCK_MONOTONIC deadline passes (then false). Callers retry locks_try_take.
 */
bool locks_wait(struct locks *l, uint64_t gen, const struct timespec *deadline);

#endif
