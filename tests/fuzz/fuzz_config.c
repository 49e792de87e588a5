/*
 * fuzz_config.c - libFuzzer target: the coordinator's configuration (coordinator/config.c),
 * the cluster file and the command line, as an operator gives them.
 *
 * An input is a first line of flags (split at spaces, at most 8) and then the cluster file's
 * text. config_load must answer 0, 1 or 2, and a configuration it takes must be coherent:
 * 1..9 replicas with this one among them, a participant URL per name, timeouts in range and
 * the transaction timeout within half the retention, and with "tls" all three files and every
 * URL https:// (without it, every URL http://).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    struct coord_config *cfg;
    char *argv[16], *line, *tok, *save = NULL;
    const uint8_t *nl = memchr(data, '\n', size);
    size_t head = nl ? (size_t)(nl - data) : 0;
    int argc = 0, rc;
    FILE *f;

    if (!path[0]) {
        snprintf(path, sizeof(path), "/tmp/fuzz-config-%d.json", (int)getpid());
    }
    f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data + (nl ? head + 1 : 0), 1, size - (nl ? head + 1 : 0), f);
    fclose(f);
    line = strndup((const char *)data, head);
    cfg = calloc(1, sizeof(*cfg));
    if (!line || !cfg) {
        free(line);
        free(cfg);
        return 0;
    }
    argv[argc++] = "coordinator";
    argv[argc++] = "--config";
    argv[argc++] = path;
    for (tok = strtok_r(line, " ", &save); tok && argc < 11; tok = strtok_r(NULL, " ", &save))
        argv[argc++] = tok;
    argv[argc] = NULL;
    rc = config_load(argc, argv, cfg);
    check(rc == 0 || rc == 1 || rc == 2);
    if (rc == 0) {
        uint32_t i;
        bool tls;

        check(cfg->n_replicas >= 1 && cfg->n_replicas <= TPC_MAX_REPLICAS);
        check(cfg->self < cfg->n_replicas);
        check(cfg->n_participants <= CONFIG_MAX_PARTICIPANTS);
        for (i = 0; i < cfg->n_participants; i++)
            check(msg_name_valid(cfg->participant_name[i]) && cfg->participant_url[i][0]);
        check(cfg->retention_ms >= CONFIG_RETENTION_MIN_MS &&
              cfg->retention_ms <= CONFIG_RETENTION_MAX_MS);
        check(cfg->txn_ms >= 1 && cfg->txn_ms <= cfg->retention_ms / 2);
        check(cfg->prepare_ms >= 1 && cfg->commit_ms >= 1 && cfg->stale_ms >= 1);
        tls = cfg->tls_cert[0] != '\0';
        check(!tls == !cfg->tls_key[0] && !tls == !cfg->tls_ca[0]);
        for (i = 0; i < cfg->n_replicas; i++)
            check(strncmp(cfg->replicas[i], tls ? "https://" : "http://", tls ? 8 : 7) == 0);
        for (i = 0; i < cfg->n_participants; i++)
            check(strncmp(cfg->participant_url[i], tls ? "https://" : "http://", tls ? 8 : 7) == 0);
    }
    free(cfg);
    free(line);
    return 0;
}
