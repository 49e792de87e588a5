/*
 * http_client.h - JSON POSTs over libcurl's multi interface, two ways:
 *
 *   - struct http_agent: calls made on the process's event loop (loop.h) with
 *     libcurl's multi socket interface (curl_multi_socket_action): a call is
 *     started and its done function runs on the loop when it is answered or
 *     timed out. Nothing blocks; any number of calls are out at once.
 *   - struct http_client: blocking calls for a thread of its own (a batch
 *     at a time), and a pool of them.
 *
 * Both keep their connections open between calls (HTTP keep-alive), so
 * repeated calls to the same peers pay no connection set-up.
 */
#ifndef TPC_HTTP_CLIENT_H
#define TPC_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "metrics.h"
#include "tpc_err.h"

#define HTTP_CLIENT_MAX_RESPONSE (1024 * 1024) /* bytes of response body kept */

struct http_call {
    /* in (borrowed for the duration of the call) */
    const char *url;
    const char *body; /* JSON text; NULL: a GET (an agent's call) */
    size_t body_len;
    /* out */
    enum tpc_err err; /* TPC_OK when a response arrived (any status) */
    long status;      /* HTTP status, 0 without a response */
    char *response;   /* malloc'd, NUL-terminated body; the caller frees it */
    size_t response_len;
    char error[256]; /* why there was no response */
    /* an agent's call: in */
    long timeout_ms;
    void (*done)(struct http_call *call); /* on the loop, once; it may free the call */
    void *arg;
    /* the agent's own */
    char detail[256]; /* curl's own words on a failure (CURL_ERROR_SIZE) */
    void *easy;
    int64_t start_at; /* a call delayed by a network fault: when it leaves */
    struct http_call *prev, *next;
};

/*
 * TLS for every call of the process, set once at start before any call (NULL or "": none):
 * peers' certificates are verified against the CA in ca_file (PEM) instead of the system's,
 * and cert_file/key_file, when given, are shown to peers that ask for a client certificate.
 * An https:// URL is then verified against it; the names in a peer's certificate must match
 * the URL's host. Refused (err says why): a path too long, a CA file that holds no PEM
 * certificate.
 */
enum tpc_err http_client_tls(const char *ca_file, const char *cert_file, const char *key_file,
                             char *err, size_t errlen);

struct http_agent;

/* On l's thread; token as for http_client_new. */
struct http_agent *http_agent_new(struct loop *l, const char *token);
/* Calls still out are cut off: their done runs (err TPC_ERR_IO) before this returns. */
void http_agent_free(struct http_agent *a);
/* Starts call (url, body, body_len, timeout_ms, done, arg set; the rest is reset). Its done
 * always runs later on the loop, never inside this call. */
void http_agent_post(struct http_agent *a, struct http_call *call);

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
