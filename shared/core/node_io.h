/*
 * node_io.h - everything a node's driver may do to the world, as one table of
 * function pointers (in the spirit of canonical/raft's struct raft_io).
 *
 * The drivers (replica.h for a coordinator replica, resource.h for a
 * participant) are pure: they learn of the world through events (a message
 * arrived, a write is durable, a timer fired, a client asked) and act on it
 * only through these functions. The programs implement them over HTTP,
 * SQLite and the real clock (coordinator/, participant/); the simulator over
 * a simulated network, disk and clock (tests/sim/). Both run the same driver
 * code, so every ordering rule the driver holds ("write before you speak",
 * "record the decision before telling anyone") is proven by the simulator on
 * the code that ships.
 *
 * Contract, for every implementation:
 *   1. Calls into a driver are serialized by the caller; a driver calls these
 *      functions only from inside such a call, never later on its own.
 *   2. send() never blocks and never calls back into the driver: answers come
 *      later as new events. Messages may be lost, duplicated, delayed.
 *   3. persist() starts a durable write and returns at once; once the write is
 *      durable (fsync), the implementation calls the driver's *_persisted()
 *      with a copy of the same struct node_write (round filled for
 *      NODE_WRITE_ROUND). Until then nothing that depends on it is sent:
 *      the driver waits for that event. A write that failed is reported with
 *      an error; a crash loses the completion (the driver's state with it).
 *   4. The read functions answer from durable state, synchronously.
 */
#ifndef TPC_NODE_IO_H
#define TPC_NODE_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "tpc_err.h"

/* Who a message goes to. */
enum node_kind {
    NODE_REPLICA = 1, /* id: the replica (acceptor) id */
    NODE_PARTICIPANT, /* name: the participant */
    NODE_CLIENT,      /* the client waiting on a transaction (m->txid) */
    NODE_CALLER,      /* id: a caller's handle, given with the event being answered */
};

struct node_addr {
    enum node_kind kind;
    uint32_t id;
    char name[TPC_NAME_MAX + 1];
};

enum node_write_kind {
    /* replica */
    NODE_WRITE_ROUND = 1, /* a fresh recovery round >= round; the write returns it in round */
    NODE_WRITE_DECISION,  /* this replica decided txid: outcome, parts (it owes the telling) */
    NODE_WRITE_LEARNED,   /* another replica's decision on txid: outcome */
    NODE_WRITE_TOLD,      /* every participant of txid acknowledged its outcome */
    /* participant */
    NODE_WRITE_PREPARED,  /* the prepared record of branch txid, changes and parts included */
    NODE_WRITE_READONLY,  /* branch txid changed nothing: it voted prepared and ended */
    NODE_WRITE_OUTCOME,   /* branch txid ends with outcome (applied, or discarded) and vote,
                           * in one durable step */
    NODE_WRITE_HEURISTIC, /* an operator ended prepared branch txid with outcome (applied, or
                           * discarded), recorded as heuristic with its parts */
    NODE_WRITE_RECONCILE, /* heuristic branch txid learned the chosen outcome: recorded */
};

struct node_write {
    enum node_write_kind kind;
    char txid[TPC_TXID_MAX + 1];
    enum tpc_outcome outcome;
    enum tpc_value vote;
    uint64_t round;
    uint64_t born; /* DECISION, LEARNED, PREPARED, OUTCOME: the transaction's begin (msg.h) */
    struct msg_parts parts;
};

/* An undecided transaction a replica's acceptor knows, for the sweep and restarts. */
struct node_txn {
    char txid[TPC_TXID_MAX + 1];
    enum tpc_outcome outcome;
    uint64_t born;
    struct msg_parts parts;
};

struct node_io {
    void *ctx;
    uint64_t (*now)(void *ctx);    /* milliseconds (or ticks), monotonic */
    uint64_t (*random)(void *ctx); /* uniform 64 bits */
    /* Optional (NULL: 0). wall: milliseconds since 1970, a transaction's born (msg.h).
     * horizon: this node forgets transactions born before it, and takes no message about
     * one (DESIGN.md section 11); it never goes down, even if the clock does. */
    uint64_t (*wall)(void *ctx);
    uint64_t (*horizon)(void *ctx);
    void (*send)(void *ctx, const struct node_addr *to, const struct msg *m);
    void (*persist)(void *ctx, const struct node_write *w);

    /* Replica reads. decision: the decision recorded or learned for txid (NONE when none),
     * with its parts when parts is not NULL, and its born (0: unknown) when born is not NULL.
     * acceptor_parts: the participant list this replica's acceptor recorded for txid (n 0: none),
     * and its born (0: unknown). stale: up to cap undecided transactions its acceptor has records
     * of, unchanged for age. untold: up to cap of its own decisions not marked told, in txid order
     * after `after` ("" first). */
    enum tpc_outcome (*decision)(void *ctx, const char *txid, struct msg_parts *parts,
                                 uint64_t *born);
    void (*acceptor_parts)(void *ctx, const char *txid, struct msg_parts *parts, uint64_t *born);
    size_t (*stale)(void *ctx, uint64_t age, struct node_txn *out, size_t cap);
    size_t (*untold)(void *ctx, const char *after, struct node_txn *out, size_t cap);

    /* Optional (NULL: never): messages about txid this node sent are still on their way,
     * neither answered nor failed. A leader does not resend while they are: the resend
     * would only follow them (a transport that carries a round of calls at a time). */
    bool (*in_flight)(void *ctx, const char *txid);

    /* Participant read: how branch txid ended here (RM_NONE: not ended), its vote and its
     * transaction's born (0: unknown). An error (storage unreadable) makes the driver refuse
     * the event that asked. */
    enum tpc_err (*ended)(void *ctx, const char *txid, int *rm_state, enum tpc_value *vote,
                          uint64_t *born);
};

/* Helpers for drivers. */
struct node_addr node_replica(uint32_t id);
struct node_addr node_participant(const char *name);
struct node_addr node_client(void);
struct node_addr node_caller(uint32_t handle);
void node_write_init(struct node_write *w, enum node_write_kind kind, const char *txid);

#endif
