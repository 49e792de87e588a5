/*
 * fuzz_client_api.c - libFuzzer target: a coordinator replica's HTTP API (coordinator/api.c and
 * what it calls: the routing of paths with their txids and query strings, the JSON bodies of
 * begin, exec, commit, abort, oneshot and /v1/paxos) on a real replica, over its real server
 * (libmicrohttpd on loopback, its event loop on a thread of its own), so that percent-encoded
 * paths and deferred answers are what a client meets. One replica (F = 0), one participant
 * that does not answer, short timeouts.
 *
 * An input is one byte of flags (bit 0: POST or GET; bit 1: the client token, else none; bit
 * 2: the cluster token instead), the path up to a newline (every byte percent-encoded but
 * letters, digits and "/-_.?=&"), and the body. Every answer must come, be a JSON object
 * with a status of 200..599, and an error answer must be {"error": {"code", "message"}} (and
 * "txid", from a begin whose first statement failed) with a code of the table (http-api.md,
 * "Error codes") and that code's status.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_error.h"
#include "config.h"
#include "coord.h"
#include "http_server.h"
#include "identity.h"
#include "loop.h"

#include "fuzz_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char base[64];
static CURL *easy;

static void *run_loop(void *l)
{
    loop_run(l);
    return NULL;
}

static void setup(void)
{
    static struct coord_config cfg; /* the replica keeps it */
    static char dir[] = "/tmp/fuzz-replica-XXXXXX";
    struct http_server_config hc = {.address = "127.0.0.1", .max_body = 64 * 1024};
    struct http_server *srv = NULL;
    struct coord *c = NULL;
    struct loop *loop = NULL;
    pthread_t thread;
    char err[256];

    check(mkdtemp(dir) != NULL);
    cfg.n_replicas = 1;
    snprintf(cfg.replicas[0], CONFIG_URL_MAX, "http://127.0.0.1:1");
    cfg.n_participants = 1;
    snprintf(cfg.participant_name[0], sizeof(cfg.participant_name[0]), "bank-a");
    snprintf(cfg.participant_url[0], CONFIG_URL_MAX, "http://127.0.0.1:1"); /* refuses at once */
    snprintf(cfg.db_path, sizeof(cfg.db_path), "%s/replica-0.db", dir);
    snprintf(cfg.cluster_id, sizeof(cfg.cluster_id), "fuzz");
    snprintf(cfg.client_token, sizeof(cfg.client_token), "client-token");
    snprintf(cfg.cluster_token, sizeof(cfg.cluster_token), "cluster-token");
    cfg.prepare_ms = 50;
    cfg.commit_ms = 200;
    cfg.txn_ms = 5000;
    cfg.retry_ms = 10;
    cfg.retry_max_ms = 50;
    cfg.stale_ms = 500;
    cfg.retention_ms = CONFIG_RETENTION_MS;
    check(identity_init(cfg.db_path, cfg.cluster_id, 0, err, sizeof(err)) == TPC_OK);
    check(loop_new(&loop) == TPC_OK);
    check(coord_open(&cfg, loop, &c, err, sizeof(err)) == TPC_OK);
    hc.loop = loop;
    hc.handler = api_handle;
    hc.ctx = c;
    hc.metrics = coord_metrics;
    check(http_server_start(&hc, &srv, err, sizeof(err)) == TPC_OK);
    snprintf(base, sizeof(base), "http://127.0.0.1:%u", http_server_port(srv));
    check(pthread_create(&thread, NULL, run_loop, loop) == 0);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    easy = curl_easy_init();
    check(easy != NULL);
}

static size_t collect(char *p, size_t s, size_t n, void *ud)
{
    char **buf = ud;
    size_t have = *buf ? strlen(*buf) : 0, k = s * n;
    char *bigger;

    if (have + k > 4 * 1024 * 1024 || memchr(p, '\0', k))
        return 0; /* an answer with a NUL is not the JSON text it must be */
    bigger = realloc(*buf, have + k + 1);
    if (!bigger)
        return 0;
    memcpy(bigger + have, p, k);
    bigger[have + k] = '\0';
    *buf = bigger;
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    struct curl_slist *h = NULL;
    const uint8_t *nl;
    size_t n_path, i, at;
    char url[64 + 1 + 3 * 512 + 1], *answer = NULL;
    long status = 0;
    json_t *j;

    if (size < 1)
        return 0;
    if (!easy)
        setup();
    nl = memchr(data + 1, '\n', size - 1);
    n_path = nl ? (size_t)(nl - data - 1) : size - 1;
    if (n_path > 512)
        return 0;
    /* A path begins with '/' (the URL is the server's otherwise). */
    at = (size_t)snprintf(url, sizeof(url), "%s%s", base, n_path && data[1] == '/' ? "" : "/");
    for (i = 0; i < n_path; i++) {
        unsigned char b = data[1 + i];

        if ((b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') ||
            strchr("/-_.?=&", b)) {
            url[at++] = (char)b;
        } else {
            url[at++] = '%';
            url[at++] = hex[b >> 4];
            url[at++] = hex[b & 15];
        }
    }
    url[at] = '\0';
    if (strstr(url, "/v1/admin/faults"))
        return 0; /* network faults would only slow the next inputs down */
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    if (data[0] & 2)
        h = curl_slist_append(h, "Authorization: Bearer client-token");
    else if (data[0] & 4)
        h = curl_slist_append(h, "Authorization: Bearer cluster-token");
    curl_easy_reset(easy);
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, data[0] & 1 ? "POST" : "GET");
    if (data[0] & 1) {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, nl ? (const char *)nl + 1 : "");
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, nl ? (long)(size - n_path - 2) : 0L);
    }
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &answer);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 5000L);
    check(curl_easy_perform(easy) == CURLE_OK); /* every request is answered */
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    check(status >= 200 && status <= 599);
    if (strstr(url, "/metrics") && status == 200) {
        free(answer);
        curl_slist_free_all(h);
        return 0; /* Prometheus text, not JSON */
    }
    j = answer ? json_loads(answer, 0, NULL) : NULL;
    /* A begin whose first statement failed says its txid too (http-api.md, begin). */
    fuzz_check_answer(status, j, "txid");
    json_decref(j);
    free(answer);
    curl_slist_free_all(h);
    return 0;
}
