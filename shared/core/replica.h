/*
 * replica.h - the driver of a coordinator replica: every transaction this
 * replica leads or recovers, from begin to forgetting it, as pure event-driven
 * code over struct node_io (node_io.h). The programs (coordinator/) and the
 * simulator (tests/sim/) run this same code.
 *
 * It drives the leader core (leader.h) for each transaction and adds what a
 * replica does around it: the client's calls, deadlines, recovery rounds, the
 * decision record, telling the participants, announcing outcomes to the other
 * replicas, told marks, the sweep of stale transactions, answering status
 * questions, resuming after a restart and forgetting finished transactions.
 * The acceptor role is not here: an acceptor's record and answer are one
 * durable step of the node's storage (acceptor.h rule 3), which calls the pure
 * acceptor functions.
 *
 * States of one transaction at this replica:
 *
 *    begin        commit (leader_start)        chosen: every vote prepared,
 *   -------> ACTIVE ---------------> PREPARING ----- or one aborted ------> DECIDED
 *              |                                                             ^
 *              | abort, deadline        +---- recovery rounds (phase 1) -----+
 *              +--------------------> IN_DOUBT  (also: a status question or the
 *                                               sweep about a transaction begun
 *                                               elsewhere, or learned from a peer)
 *
 *   A DECIDED transaction it leads then goes through:
 *     decision record written (NODE_WRITE_DECISION) -> participants told, until each
 *     acknowledges -> told mark written (NODE_WRITE_TOLD) -> forgotten from memory after
 *     cfg.keep; from then on storage answers for it (io->decision).
 *
 * Rules (DESIGN.md sections 2, 3 and 5; leader.h has the rules of the core):
 *   1. A client is answered an outcome only once it is chosen (leader.h rule 2).
 *   2. A leader tells participants an outcome, and announces it to the other
 *      replicas, only after its decision record is durable here, so that a
 *      restart resumes the telling (io->untold). A status question may be
 *      answered a chosen outcome earlier: it is chosen.
 *   3. A told mark is written only once every participant acknowledged.
 *   4. A recovery round is durable (NODE_WRITE_ROUND) before its phase 1a
 *      messages leave (leader.h rule 4): one round is reserved at a time.
 *   5. A transaction begun here and not committed by its deadline, and one
 *      the client aborts, are decided through Paxos (phase 1 finds no vote, so
 *      aborted is chosen), never by fiat; only a transaction with no
 *      participant at all is decided without Paxos (nothing to choose).
 *   6. A replica that did not send a transaction's prepares takes no votes for
 *      it (leader.h rule 5); it only recovers.
 *   7. Outcomes learned from other replicas are recorded (NODE_WRITE_LEARNED)
 *      and handed to a local leader of the same transaction, which tells.
 *   8. A transaction older than the horizon (io->horizon, msg_expired) is
 *      never recovered here, whoever asks: its records may be forgotten at
 *      the acceptors (acceptor.h rule 5), so no quorum would be sound. Its
 *      born travels with every message about it (msg.h), so every node judges
 *      its age the same way; DESIGN.md section 11 has the whole rule.
 *
 * Invariants (replica_check() asserts them in debug builds):
 *   I1. state DECIDED <=> outcome != NONE; a leading transaction's outcome
 *       equals its leader's decision.
 *   I2. record != NONE only for a leading, decided transaction; told only
 *       after the record is durable and the leader is done.
 *   I3. round_pending only while leading.
 *   I4. answer != NONE implies answer == outcome (rule 1).
 */
#ifndef TPC_REPLICA_H
#define TPC_REPLICA_H

#include <stdbool.h>
#include <stdint.h>

#include "leader.h"
#include "msg.h"
#include "node_io.h"
#include "tpc_err.h"
#include "txmap.h"

struct replica_config {
    uint32_t self, n_replicas;
    uint64_t prepare_timeout; /* votes not in by then: recover the missing instances */
    uint64_t retry_interval;  /* first resend interval; doubles per attempt */
    uint64_t retry_max;       /* cap of the resend interval */
    uint64_t stale_after;     /* the sweep recovers undecided transactions quiet this long */
    uint64_t keep;            /* a finished transaction stays in memory this long */
    uint64_t keep_unrecorded; /* ... one decided without a record (no participant) */
};

enum replica_state {
    REPLICA_ACTIVE = 0,
    REPLICA_PREPARING,
    REPLICA_IN_DOUBT,
    REPLICA_DECIDED,
};

enum replica_record {
    REPLICA_RECORD_NONE = 0,
    REPLICA_RECORD_WRITING,
    REPLICA_RECORD_DURABLE,
};

struct replica_txn {
    struct txmap_entry e; /* first; e.id is the txid */
    enum replica_state state;
    struct msg_parts parts; /* enlisted while ACTIVE; fixed once committing */
    uint64_t deadline, decided_at;
    bool begun_here;
    bool leading;
    struct leader_txn leader;
    enum tpc_outcome outcome; /* the chosen outcome, once known here */
    enum tpc_outcome answer;  /* what the client was told (NONE: nothing yet) */
    enum replica_record record;
    bool round_pending; /* a NODE_WRITE_ROUND is on its way (rule 4) */
    bool told_writing, told;
    bool client_waiting; /* a client waits for the outcome (answer it when chosen) */
    bool foreign;        /* recovered here, begun at another replica (counted once) */
    uint64_t born;       /* its begin (msg.h; 0: unknown) */
};

struct replica_stats {
    uint64_t committed, aborted; /* decided here, by outcome */
    uint64_t recoveries;         /* recovery rounds started */
    uint64_t recovered_foreign;  /* transactions begun elsewhere recovered here */
};

struct replica {
    struct replica_config cfg;
    struct node_io io;
    struct txmap txns;
    uint64_t expired_refused; /* recoveries not started, or let go of undecided: expired (rule 8) */
    uint64_t last_sweep;
    struct replica_stats stats;
};

/* What a client may see of a transaction in memory. */
struct replica_view {
    enum replica_state state;
    enum tpc_outcome outcome, answer;
    struct msg_parts parts;
    bool leading;
    bool applied; /* every participant acknowledged the outcome */
    uint64_t decided_at;
    uint64_t deadline; /* ACTIVE, begun here: when it aborts unless committed (0: none) */
    uint64_t born;     /* its begin (msg.h; 0: unknown) */
};

enum tpc_err replica_init(struct replica *r, const struct replica_config *cfg,
                          const struct node_io *io);
/* After a restart: resumes telling the outcomes it decided and still owes (io->untold). */
enum tpc_err replica_start(struct replica *r);
void replica_fini(struct replica *r);

/* ---- client calls ---- */

/* Begins txid here, to be committed within timeout; born: when it began (msg.h), 0 for now
 * (io->wall). TPC_ERR_STATE: txid is in memory. */
enum tpc_err replica_begin(struct replica *r, const char *txid, uint64_t timeout, uint64_t born);
/* Enlists participant name (TPC_ERR_STATE: not ACTIVE; TPC_ERR_RANGE: too many;
 * TPC_ERR_INVALID: not in memory). */
enum tpc_err replica_enlist(struct replica *r, const char *txid, const char *name);
/* Starts committing txid (relays go first to the acceptors in relay_first, leader.h) and
 * makes the client wait for its outcome. TPC_ERR_INVALID: not in memory. */
enum tpc_err replica_commit(struct replica *r, const char *txid, uint32_t relay_first);
/* Aborts txid through Paxos. TPC_ERR_STATE: a commit is under way (PREPARING). */
enum tpc_err replica_abort(struct replica *r, const char *txid);
/*
 * An operator ends txid now, at any replica (http-api.md, resolve): ACTIVE here, it is aborted
 * as replica_abort does; committing or recovering here, every vote not chosen yet is recovered
 * at once (leader_hurry); not in memory, it is recovered with the participant list this
 * replica's acceptor recorded. Always through Paxos (rule 5): aborted is chosen only where no
 * prepared vote can have been chosen, so the outcome may be committed. The client waits for
 * it. TPC_ERR_INVALID: this acceptor holds no list of it; TPC_ERR_EXPIRED: older than the
 * horizon (rule 8).
 */
enum tpc_err replica_resolve(struct replica *r, const char *txid);
/* The transaction txid in memory, or NULL: for reports (borrowed until the next event). */
const struct replica_txn *replica_find(const struct replica *r, const char *txid);
/* Fills *v for txid when it is in memory. */
bool replica_view(const struct replica *r, const char *txid, struct replica_view *v);
void replica_foreach(const struct replica *r,
                     void (*fn)(void *ctx, const char *txid, const struct replica_view *v),
                     void *ctx);
size_t replica_size(const struct replica *r);

/* ---- events ---- */

/*
 * A message from `from`: VOTE, PHASE1B, PHASE2B, REJECT, ACK (for a leader here), OUTCOME
 * (another replica's decision), STATUS (a participant or client waiting; answered to from).
 * Invalid input is an error and changes nothing.
 */
enum tpc_err replica_receive(struct replica *r, const struct node_addr *from, const struct msg *m,
                             char *err, size_t errlen);
/* A write started with io->persist is durable (rc TPC_OK) or failed. */
void replica_persisted(struct replica *r, const struct node_write *w, enum tpc_err rc);
/* Does what is due: deadlines, resends, recovery rounds, told marks, the sweep, forgetting. */
void replica_tick(struct replica *r);

/* Asserts the invariants above for every transaction (a no-op under NDEBUG). */
void replica_check(const struct replica *r);

#endif
