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
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CLIENTS 256
#define MAX_SAMPLES 100000

struct worker {
    pthread_t thread;
    unsigned seed;
    long committed, aborted, errors;
    double *commit_ms, *total_ms;
    size_t n;
};

struct buf {
    char data[8192];
    size_t n;
};

static const char *base, *part_a = "bank-a", *part_b = "bank-b";
static char auth[600];
static int accounts = 100;
static volatile int stop_flag;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t collect(char *p, size_t s, size_t n, void *ud)
{
    struct buf *b = ud;
    size_t k = s * n;

    if (b->n + k >= sizeof(b->data))
        return 0;
    memcpy(b->data + b->n, p, k);
    b->n += k;
    b->data[b->n] = '\0';
    return k;
}

/* POSTs body to base+path; returns the status (0 on a transport error), body in *out. */
static long post(CURL *c, struct curl_slist *h, const char *path, const char *body, struct buf *out)
{
    char url[512];
    long code = 0;

    out->n = 0;
    out->data[0] = '\0';
    snprintf(url, sizeof(url), "%s%s", base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    if (curl_easy_perform(c) != CURLE_OK)
        return 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    struct curl_slist *h = NULL;
    CURL *c = curl_easy_init();
    struct buf out;
    char path[256], body[512];

    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    if (auth[0])
        h = curl_slist_append(h, auth);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    while (!stop_flag) {
        int from = 1 + rand_r(&w->seed) % accounts, to = 1 + rand_r(&w->seed) % accounts;
        double t0 = now_s(), t1;
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
        t1 = now_s();
        if (post(c, h, path, "", &out) != 200) {
            w->errors++;
            continue;
        }
        j = json_loads(out.data, 0, NULL);
        outcome = j ? json_string_value(json_object_get(j, "outcome")) : NULL;
        if (outcome && !strcmp(outcome, "committed")) {
            w->committed++;
            if (w->n < MAX_SAMPLES) {
                w->commit_ms[w->n] = (now_s() - t1) * 1e3;
                w->total_ms[w->n] = (now_s() - t0) * 1e3;
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

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1));
    return n ? v[i] : 0.0;
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
        else if (!strcmp(argv[a], "--token-file")) {
            FILE *f = fopen(argv[a + 1], "r");
            char t[512] = "";

            if (!f || !fgets(t, sizeof(t), f)) {
                fprintf(stderr, "cannot read %s\n", argv[a + 1]);
                return 2;
            }
            fclose(f);
            t[strcspn(t, "\r\n")] = '\0';
            snprintf(auth, sizeof(auth), "Authorization: Bearer %s", t);
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
    t0 = now_s();
    while (now_s() - t0 < seconds) {
        struct timespec ts = {0, 100 * 1000000L}; /* the run's clock, not a wait for a condition */
        nanosleep(&ts, NULL);
    }
    stop_flag = 1;
    for (k = 0; k < clients; k++)
        pthread_join(w[k].thread, NULL);
    el = now_s() - t0;
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
    qsort(commit, n, sizeof(double), cmp);
    qsort(total, n, sizeof(double), cmp);
    printf("clients %d: %.0f committed tx/s, %.1f%% aborted, %ld errors; commit call ms: p50 "
           "%.3f p95 %.3f p99 %.3f max %.3f; whole transaction ms: p50 %.3f p99 %.3f\n",
           clients, committed / el,
           committed + aborted ? 100.0 * (double)aborted / (double)(committed + aborted) : 0.0,
           errors, pct(commit, n, 0.5), pct(commit, n, 0.95), pct(commit, n, 0.99),
           n ? commit[n - 1] : 0.0, pct(total, n, 0.5), pct(total, n, 0.99));
    free(commit);
    free(total);
    curl_global_cleanup();
    return errors ? 1 : 0;
}
