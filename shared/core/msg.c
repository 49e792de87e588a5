/* msg.c - validation and names for protocol messages (see msg.h). */
#include "msg.h"

#include <string.h>

static bool id_valid(const char *s, size_t max)
{
    size_t i;

    for (i = 0; s[i]; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok || i >= max)
            return false;
    }
    return i > 0;
}

bool msg_txid_valid(const char *s)
{
    return id_valid(s, TPC_TXID_MAX);
}

bool msg_txid_from(const char *s, size_t n, char *out)
{
    if (n == 0 || n > TPC_TXID_MAX)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return msg_txid_valid(out);
}

bool msg_name_valid(const char *s)
{
    return id_valid(s, TPC_NAME_MAX);
}

int msg_parts_find(const struct msg_parts *parts, const char *name)
{
    uint32_t i;

    for (i = 0; i < parts->n && i < TPC_MAX_PARTICIPANTS; i++)
        if (strcmp(parts->name[i], name) == 0)
            return (int)i;
    return -1;
}

bool msg_parts_equal(const struct msg_parts *a, const struct msg_parts *b)
{
    uint32_t i;

    if (a->n != b->n)
        return false;
    for (i = 0; i < a->n && i < TPC_MAX_PARTICIPANTS; i++)
        if (strcmp(a->name[i], b->name[i]) != 0)
            return false;
    return true;
}

bool msg_parts_valid(const struct msg_parts *parts)
{
    uint32_t i, j;

    if (parts->n < 1 || parts->n > TPC_MAX_PARTICIPANTS)
        return false;
    for (i = 0; i < parts->n; i++) {
        if (!msg_name_valid(parts->name[i]))
            return false;
        for (j = 0; j < i; j++)
            if (strcmp(parts->name[i], parts->name[j]) == 0)
                return false;
    }
    return true;
}

const char *msg_type_name(enum msg_type t)
{
    switch (t) {
    case MSG_PREPARE:
        return "prepare";
    case MSG_VOTE:
        return "vote";
    case MSG_PHASE1A:
        return "phase1a";
    case MSG_PHASE1B:
        return "phase1b";
    case MSG_PHASE2A:
        return "phase2a";
    case MSG_PHASE2B:
        return "phase2b";
    case MSG_REJECT:
        return "reject";
    case MSG_OUTCOME:
        return "outcome";
    case MSG_ACK:
        return "ack";
    case MSG_STATUS:
        return "status";
    }
    return NULL;
}

const char *msg_value_name(enum tpc_value v)
{
    switch (v) {
    case TPC_VALUE_NONE:
        return "none";
    case TPC_VALUE_PREPARED:
        return "prepared";
    case TPC_VALUE_ABORTED:
        return "aborted";
    }
    return NULL;
}

const char *msg_outcome_name(enum tpc_outcome o)
{
    switch (o) {
    case TPC_OUTCOME_NONE:
        return "none";
    case TPC_OUTCOME_COMMITTED:
        return "committed";
    case TPC_OUTCOME_ABORTED:
        return "aborted";
    }
    return NULL;
}

enum tpc_err msg_copy_str(char *dst, size_t max, const char *src)
{
    size_t n = strlen(src);

    if (n > max)
        return TPC_ERR_TOO_BIG;
    memcpy(dst, src, n + 1);
    return TPC_OK;
}

/* Which optional fields a message type carries (see the table in msg.h). */
enum {
    F_INSTANCE = 1 << 0,
    F_ACCEPTOR = 1 << 1,
    F_BALLOT = 1 << 2,
    F_ACCEPTED = 1 << 3, /* accepted_ballot */
    F_PROMISED = 1 << 4,
    F_VALUE = 1 << 5,
    F_OUTCOME = 1 << 6,
    F_ACKS = 1 << 7,
    F_PARTS = 1 << 8,
    F_READ_ONLY = 1 << 9,
    F_BORN = 1 << 10,
};

static unsigned fields_of(enum msg_type t)
{
    switch (t) {
    case MSG_PREPARE:
        return F_PARTS | F_BORN;
    case MSG_VOTE:
        return F_INSTANCE | F_VALUE | F_ACKS | F_READ_ONLY;
    case MSG_PHASE1A:
        return F_INSTANCE | F_BALLOT | F_PARTS | F_BORN;
    case MSG_PHASE1B:
        return F_INSTANCE | F_ACCEPTOR | F_BALLOT | F_ACCEPTED | F_VALUE | F_PARTS;
    case MSG_PHASE2A:
        return F_INSTANCE | F_BALLOT | F_VALUE | F_PARTS | F_BORN;
    case MSG_PHASE2B:
        return F_INSTANCE | F_ACCEPTOR | F_BALLOT | F_VALUE;
    case MSG_REJECT:
        return F_INSTANCE | F_ACCEPTOR | F_BALLOT | F_PROMISED;
    case MSG_OUTCOME:
        return F_OUTCOME | F_BORN;
    case MSG_ACK:
        return F_INSTANCE | F_OUTCOME;
    case MSG_STATUS:
        return F_INSTANCE | F_PARTS | F_BORN;
    }
    return 0;
}

#define FAIL(...) return tpc_errbuf_set(err, errlen, __VA_ARGS__)

enum tpc_err msg_validate(const struct msg *m, uint32_t n_replicas, char *err, size_t errlen)
{
    static const struct ballot zero;
    unsigned f = fields_of(m->type);
    const char *tn = msg_type_name(m->type);
    bool decided_value = m->value == TPC_VALUE_PREPARED || m->value == TPC_VALUE_ABORTED;
    bool has_parts = m->parts.n > 0;

    if (!tn)
        FAIL(TPC_ERR_INVALID, "unknown message type %d", (int)m->type);
    if (n_replicas < 1 || n_replicas > TPC_MAX_REPLICAS)
        FAIL(TPC_ERR_RANGE, "replica count %u out of range", n_replicas);
    if (!msg_txid_valid(m->txid))
        FAIL(TPC_ERR_INVALID, "%s: txid must be 1..%d characters of [A-Za-z0-9_-]", tn,
             TPC_TXID_MAX);

    /* Fields the type does not use must be empty, so that a message has one meaning. */
    if (!(f & F_INSTANCE) && m->instance[0])
        FAIL(TPC_ERR_INVALID, "%s: unexpected instance", tn);
    if (!(f & F_ACCEPTOR) && m->acceptor)
        FAIL(TPC_ERR_INVALID, "%s: unexpected acceptor", tn);
    if (!(f & F_BALLOT) && ballot_cmp(m->ballot, zero))
        FAIL(TPC_ERR_INVALID, "%s: unexpected ballot", tn);
    if (!(f & F_ACCEPTED) && ballot_cmp(m->accepted_ballot, zero))
        FAIL(TPC_ERR_INVALID, "%s: unexpected accepted ballot", tn);
    if (!(f & F_PROMISED) && ballot_cmp(m->promised, zero))
        FAIL(TPC_ERR_INVALID, "%s: unexpected promised ballot", tn);
    if (!(f & F_VALUE) && m->value != TPC_VALUE_NONE)
        FAIL(TPC_ERR_INVALID, "%s: unexpected value", tn);
    if (!(f & F_OUTCOME) && m->outcome != TPC_OUTCOME_NONE)
        FAIL(TPC_ERR_INVALID, "%s: unexpected outcome", tn);
    if (!(f & F_ACKS) && m->acks)
        FAIL(TPC_ERR_INVALID, "%s: unexpected acks", tn);
    if (!(f & F_PARTS) && has_parts)
        FAIL(TPC_ERR_INVALID, "%s: unexpected participant list", tn);
    if (!(f & F_READ_ONLY) && m->read_only)
        FAIL(TPC_ERR_INVALID, "%s: unexpected read_only", tn);
    if (!(f & F_BORN) && m->born)
        FAIL(TPC_ERR_INVALID, "%s: unexpected born", tn);
    if (m->born > MSG_BORN_MAX)
        FAIL(TPC_ERR_RANGE, "%s: born out of range", tn);
    if (m->read_only && m->value != TPC_VALUE_PREPARED)
        FAIL(TPC_ERR_INVALID, "%s: only a prepared vote is read-only", tn);

    /* Ranges of the fields it does use. */
    if ((f & F_INSTANCE) && m->type != MSG_STATUS && !msg_name_valid(m->instance))
        FAIL(TPC_ERR_INVALID,
             "%s: instance must be a participant name of 1..%d characters "
             "of [A-Za-z0-9_-]",
             tn, TPC_NAME_MAX);
    if (m->type == MSG_STATUS && m->instance[0] && !msg_name_valid(m->instance))
        FAIL(TPC_ERR_INVALID, "%s: bad participant name", tn);
    if ((f & F_ACCEPTOR) && m->acceptor >= n_replicas)
        FAIL(TPC_ERR_RANGE, "%s: acceptor %u out of range (%u replicas)", tn, m->acceptor,
             n_replicas);
    if ((f & F_BALLOT) && !ballot_valid(m->ballot, n_replicas))
        FAIL(TPC_ERR_RANGE, "%s: invalid ballot", tn);
    if ((f & F_ACCEPTED) && !ballot_valid(m->accepted_ballot, n_replicas))
        FAIL(TPC_ERR_RANGE, "%s: invalid accepted ballot", tn);
    if ((f & F_PROMISED) && !ballot_valid(m->promised, n_replicas))
        FAIL(TPC_ERR_RANGE, "%s: invalid promised ballot", tn);
    if ((f & F_VALUE) && m->type != MSG_PHASE1B && !decided_value)
        FAIL(TPC_ERR_RANGE, "%s: value must be prepared or aborted", tn);
    if ((f & F_OUTCOME) && m->outcome != TPC_OUTCOME_COMMITTED && m->outcome != TPC_OUTCOME_ABORTED)
        FAIL(TPC_ERR_RANGE, "%s: outcome must be committed or aborted", tn);
    if ((f & F_ACKS) && n_replicas < 32 && (m->acks >> n_replicas))
        FAIL(TPC_ERR_RANGE, "%s: acks name an acceptor out of range", tn);
    if (has_parts && !msg_parts_valid(&m->parts))
        FAIL(TPC_ERR_INVALID, "%s: participant list must hold 1..%d distinct valid names", tn,
             TPC_MAX_PARTICIPANTS);

    /* Rules that tie fields together. */
    switch (m->type) {
    case MSG_PREPARE:
    case MSG_PHASE1A:
    case MSG_PHASE2A:
        if (!has_parts)
            FAIL(TPC_ERR_INVALID, "%s: participant list required", tn);
        break;
    case MSG_PHASE1B:
        if (ballot_is_zero(m->ballot))
            FAIL(TPC_ERR_RANGE, "%s: ballot 0 has no phase 1", tn);
        if (m->value == TPC_VALUE_NONE && !ballot_is_zero(m->accepted_ballot))
            FAIL(TPC_ERR_INVALID, "%s: accepted ballot without a value", tn);
        if (m->value != TPC_VALUE_NONE && !decided_value)
            FAIL(TPC_ERR_RANGE, "%s: bad accepted value", tn);
        if (ballot_cmp(m->accepted_ballot, m->ballot) > 0)
            FAIL(TPC_ERR_RANGE, "%s: accepted ballot above the promise", tn);
        break;
    case MSG_REJECT:
        if (ballot_cmp(m->promised, m->ballot) <= 0)
            FAIL(TPC_ERR_RANGE, "%s: a refusal must name a higher promise", tn);
        break;
    default:
        break;
    }
    if (m->type == MSG_PHASE1A && ballot_is_zero(m->ballot))
        FAIL(TPC_ERR_RANGE, "%s: ballot 0 has no phase 1", tn);
    if (has_parts && m->instance[0] && msg_parts_find(&m->parts, m->instance) < 0)
        FAIL(TPC_ERR_INVALID, "%s: instance '%s' is not in the participant list", tn, m->instance);
    return TPC_OK;
}
