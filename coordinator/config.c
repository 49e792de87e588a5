/* config.c - the cluster file and the flags (see config.h). */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity.h"
#include "options.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: coordinator --config FILE --id N [options]\n"
            "\n"
            "One Paxos Commit coordinator replica: acceptor for every transaction, leader for\n"
            "those begun on it, recovery for those whose leader vanished; REST API for clients.\n"
            "\n"
            "  --config FILE     the cluster file (JSON; see http-api.md and README.md)\n"
            "  --id N            this replica's index in the file's \"replicas\" list\n"
            "  --listen ADDR     IPv4 address to listen on (default: the host of its URL)\n"
            "  --port N          port (default: the port of its URL)\n"
            "  --db FILE         state file (default <data_dir>/replica-<id>.db)\n"
            "  --init            make this replica's state file (once, before its first start:\n"
            "                    it records the cluster's id and this replica's) and exit;\n"
            "                    refused when the file exists. A replica refuses to start on a\n"
            "                    missing or foreign state file (exit status 2)\n"
            "  --log-level L     debug, info, warn or error (default info)\n"
            "  --help            this text\n"
            "\n"
            "Tokens are read from the files the cluster file names (client_token_file,\n"
            "cluster_token_file) or from TPC_CLIENT_TOKEN and TPC_CLUSTER_TOKEN; they are\n"
            "never logged. With \"tls\" in the cluster file ({\"cert\", \"key\", \"ca\"}: PEM\n"
            "files) the replica serves HTTPS only and verifies the certificates of the others\n"
            "(replicas, participants) against the CA; every URL is then https://. Stops\n"
            "cleanly on SIGTERM or SIGINT.\n");
}

static int fail(const char *what, const char *a)
{
    fprintf(stderr, "coordinator: %s%s (see --help)\n", what, a);
    return 2;
}

/* "http://host:port[/...]" or "https://..." -> host, port */
static int split_url(const char *url, char *host, size_t hlen, uint32_t *port)
{
    const char *p = strncmp(url, "http://", 7) == 0    ? url + 7
                    : strncmp(url, "https://", 8) == 0 ? url + 8
                                                       : NULL,
               *colon, *end;
    char num[8];
    size_t n;

    if (!p || !(colon = strchr(p, ':')))
        return -1;
    n = (size_t)(colon - p);
    if (n == 0 || n >= hlen)
        return -1;
    memcpy(host, p, n);
    host[n] = '\0';
    end = colon + 1 + strcspn(colon + 1, "/");
    n = (size_t)(end - colon - 1);
    if (n == 0 || n >= sizeof(num))
        return -1;
    memcpy(num, colon + 1, n);
    num[n] = '\0';
    return options_parse_u32(num, 0, 65535, port);
}

/* A URL of the cluster's scheme: https:// with "tls", http:// without. */
static bool url_ok(const char *u, const struct coord_config *cfg)
{
    const char *scheme = cfg->tls_cert[0] ? "https://" : "http://";

    return u && strlen(u) < CONFIG_URL_MAX && strncmp(u, scheme, strlen(scheme)) == 0;
}

/* "tls": {"cert": FILE, "key": FILE, "ca": FILE}, relative to the cluster file's directory. */
static int load_tls(json_t *v, const char *path, const char *base_dir, struct coord_config *cfg)
{
    static const char *const keys[] = {"cert", "key", "ca"};
    char *out[] = {cfg->tls_cert, cfg->tls_key, cfg->tls_ca};
    size_t i;

    if (!json_is_object(v) || json_object_size(v) != 3) {
        fprintf(stderr,
                "coordinator: %s: \"tls\" must be {\"cert\": FILE, \"key\": FILE, "
                "\"ca\": FILE}\n",
                path);
        return 2;
    }
    for (i = 0; i < 3; i++) {
        const char *f = json_string_value(json_object_get(v, keys[i]));

        if (!f || !*f) {
            fprintf(stderr, "coordinator: %s: \"tls\" needs \"%s\", a file name\n", path, keys[i]);
            return 2;
        }
        snprintf(out[i], sizeof(cfg->tls_cert), "%s%s%s", f[0] == '/' ? "" : base_dir,
                 f[0] == '/' ? "" : "/", f);
    }
    return 0;
}

static int load_file(const char *path, const char *base_dir, struct coord_config *cfg,
                     char *data_dir, size_t ddlen)
{
    json_error_t jerr;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr), *v, *t;
    const char *key;
    char file[1200];
    size_t i;
    int rc = 2;

    if (!j) {
        fprintf(stderr, "coordinator: %s: %s (line %d)\n", path, jerr.text, jerr.line);
        return 2;
    }
    if ((v = json_object_get(j, "tls")) && load_tls(v, path, base_dir, cfg) != 0)
        goto out;
    v = json_object_get(j, "replicas");
    if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > TPC_MAX_REPLICAS ||
        json_array_size(v) % 2 == 0) {
        fprintf(stderr, "coordinator: %s: \"replicas\" must list 1, 3, 5, 7 or 9 URLs\n", path);
        goto out;
    }
    cfg->n_replicas = (uint32_t)json_array_size(v);
    for (i = 0; i < cfg->n_replicas; i++) {
        const char *u = json_string_value(json_array_get(v, i));

        if (!url_ok(u, cfg)) {
            fprintf(stderr, "coordinator: %s: replicas[%zu] must be an %s URL%s\n", path, i,
                    cfg->tls_cert[0] ? "https://" : "http://",
                    cfg->tls_cert[0] ? " (\"tls\" is set)" : " (https:// needs \"tls\")");
            goto out;
        }
        snprintf(cfg->replicas[i], CONFIG_URL_MAX, "%s", u);
    }
    v = json_object_get(j, "participants");
    if (v && !json_is_object(v)) {
        fprintf(stderr, "coordinator: %s: \"participants\" must map names to URLs\n", path);
        goto out;
    }
    json_object_foreach(v, key, t)
    {
        const char *u = json_string_value(t);

        if (cfg->n_participants == CONFIG_MAX_PARTICIPANTS || !msg_name_valid(key) ||
            !url_ok(u, cfg)) {
            fprintf(stderr,
                    "coordinator: %s: bad participant \"%s\" (a name of [A-Za-z0-9_-] "
                    "and an %s URL)\n",
                    path, key, cfg->tls_cert[0] ? "https://" : "http://");
            goto out;
        }
        snprintf(cfg->participant_name[cfg->n_participants], TPC_NAME_MAX + 1, "%s", key);
        snprintf(cfg->participant_url[cfg->n_participants], CONFIG_URL_MAX, "%s", u);
        cfg->n_participants++;
    }
    v = json_object_get(j, "cluster_id");
    if (v) {
        const char *c = json_string_value(v);
        size_t k, n = c ? strlen(c) : 0;

        for (k = 0; k < n && c[k] > ' ' && c[k] < 0x7f && c[k] != '"' && c[k] != '\\'; k++)
            ;
        if (!n || n > IDENTITY_CLUSTER_MAX || k != n || json_string_length(v) != n) {
            fprintf(stderr,
                    "coordinator: %s: \"cluster_id\" must be 1..%d printable ASCII characters "
                    "without spaces or quotes\n",
                    path, IDENTITY_CLUSTER_MAX);
            goto out;
        }
        snprintf(cfg->cluster_id, sizeof(cfg->cluster_id), "%s", c);
    } else {
        /* By default the cluster is its replica list: FNV-1a over the URLs, in order. */
        uint64_t h = 0xcbf29ce484222325ull;

        for (i = 0; i < cfg->n_replicas; i++)
            for (const char *c = cfg->replicas[i];; c++) {
                h = (h ^ (unsigned char)*c) * 0x100000001b3ull;
                if (!*c)
                    break;
            }
        snprintf(cfg->cluster_id, sizeof(cfg->cluster_id), "replicas-%016llx",
                 (unsigned long long)h);
    }
    if ((v = json_object_get(j, "data_dir")) && json_is_string(v))
        snprintf(data_dir, ddlen, "%s%s%s", json_string_value(v)[0] == '/' ? "" : base_dir,
                 json_string_value(v)[0] == '/' ? "" : "/", json_string_value(v));
    if ((v = json_object_get(j, "client_token_file")) && json_is_string(v)) {
        snprintf(file, sizeof(file), "%s%s%s", json_string_value(v)[0] == '/' ? "" : base_dir,
                 json_string_value(v)[0] == '/' ? "" : "/", json_string_value(v));
        if (options_read_token(file, cfg->client_token, sizeof(cfg->client_token)) != 0) {
            fprintf(stderr, "coordinator: cannot read %s\n", file);
            goto out;
        }
    }
    if ((v = json_object_get(j, "cluster_token_file")) && json_is_string(v)) {
        snprintf(file, sizeof(file), "%s%s%s", json_string_value(v)[0] == '/' ? "" : base_dir,
                 json_string_value(v)[0] == '/' ? "" : "/", json_string_value(v));
        if (options_read_token(file, cfg->cluster_token, sizeof(cfg->cluster_token)) != 0) {
            fprintf(stderr, "coordinator: cannot read %s\n", file);
            goto out;
        }
    }
    if ((v = json_object_get(j, "retention_ms"))) {
        if (!json_is_integer(v) || json_integer_value(v) < CONFIG_RETENTION_MIN_MS ||
            json_integer_value(v) > CONFIG_RETENTION_MAX_MS) {
            fprintf(stderr, "coordinator: %s: retention_ms must be %lld..%lld\n", path,
                    CONFIG_RETENTION_MIN_MS, CONFIG_RETENTION_MAX_MS);
            goto out;
        }
        cfg->retention_ms = json_integer_value(v);
    }
    if ((v = json_object_get(j, "timeouts_ms"))) {
        struct {
            const char *name;
            uint32_t *field;
        } keys[] = {{"prepare", &cfg->prepare_ms},     {"commit", &cfg->commit_ms},
                    {"transaction", &cfg->txn_ms},     {"retry", &cfg->retry_ms},
                    {"retry_max", &cfg->retry_max_ms}, {"stale", &cfg->stale_ms}};

        for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            t = json_object_get(v, keys[i].name);
            if (!t)
                continue;
            if (!json_is_integer(t) || json_integer_value(t) < 1 ||
                json_integer_value(t) > 86400000) {
                fprintf(stderr, "coordinator: %s: timeouts_ms.%s must be 1..86400000\n", path,
                        keys[i].name);
                goto out;
            }
            *keys[i].field = (uint32_t)json_integer_value(t);
        }
    }
    /* A transaction must be decided long before it is forgotten: its timeout, and the
     * default one, are at most half the retention. */
    if (cfg->txn_ms > cfg->retention_ms / 2) {
        fprintf(stderr,
                "coordinator: %s: timeouts_ms.transaction (%u) must be at most half of "
                "retention_ms (%lld)\n",
                path, cfg->txn_ms, (long long)cfg->retention_ms);
        goto out;
    }
    rc = 0;
out:
    json_decref(j);
    return rc;
}

int config_load(int argc, char **argv, struct coord_config *cfg)
{
    const char *file = NULL, *listen = NULL, *db = NULL, *id = NULL, *port = NULL, *slash;
    char data_dir[1024] = ".", base_dir[1024] = ".", host[64];
    uint32_t v;
    int a;

    memset(cfg, 0, sizeof(*cfg));
    cfg->prepare_ms = 2000;
    cfg->commit_ms = 10000;
    cfg->txn_ms = 60000;
    cfg->retry_ms = 50;
    cfg->retry_max_ms = 2000;
    cfg->stale_ms = 3000;
    cfg->retention_ms = CONFIG_RETENTION_MS;
    for (a = 1; a < argc; a++) {
        const char *o = argv[a], *val = a + 1 < argc ? argv[a + 1] : NULL;

        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(o, "--init")) {
            cfg->init = true;
            continue;
        }
        if (!val)
            return fail("this option needs a value: ", o);
        a++;
        if (!strcmp(o, "--config"))
            file = val;
        else if (!strcmp(o, "--id"))
            id = val;
        else if (!strcmp(o, "--listen"))
            listen = val;
        else if (!strcmp(o, "--port"))
            port = val;
        else if (!strcmp(o, "--db"))
            db = val;
        else if (!strcmp(o, "--log-level"))
            continue; /* main() reads it */
        else
            return fail("unknown option ", o);
    }
    if (!file || !id)
        return fail("--config and --id are required", "");
    slash = strrchr(file, '/');
    if (slash)
        snprintf(base_dir, sizeof(base_dir), "%.*s", (int)(slash - file), file);
    if (load_file(file, base_dir, cfg, data_dir, sizeof(data_dir)) != 0)
        return 2;
    if (options_parse_u32(id, 0, cfg->n_replicas - 1, &cfg->self) != 0)
        return fail("--id must be an index into \"replicas\": ", id);
    if (split_url(cfg->replicas[cfg->self], host, sizeof(host), &v) != 0)
        return fail("cannot read host:port from ", cfg->replicas[cfg->self]);
    snprintf(cfg->listen, sizeof(cfg->listen), "%s", listen ? listen : host);
    if (!strcmp(cfg->listen, "localhost"))
        snprintf(cfg->listen, sizeof(cfg->listen), "127.0.0.1");
    if (port && options_parse_u32(port, 0, 65535, &v) != 0)
        return fail("bad --port ", port);
    cfg->port = (uint16_t)v;
    if (db)
        snprintf(cfg->db_path, sizeof(cfg->db_path), "%s", db);
    else
        snprintf(cfg->db_path, sizeof(cfg->db_path), "%.1000s/replica-%u.db", data_dir, cfg->self);
    if (!cfg->client_token[0] && getenv("TPC_CLIENT_TOKEN"))
        snprintf(cfg->client_token, sizeof(cfg->client_token), "%s", getenv("TPC_CLIENT_TOKEN"));
    if (!cfg->cluster_token[0] && getenv("TPC_CLUSTER_TOKEN"))
        snprintf(cfg->cluster_token, sizeof(cfg->cluster_token), "%s", getenv("TPC_CLUSTER_TOKEN"));
    return 0;
}

int config_participant_index(const struct coord_config *cfg, const char *name)
{
    uint32_t i;

    for (i = 0; i < cfg->n_participants; i++)
        if (!strcmp(cfg->participant_name[i], name))
            return (int)i;
    return -1;
}

const char *config_participant_url(const struct coord_config *cfg, const char *name)
{
    int i = config_participant_index(cfg, name);

    return i < 0 ? NULL : cfg->participant_url[i];
}
