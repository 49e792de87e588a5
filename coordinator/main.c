/*
 * main.c - the coordinator replica program: configuration, start, run the
 * event loop until SIGTERM/SIGINT, clean stop. See --help.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "config.h"
#include "coord.h"
#include "identity.h"
#include "http_client.h"
#include "http_server.h"
#include "log.h"
#include "loop.h"
#include "options.h"

/* The dashboard page, built in from ui/dashboard.html (CMakeLists.txt). */
extern const unsigned char ui_dashboard_html[];
extern const size_t ui_dashboard_html_len;

int main(int argc, char **argv)
{
    struct coord_config *cfg = calloc(1, sizeof(*cfg)); /* large: off the stack */
    struct http_server_config hc = {
        .max_body = 1024 * 1024, .handler = api_handle, .metrics = coord_metrics};
    struct http_page ui = {"/ui", "text/html; charset=utf-8", ui_dashboard_html, 0};
    enum log_level level = LOG_INFO;
    struct http_server *srv = NULL;
    struct coord *c = NULL;
    struct loop *loop = NULL;
    char name[32], err[512], *cert = NULL, *key = NULL;
    sigset_t set;
    int a, sig = 0, rc;

    for (a = 1; a + 1 < argc; a++)
        if (!strcmp(argv[a], "--log-level"))
            level = !strcmp(argv[a + 1], "debug")   ? LOG_DEBUG
                    : !strcmp(argv[a + 1], "warn")  ? LOG_WARN
                    : !strcmp(argv[a + 1], "error") ? LOG_ERROR
                                                    : LOG_INFO;
    if (!cfg) {
        fprintf(stderr, "coordinator: out of memory\n");
        return 1;
    }
    rc = config_load(argc, argv, cfg);
    if (rc) {
        free(cfg);
        return rc == 1 ? 0 : 2;
    }
    snprintf(name, sizeof(name), "replica-%u", cfg->self);
    log_init(name, level);
    if (cfg->init) {
        rc = identity_init(cfg->db_path, cfg->cluster_id, cfg->self, err, sizeof(err)) ? 2 : 0;
        if (rc)
            log_error("--init refused: %s", err);
        else
            printf("initialized replica %u of cluster %s: %s\n", cfg->self, cfg->cluster_id,
                   cfg->db_path);
        free(cfg);
        return rc;
    }
    if (identity_check(cfg->db_path, cfg->cluster_id, cfg->self, err, sizeof(err)) != TPC_OK) {
        log_error("refusing to start: %s", err);
        free(cfg);
        return 2;
    }
    if (!cfg->client_token[0] || !cfg->cluster_token[0])
        log_warn("a token is missing: its callers are not checked (see client_token_file, "
                 "cluster_token_file)");

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    rc = 1;
    if (cfg->tls_cert[0]) {
        /* HTTPS on its port; its calls to the others verify their certificates against ca. */
        if (options_read_pem(cfg->tls_cert, false, &cert) != 0 ||
            options_read_pem(cfg->tls_key, true, &key) != 0) {
            log_error("cannot read the TLS certificate %s or key %s", cfg->tls_cert, cfg->tls_key);
            goto out;
        }
        if (http_client_tls(cfg->tls_ca, NULL, NULL, err, sizeof(err)) != TPC_OK) {
            log_error("cannot start: %s", err);
            goto out;
        }
        hc.tls_cert_pem = cert;
        hc.tls_key_pem = key;
    }
    if (loop_new(&loop) != TPC_OK || loop_quit_on(loop, &set, &sig) != TPC_OK) {
        log_error("cannot start the event loop");
        goto out;
    }
    if (coord_open(cfg, loop, &c, err, sizeof(err)) != TPC_OK) {
        log_error("cannot start: %s", err);
        goto out;
    }
    ui.len = ui_dashboard_html_len;
    hc.pages = &ui;
    hc.n_pages = 1;
    hc.address = cfg->listen;
    hc.port = cfg->port;
    hc.ctx = c;
    hc.loop = loop;
    if (http_server_start(&hc, &srv, err, sizeof(err)) != TPC_OK) {
        log_error("cannot start: %s", err);
        goto out;
    }
    log_info("replica %u of %u listening on %s:%u (%s), state in %s, %u participant(s) known",
             cfg->self, cfg->n_replicas, cfg->listen, http_server_port(srv),
             cert ? "HTTPS" : "HTTP", cfg->db_path, cfg->n_participants);
    loop_run(loop);
    log_info("stopping (signal %d)", sig);
    rc = 0;
out:
    coord_shutdown(c);
    http_server_stop(srv);
    coord_close(c);
    loop_free(loop);
    free(cert);
    free(key);
    free(cfg);
    return rc;
}
