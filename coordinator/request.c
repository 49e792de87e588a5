/* request.c - see request.h. */
#include "request.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

const char *const request_state_names[4] = {"active", "preparing", "in_doubt", "decided"};

const char *request_state_word(const struct replica_view *v)
{
    return v->state == REPLICA_DECIDED ? msg_outcome_name(v->outcome)
                                       : request_state_names[v->state];
}

json_t *request_parts_json(const struct msg_parts *parts)
{
    json_t *j = parts && parts->n ? codec_encode_parts(parts) : NULL;

    return j ? j : json_array();
}

json_t *request_outcome_json(const char *txid, enum tpc_outcome o, const struct msg_parts *parts)
{
    json_t *j = json_pack("{s:s,s:s,s:s}", "txid", txid, "state", msg_outcome_name(o), "outcome",
                          msg_outcome_name(o));

    if (j)
        json_object_set_new(j, "participants", request_parts_json(parts));
    return j;
}

/* The decision of a transaction no longer (or never) in memory, as an answer. */
json_t *request_ended(struct coord *c, const char *txid, int *status, struct api_error *e)
{
    struct msg_parts parts;
    uint64_t born;
    enum tpc_outcome o;

    if (acc_store_decision(c->store, txid, &o, &parts, NULL) == TPC_OK && o != TPC_OUTCOME_NONE) {
        /* A decision learned before this version kept no list; its acceptor's records do. */
        if (!parts.n && acc_store_parts(c->store, txid, &parts, &born) != TPC_OK)
            parts.n = 0;
        *status = 200;
        return request_outcome_json(txid, o, &parts);
    }
    api_error_set(e, "unknown_transaction",
                  "no transaction %s at this replica: never begun, or forgotten (a transaction "
                  "is kept for retention_ms, %lld ms, from its begin)",
                  txid, (long long)c->cfg.retention_ms);
    return NULL;
}

/* ---- requests ---- */

/* request.h: counted and listed while its call or write is out. */
void request_out_add(struct creq *q)
{
    struct coord *c = q->c;

    q->out_prev = NULL;
    q->out_next = c->outs;
    if (c->outs)
        c->outs->out_prev = q;
    c->outs = q;
    c->out++;
}

void request_out_back(struct creq *q)
{
    struct coord *c = q->c;

    if (q->out_prev)
        q->out_prev->out_next = q->out_next;
    else
        c->outs = q->out_next;
    if (q->out_next)
        q->out_next->out_prev = q->out_prev;
    q->out_prev = q->out_next = NULL;
    c->out--;
}

struct creq *request_new(struct coord *c, enum creq_kind kind, struct http_later *later)
{
    struct creq *q = calloc(1, sizeof(*q));

    if (!q) {
        http_answer(
            later, 500,
            json_pack("{s:{s:s,s:s}}", "error", "code", "internal", "message", "out of memory"));
        return NULL;
    }
    q->c = c;
    q->kind = kind;
    q->later = later;
    q->started = metrics_now_ns();
    return q;
}

static void request_free(struct creq *q)
{
    json_decref(q->branches);
    json_decref(q->first);
    json_decref(q->results);
    json_decref(q->failed);
    json_decref(q->answers);
    free(q->call.response);
    for (size_t i = 0; i < q->n_probes; i++)
        free(q->probes[i].call.response);
    free(q->probes);
    free(q->text);
    free(q->in);
    free(q->out);
    free(q);
}

/* Answers q with body (stolen) and status, or with *e when body is NULL; frees q. */
void request_reply(struct creq *q, int status, json_t *body, const struct api_error *e)
{
    struct http_response res = {500, NULL};

    if (body)
        http_respond(&res, status ? status : 200, body);
    else
        http_respond_api_error(&res, e);
    if (q->kind == CREQ_COMMIT || q->kind == CREQ_ONESHOT)
        metrics_hist_since(&q->c->commit_time, q->started);
    if (q->later) /* NULL: given up at the stop, the server answered it */
        http_answer_res(q->later, &res);
    else
        json_decref(res.body);
    request_free(q);
}

void request_error(struct creq *q, const char *code, const char *fmt, ...)
{
    struct api_error e;
    va_list ap;

    va_start(ap, fmt);
    api_error_vset(&e, code, fmt, ap);
    va_end(ap);
    request_reply(q, 0, NULL, &e);
}

static void op_done(struct acc_op *op)
{
    struct creq *q = op->arg;

    loop_post(q->c->loop, &q->back);
}

void request_post_op(struct creq *q, loop_fn back)
{
    q->op.done = op_done;
    q->op.arg = q;
    q->back.fn = back;
    q->back.arg = q;
    request_out_add(q);
    acc_store_post(q->c->store, &q->op);
}
