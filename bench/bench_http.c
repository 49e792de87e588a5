/* bench_http.c - see bench_http.h. */
#include "bench_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *ca;

void bench_set_ca(const char *ca_file)
{
    ca = ca_file;
}

void bench_tls(CURL *c)
{
    if (ca && *ca)
        curl_easy_setopt(c, CURLOPT_CAINFO, ca);
}

double bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

size_t bench_collect(char *p, size_t s, size_t n, void *ud)
{
    struct bench_buf *b = ud;
    size_t k = s * n;

    if (b->n + k >= sizeof(b->data))
        return 0;
    memcpy(b->data + b->n, p, k);
    b->n += k;
    b->data[b->n] = '\0';
    return k;
}

long bench_post(CURL *c, struct curl_slist *h, const char *url, const char *body,
                struct bench_buf *out)
{
    long code = 0;

    out->n = 0;
    out->data[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    else
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, bench_collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    bench_tls(c);
    if (curl_easy_perform(c) != CURLE_OK)
        return 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

struct curl_slist *bench_headers(const char *auth)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");

    h = curl_slist_append(h, "Expect:");
    if (auth && auth[0])
        h = curl_slist_append(h, auth);
    return h;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void bench_sort(double *v, size_t n)
{
    qsort(v, n, sizeof(double), cmp);
}

double bench_pct(const double *v, size_t n, double p)
{
    return n ? v[(size_t)(p * (double)(n - 1))] : 0.0;
}

int bench_auth_from_file(const char *path, char *auth, size_t len)
{
    FILE *f = fopen(path, "r");
    char t[512] = "";

    if (!f)
        return -1;
    if (!fgets(t, sizeof(t), f)) {
        fclose(f);
        return -1;
    }
    fclose(f);
    t[strcspn(t, "\r\n")] = '\0';
    snprintf(auth, len, "Authorization: Bearer %s", t);
    return 0;
}
