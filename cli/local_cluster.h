/*
 * local_cluster.h - `tpcctl cluster up` and `tpcctl cluster down`: a whole cluster on free
 * loopback ports in one command, for trying the system by hand (README).
 *
 *   tpcctl cluster up [--dir DIR] [--replicas N] [--participants a,b] [--schema FILE]
 *                     [--tls CERTDIR]
 *   tpcctl cluster down [--dir DIR]
 *
 * `up` makes DIR (default ./tpc-cluster: tokens, cluster.json, schema, databases, logs),
 * starts the participants and the replicas (their own sessions: they outlive tpcctl), waits
 * until each answers /health, writes DIR/pids and prints the URLs and the environment for
 * tpcctl. In a DIR that holds a stopped cluster (DIR/cluster.json, no process of DIR/pids
 * running), `up` starts it again as it was, from DIR/cluster.json. With --tls, every process serves
 * HTTPS only with CERTDIR/node.pem and node.key and verifies its peers against CERTDIR/ca.pem (as
 * scripts/dev-certs makes them). `down` stops each process in DIR/pids with SIGTERM and waits for
 * it (bounded).
 */
#ifndef TPC_LOCAL_CLUSTER_H
#define TPC_LOCAL_CLUSTER_H

/* argv[0] is "up" or "down"; the exit status. */
int local_cluster_main(int argc, char **argv);

#endif
