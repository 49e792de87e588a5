/*
 * coord.h - a coordinator replica: the client's transactions, the leader that
 * commits them with Paxos Commit over HTTP, recovery of transactions whose
 * leader vanished, and the acceptor behind /v1/paxos.
 *
 * Transaction states at this replica:
 *
 *   ACTIVE --commit--> PREPARING --decided--> DECIDED
 *     |                                          ^
 *     +--abort, deadline, ----> RECOVERING ------+
 *        status of a stale one
 *
 * Every decision comes from the leader's decision rule (shared/leader.c):
 * COMMITTED iff every instance is chosen prepared, ABORTED iff one is chosen
 * aborted. Abort, timeouts and recovery all run phase 1 with a higher ballot;
 * nothing is decided by fiat.
 */
#ifndef TPC_COORD_H
#define TPC_COORD_H

#include <jansson.h>

#include "config.h"
#include "api_error.h"
#include "http_server.h"
#include "loop.h"
#include "metrics.h"
#include "msg.h"
#include "tpc_err.h"

struct coord;

/* Opens the store and starts the replica on loop (borrowed; everything runs on it). */
enum tpc_err coord_open(const struct coord_config *cfg, struct loop *loop, struct coord **out,
                        char *err, size_t errlen);
/* After loop_run returned: lets the requests with a call or write out come back and answers
 * every request still waiting (before http_server_stop). */
void coord_shutdown(struct coord *c);
void coord_close(struct coord *c);
const struct coord_config *coord_config(const struct coord *c);

/*
 * Client API, on the loop. The calls that take a struct http_later answer it, now or once
 * what they wait for is back (body is borrowed for the call only); the others return a new
 * JSON body (and *status) or NULL with *e set.
 */
void coord_begin(struct coord *c, json_t *body, struct http_later *later);
void coord_exec(struct coord *c, const char *txid, json_t *body, struct http_later *later);
/*
 * When a commit answers. DECIDED: once the outcome is chosen, which makes it durable (F+1
 * acceptors hold every vote); participants apply it moments later, in the background.
 * APPLIED: after the participants were told and answered (or one round of trying).
 */
enum coord_wait { COORD_WAIT_DECIDED, COORD_WAIT_APPLIED };

/* Reads an optional "wait" value ("decided" or "applied"; NULL: decided). */
enum tpc_err coord_wait_parse(json_t *v, enum coord_wait *wait, struct api_error *e);
void coord_commit(struct coord *c, const char *txid, enum coord_wait wait,
                  struct http_later *later);
void coord_abort(struct coord *c, const char *txid, struct http_later *later);
json_t *coord_status(struct coord *c, const char *txid, int *status, struct api_error *e);
json_t *coord_list(struct coord *c, const char *state, int *status, struct api_error *e);
void coord_oneshot(struct coord *c, json_t *body, struct http_later *later);
json_t *coord_health(struct coord *c);
/*
 * The operator's calls (coord_operator.c). Resolve: an undecided transaction ended now through
 * Paxos at this replica (replica_resolve), answered its outcome. Detail: its status plus what
 * this replica holds of it: the leader's instances (votes, ballots, acceptors that accepted,
 * acknowledgements) and this acceptor's records. Cluster: every replica and participant probed
 * (GET /health, and a participant's heuristic decisions), answered once all are back.
 */
void coord_resolve(struct coord *c, const char *txid, struct http_later *later);
json_t *coord_detail(struct coord *c, const char *txid, int *status, struct api_error *e);
void coord_cluster(struct coord *c, struct http_later *later);
/* Appends this replica's metrics (for GET /metrics; see http_server_config). */
void coord_metrics(void *ctx, struct metrics_text *t);

/* Replica and participant API: a batch of protocol messages in (borrowed for the call only),
 * the answers out, once the acceptor's records behind them are durable. */
void coord_paxos(struct coord *c, const struct msg *in, size_t n, struct http_later *later);

#endif
