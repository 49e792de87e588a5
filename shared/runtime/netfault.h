/*
 * netfault.h - network faults for fault tests, switched at run time: calls from this
 * process to named peers (URL prefixes) are dropped, or delayed. A partition between two
 * processes is each of them dropping its calls to the other. Inert until rules are set
 * (by the admin endpoint, POST /v1/admin/faults). Thread-safe.
 */
#ifndef TPC_NETFAULT_H
#define TPC_NETFAULT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "tpc_err.h"

/*
 * Replaces the rules with {"drop": [peer, ...], "delay_ms": {peer: ms, ...}} (both keys
 * optional; {} heals everything). A peer is a URL prefix. Invalid input changes nothing.
 */
enum tpc_err netfault_set(const json_t *rules, char *err, size_t errlen);
/* The current rules, as set (caller owns the result). */
json_t *netfault_get(void);
/* The admin endpoint /v1/admin/faults: POST sets the rules, GET shows them (token). */
struct http_request;
struct http_response;
void netfault_http(const struct http_request *req, struct http_response *res, const char *token);

/* For a call to url: whether to drop it, and how long to delay it. */
bool netfault_drop(const char *url);
uint32_t netfault_delay_ms(const char *url);

#endif
