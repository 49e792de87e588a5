/* metrics.c - see metrics.h. */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* Upper bounds in microseconds: from a page-cache write to a stuck disk. */
static const uint64_t bounds_us[METRICS_BUCKETS] = {
    50,    100,    250,    500,    1000,    2500,    5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};

uint64_t metrics_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void metrics_hist_observe(struct metrics_hist *h, uint64_t ns)
{
    size_t i = 0;

    while (i < METRICS_BUCKETS && ns > bounds_us[i] * 1000u)
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

void metrics_hist_since(struct metrics_hist *h, uint64_t start_ns)
{
    uint64_t now = metrics_now_ns();

    metrics_hist_observe(h, now > start_ns ? now - start_ns : 0);
}

static void append(struct metrics_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void append(struct metrics_text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (t->failed)
        return;
    for (;;) {
        size_t room = t->cap - t->len;

        va_start(ap, fmt);
        n = t->buf ? vsnprintf(t->buf + t->len, room, fmt, ap) : -1;
        va_end(ap);
        if (t->buf && n >= 0 && (size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        if (t->buf && n < 0)
            break;
        {
            size_t cap = t->cap ? t->cap * 2 : 4096;
            char *bigger;

            if (cap > METRICS_MAX_TEXT)
                break;
            bigger = realloc(t->buf, cap);
            if (!bigger)
                break;
            t->buf = bigger;
            t->cap = cap;
            if (t->len == 0)
                t->buf[0] = '\0';
        }
    }
    t->failed = true;
}

void metrics_family(struct metrics_text *t, const char *name, const char *type, const char *help)
{
    append(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_sample(struct metrics_text *t, const char *name, const char *labels, uint64_t value)
{
    if (labels)
        append(t, "%s{%s} %llu\n", name, labels, (unsigned long long)value);
    else
        append(t, "%s %llu\n", name, (unsigned long long)value);
}

void metrics_counter(struct metrics_text *t, const char *name, const char *help, uint64_t value)
{
    metrics_family(t, name, "counter", help);
    metrics_sample(t, name, NULL, value);
}

void metrics_histogram(struct metrics_text *t, const char *name, const char *help,
                       struct metrics_hist *h)
{
    uint64_t cumulative = 0, sum_ns;
    size_t i;

    metrics_family(t, name, "histogram", help);
    /* Racing observers may make count and the buckets differ by a few; Prometheus copes. */
    for (i = 0; i <= METRICS_BUCKETS; i++) {
        cumulative += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        if (i < METRICS_BUCKETS)
            append(t, "%s_bucket{le=\"%g\"} %llu\n", name, (double)bounds_us[i] / 1e6,
                   (unsigned long long)cumulative);
        else
            append(t, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cumulative);
    }
    sum_ns = atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
    append(t, "%s_sum %.9f\n%s_count %llu\n", name, (double)sum_ns / 1e9, name,
           (unsigned long long)cumulative);
}

/* Threads of this process now, from /proc/self/status; 0 when it cannot be read. */
static uint64_t thread_count(void)
{
    char line[128];
    uint64_t n = 0;
    FILE *f = fopen("/proc/self/status", "r");

    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "Threads:", 8)) {
            n = strtoull(line + 8, NULL, 10);
            break;
        }
    if (f)
        fclose(f);
    return n;
}

void metrics_process(struct metrics_text *t)
{
    struct rusage ru;
    double cpu = 0;
    uint64_t switches = 0;

    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
              (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        switches = (uint64_t)ru.ru_nvcsw + (uint64_t)ru.ru_nivcsw;
    }
    metrics_family(t, "process_cpu_seconds_total", "counter",
                   "CPU time of this process, user and system, every thread.");
    append(t, "process_cpu_seconds_total %.6f\n", cpu);
    metrics_counter(t, "tpc_context_switches_total",
                    "Context switches of this process's threads, voluntary and not.", switches);
    metrics_family(t, "tpc_threads", "gauge", "Threads of this process now.");
    metrics_sample(t, "tpc_threads", NULL, thread_count());
}
