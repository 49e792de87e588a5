/*
 * store_records.c - the participant's bookkeeping records (see store.h): how a branch ended,
 * the prepared records reloaded at start, and what is forgotten, and when (DESIGN.md section
 * 11): ended branches of transactions older than the horizon, a batch at a time.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "groupcommit.h"
#include "horizon_store.h"
#include "log.h"
#include "store_int.h"

/* ---- what ended, what is prepared ---- */

static const char sql_ended[] = "SELECT outcome, vote, born FROM tpc_outcome WHERE txid = ?";

static enum tpc_value value_from(const char *s)
{
    if (s && strcmp(s, "prepared") == 0)
        return TPC_VALUE_PREPARED;
    if (s && strcmp(s, "aborted") == 0)
        return TPC_VALUE_ABORTED;
    return TPC_VALUE_NONE;
}

enum tpc_err store_ended(struct store *st, const char *txid, enum rm_state *state,
                         enum tpc_value *vote, uint64_t *born)
{
    sqlite3_stmt *s = NULL;
    enum tpc_err rc = TPC_OK;
    int r;

    *state = RM_NONE;
    *vote = TPC_VALUE_NONE;
    *born = 0;
    pthread_mutex_lock(&st->rmu); /* the reader: never behind a statement or an fsync */
    if (!(s = stmt_get(&st->rstmts, sql_ended))) {
        rc = TPC_ERR_IO;
        goto out;
    }
    sqlite3_bind_text(s, 1, txid, -1, SQLITE_STATIC);
    r = sqlite3_step(s);
    if (r == SQLITE_ROW) {
        *state = store_end_state((const char *)sqlite3_column_text(s, 0));
        *vote = value_from((const char *)sqlite3_column_text(s, 1));
        *born = (uint64_t)sqlite3_column_int64(s, 2);
    } else if (r != SQLITE_DONE) {
        rc = TPC_ERR_IO;
    }
out:
    stmt_done(s);
    pthread_mutex_unlock(&st->rmu);
    return rc;
}

static enum tpc_err parse_parts(const char *text, struct msg_parts *parts)
{
    json_t *a = text ? json_loads(text, 0, NULL) : NULL;
    enum tpc_err rc = a ? codec_decode_parts(a, parts, NULL, 0) : TPC_ERR_INVALID;

    json_decref(a);
    return rc;
}

enum tpc_err store_load_prepared(struct store *st, struct store_prepared **list, size_t *n,
                                 char *err, size_t errlen)
{
    sqlite3_stmt *s = NULL;
    struct store_prepared *items = NULL, *bigger;
    size_t count = 0, cap = 0, i;
    enum tpc_err rc = TPC_OK;

    *list = NULL;
    *n = 0;
    pthread_mutex_lock(&st->mu);
    if (sqlite3_prepare_v2(st->db, "SELECT txid, changeset, participants, born FROM tpc_prepared",
                           -1, &s, NULL) != SQLITE_OK) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_IO, "sqlite: %s", sqlite3_errmsg(st->db));
        goto out;
    }
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *txid = (const char *)sqlite3_column_text(s, 0);
        const void *cs = sqlite3_column_blob(s, 1);
        int cs_len = sqlite3_column_bytes(s, 1);
        struct store_prepared *p;

        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            bigger = realloc(items, cap * sizeof(*items));
            if (!bigger) {
                rc = TPC_ERR_NOMEM;
                goto out;
            }
            items = bigger;
        }
        p = &items[count];
        memset(p, 0, sizeof(*p));
        if (!txid || msg_copy_str(p->txid, TPC_TXID_MAX, txid) != TPC_OK ||
            parse_parts((const char *)sqlite3_column_text(s, 2), &p->parts) != TPC_OK) {
            rc = tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "corrupt prepared record %s",
                                txid ? txid : "?");
            goto out;
        }
        if (cs_len > 0) {
            p->changeset = malloc((size_t)cs_len);
            if (!p->changeset) {
                rc = TPC_ERR_NOMEM;
                goto out;
            }
            memcpy(p->changeset, cs, (size_t)cs_len);
            p->changeset_len = cs_len;
        }
        p->born = (uint64_t)sqlite3_column_int64(s, 3);
        count++;
    }
out:
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->mu);
    if (rc) {
        for (i = 0; i < count; i++)
            free(items[i].changeset);
        free(items);
        return rc;
    }
    *list = items;
    *n = count;
    return TPC_OK;
}

static enum tpc_outcome outcome_from(const char *s)
{
    return !s                                                             ? TPC_OUTCOME_NONE
           : !strcmp(s, "committed") || !strcmp(s, "heuristic_committed") ? TPC_OUTCOME_COMMITTED
                                                                          : TPC_OUTCOME_ABORTED;
}

int store_heuristics(struct store *st, bool pending, const char *txid, const char *after,
                     struct store_heuristic *out, size_t cap)
{
    sqlite3_stmt *s = NULL;
    int n = 0, r = SQLITE_DONE;

    pthread_mutex_lock(&st->rmu);
    if (sqlite3_prepare_v2(st->rdb,
                           /* outcome is "heuristic_" and the outcome: substr(outcome, 11)
                            * compares with learned (a mixed one differs) */
                           "SELECT txid, outcome, learned, participants, born, decided_at FROM "
                           "tpc_outcome WHERE outcome LIKE 'heuristic%' AND (?1 = 0 OR learned IS "
                           "NULL) AND (?3 IS NULL OR txid = ?3) AND (?4 IS NULL OR txid > ?4) "
                           "ORDER BY CASE WHEN ?4 IS NULL THEN (learned IS NULL OR "
                           "substr(outcome, 11) <> learned) END DESC, CASE WHEN ?4 IS NULL THEN "
                           "decided_at END DESC, txid LIMIT ?2",
                           -1, &s, NULL) != SQLITE_OK) {
        n = -1;
        goto out;
    }
    sqlite3_bind_int(s, 1, pending);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)cap);
    if (txid)
        sqlite3_bind_text(s, 3, txid, -1, SQLITE_STATIC);
    if (after)
        sqlite3_bind_text(s, 4, after, -1, SQLITE_STATIC);
    while ((size_t)n < cap && (r = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_heuristic *h = &out[n];
        const char *id = (const char *)sqlite3_column_text(s, 0);

        memset(h, 0, sizeof(*h));
        if (!id || msg_copy_str(h->txid, TPC_TXID_MAX, id) != TPC_OK) {
            r = SQLITE_CORRUPT; /* never written so: no row is skipped (a page stays whole) */
            break;
        }
        h->heuristic = outcome_from((const char *)sqlite3_column_text(s, 1));
        h->learned = outcome_from((const char *)sqlite3_column_text(s, 2));
        if (parse_parts((const char *)sqlite3_column_text(s, 3), &h->parts) != TPC_OK)
            h->parts.n = 0;
        h->born = (uint64_t)sqlite3_column_int64(s, 4);
        h->at_ms = sqlite3_column_int64(s, 5);
        n++;
    }
    if ((size_t)n < cap && r != SQLITE_DONE)
        n = -1; /* a read that failed half-way is no answer */
out:
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->rmu);
    return n;
}

void store_heuristic_counts(struct store *st, int64_t *pending, int64_t *mixed)
{
    sqlite3_stmt *s = NULL;

    *pending = *mixed = 0;
    pthread_mutex_lock(&st->rmu);
    /* outcome is "heuristic_" and the outcome: substr(outcome, 11) compares with learned */
    if (sqlite3_prepare_v2(st->rdb,
                           "SELECT total(learned IS NULL), total(learned IS NOT NULL AND "
                           "substr(outcome, 11) <> learned) FROM tpc_outcome WHERE outcome LIKE "
                           "'heuristic%'",
                           -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
        *pending = sqlite3_column_int64(s, 0);
        *mixed = sqlite3_column_int64(s, 1);
    }
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->rmu);
}

/* ---- forgetting ended branches ---- */

/* Ended branches each collection forgets at most, so that its group stays short. */
#define STORE_GC_BATCH 5000

uint64_t store_horizon(struct store *st)
{
    return horizon_store_now(&st->horizon);
}

struct collect_job {
    struct gc_job g;
    struct store *st;
    uint64_t horizon;
    int64_t removed;
};

/* Inside the committer's transaction: the horizon durable first, then what is below it: a
 * branch that ended before the horizon and whose transaction was born before it (a prepare of it is
 * refused from then on, resource.h rule 6). A heuristic decision is never forgotten: it is the
 * operator's, and the audit's. One whose born is not known (begun and ended without a
 * leader that said it) goes a retention after it ended, by this clock, unless it voted prepared:
 * then it stays (a prepare of it is never refused, and must get the same vote). */
static bool run_collect(struct gc_job *g, sqlite3 *db)
{
    struct collect_job *c = g->arg;
    int64_t h = (int64_t)c->horizon;
    sqlite3_stmt *s = NULL;
    bool ok = horizon_store_save(db, "tpc_meta", c->horizon);

    /* Raised before anything is deleted under it (a higher horizon only refuses more). */
    horizon_store_raised(&c->st->horizon, c->horizon);

    if (ok && sqlite3_prepare_v2(db,
                                 "DELETE FROM tpc_outcome WHERE rowid IN (SELECT rowid FROM "
                                 "tpc_outcome WHERE decided_at < ?1 AND ((born > 0 AND born < ?1) "
                                 "OR (born = 0 AND vote <> 'prepared')) "
                                 "AND outcome NOT LIKE 'heuristic%' LIMIT ?2)",
                                 -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, h);
        sqlite3_bind_int64(s, 2, STORE_GC_BATCH);
        ok = sqlite3_step(s) == SQLITE_DONE;
        c->removed = sqlite3_changes(db);
    } else {
        ok = false;
    }
    sqlite3_finalize(s);
    if (!ok)
        snprintf(g->err, sizeof(g->err), "collecting: %s", sqlite3_errmsg(db));
    return ok;
}

int64_t store_collect(struct store *st)
{
    struct collect_job c = {.st = st, .horizon = store_horizon(st)};
    struct gc_job *gp = &c.g;

    c.g.run = run_collect;
    c.g.arg = &c;
    groupcommit_submit_all(st->gc, &gp, 1);
    if (c.g.rc) {
        log_error("store: %s", c.g.err);
        return -1;
    }
    return c.removed;
}
