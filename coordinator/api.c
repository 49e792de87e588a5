/*
 * api.c - the coordinator replica's HTTP endpoints (http-api.md):
 *
 *   GET  /health                              (no token)
 *   GET  /ui                                  the dashboard (no token; served by the server)
 *   GET  /v1/cluster                          every node probed   client token
 *   POST /v1/transactions                     begin               client token
 *   GET  /v1/transactions?state=S             list                client token
 *   POST /v1/transactions/oneshot             run and commit      client token
 *   GET  /v1/transactions/{txid}              status              client token
 *   POST /v1/transactions/{txid}/exec         statements          client token
 *   POST /v1/transactions/{txid}/commit       commit              client token
 *   POST /v1/transactions/{txid}/abort        abort               client token
 *   POST /v1/transactions/{txid}/resolve      abort at any replica client token
 *   GET  /v1/transactions/{txid}?detail=1     what this replica holds of it
 *   POST /v1/paxos                            protocol messages   cluster token
 */
#include "api.h"

#include <string.h>

#include "codec.h"
#include "coord.h"
#include "netfault.h"

static void answer(struct http_response *res, json_t *body, int status, const struct api_error *e)
{
    if (body)
        http_respond(res, status ? status : 200, body);
    else
        http_respond_api_error(res, e);
}

static json_t *object_body(const struct http_request *req, bool empty_ok, struct http_response *res)
{
    json_error_t jerr;
    json_t *j;

    if (req->body_len == 0 && empty_ok)
        return json_object();
    j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(j)) {
        http_respond_error(res, "bad_json", "body is not a JSON object%s%s", j ? "" : ": ",
                           j ? "" : jerr.text);
        json_decref(j);
        return NULL;
    }
    return j;
}

static void paxos(struct coord *c, const struct http_request *req, struct http_response *res)
{
    const struct coord_config *cfg = coord_config(c);
    struct msg *in = NULL;
    char err[256];
    size_t n = 0;
    json_t *j;

    if (!http_authorized(req, cfg->cluster_token)) {
        http_respond_error(res, "unauthorized", "missing or wrong cluster token");
        return;
    }
    j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL);
    n = json_array_size(json_object_get(j, "messages"));
    in = calloc(n ? n : 1, sizeof(*in)); /* per request: no large buffer in every thread */
    if (!in) {
        http_respond_error(res, "internal", "out of memory");
    } else if (!j || codec_decode_batch(j, cfg->n_replicas, in, n ? n : 1, &n, err, sizeof(err)) !=
                         TPC_OK) {
        http_respond_error(res, "bad_message", "%s", j ? err : "body is not JSON");
    } else {
        coord_paxos(c, in, n, http_defer(req));
    }
    json_decref(j);
    free(in);
}

void api_handle(void *ctx, const struct http_request *req, struct http_response *res)
{
    struct coord *c = ctx;
    struct api_error e;
    char txid[TPC_TXID_MAX + 1];
    const char *path = req->path, *rest, *slash, *detail;
    bool get = !strcmp(req->method, "GET"), post = !strcmp(req->method, "POST");
    json_t *body = NULL, *r = NULL;
    int status = 0;

    memset(&e, 0, sizeof(e));
    if (!strcmp(path, "/health")) {
        if (get)
            http_respond(res, 200, coord_health(c));
        else
            http_respond_error(res, "method_not_allowed", "use GET");
        return;
    }
    if (!strcmp(path, "/v1/admin/faults")) {
        netfault_http(req, res, coord_config(c)->cluster_token);
        return;
    }
    if (!strcmp(path, "/v1/paxos")) {
        if (post)
            paxos(c, req, res);
        else
            http_respond_error(res, "method_not_allowed", "use POST");
        return;
    }
    if (!strcmp(path, "/v1/cluster")) {
        if (!http_authorized(req, coord_config(c)->client_token))
            http_respond_error(res, "unauthorized",
                               "missing or wrong token (Authorization: Bearer ...)");
        else if (!get)
            http_respond_error(res, "method_not_allowed", "use GET");
        else
            coord_cluster(c, http_defer(req));
        return;
    }
    if (strncmp(path, "/v1/transactions", 16) != 0 || (path[16] && path[16] != '/')) {
        http_respond_error(res, "not_found", "no endpoint %s", path);
        return;
    }
    if (!http_authorized(req, coord_config(c)->client_token)) {
        http_respond_error(res, "unauthorized",
                           "missing or wrong token (Authorization: Bearer ...)");
        return;
    }
    if (!path[16] || !strcmp(path + 16, "/")) {
        if (post) {
            if ((body = object_body(req, true, res)))
                coord_begin(c, body, http_defer(req));
        } else if (get) {
            r = coord_list(c, http_query(req, "state"), &status, &e);
        } else {
            http_respond_error(res, "method_not_allowed", "use GET or POST");
            return;
        }
        goto done;
    }
    rest = path + 17;
    if (!strcmp(rest, "oneshot")) {
        if (!post) {
            http_respond_error(res, "method_not_allowed", "use POST");
            return;
        }
        if ((body = object_body(req, false, res)))
            coord_oneshot(c, body, http_defer(req));
        goto done;
    }
    if (!http_path_txid(rest, txid, &slash, res))
        return;
    if (!slash) {
        if (!get) {
            http_respond_error(res, "method_not_allowed", "use GET");
            return;
        }
        detail = http_query(req, "detail");
        if (detail && strcmp(detail, "0") && strcmp(detail, "1")) {
            http_respond_error(res, "bad_request", "detail is 0 or 1");
            return;
        }
        r = detail && !strcmp(detail, "1") ? coord_detail(c, txid, &status, &e)
                                           : coord_status(c, txid, &status, &e);
        goto done;
    }
    if (strcmp(slash, "/exec") && strcmp(slash, "/commit") && strcmp(slash, "/abort") &&
        strcmp(slash, "/resolve")) {
        http_respond_error(res, "not_found", "no endpoint %s", path);
        return;
    }
    if (!post) {
        http_respond_error(res, "method_not_allowed", "use POST");
        return;
    }
    if (!strcmp(slash, "/exec")) {
        if ((body = object_body(req, false, res)))
            coord_exec(c, txid, body, http_defer(req));
    } else if (!strcmp(slash, "/commit")) {
        enum coord_wait wait;
        const char *key;
        json_t *v;

        if (!(body = object_body(req, true, res)))
            return;
        json_object_foreach(body, key, v)
        {
            if (strcmp(key, "wait") != 0) {
                http_respond_error(res, "bad_request", "unknown key \"%s\"", key);
                json_decref(body);
                return;
            }
        }
        if (coord_wait_parse(json_object_get(body, "wait"), &wait, &e) == TPC_OK)
            coord_commit(c, txid, wait, http_defer(req));
    } else if (!strcmp(slash, "/resolve")) {
        json_t *o;

        if (!(body = object_body(req, true, res)))
            return;
        o = json_object_get(body, "outcome");
        if (json_object_size(body) > (o ? 1u : 0u) ||
            (o && (!json_is_string(o) || strcmp(json_string_value(o), "aborted") != 0))) {
            http_respond_error(res, "bad_request",
                               "resolve takes {} or {\"outcome\": \"aborted\"}: a replica ends an "
                               "undecided transaction by choosing aborted through Paxos, never "
                               "commits one by fiat");
            json_decref(body);
            return;
        }
        coord_resolve(c, txid, http_defer(req));
    } else {
        /* No key is taken; a body, if any, is still a JSON object (it changes nothing else). */
        if (!(body = object_body(req, true, res)))
            return;
        if (json_object_size(body)) {
            http_respond_error(res, "bad_request", "abort takes no keys (an empty body or {})");
            json_decref(body);
            return;
        }
        coord_abort(c, txid, http_defer(req));
    }
done:
    if (r || e.status)
        answer(res, r, status, &e);
    json_decref(body);
}
