/*
 * http_client.h - parallel JSON POSTs over libcurl's multi interface.
 *
 * A struct http_client keeps its connections open between calls (HTTP
 * keep-alive), so repeated calls to the same peers pay no connection set-up.
 * It is not thread-safe: use one per thread.
 */
#ifndef TPC_HTTP_CLIENT_H
#define TPC_HTTP_CLIENT_H

#include <stddef.h>

#include "metrics.h"
#include "tpc_err.h"

#define HTTP_CLIENT_MAX_RESPONSE (1024 * 1024) /* bytes of response body kept */

struct http_call {
    /* in (borrowed for the duration of the call) */
    const char *url;
    const char *body; /* JSON text */
    size_t body_len;
    /* out */
    enum tpc_err err; /* TPC_OK when a response arrived (any status) */
    long status;      /* HTTP status, 0 without a response */
    char *response;   /* malloc'd, NUL-terminated body; the caller frees it */
    size_t response_len;
    char error[256]; /* why there was no response */
};

struct http_client;

/* token: sent as "Authorization: Bearer <token>" when not empty; copied. */
struct http_client *http_client_new(const char *token);
void http_client_free(struct http_client *c);

/*
 * POSTs every call at once and returns when all have answered or timeout_ms
 * has passed (those still running then fail with TPC_ERR_IO). Resets the out
 * fields first.
 */
void http_client_post_all(struct http_client *c, struct http_call *calls, size_t n,
                          long timeout_ms);

/*
 * http_client_post_all in two halves, so that the caller can work while the calls are out:
 * start sends them, finish waits for their answers (or their timeout). Between the two, c
 * and calls belong to the calls; one start, then one finish with the same calls.
 */
void http_client_start(struct http_client *c, struct http_call *calls, size_t n, long timeout_ms);
void http_client_finish(struct http_client *c, struct http_call *calls, size_t n);

/* Appends the process's outgoing-call counters (every client's) to t. */
void http_client_metrics(struct metrics_text *t);

/*
 * A pool of idle clients, so that threads reuse connections instead of opening
 * new ones. Thread-safe. http_pool_get returns a client (new if none is idle;
 * NULL when out of memory); http_pool_put gives it back (or frees it when the
 * pool is full).
 */
struct http_pool;
struct http_pool *http_pool_new(const char *token);
void http_pool_free(struct http_pool *p);
struct http_client *http_pool_get(struct http_pool *p);
void http_pool_put(struct http_pool *p, struct http_client *c);

#endif
