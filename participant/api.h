/*
 * api.h - the participant's HTTP endpoints (listed in http-api.md), mapping
 * requests to participant.h and its errors to status codes with JSON bodies.
 */
#ifndef TPC_PARTICIPANT_API_H
#define TPC_PARTICIPANT_API_H

#include "http_server.h"

/* The server's pools (http_server_config): statements, and every other call. */
enum { API_POOL_STATEMENTS, API_POOL_PROTOCOL };
#define PARTICIPANT_STATEMENT_THREADS 4
#define PARTICIPANT_PROTOCOL_THREADS  8
/* Most outcomes in one POST /v1/outcomes. */
#define API_OUTCOMES_MAX 1000

/* The http_handler_fn of the participant (on a pool's thread); ctx is its struct participant. */
void api_handle(void *ctx, const struct http_request *req, struct http_response *res);
/* Which pool runs req. */
size_t api_pool_of(void *ctx, const struct http_request *req);

#endif
