/*
 * fuzz_participant_api.c - libFuzzer target: a participant's HTTP API (participant/api.c) on
 * any method, path and body, as its server hands them over: the routing of paths (txids
 * included), the JSON bodies of exec, prepare and outcomes, and the calls behind them on a
 * real participant (its database in a temporary directory, no replicas).
 *
 * An input is one byte of flags (bit 0: POST or GET; bit 1: the right token or none), the
 * path up to a newline, and the body. Every answer must be a JSON object with a status of
 * 200..599, and an error answer must be {"error": {"code", "message"}} with a code of the
 * table (http-api.md, "Error codes") and that code's status.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "api_error.h"
#include "http_server.h"
#include "participant.h"

#include "fuzz_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct participant *p;

static void setup(void)
{
    static char db[64], schema_path[64]; /* the participant keeps these pointers */
    struct participant_config cfg = {0};
    char err[256];

    fuzz_database_dir("CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);"
                      "INSERT INTO accounts VALUES (1, 100), (2, 100);",
                      db, schema_path);
    snprintf(cfg.name, sizeof(cfg.name), "bank-a");
    cfg.db_path = db;
    cfg.schema_file = schema_path;
    cfg.token = "fuzz-token";
    cfg.lock_timeout_ms = 1;
    cfg.branch_timeout_ms = 60000;
    cfg.vote_timeout_ms = 10;
    cfg.doubt_ms = 60000;
    cfg.max_statements = 16;
    cfg.max_rows = 100;
    cfg.statement_ms = 100;
    cfg.retention_ms = 3600000;
    check(participant_open(&cfg, &p, err, sizeof(err)) == TPC_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_request req = {0};
    struct http_response res = {0};
    const uint8_t *nl;
    char *path, *body;
    size_t n_path;

    if (size < 1)
        return 0;
    if (!p)
        setup();
    nl = memchr(data + 1, '\n', size - 1);
    n_path = nl ? (size_t)(nl - data - 1) : size - 1;
    if (n_path > 512)
        return 0;
    path = strndup((const char *)data + 1, n_path);
    body = nl ? strndup((const char *)nl + 1, size - n_path - 2) : strdup("");
    if (!path || !body || !strcmp(path, "/v1/admin/faults")) {
        free(path);
        free(body);
        return 0; /* network faults would only slow the next inputs down */
    }
    req.method = data[0] & 1 ? "POST" : "GET";
    req.path = path;
    req.body = body;
    req.body_len = strlen(body);
    req.authorization = data[0] & 2 ? "Bearer fuzz-token" : NULL;
    api_handle(p, &req, &res);
    fuzz_check_answer(res.status, res.body, NULL);
    json_decref(res.body);
    free(path);
    free(body);
    return 0;
}
