/*
 * acceptor.c - the acceptor's two actions (see acceptor.h for the rules and
 * invariants). Pure: the caller stores records and carries messages.
 */
#include "acceptor.h"

#include <assert.h>
#include <string.h>

#include "breakable.h"

bool acceptor_record_valid(const struct acceptor_record *r, uint32_t n_acceptors)
{
    if (!ballot_valid(r->mbal, n_acceptors) || !ballot_valid(r->bal, n_acceptors))
        return false;
    if (ballot_cmp(r->bal, r->mbal) > 0)
        return false;
    if (r->parts.n != 0 && !msg_parts_valid(&r->parts))
        return false;
    if (r->val == TPC_VALUE_NONE)
        return ballot_is_zero(r->bal);
    return r->val == TPC_VALUE_PREPARED || r->val == TPC_VALUE_ABORTED;
}

/*
 * Validation common to both phases, and learning the participant list: every
 * 1a and 2a carries it, and all of them must carry the same one.
 */
static enum tpc_err check_input(const struct acceptor_record *cur, const struct msg *in,
                                enum msg_type want, uint32_t self, uint32_t n_acceptors,
                                struct acceptor_record *next, char *err, size_t errlen)
{
    enum tpc_err rc;

    if (in->type != want)
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "acceptor: expected a %s message",
                              msg_type_name(want));
    if (self >= n_acceptors)
        return tpc_errbuf_set(err, errlen, TPC_ERR_RANGE, "acceptor: id %u of %u", self,
                              n_acceptors);
    rc = msg_validate(in, n_acceptors, err, errlen);
    if (rc)
        return rc;
    if (!acceptor_record_valid(cur, n_acceptors))
        return tpc_errbuf_set(err, errlen, TPC_ERR_STATE, "acceptor: stored record is corrupt");
    if (cur->parts.n && !msg_parts_equal(&cur->parts, &in->parts))
        return tpc_errbuf_set(err, errlen, TPC_ERR_PROTOCOL,
                              "acceptor: participant list differs from the one recorded for %s",
                              in->txid);
    *next = *cur;
    next->parts = in->parts;
    return TPC_OK;
}

static void reply_init(struct msg *reply, const struct msg *in, enum msg_type type, uint32_t self)
{
    memset(reply, 0, sizeof(*reply));
    reply->type = type;
    memcpy(reply->txid, in->txid, sizeof(reply->txid));
    memcpy(reply->instance, in->instance, sizeof(reply->instance));
    reply->acceptor = self;
    reply->ballot = in->ballot;
}

enum tpc_err acceptor_phase1b(const struct acceptor_record *cur, const struct msg *in,
                              uint32_t self, uint32_t n_acceptors, struct acceptor_record *next,
                              struct msg *reply, enum acceptor_action *action, char *err,
                              size_t errlen)
{
    enum tpc_err rc = check_input(cur, in, MSG_PHASE1A, self, n_acceptors, next, err, errlen);
    int cmp;

    if (rc)
        return rc;
    cmp = ballot_cmp(in->ballot, cur->mbal);
    if (cmp < 0) {
        /* A refusal names the promise, so the proposer can pick a higher ballot. */
        reply_init(reply, in, MSG_REJECT, self);
        reply->promised = cur->mbal;
        *next = *cur;
        *action = ACCEPTOR_REPLY;
        return TPC_OK;
    }
    next->mbal = in->ballot;
    reply_init(reply, in, MSG_PHASE1B, self);
    reply->accepted_ballot = next->bal;
    reply->value = next->val;
    reply->parts = next->parts;
    /* cmp == 0 with the list already known: a duplicate, nothing new to store. */
    *action = (cmp > 0 || cur->parts.n == 0) ? ACCEPTOR_PERSIST_THEN_REPLY : ACCEPTOR_REPLY;
    assert(acceptor_record_valid(next, n_acceptors));
    return TPC_OK;
}

enum tpc_err acceptor_phase2b(const struct acceptor_record *cur, const struct msg *in,
                              uint32_t self, uint32_t n_acceptors, struct acceptor_record *next,
                              struct msg *reply, enum acceptor_action *action, char *err,
                              size_t errlen)
{
    enum tpc_err rc = check_input(cur, in, MSG_PHASE2A, self, n_acceptors, next, err, errlen);
    bool same_ballot;

    if (rc)
        return rc;
    if (ballot_cmp(in->ballot, cur->mbal) < 0 && !TPC_BROKEN(TPC_BREAK_ACCEPT_LOWER_BALLOT)) {
        reply_init(reply, in, MSG_REJECT, self);
        reply->promised = cur->mbal;
        *next = *cur;
        *action = ACCEPTOR_REPLY;
        return TPC_OK;
    }
    same_ballot = cur->val != TPC_VALUE_NONE && ballot_cmp(in->ballot, cur->bal) == 0;
    if (same_ballot && cur->val != in->value)
        return tpc_errbuf_set(err, errlen, TPC_ERR_PROTOCOL,
                              "acceptor: %s/%s: two values proposed in one ballot", in->txid,
                              in->instance);
    if (ballot_cmp(in->ballot, next->mbal) > 0)
        next->mbal = in->ballot;
    next->bal = in->ballot;
    next->val = in->value;
    reply_init(reply, in, MSG_PHASE2B, self);
    reply->value = in->value;
    *action = (same_ballot && cur->parts.n) ? ACCEPTOR_REPLY : ACCEPTOR_PERSIST_THEN_REPLY;
    assert(acceptor_record_valid(next, n_acceptors));
    return TPC_OK;
}

bool acceptor_record_empty(const struct acceptor_record *r)
{
    return ballot_is_zero(r->mbal) && r->val == TPC_VALUE_NONE && r->parts.n == 0;
}

enum tpc_err acceptor_handle(const struct acceptor_record *cur, enum tpc_outcome decided,
                             uint64_t decided_born, uint64_t horizon, const struct msg *in,
                             uint32_t self, uint32_t n_acceptors, struct acceptor_record *next,
                             struct msg *reply, enum acceptor_action *action, char *err,
                             size_t errlen)
{
    static const struct acceptor_record fresh;
    const struct acceptor_record *rec = cur;
    bool held = decided == TPC_OUTCOME_COMMITTED || decided == TPC_OUTCOME_ABORTED;
    enum tpc_err rc;

    if (in->type != MSG_PHASE1A && in->type != MSG_PHASE2A)
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "acceptor: expected a 1a or 2a");
    rc = msg_validate(in, n_acceptors, err, errlen);
    if (rc)
        return rc;
    /* Rule 4: the decision of another born is another transaction's (a txid begun again). */
    if (held && decided_born && in->born && decided_born != in->born) {
        if (!msg_expired(decided_born, horizon))
            return tpc_errbuf_set(err, errlen, TPC_ERR_PROTOCOL,
                                  "acceptor: %s was decided as born at %llu, not %llu", in->txid,
                                  (unsigned long long)decided_born, (unsigned long long)in->born);
        held = false; /* dead: collected soon */
    }
    if (held) {
        /* Rule 4: the decision answers; no record is kept or made. */
        memset(reply, 0, sizeof(*reply));
        reply->type = MSG_OUTCOME;
        memcpy(reply->txid, in->txid, sizeof(reply->txid));
        reply->outcome = decided;
        reply->born = decided_born ? decided_born : in->born;
        *next = *cur;
        *action = ACCEPTOR_REPLY;
        return TPC_OK;
    }
    /* Rule 5: a record of an expired transaction is dead (collected soon); one of another
     * born (a txid used again) is refused while it lives; with no live record, nothing is
     * made for an expired transaction. */
    if (msg_expired(cur->born, horizon))
        rec = &fresh;
    else if (cur->born && in->born && cur->born != in->born)
        return tpc_errbuf_set(err, errlen, TPC_ERR_PROTOCOL,
                              "acceptor: %s was born at %llu, not %llu", in->txid,
                              (unsigned long long)cur->born, (unsigned long long)in->born);
    if (acceptor_record_empty(rec) && msg_expired(in->born, horizon))
        return tpc_errbuf_set(err, errlen, TPC_ERR_EXPIRED,
                              "acceptor: %s is older than the horizon: forgotten", in->txid);
    if (in->type == MSG_PHASE1A)
        rc = acceptor_phase1b(rec, in, self, n_acceptors, next, reply, action, err, errlen);
    else
        rc = acceptor_phase2b(rec, in, self, n_acceptors, next, reply, action, err, errlen);
    if (rc)
        return rc;
    if (!next->born && in->born) {
        next->born = in->born;
        *action = ACCEPTOR_PERSIST_THEN_REPLY;
    }
    if (rec != cur)
        *action = ACCEPTOR_PERSIST_THEN_REPLY; /* the dead record is replaced */
    return TPC_OK;
}
