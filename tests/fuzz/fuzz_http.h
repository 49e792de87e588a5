/*
 * fuzz_http.h - what the HTTP API fuzz targets (fuzz_participant_api, fuzz_client_api) check of
 * every answer.
 */
#ifndef TPC_FUZZ_HTTP_H
#define TPC_FUZZ_HTTP_H

#include <jansson.h>
#include <string.h>

#include "api_error.h"
#include "fuzz_util.h"

/*
 * An HTTP answer as http-api.md says every one is: a JSON object with a status of 200..599; an
 * error {"error": {"code", "message"}} whose code is in the table with that status. extra: a key
 * the error object may carry beside "error" (NULL: none).
 */
static inline void fuzz_check_answer(long status, json_t *body, const char *extra)
{
    const struct api_error_code *codes;
    const char *code;
    size_t i, n;
    json_t *e;

    check(status >= 200 && status <= 599);
    check(json_is_object(body));
    if (status < 400)
        return;
    e = json_object_get(body, "error");
    check(json_is_object(e) &&
          (json_object_size(body) == 1 ||
           (extra && json_object_size(body) == 2 && json_object_get(body, extra))));
    code = json_string_value(json_object_get(e, "code"));
    check(code && json_is_string(json_object_get(e, "message")));
    codes = api_error_table(&n);
    for (i = 0; i < n && strcmp(codes[i].code, code); i++)
        ;
    check(i < n && codes[i].status == status);
}

#endif
