/* netfault.c - see netfault.h. A small list under one mutex: rules are few. */
#include "netfault.h"

#include "http_server.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define NETFAULT_MAX 32

struct rule {
    char peer[256];
    bool drop;
    uint32_t delay_ms;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct rule rules[NETFAULT_MAX];
static size_t n_rules;
static _Atomic size_t armed; /* n_rules, read without the lock: no rule, no lock per call */

static struct rule *find(struct rule *list, size_t n, const char *peer)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (!strcmp(list[i].peer, peer))
            return &list[i];
    return NULL;
}

enum tpc_err netfault_set(const json_t *in, char *err, size_t errlen)
{
    struct rule next[NETFAULT_MAX];
    json_t *drop = json_object_get(in, "drop"), *delay = json_object_get(in, "delay_ms"), *v;
    const char *key;
    size_t n = 0, i;

    if (!json_is_object(in))
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "rules are a JSON object");
    json_object_foreach((json_t *)in, key, v)
    {
        if (strcmp(key, "drop") && strcmp(key, "delay_ms"))
            return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "unknown key (use drop, delay_ms)");
    }
    if ((drop && !json_is_array(drop)) || (delay && !json_is_object(delay)))
        return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID,
                              "\"drop\" is an array of URLs, \"delay_ms\" an object URL -> ms");
    json_array_foreach(drop, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) >= sizeof(next[0].peer) || n == NETFAULT_MAX)
            return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "bad peer in \"drop\"");
        memset(&next[n], 0, sizeof(next[n]));
        memcpy(next[n].peer, json_string_value(v), json_string_length(v) + 1);
        next[n++].drop = true;
    }
    json_object_foreach(delay, key, v)
    {
        struct rule *r = find(next, n, key);

        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 600000 ||
            strlen(key) == 0 || strlen(key) >= sizeof(next[0].peer) || (!r && n == NETFAULT_MAX))
            return tpc_errbuf_set(err, errlen, TPC_ERR_INVALID, "bad entry in \"delay_ms\"");
        if (!r) {
            r = &next[n++];
            memset(r, 0, sizeof(*r));
            memcpy(r->peer, key, strlen(key) + 1);
        }
        r->delay_ms = (uint32_t)json_integer_value(v);
    }
    pthread_mutex_lock(&mu);
    memcpy(rules, next, n * sizeof(next[0]));
    n_rules = n;
    atomic_store(&armed, n);
    pthread_mutex_unlock(&mu);
    return TPC_OK;
}

json_t *netfault_get(void)
{
    json_t *drop = json_array(), *delay = json_object();
    size_t i;

    pthread_mutex_lock(&mu);
    for (i = 0; i < n_rules; i++) {
        if (rules[i].drop)
            json_array_append_new(drop, json_string(rules[i].peer));
        if (rules[i].delay_ms)
            json_object_set_new(delay, rules[i].peer, json_integer(rules[i].delay_ms));
    }
    pthread_mutex_unlock(&mu);
    return json_pack("{s:o,s:o}", "drop", drop, "delay_ms", delay);
}

/* The rule whose peer is the longest prefix of url, copied out under the lock. */
static bool match(const char *url, struct rule *out)
{
    size_t i, best = 0;
    bool found = false;

    if (!atomic_load_explicit(&armed, memory_order_relaxed))
        return false;
    pthread_mutex_lock(&mu);
    for (i = 0; i < n_rules; i++) {
        size_t len = strlen(rules[i].peer);

        if (len > best && strncmp(url, rules[i].peer, len) == 0) {
            *out = rules[i];
            best = len;
            found = true;
        }
    }
    pthread_mutex_unlock(&mu);
    return found;
}

bool netfault_drop(const char *url)
{
    struct rule r;

    return match(url, &r) && r.drop;
}

uint32_t netfault_delay_ms(const char *url)
{
    struct rule r;

    return match(url, &r) ? r.delay_ms : 0;
}

/* POST replaces the network-fault rules (netfault.h), GET shows them; cluster token. */
void netfault_http(const struct http_request *req, struct http_response *res, const char *token)
{
    char err[256];
    json_t *j;

    if (!http_authorized(req, token)) {
        http_respond_error(res, "unauthorized", "missing or wrong cluster token");
        return;
    }
    if (!strcmp(req->method, "POST")) {
        j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(j)) {
            http_respond_error(res, "bad_json", "the body is not a JSON object");
            json_decref(j);
            return;
        }
        if (netfault_set(j, err, sizeof(err)) != TPC_OK) {
            http_respond_error(res, "bad_request", "%s", err);
            json_decref(j);
            return;
        }
        json_decref(j);
    } else if (strcmp(req->method, "GET")) {
        http_respond_error(res, "method_not_allowed", "use GET or POST");
        return;
    }
    http_respond(res, 200, netfault_get());
}
