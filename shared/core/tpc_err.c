/* tpc_err.c - text for the project's error codes. */
#include "tpc_err.h"

#include <stdarg.h>
#include <stdio.h>

const char *tpc_strerror(enum tpc_err err)
{
    switch (err) {
    case TPC_OK:
        return "ok";
    case TPC_ERR_NOMEM:
        return "out of memory";
    case TPC_ERR_INVALID:
        return "invalid input";
    case TPC_ERR_RANGE:
        return "value out of range";
    case TPC_ERR_TOO_BIG:
        return "input too large";
    case TPC_ERR_PROTOCOL:
        return "protocol violation";
    case TPC_ERR_STATE:
        return "not allowed in this state";
    case TPC_ERR_IO:
        return "input/output error";
    case TPC_ERR_BUSY:
        return "busy: a step on the same object is on its way";
    case TPC_ERR_EXPIRED:
        return "older than the horizon: forgotten";
    }
    return "unknown error";
}

enum tpc_err tpc_errbuf_set(char *buf, size_t len, enum tpc_err err, const char *fmt, ...)
{
    va_list ap;

    if (buf && len > 0) {
        va_start(ap, fmt);
        vsnprintf(buf, len, fmt, ap);
        va_end(ap);
    }
    return err;
}
