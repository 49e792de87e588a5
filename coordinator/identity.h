/*
 * identity.h - whose a replica's state file is.
 *
 * An acceptor is safe only while it remembers what it promised and accepted; a replica that
 * starts on an empty file (a wiped disk, a wrong path) would answer as one that never promised
 * anything, and could let a second value be chosen. So a replica's state file is made once, by
 * `coordinator --init` (identity_init), and carries the cluster's id and the replica's; a
 * replica starts only on a file that carries its own (identity_check). docs/DESIGN.md says how
 * to replace a replica that lost its file.
 */
#ifndef TPC_COORD_IDENTITY_H
#define TPC_COORD_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "tpc_err.h"

#define IDENTITY_CLUSTER_MAX 100 /* characters in a cluster id */

/* Makes path (and its directory, if missing) the state file of replica self of cluster, with
 * nothing else in it, durably. TPC_ERR_STATE when path already exists: it is never made twice. */
enum tpc_err identity_init(const char *path, const char *cluster, uint32_t self, char *err,
                           size_t errlen);

/* TPC_OK when path is the state file of replica self of cluster; TPC_ERR_STATE, with err
 * saying what happened and what to do, when it is missing, was not made by identity_init, or
 * belongs to another replica or cluster; TPC_ERR_IO when it cannot be read. */
enum tpc_err identity_check(const char *path, const char *cluster, uint32_t self, char *err,
                            size_t errlen);

#endif
