/*
 * http_server.h - a small HTTP/1.1 server for JSON APIs, over libmicrohttpd.
 *
 * One thread per connection, so a handler may block (a lock wait, a call to
 * other processes) without stalling other requests. Bodies are capped: a
 * larger one gets 413 with a JSON error before the handler sees anything.
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
#include "metrics.h"
#include "tpc_err.h"

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

/* Fills res; runs on the connection's thread, concurrently with other handlers. */
typedef void (*http_handler_fn)(void *ctx, const struct http_request *req,
                                struct http_response *res);

struct http_server_config {
    const char *address; /* IPv4 address to listen on, e.g. "127.0.0.1" */
    uint16_t port;       /* 0: pick a free port (see http_server_port) */
    size_t max_body;     /* bytes; larger request bodies get 413 */
    http_handler_fn handler;
    void *ctx;
    /* Optional: appends the program's own metrics to GET /metrics, after the server's
     * request counters. Runs on the connection's thread, like the handler. */
    void (*metrics)(void *ctx, struct metrics_text *t);
};

struct http_server;

enum tpc_err http_server_start(const struct http_server_config *cfg, struct http_server **out,
                               char *err, size_t errlen);
uint16_t http_server_port(const struct http_server *s);
/* Stops accepting, waits for running handlers, frees s. NULL is fine. */
void http_server_stop(struct http_server *s);

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
