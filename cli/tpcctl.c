/*
 * tpcctl.c - a command-line client of a coordinator replica's REST API.
 *
 *   tpcctl [options] begin [--txid ID] [--timeout-ms N]
 *   tpcctl [options] exec [--seq N] TXID PARTICIPANT SQL [PARAM...]
 *   tpcctl [options] commit TXID | abort TXID | status TXID
 *   tpcctl [options] list [active|preparing|in_doubt|committed|aborted]
 *   tpcctl [options] health [URL...]
 *   tpcctl [options] resolve TXID [REPLICA_URL...]          abort through Paxos (an operator)
 *   tpcctl [options] resolve --heuristic commit|abort --participant URL TXID
 *   tpcctl [options] heuristics --participant URL
 *   tpcctl cluster up|down [...]          a local cluster (local_cluster.h)
 *
 * Readable output by default, the server's JSON with --json. Exit codes (for scripts):
 * see usage() and README.md.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "local_cluster.h"
#include "msg.h"
#include "options.h"

enum exit_code {
    EXIT_OK = 0,          /* done; for commit: committed */
    EXIT_ABORTED = 1,     /* commit answered: the transaction aborted */
    EXIT_USAGE = 2,       /* bad command line */
    EXIT_CONFLICT = 3,    /* 409: lock timeout, constraint, state conflict */
    EXIT_NOT_FOUND = 4,   /* 404 */
    EXIT_UNDECIDED = 5,   /* 503: not decided yet; ask its status later */
    EXIT_REFUSED = 6,     /* 400, 403, 413: the request itself was refused */
    EXIT_AUTH = 7,        /* 401 */
    EXIT_UNREACHABLE = 8, /* no answer from the replica */
    EXIT_SERVER = 9,      /* any other error */
};

struct body {
    char *data;
    size_t n;
};

static const char *ca_file; /* --ca: the CA an https:// replica's certificate is checked with */
static char why[CURL_ERROR_SIZE]; /* curl's words when a call got no answer */

static void usage(FILE *f)
{
    fprintf(f, "usage: tpcctl [--url URL] [--token-file FILE] [--ca FILE] [--json] COMMAND [ARGS]\n"
               "\n"
               "  begin [--txid ID] [--timeout-ms N]      begin a transaction; prints its id\n"
               "  exec [--seq N] TXID PARTICIPANT SQL [PARAM...]\n"
               "                                          run SQL in the transaction at a\n"
               "                                          participant; a PARAM that is JSON\n"
               "                                          (5, null, true, \"x\") binds as such,\n"
               "                                          anything else as a string. --seq N\n"
               "                                          numbers the transaction's execs at\n"
               "                                          that participant (1, 2, ...): the\n"
               "                                          same command again runs nothing and\n"
               "                                          prints the first answer\n"
               "  commit TXID                             commit; prints the outcome\n"
               "  abort TXID                              abort\n"
               "  status TXID                             the transaction's state\n"
               "  list [STATE]                            transactions, all or in one state\n"
               "                                          (active, preparing, in_doubt,\n"
               "                                          committed, aborted)\n"
               "  health [URL...]                         each replica's health (default: --url)\n"
               "  resolve TXID [REPLICA_URL...]           end an undecided transaction now: abort\n"
               "                                          it through Paxos at the first replica\n"
               "                                          (default: --url) that holds its votes;\n"
               "                                          prints the outcome chosen (committed if\n"
               "                                          every vote was chosen prepared already)\n"
               "  resolve --heuristic commit|abort --participant URL TXID\n"
               "                                          an operator's heuristic decision of a\n"
               "                                          prepared branch whose replicas are lost\n"
               "                                          (token: the cluster token, --token-file\n"
               "                                          or $TPC_CLUSTER_TOKEN)\n"
               "  heuristics --participant URL            the heuristic decisions made there:\n"
               "                                          pending, confirmed or mixed\n"
               "  cluster up [--dir DIR] [--replicas N] [--participants a,b] [--schema FILE]\n"
               "             [--tls CERTDIR]\n"
               "                                          start a cluster on free loopback\n"
               "                                          ports (DIR: ./tpc-cluster); prints\n"
               "                                          its URLs and the environment for\n"
               "                                          tpcctl; --tls CERTDIR: HTTPS on\n"
               "                                          every link with CERTDIR's ca.pem,\n"
               "                                          node.pem, node.key (scripts/dev-certs).\n"
               "                                          In a DIR with a stopped cluster: start\n"
               "                                          it again as it was\n"
               "  cluster down [--dir DIR]                stop it\n"
               "\n"
               "  --url URL         a replica (default $TPC_URL or http://127.0.0.1:7101)\n"
               "  --token-file F    the client token (default: $TPC_CLIENT_TOKEN)\n"
               "  --ca FILE         the CA (PEM) an https:// replica's certificate is verified\n"
               "                    against (default: $TPC_CA, else the system's CAs)\n"
               "  --json            print the replica's JSON answer as it is\n"
               "\n"
               "Exit status: 0 done (commit: committed), 1 commit answered aborted, 2 usage,\n"
               "3 conflict (409), 4 not found (404), 5 undecided (503: ask its status later),\n"
               "6 request refused (400/403/413), 7 unauthorized (401), 8 replica unreachable,\n"
               "9 other error.\n");
}

static size_t collect(char *p, size_t s, size_t n, void *ud)
{
    struct body *b = ud;
    size_t k = s * n;
    char *bigger;

    if (b->n + k > 64 * 1024 * 1024)
        return 0;
    bigger = realloc(b->data, b->n + k + 1);
    if (!bigger)
        return 0;
    b->data = bigger;
    memcpy(b->data + b->n, p, k);
    b->n += k;
    b->data[b->n] = '\0';
    return k;
}

/* One call; *out is the parsed JSON answer (NULL when none); returns the HTTP status or 0. */
static long call(const char *method, const char *url, const char *token, const char *body,
                 json_t **out)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    struct body b = {NULL, 0};
    CURL *c = curl_easy_init();
    char auth[600];
    long code = 0;

    *out = NULL;
    if (token && *token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (ca_file && *ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
    why[0] = '\0';
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, why);
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        *out = b.data ? json_loadb(b.data, b.n, 0, NULL) : NULL;
    }
    free(b.data);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return code;
}

static int exit_for(long status)
{
    switch (status) {
    case 0:
        return EXIT_UNREACHABLE;
    case 200:
    case 201:
        return EXIT_OK;
    case 401:
        return EXIT_AUTH;
    case 404:
        return EXIT_NOT_FOUND;
    case 409:
        return EXIT_CONFLICT;
    case 503:
        return EXIT_UNDECIDED;
    case 400:
    case 403:
    case 405:
    case 413:
        return EXIT_REFUSED;
    default:
        return EXIT_SERVER;
    }
}

static void print_error(long status, json_t *j, const char *url)
{
    json_t *e = json_object_get(j, "error");

    if (!status)
        fprintf(stderr, "tpcctl: no answer from %s%s%s\n", url, why[0] ? ": " : "", why);
    else if (e)
        fprintf(stderr, "tpcctl: %s (%ld %s)\n", json_string_value(json_object_get(e, "message")),
                status, json_string_value(json_object_get(e, "code")));
    else
        fprintf(stderr, "tpcctl: HTTP %ld\n", status);
}

static void print_value(json_t *v)
{
    char *t;

    if (json_is_string(v)) {
        printf("%s", json_string_value(v));
        return;
    }
    t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    printf("%s", t ? t : "?");
    free(t);
}

/* Rows as tab-separated lines under a header, then how many rows changed. */
static void print_results(json_t *results)
{
    size_t i, k, r;
    json_t *res, *row, *v;

    json_array_foreach(results, i, res)
    {
        json_t *cols = json_object_get(res, "columns"), *rows = json_object_get(res, "rows");

        if (json_array_size(cols)) {
            json_array_foreach(cols, k, v)
            {
                printf("%s%s", k ? "\t" : "", json_string_value(v));
            }
            printf("\n");
            json_array_foreach(rows, r, row)
            {
                json_array_foreach(row, k, v)
                {
                    printf("%s", k ? "\t" : "");
                    print_value(v);
                }
                printf("\n");
            }
        }
        printf("%lld row(s) changed\n",
               (long long)json_integer_value(json_object_get(res, "changes")));
    }
}

static void print_txn(json_t *j)
{
    json_t *parts = json_object_get(j, "participants"), *v;
    size_t i;

    printf("%s\t%s", json_string_value(json_object_get(j, "txid")),
           json_string_value(json_object_get(j, "state")));
    json_array_foreach(parts, i, v)
    {
        printf("%s%s", i ? "," : "\t", json_string_value(v));
    }
    printf("\n");
}

/* Whether t is a transaction id; if not, says so. It goes into a URL's path: "x/commit?" would
 * make another request than the one asked for. */
static bool txid_ok(const char *t)
{
    if (msg_txid_valid(t))
        return true;
    fprintf(stderr,
            "tpcctl: \"%s\" is not a transaction id (1 to %d letters, digits, '_' or '-')\n", t,
            TPC_TXID_MAX);
    return false;
}

/* txid, the heuristic decision, and how it stands: pending, confirmed or mixed. */
static void print_heuristic(json_t *h)
{
    json_t *o = json_object_get(h, "outcome");

    printf("%s\theuristic %s\t%s%s%s\n", json_string_value(json_object_get(h, "txid")),
           json_string_value(json_object_get(h, "heuristic")),
           json_string_value(json_object_get(h, "state")), json_is_string(o) ? "\tchosen " : "",
           json_is_string(o) ? json_string_value(o) : "");
}

int main(int argc, char **argv)
{
    const char *url = getenv("TPC_URL") ? getenv("TPC_URL") : "http://127.0.0.1:7101";
    const char *cmd, *token_env = getenv("TPC_CLIENT_TOKEN");
    const char *cluster_token_env = getenv("TPC_CLUSTER_TOKEN");
    bool token_given = false;
    char token[512] = "", target[2048], *text = NULL;
    json_t *body = NULL, *answer = NULL, *params;
    long status = 0;
    bool json = false;
    int a = 1, rc = EXIT_USAGE, i;

    if (token_env)
        snprintf(token, sizeof(token), "%s", token_env);
    ca_file = getenv("TPC_CA");
    for (; a < argc && argv[a][0] == '-'; a++) {
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
            usage(stdout);
            return EXIT_OK;
        } else if (!strcmp(argv[a], "--json")) {
            json = true;
        } else if (!strcmp(argv[a], "--url") && a + 1 < argc) {
            url = argv[++a];
        } else if (!strcmp(argv[a], "--ca") && a + 1 < argc) {
            ca_file = argv[++a];
        } else if (!strcmp(argv[a], "--token-file") && a + 1 < argc) {
            token_given = true;
            if (options_read_token(argv[++a], token, sizeof(token)) != 0) {
                fprintf(stderr, "tpcctl: cannot read %s\n", argv[a]);
                return EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "tpcctl: unknown option %s (see --help)\n", argv[a]);
            return EXIT_USAGE;
        }
    }
    if (a >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    cmd = argv[a++];
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!strcmp(cmd, "cluster")) {
        rc = local_cluster_main(argc - a, argv + a);
        goto out;
    }
    if (!strcmp(cmd, "begin")) {
        body = json_object();
        for (; a + 1 < argc; a += 2) {
            uint32_t ms;

            if (!strcmp(argv[a], "--txid") && txid_ok(argv[a + 1]))
                json_object_set_new(body, "txid", json_string(argv[a + 1]));
            else if (!strcmp(argv[a], "--timeout-ms") &&
                     options_parse_u32(argv[a + 1], 1, 86400000, &ms) == 0)
                json_object_set_new(body, "timeout_ms", json_integer(ms));
            else
                goto bad;
        }
        if (a != argc)
            goto bad;
        snprintf(target, sizeof(target), "%s/v1/transactions", url);
        text = json_dumps(body, JSON_COMPACT);
        status = call("POST", target, token, text, &answer);
        if (status == 201 && !json)
            printf("%s\n", json_string_value(json_object_get(answer, "txid")));
    } else if (!strcmp(cmd, "exec") && argc - a >= 3) {
        uint32_t seq = 0;

        if (!strcmp(argv[a], "--seq")) {
            if (argc - a < 5 || options_parse_u32(argv[a + 1], 1, UINT32_MAX, &seq) != 0)
                goto bad;
            a += 2;
        }
        if (!txid_ok(argv[a]))
            goto not_txid;
        params = json_array();
        body = json_pack("{s:s,s:s,s:o}", "participant", argv[a + 1], "sql", argv[a + 2], "params",
                         params);
        if (seq)
            json_object_set_new(body, "seq", json_integer(seq));
        for (i = a + 3; i < argc; i++) {
            json_t *v = json_loads(argv[i], JSON_DECODE_ANY, NULL);

            json_array_append_new(params, v ? v : json_string(argv[i]));
        }
        snprintf(target, sizeof(target), "%s/v1/transactions/%s/exec", url, argv[a]);
        text = json_dumps(body, JSON_COMPACT);
        status = call("POST", target, token, text, &answer);
        if (status == 200 && !json)
            print_results(json_object_get(answer, "results"));
    } else if ((!strcmp(cmd, "commit") || !strcmp(cmd, "abort") || !strcmp(cmd, "status")) &&
               argc - a == 1) {
        bool get = !strcmp(cmd, "status");

        if (!txid_ok(argv[a]))
            goto not_txid;
        snprintf(target, sizeof(target), "%s/v1/transactions/%s%s%s", url, argv[a], get ? "" : "/",
                 get ? "" : cmd);
        status = call(get ? "GET" : "POST", target, token, get ? NULL : "", &answer);
        if (status == 200 && !json)
            print_txn(answer);
    } else if (!strcmp(cmd, "list") && argc - a <= 1) {
        snprintf(target, sizeof(target), "%s/v1/transactions%s%s", url, a < argc ? "?state=" : "",
                 a < argc ? argv[a] : "");
        status = call("GET", target, token, NULL, &answer);
        if (status == 200 && !json) {
            size_t k;
            json_t *t;

            json_array_foreach(json_object_get(answer, "transactions"), k, t)
            {
                print_txn(t);
            }
        }
    } else if (!strcmp(cmd, "resolve") && argc - a >= 1 && strcmp(argv[a], "--heuristic") != 0) {
        /* At each replica given in turn, until one holds the transaction's votes. */
        int n = argc - a - 1 > 0 ? argc - a - 1 : 1;

        if (!txid_ok(argv[a]))
            goto not_txid;
        for (i = 0; i < n; i++) {
            const char *u = argc - a - 1 > 0 ? argv[a + 1 + i] : url;

            json_decref(answer);
            snprintf(target, sizeof(target), "%s/v1/transactions/%s/resolve", u, argv[a]);
            status = call("POST", target, token, "{\"outcome\":\"aborted\"}", &answer);
            url = u;
            if (status != 0 && status != 404)
                break;
        }
        if (status == 200 && !json)
            print_txn(answer);
    } else if (!strcmp(cmd, "resolve") && argc - a == 5 && !strcmp(argv[a + 2], "--participant") &&
               (!strcmp(argv[a + 1], "commit") || !strcmp(argv[a + 1], "abort"))) {
        if (!txid_ok(argv[a + 4]))
            goto not_txid;
        if (cluster_token_env && !token_given)
            snprintf(token, sizeof(token), "%s", cluster_token_env);
        url = argv[a + 3];
        snprintf(target, sizeof(target), "%s/v1/branches/%s/heuristic", url, argv[a + 4]);
        status = call("POST", target, token,
                      !strcmp(argv[a + 1], "commit") ? "{\"outcome\":\"committed\"}"
                                                     : "{\"outcome\":\"aborted\"}",
                      &answer);
        if (status == 200 && !json)
            print_heuristic(answer);
    } else if (!strcmp(cmd, "heuristics") && argc - a == 2 && !strcmp(argv[a], "--participant")) {
        size_t k;
        json_t *h;

        if (cluster_token_env && !token_given)
            snprintf(token, sizeof(token), "%s", cluster_token_env);
        url = argv[a + 1];
        snprintf(target, sizeof(target), "%s/v1/heuristics", url);
        status = call("GET", target, token, NULL, &answer);
        if (status == 200 && !json)
            json_array_foreach(json_object_get(answer, "heuristics"), k, h)
            {
                print_heuristic(h);
            }
    } else if (!strcmp(cmd, "health")) {
        /* Every replica given (or --url): one line each; fails if any is not healthy. */
        int n = argc - a > 0 ? argc - a : 1;

        rc = EXIT_OK;
        for (i = 0; i < n; i++) {
            const char *u = argc - a > 0 ? argv[a + i] : url;

            snprintf(target, sizeof(target), "%s/health", u);
            status = call("GET", target, NULL, NULL, &answer);
            if (json && answer) {
                text = json_dumps(answer, JSON_COMPACT);
                printf("%s\n", text);
                free(text);
                text = NULL;
            } else if (status == 200) {
                printf("%s\tok\treplica %lld of %lld\t%lld transaction(s)\n", u,
                       (long long)json_integer_value(json_object_get(answer, "replica")),
                       (long long)json_integer_value(json_object_get(answer, "replicas")),
                       (long long)json_integer_value(json_object_get(answer, "transactions")));
            } else {
                printf("%s\tDOWN\n", u);
            }
            if (status != 200)
                rc = EXIT_UNREACHABLE;
            json_decref(answer);
            answer = NULL;
        }
        goto out;
    } else {
        goto bad;
    }
    rc = exit_for(status);
    if (json && answer) {
        char *t = json_dumps(answer, JSON_COMPACT);

        printf("%s\n", t ? t : "");
        free(t);
    } else if (rc != EXIT_OK) {
        print_error(status, answer, url);
    }
    /* A commit that ended in abort is an answer, but not what the script hoped for. */
    if (rc == EXIT_OK && !strcmp(cmd, "commit")) {
        const char *o = json_string_value(json_object_get(answer, "outcome"));

        if (!o || strcmp(o, "committed") != 0)
            rc = EXIT_ABORTED;
    }
    goto out;
bad:
    fprintf(stderr, "tpcctl: bad arguments for %s (see --help)\n", cmd);
not_txid:
    rc = EXIT_USAGE;
out:
    json_decref(body);
    json_decref(answer);
    free(text);
    curl_global_cleanup();
    return rc;
}
