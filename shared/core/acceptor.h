/*
 * acceptor.h - the Paxos acceptor of Paxos Commit, as a pure function.
 *
 * One record per instance (transaction, participant), named after TLA+
 * PaxosCommit's aState[ins][acc]:
 *
 *     mbal   the highest ballot this acceptor promised (or accepted in)
 *     bal    the ballot of the accepted value, meaningful when val != NONE
 *     val    the accepted value, TPC_VALUE_NONE until one is accepted
 *     parts  the transaction's participant list (n 0 until learned)
 *
 * Rules (DESIGN.md section 3; TLA+ actions Phase1b and Phase2b):
 *   1. Phase 1a(b): promise (mbal := b) only if b > mbal, answering phase 1b
 *      with (bal, val). b == mbal is a duplicate of the 1a already promised:
 *      the same promise is repeated and nothing changes. b < mbal: REJECT.
 *   2. Phase 2a(b, v): accept (mbal := b, bal := b, val := v) only if
 *      b >= mbal, answering phase 2b. b < mbal: REJECT. Accepting (b, v) again
 *      repeats the 2b without a change; (b, v') with v' != v after (b, v) is a
 *      protocol error (one ballot, one value).
 *   3. The caller persists *next durably BEFORE it sends *reply whenever the
 *      action is ACCEPTOR_PERSIST_THEN_REPLY. That is what makes an acceptor's
 *      promise and vote survive its crash; nothing here can enforce it.
 *   4. (acceptor_handle) An acceptor that holds the transaction's decision
 *      answers every 1a and 2a with it (an OUTCOME, with the decision's born)
 *      and keeps no record: the decision stands for the records it replaced
 *      (DESIGN.md section 11), and a proposer that hears it learns the outcome
 *      instead of choosing again. A decision of another born (a txid begun
 *      again) is not this transaction's: an expired one is dead (as if absent),
 *      a live one makes the input refused.
 *   5. (acceptor_handle) It never makes a record for a transaction older than
 *      its horizon (msg_expired): it may have held one and forgotten it, and a
 *      fresh promise from it could let a second value be chosen. Such input is
 *      refused (TPC_ERR_EXPIRED): nothing is stored, nothing is answered. A
 *      stored record of an expired transaction is dead: a message that names
 *      another born for the same txid (a txid used again) starts afresh.
 *
 * Invariants of a record: bal <= mbal; val == NONE implies bal == 0; mbal
 * never decreases; once val is set, it changes only with a higher ballot.
 */
#ifndef TPC_ACCEPTOR_H
#define TPC_ACCEPTOR_H

#include <stdint.h>

#include "ballot.h"
#include "msg.h"
#include "tpc_err.h"

struct acceptor_record {
    struct ballot mbal;
    struct ballot bal;
    enum tpc_value val;
    uint64_t born; /* the transaction's begin, from the first message with one (0: unknown) */
    struct msg_parts parts;
};

enum acceptor_action {
    ACCEPTOR_REPLY = 0,          /* nothing changed: send *reply */
    ACCEPTOR_PERSIST_THEN_REPLY, /* make *next durable, and only then send *reply */
};

/*
 * Handles a PHASE1A (TLA+ Phase1b). cur is the stored record (all zero for a
 * new instance); self is this acceptor's id among n_acceptors. On TPC_OK,
 * *next is the record to keep (a copy of cur when nothing changed), *reply is
 * a PHASE1B or REJECT and *action says whether to persist first. Input that is
 * not a valid PHASE1A, or whose participant list conflicts with the stored
 * one, is an error with *next and *reply unspecified: answer nothing, change
 * nothing.
 */
enum tpc_err acceptor_phase1b(const struct acceptor_record *cur, const struct msg *in,
                              uint32_t self, uint32_t n_acceptors, struct acceptor_record *next,
                              struct msg *reply, enum acceptor_action *action, char *err,
                              size_t errlen);

/* Handles a PHASE2A (TLA+ Phase2b); the reply is a PHASE2B or REJECT. As above. */
enum tpc_err acceptor_phase2b(const struct acceptor_record *cur, const struct msg *in,
                              uint32_t self, uint32_t n_acceptors, struct acceptor_record *next,
                              struct msg *reply, enum acceptor_action *action, char *err,
                              size_t errlen);

/*
 * Handles a PHASE1A or PHASE2A as a whole acceptor: rules 4 and 5 around the
 * two actions above. decided is the decision this node holds for the
 * transaction (TPC_OUTCOME_NONE: none) and decided_born that decision's born
 * (0: unknown), horizon its horizon (0: none). The
 * reply may then also be an OUTCOME (rule 4); TPC_ERR_EXPIRED (rule 5) is a
 * refusal like any error: answer nothing, change nothing.
 */
enum tpc_err acceptor_handle(const struct acceptor_record *cur, enum tpc_outcome decided,
                             uint64_t decided_born, uint64_t horizon, const struct msg *in,
                             uint32_t self, uint32_t n_acceptors, struct acceptor_record *next,
                             struct msg *reply, enum acceptor_action *action, char *err,
                             size_t errlen);

/* Whether r is the record of an instance never heard of (all zero but maybe born). */
bool acceptor_record_empty(const struct acceptor_record *r);

/* Checks the record invariants listed above (for asserts and storage loads). */
bool acceptor_record_valid(const struct acceptor_record *r, uint32_t n_acceptors);

#endif
