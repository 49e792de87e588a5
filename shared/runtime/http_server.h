/*
 * http_server.h - a small HTTP/1.1 server for JSON APIs, over libmicrohttpd.
 *
 * The server lives on the process's event loop (loop.h): libmicrohttpd in its
 * epoll mode, its descriptor watched by the loop, no thread of its own. A
 * handler runs on the loop and must not block: it answers at once, or defers
 * (http_defer) and answers later with http_answer, when what it waits for has
 * come back to the loop; the connection is suspended meanwhile. Bodies are
 * capped: a larger one gets 413 with a JSON error before the handler sees
 * anything.
 * Every response is JSON, except GET /metrics (Prometheus text), which the
 * server answers itself when the program gives it a metrics function.
 */
#ifndef TPC_HTTP_SERVER_H
#define TPC_HTTP_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api_error.h"
#include "loop.h"
#include "metrics.h"
#include "tpc_err.h"

#define HTTP_MAX_POOLS    4
#define HTTP_POOL_THREADS 64 /* at most, per pool */

/* Connections one server holds at most (more wait in the kernel's backlog, or are refused),
 * and how long a connection may stay idle, a request half sent included, before it is
 * closed: a thousand silent clients, or one trickling its headers, take slots, not the
 * server (http-api.md, Conventions). */
#define HTTP_MAX_CONNECTIONS 4096
#define HTTP_IDLE_TIMEOUT_S  30

struct http_request {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* URL path without the query string */
    const char *body;   /* NUL-terminated; "" when there is none */
    size_t body_len;
    const char *authorization; /* the Authorization header, or NULL */
    void *impl;                /* the server's own (for http_query) */
};

/* The value of query argument name ("?state=active"), or NULL. */
const char *http_query(const struct http_request *req, const char *name);

struct http_response {
    int status;
    json_t *body; /* owned by the response; the server sends and frees it */
};

/* Fills res, or calls http_defer; runs on the loop (or, with pools, on a thread of the
 * request's pool, concurrently with other handlers). */
typedef void (*http_handler_fn)(void *ctx, const struct http_request *req,
                                struct http_response *res);

struct http_server_config {
    struct loop *loop; /* the server's loop (borrowed; outlives the server) */
    /* Handlers that may block (a lock wait, a durable write) run on fixed pools of threads
     * instead of the loop: pool_of picks a request's pool (0 .. n_pools - 1), pool_threads
     * sizes each. n_pools 0: every handler runs on the loop. */
    size_t n_pools;
    size_t pool_threads[HTTP_MAX_POOLS];
    size_t (*pool_of)(void *ctx, const struct http_request *req);
    const char *address; /* IPv4 address to listen on, e.g. "127.0.0.1" */
    uint16_t port;       /* 0: pick a free port (see http_server_port) */
    size_t max_body;     /* bytes; larger request bodies get 413 */
    http_handler_fn handler;
    void *ctx;
    /* Optional: appends the program's own metrics to GET /metrics, after the server's
     * request counters. Runs on the loop. */
    void (*metrics)(void *ctx, struct metrics_text *t);
    /* Optional: HTTPS only (GnuTLS, through libmicrohttpd), with this certificate chain and
     * private key (PEM texts, borrowed until the server stops); a plain HTTP request on the
     * port gets no answer. Both NULL: plain HTTP. */
    const char *tls_cert_pem, *tls_key_pem;
    /* Optional: fixed pages served on GET at their exact path, without a token (the
     * coordinator's dashboard, GET /ui); any other method gets 405. Borrowed. */
    const struct http_page *pages;
    size_t n_pages;
};

/* A page built into the program: its bytes are served as they are. */
struct http_page {
    const char *path;         /* e.g. "/ui" */
    const char *content_type; /* e.g. "text/html; charset=utf-8" */
    const unsigned char *data;
    size_t len;
};

struct http_server;

enum tpc_err http_server_start(const struct http_server_config *cfg, struct http_server **out,
                               char *err, size_t errlen);
uint16_t http_server_port(const struct http_server *s);
/* On the loop, after loop_run returned: waits for pool handlers still running, answers
 * deferred requests not answered yet with 503, closes every connection, frees s. NULL is
 * fine. What the pools posted to the loop is stale then: run the loop no more. */
void http_server_stop(struct http_server *s);

/*
 * In a handler on the loop: the answer comes later. Leave res alone and keep the handle; the
 * request's method, path, body and headers stay valid until http_answer. Every handle must be
 * answered, once, on the loop (or be answered 503 by http_server_stop).
 */
struct http_later;
struct http_later *http_defer(const struct http_request *req);
/* Answers a deferred request: status with body (stolen). On the loop. */
void http_answer(struct http_later *later, int status, json_t *body);
/* The same with a response made by http_respond or http_respond_error. */
void http_answer_res(struct http_later *later, struct http_response *res);

/* Sets res to status with body (stolen: the response owns it). */
void http_respond(struct http_response *res, int status, json_t *body);

/* Sets res to {"error": {"code": code, "message": message}} with code's status (api_error.h). */
void http_respond_error(struct http_response *res, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same for an error already made (e->status set). */
void http_respond_api_error(struct http_response *res, const struct api_error *e);

/*
 * Reads "{txid}" or "{txid}/..." (a path after its route's prefix): copies a valid
 * transaction id into txid (TPC_TXID_MAX + 1 bytes) and sets *tail to the '/' after it, or
 * NULL. Otherwise answers 400 bad_txid and returns false.
 */
bool http_path_txid(const char *rest, char *txid, const char **tail, struct http_response *res);

/*
 * True when the request carries "Authorization: Bearer <token>" for this
 * token (compared in constant time). An empty token accepts every request.
 */
bool http_authorized(const struct http_request *req, const char *token);

#endif
