/* ticker.c - see ticker.h. */
#include "ticker.h"

#include <time.h>

static void *ticker_main(void *arg)
{
    struct ticker *t = arg;
    struct timespec ts;

    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        pthread_mutex_unlock(&t->mu);
        t->fn(t->ctx);
        pthread_mutex_lock(&t->mu);
        if (t->stop)
            break;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)t->period_ms * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&t->cv, &t->mu, &ts);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

enum tpc_err ticker_start(struct ticker *t, uint32_t period_ms, void (*fn)(void *ctx), void *ctx)
{
    pthread_condattr_t attr;

    t->stop = false;
    t->period_ms = period_ms;
    t->fn = fn;
    t->ctx = ctx;
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &attr);
    pthread_condattr_destroy(&attr);
    t->started = pthread_create(&t->thread, NULL, ticker_main, t) == 0;
    if (!t->started) {
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        return TPC_ERR_IO;
    }
    return TPC_OK;
}

void ticker_stop(struct ticker *t)
{
    if (!t->started)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    t->started = false;
}

bool ticker_stopping(struct ticker *t)
{
    bool stop;

    pthread_mutex_lock(&t->mu);
    stop = t->stop;
    pthread_mutex_unlock(&t->mu);
    return stop;
}
