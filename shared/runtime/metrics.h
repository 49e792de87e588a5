/*
 * metrics.h - counters and latency histograms, written out in the Prometheus
 * text exposition format (version 0.0.4) for GET /metrics.
 *
 * Counters are plain _Atomic uint64_t fields of their owners; a histogram is
 * a struct metrics_hist with fixed buckets from 50 us to 10 s, updated with
 * atomics, so observing costs no lock. A struct metrics_text is a growable
 * buffer with a hard cap that the owners append their families to.
 */
#ifndef TPC_METRICS_H
#define TPC_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_BUCKETS  17           /* upper bounds, not counting +Inf */
#define METRICS_MAX_TEXT (256 * 1024) /* bytes; more is an error, not a crash */

struct metrics_hist {
    _Atomic uint64_t bucket[METRICS_BUCKETS + 1]; /* the last one is +Inf; not cumulative */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_ns;
};

/* Monotonic time in nanoseconds, for durations. */
uint64_t metrics_now_ns(void);
void metrics_hist_observe(struct metrics_hist *h, uint64_t ns);
/* Observes the time since start (from metrics_now_ns). */
void metrics_hist_since(struct metrics_hist *h, uint64_t start_ns);

struct metrics_text {
    char *buf; /* malloc'd, NUL-terminated; the owner frees it */
    size_t len, cap;
    bool failed; /* out of memory or past METRICS_MAX_TEXT */
};

/* "# HELP" and "# TYPE" lines; type is "counter", "gauge" or "histogram". */
void metrics_family(struct metrics_text *t, const char *name, const char *type, const char *help);
/* One sample; labels is NULL or the text inside the braces, e.g. "outcome=\"committed\"". */
void metrics_sample(struct metrics_text *t, const char *name, const char *labels, uint64_t value);
/* A counter family with a single unlabelled sample. */
void metrics_counter(struct metrics_text *t, const char *name, const char *help, uint64_t value);
/* The process's own: CPU seconds (user and system, every thread), context switches
 * (voluntary and not), threads now. */
void metrics_process(struct metrics_text *t);
/* A whole histogram family (buckets in seconds, _sum, _count). */
void metrics_histogram(struct metrics_text *t, const char *name, const char *help,
                       struct metrics_hist *h);

#endif
