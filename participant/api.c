/*
 * api.c - routes:
 *   GET  /health                          liveness and counters (no token needed)
 *   POST /v1/branches/{txid}/exec         run statements in the branch
 *   POST /v1/branches/{txid}/prepare      vote (body: a "prepare" protocol message)
 *   POST /v1/branches/{txid}/commit       apply the commit outcome
 *   POST /v1/branches/{txid}/abort        apply the abort outcome
 *   POST /v1/outcomes                     apply many outcomes (their writes share an fsync)
 *   GET  /v1/branches/{txid}              the branch's state
 *   GET  /v1/prepared                     every prepared branch
 * Input is validated here: nothing malformed reaches participant.c.
 */
#include "api.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "netfault.h"
#include "options.h"
#include "participant.h"

static void respond(struct http_response *res, json_t *body, const struct api_error *e)
{
    if (body)
        http_respond(res, 200, body);
    else
        http_respond_api_error(res, e);
}

static json_t *parse_body(const struct http_request *req, struct http_response *res)
{
    json_error_t jerr;
    json_t *j;

    if (req->body_len == 0) {
        http_respond_error(res, "bad_json", "a JSON object body is required");
        return NULL;
    }
    j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j || !json_is_object(j)) {
        http_respond_error(res, "bad_json", "body is not a JSON object%s%s", j ? "" : ": ",
                           j ? "" : jerr.text);
        json_decref(j);
        return NULL;
    }
    return j;
}

/*
 * POST /v1/outcomes: {"outcomes": [{"txid": "t1", "outcome": "committed" | "aborted"}, ...]}.
 * Checked whole before anything is applied: one bad item refuses the batch.
 */
static void do_outcomes(struct participant *p, const struct http_request *req,
                        struct http_response *res)
{
    json_t *body = parse_body(req, res), *list, *item;
    struct participant_outcome_item *items = NULL;
    struct api_error e;
    size_t i, n;

    if (!body)
        return;
    list = json_object_get(body, "outcomes");
    n = json_is_array(list) ? json_array_size(list) : 0;
    if (!n || n > API_OUTCOMES_MAX || json_object_size(body) != 1) {
        http_respond_error(res, "bad_request",
                           "the body is {\"outcomes\": [{\"txid\": ..., \"outcome\": "
                           "\"committed\" | \"aborted\"}, ...]} with 1..%d items",
                           API_OUTCOMES_MAX);
        goto out;
    }
    items = calloc(n, sizeof(*items));
    if (!items) {
        http_respond_error(res, "internal", "out of memory");
        goto out;
    }
    json_array_foreach(list, i, item)
    {
        json_t *t = json_object_get(item, "txid"), *born = json_object_get(item, "born");
        const char *o = json_string_value(json_object_get(item, "outcome"));

        if (!json_is_object(item) || json_object_size(item) != 2 + (born != NULL) ||
            !json_is_string(t) ||
            !msg_txid_from(json_string_value(t), json_string_length(t), items[i].txid) || !o ||
            (strcmp(o, "committed") && strcmp(o, "aborted")) ||
            (born && (!json_is_integer(born) || json_integer_value(born) < 1 ||
                      (uint64_t)json_integer_value(born) > MSG_BORN_MAX))) {
            http_respond_error(res, "bad_request",
                               "outcomes[%zu]: {\"txid\": 1..%d characters of [A-Za-z0-9_-], "
                               "\"outcome\": \"committed\" | \"aborted\", \"born\"?: ms since "
                               "1970}",
                               i, TPC_TXID_MAX);
            goto out;
        }
        items[i].born = born ? (uint64_t)json_integer_value(born) : 0;
        items[i].outcome =
            strcmp(o, "committed") == 0 ? TPC_OUTCOME_COMMITTED : TPC_OUTCOME_ABORTED;
    }
    respond(res, participant_outcomes(p, items, n, &e), &e);
out:
    free(items);
    json_decref(body);
}

/* Checks one {"sql": "...", "params": [...]} statement; returns why not, or NULL. */
static const char *bad_statement(json_t *s)
{
    const char *key;
    json_t *v;

    if (!json_is_object(s))
        return "each statement is an object {\"sql\": ..., \"params\": [...]}";
    json_object_foreach(s, key, v)
    {
        if (strcmp(key, "sql") != 0 && strcmp(key, "params") != 0)
            return "a statement has only the keys \"sql\" and \"params\"";
    }
    v = json_object_get(s, "sql");
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        strlen(json_string_value(v)) != json_string_length(v))
        return "\"sql\" must be a non-empty string";
    v = json_object_get(s, "params");
    if (v && !json_is_array(v))
        return "\"params\" must be an array";
    return NULL;
}

static void do_exec(struct participant *p, const char *txid, const struct http_request *req,
                    struct http_response *res)
{
    struct api_error e;
    json_t *body, *list = NULL, *seq;
    const char *key, *why = NULL, *tq = http_query(req, "timeout_ms");
    const char *bq = http_query(req, "born");
    struct participant_exec_req er = {0, 0, NULL, 0};
    char *text = NULL;
    json_t *v;
    size_t i;

    if (tq && options_parse_u32(tq, 1, 86400000, &er.timeout_ms) != 0) {
        http_respond_error(res, "bad_request", "timeout_ms is 1..86400000");
        return;
    }
    if (bq && options_parse_u64(bq, 1, MSG_BORN_MAX, &er.born) != 0) {
        http_respond_error(res, "bad_request", "born is 1..%llu (milliseconds since 1970)",
                           (unsigned long long)MSG_BORN_MAX);
        return;
    }
    body = parse_body(req, res);
    if (!body)
        return;
    seq = json_object_get(body, "seq");
    if (seq && (!json_is_integer(seq) || json_integer_value(seq) < 1 ||
                json_integer_value(seq) > UINT32_MAX)) {
        http_respond_error(res, "bad_request", "\"seq\" is an integer 1..%u", UINT32_MAX);
        json_decref(body);
        return;
    }
    er.seq = seq ? (uint32_t)json_integer_value(seq) : 0;
    json_object_del(body, "seq");
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "statements") != 0 && strcmp(key, "sql") != 0 && strcmp(key, "params") != 0)
            why = "the body has \"statements\", or \"sql\" and \"params\"";
    }
    if (!why && json_object_get(body, "statements")) {
        list = json_incref(json_object_get(body, "statements"));
        if (json_object_get(body, "sql") || json_object_get(body, "params"))
            why = "give either \"statements\" or \"sql\", not both";
        else if (!json_is_array(list) || json_array_size(list) == 0)
            why = "\"statements\" must be a non-empty array";
    } else if (!why) {
        list = json_array();
        if (list)
            json_array_append(list, body);
    }
    for (i = 0; !why && list && i < json_array_size(list); i++)
        why = bad_statement(json_array_get(list, i));
    er.text = text = list && !why ? json_dumps(list, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (why || !list || !text) {
        http_respond_error(res, "bad_request", "%s", why ? why : "out of memory");
    } else {
        v = participant_exec(p, txid, list, &er, &e);
        respond(res, v, &e);
    }
    free(text);
    json_decref(list);
    json_decref(body);
}

static void do_prepare(struct participant *p, const char *txid, const struct http_request *req,
                       struct http_response *res)
{
    const struct participant_config *cfg = participant_config(p);
    struct api_error e;
    struct msg m;
    char err[256];
    const char *relay;

    if (codec_decode_text(req->body, req->body_len, cfg->n_replicas ? cfg->n_replicas : 1, &m, err,
                          sizeof(err)) != TPC_OK) {
        http_respond_error(res, "bad_message", "%s", err);
        return;
    }
    if (m.type != MSG_PREPARE || strcmp(m.txid, txid) != 0) {
        http_respond_error(res, "bad_message", "expected a prepare message for transaction %s",
                           txid);
        return;
    }
    relay = http_query(req, "relay");
    if (relay && strcmp(relay, "1") != 0 && strcmp(relay, "0") != 0) {
        http_respond_error(res, "bad_request", "relay is 0 or 1");
        return;
    }
    respond(res, participant_prepare(p, &m, relay && !strcmp(relay, "1"), &e), &e);
}

/* POST /v1/branches/{txid}/heuristic {"outcome": "committed" | "aborted"}: an operator's. */
static void do_heuristic(struct participant *p, const char *txid, const struct http_request *req,
                         struct http_response *res)
{
    json_t *body = parse_body(req, res), *o;
    const char *s;
    struct api_error e;

    if (!body)
        return;
    o = json_object_get(body, "outcome");
    s = json_string_value(o);
    if (json_object_size(body) != 1 || !s || (strcmp(s, "committed") && strcmp(s, "aborted"))) {
        http_respond_error(res, "bad_request",
                           "the body is {\"outcome\": \"committed\"} or {\"outcome\": "
                           "\"aborted\"}");
    } else {
        respond(
            res,
            participant_heuristic(
                p, txid, strcmp(s, "committed") ? TPC_OUTCOME_ABORTED : TPC_OUTCOME_COMMITTED, &e),
            &e);
    }
    json_decref(body);
}

void api_handle(void *ctx, const struct http_request *req, struct http_response *res)
{
    struct participant *p = ctx;
    struct api_error e;
    char txid[TPC_TXID_MAX + 1], action[16];
    const char *rest, *slash;
    bool get = strcmp(req->method, "GET") == 0, post = strcmp(req->method, "POST") == 0;

    if (strcmp(req->path, "/health") == 0) {
        if (get)
            http_respond(res, 200, participant_health(p));
        else
            http_respond_error(res, "method_not_allowed", "use GET");
        return;
    }
    if (!strcmp(req->path, "/v1/admin/faults")) {
        netfault_http(req, res, participant_config(p)->token);
        return;
    }
    if (strncmp(req->path, "/v1/", 4) != 0) {
        http_respond_error(res, "not_found", "no endpoint %s", req->path);
        return;
    }
    if (!http_authorized(req, participant_config(p)->token)) {
        http_respond_error(res, "unauthorized",
                           "missing or wrong token (Authorization: Bearer ...)");
        return;
    }
    if (strcmp(req->path, "/v1/prepared") == 0) {
        if (get)
            http_respond(res, 200, participant_list_prepared(p));
        else
            http_respond_error(res, "method_not_allowed", "use GET");
        return;
    }
    if (strcmp(req->path, "/v1/heuristics") == 0) {
        if (get)
            respond(res, participant_heuristics(p, &e), &e);
        else
            http_respond_error(res, "method_not_allowed", "use GET");
        return;
    }
    if (strcmp(req->path, "/v1/outcomes") == 0) {
        if (post)
            do_outcomes(p, req, res);
        else
            http_respond_error(res, "method_not_allowed", "use POST");
        return;
    }
    if (strncmp(req->path, "/v1/branches/", 13) != 0) {
        http_respond_error(res, "not_found", "no endpoint %s", req->path);
        return;
    }
    rest = req->path + 13;
    if (!http_path_txid(rest, txid, &slash, res))
        return;
    if (!slash) {
        if (get)
            respond(res, participant_status(p, txid, &e), &e);
        else
            http_respond_error(res, "method_not_allowed", "use GET");
        return;
    }
    if (strlen(slash + 1) >= sizeof(action)) {
        http_respond_error(res, "not_found", "no endpoint %s", req->path);
        return;
    }
    snprintf(action, sizeof(action), "%s", slash + 1);
    if (strcmp(action, "exec") && strcmp(action, "prepare") && strcmp(action, "commit") &&
        strcmp(action, "abort") && strcmp(action, "heuristic")) {
        http_respond_error(res, "not_found", "no endpoint %s", req->path);
        return;
    }
    if (!post) {
        http_respond_error(res, "method_not_allowed", "use POST");
        return;
    }
    if (strcmp(action, "exec") == 0)
        do_exec(p, txid, req, res);
    else if (strcmp(action, "prepare") == 0)
        do_prepare(p, txid, req, res);
    else if (strcmp(action, "heuristic") == 0)
        do_heuristic(p, txid, req, res);
    else
        respond(res,
                participant_outcome(p, txid,
                                    strcmp(action, "commit") == 0 ? TPC_OUTCOME_COMMITTED
                                                                  : TPC_OUTCOME_ABORTED,
                                    &e),
                &e);
}

size_t api_pool_of(void *ctx, const struct http_request *req)
{
    size_t n = strlen(req->path);

    (void)ctx;
    return n > 5 && !strcmp(req->path + n - 5, "/exec") ? API_POOL_STATEMENTS : API_POOL_PROTOCOL;
}
