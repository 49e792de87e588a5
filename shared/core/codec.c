/*
 * codec.c - JSON wire form of protocol messages (see codec.h).
 *
 * The encoder refuses a struct msg that fails msg_validate(), so nothing
 * invalid reaches the wire. The decoder works in two steps: first the shape of
 * the JSON (which keys, which JSON types, integer ranges, string lengths) is
 * checked while a zeroed struct msg is filled, then msg_validate() judges the
 * rules that tie fields together. Both directions thus share one definition of
 * a valid message, and the decoder never guesses: anything it does not fully
 * understand is an error with a one-line reason.
 *
 * Error texts quote untrusted input only through codec_quote(), which keeps
 * them to one line of printable ASCII, safe for logs.
 */
#include "codec.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

/* Every key that may appear in a message, a ballot or a batch. */
enum codec_key {
    K_TYPE,
    K_TXID,
    K_INSTANCE,
    K_ACCEPTOR,
    K_BALLOT,
    K_ACCEPTED,
    K_PROMISED,
    K_VALUE,
    K_OUTCOME,
    K_ACKS,
    K_PARTS,
    K_ROUND,
    K_REPLICA,
    K_MESSAGES,
    K_READ_ONLY,
    K_BORN,
    K_COUNT
};

/* One key a line reads better than the packed columns clang-format would make. */
/* clang-format off */
static const char *const codec_key_names[K_COUNT] = {
    [K_TYPE] = "type",
    [K_TXID] = "txid",
    [K_INSTANCE] = "instance",
    [K_ACCEPTOR] = "acceptor",
    [K_BALLOT] = "ballot",
    [K_ACCEPTED] = "accepted_ballot",
    [K_PROMISED] = "promised",
    [K_VALUE] = "value",
    [K_OUTCOME] = "outcome",
    [K_ACKS] = "accepted_by",
    [K_PARTS] = "participants",
    [K_ROUND] = "round",
    [K_REPLICA] = "replica",
    [K_MESSAGES] = "messages",
    [K_READ_ONLY] = "read_only",
    [K_BORN] = "born",
};
/* clang-format on */

#define KB(k) (1u << (k))

/* Keys of a message type: those it may carry, and of these the ones it may leave out. */
struct codec_shape {
    unsigned uses;
    unsigned optional;
};

/* The table of msg.h, in wire keys. */
static struct codec_shape codec_shape_of(enum msg_type t)
{
    struct codec_shape s = {0, 0};

    switch (t) {
    case MSG_PREPARE:
        s.uses = KB(K_PARTS) | KB(K_BORN);
        s.optional = KB(K_BORN); /* absent: not known (0) */
        break;
    case MSG_VOTE:
        s.uses = KB(K_INSTANCE) | KB(K_VALUE) | KB(K_ACKS) | KB(K_READ_ONLY);
        s.optional = KB(K_READ_ONLY); /* present, as true, only for a read-only branch */
        break;
    case MSG_PHASE1A:
        s.uses = KB(K_INSTANCE) | KB(K_BALLOT) | KB(K_PARTS) | KB(K_BORN);
        s.optional = KB(K_BORN);
        break;
    case MSG_PHASE1B:
        s.uses = KB(K_INSTANCE) | KB(K_ACCEPTOR) | KB(K_BALLOT) | KB(K_ACCEPTED) | KB(K_VALUE) |
                 KB(K_PARTS);
        /* An acceptor that has accepted nothing has no accepted ballot or value, and it
         * may not know the participant list (msg.h). */
        s.optional = KB(K_ACCEPTED) | KB(K_VALUE) | KB(K_PARTS);
        break;
    case MSG_PHASE2A:
        s.uses = KB(K_INSTANCE) | KB(K_BALLOT) | KB(K_VALUE) | KB(K_PARTS) | KB(K_BORN);
        s.optional = KB(K_BORN);
        break;
    case MSG_PHASE2B:
        s.uses = KB(K_INSTANCE) | KB(K_ACCEPTOR) | KB(K_BALLOT) | KB(K_VALUE);
        break;
    case MSG_REJECT:
        s.uses = KB(K_INSTANCE) | KB(K_ACCEPTOR) | KB(K_BALLOT) | KB(K_PROMISED);
        break;
    case MSG_OUTCOME:
        s.uses = KB(K_OUTCOME) | KB(K_BORN);
        s.optional = KB(K_BORN);
        break;
    case MSG_ACK:
        s.uses = KB(K_INSTANCE) | KB(K_OUTCOME);
        break;
    case MSG_STATUS:
        /* A client asks without an instance; a participant may not know the list. */
        s.uses = KB(K_INSTANCE) | KB(K_PARTS) | KB(K_BORN);
        s.optional = KB(K_INSTANCE) | KB(K_PARTS) | KB(K_BORN);
        break;
    }
    if (s.uses)
        s.uses |= KB(K_TYPE) | KB(K_TXID);
    return s;
}

/*
 * Copies untrusted text (len bytes, NULs allowed) into dst for an error message:
 * as much as fits, with anything but printable ASCII and the quote replaced by
 * '?' and "..." when cut, so that an error stays one printable line. Returns dst.
 */
static const char *codec_quote(char *dst, size_t size, const char *src, size_t len)
{
    size_t i, n;

    assert(size > 4);
    n = len > size - 4 ? size - 4 : len;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c >= 0x20 && c < 0x7f && c != '\'') ? (char)c : '?';
    }
    if (n < len) {
        memcpy(dst + i, "...", 3);
        i += 3;
    }
    dst[i] = '\0';
    return dst;
}

/* Index of the key of len bytes in codec_key_names, or -1. */
static int codec_key_find(const char *key, size_t len)
{
    int k;

    for (k = 0; k < K_COUNT; k++)
        if (strlen(codec_key_names[k]) == len && memcmp(codec_key_names[k], key, len) == 0)
            return k;
    return -1;
}

/* Fails on the first key of object o outside the set allowed (a mask of KB() bits). */
static enum tpc_err codec_check_keys(const json_t *o, unsigned allowed, const char *where,
                                     char *err, size_t errlen)
{
    /* jansson's iterators take a non-const object, though they only read it. */
    json_t *obj = (json_t *)o;
    void *it;
    char q[40];

    for (it = json_object_iter(obj); it; it = json_object_iter_next(obj, it)) {
        const char *key = json_object_iter_key(it);
        size_t len = json_object_iter_key_len(it);
        int k = codec_key_find(key, len);

        if (k < 0)
            return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "%s: unknown field '%s'", where,
                                  codec_quote(q, sizeof q, key, len));
        if (!(allowed & KB(k)))
            return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "%s: unexpected field '%s'", where,
                                  codec_key_names[k]);
    }
    return TPC_OK;
}

/* Fails on the first key of the set required that object o lacks. */
static enum tpc_err codec_check_required(const json_t *o, unsigned required, const char *where,
                                         char *err, size_t errlen)
{
    int k;

    for (k = 0; k < K_COUNT; k++)
        if ((required & KB(k)) && !json_object_get(o, codec_key_names[k]))
            return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "%s: missing field '%s'", where,
                                  codec_key_names[k]);
    return TPC_OK;
}

/* A JSON string without embedded NUL (which C strings could not represent faithfully). */
static enum tpc_err codec_get_cstr(const json_t *v, const char *where, const char *what,
                                   const char **s, char *err, size_t errlen)
{
    if (!json_is_string(v))
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "%s: '%s' must be a string", where,
                              what);
    *s = json_string_value(v);
    if (strlen(*s) != json_string_length(v))
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "%s: '%s' holds a NUL character", where,
                              what);
    return TPC_OK;
}

/* A string of 1..max bytes into dst (max + 1 bytes); the character set is msg_validate()'s. */
static enum tpc_err codec_get_str(const json_t *v, const char *where, const char *what, size_t max,
                                  char *dst, char *err, size_t errlen)
{
    const char *s = NULL;
    size_t len;
    enum tpc_err rc = codec_get_cstr(v, where, what, &s, err, errlen);

    if (rc)
        return rc;
    len = strlen(s);
    if (len < 1 || len > max)
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "%s: '%s' must be 1..%zu characters",
                              where, what, max);
    memcpy(dst, s, len + 1);
    return TPC_OK;
}

/* An integer in 0..max; a JSON real, even 1.0, is not an integer. */
static enum tpc_err codec_get_uint(const json_t *v, const char *where, const char *what,
                                   uint64_t max, uint64_t *out, char *err, size_t errlen)
{
    json_int_t i;

    if (!json_is_integer(v))
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "%s: '%s' must be an integer", where,
                              what);
    i = json_integer_value(v);
    if (i < 0 || (uint64_t)i > max)
        return tpc_errbuf_set(err, errlen, TPC_ERR_RANGE, "%s: '%s' %lld out of range 0..%llu",
                              where, what, (long long)i, (unsigned long long)max);
    *out = (uint64_t)i;
    return TPC_OK;
}

/* {"round": r, "replica": id}, exactly; whether (round, replica) is a ballot at all
 * (round 0 only as (0, 0)) is left to msg_validate(). */
static enum tpc_err codec_get_ballot(const json_t *v, const char *tn, const char *what,
                                     uint32_t n_replicas, struct ballot *b, char *err,
                                     size_t errlen)
{
    char where[48], path[40];
    uint64_t round = 0, replica = 0;
    enum tpc_err rc;

    snprintf(where, sizeof where, "%s: %s", tn, what);
    if (!json_is_object(v))
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID,
                              "%s: must be an object {\"round\", \"replica\"}", where);
    rc = codec_check_keys(v, KB(K_ROUND) | KB(K_REPLICA), where, err, errlen);
    if (rc)
        return rc;
    rc = codec_check_required(v, KB(K_ROUND) | KB(K_REPLICA), where, err, errlen);
    if (rc)
        return rc;
    snprintf(path, sizeof path, "%s.round", what);
    rc = codec_get_uint(json_object_get(v, "round"), tn, path, BALLOT_ROUND_MAX, &round, err,
                        errlen);
    if (rc)
        return rc;
    snprintf(path, sizeof path, "%s.replica", what);
    rc = codec_get_uint(json_object_get(v, "replica"), tn, path, n_replicas - 1, &replica, err,
                        errlen);
    if (rc)
        return rc;
    b->round = round;
    b->replica = (uint32_t)replica;
    return TPC_OK;
}

/* "prepared" | "aborted": "none" is an in-memory state, never a value on the wire. */
static enum tpc_err codec_get_value(const json_t *v, const char *tn, enum tpc_value *out, char *err,
                                    size_t errlen)
{
    const char *s = NULL;
    enum tpc_err rc = codec_get_cstr(v, tn, "value", &s, err, errlen);
    char q[40];

    if (rc)
        return rc;
    if (strcmp(s, msg_value_name(TPC_VALUE_PREPARED)) == 0)
        *out = TPC_VALUE_PREPARED;
    else if (strcmp(s, msg_value_name(TPC_VALUE_ABORTED)) == 0)
        *out = TPC_VALUE_ABORTED;
    else
        return tpc_errbuf_set(err, errlen, TPC_ERR_RANGE,
                              "%s: 'value' must be \"prepared\" or \"aborted\", not '%s'", tn,
                              codec_quote(q, sizeof q, s, strlen(s)));
    return TPC_OK;
}

/* "committed" | "aborted". */
static enum tpc_err codec_get_outcome(const json_t *v, const char *tn, enum tpc_outcome *out,
                                      char *err, size_t errlen)
{
    const char *s = NULL;
    enum tpc_err rc = codec_get_cstr(v, tn, "outcome", &s, err, errlen);
    char q[40];

    if (rc)
        return rc;
    if (strcmp(s, msg_outcome_name(TPC_OUTCOME_COMMITTED)) == 0)
        *out = TPC_OUTCOME_COMMITTED;
    else if (strcmp(s, msg_outcome_name(TPC_OUTCOME_ABORTED)) == 0)
        *out = TPC_OUTCOME_ABORTED;
    else
        return tpc_errbuf_set(err, errlen, TPC_ERR_RANGE,
                              "%s: 'outcome' must be \"committed\" or \"aborted\", not '%s'", tn,
                              codec_quote(q, sizeof q, s, strlen(s)));
    return TPC_OK;
}

/* A non-empty array of distinct names. An empty array is refused rather than read as
 * "absent", so that every message has exactly one wire form. */
static enum tpc_err codec_get_parts(const json_t *v, const char *tn, struct msg_parts *parts,
                                    char *err, size_t errlen)
{
    size_t i, j, n;
    char path[40], q[40];
    enum tpc_err rc;

    if (!json_is_array(v))
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "%s: 'participants' must be an array",
                              tn);
    n = json_array_size(v);
    if (n == 0)
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "%s: 'participants' is empty", tn);
    if (n > TPC_MAX_PARTICIPANTS)
        return tpc_errbuf_set(err, errlen, TPC_ERR_TOO_BIG, "%s: %zu participants, more than %d",
                              tn, n, TPC_MAX_PARTICIPANTS);
    for (i = 0; i < n; i++) {
        snprintf(path, sizeof path, "participants[%zu]", i);
        rc = codec_get_str(json_array_get(v, i), tn, path, TPC_NAME_MAX, parts->name[i], err,
                           errlen);
        if (rc)
            return rc;
        for (j = 0; j < i; j++)
            if (strcmp(parts->name[i], parts->name[j]) == 0)
                return tpc_errbuf_set(
                    err, errlen, TPC_ERR_INVALID, "%s: duplicate participant '%s'", tn,
                    codec_quote(q, sizeof q, parts->name[i], strlen(parts->name[i])));
    }
    parts->n = (uint32_t)n;
    return TPC_OK;
}

/* An array of distinct acceptor ids, into a bitmask. */
static enum tpc_err codec_get_acks(const json_t *v, const char *tn, uint32_t n_replicas,
                                   uint32_t *acks, char *err, size_t errlen)
{
    size_t i;
    char path[40]; /* room for any size_t index */
    uint64_t id = 0;
    enum tpc_err rc;

    if (!json_is_array(v))
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "%s: 'accepted_by' must be an array",
                              tn);
    /* Ids are below n_replicas <= TPC_MAX_REPLICAS, so a long array fails early on a
     * duplicate or an out-of-range id. */
    for (i = 0; i < json_array_size(v); i++) {
        snprintf(path, sizeof path, "accepted_by[%zu]", i);
        rc = codec_get_uint(json_array_get(v, i), tn, path, n_replicas - 1, &id, err, errlen);
        if (rc)
            return rc;
        if (*acks & (1u << id))
            return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID,
                                  "%s: duplicate acceptor %u in 'accepted_by'", tn, (unsigned)id);
        *acks |= 1u << id;
    }
    return TPC_OK;
}

/* The fields present in j (already known to be allowed for m->type) into m. */
static enum tpc_err codec_decode_fields(const json_t *j, const char *tn, uint32_t n_replicas,
                                        struct msg *m, char *err, size_t errlen)
{
    const json_t *v;
    uint64_t id = 0;
    enum tpc_err rc;

    rc = codec_get_str(json_object_get(j, "txid"), tn, "txid", TPC_TXID_MAX, m->txid, err, errlen);
    if (rc)
        return rc;
    if ((v = json_object_get(j, "instance"))) {
        rc = codec_get_str(v, tn, "instance", TPC_NAME_MAX, m->instance, err, errlen);
        if (rc)
            return rc;
    }
    if ((v = json_object_get(j, "acceptor"))) {
        rc = codec_get_uint(v, tn, "acceptor", n_replicas - 1, &id, err, errlen);
        if (rc)
            return rc;
        m->acceptor = (uint32_t)id;
    }
    if ((v = json_object_get(j, "ballot"))) {
        rc = codec_get_ballot(v, tn, "ballot", n_replicas, &m->ballot, err, errlen);
        if (rc)
            return rc;
    }
    if ((v = json_object_get(j, "accepted_ballot"))) {
        rc = codec_get_ballot(v, tn, "accepted_ballot", n_replicas, &m->accepted_ballot, err,
                              errlen);
        if (rc)
            return rc;
    }
    if ((v = json_object_get(j, "promised"))) {
        rc = codec_get_ballot(v, tn, "promised", n_replicas, &m->promised, err, errlen);
        if (rc)
            return rc;
    }
    if ((v = json_object_get(j, "value"))) {
        rc = codec_get_value(v, tn, &m->value, err, errlen);
        if (rc)
            return rc;
    }
    if ((v = json_object_get(j, "outcome"))) {
        rc = codec_get_outcome(v, tn, &m->outcome, err, errlen);
        if (rc)
            return rc;
    }
    if ((v = json_object_get(j, "accepted_by"))) {
        rc = codec_get_acks(v, tn, n_replicas, &m->acks, err, errlen);
        if (rc)
            return rc;
    }
    if ((v = json_object_get(j, "participants"))) {
        rc = codec_get_parts(v, tn, &m->parts, err, errlen);
        if (rc)
            return rc;
    }
    if ((v = json_object_get(j, "born"))) {
        uint64_t born = 0;

        rc = codec_get_uint(v, tn, "born", MSG_BORN_MAX, &born, err, errlen);
        if (rc)
            return rc;
        if (born == 0) /* one wire form: absent when not known */
            return tpc_errbuf_set(err, errlen, TPC_ERR_RANGE, "%s: 'born' is positive", tn);
        m->born = born;
    }
    if ((v = json_object_get(j, "read_only"))) {
        /* One wire form: the key is there, as true, or absent. */
        if (!json_is_true(v))
            return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID,
                                  "%s: 'read_only' is true when present", tn);
        m->read_only = true;
    }
    return TPC_OK;
}

/* The message type named by j's "type". */
static enum tpc_err codec_get_type(const json_t *j, enum msg_type *t, char *err, size_t errlen)
{
    const json_t *v = json_object_get(j, "type");
    const char *s = NULL;
    char q[40];
    int i;
    enum tpc_err rc;

    if (!v)
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "message: missing field 'type'");
    rc = codec_get_cstr(v, "message", "type", &s, err, errlen);
    if (rc)
        return rc;
    for (i = MSG_TYPE_FIRST; i <= MSG_TYPE_LAST; i++) {
        if (strcmp(s, msg_type_name((enum msg_type)i)) == 0) {
            *t = (enum msg_type)i;
            return TPC_OK;
        }
    }
    return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "message: unknown type '%s'",
                          codec_quote(q, sizeof q, s, strlen(s)));
}

enum tpc_err codec_decode(const json_t *j, uint32_t n_replicas, struct msg *m, char *err,
                          size_t errlen)
{
    struct codec_shape shape;
    const char *tn;
    bool has_acc, has_val;
    enum tpc_err rc;

    assert(m);
    memset(m, 0, sizeof *m);
    /* Range checks below compare against n_replicas - 1. */
    if (n_replicas < 1 || n_replicas > TPC_MAX_REPLICAS) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_RANGE, "replica count %u out of range 1..%d",
                            n_replicas, TPC_MAX_REPLICAS);
        goto out;
    }
    if (!json_is_object(j)) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "message must be a JSON object");
        goto out;
    }
    rc = codec_get_type(j, &m->type, err, errlen);
    if (rc)
        goto out;
    tn = msg_type_name(m->type);
    shape = codec_shape_of(m->type);
    assert(tn && shape.uses);
    rc = codec_check_keys(j, shape.uses, tn, err, errlen);
    if (rc)
        goto out;
    rc = codec_check_required(j, shape.uses & ~shape.optional, tn, err, errlen);
    if (rc)
        goto out;
    /* The one pair of optional keys that go together (codec.h). */
    has_acc = json_object_get(j, "accepted_ballot") != NULL;
    has_val = json_object_get(j, "value") != NULL;
    if (m->type == MSG_PHASE1B && has_acc != has_val) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "%s: field '%s' without '%s'", tn,
                            has_val ? "value" : "accepted_ballot",
                            has_val ? "accepted_ballot" : "value");
        goto out;
    }
    rc = codec_decode_fields(j, tn, n_replicas, m, err, errlen);
    if (rc)
        goto out;
    rc = msg_validate(m, n_replicas, err, errlen);
out:
    return rc;
}

/* A ballot object, or NULL when out of memory. */
static json_t *codec_ballot_new(struct ballot b)
{
    json_t *o = json_object();

    if (!o)
        goto fail;
    /* json_object_set_new() takes a NULL value as a failure and drops the value on failure. */
    if (json_object_set_new(o, "round", json_integer((json_int_t)b.round)) ||
        json_object_set_new(o, "replica", json_integer((json_int_t)b.replica)))
        goto fail;
    return o;
fail:
    json_decref(o);
    return NULL;
}

/* Sorted acceptor ids of the acks bitmask, or NULL when out of memory. */
static json_t *codec_acks_new(uint32_t acks)
{
    json_t *a = json_array();
    uint32_t i;

    if (!a)
        goto fail;
    for (i = 0; i < TPC_MAX_REPLICAS; i++)
        if ((acks & (1u << i)) && json_array_append_new(a, json_integer((json_int_t)i)))
            goto fail;
    return a;
fail:
    json_decref(a);
    return NULL;
}

static json_t *codec_parts_new(const struct msg_parts *parts)
{
    json_t *a = json_array();
    uint32_t i;

    if (!a)
        goto fail;
    for (i = 0; i < parts->n; i++)
        if (json_array_append_new(a, json_string(parts->name[i])))
            goto fail;
    return a;
fail:
    json_decref(a);
    return NULL;
}

json_t *codec_encode(const struct msg *m)
{
    json_t *o = NULL;
    unsigned uses;

    assert(m);
    if (msg_validate(m, TPC_MAX_REPLICAS, NULL, 0) != TPC_OK)
        goto fail;
    uses = codec_shape_of(m->type).uses;
    o = json_object();
    if (!o)
        goto fail;
    /* Keys in a fixed order, so that equal messages give equal text. Each set_new() consumes
     * its value, also on failure, and fails on a NULL value from a failed allocation. */
    if (json_object_set_new(o, "type", json_string(msg_type_name(m->type))) ||
        json_object_set_new(o, "txid", json_string(m->txid)))
        goto fail;
    /* Validated: the instance is empty only for a STATUS from a client. */
    if ((uses & KB(K_INSTANCE)) && m->instance[0] &&
        json_object_set_new(o, "instance", json_string(m->instance)))
        goto fail;
    if ((uses & KB(K_ACCEPTOR)) &&
        json_object_set_new(o, "acceptor", json_integer((json_int_t)m->acceptor)))
        goto fail;
    if ((uses & KB(K_BALLOT)) && json_object_set_new(o, "ballot", codec_ballot_new(m->ballot)))
        goto fail;
    /* Validated: in a PHASE1B the accepted ballot means something only with a value. */
    if ((uses & KB(K_ACCEPTED)) && m->value != TPC_VALUE_NONE &&
        json_object_set_new(o, "accepted_ballot", codec_ballot_new(m->accepted_ballot)))
        goto fail;
    if ((uses & KB(K_PROMISED)) &&
        json_object_set_new(o, "promised", codec_ballot_new(m->promised)))
        goto fail;
    if ((uses & KB(K_VALUE)) && m->value != TPC_VALUE_NONE &&
        json_object_set_new(o, "value", json_string(msg_value_name(m->value))))
        goto fail;
    if ((uses & KB(K_OUTCOME)) &&
        json_object_set_new(o, "outcome", json_string(msg_outcome_name(m->outcome))))
        goto fail;
    if ((uses & KB(K_ACKS)) && json_object_set_new(o, "accepted_by", codec_acks_new(m->acks)))
        goto fail;
    if ((uses & KB(K_READ_ONLY)) && m->read_only &&
        json_object_set_new(o, "read_only", json_true()))
        goto fail;
    if ((uses & KB(K_BORN)) && m->born &&
        json_object_set_new(o, "born", json_integer((json_int_t)m->born)))
        goto fail;
    /* Validated: the list is empty only where the type allows it to be absent. */
    if ((uses & KB(K_PARTS)) && m->parts.n > 0 &&
        json_object_set_new(o, "participants", codec_parts_new(&m->parts)))
        goto fail;
    return o;
fail:
    json_decref(o);
    return NULL;
}

enum tpc_err codec_encode_text(const struct msg *m, char **out, size_t *outlen)
{
    json_t *j = NULL;
    enum tpc_err rc = TPC_OK;

    assert(m && out);
    *out = NULL;
    if (outlen)
        *outlen = 0;
    /* Checked here as well as in codec_encode() to tell a bad message from a lack of memory. */
    if (msg_validate(m, TPC_MAX_REPLICAS, NULL, 0) != TPC_OK) {
        rc = TPC_ERR_INVALID;
        goto out;
    }
    j = codec_encode(m);
    if (!j) {
        rc = TPC_ERR_NOMEM;
        goto out;
    }
    /* jansson allocates with malloc() unless json_set_alloc_funcs() is called, which this
     * project does not do, so the caller may free() the text. */
    *out = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!*out) {
        rc = TPC_ERR_NOMEM;
        goto out;
    }
    if (outlen)
        *outlen = strlen(*out);
out:
    json_decref(j);
    return rc;
}

enum tpc_err codec_decode_text(const char *buf, size_t len, uint32_t n_replicas, struct msg *m,
                               char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *j = NULL;
    enum tpc_err rc;
    const char *nul;
    char q[sizeof jerr.text + 4];

    assert(m && (buf || len == 0));
    memset(m, 0, sizeof *m);
    if (len > CODEC_MAX_TEXT) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_TOO_BIG, "message of %zu bytes, more than %d", len,
                            CODEC_MAX_TEXT);
        goto out;
    }
    /* Without JSON_DECODE_ANY the top level must be an array or an object; codec_decode()
     * refuses the array. Trailing data after the value is an error by default. */
    j = json_loadb(len ? buf : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        rc = json_error_code(&jerr) == json_error_out_of_memory ? TPC_ERR_NOMEM : TPC_ERR_INVALID;
        /* jansson's text may quote the input, newlines included. */
        nul = memchr(jerr.text, '\0', sizeof jerr.text);
        tpc_errbuf_set(err, errlen, rc, "bad JSON at line %d column %d (byte %d): %s", jerr.line,
                       jerr.column, jerr.position,
                       codec_quote(q, sizeof q, jerr.text,
                                   nul ? (size_t)(nul - jerr.text) : sizeof jerr.text));
        goto out;
    }
    rc = codec_decode(j, n_replicas, m, err, errlen);
out:
    json_decref(j);
    return rc;
}

json_t *codec_encode_batch(const struct msg *msgs, size_t n)
{
    json_t *o = NULL, *a = NULL;
    size_t i;

    if (n > CODEC_MAX_BATCH || (n > 0 && !msgs))
        goto fail;
    a = json_array();
    o = json_object();
    if (!a || !o)
        goto fail;
    for (i = 0; i < n; i++)
        if (json_array_append_new(a, codec_encode(&msgs[i])))
            goto fail;
    /* set_new() consumes a whether it succeeds or not. */
    if (json_object_set_new(o, "messages", a)) {
        a = NULL;
        goto fail;
    }
    return o;
fail:
    json_decref(a);
    json_decref(o);
    return NULL;
}

enum tpc_err codec_decode_batch(const json_t *j, uint32_t n_replicas, struct msg *out, size_t cap,
                                size_t *n, char *err, size_t errlen)
{
    const json_t *a;
    size_t i, count;
    char why[200];
    enum tpc_err rc;

    assert(n && (out || cap == 0));
    *n = 0;
    if (!json_is_object(j)) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "batch must be a JSON object");
        goto out;
    }
    rc = codec_check_keys(j, KB(K_MESSAGES), "batch", err, errlen);
    if (rc)
        goto out;
    rc = codec_check_required(j, KB(K_MESSAGES), "batch", err, errlen);
    if (rc)
        goto out;
    a = json_object_get(j, "messages");
    if (!json_is_array(a)) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "batch: 'messages' must be an array");
        goto out;
    }
    count = json_array_size(a);
    if (count > CODEC_MAX_BATCH || count > cap) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_TOO_BIG, "batch: %zu messages, more than %zu",
                            count, cap < CODEC_MAX_BATCH ? cap : (size_t)CODEC_MAX_BATCH);
        goto out;
    }
    for (i = 0; i < count; i++) {
        why[0] = '\0';
        rc = codec_decode(json_array_get(a, i), n_replicas, &out[i], why, sizeof why);
        if (rc) {
            tpc_errbuf_set(err, errlen, rc, "messages[%zu]: %s", i, why);
            goto out;
        }
    }
    *n = count;
out:
    return rc;
}

json_t *codec_encode_parts(const struct msg_parts *parts)
{
    return msg_parts_valid(parts) ? codec_parts_new(parts) : NULL;
}

enum tpc_err codec_decode_parts(const json_t *j, struct msg_parts *parts, char *err, size_t errlen)
{
    enum tpc_err rc;

    memset(parts, 0, sizeof(*parts));
    rc = codec_get_parts(j, "participants", parts, err, errlen);
    if (!rc && !msg_parts_valid(parts))
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "participants: invalid name");
    return rc;
}
