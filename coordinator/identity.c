/* identity.c - see identity.h. The identity is a table of its own in the state file. */
#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char create_sql[] = "CREATE TABLE identity(key TEXT PRIMARY KEY, value TEXT NOT NULL)";
static const char insert_sql[] =
    "INSERT INTO identity VALUES ('cluster', ?1), ('replica', ?2), ('initialized_at', ?3)";

/* The directory part of path ("." when none), in dir. */
static void dir_of(const char *path, char *dir, size_t len)
{
    const char *slash = strrchr(path, '/');

    if (!slash)
        snprintf(dir, len, ".");
    else if (slash == path)
        snprintf(dir, len, "/");
    else
        snprintf(dir, len, "%.*s", (int)(slash - path), path);
}

/* mkdir -p dir. */
static int make_dirs(const char *dir)
{
    char buf[1024];
    size_t i, n = strlen(dir);

    if (n >= sizeof(buf))
        return -1;
    memcpy(buf, dir, n + 1);
    for (i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -1;
        buf[i] = dir[i];
    }
    return 0;
}

/* fsync of a directory, so that a file just made in it stays after a crash. */
static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY), rc;

    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

enum tpc_err identity_init(const char *path, const char *cluster, uint32_t self, char *err,
                           size_t errlen)
{
    char dir[1024], replica[16], at[32];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    enum tpc_err rc = TPC_OK;
    struct stat sb;

    if (stat(path, &sb) == 0)
        return tpc_errbuf_set(err, errlen, TPC_ERR_STATE,
                              "%s already exists: a replica's state is initialized once, and this "
                              "one holds state already (nothing was changed)",
                              path);
    dir_of(path, dir, sizeof(dir));
    if (make_dirs(dir) != 0)
        return tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot make the directory %s: %s", dir,
                              strerror(errno));
    snprintf(replica, sizeof(replica), "%" PRIu32, self);
    snprintf(at, sizeof(at), "%lld", (long long)time(NULL));
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, create_sql, NULL, NULL, NULL) != SQLITE_OK) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot make %s: %s", path,
                            db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    if (sqlite3_prepare_v2(db, insert_sql, -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, cluster, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, replica, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 3, at, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_DONE ||
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot write %s: %s", path,
                            sqlite3_errmsg(db));
        goto out;
    }
out:
    sqlite3_finalize(st);
    if (db && sqlite3_close(db) != SQLITE_OK && rc == TPC_OK)
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot close %s", path);
    if (rc == TPC_OK && sync_dir(dir) != 0)
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot sync the directory %s: %s", dir,
                            strerror(errno));
    return rc;
}

/* The identity's value for key, copied to out ("" when there is none). */
static int read_key(sqlite3 *db, const char *key, char *out, size_t len)
{
    sqlite3_stmt *st = NULL;
    int rc;

    out[0] = '\0';
    rc = sqlite3_prepare_v2(db, "SELECT value FROM identity WHERE key = ?", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            snprintf(out, len, "%s", (const char *)sqlite3_column_text(st, 0));
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    return rc;
}

enum tpc_err identity_check(const char *path, const char *cluster, uint32_t self, char *err,
                            size_t errlen)
{
    char have_cluster[IDENTITY_CLUSTER_MAX + 1], have_replica[16], want_replica[16];
    sqlite3 *db = NULL;
    enum tpc_err rc = TPC_OK;
    struct stat sb;

    if (stat(path, &sb) != 0)
        return tpc_errbuf_set(
            err, errlen, TPC_ERR_STATE,
            "replica %" PRIu32 " has no state at %s. A new replica's state is made once, with "
            "`coordinator --config FILE --id %" PRIu32 " --init`. If this replica ran before and "
            "its state is gone (a wiped or replaced disk, another data_dir or --db), do not just "
            "initialize it again: an acceptor that forgot its promises can let a transaction be "
            "decided both ways. See \"Replacing a replica\" in docs/DESIGN.md",
            self, path, self);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_IO, "cannot open %s: %s", path,
                            db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(db, 5000);
    if (read_key(db, "cluster", have_cluster, sizeof(have_cluster)) != SQLITE_OK ||
        read_key(db, "replica", have_replica, sizeof(have_replica)) != SQLITE_OK ||
        !have_cluster[0] || !have_replica[0]) {
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_STATE,
                            "%s is not a replica's state made by `coordinator --init` (%s): "
                            "check data_dir and --db",
                            path, sqlite3_errmsg(db));
        goto out;
    }
    snprintf(want_replica, sizeof(want_replica), "%" PRIu32, self);
    if (strcmp(have_cluster, cluster) != 0 || strcmp(have_replica, want_replica) != 0)
        rc = tpc_errbuf_set(err, errlen, TPC_ERR_STATE,
                            "%s is the state of replica %s of cluster \"%s\", not of replica "
                            "%" PRIu32 " of cluster \"%s\": check --id, --db, data_dir and the "
                            "cluster file's cluster_id and replicas",
                            path, have_replica, have_cluster, self, cluster);
out:
    sqlite3_close(db);
    return rc;
}
