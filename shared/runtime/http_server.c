/*
 * http_server.c - the libmicrohttpd glue of http_server.h.
 *
 * libmicrohttpd runs in its external epoll mode: its epoll descriptor is
 * watched by the loop, which calls MHD_run when it is readable and when
 * libmicrohttpd's own timeout comes. It calls the access handler several
 * times per request: first with no body (we allocate the request state), then
 * with each piece of the body (we append, up to the cap), then once with
 * nothing left (we run the handler). A deferred request's connection is
 * suspended; http_answer stores the answer and resumes it, and libmicrohttpd
 * calls the handler once more, which queues the stored answer.
 */
#include "http_server.h"

#include "log.h"
#include "msg.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

struct http_server {
    struct MHD_Daemon *daemon;
    struct http_server_config cfg;
    uint16_t port;
    int epfd;                    /* libmicrohttpd's epoll set, watched by the loop */
    struct loop_timer timer;     /* libmicrohttpd's next timeout */
    bool resumed;                /* a connection was resumed since MHD_run last began */
    bool stopping;               /* http_server_stop began: new requests get 503 at once */
    struct http_later *deferred; /* suspended requests, not answered yet */
    struct pool {
        pthread_mutex_t mu;
        pthread_cond_t work;
        struct http_later *head, *tail; /* requests waiting for a thread */
        pthread_t threads[HTTP_POOL_THREADS];
        size_t n_threads;
        bool stop;
    } pools[HTTP_MAX_POOLS];
    _Atomic uint64_t by_class[6]; /* answers by status class: [2] is 2xx ... [5] is 5xx */
    struct metrics_hist handling; /* from the whole request read to the answer queued */
};

/* One request's state (libmicrohttpd's con_cls); the handle of a deferred one. */
struct http_later {
    struct http_server *s;
    struct MHD_Connection *conn;
    char *body;
    size_t len;
    bool too_big;
    bool deferred;  /* suspended, waiting for its answer */
    bool answered;  /* res holds the answer, to queue when libmicrohttpd calls again */
    bool suspended; /* its connection is suspended (and st is in s->deferred) */
    struct http_response res;
    uint64_t started;
    struct http_request req;
    struct loop_msg back;           /* a pool handler's answer, posted to the loop */
    bool ran;                       /* a pool handler ran: res holds its answer */
    struct http_later *queued;      /* next in its pool's queue */
    struct http_later *prev, *next; /* in s->deferred */
};

void http_respond(struct http_response *res, int status, json_t *body)
{
    json_decref(res->body);
    res->status = status;
    res->body = body;
}

void http_respond_api_error(struct http_response *res, const struct api_error *e)
{
    int status = e->status ? e->status : 500;
    const char *code = e->code ? e->code : "internal";

    http_respond(res, status,
                 json_pack("{s:{s:s,s:s}}", "error", "code", code, "message",
                           e->message[0] ? e->message : "internal error"));
}

void http_respond_error(struct http_response *res, const char *code, const char *fmt, ...)
{
    struct api_error e;
    va_list ap;

    va_start(ap, fmt);
    api_error_vset(&e, code, fmt, ap);
    va_end(ap);
    http_respond_api_error(res, &e);
}

bool http_authorized(const struct http_request *req, const char *token)
{
    static const char prefix[] = "Bearer ";
    const char *given;
    size_t i, n, want;
    unsigned char diff = 0;

    if (!token || !*token)
        return true;
    if (!req->authorization || strncmp(req->authorization, prefix, sizeof(prefix) - 1) != 0)
        return false;
    given = req->authorization + sizeof(prefix) - 1;
    n = strlen(given);
    want = strlen(token);
    /* Constant time in the token's content: a timing attack learns nothing but lengths. */
    for (i = 0; i < want; i++)
        diff |= (unsigned char)token[i] ^ (unsigned char)(i < n ? given[i] : 0);
    return diff == 0 && n == want;
}

static enum MHD_Result send_json(struct MHD_Connection *conn, int status, json_t *body)
{
    struct MHD_Response *r;
    enum MHD_Result ok;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    size_t len;

    if (!text) {
        text = strdup("{\"error\":{\"code\":\"internal\",\"message\":\"no memory\"}}");
        status = 500;
        if (!text)
            return MHD_NO;
    }
    len = strlen(text);
    r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    ok = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ok;
}

static void server_metrics(struct http_server *s, struct metrics_text *t)
{
    static const char *const classes[] = {"2xx", "3xx", "4xx", "5xx"};
    char labels[32];
    uint64_t errors = 0;
    size_t i;

    metrics_family(t, "tpc_http_requests_total", "counter",
                   "HTTP requests answered by this process, by status class.");
    for (i = 0; i < 4; i++) {
        snprintf(labels, sizeof(labels), "code=\"%s\"", classes[i]);
        metrics_sample(t, "tpc_http_requests_total", labels, atomic_load(&s->by_class[i + 2]));
    }
    errors = atomic_load(&s->by_class[4]) + atomic_load(&s->by_class[5]);
    metrics_counter(t, "tpc_http_request_errors_total",
                    "HTTP requests this process answered with a 4xx or 5xx status.", errors);
    metrics_histogram(t, "tpc_http_request_duration_seconds",
                      "Time from a request's last byte to its answer being queued.", &s->handling);
    metrics_process(t);
    if (s->cfg.metrics)
        s->cfg.metrics(s->cfg.ctx, t);
}

static enum MHD_Result send_text(struct MHD_Connection *conn, struct metrics_text *t)
{
    struct MHD_Response *r;
    enum MHD_Result ok;

    if (t->failed || !t->buf) {
        free(t->buf);
        return send_json(conn, 500,
                         json_pack("{s:{s:s,s:s}}", "error", "code", "internal", "message",
                                   "metrics text too large or out of memory"));
    }
    r = MHD_create_response_from_buffer(t->len, t->buf, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(t->buf);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    ok = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    return ok;
}

/* A built-in page: the browser may run only the page's own inline script and style, and
 * fetch from this origin (no asset from anywhere else). */
static enum MHD_Result send_page(struct MHD_Connection *conn, const struct http_page *pg)
{
    struct MHD_Response *r;
    enum MHD_Result ok;

    r = MHD_create_response_from_buffer(pg->len, (void *)pg->data, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", pg->content_type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'none'; connect-src 'self'; img-src 'self' data:; "
                            "style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
                            "frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
    ok = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    return ok;
}

/* Queues st's answer; counts it. */
static enum MHD_Result send_answer(struct http_later *st)
{
    struct http_server *s = st->s;
    int status = st->res.status;
    enum MHD_Result ok;

    atomic_fetch_add(&s->by_class[status >= 200 && status < 600 ? status / 100 : 5], 1);
    metrics_hist_since(&s->handling, st->started);
    ok = send_json(st->conn, status, st->res.body);
    json_decref(st->res.body);
    st->res.body = NULL;
    return ok;
}

static void unlink_deferred(struct http_later *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else
        st->s->deferred = st->next;
    if (st->next)
        st->next->prev = st->prev;
    st->prev = st->next = NULL;
}

struct http_later *http_defer(const struct http_request *req)
{
    struct http_later *st = req->impl;

    st->deferred = true;
    return st;
}

void http_answer_res(struct http_later *st, struct http_response *res)
{
    if (!st->deferred || st->answered) { /* a second answer is a bug of the caller */
        json_decref(res->body);
        res->body = NULL;
        return;
    }
    st->res = *res;
    res->body = NULL;
    if (!st->res.status)
        st->res.status = 500;
    st->answered = true;
    st->deferred = false;
    if (!st->suspended) /* answered before its handler returned: on_request sends it */
        return;
    st->suspended = false;
    unlink_deferred(st);
    MHD_resume_connection(st->conn);
    st->s->resumed = true;
    loop_timer_at(st->s->cfg.loop, &st->s->timer, 0); /* let libmicrohttpd send it now */
}

void http_answer(struct http_later *st, int status, json_t *body)
{
    struct http_response res = {status, body};

    http_answer_res(st, &res);
}

/* On the loop: a pool handler finished (its answer is in st->res). */
static void pool_back(void *arg)
{
    struct http_later *st = arg;
    struct http_response res = st->res;

    st->res.body = NULL;
    http_answer_res(st, &res);
}

static void *pool_run(void *arg)
{
    struct pool *pool = arg;
    struct http_later *st;

    for (;;) {
        struct http_response res = {500, NULL};

        pthread_mutex_lock(&pool->mu);
        while (!pool->head && !pool->stop)
            pthread_cond_wait(&pool->work, &pool->mu);
        st = pool->head;
        if (!st) { /* stopping, and nothing queued */
            pthread_mutex_unlock(&pool->mu);
            return NULL;
        }
        pool->head = st->queued;
        if (!pool->head)
            pool->tail = NULL;
        pthread_mutex_unlock(&pool->mu);
        st->s->cfg.handler(st->s->cfg.ctx, &st->req, &res);
        st->res = res;
        st->ran = true;
        st->back.fn = pool_back;
        st->back.arg = st;
        loop_post(st->s->cfg.loop, &st->back);
    }
}

/* Queues st for a thread of pool i. */
static void pool_queue(struct http_server *s, size_t i, struct http_later *st)
{
    struct pool *pool = &s->pools[i < s->cfg.n_pools ? i : 0];

    pthread_mutex_lock(&pool->mu);
    st->queued = NULL;
    if (pool->tail)
        pool->tail->queued = st;
    else
        pool->head = st;
    pool->tail = st;
    pthread_cond_signal(&pool->work);
    pthread_mutex_unlock(&pool->mu);
}

/* Stops every pool's threads after the handlers running now; requests still queued are left
 * for http_server_stop to answer. */
static void pools_stop(struct http_server *s)
{
    size_t i, k;

    for (i = 0; i < s->cfg.n_pools; i++) {
        struct pool *pool = &s->pools[i];

        pthread_mutex_lock(&pool->mu);
        pool->stop = true;
        pool->head = pool->tail = NULL; /* answered 503 by http_server_stop */
        pthread_cond_broadcast(&pool->work);
        pthread_mutex_unlock(&pool->mu);
        for (k = 0; k < pool->n_threads; k++)
            pthread_join(pool->threads[k], NULL);
        pool->n_threads = 0;
        pthread_cond_destroy(&pool->work);
        pthread_mutex_destroy(&pool->mu);
    }
}

static enum tpc_err pools_start(struct http_server *s)
{
    size_t i;

    for (i = 0; i < s->cfg.n_pools; i++) {
        pthread_mutex_init(&s->pools[i].mu, NULL);
        pthread_cond_init(&s->pools[i].work, NULL);
    }
    for (i = 0; i < s->cfg.n_pools; i++) {
        struct pool *pool = &s->pools[i];
        size_t want = s->cfg.pool_threads[i];

        if (want > HTTP_POOL_THREADS)
            want = HTTP_POOL_THREADS;
        for (pool->n_threads = 0; pool->n_threads < (want ? want : 1); pool->n_threads++)
            if (pthread_create(&pool->threads[pool->n_threads], NULL, pool_run, pool) != 0)
                return TPC_ERR_IO;
    }
    return TPC_OK;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/*
 * Decodes %XX in a path or a query value, in place, but for %00: a NUL would cut the string
 * short, and a route would see another path than the client sent (say /v1/transactions/ for
 * /v1/transactions/%00). It stays the three characters "%00", which no route and no id takes,
 * so the request gets a clear 400 or 404.
 */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    char *in = s, *out = s;

    (void)cls;
    (void)conn;
    while (*in) {
        int hi = in[0] == '%' ? hex_digit(in[1]) : -1, lo = hi >= 0 ? hex_digit(in[2]) : -1;

        if (lo >= 0 && (hi | lo) != 0) {
            *out++ = (char)(hi * 16 + lo);
            in += 3;
        } else {
            *out++ = *in++;
        }
    }
    *out = '\0';
    return (size_t)(out - s);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct http_server *s = cls;
    struct http_later *st = *con_cls;

    (void)version;
    if (!st) {
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");

        st = calloc(1, sizeof(*st));
        if (!st)
            return MHD_NO;
        st->s = s;
        st->conn = conn;
        *con_cls = st;
        /* Refuse an announced oversize body before reading any of it. */
        if (cl && strtoull(cl, NULL, 10) > s->cfg.max_body)
            st->too_big = true;
        return MHD_YES;
    }
    if (st->answered) /* resumed: its answer is ready */
        return send_answer(st);
    if (*upload_data_size) {
        size_t n = *upload_data_size;

        if (!st->too_big && st->len + n <= s->cfg.max_body) {
            char *bigger = realloc(st->body, st->len + n + 1);

            if (!bigger)
                return MHD_NO;
            st->body = bigger;
            memcpy(st->body + st->len, upload_data, n);
            st->len += n;
            st->body[st->len] = '\0';
        } else {
            st->too_big = true; /* keep reading, discard, answer 413 at the end */
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (st->deferred) /* a spurious call while suspended: nothing to do yet */
        return MHD_YES;
    st->started = metrics_now_ns();
    st->res.status = 500;
    if (!strcmp(url, "/metrics") && !st->too_big) {
        struct metrics_text t = {NULL, 0, 0, false};

        if (strcmp(method, "GET") != 0) {
            http_respond_error(&st->res, "method_not_allowed", "use GET");
            return send_answer(st);
        }
        atomic_fetch_add(&s->by_class[2], 1); /* counted before it is written: it is in it */
        server_metrics(s, &t);
        metrics_hist_since(&s->handling, st->started);
        return send_text(conn, &t);
    }
    for (size_t i = 0; i < s->cfg.n_pages && !st->too_big; i++) {
        if (strcmp(url, s->cfg.pages[i].path) != 0)
            continue;
        if (strcmp(method, "GET") != 0) {
            http_respond_error(&st->res, "method_not_allowed", "use GET");
            return send_answer(st);
        }
        atomic_fetch_add(&s->by_class[2], 1);
        metrics_hist_since(&s->handling, st->started);
        return send_page(conn, &s->cfg.pages[i]);
    }
    if (st->too_big) {
        http_respond_error(&st->res, "body_too_large", "request body exceeds %zu bytes",
                           s->cfg.max_body);
        return send_answer(st);
    }
    if (s->stopping) { /* no handler runs any more: nothing is deferred past the stop */
        http_respond_error(&st->res, "shutting_down", "the server is stopping");
        return send_answer(st);
    }
    st->req.method = method;
    st->req.path = url;
    st->req.body = st->body ? st->body : "";
    st->req.body_len = st->len;
    st->req.authorization = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    st->req.impl = st;
    if (s->cfg.n_pools) {
        st->deferred = true;
        pool_queue(s, s->cfg.pool_of ? s->cfg.pool_of(s->cfg.ctx, &st->req) : 0, st);
    } else {
        s->cfg.handler(s->cfg.ctx, &st->req, &st->res);
    }
    if (st->deferred) {
        st->next = s->deferred;
        if (st->next)
            st->next->prev = st;
        s->deferred = st;
        st->suspended = true;
        MHD_suspend_connection(conn);
        return MHD_YES;
    }
    return send_answer(st);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_later *st = *con_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (st) {
        json_decref(st->res.body);
        free(st->body);
        free(st);
        *con_cls = NULL;
    }
}

/* Runs libmicrohttpd, then sets the timer to its next timeout. */
static void server_run(void *arg)
{
    struct http_server *s = arg;
    MHD_UNSIGNED_LONG_LONG ms;

    s->resumed = false;
    MHD_run(s->daemon);
    /* A handler that ran inside MHD_run may have answered a suspended request: run again at
     * once (libmicrohttpd handles a resumed connection on its next run). */
    if (s->resumed)
        loop_timer_at(s->cfg.loop, &s->timer, 0);
    else if (MHD_get_timeout(s->daemon, &ms) == MHD_YES)
        loop_timer_at(s->cfg.loop, &s->timer, loop_now_ms() + (int64_t)(ms > 60000 ? 60000 : ms));
    else
        loop_timer_stop(s->cfg.loop, &s->timer);
}

static void server_io(void *arg, int fd, uint32_t events)
{
    (void)fd;
    (void)events;
    server_run(arg);
}

/* Room for HTTP_MAX_CONNECTIONS and the process's own files: the soft limit on open files is
 * raised towards the hard one (often 1024 by default, which a thousand idle clients would
 * exhaust). */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    rlim_t want = HTTP_MAX_CONNECTIONS + 512;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        log_warn("cannot raise the open-file limit to %llu", (unsigned long long)rl.rlim_cur);
}

/* libmicrohttpd's own words: while a server starts, the first is kept for its error (a TLS
 * certificate and key that do not match, a port taken); later ones (a client that closed
 * mid-handshake, a plain-HTTP request on a TLS port) are debug lines. Servers start on one
 * thread, before their loop runs. */
static char start_error[256];
static bool starting;

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[256];
    size_t n;

    (void)cls;
    vsnprintf(line, sizeof(line), fmt, ap);
    n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '.'))
        line[--n] = '\0';
    if (starting && !start_error[0])
        snprintf(start_error, sizeof(start_error), "%s", line);
    else
        log_debug("http: %s", line);
}

enum tpc_err http_server_start(const struct http_server_config *cfg, struct http_server **out,
                               char *err, size_t errlen)
{
    struct sockaddr_in addr;
    struct http_server *s;
    const union MHD_DaemonInfo *info;

    *out = NULL;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons(cfg->port);
    if (inet_pton(AF_INET, cfg->address, &addr.sin_addr) != 1)
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "bad listen address '%s'",
                              cfg->address);
    raise_fd_limit();
    s = calloc(1, sizeof(*s));
    if (!s)
        return TPC_ERR_NOMEM;
    s->cfg = *cfg;
    if (s->cfg.n_pools > HTTP_MAX_POOLS)
        s->cfg.n_pools = HTTP_MAX_POOLS;
    s->epfd = -1;
    s->timer.fn = server_run;
    s->timer.arg = s;
    {
        struct MHD_OptionItem opts[] = {
            {MHD_OPTION_SOCK_ADDR, 0, &addr},
            {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, NULL},
            {MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)unescape, NULL},
            {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)HTTP_IDLE_TIMEOUT_S, NULL},
            {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)HTTP_MAX_CONNECTIONS, NULL},
            /* the last two only with TLS (else they end the list) */
            {MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)cfg->tls_cert_pem},
            {MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)cfg->tls_key_pem},
            {MHD_OPTION_END, 0, NULL},
        };
        bool tls = cfg->tls_cert_pem && cfg->tls_key_pem;

        if (!cfg->tls_cert_pem != !cfg->tls_key_pem) {
            free(s);
            return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID,
                                  "a TLS certificate without its key, or a key without one");
        }
        if (!tls)
            opts[5].option = MHD_OPTION_END;
        start_error[0] = '\0';
        starting = true;
        s->daemon =
            MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
                                 MHD_USE_ERROR_LOG | (tls ? MHD_USE_TLS : 0),
                             cfg->port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
                             mhd_log, NULL, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
        starting = false;
    }
    info = s->daemon ? MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    if (info)
        s->epfd = info->epoll_fd;
    if (!s->daemon || s->epfd < 0 || pools_start(s) != TPC_OK ||
        loop_watch(cfg->loop, s->epfd, EPOLLIN, server_io, s) != TPC_OK) {
        http_server_stop(s);
        return tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot listen on %s:%u%s%s", cfg->address,
                              cfg->port, start_error[0] ? ": " : "", start_error);
    }
    info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : cfg->port;
    server_run(s);
    *out = s;
    return TPC_OK;
}

bool http_path_txid(const char *rest, char *txid, const char **tail, struct http_response *res)
{
    const char *slash = strchr(rest, '/');

    *tail = slash;
    if (msg_txid_from(rest, slash ? (size_t)(slash - rest) : strlen(rest), txid))
        return true;
    http_respond_error(res, "bad_txid", "transaction ids are 1..%d characters of [A-Za-z0-9_-]",
                       TPC_TXID_MAX);
    return false;
}

const char *http_query(const struct http_request *req, const char *name)
{
    const struct http_later *st = req->impl;

    if (!st)
        return NULL; /* a request made up by a test or fuzzer: no query string */
    return MHD_lookup_connection_value(st->conn, MHD_GET_ARGUMENT_KIND, name);
}

uint16_t http_server_port(const struct http_server *s)
{
    return s->port;
}

void http_server_stop(struct http_server *s)
{
    MHD_socket listener = MHD_INVALID_SOCKET;

    if (!s)
        return;
    s->stopping = true;
    if (s->daemon) /* no new connection; the listening socket is ours to close after the stop */
        listener = MHD_quiesce_daemon(s->daemon);
    pools_stop(s); /* the answers of handlers that ran are stored in their requests */
    while (s->deferred) {
        struct http_later *st = s->deferred;

        if (st->ran) { /* a pool handler's answer, its message not run yet */
            pool_back(st);
        } else {
            struct http_response res = {500, NULL};

            http_respond_error(&res, "shutting_down", "the server is stopping");
            http_answer_res(st, &res);
        }
    }
    if (s->daemon) {
        MHD_run(s->daemon); /* sends what was answered just now, where it can */
        MHD_stop_daemon(s->daemon);
    }
    if (listener != MHD_INVALID_SOCKET)
        close(listener);
    if (s->epfd >= 0)
        loop_unwatch(s->cfg.loop, s->epfd);
    loop_timer_stop(s->cfg.loop, &s->timer);
    free(s);
}
