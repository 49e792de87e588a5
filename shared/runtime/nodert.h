/*
 * nodert.h - the runtime around a node driver (shared/core/replica.h,
 * resource.h) in the programs: one lock that serializes every call into the
 * driver, outboxes that collect what the driver asks for during a call, and a
 * pool of worker threads that carry out outboxes nobody waits for.
 *
 * The pattern, in every thread that feeds the driver an event:
 *
 *     struct nodert_box box = {0};
 *     nodert_enter(rt, &box);        the driver's lock; its io goes into box
 *     replica_commit(...);           any event call
 *     nodert_leave(rt);
 *     ... carry out box's sends and writes (no lock held), feed their answers
 *     and completions back between nodert_enter and nodert_leave, repeat ...
 *     nodert_hand_off(rt, &box);     what is left, to a worker
 *
 * The driver's node_io send and persist (nodert_io_send, nodert_io_persist with
 * ctx = the struct nodert) append to the box of the thread inside. Nothing is
 * carried out under the lock, so one slow peer or disk never holds the driver.
 * A thread that waits for a condition on the driver's state waits with
 * nodert_wait (woken whenever any thread leaves). Thread-safe.
 *
 * The participant uses all of it. The coordinator calls its driver on its event loop only
 * (coordinator/engine.h): it uses the outbox (nodert_enter collects, the loop starts what was
 * collected at once), with no worker threads.
 */
#ifndef TPC_NODERT_H
#define TPC_NODERT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "msg.h"
#include "node_io.h"
#include "tpc_err.h"

#define NODERT_MAX_WORKERS 32
#define NODERT_QUEUE       4096 /* outboxes waiting for a worker; more run inline */

struct nodert_item {
    bool write; /* a node_write (w), else a message (to, m) */
    struct node_addr to;
    union {
        struct msg m;
        struct node_write w;
    };
};

/* What one thread has to carry out. The box owns items. */
struct nodert_box {
    struct nodert_item *items;
    size_t n, cap;
    bool nudge; /* handed to a worker even when empty (its run does work of its own) */
};

struct nodert {
    pthread_mutex_t mu;     /* the driver's lock */
    pthread_cond_t changed; /* broadcast at every nodert_leave */
    struct nodert_box *cur; /* the box of the thread inside; NULL when none is */
    pthread_mutex_t qmu;    /* the workers' queue */
    pthread_cond_t qcv;
    struct nodert_box *queue[NODERT_QUEUE];
    size_t head, queued;
    bool stop;
    pthread_t threads[NODERT_MAX_WORKERS];
    size_t n_threads;
    /* carries out a box to its end (sends, writes, answers fed back); frees nothing */
    void (*run)(void *ctx, struct nodert_box *box);
    void *ctx;
    uint64_t rng; /* xorshift state of nodert_io_random (called inside only: under mu) */
};

enum tpc_err nodert_init(struct nodert *rt, size_t workers,
                         void (*run)(void *ctx, struct nodert_box *box), void *ctx);
/* Stops the workers after they carried out what is queued; hand-offs then run inline. */
void nodert_stop(struct nodert *rt);
/* nodert_stop, then frees what nodert_init made. */
void nodert_fini(struct nodert *rt);

void nodert_enter(struct nodert *rt, struct nodert_box *box);
void nodert_leave(struct nodert *rt);
/* Inside: waits until another thread leaves, or until deadline_ms (monotonic); false then. */
bool nodert_wait(struct nodert *rt, struct nodert_box *box, int64_t deadline_ms);

/* Moves box's items to a new box for a worker (run inline when the queue is full). */
void nodert_hand_off(struct nodert *rt, struct nodert_box *box);

/* Moves the items of from into to (to must be empty); from is left empty. */
void nodert_box_move(struct nodert_box *to, struct nodert_box *from);
void nodert_box_free(struct nodert_box *box);

/* node_io functions. ctx: the struct nodert, or a struct that has it as its first member. */
uint64_t nodert_io_now(void *ctx);
uint64_t nodert_io_random(void *ctx);
void nodert_io_send(void *ctx, const struct node_addr *to, const struct msg *m);
void nodert_io_persist(void *ctx, const struct node_write *w);

/* Monotonic milliseconds. */
int64_t nodert_now_ms(void);

#endif
