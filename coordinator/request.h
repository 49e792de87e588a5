/*
 * request.h - the coordinator replica's state and its requests in progress, shared by
 * coord.c (start, stop, reads, the protocol endpoint) and coord_client.c (the client's
 * calls). Private to coordinator/.
 *
 * A request is a struct creq from its handler to its answer (request_reply, which frees it):
 * each step is an event for the driver, or a call or write that comes back as an event of its
 * own; a commit or abort waits in the waiting list of its transaction (coord_client.c).
 */
#ifndef TPC_COORD_REQUEST_H
#define TPC_COORD_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "acc_store.h"
#include "api_error.h"
#include "config.h"
#include "coord.h"
#include "engine.h"
#include "http_client.h"
#include "http_server.h"
#include "loop.h"
#include "metrics.h"
#include "txmap.h"

#define COORD_TICK_MS  20
#define COORD_LIST_MAX 1000 /* live, in-doubt and decided transactions in a listing, each */

/* A request in progress. */
enum creq_kind {
    CREQ_BEGIN,
    CREQ_EXEC,
    CREQ_COMMIT,
    CREQ_ABORT,
    CREQ_ONESHOT,
    CREQ_PAXOS,
    CREQ_RESOLVE,
    CREQ_CLUSTER,
};

/* One probe of the cluster view (coord_operator.c): a GET to a replica or participant. */
struct probe_call {
    struct http_call call;
    char url[CONFIG_URL_MAX + 32];
    double ms; /* from the probes' start to this answer */
};

struct creq {
    struct coord *c;
    struct http_later *later;
    enum creq_kind kind;
    bool aborting; /* a oneshot whose branch failed: its abort is under way */
    char txid[TPC_TXID_MAX + 1];
    uint32_t timeout_ms;
    enum coord_wait wait;
    uint64_t started; /* ns, for the commit histogram */
    /* a oneshot; a begin's first statement (first) */
    json_t *branches, *results, *failed, *first; /* failed: the failing branch's answer */
    size_t step;
    int failed_status;
    /* a forwarded exec */
    struct http_call call;
    char url[CONFIG_URL_MAX + 128];
    char *text;
    char participant[TPC_NAME_MAX + 1];
    /* a write: begin with a client's txid, or the acceptor's batch of /v1/paxos */
    struct acc_op op;
    struct loop_msg back;
    struct msg *in, *out;
    json_t *answers;
    /* waiting for the driver's answer */
    int64_t until;
    struct creq *next_waiter;
    /* the cluster view's probes, all out at once; the views asked for meanwhile, which this
     * round answers too (each in c->outs) */
    struct probe_call *probes;
    size_t n_probes, probes_left;
    struct creq *followers, *next_follower;
    /* a call or write of its own is out (in c->outs) */
    struct creq *out_prev, *out_next;
};

/* The requests waiting on one transaction. */
struct waitlist {
    struct txmap_entry e;
    struct creq *head;
};

struct coord {
    struct coord_config cfg;
    struct loop *loop;
    struct acc_store *store;
    struct engine eng;
    struct txmap waiting; /* struct waitlist by txid */
    size_t n_waiting;
    size_t out;                 /* requests with a call or write out */
    struct creq *outs;          /* those requests */
    struct creq *cluster_round; /* the cluster view whose probes are out, if any */
    struct loop_timer tick;
    struct metrics_hist commit_time; /* client commit calls, from request to answer */
    bool eng_up;
    bool stopping; /* coord_shutdown began: nothing new starts, requests are answered */
    bool stopped;
};

/* A request of kind for c, answered through later; NULL (later answered 500) without memory. */
struct creq *request_new(struct coord *c, enum creq_kind kind, struct http_later *later);
/* Answers q with body (stolen) and status, or with *e when body is NULL; frees q. */
void request_reply(struct creq *q, int status, json_t *body, const struct api_error *e);
void request_error(struct creq *q, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* q has a call of its own out (counted in c->out, listed in c->outs) until request_out_back. */
void request_out_add(struct creq *q);
void request_out_back(struct creq *q);
/* Posts q->op (its kind and inputs set) to the store; back(q) runs on the loop once it is
 * durable or failed (call request_out_back there). */
void request_post_op(struct creq *q, loop_fn back);

/* The API's names of the replica's states (REPLICA_ACTIVE ... REPLICA_DECIDED). */
extern const char *const request_state_names[4];
/* A transaction's state as the API names it. */
const char *request_state_word(const struct replica_view *v);
/* A transaction's participant list as JSON: [] when it has none. */
json_t *request_parts_json(const struct msg_parts *parts);
/* {"txid", "state", "outcome", "participants"} of a decided transaction. */
json_t *request_outcome_json(const char *txid, enum tpc_outcome o, const struct msg_parts *parts);
/* The decision of a transaction no longer (or never) in memory, as an answer; or NULL with *e
 * unknown_transaction. */
json_t *request_ended(struct coord *c, const char *txid, int *status, struct api_error *e);

/* coord_client.c: the engine's report that txid changed (its waiting requests may be
 * answerable now), and the sweep of every waiting request (all: answer them whatever the
 * state, at the stop; else those past their deadline). */
void coord_client_changed(void *ctx, const char *txid);
void coord_client_sweep(struct coord *c, bool all);
/* Makes q wait for its transaction's outcome (answered by the sweep or when it changes). */
void coord_client_wait(struct creq *q);

#endif
