/*
 * tpc_err.h - the project's one error type.
 *
 * Every fallible function returns enum tpc_err; 0 (TPC_OK) is success. Detail
 * that the code alone cannot carry goes into a caller-owned message buffer
 * (see tpc_errbuf_set()). Library code never exits; only main() decides to stop.
 */
#ifndef TPC_ERR_H
#define TPC_ERR_H

#include <stddef.h>

enum tpc_err {
    TPC_OK = 0,
    TPC_ERR_NOMEM,    /* an allocation failed */
    TPC_ERR_INVALID,  /* malformed input: bad JSON, missing or unknown field, wrong type */
    TPC_ERR_RANGE,    /* well-formed input with a value out of its allowed range */
    TPC_ERR_TOO_BIG,  /* input larger than its hard cap */
    TPC_ERR_PROTOCOL, /* a message that breaks a protocol rule (e.g. two values in one ballot) */
    TPC_ERR_STATE,    /* the request is not allowed in the current state */
    TPC_ERR_IO,       /* an operating-system or storage call failed */
    TPC_ERR_BUSY,     /* a step on the same object is on its way: ask again once it is done */
    TPC_ERR_EXPIRED,  /* about a transaction older than this node's horizon: it is forgotten */
};

/* Static, never NULL, for any value (unknown values give a generic text). */
const char *tpc_strerror(enum tpc_err err);

/*
 * Formats detail into buf (of size len; buf may be NULL or len 0, then nothing
 * is written) and returns err, so a failure reads as one line:
 *     return tpc_errbuf_set(buf, len, TPC_ERR_RANGE, "round %llu too large", r);
 */
enum tpc_err tpc_errbuf_set(char *buf, size_t len, enum tpc_err err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
