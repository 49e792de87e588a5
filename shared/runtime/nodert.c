/* nodert.c - see nodert.h. */
#include "nodert.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

int64_t nodert_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *worker(void *arg)
{
    struct nodert *rt = arg;

    for (;;) {
        struct nodert_box *box;

        pthread_mutex_lock(&rt->qmu);
        while (!rt->queued && !rt->stop)
            pthread_cond_wait(&rt->qcv, &rt->qmu);
        if (!rt->queued) { /* stopping, and nothing left */
            pthread_mutex_unlock(&rt->qmu);
            return NULL;
        }
        box = rt->queue[rt->head];
        rt->head = (rt->head + 1) % NODERT_QUEUE;
        rt->queued--;
        pthread_mutex_unlock(&rt->qmu);
        rt->run(rt->ctx, box);
        nodert_box_free(box);
        free(box);
    }
}

enum tpc_err nodert_init(struct nodert *rt, size_t workers,
                         void (*run)(void *ctx, struct nodert_box *box), void *ctx)
{
    pthread_condattr_t attr;

    memset(rt, 0, sizeof(*rt));
    pthread_mutex_init(&rt->mu, NULL);
    /* Waits are bounded by monotonic deadlines: the condition's clock is the monotonic one. */
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&rt->changed, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&rt->qmu, NULL);
    pthread_cond_init(&rt->qcv, NULL);
    rt->run = run;
    rt->ctx = ctx;
    if (getrandom(&rt->rng, sizeof(rt->rng), 0) != sizeof(rt->rng) || !rt->rng)
        rt->rng = (uint64_t)nodert_now_ms() | 1;
    if (workers > NODERT_MAX_WORKERS)
        workers = NODERT_MAX_WORKERS;
    for (rt->n_threads = 0; rt->n_threads < workers; rt->n_threads++)
        if (pthread_create(&rt->threads[rt->n_threads], NULL, worker, rt) != 0)
            return TPC_ERR_IO;
    return TPC_OK;
}

void nodert_stop(struct nodert *rt)
{
    size_t i, n;

    pthread_mutex_lock(&rt->qmu);
    rt->stop = true;
    n = rt->n_threads;
    pthread_cond_broadcast(&rt->qcv);
    pthread_mutex_unlock(&rt->qmu);
    for (i = 0; i < n; i++)
        pthread_join(rt->threads[i], NULL);
    pthread_mutex_lock(&rt->qmu);
    rt->n_threads = 0;
    pthread_mutex_unlock(&rt->qmu);
}

void nodert_fini(struct nodert *rt)
{
    nodert_stop(rt);
    pthread_cond_destroy(&rt->qcv);
    pthread_mutex_destroy(&rt->qmu);
    pthread_cond_destroy(&rt->changed);
    pthread_mutex_destroy(&rt->mu);
}

void nodert_enter(struct nodert *rt, struct nodert_box *box)
{
    pthread_mutex_lock(&rt->mu);
    assert(rt->cur == NULL); /* one thread inside at a time, and it is not inside twice */
    rt->cur = box;
}

void nodert_leave(struct nodert *rt)
{
    rt->cur = NULL;
    pthread_cond_broadcast(&rt->changed);
    pthread_mutex_unlock(&rt->mu);
}

bool nodert_wait(struct nodert *rt, struct nodert_box *box, int64_t deadline_ms)
{
    struct timespec ts;
    int64_t now = nodert_now_ms(), wait_ms;
    int rc;

    if (now >= deadline_ms)
        return false;
    wait_ms = deadline_ms - now;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += wait_ms / 1000;
    ts.tv_nsec += (wait_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    rt->cur = NULL;
    rc = pthread_cond_timedwait(&rt->changed, &rt->mu, &ts);
    rt->cur = box;
    return rc != ETIMEDOUT;
}

void nodert_box_move(struct nodert_box *to, struct nodert_box *from)
{
    *to = *from;
    memset(from, 0, sizeof(*from));
}

void nodert_box_free(struct nodert_box *box)
{
    free(box->items);
    memset(box, 0, sizeof(*box));
}

void nodert_hand_off(struct nodert *rt, struct nodert_box *box)
{
    struct nodert_box *copy;
    bool queued = false;

    if (!box->n && !box->nudge) {
        nodert_box_free(box);
        return;
    }
    copy = malloc(sizeof(*copy));
    if (copy) {
        nodert_box_move(copy, box);
        pthread_mutex_lock(&rt->qmu);
        if (rt->queued < NODERT_QUEUE && rt->n_threads && !rt->stop) {
            rt->queue[(rt->head + rt->queued) % NODERT_QUEUE] = copy;
            rt->queued++;
            queued = true;
            pthread_cond_signal(&rt->qcv);
        }
        pthread_mutex_unlock(&rt->qmu);
        if (!queued) { /* a full queue: this thread carries it out itself */
            rt->run(rt->ctx, copy);
            nodert_box_free(copy);
        }
        if (!queued)
            free(copy);
        return;
    }
    rt->run(rt->ctx, box);
    nodert_box_free(box);
}

static struct nodert_item *add(struct nodert *rt, bool write)
{
    struct nodert_box *b = rt->cur;

    /* The contract of node_io: the driver acts only inside an event call (nodert_enter). */
    if (!b)
        abort();
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4; /* most events ask for one to four things */
        struct nodert_item *bigger = realloc(b->items, cap * sizeof(*bigger));

        if (!bigger) {
            /* A lost message is resent by the driver's timers; a lost write is not: the
             * driver would wait for its completion forever. Crash instead: a restart resumes
             * from what is durable, which every driver is built for. */
            if (write) {
                fprintf(stderr, "out of memory for a durable write: stopping\n");
                abort();
            }
            return NULL; /* a message: dropped, as the network may */
        }
        b->items = bigger;
        b->cap = cap;
    }
    return &b->items[b->n++];
}

void nodert_io_send(void *ctx, const struct node_addr *to, const struct msg *m)
{
    struct nodert_item *it = add(ctx, false);

    if (!it)
        return;
    it->write = false;
    it->to = *to;
    it->m = *m;
}

void nodert_io_persist(void *ctx, const struct node_write *w)
{
    struct nodert_item *it = add(ctx, true);

    if (!it)
        return;
    it->write = true;
    it->w = *w;
}

uint64_t nodert_io_now(void *ctx)
{
    (void)ctx;
    return (uint64_t)nodert_now_ms();
}

uint64_t nodert_io_random(void *ctx)
{
    struct nodert *rt = ctx;
    uint64_t x = rt->rng;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rt->rng = x;
    return x;
}
