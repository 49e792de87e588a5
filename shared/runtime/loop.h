/*
 * loop.h - one event loop per process (epoll): file descriptors to watch,
 * timers, and messages posted from other threads.
 *
 * Everything a program does on the loop runs on the loop's thread, one callback
 * at a time, and must not block: the network (http_server.h, http_client.h)
 * lives here, and work that blocks (a durable write, a SQL statement that waits
 * for a lock) runs on a thread of its own that posts its completion back with
 * loop_post. Only loop_post and loop_quit may be called from other threads.
 *
 * A watched descriptor is identified by its number and a generation, so an
 * event that was already collected for a descriptor closed and reused during
 * the same wait is dropped, not delivered to the new owner.
 */
#ifndef TPC_LOOP_H
#define TPC_LOOP_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "tpc_err.h"

#define LOOP_MAX_TIMERS 32   /* armed at once: a handful per module, not one per request */
#define LOOP_MAX_FDS    65536

struct loop;

typedef void (*loop_fn)(void *arg);
typedef void (*loop_io_fn)(void *arg, int fd, uint32_t events);

/* A timer; its owner keeps it (usually inside its own struct). */
struct loop_timer {
    loop_fn fn;
    void *arg;
    int64_t at; /* monotonic ms; meaningful while armed */
    bool armed;
    uint64_t fired; /* the loop's: the turn it last fired in */
};

/* A message from another thread; its owner keeps it until fn ran (fn may free it). */
struct loop_msg {
    loop_fn fn;
    void *arg;
    struct loop_msg *next; /* the loop's */
};

enum tpc_err loop_new(struct loop **out);
/* Frees l; messages still posted are dropped (their fn is not run). NULL is fine. */
void loop_free(struct loop *l);

/* Runs callbacks until loop_quit. */
void loop_run(struct loop *l);
/* Makes loop_run return after the callback running now (any thread). */
void loop_quit(struct loop *l);
/* Makes the first of the signals in set (blocked in every thread by the caller) stop l: its
 * number goes to *sig and loop_run returns. */
enum tpc_err loop_quit_on(struct loop *l, const sigset_t *set, int *sig);
/* True on the thread running l (or before it runs: the thread that will). */
bool loop_here(const struct loop *l);

/* Off the loop (after loop_run returned, while a module stops): waits up to timeout_ms for
 * messages posted to l and runs them; false when none came. */
bool loop_run_posted(struct loop *l, int timeout_ms);

/* Watches fd for events (EPOLLIN, EPOLLOUT, ...), or changes what is watched. */
enum tpc_err loop_watch(struct loop *l, int fd, uint32_t events, loop_io_fn fn, void *arg);
/* Stops watching fd (before closing it). */
void loop_unwatch(struct loop *l, int fd);

/* Arms t to run fn(arg) at monotonic ms `at` (rearms it if armed). Aborts past
 * LOOP_MAX_TIMERS: a fixed number is a design rule, not a runtime condition. */
void loop_timer_at(struct loop *l, struct loop_timer *t, int64_t at);
void loop_timer_stop(struct loop *l, struct loop_timer *t);

/* Runs m->fn(m->arg) on the loop soon, in posting order (any thread). */
void loop_post(struct loop *l, struct loop_msg *m);

/* Monotonic milliseconds. */
int64_t loop_now_ms(void);

#endif
