/*
 * participant.h - the participant service: branches of transactions over one
 * SQLite database, their votes, and their outcomes (DESIGN.md sections 3-5).
 *
 * A branch lives in memory from its first statement to its outcome; the
 * database keeps what must survive a crash (store.h). Operations on one branch
 * are serialized by its mutex; different branches run concurrently, meeting
 * only at row locks (locks.h) and at the database mutex (microseconds).
 *
 * The participant's rules come from shared/rm.c: it votes by sending its
 * instance's ballot-0 phase 2a to every replica (acceptor), after the
 * prepared record is durable; it repeats its first vote forever; it applies
 * an outcome in the same SQLite transaction that records it.
 */
#ifndef TPC_PARTICIPANT_H
#define TPC_PARTICIPANT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "api_error.h"
#include "metrics.h"
#include "msg.h"
#include "tpc_err.h"

#define PARTICIPANT_MAX_REPLICAS TPC_MAX_REPLICAS

struct participant_config {
    char name[TPC_NAME_MAX + 1];
    const char *db_path;
    const char *schema_file;
    const char *replicas[PARTICIPANT_MAX_REPLICAS]; /* base URLs; index = replica id */
    uint32_t n_replicas;
    const char *token;          /* sent to replicas; required from callers ("" for none) */
    uint32_t lock_timeout_ms;   /* a conflicting branch waits this long, then 409 */
    uint32_t branch_timeout_ms; /* a branch not prepared by then aborts on its own */
    uint32_t vote_timeout_ms;   /* how long prepare waits for the acceptors' answers */
    uint32_t doubt_ms;          /* a prepared branch asks the replicas after this */
    uint32_t max_statements;    /* per exec request */
    uint32_t max_rows;          /* per statement result */
    uint32_t statement_ms;      /* an exec request's statements may run this long */
    int64_t retention_ms;       /* ended branches are forgotten once this much older */
};

struct participant;

enum tpc_err participant_open(const struct participant_config *cfg, struct participant **out,
                              char *err, size_t errlen);
/* Stops the background thread, closes the database. Prepared branches stay prepared on disk. */
void participant_close(struct participant *p);

const struct participant_config *participant_config(const struct participant *p);

/* Each returns a new JSON body on success, NULL with *e filled on failure. */
/* What an exec carries besides its statements. */
struct participant_exec_req {
    /* A new branch aborts on its own unless prepared within it (0: the configured
     * --branch-timeout-ms); ignored for a branch that exists. */
    uint32_t timeout_ms;
    /* 1, 2, 3... for the execs of one branch (0: not numbered): a repeat of the last one gets
     * its first answer and runs nothing (http-api.md); text: the statements as canonical JSON,
     * to tell a repeat from another request. */
    uint32_t seq;
    const char *text;
    /* The transaction's begin (msg.h) as its leader says it (0: not said), kept with a new
     * branch: its end is forgotten once that is older than the horizon (DESIGN.md s. 11). */
    uint64_t born;
};
json_t *participant_exec(struct participant *p, const char *txid, json_t *statements,
                         const struct participant_exec_req *req, struct api_error *e);
/*
 * The vote is the answer; the caller (the leader) passes it to the acceptors itself, as its
 * ballot-0 phase 2a, one batch per acceptor for all participants (leader.h rule 5). relayed
 * is accepted for compatibility and changes nothing.
 */
json_t *participant_prepare(struct participant *p, const struct msg *prepare, bool relayed,
                            struct api_error *e);
json_t *participant_outcome(struct participant *p, const char *txid, enum tpc_outcome outcome,
                            struct api_error *e);
/* One outcome of a batch (POST /v1/outcomes). */
struct participant_outcome_item {
    char txid[TPC_TXID_MAX + 1];
    enum tpc_outcome outcome;
    uint64_t born; /* the transaction's begin, as the leader says it (0: not said) */
};
/* Applies items[0..n) as participant_outcome would, their writes together; answers
 * {"results": [...]}, one per item in order: its ack, or {"txid", "error"}. NULL and *e only
 * when no result could be made (out of memory). */
json_t *participant_outcomes(struct participant *p, const struct participant_outcome_item *items,
                             size_t n, struct api_error *e);
json_t *participant_status(struct participant *p, const char *txid, struct api_error *e);
/*
 * An operator's heuristic decision for prepared branch txid (resource.h rule 7): applied now,
 * recorded as heuristic, reconciled once the replicas tell the chosen outcome. The answer is
 * the decision as participant_heuristics lists it. A repeat of the same decision answers it
 * again; a branch not prepared (or decided the other way): 409 not_prepared.
 */
json_t *participant_heuristic(struct participant *p, const char *txid, enum tpc_outcome o,
                              struct api_error *e);
/* {"heuristics": [...]}: the heuristic decisions recorded here (at most 1000: the pending and
 * mixed ones first, each group newest first); NULL with e set when storage cannot say. */
json_t *participant_heuristics(struct participant *p, struct api_error *e);
json_t *participant_list_prepared(struct participant *p);
json_t *participant_health(struct participant *p);
/* Appends this participant's metrics (for GET /metrics; see http_server_config). */
void participant_metrics(void *ctx, struct metrics_text *t);

#endif
