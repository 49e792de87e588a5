/*
 * msg.h - the messages of Paxos Commit, as plain fixed-size structs.
 *
 * Every message is a struct msg: a flat record whose fields are used
 * according to its type, as the table says. Fixed-size arrays keep messages
 * free of ownership questions: copy them, compare them, drop them.
 *
 *   type          from -> to                  fields used (besides type, txid)
 *   ------------  --------------------------  -------------------------------------------
 *   PREPARE       leader -> participant        parts, born
 *   VOTE          participant -> leader        instance (the voter), value (its vote),
 *                                              acks (acceptors that answered phase 2b for the
 *                                              vote in ballot 0: 0 now that the leader
 *                                              relays every vote; kept in the format),
 *                                              read_only (a prepared vote
 *                                              of a branch that changed nothing: it needs no
 *                                              outcome)
 *   PHASE1A       replica -> acceptor          instance, ballot, parts, born
 *   PHASE1B       acceptor -> replica          instance, acceptor, ballot (now promised),
 *                                              accepted_ballot + value (TPC_VALUE_NONE when
 *                                              nothing accepted), parts (n 0 if not known)
 *   PHASE2A       replica -> acceptor (ballot  instance, ballot, value, parts, born
 *                 0: a participant's vote,
 *                 relayed by its leader)
 *   PHASE2B       acceptor -> sender of 2a     instance, acceptor, ballot, value
 *   REJECT        acceptor -> sender of a      instance, acceptor, ballot (the refused one),
 *                 refused 1a or 2a             promised (the acceptor's promise)
 *   OUTCOME       replica -> participant,      outcome, born
 *                 replica or client
 *   ACK           participant -> replica       instance (the participant), outcome (applied)
 *   STATUS        participant or client ->     instance (asking participant, "" for a client),
 *                 replica                      parts, born
 *
 * born: when the transaction began, in milliseconds since 1970 by its leader's
 * clock (0: not known, as in a message a person wrote). Every node forgets a
 * transaction older than its horizon and takes no message about one
 * (DESIGN.md section 11): born is how a message says how old its transaction is.
 * An "instance" is one Paxos instance of Paxos Commit: one per (transaction,
 * participant), named by the participant's name. Every PHASE1A and PHASE2A
 * carries the full participant list so that any replica that sees one
 * instance can find all the others (DESIGN.md section 3).
 */
#ifndef TPC_MSG_H
#define TPC_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ballot.h"
#include "tpc_err.h"

#define TPC_TXID_MAX         64 /* characters in a transaction id */
#define TPC_NAME_MAX         32 /* characters in a participant name */
#define TPC_MAX_PARTICIPANTS 32 /* participants (instances) in one transaction */
#define TPC_MAX_REPLICAS     9  /* coordinator replicas, 2F+1 with F <= 4 */

/* The value of one instance (TLA+ PaxosCommit: "prepared" / "aborted"). */
enum tpc_value {
    TPC_VALUE_NONE = 0,
    TPC_VALUE_PREPARED,
    TPC_VALUE_ABORTED,
};

/* The decision on a transaction. */
enum tpc_outcome {
    TPC_OUTCOME_NONE = 0,
    TPC_OUTCOME_COMMITTED,
    TPC_OUTCOME_ABORTED,
};

enum msg_type {
    MSG_PREPARE = 1,
    MSG_VOTE,
    MSG_PHASE1A,
    MSG_PHASE1B,
    MSG_PHASE2A,
    MSG_PHASE2B,
    MSG_REJECT,
    MSG_OUTCOME,
    MSG_ACK,
    MSG_STATUS,
};
#define MSG_TYPE_FIRST MSG_PREPARE
#define MSG_TYPE_LAST  MSG_STATUS

/* A transaction's participants, in the order its leader fixed. Names are unique. */
struct msg_parts {
    uint32_t n;
    char name[TPC_MAX_PARTICIPANTS][TPC_NAME_MAX + 1];
};

struct msg {
    enum msg_type type;
    char txid[TPC_TXID_MAX + 1];
    char instance[TPC_NAME_MAX + 1];
    uint32_t acceptor;
    struct ballot ballot;
    struct ballot accepted_ballot;
    struct ballot promised;
    enum tpc_value value;
    enum tpc_outcome outcome;
    uint32_t acks;  /* bit i set: acceptor i */
    bool read_only; /* VOTE only */
    uint64_t born;  /* PREPARE, PHASE1A, PHASE2A, STATUS, OUTCOME: the transaction's begin
                     * (0: unknown) */
    struct msg_parts parts;
};

/* Largest born: 2^53 - 1, so that it is exact in every JSON reader. */
#define MSG_BORN_MAX 9007199254740991ULL

/* Whether a transaction born at `born` is older than `horizon` (0 born: never). */
static inline bool msg_expired(uint64_t born, uint64_t horizon)
{
    return born != 0 && born < horizon;
}

/* Transaction ids and participant names: 1..max characters of [A-Za-z0-9_-],
 * so they are safe in URLs, file names and logs without escaping. */
bool msg_txid_valid(const char *s);
/* Copies the n bytes at s into out (TPC_TXID_MAX + 1 bytes) if they are a valid txid. */
bool msg_txid_from(const char *s, size_t n, char *out);
bool msg_name_valid(const char *s);

/* Index of name in parts, or -1. */
int msg_parts_find(const struct msg_parts *parts, const char *name);
bool msg_parts_equal(const struct msg_parts *a, const struct msg_parts *b);
/* 1..TPC_MAX_PARTICIPANTS valid, unique names. */
bool msg_parts_valid(const struct msg_parts *parts);

/*
 * Checks that m is a well-formed message of its type: ids and names valid,
 * ballots valid for n_replicas replicas (acceptor ids < n_replicas), values in
 * range, the instance one of the participants where the list is present,
 * fields that the type does not use left zero. Writes why not into err.
 */
enum tpc_err msg_validate(const struct msg *m, uint32_t n_replicas, char *err, size_t errlen);

/* Fixed names used on the wire and in logs; NULL for values out of range. */
const char *msg_type_name(enum msg_type t);
const char *msg_value_name(enum tpc_value v);
const char *msg_outcome_name(enum tpc_outcome o);

/* Copies a NUL-terminated string of at most max characters into dst (max + 1 bytes). */
enum tpc_err msg_copy_str(char *dst, size_t max, const char *src);

#endif
