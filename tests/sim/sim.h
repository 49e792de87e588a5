/*
 * sim.h - a deterministic simulator of whole Paxos Commit clusters.
 *
 * One process runs 2F+1 replicas, P participants and one client over a
 * simulated network, disk and clock. Each replica runs the shipped replica
 * driver (shared/core/replica.h) and the real acceptor; each participant the
 * shipped participant driver (shared/core/resource.h). This folder holds only
 * their simulated I/O (struct node_io over the network below and an in-memory
 * disk whose writes complete after a random delay and may be lost or kept by
 * a crash), the fault schedule, the checker and main. A 64-bit seed fixes everything: the cluster's
 * shape, timeouts, and the schedule of message loss, duplication, delay and
 * reordering, crashes (including between a durable write and the message that
 * depends on it) and restarts, dueling recoveries and participants voting
 * aborted. After every step the checker (sim_check.c) tests the safety
 * invariants of DESIGN.md section 3; once the faults stop, every transaction
 * must decide and every participant learn the outcome within a bounded time.
 *
 * Time is in ticks. Node ids: replicas 0..R-1, participants R..R+P-1, then
 * the client.
 */
#ifndef SIM_H
#define SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "acceptor.h"
#include "msg.h"
#include "node_io.h"
#include "prng.h"
#include "replica.h"
#include "resource.h"
#include "rm.h"

#define SIM_MAX_F      2
#define SIM_MAX_R      (2 * SIM_MAX_F + 1)
#define SIM_MAX_P      5
#define SIM_MAX_T      4
#define SIM_MAX_NODES  (SIM_MAX_R + SIM_MAX_P + 1)
#define SIM_MAX_WRITES 64 /* writes on their way at one node */

/* What the schedule of one seed looks like; all drawn from the seed. */
struct sim_params {
    uint32_t f, n_replicas, n_parts, n_txns;
    uint32_t loss_ppm, dup_ppm, long_delay_ppm; /* per message */
    uint32_t crash_ppm;                         /* per tick: crash one random process */
    uint32_t midcrash_ppm;                      /* per durable write: crash right after it */
    uint32_t vote_abort_ppm;                    /* per branch: it cannot commit */
    uint32_t read_only_ppm;                     /* per branch: it changed nothing */
    uint32_t max_delay;                         /* normal delivery delay, 1..max_delay ticks */
    uint32_t max_down;                          /* a crashed process stays down up to this */
    uint64_t fault_ticks;                       /* faults happen only before this tick */
    uint64_t live_ticks;                        /* after it, everything must settle within */
    uint64_t prepare_timeout, retry_interval, retry_max;
    uint64_t client_timeout, sweep_age, branch_timeout, txn_timeout;
    uint32_t client_abort_ppm; /* per transaction: the client aborts instead of committing */
    uint32_t write_delay;      /* a write completes 0..write_delay ticks after it starts */
    uint32_t write_fail_ppm;   /* per write, while faults are on: it fails (nothing written) */
    uint64_t retention;        /* a transaction born longer ago is forgotten (DESIGN.md s. 11) */
    uint32_t replay_ppm;       /* per tick: a message delivered earlier arrives again, late */
    uint32_t heuristic_ppm;    /* per tick and participant, while faults are on: an operator
                                * decides one of its prepared branches heuristically */
};

/* The simulated wall clock (a transaction's born) runs this far ahead of the tick count, so
 * that no born is 0 ("unknown"). */
#define SIM_WALL_OFFSET 1000
#define SIM_REPLAY_KEEP 64 /* delivered messages kept to be replayed late */

/* What a packet carries: a protocol message, or one of the client's requests. */
enum sim_req {
    SIM_MSG = 0,
    SIM_EXEC,    /* the first statement of a branch, to participant `to` */
    SIM_BEGIN,   /* begin (with the participants enlisted), to the leader */
    SIM_COMMIT,  /* commit, to the leader */
    SIM_ABORT,   /* abort, to the leader */
    SIM_RESOLVE, /* an operator's resolve (abort through Paxos), to any replica */
};

struct sim_packet {
    uint32_t from, to;
    uint64_t at; /* deliverable at or after this tick */
    enum sim_req req;
    bool is_answer; /* the answer to a question (io send to NODE_CALLER), not a request */
    struct msg m;
};

/* A write on its way to a node's simulated disk. */
struct sim_write {
    struct node_write w;
    uint64_t at; /* durable at this tick */
};

/* What a node's struct node_io is given as its context. */
struct sim_io_ctx {
    struct sim *s;
    uint32_t node;
};

struct sim_replica {
    /* durable: survives a crash */
    struct acceptor_record acc[SIM_MAX_T][SIM_MAX_P];
    enum tpc_outcome decided[SIM_MAX_T]; /* recorded (its own) or learned */
    uint64_t decided_born[SIM_MAX_T];
    struct msg_parts decided_parts[SIM_MAX_T];
    bool recorded[SIM_MAX_T]; /* its own decision record: it owes the telling */
    bool told[SIM_MAX_T];
    uint64_t round; /* highest recovery round this replica ever reserved */
    /* volatile */
    bool drv_up;
    struct replica drv;
    struct sim_io_ctx io_ctx;
    struct sim_write pending[SIM_MAX_WRITES];
    uint32_t n_pending;
    uint64_t touched[SIM_MAX_T]; /* last acceptor activity, for the sweep */
};

struct sim_part {
    /* durable */
    struct rm_branch dur[SIM_MAX_T]; /* as the checker knows it: kept when forgotten */
    struct msg_parts dur_parts[SIM_MAX_T];
    uint64_t dur_born[SIM_MAX_T];
    uint64_t dur_ended_at[SIM_MAX_T];
    bool forgotten[SIM_MAX_T];               /* its end was collected: storage no longer knows it */
    enum tpc_outcome dur_learned[SIM_MAX_T]; /* a heuristic branch's reconciliation */
    /* volatile */
    bool drv_up;
    struct resource drv;
    struct sim_io_ctx io_ctx;
    struct sim_write pending[SIM_MAX_WRITES];
    uint32_t n_pending;
};

struct sim_txn {
    char txid[TPC_TXID_MAX + 1];
    struct msg_parts parts; /* participant names "p0".."p<P-1>", all of them or a subset */
    uint32_t part_node[SIM_MAX_P];
    uint32_t leader; /* replica the client asks to commit */
    uint64_t start;
    uint64_t born; /* its begin by the simulated wall clock (the leader's first begin) */
    bool started;
    bool branch_ok[SIM_MAX_P];
    bool changed[SIM_MAX_P]; /* false: a read-only branch */
    bool had_branch[SIM_MAX_P];
    bool client_aborts;   /* the client asks to abort instead of committing */
    uint64_t commit_at;   /* when the client sends its commit (or abort) */
    bool requested;       /* ... it has */
    uint32_t relay_first; /* the leader's first relay targets (leader_relay_first); 0: all */
    /* client */
    enum tpc_outcome told; /* what the client was told */
    uint64_t client_timer;
    uint32_t client_attempts;
    uint32_t recovered_by; /* bit r: replica r ran recovery rounds for it */
};

/* Ground truth for the checker: every acceptance ever made, per instance. */
struct check_accept {
    struct ballot ballot;
    enum tpc_value value;
    uint32_t acceptors;
};

struct check_inst {
    struct check_accept *acc; /* every acceptance made durable */
    uint32_t n, cap;
    struct check_accept *prop; /* the first value proposed in each ballot (phase 2a sent) */
    uint32_t n_prop, cap_prop;
    enum tpc_value chosen;
};

struct sim_stats {
    uint64_t seeds, ticks, sent, delivered, dropped, duplicated, crashes, midcrashes;
    uint64_t txns, committed, aborted, recoveries, recovered_by_other, dueled, wire_checked;
    uint64_t resolves;               /* operators' resolve requests (replica_resolve) */
    uint64_t heuristics, heur_mixed; /* operators' heuristic decisions; reconciled as mixed */
    uint64_t junk_refused; /* spoiled copies of messages refused (nodes; codec with --wire) */
    uint64_t replayed, forgotten;         /* late copies delivered; records collected */
    uint64_t settle_max, settle_max_seed; /* slowest settling after faults stopped */
};

struct sim {
    struct sim_params p;
    struct prng rng;
    uint64_t seed, now;
    bool faults; /* still in the fault phase */
    bool wire;   /* round-trip every message through the JSON codec */
    int verbose;
    FILE *log;

    bool up[SIM_MAX_NODES], dying[SIM_MAX_NODES];
    uint64_t down_until[SIM_MAX_NODES];
    struct sim_replica rep[SIM_MAX_R];
    struct sim_part part[SIM_MAX_P];
    struct sim_txn txn[SIM_MAX_T];

    struct sim_packet *net, *due;
    uint32_t n_net, cap_net, cap_due;
    struct sim_packet replay[SIM_REPLAY_KEEP]; /* copies of delivered messages */
    uint32_t n_replay;

    struct check_inst inst[SIM_MAX_T][SIM_MAX_P];
    char violation[512]; /* first violation found; "" while none */
    char error[512];     /* an unexpected error from the core (not an invariant) */
    struct sim_stats *stats;
};

/* sim_net.c */
void sim_send(struct sim *s, uint32_t from, uint32_t to, const struct msg *m);
/* A client request about transaction t (SIM_EXEC, SIM_BEGIN, SIM_COMMIT, SIM_ABORT). */
void sim_send_request(struct sim *s, uint32_t to, uint32_t t, enum sim_req req);
/* A message from a node's driver through its node_io: to a replica, participant, client or
 * the caller being answered. */
void sim_io_send(struct sim *s, uint32_t from, const struct node_addr *to, const struct msg *m);
/* Starts a write at node (its durable effect comes with sim_*_tick). */
void sim_io_persist(struct sim *s, uint32_t node, struct sim_write *pending, uint32_t *n_pending,
                    const struct node_write *w);
/* Takes the first of node's writes on their way if it is durable by now (in start order). */
/* Now and then (faults on) a spoiled, invalid copy of pk's message to try on its node first. */
bool sim_junk_now(struct sim *s, const struct sim_packet *pk, struct msg *junk);
/* Whether the write about to land fails instead (an I/O error: nothing reaches the disk). */
bool sim_write_fails(struct sim *s);
bool sim_io_due(struct sim *s, uint32_t node, struct sim_write *pending, uint32_t *n_pending,
                struct node_write *w);
void sim_io_fill(struct sim *s, uint32_t node, struct sim_io_ctx *ctx, struct node_io *io);
/* The simulated wall clock, and every node's horizon (one clock: no skew). */
uint64_t sim_wall(const struct sim *s);
uint64_t sim_horizon(const struct sim *s);
/* Now and then, a message delivered before arrives again (a late copy). */
void sim_replay(struct sim *s);
void sim_deliver_due(struct sim *s);
void sim_trace(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool sim_is_replica(const struct sim *s, uint32_t node);
uint32_t sim_client(const struct sim *s);
int sim_txn_index(const struct sim *s, const char *txid);
const char *sim_node_name(const struct sim *s, uint32_t node, char *buf, size_t len);

/* sim_replica.c */
void sim_replica_receive(struct sim *s, uint32_t r, uint32_t from, const struct sim_packet *pk);
void sim_replica_tick(struct sim *s, uint32_t r);
void sim_replica_crash(struct sim *s, uint32_t r);
void sim_replica_restart(struct sim *s, uint32_t r);
void sim_replica_stop(struct sim *s, uint32_t r);
void sim_replica_boot(struct sim *s, uint32_t r);
/* The disk forgets what is older than the horizon (acc_store.c's ACC_OP_COLLECT). */
void sim_replica_collect(struct sim *s, uint32_t r);

/* sim_participant.c */
void sim_part_receive(struct sim *s, uint32_t p, uint32_t from, const struct sim_packet *pk);
void sim_part_tick(struct sim *s, uint32_t p);
void sim_part_begin(struct sim *s, uint32_t p, uint32_t t);
void sim_part_crash(struct sim *s, uint32_t p);
void sim_part_restart(struct sim *s, uint32_t p);
void sim_part_stop(struct sim *s, uint32_t p);
void sim_part_boot(struct sim *s, uint32_t p);
/* The disk forgets ended branches older than the horizon (store.c's store_collect). */
void sim_part_collect(struct sim *s, uint32_t p);
/* The branch of transaction t at participant p as TCommit sees it (memory if up, else disk). */
enum rm_state sim_part_state(const struct sim *s, uint32_t p, uint32_t t);

/* sim_check.c */
void check_accepted(struct sim *s, uint32_t t, uint32_t i, uint32_t acceptor, struct ballot b,
                    enum tpc_value v);
/* Every message sent: one value per ballot; replicas' outcomes equal the chosen votes'. */
void check_sent(struct sim *s, uint32_t from, const struct msg *m);
enum tpc_outcome check_decision(const struct sim *s, uint32_t t);
void check_applied(struct sim *s, uint32_t t, uint32_t p, enum rm_state before,
                   enum rm_state after);
/* A heuristic branch at p reconciled with outcome o: it must be the one chosen. */
void check_learned(struct sim *s, uint32_t t, uint32_t p, enum tpc_outcome o);
void check_told(struct sim *s, uint32_t t, enum tpc_outcome o, const char *who);
void check_step(struct sim *s);
bool check_settled(struct sim *s, char *why, size_t len);
/* Once settled: every driver has let go of every transaction (memory does not grow). */
bool check_drained(struct sim *s, char *why, size_t len);
/* Once drained: storage forgot every transaction once expired (DESIGN.md section 11). */
bool check_collected(struct sim *s, char *why, size_t len);
void check_free(struct sim *s);
void sim_violation(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_error(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* sim_main.c */
/* A durable write just happened at node: maybe crash right here, before it speaks. */
void sim_after_persist(struct sim *s, uint32_t node);
/* node is about to send: maybe crash right before it does. */
void sim_before_send(struct sim *s, uint32_t node);
/* A handler or tick of node returned: carry out a crash decided inside it. */
void sim_after_handler(struct sim *s, uint32_t node);
void sim_crash(struct sim *s, uint32_t node);

#endif
