/*
 * ticker.h - a background thread that calls fn(ctx) every period_ms until
 * stopped. The period is a timer, not a wait for a condition: fn checks what
 * is due (deadlines, retries, sweeps) each time.
 */
#ifndef TPC_TICKER_H
#define TPC_TICKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "tpc_err.h"

struct ticker {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, started;
    uint32_t period_ms;
    void (*fn)(void *ctx);
    void *ctx;
};

enum tpc_err ticker_start(struct ticker *t, uint32_t period_ms, void (*fn)(void *ctx), void *ctx);
/* Wakes the thread, waits for it to end. A ticker never started is fine. */
void ticker_stop(struct ticker *t);
/* True once ticker_stop began: long work in fn should give up early. */
bool ticker_stopping(struct ticker *t);

#endif
