/* bench_http.h - what the benchmark programs share: clock, POST, percentiles, token. */
#ifndef TPC_BENCH_HTTP_H
#define TPC_BENCH_HTTP_H

#include <curl/curl.h>
#include <stddef.h>

struct bench_buf {
    char data[8192];
    size_t n;
};

double bench_now(void);
/* The write callback filling a struct bench_buf (an overflow fails the transfer). */
size_t bench_collect(char *p, size_t s, size_t n, void *ud);
/* POSTs body to url; the status (0 on a transport error), the answer in *out. */
long bench_post(CURL *c, struct curl_slist *h, const char *url, const char *body,
                struct bench_buf *out);
/* Headers for JSON calls, with "Authorization: Bearer <token>" when auth is not empty. */
struct curl_slist *bench_headers(const char *auth);
/* Sorts v and returns its p-quantile (0 <= p <= 1); 0 when n is 0. */
void bench_sort(double *v, size_t n);
double bench_pct(const double *v, size_t n, double p);
/* The CA (PEM file) https:// servers' certificates are verified against, for every handle
 * bench_tls is given (NULL: the system's). */
void bench_set_ca(const char *ca_file);
void bench_tls(CURL *c);
/* Fills auth ("Authorization: Bearer <first line of path>"); 0 or -1. */
int bench_auth_from_file(const char *path, char *auth, size_t len);

#endif
