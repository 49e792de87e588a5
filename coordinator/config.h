/*
 * config.h - a coordinator replica's configuration: one JSON file describes
 * the whole cluster, so every replica starts with the same file plus its id;
 * flags override single values. Example (all keys but "replicas" optional):
 *
 *   {"replicas": ["http://127.0.0.1:7101", "http://127.0.0.1:7102", "http://127.0.0.1:7103"],
 *    "participants": {"bank-a": "http://127.0.0.1:7001", "bank-b": "http://127.0.0.1:7002"},
 *    "cluster_id": "bank-cluster", "data_dir": "data",
 *    "client_token_file": "client.token", "cluster_token_file": "cluster.token",
 *    "retention_ms": 3600000,
 *    "tls": {"cert": "certs/node.pem", "key": "certs/node.key", "ca": "certs/ca.pem"},
 *    "timeouts_ms": {"prepare": 2000, "commit": 10000, "transaction": 60000,
 *                    "retry": 50, "retry_max": 2000, "stale": 3000}}
 *
 * Replica i listens on the host and port of replicas[i] unless --listen and
 * --port say otherwise, and keeps its state in <data_dir>/replica-<i>.db, made once by --init
 * (identity.h). cluster_id names the cluster in that file; by default it is a hash of the
 * replica URLs, so that a state file of another cluster is refused.
 */
#ifndef TPC_COORD_CONFIG_H
#define TPC_COORD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "msg.h"
#include "tpc_err.h"

#define CONFIG_URL_MAX 256

struct coord_config {
    uint32_t self;
    uint32_t n_replicas;
    char replicas[TPC_MAX_REPLICAS][CONFIG_URL_MAX];
    uint32_t n_participants;
    char participant_name[TPC_MAX_PARTICIPANTS * 4][TPC_NAME_MAX + 1];
    char participant_url[TPC_MAX_PARTICIPANTS * 4][CONFIG_URL_MAX];
    char listen[64];
    uint16_t port;
    char db_path[1024];
    char cluster_id[128]; /* "cluster_id", or "replicas-" and a hash of the replica URLs */
    bool init;            /* --init: make the state file and exit */
    char client_token[256];
    char cluster_token[256];
    uint32_t prepare_ms, commit_ms, txn_ms, retry_ms, retry_max_ms, stale_ms;
    int64_t retention_ms; /* "retention_ms": forgotten once born longer ago (DESIGN.md s. 11) */
    /* "tls": the replica's certificate chain and key (PEM), and the CA its peers' certificates
     * are verified against; all "" without TLS (then every URL is http://) */
    char tls_cert[1200], tls_key[1200], tls_ca[1200];
};

/* The default retention, and its range; a transaction's timeout is at most half of it. */
#define CONFIG_RETENTION_MS     3600000LL
#define CONFIG_RETENTION_MIN_MS 10000LL
#define CONFIG_RETENTION_MAX_MS (30LL * 86400000LL)

#define CONFIG_MAX_PARTICIPANTS (TPC_MAX_PARTICIPANTS * 4)

/*
 * Fills cfg from argv (see coordinator --help). Returns 0 to run, 1 when
 * --help was printed, 2 on an error (already reported on stderr).
 */
int config_load(int argc, char **argv, struct coord_config *cfg);

/* The index of participant name in participant_name[], or -1. */
int config_participant_index(const struct coord_config *cfg, const char *name);
/* The URL of participant name, or NULL. */
const char *config_participant_url(const struct coord_config *cfg, const char *name);

#endif
