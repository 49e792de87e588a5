/*
 * codec.h - JSON encoding of protocol messages (jansson), with strict decoding.
 *
 * Wire form of one message: a JSON object holding "type" and "txid" and exactly
 * the fields its type uses (see the table in msg.h):
 *
 *   "instance"        string, participant name (STATUS: absent for a client)
 *   "acceptor"        integer replica id
 *   "ballot"          {"round": integer, "replica": integer}
 *   "accepted_ballot" ballot; PHASE1B only, present iff "value" is present
 *   "promised"        ballot; REJECT only
 *   "value"           "prepared" | "aborted" (PHASE1B: absent when nothing accepted)
 *   "outcome"         "committed" | "aborted"
 *   "accepted_by"     array of distinct acceptor ids (VOTE)
 *   "participants"    array of distinct participant names (PHASE1B, STATUS: may be absent)
 *
 * Example: {"type":"phase2a","txid":"t1","instance":"bank-a",
 *           "ballot":{"round":0,"replica":0},"value":"prepared",
 *           "participants":["bank-a","bank-b"]}
 *
 * Decoding is strict: an unknown or duplicate key, a key the type does not
 * use, a missing key, a wrong JSON type, a non-integer or out-of-range number,
 * an over-long string: each is an error with a one-line reason, never a guess
 * and never a crash. Every decoded message has passed msg_validate().
 *
 * A batch is {"messages": [ message, ... ]} with at most CODEC_MAX_BATCH entries.
 */
#ifndef TPC_CODEC_H
#define TPC_CODEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"

#define CODEC_MAX_TEXT  (1024 * 1024) /* bytes of JSON text accepted by the text decoders */
#define CODEC_MAX_BATCH 1024          /* messages in one batch */

/*
 * Encodes m as a new JSON object; the caller owns the returned reference
 * (json_decref). NULL when out of memory or when m is not valid
 * (msg_validate with TPC_MAX_REPLICAS).
 */
json_t *codec_encode(const struct msg *m);

/*
 * Decodes the object j (borrowed) into *m, which is zeroed first. Acceptor ids
 * and ballot replica ids must be below n_replicas. On error *m is unspecified
 * and err holds the reason.
 */
enum tpc_err codec_decode(const json_t *j, uint32_t n_replicas, struct msg *m, char *err,
                          size_t errlen);

/* Encodes m as compact JSON text; *out is malloc'd, NUL-terminated, and owned by the caller. */
enum tpc_err codec_encode_text(const struct msg *m, char **out, size_t *outlen);

/* Parses len bytes of JSON text (rejecting duplicate keys, trailing data, len > CODEC_MAX_TEXT). */
enum tpc_err codec_decode_text(const char *buf, size_t len, uint32_t n_replicas, struct msg *m,
                               char *err, size_t errlen);

/* {"messages": [...]} of n messages; caller owns the result. NULL on error. */
json_t *codec_encode_batch(const struct msg *msgs, size_t n);

/*
 * Decodes a batch object into out[0..*n) (cap entries available; more than
 * cap or CODEC_MAX_BATCH is TPC_ERR_TOO_BIG). All or nothing: on error *n is 0.
 */
enum tpc_err codec_decode_batch(const json_t *j, uint32_t n_replicas, struct msg *out, size_t cap,
                                size_t *n, char *err, size_t errlen);

/* A participant list as a JSON array of names (caller owns it); NULL if invalid. */
json_t *codec_encode_parts(const struct msg_parts *parts);
/* A JSON array of 1..TPC_MAX_PARTICIPANTS distinct valid names (j borrowed). */
enum tpc_err codec_decode_parts(const json_t *j, struct msg_parts *parts, char *err, size_t errlen);

#endif
