/*
 * test_codec.c - the JSON codec: round trips of every message type, the
 * strict decoder's rejections (each with its error class), batches, and a
 * small deterministic fuzz loop that must never crash or accept an invalid
 * message.
 */
#include "codec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* The decoder's replica count in these tests: ids 0..4 are valid, 5 is not. */
#define NREP 5

static bool ballot_same(struct ballot a, struct ballot b)
{
    return a.round == b.round && a.replica == b.replica;
}

/* Every field, the participant list included. */
static bool msg_same(const struct msg *a, const struct msg *b)
{
    return a->type == b->type && strcmp(a->txid, b->txid) == 0 &&
           strcmp(a->instance, b->instance) == 0 && a->acceptor == b->acceptor &&
           ballot_same(a->ballot, b->ballot) &&
           ballot_same(a->accepted_ballot, b->accepted_ballot) &&
           ballot_same(a->promised, b->promised) && a->value == b->value &&
           a->outcome == b->outcome && a->acks == b->acks && msg_parts_equal(&a->parts, &b->parts);
}

static struct ballot mkballot(uint64_t round, uint32_t replica)
{
    struct ballot b = {round, replica};
    return b;
}

static void set_parts(struct msg *m, const char *const *names, uint32_t n)
{
    uint32_t i;

    m->parts.n = n;
    for (i = 0; i < n; i++)
        msg_copy_str(m->parts.name[i], TPC_NAME_MAX, names[i]);
}

static struct msg mkmsg(enum msg_type type, const char *txid, const char *instance)
{
    struct msg m;

    memset(&m, 0, sizeof m);
    m.type = type;
    msg_copy_str(m.txid, TPC_TXID_MAX, txid);
    msg_copy_str(m.instance, TPC_NAME_MAX, instance);
    return m;
}

static const char *const parts3[] = {"bank-a", "bank-b", "shop_1"};

/* Fills out[] with valid messages covering every type and its optional fields; returns n. */
static size_t valid_messages(struct msg *out)
{
    size_t n = 0;
    struct msg m;

    m = mkmsg(MSG_PREPARE, "t1", "");
    set_parts(&m, parts3, 3);
    out[n++] = m;

    m = mkmsg(MSG_VOTE, "t1", "bank-a");
    m.value = TPC_VALUE_PREPARED;
    out[n++] = m; /* acks 0 */

    m = mkmsg(MSG_VOTE, "tx-2_B", "bank-b");
    m.value = TPC_VALUE_ABORTED;
    m.acks = (1u << 1) | (1u << 2) | (1u << 4);
    out[n++] = m;

    m = mkmsg(MSG_PHASE1A, "t1", "shop_1");
    m.ballot = mkballot(BALLOT_ROUND_MAX, 4);
    set_parts(&m, parts3, 3);
    out[n++] = m;

    m = mkmsg(MSG_PHASE1B, "t1", "bank-a"); /* nothing accepted, list unknown */
    m.acceptor = 2;
    m.ballot = mkballot(1, 3);
    out[n++] = m;

    m = mkmsg(MSG_PHASE1B, "t1", "bank-a"); /* accepted the vote of ballot 0 */
    m.acceptor = 0;
    m.ballot = mkballot(2, 1);
    m.accepted_ballot = mkballot(0, 0);
    m.value = TPC_VALUE_PREPARED;
    set_parts(&m, parts3, 3);
    out[n++] = m;

    m = mkmsg(MSG_PHASE1B, "t1", "bank-b"); /* accepted in a recovery ballot, no list */
    m.acceptor = 4;
    m.ballot = mkballot(BALLOT_ROUND_MAX, 4);
    m.accepted_ballot = mkballot(BALLOT_ROUND_MAX, 3);
    m.value = TPC_VALUE_ABORTED;
    out[n++] = m;

    m = mkmsg(MSG_PHASE1B, "t1", "shop_1"); /* nothing accepted, list known */
    m.acceptor = 1;
    m.ballot = mkballot(9, 0);
    set_parts(&m, parts3, 3);
    out[n++] = m;

    m = mkmsg(MSG_PHASE2A, "t1", "bank-a");
    m.value = TPC_VALUE_PREPARED;
    set_parts(&m, parts3, 2);
    out[n++] = m;

    m = mkmsg(MSG_PHASE2A, "t1", "shop_1");
    m.ballot = mkballot(7, 2);
    m.value = TPC_VALUE_ABORTED;
    set_parts(&m, parts3, 3);
    out[n++] = m;

    m = mkmsg(MSG_PHASE2B, "t1", "bank-b");
    m.acceptor = 4;
    m.ballot = mkballot(5, 1);
    m.value = TPC_VALUE_PREPARED;
    out[n++] = m;

    m = mkmsg(MSG_REJECT, "t1", "bank-a");
    m.acceptor = 3;
    m.ballot = mkballot(0, 0);
    m.promised = mkballot(BALLOT_ROUND_MAX, 4);
    out[n++] = m;

    m = mkmsg(MSG_OUTCOME, "t1", "");
    m.outcome = TPC_OUTCOME_COMMITTED;
    out[n++] = m;

    m = mkmsg(MSG_OUTCOME, "t1", "");
    m.outcome = TPC_OUTCOME_ABORTED;
    out[n++] = m;

    m = mkmsg(MSG_ACK, "t1", "bank-a");
    m.outcome = TPC_OUTCOME_COMMITTED;
    out[n++] = m;

    m = mkmsg(MSG_STATUS, "t1", ""); /* from a client */
    out[n++] = m;

    m = mkmsg(MSG_STATUS, "t1", ""); /* from a client that knows the list */
    set_parts(&m, parts3, 3);
    out[n++] = m;

    m = mkmsg(MSG_STATUS, "t1", "bank-b"); /* from a participant */
    set_parts(&m, parts3, 3);
    out[n++] = m;

    m = mkmsg(MSG_STATUS, "t1", "bank-b"); /* from a participant, no list */
    out[n++] = m;

    return n;
}

#define MAX_VALID 32

static void test_round_trip(void)
{
    struct msg msgs[MAX_VALID], back, back2;
    char err[256];
    size_t n = valid_messages(msgs), i;
    bool seen[MSG_TYPE_LAST + 1] = {false};
    int t;

    for (i = 0; i < n; i++) {
        char *text = NULL, *text2 = NULL;
        size_t len = 0, len2 = 0;
        json_t *j;

        seen[msgs[i].type] = true;
        err[0] = '\0';
        CHECK_EQ_INT(msg_validate(&msgs[i], NREP, err, sizeof err), TPC_OK);
        CHECK_EQ_INT(codec_encode_text(&msgs[i], &text, &len), TPC_OK);
        CHECK(text != NULL && strlen(text) == len);
        if (!text)
            continue;
        err[0] = '\0';
        CHECK_EQ_INT(codec_decode_text(text, len, NREP, &back, err, sizeof err), TPC_OK);
        CHECK(msg_same(&msgs[i], &back));
        CHECK_EQ_INT(codec_encode_text(&back, &text2, &len2), TPC_OK);
        CHECK_STR(text2, text);
        if (!msg_same(&msgs[i], &back) || !text2 || strcmp(text, text2) != 0)
            fprintf(stderr, "  message %zu: %s (%s)\n", i, text, err);

        /* The json_t level gives the same message. */
        j = codec_encode(&msgs[i]);
        CHECK(j != NULL);
        CHECK_EQ_INT(codec_decode(j, NREP, &back2, err, sizeof err), TPC_OK);
        CHECK(msg_same(&msgs[i], &back2));
        json_decref(j);
        free(text);
        free(text2);
    }
    for (t = MSG_TYPE_FIRST; t <= MSG_TYPE_LAST; t++)
        CHECK(seen[t]);
}

/* The wire form itself: key order, omitted optional keys, sorted accepted_by. */
static void check_text(const struct msg *m, const char *want)
{
    char *text = NULL;

    CHECK_EQ_INT(codec_encode_text(m, &text, NULL), TPC_OK);
    CHECK_STR(text, want);
    free(text);
}

static void test_wire_form(void)
{
    struct msg msgs[MAX_VALID];

    valid_messages(msgs);
    check_text(&msgs[8], "{\"type\":\"phase2a\",\"txid\":\"t1\",\"instance\":\"bank-a\","
                         "\"ballot\":{\"round\":0,\"replica\":0},\"value\":\"prepared\","
                         "\"participants\":[\"bank-a\",\"bank-b\"]}");
    check_text(&msgs[1], "{\"type\":\"vote\",\"txid\":\"t1\",\"instance\":\"bank-a\","
                         "\"value\":\"prepared\",\"accepted_by\":[]}");
    check_text(&msgs[2], "{\"type\":\"vote\",\"txid\":\"tx-2_B\",\"instance\":\"bank-b\","
                         "\"value\":\"aborted\",\"accepted_by\":[1,2,4]}");
    check_text(&msgs[4], "{\"type\":\"phase1b\",\"txid\":\"t1\",\"instance\":\"bank-a\","
                         "\"acceptor\":2,\"ballot\":{\"round\":1,\"replica\":3}}");
    check_text(&msgs[6], "{\"type\":\"phase1b\",\"txid\":\"t1\",\"instance\":\"bank-b\","
                         "\"acceptor\":4,\"ballot\":{\"round\":9007199254740991,\"replica\":4},"
                         "\"accepted_ballot\":{\"round\":9007199254740991,\"replica\":3},"
                         "\"value\":\"aborted\"}");
    check_text(&msgs[15], "{\"type\":\"status\",\"txid\":\"t1\"}");
    check_text(&msgs[12], "{\"type\":\"outcome\",\"txid\":\"t1\",\"outcome\":\"committed\"}");
}

/* Expects codec_decode_text(text) to fail with want, and the error to contain needle. */
static void reject_n(const char *text, size_t len, uint32_t nrep, enum tpc_err want,
                     const char *needle)
{
    struct msg m;
    char err[256] = "";
    enum tpc_err rc;
    int before = check_failures;

    rc = codec_decode_text(text, len, nrep, &m, err, sizeof err);
    CHECK_EQ_INT(rc, want);
    CHECK(err[0] != '\0' && strchr(err, '\n') == NULL);
    if (needle)
        CHECK(strstr(err, needle) != NULL);
    if (check_failures != before)
        fprintf(stderr, "  input: %.200s\n  error: %s\n", text, err);
}

static void reject(const char *text, enum tpc_err want, const char *needle)
{
    reject_n(text, strlen(text), NREP, want, needle);
}

static void accept(const char *text)
{
    struct msg m;
    char err[256] = "";
    enum tpc_err rc = codec_decode_text(text, strlen(text), NREP, &m, err, sizeof err);

    CHECK_EQ_INT(rc, TPC_OK);
    if (rc != TPC_OK)
        fprintf(stderr, "  input: %.200s\n  error: %s\n", text, err);
}

#define P2A_HEAD           "{\"type\":\"phase2a\",\"txid\":\"t1\",\"instance\":\"bank-a\","
#define P2A_BALLOT         "\"ballot\":{\"round\":0,\"replica\":0},"
#define P2A_TAIL           "\"value\":\"prepared\",\"participants\":[\"bank-a\",\"bank-b\"]}"
#define P2A_OK             P2A_HEAD P2A_BALLOT P2A_TAIL
#define P2A_WITH_BALLOT(b) P2A_HEAD "\"ballot\":" b "," P2A_TAIL
#define P2B_ACCEPTOR(a)                                                                            \
    "{\"type\":\"phase2b\",\"txid\":\"t1\",\"instance\":\"bank-a\",\"acceptor\":" a                \
    ",\"ballot\":{\"round\":3,\"replica\":1},\"value\":\"aborted\"}"
#define P1A_WITH_BALLOT(b)                                                                         \
    "{\"type\":\"phase1a\",\"txid\":\"t1\",\"instance\":\"bank-a\",\"ballot\":" b                  \
    ",\"participants\":[\"bank-a\"]}"
#define PREPARE_TXID(t)  "{\"type\":\"prepare\",\"txid\":" t ",\"participants\":[\"p\"]}"
#define PREPARE_PARTS(p) "{\"type\":\"prepare\",\"txid\":\"t1\",\"participants\":" p "}"
#define REJECT_PROMISED(p)                                                                         \
    "{\"type\":\"reject\",\"txid\":\"t1\",\"instance\":\"a\",\"acceptor\":0,"                      \
    "\"ballot\":{\"round\":2,\"replica\":1},\"promised\":" p "}"
#define P1B_HEAD "{\"type\":\"phase1b\",\"txid\":\"t1\",\"instance\":\"a\",\"acceptor\":1,"

static const char txid64[] = "0123456789012345678901234567890123456789012345678901234567890123";
static const char name32[] = "abcdefghijabcdefghijabcdefghij12";

static void test_rejections(void)
{
    char buf[512];

    /* The texts below differ from these accepted ones in one thing each. */
    accept(P2A_OK);
    accept(P2B_ACCEPTOR("4"));
    accept(P1A_WITH_BALLOT("{\"round\":9007199254740991,\"replica\":4}"));
    accept(REJECT_PROMISED("{\"round\":2,\"replica\":2}"));
    accept(P1B_HEAD "\"ballot\":{\"round\":2,\"replica\":0},"
                    "\"accepted_ballot\":{\"round\":1,\"replica\":4},\"value\":\"prepared\"}");

    /* Not JSON, or not an object. */
    reject("{\"type\":\"phase2a\",", TPC_ERR_INVALID, "bad JSON");
    reject("", TPC_ERR_INVALID, "bad JSON");
    reject("[1,2]", TPC_ERR_INVALID, "object");
    reject("[" P2A_OK "]", TPC_ERR_INVALID, "object");
    reject("\"phase2a\"", TPC_ERR_INVALID, NULL);
    reject("null", TPC_ERR_INVALID, NULL);
    reject(P2A_OK " x", TPC_ERR_INVALID, "bad JSON");
    reject(P2A_OK "{}", TPC_ERR_INVALID, "bad JSON");
    reject("{\"type\":\"prepare\",\"txid\":\"t1\",\"txid\":\"t2\",\"participants\":[\"p\"]}",
           TPC_ERR_INVALID, "duplicate");
    reject("{\"type\":\"prepare\",\"txid\":\"t1\",\"participants\":[\"p\"],\"type\":\"prepare\"}",
           TPC_ERR_INVALID, "duplicate");
    reject_n(P2A_OK "\0", sizeof(P2A_OK "\0") - 1, NREP, TPC_ERR_INVALID, "bad JSON");
    reject("{\"type\":\"prepare\",\"txid\":\"t\n1\",\"participants\":[\"p\"]}", TPC_ERR_INVALID,
           "bad JSON");

    /* Type and keys. */
    reject("{\"type\":\"phase3a\",\"txid\":\"t1\"}", TPC_ERR_INVALID, "unknown type 'phase3a'");
    reject("{\"type\":\"Phase2a\",\"txid\":\"t1\"}", TPC_ERR_INVALID, "unknown type");
    reject("{\"type\":\"none\",\"txid\":\"t1\"}", TPC_ERR_INVALID, "unknown type");
    reject("{\"type\":3,\"txid\":\"t1\"}", TPC_ERR_INVALID, "'type'");
    reject("{\"txid\":\"t1\",\"participants\":[\"p\"]}", TPC_ERR_INVALID, "missing field 'type'");
    reject(P2A_HEAD P2A_BALLOT "\"color\":\"red\"," P2A_TAIL, TPC_ERR_INVALID,
           "unknown field 'color'");
    reject(P2A_HEAD P2A_BALLOT "\"outcome\":\"committed\"," P2A_TAIL, TPC_ERR_INVALID,
           "phase2a: unexpected field 'outcome'");
    reject(P2A_HEAD P2A_BALLOT "\"acceptor\":0," P2A_TAIL, TPC_ERR_INVALID,
           "unexpected field 'acceptor'");
    reject("{\"type\":\"outcome\",\"txid\":\"t1\",\"outcome\":\"committed\",\"instance\":\"a\"}",
           TPC_ERR_INVALID, "unexpected field 'instance'");
    reject(P2A_HEAD P2A_TAIL, TPC_ERR_INVALID, "phase2a: missing field 'ballot'");
    reject("{\"type\":\"phase2a\",\"instance\":\"bank-a\"," P2A_BALLOT P2A_TAIL, TPC_ERR_INVALID,
           "missing field 'txid'");
    reject("{\"type\":\"vote\",\"txid\":\"t1\",\"instance\":\"a\",\"value\":\"prepared\"}",
           TPC_ERR_INVALID, "missing field 'accepted_by'");
    reject("{\"type\":\"prepare\",\"txid\":\"t1\"}", TPC_ERR_INVALID,
           "missing field 'participants'");

    /* JSON types and numbers. */
    reject(P2A_WITH_BALLOT("{\"round\":\"0\",\"replica\":0}"), TPC_ERR_INVALID, "ballot.round");
    reject(P2A_WITH_BALLOT("\"0.0\""), TPC_ERR_INVALID, "ballot");
    reject(P2A_WITH_BALLOT("[0,0]"), TPC_ERR_INVALID, "ballot");
    reject(P2A_WITH_BALLOT("null"), TPC_ERR_INVALID, "ballot");
    reject(PREPARE_TXID("1"), TPC_ERR_INVALID, "'txid' must be a string");
    reject(PREPARE_TXID("null"), TPC_ERR_INVALID, "'txid'");
    reject(P2A_WITH_BALLOT("{\"round\":1.5,\"replica\":0}"), TPC_ERR_INVALID, "integer");
    reject(P2A_WITH_BALLOT("{\"round\":1.0,\"replica\":0}"), TPC_ERR_INVALID, "integer");
    reject(P2A_WITH_BALLOT("{\"round\":1e0,\"replica\":0}"), TPC_ERR_INVALID, "integer");
    reject(P2A_WITH_BALLOT("{\"round\":true,\"replica\":0}"), TPC_ERR_INVALID, "integer");
    reject(P2B_ACCEPTOR("\"1\""), TPC_ERR_INVALID, "'acceptor' must be an integer");
    reject(P2B_ACCEPTOR("-1"), TPC_ERR_RANGE, "acceptor");
    reject(P2B_ACCEPTOR("5"), TPC_ERR_RANGE, "acceptor");
    reject(P2B_ACCEPTOR("4294967297"), TPC_ERR_RANGE, "acceptor");
    reject(P2B_ACCEPTOR("99999999999999999999999"), TPC_ERR_INVALID, "bad JSON");
    reject(P2A_WITH_BALLOT("{\"round\":3,\"replica\":5}"), TPC_ERR_RANGE, "ballot.replica");
    reject(P2A_WITH_BALLOT("{\"round\":3,\"replica\":-1}"), TPC_ERR_RANGE, "ballot.replica");
    reject(P1A_WITH_BALLOT("{\"round\":9007199254740992,\"replica\":0}"), TPC_ERR_RANGE,
           "ballot.round");
    reject(P1A_WITH_BALLOT("{\"round\":-2,\"replica\":0}"), TPC_ERR_RANGE, "ballot.round");

    /* Ballot objects: exactly round and replica, and a ballot at all. */
    reject(P2A_WITH_BALLOT("{\"round\":0}"), TPC_ERR_INVALID, "missing field 'replica'");
    reject(P2A_WITH_BALLOT("{\"replica\":0}"), TPC_ERR_INVALID, "missing field 'round'");
    reject(P2A_WITH_BALLOT("{\"round\":0,\"replica\":0,\"epoch\":1}"), TPC_ERR_INVALID,
           "ballot: unknown field 'epoch'");
    reject(P2A_WITH_BALLOT("{\"round\":0,\"replica\":0,\"type\":\"x\"}"), TPC_ERR_INVALID,
           "ballot: unexpected field 'type'");
    reject(P2A_WITH_BALLOT("{\"round\":0,\"replica\":2}"), TPC_ERR_RANGE, "ballot");
    reject(P1A_WITH_BALLOT("{\"round\":0,\"replica\":0}"), TPC_ERR_RANGE, "ballot 0");
    reject(REJECT_PROMISED("{\"round\":2,\"replica\":1}"), TPC_ERR_RANGE, "higher promise");
    reject(REJECT_PROMISED("{\"round\":1,\"replica\":4}"), TPC_ERR_RANGE, "higher promise");

    /* Identifiers. */
    snprintf(buf, sizeof buf, PREPARE_TXID("\"%s\""), txid64);
    accept(buf);
    snprintf(buf, sizeof buf, PREPARE_TXID("\"%sx\""), txid64);
    reject(buf, TPC_ERR_INVALID, "'txid' must be 1..64 characters");
    reject(PREPARE_TXID("\"\""), TPC_ERR_INVALID, "txid");
    reject(PREPARE_TXID("\"t 1\""), TPC_ERR_INVALID, "txid");
    reject(PREPARE_TXID("\"t/1\""), TPC_ERR_INVALID, "txid");
    reject(PREPARE_TXID("\"t\\u00e91\""), TPC_ERR_INVALID, "txid");
    reject(PREPARE_TXID("\"t\\u00001\""), TPC_ERR_INVALID, "bad JSON");
    snprintf(buf, sizeof buf, PREPARE_PARTS("[\"%s\"]"), name32);
    accept(buf);
    snprintf(buf, sizeof buf, PREPARE_PARTS("[\"a\",\"%sx\"]"), name32);
    reject(buf, TPC_ERR_INVALID, "'participants[1]' must be 1..32 characters");
    snprintf(buf, sizeof buf,
             "{\"type\":\"ack\",\"txid\":\"t1\",\"instance\":\"%sx\",\"outcome\":\"aborted\"}",
             name32);
    reject(buf, TPC_ERR_INVALID, "'instance' must be 1..32 characters");
    reject(PREPARE_PARTS("[\"a b\"]"), TPC_ERR_INVALID, "participant");
    reject("{\"type\":\"status\",\"txid\":\"t1\",\"instance\":\"\"}", TPC_ERR_INVALID, "instance");

    /* Participant lists. */
    reject(PREPARE_PARTS("[\"a\",\"b\",\"a\"]"), TPC_ERR_INVALID, "duplicate participant 'a'");
    reject(PREPARE_PARTS("[]"), TPC_ERR_INVALID, "empty");
    reject(PREPARE_PARTS("\"a\""), TPC_ERR_INVALID, "array");
    reject(PREPARE_PARTS("[\"a\",1]"), TPC_ERR_INVALID, "participants[1]");
    reject("{\"type\":\"phase2a\",\"txid\":\"t1\",\"instance\":\"bank-c\"," P2A_BALLOT P2A_TAIL,
           TPC_ERR_INVALID, "not in the participant list");
    {
        /* 32 names are the most a transaction has; 33 are too many. */
        size_t off, i;

        for (i = 32; i <= 33; i++) {
            size_t k;

            off = (size_t)snprintf(buf, sizeof buf,
                                   "{\"type\":\"prepare\",\"txid\":\"t1\",\"participants\":[");
            for (k = 0; k < i; k++)
                off += (size_t)snprintf(buf + off, sizeof buf - off, "%s\"p%zu\"", k ? "," : "", k);
            snprintf(buf + off, sizeof buf - off, "]}");
            if (i == 32)
                accept(buf);
            else
                reject(buf, TPC_ERR_TOO_BIG, "33 participants");
        }
    }

    /* Values, outcomes and acceptor sets. */
    reject("{\"type\":\"vote\",\"txid\":\"t1\",\"instance\":\"a\",\"value\":\"maybe\","
           "\"accepted_by\":[]}",
           TPC_ERR_RANGE, "'value'");
    reject("{\"type\":\"vote\",\"txid\":\"t1\",\"instance\":\"a\",\"value\":\"none\","
           "\"accepted_by\":[]}",
           TPC_ERR_RANGE, "'value'");
    reject("{\"type\":\"outcome\",\"txid\":\"t1\",\"outcome\":\"prepared\"}", TPC_ERR_RANGE,
           "'outcome'");
    reject("{\"type\":\"outcome\",\"txid\":\"t1\",\"outcome\":1}", TPC_ERR_INVALID, "'outcome'");
    reject("{\"type\":\"vote\",\"txid\":\"t1\",\"instance\":\"a\",\"value\":\"prepared\","
           "\"accepted_by\":[0,3,0]}",
           TPC_ERR_INVALID, "duplicate acceptor 0");
    reject("{\"type\":\"vote\",\"txid\":\"t1\",\"instance\":\"a\",\"value\":\"prepared\","
           "\"accepted_by\":[5]}",
           TPC_ERR_RANGE, "accepted_by[0]");
    reject("{\"type\":\"vote\",\"txid\":\"t1\",\"instance\":\"a\",\"value\":\"prepared\","
           "\"accepted_by\":[1,-1]}",
           TPC_ERR_RANGE, "accepted_by[1]");
    reject("{\"type\":\"vote\",\"txid\":\"t1\",\"instance\":\"a\",\"value\":\"prepared\","
           "\"accepted_by\":{}}",
           TPC_ERR_INVALID, "accepted_by");

    /* PHASE1B: accepted_ballot and value together or not at all. */
    reject(P1B_HEAD "\"ballot\":{\"round\":2,\"replica\":0},\"value\":\"prepared\"}",
           TPC_ERR_INVALID, "field 'value' without 'accepted_ballot'");
    reject(P1B_HEAD "\"ballot\":{\"round\":2,\"replica\":0},"
                    "\"accepted_ballot\":{\"round\":1,\"replica\":0}}",
           TPC_ERR_INVALID, "field 'accepted_ballot' without 'value'");
    reject(P1B_HEAD "\"ballot\":{\"round\":2,\"replica\":0},"
                    "\"accepted_ballot\":{\"round\":2,\"replica\":1},\"value\":\"prepared\"}",
           TPC_ERR_RANGE, "above the promise");

    /* Replica counts: ids are checked against the caller's count. */
    reject_n(P2B_ACCEPTOR("4"), strlen(P2B_ACCEPTOR("4")), 3, TPC_ERR_RANGE, "acceptor");
    reject_n(P2A_OK, strlen(P2A_OK), 0, TPC_ERR_RANGE, "replica count");
    reject_n(P2A_OK, strlen(P2A_OK), TPC_MAX_REPLICAS + 1, TPC_ERR_RANGE, "replica count");
}

static void test_size_limit(void)
{
    size_t len = strlen(P2A_OK);
    char *big = malloc(CODEC_MAX_TEXT + 1);
    struct msg m;
    char err[256] = "";

    CHECK(big != NULL);
    if (!big)
        return;
    /* Trailing whitespace is allowed, so exactly the limit decodes and one byte more does not. */
    memcpy(big, P2A_OK, len);
    memset(big + len, ' ', CODEC_MAX_TEXT + 1 - len);
    CHECK_EQ_INT(codec_decode_text(big, CODEC_MAX_TEXT, NREP, &m, err, sizeof err), TPC_OK);
    CHECK_EQ_INT(codec_decode_text(big, CODEC_MAX_TEXT + 1, NREP, &m, err, sizeof err),
                 TPC_ERR_TOO_BIG);
    CHECK(strstr(err, "bytes") != NULL);
    free(big);
}

/* Strings that JSON text cannot carry to the decoder (jansson refuses \u0000 in text), built
 * directly as json_t: the decoder must still refuse embedded NULs in values and keys. */
static void test_embedded_nul(void)
{
    json_t *j;
    struct msg m;
    char err[256] = "";

    j = json_pack("{s:s, s:s%, s:[s]}", "type", "prepare", "txid", "t\0001", (size_t)3,
                  "participants", "p");
    CHECK(j != NULL);
    CHECK_EQ_INT(codec_decode(j, NREP, &m, err, sizeof err), TPC_ERR_INVALID);
    CHECK(strstr(err, "'txid' holds a NUL") != NULL);
    json_decref(j);

    j = json_pack("{s:s%, s:s, s:[s]}", "type", "prepare\0x", (size_t)9, "txid", "t1",
                  "participants", "p");
    CHECK(j != NULL);
    CHECK_EQ_INT(codec_decode(j, NREP, &m, err, sizeof err), TPC_ERR_INVALID);
    CHECK(strstr(err, "NUL") != NULL);
    json_decref(j);

    j = json_pack("{s:s, s:s, s:[s]}", "type", "prepare", "txid", "t1", "participants", "p");
    CHECK(j != NULL);
    CHECK_EQ_INT(codec_decode(j, NREP, &m, err, sizeof err), TPC_OK);
    CHECK_EQ_INT(json_object_setn_new(j, "txid\0x", 6, json_string("t2")), 0);
    CHECK_EQ_INT(codec_decode(j, NREP, &m, err, sizeof err), TPC_ERR_INVALID);
    CHECK(strstr(err, "unknown field 'txid?x'") != NULL);
    json_decref(j);

    CHECK_EQ_INT(codec_decode(NULL, NREP, &m, err, sizeof err), TPC_ERR_INVALID);
}

/* A read-only vote: one wire form, on votes only, for prepared votes only. */
static void test_read_only(void)
{
    struct msg msgs[MAX_VALID], back;
    char err[256], *text = NULL;

    valid_messages(msgs);
    msgs[1].read_only = true;
    check_text(&msgs[1], "{\"type\":\"vote\",\"txid\":\"t1\",\"instance\":\"bank-a\","
                         "\"value\":\"prepared\",\"accepted_by\":[],\"read_only\":true}");
    CHECK_EQ_INT(codec_encode_text(&msgs[1], &text, NULL), TPC_OK);
    CHECK_EQ_INT(codec_decode_text(text, strlen(text), NREP, &back, err, sizeof err), TPC_OK);
    CHECK(back.read_only);
    free(text);
    reject("{\"type\":\"vote\",\"txid\":\"t1\",\"instance\":\"a\",\"value\":\"prepared\","
           "\"accepted_by\":[],\"read_only\":false}",
           TPC_ERR_INVALID, "read_only");
    reject("{\"type\":\"vote\",\"txid\":\"t1\",\"instance\":\"a\",\"value\":\"aborted\","
           "\"accepted_by\":[],\"read_only\":true}",
           TPC_ERR_INVALID, "read-only");
    reject("{\"type\":\"outcome\",\"txid\":\"t1\",\"outcome\":\"committed\",\"read_only\":true}",
           TPC_ERR_INVALID, "read_only");
    msgs[2].read_only = true; /* an aborted vote */
    CHECK(codec_encode(&msgs[2]) == NULL);
}

/* born: on prepare, 1a, 2a, status and outcome only; absent when unknown, positive, exact. */
static void test_born(void)
{
    struct msg m, back;
    char err[256], *text = NULL;

    memset(&m, 0, sizeof(m));
    m.type = MSG_OUTCOME;
    msg_copy_str(m.txid, TPC_TXID_MAX, "t1");
    m.outcome = TPC_OUTCOME_COMMITTED;
    m.born = 1764560000123ULL;
    check_text(&m, "{\"type\":\"outcome\",\"txid\":\"t1\",\"outcome\":\"committed\","
                   "\"born\":1764560000123}");
    CHECK_EQ_INT(codec_encode_text(&m, &text, NULL), TPC_OK);
    CHECK_EQ_INT(codec_decode_text(text, strlen(text), NREP, &back, err, sizeof err), TPC_OK);
    CHECK(back.born == m.born);
    free(text);
    reject("{\"type\":\"outcome\",\"txid\":\"t1\",\"outcome\":\"committed\",\"born\":0}",
           TPC_ERR_RANGE, "born");
    reject("{\"type\":\"outcome\",\"txid\":\"t1\",\"outcome\":\"committed\",\"born\":-5}",
           TPC_ERR_RANGE, "born");
    reject("{\"type\":\"outcome\",\"txid\":\"t1\",\"outcome\":\"committed\",\"born\":\"5\"}",
           TPC_ERR_INVALID, "born");
    reject("{\"type\":\"ack\",\"txid\":\"t1\",\"instance\":\"a\",\"outcome\":\"committed\","
           "\"born\":5}",
           TPC_ERR_INVALID, "born");
    m.type = MSG_ACK;
    msg_copy_str(m.instance, TPC_NAME_MAX, "a");
    CHECK(codec_encode(&m) == NULL); /* an ack carries no born */
}

static void test_encode_invalid(void)
{
    struct msg msgs[MAX_VALID], m;
    char untouched[] = "untouched";
    char *text = untouched;
    size_t len = 99;

    valid_messages(msgs);

    m = msgs[0];
    msg_copy_str(m.txid, TPC_TXID_MAX, "t 1");
    CHECK(codec_encode(&m) == NULL);
    CHECK_EQ_INT(codec_encode_text(&m, &text, &len), TPC_ERR_INVALID);
    CHECK(text == NULL && len == 0);

    m = msgs[0];
    m.type = (enum msg_type)0;
    CHECK(codec_encode(&m) == NULL);

    m = msgs[2]; /* a vote acknowledged by acceptor 9, beyond any cluster */
    m.acks |= 1u << TPC_MAX_REPLICAS;
    CHECK(codec_encode(&m) == NULL);

    m = msgs[4]; /* phase1b: an accepted ballot without a value */
    m.accepted_ballot = mkballot(1, 0);
    CHECK(codec_encode(&m) == NULL);

    m = msgs[12]; /* outcome with a stray instance */
    msg_copy_str(m.instance, TPC_NAME_MAX, "bank-a");
    CHECK(codec_encode(&m) == NULL);

    m = msgs[8]; /* phase2a without a participant list */
    m.parts.n = 0;
    CHECK(codec_encode(&m) == NULL);
}

static void test_batch(void)
{
    struct msg msgs[MAX_VALID], in[3], out[3];
    struct msg *many;
    char err[256] = "";
    size_t n = 77, i;
    json_t *b, *arr;

    valid_messages(msgs);
    in[0] = msgs[0];
    in[1] = msgs[6];
    in[2] = msgs[15];
    b = codec_encode_batch(in, 3);
    CHECK(b != NULL);
    CHECK_EQ_INT(codec_decode_batch(b, NREP, out, 3, &n, err, sizeof err), TPC_OK);
    CHECK_EQ_INT(n, 3);
    for (i = 0; i < 3; i++)
        CHECK(msg_same(&in[i], &out[i]));

    /* More messages than room. */
    n = 77;
    CHECK_EQ_INT(codec_decode_batch(b, NREP, out, 2, &n, err, sizeof err), TPC_ERR_TOO_BIG);
    CHECK_EQ_INT(n, 0);

    /* One bad message spoils the batch, and the error says which. */
    arr = json_object_get(b, "messages");
    CHECK_EQ_INT(json_object_set_new(json_array_get(arr, 1), "color", json_string("red")), 0);
    n = 77;
    CHECK_EQ_INT(codec_decode_batch(b, NREP, out, 3, &n, err, sizeof err), TPC_ERR_INVALID);
    CHECK_EQ_INT(n, 0);
    CHECK(strstr(err, "messages[1]: phase1b: unknown field 'color'") != NULL);
    json_decref(b);

    /* An empty batch is a batch. */
    b = codec_encode_batch(NULL, 0);
    CHECK(b != NULL);
    n = 77;
    CHECK_EQ_INT(codec_decode_batch(b, NREP, NULL, 0, &n, err, sizeof err), TPC_OK);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(json_object_set_new(b, "extra", json_true()), 0);
    CHECK_EQ_INT(codec_decode_batch(b, NREP, NULL, 0, &n, err, sizeof err), TPC_ERR_INVALID);
    CHECK(strstr(err, "batch: unknown field 'extra'") != NULL);
    json_decref(b);

    /* Shapes that are not a batch. */
    b = json_pack("{s:{}}", "messages");
    CHECK_EQ_INT(codec_decode_batch(b, NREP, out, 3, &n, err, sizeof err), TPC_ERR_INVALID);
    json_decref(b);
    b = json_pack("[]");
    CHECK_EQ_INT(codec_decode_batch(b, NREP, out, 3, &n, err, sizeof err), TPC_ERR_INVALID);
    json_decref(b);
    b = json_pack("{s:[]}", "msgs");
    CHECK_EQ_INT(codec_decode_batch(b, NREP, out, 3, &n, err, sizeof err), TPC_ERR_INVALID);
    CHECK(strstr(err, "unknown field 'msgs'") != NULL);
    json_decref(b);

    /* CODEC_MAX_BATCH is the limit however much room the caller has. */
    many = calloc(CODEC_MAX_BATCH + 1, sizeof *many);
    CHECK(many != NULL);
    if (!many)
        return;
    for (i = 0; i <= CODEC_MAX_BATCH; i++)
        many[i] = msgs[i % 3];
    CHECK(codec_encode_batch(many, CODEC_MAX_BATCH + 1) == NULL);
    b = codec_encode_batch(many, CODEC_MAX_BATCH);
    CHECK(b != NULL);
    n = 77;
    CHECK_EQ_INT(codec_decode_batch(b, NREP, many, CODEC_MAX_BATCH + 1, &n, err, sizeof err),
                 TPC_OK);
    CHECK_EQ_INT(n, CODEC_MAX_BATCH);
    arr = json_object_get(b, "messages");
    CHECK_EQ_INT(json_array_append_new(arr, codec_encode(&msgs[0])), 0);
    n = 77;
    CHECK_EQ_INT(codec_decode_batch(b, NREP, many, CODEC_MAX_BATCH + 1, &n, err, sizeof err),
                 TPC_ERR_TOO_BIG);
    CHECK_EQ_INT(n, 0);
    json_decref(b);

    /* Invalid messages are not encoded into a batch. */
    in[1].txid[0] = '\0';
    CHECK(codec_encode_batch(in, 3) == NULL);
    free(many);
}

/* A 64-bit LCG (Knuth's MMIX constants): fixed seed, the same run every time. */
static uint64_t fuzz_state = 0x5eed1234abcdULL;

static uint32_t fuzz_next(uint32_t bound)
{
    fuzz_state = fuzz_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)((fuzz_state >> 33) % bound);
}

#define FUZZ_ITERATIONS 2000
#define FUZZ_BUF        1024

/* One random edit of buf[0..*len): flip a bit, overwrite, insert or delete a byte, or insert
 * a JSON fragment, so that mutants get past the parser into the decoder now and then. */
static void fuzz_mutate(char *buf, size_t *len)
{
    static const char *const frags[] = {
        "0",    "-1", "1.0", "9007199254740993", "\"\"",  "\"a\"",    "[]",           "{}", "null",
        "true", ",",  ":",   "\\u0000",          "[0,0]", ",\"x\":1", "\"prepared\"", "5",  "33"};
    size_t pos = *len ? fuzz_next((uint32_t)*len) : 0;
    const char *f;
    size_t flen;

    switch (fuzz_next(5)) {
    case 0:
        if (*len)
            buf[pos] = (char)(buf[pos] ^ (1 << fuzz_next(8)));
        break;
    case 1:
        if (*len)
            buf[pos] = (char)fuzz_next(256);
        break;
    case 2:
        if (*len + 1 < FUZZ_BUF) {
            memmove(buf + pos + 1, buf + pos, *len - pos);
            buf[pos] = "{}[]\",:0123456789-. \\a"[fuzz_next(22)];
            (*len)++;
        }
        break;
    case 3:
        if (*len) {
            memmove(buf + pos, buf + pos + 1, *len - pos - 1);
            (*len)--;
        }
        break;
    default:
        f = frags[fuzz_next(sizeof frags / sizeof frags[0])];
        flen = strlen(f);
        if (*len + flen < FUZZ_BUF) {
            memmove(buf + pos + flen, buf + pos, *len - pos);
            memcpy(buf + pos, f, flen);
            *len += flen;
        }
        break;
    }
}

static void test_fuzz(void)
{
    struct msg msgs[MAX_VALID], m, back;
    char *texts[MAX_VALID];
    size_t n = valid_messages(msgs), i, edits;
    int bad_accept = 0, bad_error = 0, accepted = 0, it;

    for (i = 0; i < n; i++) {
        texts[i] = NULL;
        CHECK_EQ_INT(codec_encode_text(&msgs[i], &texts[i], NULL), TPC_OK);
        CHECK(texts[i] != NULL && strlen(texts[i]) < FUZZ_BUF);
    }
    for (it = 0; it < FUZZ_ITERATIONS; it++) {
        const char *src = texts[(size_t)it % n];
        /* Exactly len bytes, not NUL-terminated, so ASan sees any read past the end. */
        char *buf = malloc(FUZZ_BUF);
        char *copy;
        size_t len, nedits;
        uint32_t nrep = 1 + fuzz_next(TPC_MAX_REPLICAS);
        char err[256] = "";
        enum tpc_err rc;

        if (!buf || !src)
            break;
        len = strlen(src);
        memcpy(buf, src, len);
        nedits = 1 + fuzz_next(4);
        for (edits = 0; edits < nedits; edits++)
            fuzz_mutate(buf, &len);
        copy = malloc(len ? len : 1);
        if (!copy) {
            free(buf);
            break;
        }
        memcpy(copy, buf, len);
        rc = codec_decode_text(copy, len, nrep, &m, err, sizeof err);
        if (rc == TPC_OK) {
            char *again = NULL;

            accepted++;
            /* Whatever decodes is valid, encodes, and decodes to itself. */
            if (msg_validate(&m, nrep, NULL, 0) != TPC_OK ||
                codec_encode_text(&m, &again, NULL) != TPC_OK ||
                codec_decode_text(again, strlen(again), nrep, &back, NULL, 0) != TPC_OK ||
                !msg_same(&m, &back)) {
                bad_accept++;
                fprintf(stderr, "  fuzz accepted bad input: %.*s\n", (int)len, copy);
            }
            free(again);
        } else if (!err[0] || strchr(err, '\n')) {
            bad_error++;
            fprintf(stderr, "  fuzz: bad error text for: %.*s\n", (int)len, copy);
        }
        free(copy);
        free(buf);
    }
    CHECK_EQ_INT(bad_accept, 0);
    CHECK_EQ_INT(bad_error, 0);
    /* Some mutants (whitespace, equal digits) must survive, or the loop tests only the parser. */
    CHECK(accepted > 0);
    for (i = 0; i < n; i++)
        free(texts[i]);
}

void run_tests(void)
{
    test_round_trip();
    test_wire_form();
    test_rejections();
    test_size_limit();
    test_embedded_nul();
    test_read_only();
    test_born();
    test_encode_invalid();
    test_batch();
    test_fuzz();
}

CHECK_MAIN("codec")
