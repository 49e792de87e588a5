/*
 * leader.h - one transaction at a coordinator replica: leading its commit, or
 * recovering it. Pure: time and random numbers come in as arguments, messages
 * go out through a caller-supplied sink, nothing is stored here.
 *
 * Per instance (one per participant) the leader tracks:
 *
 *   WAIT --vote + F+1 2b in ballot 0--------------------------> CHOSEN
 *     |                                                            ^
 *     | prepare timeout, or told to recover                        | F+1 2b in one ballot
 *     v                                                            |
 *   PHASE1 (ballot b) --F+1 1b--> PHASE2 (2a(b, v) sent) ----------+
 *     ^   | REJECT (a higher promise)        | REJECT
 *     |   v                                  v
 *     +-- IDLE <-----------------------------+   (new round after a randomized backoff)
 *
 * Rules (DESIGN.md section 3; TLA+ PaxosCommit Phase1a, Phase2a, Decide):
 *   1. A value is chosen when F+1 acceptors accepted it in one ballot
 *      (quorum.h). Acceptances are learned from 2b answers (directly, or
 *      relayed in a participant's VOTE) and from the accepted value a 1b
 *      reports: both say "acceptor a accepted (b, v)". Two different values
 *      reported for one ballot are a protocol error, never a guess.
 *   2. Decide: COMMITTED iff every instance is chosen prepared; ABORTED iff
 *      some instance is chosen aborted. Nothing else decides.
 *   3. Recovery runs phase 1 with ballot (round, self) on every instance not
 *      known chosen, round above any seen; with F+1 promises it proposes the
 *      value accepted in the highest ballot among them, or aborted if none was
 *      accepted. A replica never aborts on its own authority.
 *   4. The caller supplies recovery rounds and makes each one durable before
 *      sending the PHASE1A messages of leader_recover(): a replica must never
 *      use one ballot twice, even across its own crash, or it could propose
 *      two values in it.
 *   5. A participant's VOTE means it sent the ballot-0 phase 2a with that
 *      value and will never send another; the leader may therefore re-send
 *      that same 2a to acceptors that did not answer it. Votes are taken
 *      only by the leader that sent the prepares (leader_start): a vote
 *      carries no participant list, so only that leader knows which list it
 *      was cast under. The leader relays a vote first to the acceptors set
 *      by leader_relay_first (F+1 of them suffice to choose it; fewer acceptors
 *      writing means less disk and network work), and to every acceptor that
 *      has not answered when its timer comes (leader_tick).
 *   6. Once decided, the outcome goes to every participant until each
 *      acknowledges, with backoff. (Announcing it to the other replicas is the
 *      replica driver's, once its decision record is durable: replica.h rule 2.)
 */
#ifndef TPC_LEADER_H
#define TPC_LEADER_H

#include <stdbool.h>
#include <stdint.h>

#include "ballot.h"
#include "msg.h"
#include "quorum.h"
#include "tpc_err.h"

struct leader_config {
    uint32_t self;            /* this replica's id, < n_acceptors */
    uint32_t n_acceptors;     /* 2F+1: every replica is an acceptor */
    uint64_t prepare_timeout; /* votes not in by then: recover the missing instances */
    uint64_t retry_interval;  /* first resend interval; doubles per attempt */
    uint64_t retry_max;       /* cap of the resend interval */
};

enum leader_phase {
    LEADER_WAIT = 0, /* waiting for the participant's vote (ballot 0) */
    LEADER_PHASE1,   /* phase 1a sent with bal; collecting promises */
    LEADER_PHASE2,   /* phase 2a(bal, proposed) sent */
    LEADER_IDLE,     /* our ballot was refused; a new round is due */
    LEADER_CHOSEN,   /* a value is chosen */
};

struct leader_inst {
    enum leader_phase phase;
    enum tpc_value vote;   /* the participant's vote as reported; NONE until then */
    enum tpc_value chosen; /* NONE until chosen */
    struct quorum q;       /* 2b answers heard */
    struct ballot bal;     /* our ballot in PHASE1/PHASE2 */
    uint32_t promised;     /* acceptors that promised bal */
    struct ballot best_bal;
    enum tpc_value best_val; /* highest accepted value reported by those promises */
    enum tpc_value proposed; /* the value of our phase 2a at bal */
};

struct leader_txn {
    struct leader_config cfg;
    char txid[TPC_TXID_MAX + 1];
    struct msg_parts parts;
    struct leader_inst inst[TPC_MAX_PARTICIPANTS];
    enum tpc_outcome decision;
    uint32_t acked;       /* bit i: participant i acknowledged the outcome */
    uint64_t max_round;   /* highest round seen in this transaction */
    uint64_t deadline;    /* prepare deadline while waiting for votes */
    uint64_t timer;       /* leader_tick has work at or after this time */
    uint32_t attempts;    /* resends so far, for the backoff */
    bool started;         /* leader_start was called: this replica sent the prepares */
    uint32_t relay_first; /* bit a: relay votes to acceptor a first; 0: to all (rule 5) */
    uint64_t born;        /* the transaction's begin (msg.h), carried by its 1a, 2a, prepare */
};

/* Where an outgoing message goes. */
enum leader_dest {
    LEADER_TO_ACCEPTOR,    /* id: one acceptor (replica) */
    LEADER_TO_PARTICIPANT, /* id: index into the transaction's participant list */
};

/* The caller's outbox: send() must copy *m if it keeps it. */
struct leader_out {
    void (*send)(void *ctx, enum leader_dest dest, uint32_t id, const struct msg *m);
    void *ctx;
};

/* Starts tracking txid with its (valid) participant list. No message is sent. */
enum tpc_err leader_init(struct leader_txn *t, const struct leader_config *cfg, const char *txid,
                         const struct msg_parts *parts, uint64_t now);

/*
 * Rule 5's relays of votes go at first only to these acceptors (bit a: acceptor a), when they
 * are at least F+1; otherwise, and for any acceptor still silent at the next tick, to all.
 */
void leader_relay_first(struct leader_txn *t, uint32_t acceptors);

/* Begins the commit this replica leads: PREPARE to every participant. */
void leader_start(struct leader_txn *t, uint64_t now, const struct leader_out *out);

/*
 * Takes a VOTE, PHASE1B, PHASE2B, REJECT or ACK for this transaction. rnd is a
 * random number (for backoff). Invalid or foreign input is an error and
 * changes nothing.
 */
enum tpc_err leader_receive(struct leader_txn *t, const struct msg *m, uint64_t now, uint64_t rnd,
                            const struct leader_out *out, char *err, size_t errlen);

/*
 * Does what is due at time now: resends, and reports with a true result that
 * a recovery round is due (call leader_recover() with a fresh durable round).
 */
bool leader_tick(struct leader_txn *t, uint64_t now, uint64_t rnd, const struct leader_out *out);

/*
 * An operator wants the transaction ended now (replica_resolve): every instance whose vote
 * is not chosen yet is recovered at the next leader_tick instead of after the prepare
 * timeout or the backoff. Recovery is still Paxos (rule 3): it can only choose aborted where
 * no prepared vote may have been chosen.
 */
void leader_hurry(struct leader_txn *t, uint64_t now);

/* The lowest round that leader_recover() may be given. */
uint64_t leader_min_round(const struct leader_txn *t);

/*
 * Starts phase 1 with ballot (round, self) on every instance not known chosen
 * (rule 3). round >= leader_min_round() and durable (rule 4).
 */
void leader_recover(struct leader_txn *t, uint64_t round, uint64_t now, uint64_t rnd,
                    const struct leader_out *out);

/* Adopts an outcome learned from another replica; it is then told to the participants. */
void leader_learn(struct leader_txn *t, enum tpc_outcome outcome, uint64_t now,
                  const struct leader_out *out);

/*
 * Sends the decided outcome now to every participant that has not acknowledged it (the
 * caller held back the first telling until it could tell: see replica.h rule 2).
 */
void leader_tell(struct leader_txn *t, uint64_t now, const struct leader_out *out);

/* The decision rule (rule 2) over the values known chosen. */
enum tpc_outcome leader_decide(const struct leader_txn *t);

/* True once decided and every participant acknowledged: nothing left to do. */
bool leader_done(const struct leader_txn *t);

#endif
