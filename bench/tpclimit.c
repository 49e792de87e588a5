/*
 * tpclimit.c - the physical limit of one client's commit on this machine,
 * measured: the median time of one SQLite commit with synchronous=FULL (WAL,
 * one small row) on the data disk, and the median time of one keep-alive HTTP
 * round trip on loopback, through the project's own HTTP server and libcurl.
 * A commit cannot be faster than two durable writes in sequence (the
 * participant's prepared record, then the acceptors' record of its vote) plus
 * four round trips (client to coordinator, coordinator to participant,
 * participant to acceptor, and the answer's way back counted as one more),
 * so: limit = 2 x commit + 4 x round trip.
 *
 *   tpclimit --dir DIR [--commits 2000] [--round-trips 5000] [--json FILE]
 */
#include <curl/curl.h>
#include <jansson.h>
#include <sqlite3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_http.h"
#include "http_server.h"

static void answer_empty(void *ctx, const struct http_request *req, struct http_response *res)
{
    (void)ctx;
    (void)req;
    http_respond(res, 200, json_pack("{s:b}", "ok", 1));
}

/* Median ms of n one-row commits in dir/limit.db; -1 on an error. */
static double sqlite_commit_ms(const char *dir, int n, double *p95)
{
    char path[1024];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    double *t = calloc((size_t)n, sizeof(*t)), med = -1;
    int i;

    snprintf(path, sizeof(path), "%s/limit.db", dir);
    remove(path);
    if (!t || sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                     "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER);",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO t VALUES (?, ?)", -1, &st, NULL) !=
            SQLITE_OK)
        goto out;
    for (i = 0; i < n; i++) {
        double t0 = bench_now();

        sqlite3_bind_int(st, 1, i % 100);
        sqlite3_bind_int(st, 2, i);
        if (sqlite3_step(st) != SQLITE_DONE) /* autocommit: one transaction, one commit */
            goto out;
        sqlite3_reset(st);
        t[i] = (bench_now() - t0) * 1e3;
    }
    bench_sort(t, (size_t)n);
    med = bench_pct(t, (size_t)n, 0.5);
    *p95 = bench_pct(t, (size_t)n, 0.95);
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    remove(path);
    snprintf(path, sizeof(path), "%s/limit.db-wal", dir);
    remove(path);
    snprintf(path, sizeof(path), "%s/limit.db-shm", dir);
    remove(path);
    free(t);
    return med;
}

static void *run_loop(void *arg)
{
    loop_run(arg);
    return NULL;
}

/* Median ms of n keep-alive POSTs to a server in this process (on its own loop thread, as in
 * the programs); -1 on an error. */
static double http_round_trip_ms(int n, double *p95)
{
    struct http_server_config cfg = {
        .address = "127.0.0.1", .max_body = 4096, .handler = answer_empty};
    struct http_server *s = NULL;
    struct loop *l = NULL;
    pthread_t thread;
    bool running = false;
    struct curl_slist *h = bench_headers("");
    struct bench_buf out;
    CURL *c = curl_easy_init();
    double *t = calloc((size_t)n, sizeof(*t)), med = -1;
    char url[128], err[256];
    int i;

    if (!t || !c || loop_new(&l) != TPC_OK)
        goto out;
    cfg.loop = l;
    if (http_server_start(&cfg, &s, err, sizeof(err)) != TPC_OK)
        goto out;
    running = pthread_create(&thread, NULL, run_loop, l) == 0;
    if (!running)
        goto out;
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/x", http_server_port(s));
    for (i = -50; i < n; i++) { /* the first calls open the connection: not counted */
        double t0 = bench_now();

        if (bench_post(c, h, url, "{\"txid\":\"tx-1\",\"type\":\"prepare\"}", &out) != 200)
            goto out;
        if (i >= 0)
            t[i] = (bench_now() - t0) * 1e3;
    }
    bench_sort(t, (size_t)n);
    med = bench_pct(t, (size_t)n, 0.5);
    *p95 = bench_pct(t, (size_t)n, 0.95);
out:
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    if (running) {
        loop_quit(l);
        pthread_join(thread, NULL);
    }
    http_server_stop(s);
    loop_free(l);
    free(t);
    return med;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *json_path = NULL;
    int commits = 2000, trips = 5000, a;
    double commit, rtt, commit95 = 0, rtt95 = 0, limit;
    json_t *res;

    for (a = 1; a + 1 < argc; a += 2) {
        if (!strcmp(argv[a], "--dir"))
            dir = argv[a + 1];
        else if (!strcmp(argv[a], "--commits"))
            commits = (int)strtol(argv[a + 1], NULL, 10);
        else if (!strcmp(argv[a], "--round-trips"))
            trips = (int)strtol(argv[a + 1], NULL, 10);
        else if (!strcmp(argv[a], "--json"))
            json_path = argv[a + 1];
        else
            break;
    }
    if (a != argc || !dir || commits < 1 || trips < 1) {
        fprintf(stderr, "usage: tpclimit --dir DIR [--commits N] [--round-trips N] "
                        "[--json FILE]\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    commit = sqlite_commit_ms(dir, commits, &commit95);
    rtt = http_round_trip_ms(trips, &rtt95);
    curl_global_cleanup();
    if (commit < 0 || rtt < 0) {
        fprintf(stderr, "tpclimit: measurement failed (%s)\n", commit < 0 ? "sqlite" : "http");
        return 1;
    }
    limit = 2 * commit + 4 * rtt;
    printf("SQLite commit (WAL, synchronous=FULL) p50 %.3f ms (p95 %.3f); loopback keep-alive "
           "HTTP round trip p50 %.3f ms (p95 %.3f); limit = 2 x %.3f + 4 x %.3f = %.3f ms\n",
           commit, commit95, rtt, rtt95, commit, rtt, limit);
    res = json_pack("{s:f,s:f,s:f,s:f,s:f,s:i,s:i}", "sqlite_commit_ms", commit,
                    "sqlite_commit_p95_ms", commit95, "http_round_trip_ms", rtt,
                    "http_round_trip_p95_ms", rtt95, "limit_ms", limit, "commits", commits,
                    "round_trips", trips);
    if (json_path && json_dump_file(res, json_path, JSON_INDENT(2)) != 0)
        fprintf(stderr, "cannot write %s\n", json_path);
    json_decref(res);
    return 0;
}
