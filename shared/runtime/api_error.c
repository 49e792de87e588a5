/* api_error.c - see api_error.h. Keep the table and http-api.md's "Error codes" in step. */
#include "api_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct api_error_code table[] = {
    {"bad_json", 400, "both", "the body is not a JSON object"},
    {"bad_request", 400, "both", "a key or value of the body or query is not as documented"},
    {"bad_txid", 400, "both", "a transaction id that is not 1..64 characters of [A-Za-z0-9_-]"},
    {"bad_message", 400, "both", "not a valid protocol message or batch"},
    {"bad_state", 400, "coordinator", "a listing's state is not one of the five"},
    {"unknown_participant", 400, "coordinator", "a participant not in the cluster file"},
    {"too_many_participants", 400, "coordinator", "a 33rd participant in one transaction"},
    {"not_a_participant", 400, "participant", "a prepare whose list does not name it"},
    {"sql_error", 400, "participant", "SQL that does not compile or run"},
    {"too_many_statements", 400, "participant", "more statements in one call than allowed"},
    {"too_many_rows", 400, "participant", "a result with more rows than allowed"},
    {"statement_timeout", 400, "participant", "statements ran longer than allowed"},
    {"unauthorized", 401, "both", "a missing or wrong token"},
    {"forbidden_statement", 403, "participant", "a statement a branch may not run"},
    {"not_found", 404, "both", "an unknown path"},
    {"unknown_transaction", 404, "coordinator", "a transaction this replica does not know"},
    {"unknown_branch", 404, "participant", "a branch this participant does not know"},
    {"method_not_allowed", 405, "both", "a method the path does not take"},
    {"transaction_forgotten", 410, "participant", "a transaction older than the retention"},
    {"txid_exists", 409, "coordinator", "begin with a txid that is known already"},
    {"transaction_not_active", 409, "coordinator", "exec on a transaction committing or ended"},
    {"transaction_ended", 409, "both", "a statement for a transaction that ended"},
    {"commit_in_progress", 409, "coordinator", "abort while a commit is under way"},
    {"lock_timeout", 409, "participant", "a lock stayed held by another transaction"},
    {"constraint_violation", 409, "participant", "a constraint failed"},
    {"branch_not_active", 409, "participant", "a statement for a prepared or ending branch"},
    {"exec_out_of_order", 409, "participant", "an exec's seq is not the branch's next one"},
    {"exec_seq_reused", 409, "participant", "an exec's seq is the last one's, other statements"},
    {"participants_conflict", 409, "participant", "a prepare with another participant list"},
    {"not_prepared", 409, "participant", "commit of a branch that is not prepared"},
    {"already_committed", 409, "participant", "abort of a branch being committed"},
    {"outcome_conflict", 409, "participant", "the other outcome is recorded already"},
    {"branch_busy", 409, "participant", "another call is preparing or ending the branch"},
    {"body_too_large", 413, "both", "a body over the cap"},
    {"internal", 500, "both", "out of memory, or a failure that should not happen"},
    {"storage_error", 500, "participant", "a durable write failed (nothing changed)"},
    {"participant_unavailable", 502, "coordinator", "no answer from the participant"},
    {"undecided", 503, "coordinator", "no decision within the commit timeout yet"},
    {"shutting_down", 503, "both", "the process is stopping; a request it had not answered yet"},
};

const struct api_error_code *api_error_table(size_t *n)
{
    *n = sizeof(table) / sizeof(table[0]);
    return table;
}

int api_error_status(const char *code)
{
    size_t i;

    for (i = 0; code && i < sizeof(table) / sizeof(table[0]); i++)
        if (strcmp(table[i].code, code) == 0)
            return table[i].status;
    return 0;
}

void api_error_set(struct api_error *e, const char *code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    api_error_vset(e, code, fmt, ap);
    va_end(ap);
}

void api_error_vset(struct api_error *e, const char *code, const char *fmt, va_list ap)
{
    size_t i;

    e->status = 500;
    e->code = "internal";
    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strcmp(table[i].code, code) == 0) {
            e->status = table[i].status;
            e->code = table[i].code;
            break;
        }
    }
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    /* A message may quote what a client sent (a path, a txid): printable ASCII only, so that
     * it is valid JSON text whatever the client's bytes (found by fuzz_participant_api). */
    for (i = 0; e->message[i]; i++)
        if ((unsigned char)e->message[i] < 0x20 || (unsigned char)e->message[i] >= 0x7f)
            e->message[i] = '?';
}
