/*
 * participant_bench.c - drives one participant with N concurrent branches on
 * disjoint rows: exec, prepare, commit, in a loop, over keep-alive
 * connections. Prints transactions per second, latency of each step, and the
 * participant's fsyncs and commit groups per transaction (from /health).
 *
 * The exec, by --workload:
 *   accounts    one UPDATE of a row of accounts (the default)
 *   shop        a new UNIQUE email for the client's customer, and a new order of it (a
 *               UNIQUE ref, a FOREIGN KEY to customers): the locks of lockset.h
 *   shop-plain  the same statements on twin tables without UNIQUE or FOREIGN KEY
 *
 *   participant_bench --url http://127.0.0.1:PORT --token-file F --clients 16 --seconds 5
 */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_http.h"

#define MAX_CLIENTS 256
#define MAX_SAMPLES 200000

struct worker {
    int id;
    pthread_t thread;
    uint64_t done, errors;
    double *lat[3]; /* exec, prepare, commit, in ms */
    size_t n_lat;
};

static const char *base_url, *participant_name = "bench", *workload = "accounts";
static char auth[600];
static volatile int stop_flag;
static int64_t run_base; /* this run's ids and emails differ from an earlier run's */

static long post(CURL *c, struct curl_slist *h, const char *path, const char *body)
{
    struct bench_buf out;
    char url[512];

    snprintf(url, sizeof(url), "%s%s", base_url, path);
    return bench_post(c, h, url, body, &out);
}

static void *work(void *arg)
{
    struct worker *w = arg;
    struct curl_slist *h = bench_headers(auth);
    CURL *c = curl_easy_init();
    char path[256], body[1024];
    uint64_t i;

    for (i = 0; !stop_flag; i++) {
        double t0 = bench_now(), t1, t2, t3;
        char txid[64];

        snprintf(txid, sizeof(txid), "b%d-%" PRIu64 "-%ld", w->id, i, (long)time(NULL));
        snprintf(path, sizeof(path), "/v1/branches/%s/exec", txid);
        if (strcmp(workload, "accounts") == 0) {
            snprintf(body, sizeof(body),
                     "{\"sql\":\"UPDATE accounts SET balance = balance + 1 WHERE id = ?\","
                     "\"params\":[%d]}",
                     w->id + 1);
        } else {
            const char *suffix = strcmp(workload, "shop") == 0 ? "" : "_plain";
            int64_t order = (run_base * MAX_CLIENTS + w->id) * 10000000 + (int64_t)i;

            snprintf(body, sizeof(body),
                     "{\"statements\":["
                     "{\"sql\":\"UPDATE customers%s SET email = ? WHERE id = ?\","
                     "\"params\":[\"c%d-%" PRId64 "@example.com\",%d]},"
                     "{\"sql\":\"INSERT INTO orders%s VALUES (?, ?, ?)\","
                     "\"params\":[%" PRId64 ",%d,\"r-%" PRId64 "\"]}]}",
                     suffix, w->id, order, w->id + 1, suffix, order, w->id + 1, order);
        }
        if (post(c, h, path, body) != 200)
            goto fail;
        t1 = bench_now();
        /* Two participants named, so the branch does not commit in one phase. */
        snprintf(path, sizeof(path), "/v1/branches/%s/prepare", txid);
        snprintf(body, sizeof(body),
                 "{\"type\":\"prepare\",\"txid\":\"%s\",\"participants\":[\"%s\",\"other\"]}", txid,
                 participant_name);
        if (post(c, h, path, body) != 200)
            goto fail;
        t2 = bench_now();
        snprintf(path, sizeof(path), "/v1/branches/%s/commit", txid);
        if (post(c, h, path, "") != 200)
            goto fail;
        t3 = bench_now();
        w->done++;
        if (w->n_lat < MAX_SAMPLES) {
            w->lat[0][w->n_lat] = (t1 - t0) * 1e3;
            w->lat[1][w->n_lat] = (t2 - t1) * 1e3;
            w->lat[2][w->n_lat] = (t3 - t2) * 1e3;
            w->n_lat++;
        }
        continue;
    fail:
        w->errors++;
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

/* Reads the participant's storage counters from GET /health. */
static int health(json_int_t *fsyncs, json_int_t *groups, json_int_t *jobs)
{
    struct curl_slist *h = bench_headers(NULL);
    CURL *c = curl_easy_init();
    struct bench_buf b;
    char url[512];
    json_t *j;
    int ok = -1;

    snprintf(url, sizeof(url), "%s/health", base_url);
    if (bench_post(c, h, url, NULL, &b) == 200 && (j = json_loadb(b.data, b.n, 0, NULL))) {
        ok = json_unpack(j, "{s:{s:I,s:I,s:I}}", "storage", "fsyncs", fsyncs, "commit_groups",
                         groups, "durable_jobs", jobs);
        json_decref(j);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return ok;
}

int main(int argc, char **argv)
{
    static struct worker w[MAX_CLIENTS];
    static const char *names[] = {"exec", "prepare", "commit"};
    json_int_t f0, g0, j0, f1 = 0, g1 = 0, j1 = 0;
    int clients = 1, a, k;
    uint64_t done = 0, errors = 0;
    double *all[3], t0, el, seconds = 5;
    size_t n_all = 0;

    for (a = 1; a + 1 < argc; a += 2) {
        if (!strcmp(argv[a], "--url"))
            base_url = argv[a + 1];
        else if (!strcmp(argv[a], "--clients"))
            clients = (int)strtol(argv[a + 1], NULL, 10);
        else if (!strcmp(argv[a], "--seconds"))
            seconds = strtod(argv[a + 1], NULL);
        else if (!strcmp(argv[a], "--name"))
            participant_name = argv[a + 1];
        else if (!strcmp(argv[a], "--workload"))
            workload = argv[a + 1];
        else if (!strcmp(argv[a], "--token-file") &&
                 bench_auth_from_file(argv[a + 1], auth, sizeof(auth)) != 0) {
            fprintf(stderr, "cannot read %s\n", argv[a + 1]);
            return 2;
        }
    }
    if (!base_url || clients < 1 || clients > MAX_CLIENTS || seconds <= 0 ||
        (strcmp(workload, "accounts") && strcmp(workload, "shop") &&
         strcmp(workload, "shop-plain"))) {
        fprintf(stderr,
                "usage: participant_bench --url URL [--token-file F] [--name NAME] "
                "[--clients 1..%d] [--seconds S] [--workload accounts|shop|shop-plain]\n",
                MAX_CLIENTS);
        return 2;
    }
    run_base = (int64_t)time(NULL) % 1000000;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (health(&f0, &g0, &j0) != 0) {
        fprintf(stderr, "participant_bench: cannot read %s/health\n", base_url);
        return 1;
    }
    for (k = 0; k < clients; k++) {
        w[k].id = k;
        for (a = 0; a < 3; a++)
            w[k].lat[a] = malloc(MAX_SAMPLES * sizeof(double));
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
    health(&f1, &g1, &j1);
    for (a = 0; a < 3; a++)
        all[a] = malloc((size_t)clients * MAX_SAMPLES * sizeof(double));
    for (k = 0; k < clients; k++) {
        done += w[k].done;
        errors += w[k].errors;
        for (a = 0; a < 3; a++)
            memcpy(all[a] + n_all, w[k].lat[a], w[k].n_lat * sizeof(double));
        n_all += w[k].n_lat;
    }
    printf("%s, clients %d: %.0f transactions/s (exec+prepare+commit) = %.0f prepares/s and %.0f "
           "commits/s; %" PRIu64 " errors\n",
           workload, clients, done / el, done / el, done / el, errors);
    for (a = 0; a < 3 && n_all; a++) {
        bench_sort(all[a], n_all);
        printf("  %-7s latency ms: p50 %.3f  p99 %.3f\n", names[a], bench_pct(all[a], n_all, 0.5),
               bench_pct(all[a], n_all, 0.99));
    }
    if (done)
        printf("  fsyncs per transaction: %.2f; durable writes (prepare + commit) per SQLite "
               "commit: %.2f\n",
               (double)(f1 - f0) / (double)done,
               g1 > g0 ? (double)(j1 - j0) / (double)(g1 - g0) : 0.0);
    for (k = 0; k < clients; k++)
        for (a = 0; a < 3; a++)
            free(w[k].lat[a]);
    for (a = 0; a < 3; a++)
        free(all[a]);
    curl_global_cleanup();
    return errors ? 1 : 0;
}
