/*
 * pg_client.c - tpcpgclient, the PostgreSQL peer's load in C over libpq, so that the peer's
 * clients cost what a C client costs (bench/pg_peer.py starts the servers and runs it).
 *
 * N clients, each a thread with one connection to each of two servers. A transfer debits an
 * account on server A and credits one on B inside one global transaction: BEGIN and the UPDATE
 * on each (one round trip: one simple query of two statements), PREPARE TRANSACTION on A then
 * B, COMMIT PREPARED on A then B. The commit
 * latency is the time of those four statements (the counterpart of tpcbench's commit call); a
 * lock not granted within --lock-timeout-ms aborts the transfer (ROLLBACK on both), like the
 * participants' lock timeout. After --warmup seconds it measures for --seconds and writes
 * {"committed", "aborted", "errors", "commit_ms": [...], "transaction_ms": [...]} to --json.
 *
 *   tpcpgclient --port-a P --port-b P [--clients 8] [--seconds 10] [--warmup 2]
 *               [--accounts 10000] [--lock-timeout-ms 300] --json FILE
 */
#include <libpq-fe.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_http.h"

#define MAX_CLIENTS 256
#define MAX_SAMPLES (1 << 20) /* per client */

struct args {
    int port[2], clients, accounts, lock_timeout_ms;
    double seconds, warmup, measure_from, end;
};

struct client {
    const struct args *a;
    int idx;
    long committed, aborted, errors;
    double *commit_ms, *txn_ms;
    size_t n;
};

/* Runs sql; true when it succeeded. *lock_lost: it failed on a lock (timeout or deadlock). */
static bool run(PGconn *c, const char *sql, bool *lock_lost)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

    if (!ok && lock_lost && state && (!strcmp(state, "55P03") || !strcmp(state, "40P01")))
        *lock_lost = true;
    else if (!ok)
        fprintf(stderr, "tpcpgclient: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return ok;
}

static PGconn *connect_to(int port, int lock_timeout_ms)
{
    char info[256], sql[64];
    PGconn *c;

    snprintf(info, sizeof(info), "host=127.0.0.1 port=%d user=postgres dbname=postgres", port);
    c = PQconnectdb(info);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "tpcpgclient: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    snprintf(sql, sizeof(sql), "SET lock_timeout = '%dms'", lock_timeout_ms);
    if (!run(c, sql, NULL)) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

static void *client_run(void *arg)
{
    struct client *cl = arg;
    const struct args *a = cl->a;
    PGconn *c[2] = {connect_to(a->port[0], a->lock_timeout_ms),
                    connect_to(a->port[1], a->lock_timeout_ms)};
    unsigned seed = 7919u * (unsigned)(cl->idx + 1);
    char sql[2][128], gid[2][64];
    long n = 0;
    int k;

    if (!c[0] || !c[1]) {
        cl->errors++;
        goto out;
    }
    for (;;) {
        double t0 = bench_now(), t1, t2;
        bool measured = t0 >= a->measure_from, lost = false, ok = true;

        if (t0 >= a->end)
            break;
        n++;
        snprintf(sql[0], sizeof(sql[0]),
                 "BEGIN; UPDATE accounts SET balance = balance - 1 WHERE id = %d",
                 1 + (int)(rand_r(&seed) % (unsigned)a->accounts));
        snprintf(sql[1], sizeof(sql[1]),
                 "BEGIN; UPDATE accounts SET balance = balance + 1 WHERE id = %d",
                 1 + (int)(rand_r(&seed) % (unsigned)a->accounts));
        for (k = 0; k < 2 && ok; k++)
            ok = run(c[k], sql[k], &lost);
        if (!ok) {
            run(c[0], "ROLLBACK", NULL);
            run(c[1], "ROLLBACK", NULL);
            if (!lost) {
                cl->errors++;
                break;
            }
            cl->aborted += measured;
            continue;
        }
        t1 = bench_now();
        for (k = 0; k < 2 && ok; k++) {
            snprintf(gid[k], sizeof(gid[k]), "PREPARE TRANSACTION 'tx-%d-%ld-%c'", cl->idx, n,
                     'a' + k);
            ok = run(c[k], gid[k], NULL);
        }
        for (k = 0; k < 2 && ok; k++) {
            snprintf(gid[k], sizeof(gid[k]), "COMMIT PREPARED 'tx-%d-%ld-%c'", cl->idx, n, 'a' + k);
            ok = run(c[k], gid[k], NULL);
        }
        if (!ok) { /* not a lock: a prepared transaction may be left, which the check finds */
            cl->errors++;
            break;
        }
        t2 = bench_now();
        if (measured && t2 <= a->end && cl->n < MAX_SAMPLES) {
            cl->committed++;
            cl->commit_ms[cl->n] = (t2 - t1) * 1e3;
            cl->txn_ms[cl->n++] = (t2 - t0) * 1e3;
        }
    }
out:
    PQfinish(c[0]);
    PQfinish(c[1]);
    return NULL;
}

static int usage(void)
{
    fprintf(stderr, "usage: tpcpgclient --port-a P --port-b P [--clients N] [--seconds S] "
                    "[--warmup S] [--accounts N] [--lock-timeout-ms MS] --json FILE\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct args a = {{0, 0}, 8, 10000, 300, 10, 2, 0, 0};
    static struct client cl[MAX_CLIENTS];
    pthread_t t[MAX_CLIENTS];
    const char *json_path = NULL;
    json_t *res, *cms, *tms;
    long committed = 0, aborted = 0, errors = 0;
    int i, k;

    for (i = 1; i + 1 < argc; i += 2) {
        const char *o = argv[i], *v = argv[i + 1];

        if (!strcmp(o, "--port-a"))
            a.port[0] = (int)strtol(v, NULL, 10);
        else if (!strcmp(o, "--port-b"))
            a.port[1] = (int)strtol(v, NULL, 10);
        else if (!strcmp(o, "--clients"))
            a.clients = (int)strtol(v, NULL, 10);
        else if (!strcmp(o, "--seconds"))
            a.seconds = strtod(v, NULL);
        else if (!strcmp(o, "--warmup"))
            a.warmup = strtod(v, NULL);
        else if (!strcmp(o, "--accounts"))
            a.accounts = (int)strtol(v, NULL, 10);
        else if (!strcmp(o, "--lock-timeout-ms"))
            a.lock_timeout_ms = (int)strtol(v, NULL, 10);
        else if (!strcmp(o, "--json"))
            json_path = v;
        else
            return usage();
    }
    if (i != argc || !json_path || !a.port[0] || !a.port[1] || a.clients < 1 ||
        a.clients > MAX_CLIENTS || a.accounts < 1 || a.seconds <= 0 || a.warmup < 0)
        return usage();
    a.measure_from = bench_now() + a.warmup;
    a.end = a.measure_from + a.seconds;
    for (i = 0; i < a.clients; i++) {
        cl[i].a = &a;
        cl[i].idx = i;
        cl[i].commit_ms = malloc(MAX_SAMPLES * sizeof(double));
        cl[i].txn_ms = malloc(MAX_SAMPLES * sizeof(double));
        if (!cl[i].commit_ms || !cl[i].txn_ms || pthread_create(&t[i], NULL, client_run, &cl[i])) {
            fprintf(stderr, "tpcpgclient: cannot start client %d\n", i);
            return 1;
        }
    }
    cms = json_array();
    tms = json_array();
    for (i = 0; i < a.clients; i++) {
        pthread_join(t[i], NULL);
        committed += cl[i].committed;
        aborted += cl[i].aborted;
        errors += cl[i].errors;
        for (k = 0; k < (int)cl[i].n; k++) {
            json_array_append_new(cms, json_real(cl[i].commit_ms[k]));
            json_array_append_new(tms, json_real(cl[i].txn_ms[k]));
        }
        free(cl[i].commit_ms);
        free(cl[i].txn_ms);
    }
    res = json_pack("{s:I,s:I,s:I,s:o,s:o}", "committed", (json_int_t)committed, "aborted",
                    (json_int_t)aborted, "errors", (json_int_t)errors, "commit_ms", cms,
                    "transaction_ms", tms);
    if (!res || json_dump_file(res, json_path, 0) != 0) {
        fprintf(stderr, "tpcpgclient: cannot write %s\n", json_path);
        return 1;
    }
    json_decref(res);
    return errors ? 1 : 0;
}
