/*
 * participant_heuristic.c - an operator's heuristic decisions (participant.h, resource.h rule
 * 7): made on a prepared branch whose replicas are lost for good, recorded as heuristic, listed,
 * reloaded at start, and reconciled with the chosen outcome once the replicas tell it.
 */
#include <stdlib.h>
#include <string.h>

#include "branch.h"
#include "codec.h"
#include "log.h"
#include "participant_int.h"

#define HEURISTICS_LIST_MAX 1000

/* A decision as the API shows it: pending until the chosen outcome is learned, then
 * confirmed (the same) or mixed (the other one). */
static json_t *heuristic_json(const struct store_heuristic *h)
{
    const char *state = h->learned == TPC_OUTCOME_NONE ? "pending"
                        : h->learned == h->heuristic   ? "confirmed"
                                                       : "mixed";
    json_t *j =
        json_pack("{s:s,s:s,s:s,s:I}", "txid", h->txid, "heuristic", msg_outcome_name(h->heuristic),
                  "state", state, "at_ms", (json_int_t)h->at_ms);

    if (!j)
        return NULL;
    json_object_set_new(j, "outcome",
                        h->learned == TPC_OUTCOME_NONE ? json_null()
                                                       : json_string(msg_outcome_name(h->learned)));
    json_object_set_new(j, "participants",
                        h->parts.n ? codec_encode_parts(&h->parts) : json_array());
    if (h->born)
        json_object_set_new(j, "born", json_integer((json_int_t)h->born));
    return j;
}

json_t *participant_heuristics(struct participant *p, struct api_error *e)
{
    struct store_heuristic *list = calloc(HEURISTICS_LIST_MAX, sizeof(*list));
    json_t *a;
    int n, i;

    memset(e, 0, sizeof(*e));
    n = list ? store_heuristics(p->store, false, NULL, NULL, list, HEURISTICS_LIST_MAX) : -1;
    if (n < 0) {
        free(list);
        api_error_set(e, "storage_error", "cannot read the heuristic decisions");
        return NULL;
    }
    a = json_array();
    for (i = 0; i < n; i++)
        json_array_append_new(a, heuristic_json(&list[i]));
    free(list);
    return json_pack("{s:o}", "heuristics", a);
}

struct heur_arg {
    const char *txid;
    enum tpc_outcome o;
};

static enum tpc_err heuristic_event(struct participant *p, const void *arg, char *err,
                                    size_t errlen)
{
    const struct heur_arg *a = arg;

    return resource_heuristic(&p->eng.drv, a->txid, a->o, err, errlen);
}

/* The decision recorded for txid, as the API shows it; NULL when none is. */
static json_t *recorded(struct participant *p, const char *txid)
{
    struct store_heuristic h;

    return store_heuristics(p->store, false, txid, NULL, &h, 1) == 1 ? heuristic_json(&h) : NULL;
}

json_t *participant_heuristic(struct participant *p, const char *txid, enum tpc_outcome o,
                              struct api_error *e)
{
    struct branch *b = (struct branch *)table_get(&p->branches, txid, false);
    struct heur_arg a = {txid, o};
    struct msg none;
    char err[256];
    enum tpc_err rc;
    json_t *r = NULL;

    memset(e, 0, sizeof(*e));
    if (b)
        pthread_mutex_lock(&b->mu);
    rc = participant_ask(p, b, txid, heuristic_event, &a, &none, err, sizeof(err));
    if (b) {
        pthread_mutex_unlock(&b->mu);
        table_put(&p->branches, &b->e);
    }
    if (rc == TPC_ERR_STATE)
        api_error_set(e, "not_prepared", "%s: a heuristic decision is only for a prepared branch",
                      err);
    else if (rc)
        participant_call_error(e, rc, err, txid);
    else if (!(r = recorded(p, txid)))
        api_error_set(e, "storage_error", "branch %s: the heuristic decision was not recorded",
                      txid);
    return r;
}

/* Every one not reconciled, page by page in txid order: each must be in memory, asking the
 * replicas, until it is (resource_outcome acks one that storage holds without reconciling). */
enum tpc_err participant_reload_heuristics(struct participant *p, char *err, size_t errlen)
{
    struct store_heuristic *list = calloc(HEURISTICS_LIST_MAX, sizeof(*list));
    struct nodert_box box = {0};
    char after[TPC_TXID_MAX + 1] = "";
    enum tpc_err rc = list ? TPC_OK : TPC_ERR_NOMEM;
    long total = 0;
    int n = HEURISTICS_LIST_MAX, i;

    while (!rc && n == HEURISTICS_LIST_MAX) {
        n = store_heuristics(p->store, true, NULL, after, list, HEURISTICS_LIST_MAX);
        if (n < 0) {
            rc = tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot read the heuristic decisions");
            break;
        }
        for (i = 0; i < n && !rc; i++) {
            nodert_enter(&p->eng.rt, &box);
            rc = resource_load_heuristic(&p->eng.drv, list[i].txid, &list[i].parts, list[i].born,
                                         list[i].heuristic);
            nodert_leave(&p->eng.rt);
            if (rc)
                tpc_errbuf_set(err, errlen, rc, "cannot reload heuristic branch %s", list[i].txid);
        }
        if (n > 0)
            snprintf(after, sizeof(after), "%s", list[n - 1].txid);
        total += n;
    }
    nodert_box_free(&box);
    free(list);
    if (!rc && total > 0)
        log_warn("%ld heuristic decision(s) not reconciled yet: asking the replicas for the "
                 "chosen outcome",
                 total);
    return rc;
}
