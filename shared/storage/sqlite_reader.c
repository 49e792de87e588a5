/* sqlite_reader.c - see sqlite_reader.h. */
#include "sqlite_reader.h"

enum tpc_err sqlite_reader_open(const char *path, sqlite3 **out, char *err, size_t errlen)
{
    sqlite3 *db = NULL;

    *out = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        enum tpc_err rc = tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot open %s to read: %s",
                                         path, db ? sqlite3_errmsg(db) : "out of memory");

        sqlite3_close(db);
        return rc;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, 5000); /* only while a checkpoint resets the WAL */
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
    *out = db;
    return TPC_OK;
}
