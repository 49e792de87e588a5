/*
 * store.h - the participant's SQLite database: the resource data and two
 * bookkeeping tables in one file (DESIGN.md section 4).
 *
 *   tpc_prepared(txid, changeset, participants, prepared_at, born)   branches voted prepared
 *   tpc_outcome(txid, outcome, vote, decided_at, born,               branches that ended
 *               participants, learned)                                (heuristic: rm.h)
 *   tpc_meta(key, value)                     'horizon': the highest horizon used
 *
 * Ended branches are forgotten once their transaction is older than the horizon
 * (store_collect, DESIGN.md section 11).
 *
 * Branch execution (store_exec) runs a branch's statements inside a SQLite
 * transaction on top of its earlier changes, records the cumulative
 * changeset with the session extension, and rolls back: the database's write
 * lock is held for the statements only. Durable steps (store_submit) are
 * group-committed (groupcommit.h): every job waiting at a moment goes into one
 * SQLite transaction, one fsync for many, and a lone job runs at once on its
 * submitter's thread.
 *
 * One connection, one mutex: every SQLite call happens under it.
 */
#ifndef TPC_STORE_H
#define TPC_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "lockset.h"
#include "msg.h"
#include "rm.h"
#include "tpc_err.h"

struct store;

/* Why store_exec failed, for the HTTP status the caller picks. */
enum store_fail {
    STORE_FAIL_NONE = 0,
    STORE_FAIL_SQL,        /* the statement is wrong: syntax, unknown column, type, ... */
    STORE_FAIL_FORBIDDEN,  /* not allowed in a branch: DDL, PRAGMA, ATTACH, table without PK */
    STORE_FAIL_CONSTRAINT, /* a constraint (UNIQUE, CHECK, NOT NULL, ...) failed */
    STORE_FAIL_ROWS,       /* a result exceeded the row cap */
    STORE_FAIL_TIMEOUT,    /* the statements ran longer than statement_ms */
    STORE_FAIL_ENDED,      /* the transaction already has an outcome here */
    STORE_FAIL_LOCKED,     /* the accept callback refused the changeset (a lock is held) */
    STORE_FAIL_INTERNAL,
};

struct store_config {
    const char *path;        /* database file */
    const char *schema_file; /* run once, when the database is new; may be NULL */
    uint32_t max_rows;       /* result rows per statement */
    uint32_t statement_ms;   /* one exec request's statements may run this long */
    int64_t retention_ms;    /* ended branches are forgotten this long after (0: an hour) */
};

enum tpc_err store_open(const struct store_config *cfg, struct store **out, char *err,
                        size_t errlen);
void store_close(struct store *st);

/*
 * Called with the branch's new cumulative changeset while the database is
 * still locked, so that nothing commits between the statements' reads and
 * the locks the callback takes. Return false to discard the execution.
 */
typedef bool (*store_accept_fn)(void *ctx, const void *changeset, int len);

/*
 * Runs statements (a JSON array of {"sql": text, "params": [...]} that the
 * caller validated) for branch txid whose earlier changes are
 * changeset/len (NULL/0 for none). On success *results is a new JSON array
 * (one {"columns", "rows", "changes", "last_insert_rowid"} per statement)
 * and *out, *out_len the new changeset (malloc'd; caller frees). Nothing is
 * ever committed here.
 */
enum store_fail store_exec(struct store *st, const char *txid, const void *changeset, int len,
                           json_t *statements, store_accept_fn accept, void *ctx, json_t **results,
                           void **out, int *out_len, char *msg, size_t msglen);

/*
 * Calls emit for each lock a branch's changeset needs (lockset.h: its rows, UNIQUE values,
 * parent keys). Only from an accept callback of store_exec or store_with_branch, where the
 * branch's changes are in place: an update's unchanged columns and a child's parent are read
 * there. TPC_ERR_TOO_BIG: a key too long; TPC_ERR_STATE: the changes are not in place.
 */
enum tpc_err store_branch_keys(struct store *st, const void *changeset, int len,
                               lockset_emit_fn emit, void *ctx);

/*
 * Calls accept(ctx, changeset, len) with the branch's changes in place (inside a SQLite
 * transaction, rolled back after), as store_exec does after its statements: for a branch
 * reloaded at start, whose locks are taken again. False when the changes do not apply or
 * accept says false.
 */
bool store_with_branch(struct store *st, const void *changeset, int len, store_accept_fn accept,
                       void *ctx);

/* A durable step, committed in a group (groupcommit.h). */
enum store_job_kind {
    STORE_JOB_PREPARE,   /* insert the prepared record */
    STORE_JOB_COMMIT,    /* apply the changeset, delete the prepared record, record committed */
    STORE_JOB_ABORT,     /* delete the prepared record if any, record aborted */
    STORE_JOB_READONLY,  /* record that a branch that changed nothing voted prepared */
    STORE_JOB_HEURISTIC, /* an operator's outcome: applied (commit) or not, the prepared record
                          * deleted, the end recorded as heuristic with its participants */
    STORE_JOB_RECONCILE, /* the outcome a heuristic branch learned, recorded beside it */
};

struct store_job {
    enum store_job_kind kind;
    const char *txid;      /* borrowed */
    const void *changeset; /* borrowed; PREPARE and COMMIT */
    int changeset_len;
    const char *participants; /* borrowed JSON array text; PREPARE */
    enum tpc_value vote;      /* COMMIT, ABORT: the branch's ballot-0 vote, or NONE */
    uint64_t born;            /* the transaction's begin, when known (msg.h) */
    enum tpc_outcome outcome; /* HEURISTIC: the operator's; RECONCILE: the one learned */
    /* out */
    bool mixed; /* RECONCILE: the outcome learned is not the heuristic one */
    enum tpc_err rc;
    char err[256];
    struct store *store; /* set by store_submit */
};

/* Queues job and returns once it is durable (or failed: job->rc). */
enum tpc_err store_submit(struct store *st, struct store_job *job);
/* store_submit of jobs[0..n) together: one group, one fsync, each job's own rc and err. */
void store_submit_all(struct store *st, struct store_job *const *jobs, size_t n);

/* A prepared record as loaded at start-up. */
struct store_prepared {
    char txid[TPC_TXID_MAX + 1];
    void *changeset; /* malloc'd */
    int changeset_len;
    struct msg_parts parts;
    uint64_t born;
};

/* Loads every prepared record; *list is malloc'd (free each changeset, then it). */
enum tpc_err store_load_prepared(struct store *st, struct store_prepared **list, size_t *n,
                                 char *err, size_t errlen);

/* A heuristic decision as recorded (rm.h): reconciled once learned is not NONE. */
struct store_heuristic {
    char txid[TPC_TXID_MAX + 1];
    enum tpc_outcome heuristic, learned;
    struct msg_parts parts;
    uint64_t born;
    int64_t at_ms; /* when the operator made it */
};
/* The heuristic decisions recorded, at most cap: only those not reconciled when pending; only
 * txid's when txid is not NULL. Without after, the pending and mixed ones first, each group
 * newest first; with after, those whose txid sorts after it, in txid order (a page: "" for the
 * first, then the last txid of the page before). Returns how many; -1 on an error. */
int store_heuristics(struct store *st, bool pending, const char *txid, const char *after,
                     struct store_heuristic *out, size_t cap);
/* How many heuristic decisions are recorded not reconciled yet, and reconciled as mixed. */
void store_heuristic_counts(struct store *st, int64_t *pending, int64_t *mixed);
/*
 * How txid's branch ended here: RM_COMMITTED, RM_ABORTED, RM_READONLY, RM_HEUR_*, or
 * RM_NONE when nothing is recorded; the vote it cast, and its transaction's born (0: unknown).
 */
enum tpc_err store_ended(struct store *st, const char *txid, enum rm_state *state,
                         enum tpc_value *vote, uint64_t *born);

/* The horizon (horizon_store.h): prepares of transactions born before it are refused. */
uint64_t store_horizon(struct store *st);
/* Forgets a batch of ended branches older than the horizon, in one durable group: the rows
 * removed, or -1 on an error (logged). */
int64_t store_collect(struct store *st);

/* Commits whose changeset did not apply (DESIGN.md section 5 says never). */
uint64_t store_apply_failures(struct store *st);
/* fsync calls made on the database's files since start (counted by a VFS shim). */
uint64_t store_fsyncs(void);
/* SQLite transactions the committer made, and jobs they carried. */
void store_group_stats(struct store *st, uint64_t *groups, uint64_t *jobs);

#endif
