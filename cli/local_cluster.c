/* local_cluster.c - see local_cluster.h. */
#define _GNU_SOURCE /* realpath */
#include "local_cluster.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "msg.h"
#include "options.h"

#define LC_MAX_REPLICAS 9
#define LC_MAX_PARTS    8
#define LC_WAIT_MS      15000 /* for a process to answer, or to stop */

struct lc {
    char dir[PATH_MAX];
    int n_replicas, n_parts;
    char parts[LC_MAX_PARTS][TPC_NAME_MAX + 1];
    const char *schema, *tls_dir;
    bool options; /* any option for a new cluster given (--replicas, --participants, ...) */
    char tls[3][PATH_MAX]; /* with --tls DIR: DIR/node.pem, DIR/node.key, DIR/ca.pem */
    int port[LC_MAX_REPLICAS + LC_MAX_PARTS]; /* replicas, then participants */
    pid_t pid[LC_MAX_REPLICAS + LC_MAX_PARTS];
    int n_pids;
};

static const char default_schema[] =
    "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL "
    "CHECK (balance >= 0));\n"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10)\n"
    "INSERT INTO accounts SELECT i, 100 FROM n;\n";

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* A program of this build (next to tpcctl: build/cli/../coordinator/coordinator), or from
 * env, or from PATH. */
static void program(const char *env, const char *rel, const char *name, char *out, size_t len)
{
    char self[PATH_MAX];
    ssize_t n;

    if (getenv(env) && *getenv(env)) {
        snprintf(out, len, "%s", getenv(env));
        return;
    }
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        *strrchr(self, '/') = '\0';
        if (snprintf(out, len, "%s/../%s", self, rel) < (int)len && access(out, X_OK) == 0)
            return;
    }
    snprintf(out, len, "%s", name);
}

/* n distinct free ports: each socket stays bound until all are picked (a port closed at once
 * may be handed out again by the next bind). 0, or -1. */
static int free_ports(int *ports, int n)
{
    int fds[LC_MAX_REPLICAS + LC_MAX_PARTS], i, rc = 0;

    for (i = 0; i < n; i++) {
        struct sockaddr_in a;
        socklen_t alen = sizeof(a);

        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&a, sizeof(a)) != 0 ||
            getsockname(fds[i], (struct sockaddr *)&a, &alen) != 0)
            rc = -1;
        ports[i] = ntohs(a.sin_port);
    }
    for (i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return rc;
}

/* Whether nothing listens on loopback port (a bind succeeds). */
static bool port_free(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    bool ok;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    if (fd >= 0) /* as the servers bind: a port in TIME_WAIT is free to them */
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static int write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    size_t n = strlen(text);
    bool ok = fd >= 0 && write(fd, text, n) == (ssize_t)n;

    if (fd >= 0)
        ok = close(fd) == 0 && ok;
    return ok ? 0 : -1;
}

/* A fresh secret: 32 hex digits from the kernel's random source. */
static int make_token(const char *path)
{
    unsigned char r[16];
    char hex[34];
    FILE *f = fopen("/dev/urandom", "rb");
    size_t i;

    if (!f || fread(r, 1, sizeof(r), f) != sizeof(r)) {
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    for (i = 0; i < sizeof(r); i++)
        snprintf(hex + 2 * i, 3, "%02x", r[i]);
    hex[32] = '\n';
    hex[33] = '\0';
    return write_file(path, hex, 0600);
}

/* Starts argv in a session of its own, its output appended to log; its pid, or -1. */
static pid_t spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();

    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY), out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

        setsid();
        if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
            _exit(127);
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

struct answer {
    char b[4096];
    size_t n;
};

static size_t keep(char *p, size_t s, size_t n, void *ud)
{
    struct answer *a = ud;
    size_t k = s * n;

    if (a->n + k >= sizeof(a->b))
        return 0;
    memcpy(a->b + a->n, p, k);
    a->n += k;
    a->b[a->n] = '\0';
    return k;
}

/* Whether the process at base answers its health check as the one it should be (participant
 * name, or replica id): not another server that took the port meanwhile. ca: the CA file of an
 * https:// base, or NULL. */
static bool healthy(const char *base, const char *ca, const char *name, int replica)
{
    struct answer a = {.n = 0};
    CURL *c = curl_easy_init();
    json_t *j = NULL;
    char url[128];
    long code = 0;
    bool ok;

    if (!c)
        return false;
    snprintf(url, sizeof(url), "%s/health", base);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
    if (ca)
        curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    if (code == 200)
        j = json_loadb(a.b, a.n, 0, NULL);
    ok = name ? json_is_string(json_object_get(j, "name")) &&
                    !strcmp(json_string_value(json_object_get(j, "name")), name)
              : json_is_integer(json_object_get(j, "replica")) &&
                    json_integer_value(json_object_get(j, "replica")) == replica;
    json_decref(j);
    return ok;
}

/* Whether pid runs and is one of this cluster's (its command line names dir): a pid
 * recorded earlier may belong to another process since. A zombie does not run. */
static bool ours(pid_t pid, const char *dir)
{
    char path[64], buf[8192], state = '?';
    size_t n, i;
    FILE *f = NULL;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (!(f = fopen(path, "r")))
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (strrchr(buf, ')') && strrchr(buf, ')')[1] == ' ')
        state = strrchr(buf, ')')[2];
    if (state == 'Z' || state == 'X')
        return false;
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    if (!(f = fopen(path, "r")))
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    for (i = 0; i < n; i++)
        if (!buf[i])
            buf[i] = ' ';
    buf[n] = '\0';
    return strstr(buf, dir) != NULL;
}

static void stop_all(const struct lc *c)
{
    int64_t until = mono_ms() + LC_WAIT_MS;
    int i;

    for (i = 0; i < c->n_pids; i++)
        if (c->pid[i] > 0 && ours(c->pid[i], c->dir))
            kill(c->pid[i], SIGTERM);
    for (i = 0; i < c->n_pids; i++) {
        while (c->pid[i] > 0 && ours(c->pid[i], c->dir) && mono_ms() < until) {
            waitpid(c->pid[i], NULL, WNOHANG); /* our child when up failed half-way */
            pause_ms(20);
        }
        if (c->pid[i] > 0 && ours(c->pid[i], c->dir))
            fprintf(stderr, "tpcctl: process %d did not stop within %d s\n", (int)c->pid[i],
                    LC_WAIT_MS / 1000);
    }
}

static const char *url_of(const struct lc *c, int i, char *buf, size_t len)
{
    snprintf(buf, len, "%s://127.0.0.1:%d", c->tls[0][0] ? "https" : "http", c->port[i]);
    return buf;
}

/* DIR/cluster.json: the replicas' and participants' URLs, files relative to DIR, and the
 * certificate files (absolute) with --tls. 0, or -1 (errno set). */
static int write_config(const struct lc *c, const char *path)
{
    json_t *cfg =
        json_pack("{s:[],s:{},s:s,s:s,s:s}", "replicas", "participants", "data_dir", "data",
                  "client_token_file", "client.token", "cluster_token_file", "cluster.token");
    char u[64], *text;
    int i, rc;

    for (i = 0; cfg && i < c->n_replicas; i++)
        json_array_append_new(json_object_get(cfg, "replicas"),
                              json_string(url_of(c, i, u, sizeof(u))));
    for (i = 0; cfg && i < c->n_parts; i++)
        json_object_set_new(json_object_get(cfg, "participants"), c->parts[i],
                            json_string(url_of(c, c->n_replicas + i, u, sizeof(u))));
    if (cfg && c->tls[0][0])
        json_object_set_new(
            cfg, "tls",
            json_pack("{s:s,s:s,s:s}", "cert", c->tls[0], "key", c->tls[1], "ca", c->tls[2]));
    text = cfg ? json_dumps(cfg, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(cfg);
    if (!text) {
        errno = ENOMEM;
        return -1;
    }
    rc = write_file(path, text, 0644);
    free(text);
    return rc;
}

/* --tls DIR: DIR's node.pem, node.key and ca.pem (scripts/dev-certs DIR), readable, by
 * absolute path into c->tls. 0, or 2 (said why). */
static int tls_files(struct lc *c, const char *dir)
{
    static const char *const names[3] = {"node.pem", "node.key", "ca.pem"};
    char abs[PATH_MAX];
    int i;

    errno = 0;
    if (!realpath(dir, abs) || strlen(abs) > 1000) {
        fprintf(stderr, "tpcctl: --tls %s: %s (make the files with: scripts/dev-certs %s)\n", dir,
                errno ? strerror(errno) : "its path is longer than 1000 characters", dir);
        return 2;
    }
    for (i = 0; i < 3; i++) {
        snprintf(c->tls[i], sizeof(c->tls[i]), "%s/%s", abs, names[i]);
        if (access(c->tls[i], R_OK) != 0) {
            fprintf(stderr,
                    "tpcctl: --tls %s: cannot read %s (make the files with: scripts/dev-certs "
                    "%s)\n",
                    dir, c->tls[i], dir);
            return 2;
        }
    }
    return 0;
}

/* Whether any process in DIR/pids still runs as one of this cluster's. */
static bool any_running(struct lc *c, const char *pids)
{
    char line[64];
    FILE *f = fopen(pids, "r");
    bool running = false;

    while (f && fgets(line, sizeof(line), f)) {
        uint32_t pid = 0;

        line[strcspn(line, "\n")] = '\0';
        if (options_parse_u32(line, 1, INT32_MAX, &pid) == 0 && ours((pid_t)pid, c->dir))
            running = true;
    }
    if (f)
        fclose(f);
    return running;
}

/* The port of "http://127.0.0.1:PORT" (or https), or -1. */
static int port_of(const char *url)
{
    const char *rest = url && !strncmp(url, "http://127.0.0.1:", 17)    ? url + 17
                       : url && !strncmp(url, "https://127.0.0.1:", 18) ? url + 18
                                                                        : NULL;
    uint32_t port = 0;

    return rest && options_parse_u32(rest, 1, 65535, &port) == 0 ? (int)port : -1;
}

/* A stopped cluster's DIR/cluster.json (as write_config wrote it) into c. 0, or 2 (said why). */
static int read_config(struct lc *c, const char *path)
{
    json_error_t jerr;
    json_t *cfg = json_load_file(path, 0, &jerr), *v, *reps, *parts, *tls;
    const char *name;
    size_t i;
    int rc = 2;

    reps = json_object_get(cfg, "replicas");
    parts = json_object_get(cfg, "participants");
    tls = json_object_get(cfg, "tls");
    if (!json_is_array(reps) || json_array_size(reps) < 1 ||
        json_array_size(reps) > LC_MAX_REPLICAS || json_array_size(reps) % 2 == 0 ||
        !json_is_object(parts) || json_object_size(parts) > LC_MAX_PARTS ||
        (tls && !json_is_object(tls)))
        goto out;
    c->n_replicas = (int)json_array_size(reps);
    c->n_parts = 0;
    json_array_foreach(reps, i, v)
    {
        if ((c->port[i] = port_of(json_string_value(v))) < 0)
            goto out;
    }
    json_object_foreach(parts, name, v)
    {
        if (!msg_name_valid(name) ||
            (c->port[c->n_replicas + c->n_parts] = port_of(json_string_value(v))) < 0)
            goto out;
        snprintf(c->parts[c->n_parts++], TPC_NAME_MAX + 1, "%s", name);
    }
    for (i = 0; tls && i < 3; i++) {
        static const char *const keys[3] = {"cert", "key", "ca"};
        const char *f = json_string_value(json_object_get(tls, keys[i]));

        if (!f || snprintf(c->tls[i], sizeof(c->tls[i]), "%s", f) >= (int)sizeof(c->tls[i]))
            goto out;
    }
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "tpcctl: %s: not a cluster file that tpcctl cluster up wrote%s%s\n", path,
                cfg ? "" : ": ", cfg ? "" : jerr.text);
    json_decref(cfg);
    return rc;
}

/* A new cluster's files in DIR: data/, ports, tokens, schema.sql, cluster.json. 0, 2 or 9. */
static int make_files(struct lc *c)
{
    char path[PATH_MAX + 64], *schema = NULL;
    FILE *f = NULL;
    int i;

    snprintf(path, sizeof(path), "%s/data", c->dir);
    if (mkdir(path, 0700) != 0) {
        fprintf(stderr, "tpcctl: %s exists: start in an empty directory (--dir)\n", path);
        return 2;
    }
    if (free_ports(c->port, c->n_replicas + c->n_parts) != 0) {
        fprintf(stderr, "tpcctl: no free port\n");
        return 9;
    }
    snprintf(path, sizeof(path), "%s/client.token", c->dir);
    if (make_token(path) != 0)
        goto io;
    snprintf(path, sizeof(path), "%s/cluster.token", c->dir);
    if (make_token(path) != 0)
        goto io;
    if (c->schema && !(f = fopen(c->schema, "r"))) {
        fprintf(stderr, "tpcctl: cannot read %s\n", c->schema);
        return 2;
    } else if (c->schema) {
        schema = calloc(1, 1024 * 1024 + 1);
        if (!schema || fread(schema, 1, 1024 * 1024, f) == 1024 * 1024) {
            fclose(f);
            free(schema);
            fprintf(stderr, "tpcctl: %s: 1 MiB at most\n", c->schema);
            return 2;
        }
        fclose(f);
    }
    snprintf(path, sizeof(path), "%s/schema.sql", c->dir);
    i = write_file(path, schema ? schema : default_schema, 0644);
    free(schema);
    if (i != 0)
        goto io;
    snprintf(path, sizeof(path), "%s/cluster.json", c->dir);
    if (write_config(c, path) != 0)
        goto io;
    return 0;
io:
    fprintf(stderr, "tpcctl: cannot write %s: %s\n", path, strerror(errno));
    return 9;
}

/* The participants, then the replicas (each made first with --init when init), until each
 * answers its health check; DIR/pids. 0, or 9 (said why; what started is stopped). */
static int start_all(struct lc *c, bool init)
{
    char path[PATH_MAX + 64], coord[PATH_MAX], part[PATH_MAX], urls[1024] = "", u[64];
    char port[16];
    int i, n = c->n_replicas + c->n_parts;
    int64_t until;
    FILE *f = NULL;

    program("TPC_COORDINATOR_BIN", "coordinator/coordinator", "coordinator", coord, sizeof(coord));
    program("TPC_PARTICIPANT_BIN", "participant/participant", "participant", part, sizeof(part));
    for (i = 0; i < c->n_replicas; i++)
        snprintf(urls + strlen(urls), sizeof(urls) - strlen(urls), "%s%s", i ? "," : "",
                 url_of(c, i, u, sizeof(u)));
    for (i = 0; i < c->n_parts; i++) {
        char db[PATH_MAX + 64], sch[PATH_MAX + 64], tok[PATH_MAX + 64], log[PATH_MAX + 64];
        char *argv[] = {part,      "--name",     c->parts[i], "--db",
                        db,        "--schema",   sch,         "--port",
                        port,      "--replicas", urls,        "--token-file",
                        tok,       "--tls-cert", c->tls[0],   "--tls-key",
                        c->tls[1], "--tls-ca",   c->tls[2],   NULL};

        snprintf(db, sizeof(db), "%s/data/%s.db", c->dir, c->parts[i]);
        snprintf(sch, sizeof(sch), "%s/schema.sql", c->dir);
        snprintf(tok, sizeof(tok), "%s/cluster.token", c->dir);
        snprintf(log, sizeof(log), "%s/%s.log", c->dir, c->parts[i]);
        snprintf(port, sizeof(port), "%d", c->port[c->n_replicas + i]);
        if (!c->tls[0][0])
            argv[13] = NULL; /* plain HTTP: no --tls-* */
        c->pid[c->n_pids++] = spawn(argv, log);
    }
    snprintf(path, sizeof(path), "%s/cluster.json", c->dir);
    for (i = 0; i < c->n_replicas; i++) {
        char id[16], log[PATH_MAX + 64];
        char *init_argv[] = {coord, "--config", path, "--id", id, "--init", NULL};
        char *argv[] = {coord, "--config", path, "--id", id, NULL};
        int status = -1;
        pid_t p;

        snprintf(id, sizeof(id), "%d", i);
        snprintf(log, sizeof(log), "%s/replica-%d.log", c->dir, i);
        if (init) {
            p = spawn(init_argv, log);
            if (p < 0 || waitpid(p, &status, 0) != p || !WIFEXITED(status) ||
                WEXITSTATUS(status) != 0) {
                fprintf(stderr, "tpcctl: replica %d --init failed (see %s)\n", i, log);
                goto failed;
            }
        }
        c->pid[c->n_pids++] = spawn(argv, log);
    }
    /* DIR/pids now: an up interrupted while it waits leaves what `down` stops. */
    snprintf(path, sizeof(path), "%s/pids", c->dir);
    if (!(f = fopen(path, "w")))
        goto io;
    for (i = 0; i < c->n_pids; i++)
        fprintf(f, "%d\n", (int)c->pid[i]);
    if (fclose(f) != 0)
        goto io;
    /* Up when each answers its health check while the process we started runs (not another
     * that answers on its port); a process that exits is a failure. */
    until = mono_ms() + LC_WAIT_MS;
    for (i = 0; i < n; i++) {
        int k = i < c->n_replicas ? c->n_parts + i : i - c->n_replicas;
        bool answers = false;

        for (;;) {
            bool gone = c->pid[k] <= 0 || waitpid(c->pid[k], NULL, WNOHANG) == c->pid[k];

            if (!gone && answers)
                break;
            if (gone || mono_ms() > until) {
                fprintf(stderr, "tpcctl: %s did not come up (see the logs in %s)\n",
                        url_of(c, i, u, sizeof(u)), c->dir);
                goto failed;
            }
            pause_ms(answers ? 0 : 20);
            answers = healthy(url_of(c, i, u, sizeof(u)), c->tls[0][0] ? c->tls[2] : NULL,
                              i < c->n_replicas ? NULL : c->parts[i - c->n_replicas], i);
        }
    }
    return 0;
io:
    fprintf(stderr, "tpcctl: cannot write %s: %s\n", path, strerror(errno));
failed:
    stop_all(c);
    snprintf(path, sizeof(path), "%s/pids", c->dir);
    unlink(path);
    return 9;
}

static void print_up(const struct lc *c, bool again)
{
    char u[64];
    int i;

    printf("cluster up in %s: %d replica(s), %d participant(s)%s\n", c->dir, c->n_replicas,
           c->n_parts, again ? ", started again with its data" : "");
    for (i = 0; i < c->n_replicas; i++)
        printf("  replica %d       %s\n", i, url_of(c, i, u, sizeof(u)));
    for (i = 0; i < c->n_parts; i++)
        printf("  %-15s %s\n", c->parts[i], url_of(c, c->n_replicas + i, u, sizeof(u)));
    printf("  dashboard       %s/ui (the client token: %s/client.token)\n",
           url_of(c, 0, u, sizeof(u)), c->dir);
    if (c->tls[0][0])
        printf("  tls             HTTPS on every link, verified against %s (a browser must "
               "trust it for the dashboard)\n",
               c->tls[2]);
    printf("  logs            %s/*.log; stop it with: tpcctl cluster down --dir %s\n", c->dir,
           c->dir);
    printf("export TPC_URL=%s TPC_CLIENT_TOKEN=$(cat %s/client.token)", url_of(c, 0, u, sizeof(u)),
           c->dir);
    if (c->tls[0][0])
        printf(" TPC_CA=%s", c->tls[2]);
    printf("\n");
}

/* A new cluster in DIR, or the stopped one DIR holds started again as it was. */
static int up(struct lc *c)
{
    char path[PATH_MAX + 64];
    bool again;
    int rc, i;

    if (c->tls_dir && (rc = tls_files(c, c->tls_dir)) != 0)
        return rc; /* before anything is made */
    if (mkdir(c->dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "tpcctl: cannot make %s: %s\n", c->dir, strerror(errno));
        return 9;
    }
    errno = 0;
    if (!realpath(c->dir, path) || snprintf(c->dir, sizeof(c->dir), "%s", path) >= 1024) {
        fprintf(stderr, "tpcctl: %s: %s\n", c->dir,
                errno ? strerror(errno) : "its path is longer than 1023 characters");
        return 9;
    }
    snprintf(path, sizeof(path), "%s/pids", c->dir);
    if (access(path, F_OK) == 0 && any_running(c, path)) {
        fprintf(stderr, "tpcctl: a cluster is up in %s already (tpcctl cluster down --dir %s)\n",
                c->dir, c->dir);
        return 2;
    }
    unlink(path); /* its processes are gone: stopped by other means, or crashed */
    snprintf(path, sizeof(path), "%s/cluster.json", c->dir);
    again = access(path, F_OK) == 0;
    if (again && c->options) {
        fprintf(stderr,
                "tpcctl: %s holds a stopped cluster: `tpcctl cluster up --dir %s` starts it "
                "again as it was; the other options are for a new one (another --dir)\n",
                c->dir, c->dir);
        return 2;
    }
    rc = again ? read_config(c, path) : make_files(c);
    for (i = 0; again && !rc && i < c->n_replicas + c->n_parts; i++)
        if (!port_free(c->port[i])) {
            fprintf(stderr,
                    "tpcctl: port %d of the cluster in %s is in use (by its own processes, "
                    "still running without %s/pids, or by another program): not started\n",
                    c->port[i], c->dir, c->dir);
            rc = 2;
        }
    if (!rc)
        rc = start_all(c, !again);
    if (rc && !again && access(path, F_OK) == 0) /* a new one half made: never "stopped" */
        unlink(path);
    if (!rc)
        print_up(c, again);
    return rc;
}

static int down(struct lc *c)
{
    char path[PATH_MAX + 64], line[64], resolved[PATH_MAX];
    int stopped = 0, i;
    FILE *f = NULL;

    if (!realpath(c->dir, resolved)) {
        fprintf(stderr, "tpcctl: %s: %s\n", c->dir, strerror(errno));
        return 4;
    }
    snprintf(c->dir, sizeof(c->dir), "%s", resolved);
    snprintf(path, sizeof(path), "%s/pids", c->dir);
    if (!(f = fopen(path, "r"))) {
        fprintf(stderr, "tpcctl: no cluster is up in %s (no %s)\n", c->dir, path);
        return 4;
    }
    while (c->n_pids < LC_MAX_REPLICAS + LC_MAX_PARTS && fgets(line, sizeof(line), f)) {
        uint32_t pid = 0;

        line[strcspn(line, "\n")] = '\0';
        if (options_parse_u32(line, 1, INT32_MAX, &pid) == 0)
            c->pid[c->n_pids++] = (pid_t)pid;
    }
    fclose(f);
    for (i = 0; i < c->n_pids; i++)
        stopped += c->pid[i] > 0 && ours(c->pid[i], c->dir);
    stop_all(c);
    for (i = 0; i < c->n_pids; i++)
        if (c->pid[i] > 0 && ours(c->pid[i], c->dir))
            return 9;
    unlink(path);
    printf("cluster in %s stopped: %d process(es)\n", c->dir, stopped);
    return 0;
}

int local_cluster_main(int argc, char **argv)
{
    struct lc *c = calloc(1, sizeof(*c));
    int a, rc = 2;
    uint32_t n;
    char *list = NULL, *tok, *save = NULL;

    if (!c || argc < 1 || (strcmp(argv[0], "up") && strcmp(argv[0], "down")))
        goto usage;
    snprintf(c->dir, sizeof(c->dir), "tpc-cluster");
    c->n_replicas = 3;
    for (a = 1; a + 1 < argc; a += 2) {
        c->options = c->options || strcmp(argv[a], "--dir") != 0;
        if (!strcmp(argv[a], "--dir"))
            snprintf(c->dir, sizeof(c->dir), "%s", argv[a + 1]);
        else if (!strcmp(argv[0], "up") && !strcmp(argv[a], "--replicas") &&
                 options_parse_u32(argv[a + 1], 1, LC_MAX_REPLICAS, &n) == 0)
            c->n_replicas = (int)n;
        else if (!strcmp(argv[0], "up") && !strcmp(argv[a], "--participants"))
            list = argv[a + 1];
        else if (!strcmp(argv[0], "up") && !strcmp(argv[a], "--schema"))
            c->schema = argv[a + 1];
        else if (!strcmp(argv[0], "up") && !strcmp(argv[a], "--tls"))
            c->tls_dir = argv[a + 1];
        else
            goto usage;
    }
    if (a != argc || c->n_replicas < 1 || c->n_replicas > LC_MAX_REPLICAS || c->n_replicas % 2 == 0)
        goto usage;
    for (tok = list ? strtok_r(list, ",", &save) : NULL; tok; tok = strtok_r(NULL, ",", &save)) {
        if (c->n_parts == LC_MAX_PARTS || !msg_name_valid(tok))
            goto usage;
        for (n = 0; n < (uint32_t)c->n_parts; n++)
            if (!strcmp(c->parts[n], tok))
                goto usage; /* a name twice */
        snprintf(c->parts[c->n_parts++], TPC_NAME_MAX + 1, "%s", tok);
    }
    if (!list) {
        snprintf(c->parts[c->n_parts++], TPC_NAME_MAX + 1, "bank-a");
        snprintf(c->parts[c->n_parts++], TPC_NAME_MAX + 1, "bank-b");
    }
    signal(SIGPIPE, SIG_IGN);
    rc = !strcmp(argv[0], "up") ? up(c) : down(c);
    free(c);
    return rc;
usage:
    fprintf(stderr, "usage: tpcctl cluster up [--dir DIR] [--replicas 1|3|5|7|9] "
                    "[--participants a,b,...] [--schema FILE] [--tls CERTDIR]\n"
                    "       tpcctl cluster down [--dir DIR]\n");
    free(c);
    return rc;
}
