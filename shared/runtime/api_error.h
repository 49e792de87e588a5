/*
 * api_error.h - the one model of an error answer over HTTP, and the one table
 * of error codes: every code either program may answer with, its HTTP status,
 * who sends it and when. http-api.md's section "Error codes" is this table;
 * tests/lint/error_codes.py checks the two against each other, and against
 * the code, both ways.
 *
 * Inside the programs, functions return enum tpc_err (tpc_err.h); where a
 * call is answered over HTTP, the failure becomes a struct api_error with one
 * of these codes, and its status always comes from the table.
 */
#ifndef TPC_API_ERROR_H
#define TPC_API_ERROR_H

#include <stdarg.h>

#include <stddef.h>

struct api_error {
    int status;       /* 0: no error */
    const char *code; /* static: one of the table's */
    char message[512];
};

struct api_error_code {
    const char *code;
    int status;
    const char *who;  /* "coordinator", "participant" or "both" */
    const char *when; /* one line, as in http-api.md */
};

/* Sets e to code with its status from the table (an unknown code: 500 internal). */
void api_error_set(struct api_error *e, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same with a va_list (for functions of their own that take a format). */
void api_error_vset(struct api_error *e, const char *code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* The status of code, or 0 when the table has no such code. */
int api_error_status(const char *code);
/* The table; *n entries. */
const struct api_error_code *api_error_table(size_t *n);

#endif
