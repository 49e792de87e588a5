/*
 * acc_collect.c - what a replica's store forgets, and when (DESIGN.md section 11, acc_store.h's
 * ACC_OP_COLLECT): below the horizon, a batch per table at a time.
 */
#include <stdio.h>

#include "acc_store_int.h"

/* Rows each collection removes from a table at most, so that its group stays short. */
#define ACC_GC_BATCH 5000

/* Runs `sql`, whose ?1 is the limit and ?2 a time; adds the rows it removed to *n. */
static bool gc_delete(sqlite3 *db, const char *sql, int64_t t, int64_t *n)
{
    sqlite3_stmt *st = NULL;
    bool ok = false;

    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, ACC_GC_BATCH);
        sqlite3_bind_int64(st, 2, t);
        ok = sqlite3_step(st) == SQLITE_DONE;
        *n += sqlite3_changes(db);
    }
    sqlite3_finalize(st);
    return ok;
}

/* Forgets what is older than the horizon (DESIGN.md section 11). The horizon is made durable
 * first, in the same transaction: what is deleted below it is refused below it for good. */
bool acc_collect(struct acc_store *s, struct acc_op *op, sqlite3 *db, char *gerr, size_t gl)
{
    int64_t h = (int64_t)acc_store_horizon(s), n = 0;
    bool ok = horizon_store_save(db, "meta", (uint64_t)h);

    /* Raised in memory before anything is deleted under it: a higher horizon only refuses
     * more, so a clock that steps back meanwhile cannot let a message in below it. */
    horizon_store_raised(&s->horizon, (uint64_t)h);

    /* Records of transactions that expired undecided here: no message about them is taken. */
    ok = ok && gc_delete(db,
                         "DELETE FROM acceptor WHERE rowid IN (SELECT rowid FROM acceptor WHERE "
                         "born > 0 AND born < ?2 LIMIT ?1)",
                         h, &n);
    /* Decisions, but those this replica still owes participants (told = 0 with a list). One
     * without born (from an older version, or learned without it) is judged by when it was
     * recorded, a retention later, so that a clock ahead of the leader's does not matter. */
    ok = ok && gc_delete(db,
                         "DELETE FROM decision WHERE txid IN (SELECT txid FROM decision WHERE "
                         "born > 0 AND born < ?2 AND (told <> 0 OR participants IS NULL) "
                         "LIMIT ?1)",
                         h, &n);
    ok = ok && gc_delete(db,
                         "DELETE FROM decision WHERE txid IN (SELECT txid FROM decision WHERE "
                         "born = 0 AND decided_at < ?2 AND (told <> 0 OR participants IS NULL) "
                         "LIMIT ?1)",
                         h - s->retention_ms, &n);
    /* A client's txid, a retention after its transaction expired here: by then it is
     * forgotten everywhere whose clock is less than a retention off, so that a transaction
     * begun again with it meets nothing of the first one (acceptor.h rule 4 and 5 refuse the
     * rest). */
    ok = ok && gc_delete(db,
                         "DELETE FROM begun WHERE txid IN (SELECT txid FROM begun WHERE "
                         "begun_at < ?2 LIMIT ?1)",
                         h - s->retention_ms, &n);
    if (!ok) {
        snprintf(gerr, gl, "collecting: %s", sqlite3_errmsg(db));
        return false;
    }
    op->round = (uint64_t)n;
    return true;
}
