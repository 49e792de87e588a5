/*
 * http_server.c - the libmicrohttpd glue of http_server.h.
 *
 * libmicrohttpd calls the access handler several times per request: first
 * with no body (we allocate the request state), then with each piece of the
 * body (we append, up to the cap), then once with nothing left (we run the
 * handler and queue the response).
 */
#include "http_server.h"

#include "msg.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct http_server {
    struct MHD_Daemon *daemon;
    struct http_server_config cfg;
    uint16_t port;
    _Atomic uint64_t by_class[6]; /* answers by status class: [2] is 2xx ... [5] is 5xx */
    struct metrics_hist handling; /* from the whole request read to the answer queued */
};

struct conn_state {
    char *body;
    size_t len;
    bool too_big;
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

    api_error_set(&e, code, "%s", "");
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof(e.message), fmt, ap);
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct http_server *s = cls;
    struct conn_state *st = *con_cls;
    struct http_request req;
    struct http_response res = {500, NULL};
    enum MHD_Result ok;
    uint64_t started;

    (void)version;
    if (!st) {
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");

        st = calloc(1, sizeof(*st));
        if (!st)
            return MHD_NO;
        *con_cls = st;
        /* Refuse an announced oversize body before reading any of it. */
        if (cl && strtoull(cl, NULL, 10) > s->cfg.max_body)
            st->too_big = true;
        return MHD_YES;
    }
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
    started = metrics_now_ns();
    if (!strcmp(url, "/metrics") && !st->too_big) {
        struct metrics_text t = {NULL, 0, 0, false};

        if (strcmp(method, "GET") != 0) {
            http_respond_error(&res, "method_not_allowed", "use GET");
            goto answer;
        }
        atomic_fetch_add(&s->by_class[2], 1); /* counted before it is written: it is in it */
        server_metrics(s, &t);
        metrics_hist_since(&s->handling, started);
        return send_text(conn, &t);
    }
    if (st->too_big) {
        http_respond_error(&res, "body_too_large", "request body exceeds %zu bytes",
                           s->cfg.max_body);
    } else {
        req.method = method;
        req.path = url;
        req.body = st->body ? st->body : "";
        req.body_len = st->len;
        req.authorization = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        req.impl = conn;
        s->cfg.handler(s->cfg.ctx, &req, &res);
    }
answer:
    atomic_fetch_add(&s->by_class[res.status >= 200 && res.status < 600 ? res.status / 100 : 5], 1);
    metrics_hist_since(&s->handling, started);
    ok = send_json(conn, res.status, res.body);
    json_decref(res.body);
    return ok;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct conn_state *st = *con_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (st) {
        free(st->body);
        free(st);
        *con_cls = NULL;
    }
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
    s = calloc(1, sizeof(*s));
    if (!s)
        return TPC_ERR_NOMEM;
    s->cfg = *cfg;
    s->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL, cfg->port,
        NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)60, MHD_OPTION_END);
    if (!s->daemon) {
        free(s);
        return tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot listen on %s:%u", cfg->address,
                              cfg->port);
    }
    info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : cfg->port;
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
    return MHD_lookup_connection_value(req->impl, MHD_GET_ARGUMENT_KIND, name);
}

uint16_t http_server_port(const struct http_server *s)
{
    return s->port;
}

void http_server_stop(struct http_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->daemon);
    free(s);
}
