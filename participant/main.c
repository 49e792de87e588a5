/*
 * main.c - the participant program: options, start, wait for SIGTERM/SIGINT,
 * clean stop. See --help.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "http_client.h"
#include "http_server.h"
#include "log.h"
#include "loop.h"
#include "options.h"
#include "participant.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: participant --name NAME --db FILE [options]\n"
        "\n"
        "Serves one SQLite database as a Paxos Commit participant over HTTP/JSON.\n"
        "\n"
        "  --name NAME             participant name, 1..32 of [A-Za-z0-9_-] (required)\n"
        "  --db FILE               the database file, created if missing (required)\n"
        "  --schema FILE           SQL run once when the database is created\n"
        "  --listen ADDR           IPv4 address to listen on (default 127.0.0.1)\n"
        "  --port N                port; 0 picks a free one (default 0)\n"
        "  --port-file FILE        write the port listened on to FILE once ready\n"
        "  --replicas URL,...      coordinator replicas' base URLs, in replica-id order\n"
        "  --token-file FILE       cluster token: required from callers, sent to replicas\n"
        "                          (or the TPC_CLUSTER_TOKEN environment variable)\n"
        "  --tls-cert FILE, --tls-key FILE, --tls-ca FILE\n"
        "                          serve HTTPS only, with this certificate chain and key (PEM),\n"
        "                          and verify the replicas' certificates against this CA; the\n"
        "                          --replicas URLs are then https:// (all three, or none)\n"
        "  --lock-timeout-ms N     wait for a lock at most this long (default 2000)\n"
        "  --branch-timeout-ms N   abort a branch not prepared within N ms (default 60000)\n"
        "  --vote-timeout-ms N     wait this long for a replica's answer to an in-doubt question,\n"
        "                          or for another call on the same branch (default 1000)\n"
        "  --doubt-ms N            ask the replicas about a prepared branch after N ms\n"
        "                          (default 2000; then with backoff)\n"
        "  --max-body N            request body cap in bytes (default 1048576)\n"
        "  --max-statements N      statements per exec request (default 1000)\n"
        "  --max-rows N            result rows per statement (default 10000)\n"
        "  --statement-timeout-ms N  an exec request's statements are stopped after N ms\n"
        "                          (default 5000)\n"
        "  --retention-ms N        ended branches are forgotten once their transaction is\n"
        "                          this much older; a prepare of one is refused then\n"
        "                          (default 3600000, at least 10000; DESIGN.md section 11)\n"
        "  --log-level LEVEL       debug, info, warn or error (default info)\n"
        "  --help                  this text\n"
        "\n"
        "Endpoints: see http-api.md. Stops cleanly on SIGTERM or SIGINT; prepared\n"
        "branches stay prepared on disk and are resolved with the replicas at restart.\n");
}

int main(int argc, char **argv)
{
    struct participant_config cfg = {
        .lock_timeout_ms = 2000,
        .branch_timeout_ms = 60000,
        .vote_timeout_ms = 1000,
        .doubt_ms = 2000,
        .max_statements = 1000,
        .max_rows = 10000,
        .statement_ms = 5000,
    };
    struct http_server_config hc = {.address = "127.0.0.1", .max_body = 1024 * 1024};
    const char *port_file = NULL, *token_file = NULL, *tls_cert = NULL, *tls_key = NULL,
               *tls_ca = NULL;
    char *replicas = NULL, *token = NULL, *cert = NULL, *key = NULL, err[512];
    struct participant *p = NULL;
    struct loop *loop = NULL;
    struct http_server *srv = NULL;
    uint32_t port = 0, max_body = 0, retention = 3600000;
    enum log_level level = LOG_INFO;
    sigset_t set;
    int a, sig = 0, rc = 1;

    for (a = 1; a < argc; a++) {
        const char *o = argv[a], *v = a + 1 < argc ? argv[a + 1] : NULL;
        int bad = 0;

        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "participant: %s needs a value (see --help)\n", o);
            return 2;
        }
        a++;
        if (!strcmp(o, "--name"))
            bad = msg_copy_str(cfg.name, TPC_NAME_MAX, v) != TPC_OK || !msg_name_valid(v);
        else if (!strcmp(o, "--db"))
            cfg.db_path = v;
        else if (!strcmp(o, "--schema"))
            cfg.schema_file = v;
        else if (!strcmp(o, "--listen"))
            hc.address = v;
        else if (!strcmp(o, "--port"))
            bad = options_parse_u32(v, 0, 65535, &port);
        else if (!strcmp(o, "--port-file"))
            port_file = v;
        else if (!strcmp(o, "--replicas"))
            bad = !(replicas = strdup(v));
        else if (!strcmp(o, "--token-file"))
            token_file = v;
        else if (!strcmp(o, "--tls-cert"))
            tls_cert = v;
        else if (!strcmp(o, "--tls-key"))
            tls_key = v;
        else if (!strcmp(o, "--tls-ca"))
            tls_ca = v;
        else if (!strcmp(o, "--lock-timeout-ms"))
            bad = options_parse_u32(v, 1, 3600000, &cfg.lock_timeout_ms);
        else if (!strcmp(o, "--branch-timeout-ms"))
            bad = options_parse_u32(v, 1, 86400000, &cfg.branch_timeout_ms);
        else if (!strcmp(o, "--vote-timeout-ms"))
            bad = options_parse_u32(v, 1, 600000, &cfg.vote_timeout_ms);
        else if (!strcmp(o, "--doubt-ms"))
            bad = options_parse_u32(v, 1, 3600000, &cfg.doubt_ms);
        else if (!strcmp(o, "--max-body"))
            bad = options_parse_u32(v, 1024, 1024 * 1024 * 1024, &max_body);
        else if (!strcmp(o, "--max-statements"))
            bad = options_parse_u32(v, 1, 1000000, &cfg.max_statements);
        else if (!strcmp(o, "--statement-timeout-ms"))
            bad = options_parse_u32(v, 1, 3600000, &cfg.statement_ms);
        else if (!strcmp(o, "--max-rows"))
            bad = options_parse_u32(v, 1, 100000000, &cfg.max_rows);
        else if (!strcmp(o, "--retention-ms"))
            bad = options_parse_u32(v, 10000, 4000000000U, &retention);
        else if (!strcmp(o, "--log-level"))
            bad = !strcmp(v, "debug")   ? (level = LOG_DEBUG, 0)
                  : !strcmp(v, "info")  ? (level = LOG_INFO, 0)
                  : !strcmp(v, "warn")  ? (level = LOG_WARN, 0)
                  : !strcmp(v, "error") ? (level = LOG_ERROR, 0)
                                        : 1;
        else {
            fprintf(stderr, "participant: unknown option %s (see --help)\n", o);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "participant: bad value for %s: %s (see --help)\n", o, v);
            return 2;
        }
    }
    if (!cfg.name[0] || !cfg.db_path) {
        fprintf(stderr, "participant: --name and --db are required (see --help)\n");
        return 2;
    }
    if (!tls_cert != !tls_key || !tls_cert != !tls_ca) {
        fprintf(stderr, "participant: --tls-cert, --tls-key and --tls-ca go together (see "
                        "--help)\n");
        return 2;
    }
    log_init(cfg.name, level);
    if (replicas) {
        char *save = NULL, *tok;
        const char *scheme = tls_cert ? "https://" : "http://";

        for (tok = strtok_r(replicas, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (cfg.n_replicas == PARTICIPANT_MAX_REPLICAS) {
                fprintf(stderr, "participant: at most %d replicas\n", PARTICIPANT_MAX_REPLICAS);
                goto out;
            }
            if (strncmp(tok, scheme, strlen(scheme)) != 0) {
                fprintf(stderr, "participant: replica URL %s is not %s (%s)\n", tok, scheme,
                        tls_cert ? "--tls-cert is given"
                                 : "https:// needs --tls-cert, --tls-key "
                                   "and --tls-ca");
                goto out;
            }
            cfg.replicas[cfg.n_replicas++] = tok;
        }
    }
    if (tls_cert) {
        if (options_read_pem(tls_cert, false, &cert) != 0 ||
            options_read_pem(tls_key, true, &key) != 0) {
            fprintf(stderr, "participant: cannot read %s or %s\n", tls_cert, tls_key);
            goto out;
        }
        if (http_client_tls(tls_ca, NULL, NULL, err, sizeof(err)) != TPC_OK) {
            fprintf(stderr, "participant: %s\n", err);
            goto out;
        }
        hc.tls_cert_pem = cert;
        hc.tls_key_pem = key;
    }
    if (token_file) {
        token = malloc(512);
        if (!token || options_read_token(token_file, token, 512) != 0) {
            fprintf(stderr, "participant: cannot read token file %s\n", token_file);
            goto out;
        }
    } else if (getenv("TPC_CLUSTER_TOKEN")) {
        token = strdup(getenv("TPC_CLUSTER_TOKEN"));
    }
    cfg.token = token ? token : "";
    if (!cfg.token[0])
        log_warn("no cluster token: every caller is accepted (use --token-file)");
    if (max_body)
        hc.max_body = max_body;

    /* Signals go to sigwait below, not to whichever thread happens to run. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    if (loop_new(&loop) != TPC_OK || loop_quit_on(loop, &set, &sig) != TPC_OK) {
        log_error("cannot start the event loop");
        goto out;
    }
    cfg.retention_ms = retention;
    if (participant_open(&cfg, &p, err, sizeof(err)) != TPC_OK) {
        log_error("cannot start: %s", err);
        goto out;
    }
    hc.port = (uint16_t)port;
    hc.handler = api_handle;
    hc.metrics = participant_metrics;
    hc.ctx = p;
    hc.loop = loop;
    /* Handlers wait for row locks and durable writes: statements on one pool of threads, the
     * rest on another, so that statements waiting for locks never hold up the outcomes that
     * release them. */
    hc.n_pools = 2;
    hc.pool_threads[API_POOL_STATEMENTS] = PARTICIPANT_STATEMENT_THREADS;
    hc.pool_threads[API_POOL_PROTOCOL] = PARTICIPANT_PROTOCOL_THREADS;
    hc.pool_of = api_pool_of;
    if (http_server_start(&hc, &srv, err, sizeof(err)) != TPC_OK) {
        log_error("cannot start: %s", err);
        goto out;
    }
    if (port_file) {
        char tmp[4096];
        FILE *f;

        /* Written whole under another name, then renamed: a reader never sees half of it. */
        snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
        f = fopen(tmp, "w");
        if (!f || fprintf(f, "%u\n", http_server_port(srv)) < 0 || fclose(f) != 0 ||
            rename(tmp, port_file) != 0) {
            log_error("cannot write %s", port_file);
            goto out;
        }
    }
    log_info("listening on %s:%u (%s), database %s, %u replica(s)", hc.address,
             http_server_port(srv), cert ? "HTTPS" : "HTTP", cfg.db_path, cfg.n_replicas);
    loop_run(loop);
    log_info("stopping (signal %d)", sig);
    rc = 0;
out:
    http_server_stop(srv);
    participant_close(p);
    loop_free(loop);
    free(replicas);
    free(token);
    free(cert);
    free(key);
    return rc;
}
