/* http_client.c - see http_client.h. */
#include "http_client.h"
#include "http_server.h"

#include <curl/curl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "options.h"
#include "netfault.h"

#define HTTP_CLIENT_SPARES    16
#define HTTP_KEPT_CONNECTIONS 256 /* idle connections one multi handle keeps for reuse */

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

static char tls_ca[1024], tls_cert[1024], tls_key[1024];

enum tpc_err http_client_tls(const char *ca_file, const char *cert_file, const char *key_file,
                             char *err, size_t errlen)
{
    char *pem = NULL;
    bool is_ca;

    if ((ca_file && strlen(ca_file) >= sizeof(tls_ca)) ||
        (cert_file && strlen(cert_file) >= sizeof(tls_cert)) ||
        (key_file && strlen(key_file) >= sizeof(tls_key)))
        return tpc_errbuf_set(err, errlen, TPC_ERR_TOO_BIG, "a TLS file name is longer than %zu",
                              sizeof(tls_ca) - 1);
    /* Checked here, at start, rather than by every call failing later. */
    if (ca_file && *ca_file) {
        if (options_read_pem(ca_file, false, &pem) != 0)
            return tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot read the CA file %s", ca_file);
        is_ca = strstr(pem, "-----BEGIN CERTIFICATE-----") != NULL;
        free(pem);
        if (!is_ca)
            return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID,
                                  "the CA file %s holds no PEM certificate", ca_file);
    }
    snprintf(tls_ca, sizeof(tls_ca), "%s", ca_file ? ca_file : "");
    snprintf(tls_cert, sizeof(tls_cert), "%s", cert_file ? cert_file : "");
    snprintf(tls_key, sizeof(tls_key), "%s", key_file ? key_file : "");
    return TPC_OK;
}

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* The headers of every call; NULL when out of memory. */
static struct curl_slist *call_headers(const char *token)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char auth[512];

    /* No "Expect: 100-continue" round trip before the body. */
    if (h)
        h = curl_slist_append(h, "Expect:");
    if (h && token && *token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    return h;
}

struct http_client *http_client_new(const char *token)
{
    struct http_client *c;

    pthread_once(&curl_once, curl_init_once);
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->multi = curl_multi_init();
    c->headers = call_headers(token);
    if (!c->multi || !c->headers) {
        http_client_free(c);
        return NULL;
    }
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)HTTP_KEPT_CONNECTIONS);
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

/* The options every call sets on its easy handle. */
static void easy_setup(CURL *e, struct curl_slist *headers, struct http_call *call, long timeout_ms)
{
    curl_easy_setopt(e, CURLOPT_URL, call->url);
    if (call->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, call->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)call->body_len);
    } else {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
    curl_easy_setopt(e, CURLOPT_PRIVATE, call);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    /* A kept connection idle for longer is not reused: servers close theirs after
     * HTTP_IDLE_TIMEOUT_S, and a request sent as one closes would be lost. */
    curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, (long)(HTTP_IDLE_TIMEOUT_S * 2 / 3));
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    call->detail[0] = '\0';
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->detail);
    if (tls_ca[0])
        curl_easy_setopt(e, CURLOPT_CAINFO, tls_ca);
    if (tls_cert[0]) {
        curl_easy_setopt(e, CURLOPT_SSLCERT, tls_cert);
        curl_easy_setopt(e, CURLOPT_SSLKEY, tls_key[0] ? tls_key : tls_cert);
    }
}

/* Resets a call's out fields to "no answer yet". */
static void call_reset(struct http_call *call, long timeout_ms)
{
    call->err = TPC_ERR_IO;
    call->status = 0;
    call->response = NULL;
    call->response_len = 0;
    snprintf(call->error, sizeof(call->error), "no answer within %ld ms", timeout_ms);
}

/* A failure of TLS itself (a certificate not trusted or not for this host, no TLS on the other
 * side, a key that does not load): a configuration to mend, not a peer that is down. */
static bool tls_failure(CURLcode r)
{
    return r == CURLE_SSL_CONNECT_ERROR || r == CURLE_PEER_FAILED_VERIFICATION ||
           r == CURLE_SSL_CERTPROBLEM || r == CURLE_SSL_CIPHER || r == CURLE_SSL_CACERT_BADFILE ||
           r == CURLE_SSL_ISSUER_ERROR || r == CURLE_SSL_CRL_BADFILE ||
           r == CURLE_SSL_PINNEDPUBKEYNOTMATCH || r == CURLE_SSL_INVALIDCERTSTATUS ||
           r == CURLE_USE_SSL_FAILED || r == CURLE_SSL_ENGINE_INITFAILED ||
           r == CURLE_SSL_CLIENTCERT;
}

/* Said in the log at once (a peer that does not answer is only a debug line: peers go down),
 * at most every 10 s, so that a cluster with a bad certificate says why it stalls. */
static void warn_tls(const struct http_call *call)
{
    static _Atomic int64_t last = -10;
    struct timespec ts;
    int64_t now, was = atomic_load(&last);

    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = (int64_t)ts.tv_sec;
    if (now - was >= 10 && atomic_compare_exchange_strong(&last, &was, now))
        log_warn("TLS failed calling %s: %s", call->url, call->error);
}

/* Fills a finished call's out fields from curl's result. */
static void call_result(struct http_call *call, CURL *e, CURLcode result)
{
    if (result == CURLE_OK) {
        call->err = TPC_OK;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &call->status);
        call->error[0] = '\0';
    } else if (call->detail[0]) {
        /* e.g. "SSL certificate problem: unable to get local issuer certificate" */
        snprintf(call->error, sizeof(call->error), "%.200s", call->detail);
    } else {
        snprintf(call->error, sizeof(call->error), "%s", curl_easy_strerror(result));
    }
    if (result != CURLE_OK && tls_failure(result))
        warn_tls(call);
}

static void count_call(const struct http_call *call)
{
    atomic_fetch_add_explicit(&calls_made, 1, memory_order_relaxed);
    if (call->err != TPC_OK || call->status >= 500)
        atomic_fetch_add_explicit(&calls_failed, 1, memory_order_relaxed);
}

/* An easy handle from the client's spares (they keep their buffers), or a new one. */
static CURL *easy_get(struct http_client *c)
{
    return c->n_spare ? c->spare[--c->n_spare] : curl_easy_init();
}

static void easy_put(struct http_client *c, CURL *e)
{
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL); /* the call's buffer goes with the call */
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
    for (i = 0; i < n; i++)
        call_reset(&calls[i], timeout_ms);
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
        easy_setup(e, c->headers, &calls[i], timeout_ms);
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
            call_result(call, msg->easy_handle, msg->data.result);
        }
        if (running && curl_multi_poll(c->multi, NULL, 0, 100, NULL) != CURLM_OK)
            break;
    } while (running);
    for (i = 0; i < n && i < c->n_running; i++) {
        count_call(&calls[i]);
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

/* ---- the agent: calls on the event loop ---- */

#define HTTP_AGENT_SPARES 64

struct http_agent {
    struct loop *loop;
    CURLM *multi;
    struct curl_slist *headers;
    struct loop_timer curl_timer; /* curl's own timeout (CURLMOPT_TIMERFUNCTION) */
    struct loop_timer later;      /* calls delayed by a network fault, and finished ones */
    struct http_call *delayed;    /* not started yet, each with its start time in later_at */
    struct http_call *finished;   /* done functions to run (never inside http_agent_post) */
    struct http_call *out;        /* started, not finished (a doubly linked list) */
    CURL *spare[HTTP_AGENT_SPARES];
    size_t n_spare;
};

static void out_remove(struct http_agent *a, struct http_call *call)
{
    if (call->prev)
        call->prev->next = call->next;
    else
        a->out = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
}

static void agent_finish(struct http_agent *a, struct http_call *call)
{
    call->next = a->finished;
    a->finished = call;
    loop_timer_at(a->loop, &a->later, 0);
}

/* Reads what curl finished and queues their done functions. */
static void agent_reap(struct http_agent *a)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(a->multi, &left))) {
        struct http_call *call = NULL;
        CURL *e = msg->easy_handle;
        CURLcode result = msg->data.result;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&call);
        call_result(call, e, result);
        curl_multi_remove_handle(a->multi, e);
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL); /* the call's goes with the call */
        call->easy = NULL;
        out_remove(a, call);
        /* A finished transfer's handle is kept for the next call; one cut off is not. */
        if (result == CURLE_OK && a->n_spare < HTTP_AGENT_SPARES)
            a->spare[a->n_spare++] = e;
        else
            curl_easy_cleanup(e);
        agent_finish(a, call);
    }
}

static void agent_io(void *arg, int fd, uint32_t events)
{
    struct http_agent *a = arg;
    int mask = 0, running;

    if (events & (EPOLLIN | EPOLLHUP))
        mask |= CURL_CSELECT_IN;
    if (events & EPOLLOUT)
        mask |= CURL_CSELECT_OUT;
    if (events & EPOLLERR)
        mask |= CURL_CSELECT_ERR;
    curl_multi_socket_action(a->multi, fd, mask, &running);
    agent_reap(a);
}

static void agent_timeout(void *arg)
{
    struct http_agent *a = arg;
    int running;

    curl_multi_socket_action(a->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    agent_reap(a);
}

/* CURLMOPT_SOCKETFUNCTION: what to watch on one of curl's sockets. */
static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct http_agent *a = userp;
    uint32_t events = 0;

    (void)e;
    (void)socketp;
    if (what == CURL_POLL_REMOVE) {
        loop_unwatch(a->loop, fd);
        return 0;
    }
    if (what & CURL_POLL_IN)
        events |= EPOLLIN;
    if (what & CURL_POLL_OUT)
        events |= EPOLLOUT;
    return loop_watch(a->loop, fd, events, agent_io, a) == TPC_OK ? 0 : -1;
}

/* CURLMOPT_TIMERFUNCTION: when curl wants to be called for its timeouts. */
static int on_timer(CURLM *multi, long ms, void *userp)
{
    struct http_agent *a = userp;

    (void)multi;
    if (ms < 0)
        loop_timer_stop(a->loop, &a->curl_timer);
    else
        loop_timer_at(a->loop, &a->curl_timer, loop_now_ms() + ms);
    return 0;
}

static void agent_start(struct http_agent *a, struct http_call *call)
{
    CURL *e = a->n_spare ? a->spare[--a->n_spare] : curl_easy_init();

    call_reset(call, call->timeout_ms);
    if (!e) {
        call->err = TPC_ERR_NOMEM;
        agent_finish(a, call);
        return;
    }
    easy_setup(e, a->headers, call, call->timeout_ms);
    call->easy = e;
    call->prev = NULL;
    call->next = a->out;
    if (a->out)
        a->out->prev = call;
    a->out = call;
    if (curl_multi_add_handle(a->multi, e) != CURLM_OK) {
        out_remove(a, call);
        call->easy = NULL;
        curl_easy_cleanup(e);
        snprintf(call->error, sizeof(call->error), "cannot start the call");
        agent_finish(a, call);
    }
}

/* The later timer: starts delayed calls that are due, runs finished calls' done. */
static void agent_later(void *arg)
{
    struct http_agent *a = arg;
    struct http_call **p = &a->delayed, *call, *done;
    int64_t now = loop_now_ms(), next = -1;

    while ((call = *p)) {
        if (call->start_at <= now) {
            *p = call->next;
            agent_start(a, call);
        } else {
            if (next < 0 || call->start_at < next)
                next = call->start_at;
            p = &call->next;
        }
    }
    done = a->finished;
    a->finished = NULL;
    while ((call = done)) {
        done = call->next; /* done may free the call */
        count_call(call);
        call->done(call);
    }
    /* The done functions may have delayed or finished calls of their own: look again. */
    for (call = a->delayed; call; call = call->next)
        if (next < 0 || call->start_at < next)
            next = call->start_at;
    if (a->finished)
        loop_timer_at(a->loop, &a->later, 0);
    else if (next >= 0)
        loop_timer_at(a->loop, &a->later, next);
}

struct http_agent *http_agent_new(struct loop *l, const char *token)
{
    struct http_agent *a;

    pthread_once(&curl_once, curl_init_once);
    a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->loop = l;
    a->curl_timer.fn = agent_timeout;
    a->curl_timer.arg = a;
    a->later.fn = agent_later;
    a->later.arg = a;
    a->multi = curl_multi_init();
    a->headers = call_headers(token);
    if (!a->multi || !a->headers) {
        http_agent_free(a);
        return NULL;
    }
    curl_multi_setopt(a->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(a->multi, CURLMOPT_SOCKETDATA, a);
    curl_multi_setopt(a->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(a->multi, CURLMOPT_TIMERDATA, a);
    /* Many calls to the same peer at once: more connections, not a queue behind one. */
    curl_multi_setopt(a->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    /* Keep them all between calls: by default curl keeps four per call under way, so a loop
     * with a few calls out at a time to several peers closed and opened connections all along
     * (a TCP set-up, and with TLS a handshake, per call). */
    curl_multi_setopt(a->multi, CURLMOPT_MAXCONNECTS, (long)HTTP_KEPT_CONNECTIONS);
    return a;
}

void http_agent_free(struct http_agent *a)
{
    if (!a)
        return;
    while (a->out) { /* cut off what is still out; every done function owed runs below */
        struct http_call *call = a->out;

        out_remove(a, call);
        curl_multi_remove_handle(a->multi, call->easy);
        curl_easy_cleanup(call->easy);
        call->easy = NULL;
        snprintf(call->error, sizeof(call->error), "cut off: the process is stopping");
        agent_finish(a, call);
    }
    while (a->delayed) {
        struct http_call *call = a->delayed;

        a->delayed = call->next;
        call_reset(call, call->timeout_ms);
        agent_finish(a, call);
    }
    agent_later(a);
    loop_timer_stop(a->loop, &a->later);
    loop_timer_stop(a->loop, &a->curl_timer);
    while (a->n_spare)
        curl_easy_cleanup(a->spare[--a->n_spare]);
    if (a->multi)
        curl_multi_cleanup(a->multi);
    curl_slist_free_all(a->headers);
    free(a);
}

void http_agent_post(struct http_agent *a, struct http_call *call)
{
    uint32_t d;

    call->prev = call->next = NULL;
    call->easy = NULL;
    if (netfault_drop(call->url)) {
        call_reset(call, call->timeout_ms);
        snprintf(call->error, sizeof(call->error), "dropped by a network fault");
        agent_finish(a, call); /* as if lost: no answer */
        return;
    }
    d = netfault_delay_ms(call->url);
    if (d) { /* a network fault: the call leaves late (never later than its timeout) */
        call->start_at = loop_now_ms() + (d < (uint32_t)call->timeout_ms ? d : call->timeout_ms);
        call->next = a->delayed;
        a->delayed = call;
        loop_timer_at(a->loop, &a->later, loop_now_ms());
        return;
    }
    agent_start(a, call);
}
