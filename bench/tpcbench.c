/*
 * tpcbench.c - the transfer benchmark. N clients run transfers one after
 * another through the coordinators' REST API: begin with the first statement,
 * one exec per other statement, commit. All clients are driven from one thread by libcurl's multi interface
 * (each client one keep-alive connection), so the load generator itself costs
 * little CPU on a machine the cluster shares.
 *
 * A transfer over k participants moves money between accounts drawn
 * uniformly from 1..--accounts: with 1 participant it debits one account and
 * credits another in the same database; with k >= 2 it debits k-1 from an
 * account on the first and credits 1 to an account on each of the others.
 * Totals stay the same, which the caller checks afterwards.
 *
 * After --warmup seconds it measures for --seconds: committed tx/s, abort
 * rate, the commit call's latency and the whole transaction's (p50, p95, p99,
 * max), and, from every process's GET /metrics, fsyncs, HTTP requests, server
 * CPU time and context switches per transaction, and the most threads a replica
 * and a participant process had. Progress goes to stderr once a second; results to stdout, and
 * as JSON to --json FILE; commit latencies (ms, one per line) to --samples FILE.
 *
 *   tpcbench --url http://127.0.0.1:7101 [--url ...] --token-file client.token
 *            --participants bank-a,bank-b [--participant-url URL ...]
 *            [--clients 8] [--seconds 10] [--warmup 2] [--accounts 10000]
 *            [--label NAME] [--json FILE] [--samples FILE] [--mode interactive|oneshot]
 *
 * --mode oneshot sends each transfer as one POST /v1/transactions/oneshot (its commit latency
 * is that whole call); interactive (the default) begins with the first statement riding on the
 * begin, execs each other statement and commits.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_http.h"

#define MAX_CLIENTS 256
#define MAX_URLS    16
#define MAX_PARTS   8
#define MAX_SAMPLES 4000000

enum step { STEP_BEGIN, STEP_EXEC, STEP_COMMIT, STEP_ABORT, STEP_ONESHOT };

struct client {
    CURL *easy;
    const char *base; /* the replica this client talks to */
    enum step step;
    int exec_i;              /* next statement of the transfer */
    int from, to[MAX_PARTS]; /* accounts of this transfer */
    char txid[128];
    double t_begin, t_commit; /* when the transfer and its commit call started */
    bool measured;            /* began after the warm-up */
    char url[512], body[512];
    struct bench_buf out;
    unsigned seed;
};

struct samples {
    double *v;
    size_t n, cap;
};

struct proc_metrics {
    double fsyncs, requests, groups, cpu, switches, threads;
};

struct run {
    const char *urls[MAX_URLS], *purls[MAX_URLS];
    int n_urls, n_purls;
    const char *parts[MAX_PARTS];
    int n_parts;
    int clients, accounts;
    bool oneshot; /* each transfer is one POST /v1/transactions/oneshot */
    double seconds, warmup;
    const char *label, *json_path, *samples_path;
    char auth[600];
    struct curl_slist *headers;
    double end; /* of the measured time: what completes later is not counted */
    /* measured */
    long committed, aborted, errors, undecided;
    struct samples commit_ms, txn_ms;
};

static void samples_add(struct samples *s, double v)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 65536;
        double *bigger;

        if (cap > MAX_SAMPLES || !(bigger = realloc(s->v, cap * sizeof(*bigger))))
            return; /* a sample lost, not the run */
        s->v = bigger;
        s->cap = cap;
    }
    s->v[s->n++] = v;
}

static int statements(const struct run *r)
{
    return r->n_parts == 1 ? 2 : r->n_parts;
}

/* The statement of a transfer's i-th call: one participant debits, then credits, in one
 * database; more debit k-1 on the first and credit 1 on each other one. seq: number the exec
 * (its participant's first, or with one participant its i+1-th), as a client that may retry
 * does (http-api.md); a oneshot's branches are not numbered. */
static int statement(const struct run *r, const struct client *c, int i, bool seq, char *out,
                     size_t len)
{
    int k = r->n_parts == 1 ? 0 : i;
    bool debit = i == 0;
    char num[24] = "";

    if (seq)
        snprintf(num, sizeof(num), ",\"seq\":%d", r->n_parts == 1 ? i + 1 : 1);
    return snprintf(out, len,
                    "{\"participant\":\"%s\",\"sql\":\"UPDATE accounts SET balance = balance %c ? "
                    "WHERE id = ?\",\"params\":[%d,%d]%s}",
                    r->parts[k], debit ? '-' : '+', debit && r->n_parts > 1 ? r->n_parts - 1 : 1,
                    debit ? c->from : c->to[r->n_parts == 1 ? 0 : k], num);
}

/* Points c's handle at the next call of its transfer and hands it to the multi handle. */
static void client_send(struct run *r, CURLM *multi, struct client *c)
{
    c->out.n = 0;
    c->out.data[0] = '\0';
    switch (c->step) {
    case STEP_ONESHOT: {
        /* A txid of the client's, as a oneshot needs (it makes a retry safe): this run's and
         * this transfer's numbers. */
        static unsigned long run_tag, n_oneshots;
        size_t n;
        int i;

        if (!run_tag)
            run_tag = ((unsigned long)time(NULL) << 16 ^ (unsigned long)getpid()) & 0xffffffffUL;
        n = (size_t)snprintf(c->body, sizeof(c->body), "{\"txid\":\"b%08lx-%lu\",\"branches\":[",
                             run_tag, ++n_oneshots);

        for (i = 0; i < statements(r) && n < sizeof(c->body); i++) {
            if (i)
                c->body[n++] = ',';
            n += (size_t)statement(r, c, i, false, c->body + n, sizeof(c->body) - n);
        }
        if (n + 3 < sizeof(c->body))
            snprintf(c->body + n, sizeof(c->body) - n, "]}");
        snprintf(c->url, sizeof(c->url), "%s/v1/transactions/oneshot", c->base);
        break;
    }
    case STEP_BEGIN: { /* the first statement rides on the begin */
        size_t n = (size_t)snprintf(c->body, sizeof(c->body), "{\"exec\":");

        if (n < sizeof(c->body))
            n += (size_t)statement(r, c, 0, true, c->body + n, sizeof(c->body) - n);
        if (n + 2 < sizeof(c->body))
            snprintf(c->body + n, sizeof(c->body) - n, "}");
        snprintf(c->url, sizeof(c->url), "%s/v1/transactions", c->base);
        break;
    }
    case STEP_EXEC:
        snprintf(c->url, sizeof(c->url), "%s/v1/transactions/%s/exec", c->base, c->txid);
        statement(r, c, c->exec_i, true, c->body, sizeof(c->body));
        break;
    case STEP_COMMIT:
    case STEP_ABORT:
        snprintf(c->url, sizeof(c->url), "%s/v1/transactions/%s/%s", c->base, c->txid,
                 c->step == STEP_COMMIT ? "commit" : "abort");
        snprintf(c->body, sizeof(c->body), "{}");
        break;
    }
    curl_easy_setopt(c->easy, CURLOPT_URL, c->url);
    bench_tls(c->easy);
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->body);
    curl_multi_add_handle(multi, c->easy);
}

static void client_new_transfer(struct run *r, struct client *c, double now, bool measuring)
{
    int i;

    c->step = r->oneshot ? STEP_ONESHOT : STEP_BEGIN;
    c->exec_i = 0;
    c->t_commit = now;
    c->from = 1 + rand_r(&c->seed) % r->accounts;
    for (i = 0; i < MAX_PARTS; i++) {
        c->to[i] = 1 + rand_r(&c->seed) % r->accounts;
        /* Within one database, a transfer to the same account would move nothing. */
        while (r->n_parts == 1 && r->accounts > 1 && c->to[i] == c->from)
            c->to[i] = 1 + rand_r(&c->seed) % r->accounts;
    }
    c->t_begin = now;
    c->measured = measuring;
}

static const char *json_str(const char *text, const char *key, char *buf, size_t len)
{
    json_t *j = json_loads(text, 0, NULL);
    const char *v = j ? json_string_value(json_object_get(j, key)) : NULL;

    if (v)
        snprintf(buf, len, "%s", v);
    json_decref(j);
    return v ? buf : NULL;
}

/* One call of c has answered with status; decides the next one. */
static void client_answered(struct run *r, struct client *c, long status, double now,
                            bool measuring)
{
    char outcome[32];

    if (now > r->end)
        c->measured = false; /* finished after the measured time: not counted */
    switch (c->step) {
    case STEP_BEGIN:
        if (!json_str(c->out.data, "txid", c->txid, sizeof(c->txid))) {
            r->errors += c->measured;
            client_new_transfer(r, c, now, measuring);
            return;
        }
        if (status != 201) { /* begun, its first statement failed: abort it */
            if (status != 409)
                r->errors += c->measured;
            c->step = STEP_ABORT;
            return;
        }
        c->exec_i = 1;
        c->step = STEP_EXEC;
        if (c->exec_i == statements(r)) {
            c->step = STEP_COMMIT;
            c->t_commit = now;
        }
        return;
    case STEP_EXEC:
        if (status != 200) {
            /* A conflict (the row lock not freed in time) or a failed statement. */
            if (status != 409)
                r->errors += c->measured;
            c->step = STEP_ABORT;
            return;
        }
        if (++c->exec_i == statements(r)) {
            c->step = STEP_COMMIT;
            c->t_commit = now;
        }
        return;
    case STEP_ONESHOT:
    case STEP_COMMIT:
        if (status == 200 && json_str(c->out.data, "outcome", outcome, sizeof(outcome)) &&
            !strcmp(outcome, "committed")) {
            if (c->measured) {
                r->committed++;
                samples_add(&r->commit_ms, (now - c->t_commit) * 1e3);
                samples_add(&r->txn_ms, (now - c->t_begin) * 1e3);
            }
        } else if (status == 200 || (c->step == STEP_ONESHOT && status == 409)) {
            r->aborted += c->measured; /* a oneshot's branch lost its lock: 409, aborted */
        } else if (status == 503) {
            r->undecided += c->measured;
        } else {
            r->errors += c->measured;
        }
        client_new_transfer(r, c, now, measuring);
        return;
    case STEP_ABORT:
        r->aborted += c->measured;
        client_new_transfer(r, c, now, measuring);
        return;
    }
}

struct text {
    char data[256 * 1024];
    size_t n;
};

static size_t text_collect(char *p, size_t s, size_t n, void *ud)
{
    struct text *t = ud;
    size_t k = s * n;

    if (t->n + k >= sizeof(t->data))
        return 0;
    memcpy(t->data + t->n, p, k);
    t->n += k;
    t->data[t->n] = '\0';
    return k;
}

/* Sums one process's counters from its GET /metrics; false when it does not answer. */
static bool scrape(CURL *easy, const char *base, struct proc_metrics *m)
{
    static struct text out; /* large; one scrape at a time */
    char url[512], *line, *save = NULL;
    long status = 0;

    memset(m, 0, sizeof(*m));
    out.n = 0;
    out.data[0] = '\0';
    snprintf(url, sizeof(url), "%s/metrics", base);
    curl_easy_setopt(easy, CURLOPT_URL, url);
    bench_tls(easy);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, text_collect);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT, 10L);
    if (curl_easy_perform(easy) != CURLE_OK ||
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status != 200)
        return false;
    for (line = strtok_r(out.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        const char *sp = strrchr(line, ' ');
        double v = sp ? strtod(sp + 1, NULL) : 0;

        if (line[0] == '#')
            continue;
        if (!strncmp(line, "tpc_fsyncs_total ", 17))
            m->fsyncs = v;
        else if (!strncmp(line, "tpc_http_requests_total{", 24))
            m->requests += v;
        else if (!strncmp(line, "tpc_commit_groups_total ", 24))
            m->groups = v;
        else if (!strncmp(line, "process_cpu_seconds_total ", 26))
            m->cpu = v;
        else if (!strncmp(line, "tpc_context_switches_total ", 27))
            m->switches = v;
        else if (!strncmp(line, "tpc_threads ", 12))
            m->threads = v;
    }
    return true;
}

static int scrape_all(struct run *r, CURL *easy, struct proc_metrics *rep,
                      struct proc_metrics *part)
{
    int i, failed = 0;

    for (i = 0; i < r->n_urls; i++)
        failed += !scrape(easy, r->urls[i], &rep[i]);
    for (i = 0; i < r->n_purls; i++)
        failed += !scrape(easy, r->purls[i], &part[i]);
    return failed;
}

static void stats_json(json_t *o, const char *key, struct samples *s)
{
    bench_sort(s->v, s->n);
    json_object_set_new(o, key,
                        json_pack("{s:f,s:f,s:f,s:f,s:I}", "p50", bench_pct(s->v, s->n, 0.50),
                                  "p95", bench_pct(s->v, s->n, 0.95), "p99",
                                  bench_pct(s->v, s->n, 0.99), "max", s->n ? s->v[s->n - 1] : 0.0,
                                  "n", (json_int_t)s->n));
}

static int usage(void)
{
    fprintf(stderr, "usage: tpcbench --url URL [--url URL ...] --participants A[,B,...]\n"
                    "                [--participant-url URL ...] [--token-file F] [--clients N]\n"
                    "                [--seconds S] [--warmup S] [--accounts N] [--label NAME]\n"
                    "                [--json FILE] [--samples FILE] [--mode interactive|oneshot]\n"
                    "                [--ca FILE (https:// URLs: the CA their certificates are\n"
                    "                 verified against)]\n");
    return 2;
}

static int parse_args(struct run *r, int argc, char **argv)
{
    static char parts_buf[512];
    char *save = NULL, *p;
    int a;

    for (a = 1; a + 1 < argc; a += 2) {
        const char *k = argv[a], *v = argv[a + 1];

        if (!strcmp(k, "--url") && r->n_urls < MAX_URLS)
            r->urls[r->n_urls++] = v;
        else if (!strcmp(k, "--participant-url") && r->n_purls < MAX_URLS)
            r->purls[r->n_purls++] = v;
        else if (!strcmp(k, "--participants"))
            snprintf(parts_buf, sizeof(parts_buf), "%s", v);
        else if (!strcmp(k, "--clients"))
            r->clients = (int)strtol(v, NULL, 10);
        else if (!strcmp(k, "--seconds"))
            r->seconds = strtod(v, NULL);
        else if (!strcmp(k, "--warmup"))
            r->warmup = strtod(v, NULL);
        else if (!strcmp(k, "--accounts"))
            r->accounts = (int)strtol(v, NULL, 10);
        else if (!strcmp(k, "--label"))
            r->label = v;
        else if (!strcmp(k, "--json"))
            r->json_path = v;
        else if (!strcmp(k, "--samples"))
            r->samples_path = v;
        else if (!strcmp(k, "--mode") && (!strcmp(v, "oneshot") || !strcmp(v, "interactive")))
            r->oneshot = !strcmp(v, "oneshot");
        else if (!strcmp(k, "--ca"))
            bench_set_ca(v);
        else if (!strcmp(k, "--token-file")) {
            if (bench_auth_from_file(v, r->auth, sizeof(r->auth)) != 0) {
                fprintf(stderr, "cannot read %s\n", v);
                return -1;
            }
        } else
            return -1;
    }
    if (a != argc)
        return -1;
    for (p = strtok_r(parts_buf, ",", &save); p && r->n_parts < MAX_PARTS;
         p = strtok_r(NULL, ",", &save))
        r->parts[r->n_parts++] = p;
    if (!r->n_urls || !r->n_parts || r->clients < 1 || r->clients > MAX_CLIENTS ||
        r->accounts < 1 || r->seconds <= 0 || r->warmup < 0)
        return -1;
    return 0;
}

/* Runs the clients until the warm-up and the measured time have passed. */
static double drive(struct run *r, CURLM *multi, struct client *cl, CURL *scraper,
                    struct proc_metrics before[2][MAX_URLS])
{
    double start = bench_now(), measure_from = start + r->warmup, last_report = start, now;
    bool measuring = r->warmup == 0;
    long last_committed = 0;
    int running = 0, left, i, in_flight = 0; /* requests sent and not answered (ours) */
    CURLMsg *m;

    r->end = measure_from + r->seconds;
    if (measuring)
        scrape_all(r, scraper, before[0], before[1]);
    for (i = 0; i < r->clients; i++) {
        client_new_transfer(r, &cl[i], start, measuring);
        client_send(r, multi, &cl[i]);
        in_flight++;
    }
    for (;;) {
        curl_multi_perform(multi, &running);
        while ((m = curl_multi_info_read(multi, &left))) {
            struct client *c = NULL;
            long status = 0;

            if (m->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            if (m->data.result == CURLE_OK)
                curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            curl_multi_remove_handle(multi, m->easy_handle);
            in_flight--;
            now = bench_now();
            if (!measuring && now >= measure_from) {
                measuring = true;
                measure_from = now;
                r->end = now + r->seconds;
                scrape_all(r, scraper, before[0], before[1]);
            }
            client_answered(r, c, status, now, measuring);
            /* After the measured time, transfers under way finish; no new one starts. */
            if (now < r->end || (c->step != STEP_BEGIN && c->step != STEP_ONESHOT)) {
                client_send(r, multi, c);
                in_flight++;
            }
        }
        now = bench_now();
        if (now - last_report >= 1.0) {
            fprintf(stderr, "  %-28s %5.1f s %s %8ld committed %7.0f tx/s\n",
                    r->label ? r->label : "", now - start, measuring ? "     " : "(warm)",
                    r->committed, (double)(r->committed - last_committed) / (now - last_report));
            last_committed = r->committed;
            last_report = now;
        }
        /* Not curl's `running`: it does not count handles added since the last perform. */
        if (now >= r->end && in_flight == 0)
            break;
        curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    return r->end - measure_from;
}

int main(int argc, char **argv)
{
    static struct client cl[MAX_CLIENTS];
    static struct proc_metrics before[2][MAX_URLS], after[2][MAX_URLS];
    struct run r;
    CURLM *multi;
    CURL *scraper;
    double elapsed, fsyncs = 0, requests = 0, acc_max = 0, txs, cpu = 0, switches = 0;
    double threads_rep = 0, threads_part = 0;
    json_t *res, *acc = json_array(), *part = json_array();
    int i, failed;

    memset(&r, 0, sizeof(r));
    r.clients = 1;
    r.accounts = 10000;
    r.seconds = 10;
    r.warmup = 2;
    if (parse_args(&r, argc, argv) != 0)
        return usage();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    r.headers = bench_headers(r.auth);
    multi = curl_multi_init();
    scraper = curl_easy_init();
    for (i = 0; i < r.clients; i++) {
        cl[i].easy = curl_easy_init();
        cl[i].base = r.urls[i % r.n_urls];
        cl[i].seed = 7919u * (unsigned)(i + 1);
        curl_easy_setopt(cl[i].easy, CURLOPT_HTTPHEADER, r.headers);
        curl_easy_setopt(cl[i].easy, CURLOPT_WRITEFUNCTION, bench_collect);
        curl_easy_setopt(cl[i].easy, CURLOPT_WRITEDATA, &cl[i].out);
        curl_easy_setopt(cl[i].easy, CURLOPT_PRIVATE, &cl[i]);
        curl_easy_setopt(cl[i].easy, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(cl[i].easy, CURLOPT_TIMEOUT, 30L);
    }
    elapsed = drive(&r, multi, cl, scraper, before);
    failed = scrape_all(&r, scraper, after[0], after[1]);
    txs = (double)(r.committed + r.aborted);
    for (i = 0; i < r.n_urls + r.n_purls; i++) {
        int side = i < r.n_urls ? 0 : 1, k = side ? i - r.n_urls : i;
        double f = after[side][k].fsyncs - before[side][k].fsyncs;
        double q = after[side][k].requests - before[side][k].requests - 1; /* the scrape */

        fsyncs += f;
        requests += q;
        cpu += after[side][k].cpu - before[side][k].cpu;
        switches += after[side][k].switches - before[side][k].switches;
        if (side && after[side][k].threads > threads_part)
            threads_part = after[side][k].threads;
        if (!side && after[side][k].threads > threads_rep)
            threads_rep = after[side][k].threads;
        json_array_append_new(side ? part : acc, json_real(txs ? f / txs : 0));
        if (!side && txs && f / txs > acc_max)
            acc_max = f / txs;
    }
    res = json_pack("{s:s,s:i,s:i,s:i,s:i,s:f,s:I,s:I,s:I,s:I,s:f,s:f,s:f,s:f,s:o,s:o,s:b}",
                    "label", r.label ? r.label : "", "clients", r.clients, "participants",
                    r.n_parts, "replicas", r.n_urls, "accounts", r.accounts, "seconds", elapsed,
                    "committed", (json_int_t)r.committed, "aborted", (json_int_t)r.aborted,
                    "undecided", (json_int_t)r.undecided, "errors", (json_int_t)r.errors,
                    "tx_per_s", (double)r.committed / elapsed, "abort_rate",
                    txs ? (double)r.aborted / txs : 0.0, "fsyncs_per_tx", txs ? fsyncs / txs : 0.0,
                    "http_requests_per_tx", txs ? requests / txs : 0.0, "acceptor_fsyncs_per_tx",
                    acc, "participant_fsyncs_per_tx", part, "metrics_complete", failed == 0);
    /* Every server process together (the load generator is not counted). */
    json_object_set_new(res, "server_cpu_ms_per_tx", json_real(txs ? cpu * 1e3 / txs : 0));
    json_object_set_new(res, "context_switches_per_tx", json_real(txs ? switches / txs : 0));
    json_object_set_new(res, "replica_threads", json_integer((json_int_t)threads_rep));
    json_object_set_new(res, "participant_threads", json_integer((json_int_t)threads_part));
    if (r.samples_path) {
        FILE *f = fopen(r.samples_path, "w");
        size_t k;

        for (k = 0; f && k < r.commit_ms.n; k++)
            fprintf(f, "%.4f\n", r.commit_ms.v[k]);
        if (f)
            fclose(f);
    }
    stats_json(res, "commit_ms", &r.commit_ms);
    stats_json(res, "transaction_ms", &r.txn_ms);
    printf("%s: %d clients, %.0f tx/s, %.2f%% aborted, %ld undecided, %ld errors; commit ms "
           "p50 %.3f p95 %.3f p99 %.3f max %.3f; %.2f fsyncs/tx (acceptor max %.2f), %.1f HTTP "
           "requests/tx\n",
           r.label ? r.label : "run", r.clients, (double)r.committed / elapsed,
           txs ? 100.0 * (double)r.aborted / txs : 0.0, r.undecided, r.errors,
           bench_pct(r.commit_ms.v, r.commit_ms.n, 0.5),
           bench_pct(r.commit_ms.v, r.commit_ms.n, 0.95),
           bench_pct(r.commit_ms.v, r.commit_ms.n, 0.99),
           r.commit_ms.n ? r.commit_ms.v[r.commit_ms.n - 1] : 0.0, txs ? fsyncs / txs : 0.0,
           acc_max, txs ? requests / txs : 0.0);
    if (r.json_path && json_dump_file(res, r.json_path, JSON_INDENT(2)) != 0)
        fprintf(stderr, "cannot write %s\n", r.json_path);
    json_decref(res);
    for (i = 0; i < r.clients; i++)
        curl_easy_cleanup(cl[i].easy);
    curl_easy_cleanup(scraper);
    curl_multi_cleanup(multi);
    curl_slist_free_all(r.headers);
    free(r.commit_ms.v);
    free(r.txn_ms.v);
    curl_global_cleanup();
    return r.errors || failed ? 1 : 0;
}
