/*
 * sqlite_reader.h - a second, read-only connection to a WAL database, for reads that must
 * not wait for the writer: in WAL mode a reader sees the last committed state and neither
 * blocks on nor is blocked by the writer's transaction or its fsync. The drivers' reads
 * (what ended, what is decided) run under the driver's lock, so they go through one of these.
 */
#ifndef TPC_SQLITE_READER_H
#define TPC_SQLITE_READER_H

#include <sqlite3.h>
#include <stddef.h>

#include "tpc_err.h"

/* Opens path read-only (the database and its WAL must exist: open the writer first). */
enum tpc_err sqlite_reader_open(const char *path, sqlite3 **out, char *err, size_t errlen);

#endif
