/*
 * fsync_vfs.h - a SQLite VFS shim that counts fsyncs (xSync calls) and
 * otherwise forwards every call to the default VFS. It makes "fsyncs per
 * transaction" a measured figure, not an estimate.
 */
#ifndef TPC_FSYNC_VFS_H
#define TPC_FSYNC_VFS_H

#include <stdint.h>

#include "metrics.h"

#define FSYNC_VFS_NAME "tpc-fsync-count"

/* Registers the shim (once; thread-safe). Returns a SQLite result code. */
int fsync_vfs_register(void);
uint64_t fsync_vfs_count(void);
/* Appends the fsync counter and latency histogram to t. */
void fsync_vfs_metrics(struct metrics_text *t);

#endif
