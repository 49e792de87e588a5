/*
 * transfer_bench.c - transfers through a coordinator replica's REST API: begin,
 * debit an account at participant A, credit one at B, commit; from N client
 * threads over keep-alive connections, on accounts drawn uniformly from
 * 1..--accounts. Prints transactions/s, the abort rate, and latency
 * percentiles of the commit call and of the whole transaction.
 *
 *   transfer_bench --url http://127.0.0.1:7101 --token-file client.token \
 *                  --clients 1 --seconds 5 --accounts 100 [--a bank-a --b bank-b]
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_http.h"

#define MAX_CLIENTS 256
#define MAX_SAMPLES 100000

struct worker {
    pthread_t thread;
    unsigned seed;
    long committed, aborted, errors;
    double *commit_ms, *total_ms;
    size_t n;
};

static const char *base, *part_a = "bank-a", *part_b = "bank-b";
static char auth[600];
static int accounts = 100;
static volatile int stop_flag;

static long post(CURL *c, struct curl_slist *h, const char *path, const char *body,
                 struct bench_buf *out)
{
    char url[512];

    snprintf(url, sizeof(url), "%s%s", base, path);
    return bench_post(c, h, url, body, out);
}

static void *work(void *arg)
{
    struct worker *w = arg;
    struct curl_slist *h = bench_headers(auth);
    CURL *c = curl_easy_init();
    struct bench_buf out;
    char path[256], body[512];

    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    while (!stop_flag) {
        int from = 1 + rand_r(&w->seed) % accounts, to = 1 + rand_r(&w->seed) % accounts;
        double t0 = bench_now(), t1;
        json_t *j;
        const char *txid, *outcome;
        char id[80];

        if (post(c, h, "/v1/transactions", "{}", &out) != 201 ||
            !(j = json_loads(out.data, 0, NULL))) {
            w->errors++;
            continue;
        }
        txid = json_string_value(json_object_get(j, "txid"));
        snprintf(id, sizeof(id), "%s", txid ? txid : "");
        json_decref(j);
        snprintf(path, sizeof(path), "/v1/transactions/%s/exec", id);
        snprintf(body, sizeof(body),
                 "{\"participant\":\"%s\",\"sql\":\"UPDATE accounts SET balance = balance - 1 "
                 "WHERE id = ?\",\"params\":[%d]}",
                 part_a, from);
        if (post(c, h, path, body, &out) != 200)
            goto abort;
        snprintf(body, sizeof(body),
                 "{\"participant\":\"%s\",\"sql\":\"UPDATE accounts SET balance = balance + 1 "
                 "WHERE id = ?\",\"params\":[%d]}",
                 part_b, to);
        if (post(c, h, path, body, &out) != 200)
            goto abort;
        snprintf(path, sizeof(path), "/v1/transactions/%s/commit", id);
        t1 = bench_now();
        if (post(c, h, path, "", &out) != 200) {
            w->errors++;
            continue;
        }
        j = json_loads(out.data, 0, NULL);
        outcome = j ? json_string_value(json_object_get(j, "outcome")) : NULL;
        if (outcome && !strcmp(outcome, "committed")) {
            w->committed++;
            if (w->n < MAX_SAMPLES) {
                w->commit_ms[w->n] = (bench_now() - t1) * 1e3;
                w->total_ms[w->n] = (bench_now() - t0) * 1e3;
                w->n++;
            }
        } else {
            w->aborted++;
        }
        json_decref(j);
        continue;
    abort:
        w->aborted++; /* a conflict (lock timeout) or a failed statement: abort it */
        snprintf(path, sizeof(path), "/v1/transactions/%s/abort", id);
        post(c, h, path, "", &out);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

int main(int argc, char **argv)
{
    static struct worker w[MAX_CLIENTS];
    double seconds = 5, t0, el, *commit, *total;
    long committed = 0, aborted = 0, errors = 0;
    int clients = 1, a, k;
    size_t n = 0;

    for (a = 1; a + 1 < argc; a += 2) {
        if (!strcmp(argv[a], "--url"))
            base = argv[a + 1];
        else if (!strcmp(argv[a], "--clients"))
            clients = atoi(argv[a + 1]) > 0 ? (int)strtol(argv[a + 1], NULL, 10) : 0;
        else if (!strcmp(argv[a], "--seconds"))
            seconds = strtod(argv[a + 1], NULL);
        else if (!strcmp(argv[a], "--accounts"))
            accounts = (int)strtol(argv[a + 1], NULL, 10);
        else if (!strcmp(argv[a], "--a"))
            part_a = argv[a + 1];
        else if (!strcmp(argv[a], "--b"))
            part_b = argv[a + 1];
        else if (!strcmp(argv[a], "--token-file") &&
                 bench_auth_from_file(argv[a + 1], auth, sizeof(auth)) != 0) {
            fprintf(stderr, "cannot read %s\n", argv[a + 1]);
            return 2;
        }
    }
    if (!base || clients < 1 || clients > MAX_CLIENTS || accounts < 1 || seconds <= 0) {
        fprintf(stderr, "usage: transfer_bench --url URL [--token-file F] [--clients N] "
                        "[--seconds S] [--accounts N] [--a NAME] [--b NAME]\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (k = 0; k < clients; k++) {
        w[k].seed = 12345u + (unsigned)k;
        w[k].commit_ms = malloc(MAX_SAMPLES * sizeof(double));
        w[k].total_ms = malloc(MAX_SAMPLES * sizeof(double));
        pthread_create(&w[k].thread, NULL, work, &w[k]);
    }
    t0 = bench_now();
    while (bench_now() - t0 < seconds) {
        struct timespec ts = {0, 100 * 1000000L}; /* the run's clock, not a wait for a condition */
        nanosleep(&ts, NULL);
    }
    stop_flag = 1;
    for (k = 0; k < clients; k++)
        pthread_join(w[k].thread, NULL);
    el = bench_now() - t0;
    commit = malloc((size_t)clients * MAX_SAMPLES * sizeof(double));
    total = malloc((size_t)clients * MAX_SAMPLES * sizeof(double));
    for (k = 0; k < clients; k++) {
        committed += w[k].committed;
        aborted += w[k].aborted;
        errors += w[k].errors;
        memcpy(commit + n, w[k].commit_ms, w[k].n * sizeof(double));
        memcpy(total + n, w[k].total_ms, w[k].n * sizeof(double));
        n += w[k].n;
        free(w[k].commit_ms);
        free(w[k].total_ms);
    }
    bench_sort(commit, n);
    bench_sort(total, n);
    printf("clients %d: %.0f committed tx/s, %.1f%% aborted, %ld errors; commit call ms: p50 "
           "%.3f p95 %.3f p99 %.3f max %.3f; whole transaction ms: p50 %.3f p99 %.3f\n",
           clients, committed / el,
           committed + aborted ? 100.0 * (double)aborted / (double)(committed + aborted) : 0.0,
           errors, bench_pct(commit, n, 0.5), bench_pct(commit, n, 0.95),
           bench_pct(commit, n, 0.99), n ? commit[n - 1] : 0.0, bench_pct(total, n, 0.5),
           bench_pct(total, n, 0.99));
    free(commit);
    free(total);
    curl_global_cleanup();
    return errors ? 1 : 0;
}
