/* http_client.c - see http_client.h. */
#include "http_client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "netfault.h"

#define HTTP_CLIENT_SPARES 16

struct http_client {
    CURLM *multi; /* owns the connection cache shared by the easy handles */
    struct curl_slist *headers;
    CURL *spare[HTTP_CLIENT_SPARES]; /* easy handles of finished calls, for the next ones */
    size_t n_spare;
    CURL **running; /* between http_client_start and http_client_finish: one per call */
    size_t n_running;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

/* Process-wide, like curl's own global state: every client adds to them. */
static _Atomic uint64_t calls_made, calls_failed;

void http_client_metrics(struct metrics_text *t)
{
    metrics_counter(t, "tpc_http_client_requests_total",
                    "HTTP calls this process made to other processes.", atomic_load(&calls_made));
    metrics_counter(t, "tpc_http_client_errors_total",
                    "Outgoing HTTP calls that got no answer or a 5xx status.",
                    atomic_load(&calls_failed));
}

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct http_client *http_client_new(const char *token)
{
    struct http_client *c;
    char auth[512];

    pthread_once(&curl_once, curl_init_once);
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->multi = curl_multi_init();
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    /* No "Expect: 100-continue" round trip before the body. */
    if (c->headers)
        c->headers = curl_slist_append(c->headers, "Expect:");
    if (c->headers && token && *token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        c->headers = curl_slist_append(c->headers, auth);
    }
    if (!c->multi || !c->headers) {
        http_client_free(c);
        return NULL;
    }
    return c;
}

void http_client_free(struct http_client *c)
{
    if (!c)
        return;
    while (c->n_spare)
        curl_easy_cleanup(c->spare[--c->n_spare]);
    if (c->multi)
        curl_multi_cleanup(c->multi);
    curl_slist_free_all(c->headers);
    free(c);
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct http_call *call = userdata;
    size_t n = size * nmemb;
    char *bigger;

    if (call->response_len + n > HTTP_CLIENT_MAX_RESPONSE)
        return 0; /* makes curl fail the transfer: an oversize answer is an error */
    bigger = realloc(call->response, call->response_len + n + 1);
    if (!bigger)
        return 0;
    call->response = bigger;
    memcpy(call->response + call->response_len, ptr, n);
    call->response_len += n;
    call->response[call->response_len] = '\0';
    return n;
}

/* An easy handle from the client's spares (they keep their buffers), or a new one. */
static CURL *easy_get(struct http_client *c)
{
    return c->n_spare ? c->spare[--c->n_spare] : curl_easy_init();
}

static void easy_put(struct http_client *c, CURL *e)
{
    if (c->n_spare < HTTP_CLIENT_SPARES)
        c->spare[c->n_spare++] = e;
    else
        curl_easy_cleanup(e);
}

void http_client_start(struct http_client *c, struct http_call *calls, size_t n, long timeout_ms)
{
    uint32_t delay = 0;
    size_t i;

    c->running = NULL;
    c->n_running = 0;
    for (i = 0; i < n; i++) {
        calls[i].err = TPC_ERR_IO;
        calls[i].status = 0;
        calls[i].response = NULL;
        calls[i].response_len = 0;
        snprintf(calls[i].error, sizeof(calls[i].error), "no answer within %ld ms", timeout_ms);
    }
    c->running = calloc(n ? n : 1, sizeof(*c->running));
    if (!c->running) {
        for (i = 0; i < n; i++)
            calls[i].err = TPC_ERR_NOMEM;
        return;
    }
    c->n_running = n;
    for (i = 0; i < n; i++) {
        CURL *e;
        uint32_t d = netfault_delay_ms(calls[i].url);

        if (netfault_drop(calls[i].url)) {
            snprintf(calls[i].error, sizeof(calls[i].error), "dropped by a network fault");
            continue; /* as if lost: no answer */
        }
        if (d > delay)
            delay = d;
        e = easy_get(c);
        if (!e) {
            calls[i].err = TPC_ERR_NOMEM;
            continue;
        }
        curl_easy_setopt(e, CURLOPT_URL, calls[i].url);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, calls[i].body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)calls[i].body_len);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &calls[i]);
        curl_easy_setopt(e, CURLOPT_PRIVATE, &calls[i]);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        c->running[i] = e;
        curl_multi_add_handle(c->multi, e);
    }
    if (delay) {
        /* A network fault: the calls leave late (never later than their timeout). */
        long ms = delay < (uint32_t)timeout_ms ? (long)delay : timeout_ms;
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

        nanosleep(&ts, NULL);
    }
    {
        int still = 0;

        curl_multi_perform(c->multi, &still); /* the requests leave now */
    }
}

void http_client_finish(struct http_client *c, struct http_call *calls, size_t n)
{
    CURLMsg *msg;
    size_t i;
    int running = 0, left;

    if (!c->running)
        return;
    do {
        if (curl_multi_perform(c->multi, &running) != CURLM_OK)
            break;
        while ((msg = curl_multi_info_read(c->multi, &left))) {
            struct http_call *call = NULL;

            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&call);
            if (msg->data.result == CURLE_OK) {
                call->err = TPC_OK;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &call->status);
                call->error[0] = '\0';
            } else {
                snprintf(call->error, sizeof(call->error), "%s",
                         curl_easy_strerror(msg->data.result));
            }
        }
        if (running && curl_multi_poll(c->multi, NULL, 0, 100, NULL) != CURLM_OK)
            break;
    } while (running);
    for (i = 0; i < n && i < c->n_running; i++) {
        atomic_fetch_add_explicit(&calls_made, 1, memory_order_relaxed);
        if (calls[i].err != TPC_OK || calls[i].status >= 500)
            atomic_fetch_add_explicit(&calls_failed, 1, memory_order_relaxed);
        if (!c->running[i])
            continue;
        curl_multi_remove_handle(c->multi, c->running[i]);
        /* A finished transfer's handle is kept for the next call; one cut off is not. */
        if (calls[i].err == TPC_OK)
            easy_put(c, c->running[i]);
        else
            curl_easy_cleanup(c->running[i]);
    }
    free(c->running);
    c->running = NULL;
    c->n_running = 0;
}

void http_client_post_all(struct http_client *c, struct http_call *calls, size_t n, long timeout_ms)
{
    http_client_start(c, calls, n, timeout_ms);
    http_client_finish(c, calls, n);
}

#define HTTP_POOL_MAX 64

struct http_pool {
    pthread_mutex_t mu;
    char *token;
    struct http_client *idle[HTTP_POOL_MAX];
    size_t n;
};

struct http_pool *http_pool_new(const char *token)
{
    struct http_pool *p = calloc(1, sizeof(*p));

    if (!p)
        return NULL;
    p->token = strdup(token ? token : "");
    if (!p->token) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    return p;
}

void http_pool_free(struct http_pool *p)
{
    size_t i;

    if (!p)
        return;
    for (i = 0; i < p->n; i++)
        http_client_free(p->idle[i]);
    pthread_mutex_destroy(&p->mu);
    free(p->token);
    free(p);
}

struct http_client *http_pool_get(struct http_pool *p)
{
    struct http_client *c = NULL;

    pthread_mutex_lock(&p->mu);
    if (p->n)
        c = p->idle[--p->n];
    pthread_mutex_unlock(&p->mu);
    return c ? c : http_client_new(p->token);
}

void http_pool_put(struct http_pool *p, struct http_client *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&p->mu);
    if (p->n < HTTP_POOL_MAX) {
        p->idle[p->n++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    http_client_free(c);
}
