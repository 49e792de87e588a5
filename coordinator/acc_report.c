/*
 * acc_report.c - what an operator's report reads of a replica's store (acc_store.h): one
 * transaction's acceptor records and its decision's told mark. Rare reads, on the read
 * connection: prepared per call, nothing cached.
 */
#include <string.h>

#include "acc_store_int.h"

size_t acc_store_records(struct acc_store *s, const char *txid, struct acc_record_view *out,
                         size_t cap)
{
    sqlite3_stmt *st = NULL;
    size_t n = 0;

    pthread_mutex_lock(&s->rmu);
    if (sqlite3_prepare_v2(s->rdb,
                           "SELECT instance, mbal_round, mbal_replica, bal_round, bal_replica, "
                           "val FROM acceptor WHERE txid = ? ORDER BY instance",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, txid, -1, SQLITE_STATIC);
        while (n < cap && sqlite3_step(st) == SQLITE_ROW) {
            struct acc_record_view *v = &out[n];
            const char *val = (const char *)sqlite3_column_text(st, 5);

            memset(v, 0, sizeof(*v));
            if (msg_copy_str(v->instance, TPC_NAME_MAX, (const char *)sqlite3_column_text(st, 0)) !=
                TPC_OK)
                continue;
            v->promised.round = (uint64_t)sqlite3_column_int64(st, 1);
            v->promised.replica = (uint32_t)sqlite3_column_int64(st, 2);
            v->accepted.round = (uint64_t)sqlite3_column_int64(st, 3);
            v->accepted.replica = (uint32_t)sqlite3_column_int64(st, 4);
            v->value = !val                       ? TPC_VALUE_NONE
                       : !strcmp(val, "prepared") ? TPC_VALUE_PREPARED
                       : !strcmp(val, "aborted")  ? TPC_VALUE_ABORTED
                                                  : TPC_VALUE_NONE;
            n++;
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->rmu);
    return n;
}

bool acc_store_told(struct acc_store *s, const char *txid, int64_t *decided_at)
{
    sqlite3_stmt *st = NULL;
    bool told = false;

    *decided_at = 0;
    pthread_mutex_lock(&s->rmu);
    if (sqlite3_prepare_v2(s->rdb, "SELECT told, decided_at FROM decision WHERE txid = ?", -1, &st,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, txid, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            told = sqlite3_column_int64(st, 0) != 0;
            *decided_at = sqlite3_column_int64(st, 1);
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->rmu);
    return told;
}
