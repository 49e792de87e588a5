/*
 * api.h - the participant's HTTP endpoints (listed in http-api.md), mapping
 * requests to participant.h and its errors to status codes with JSON bodies.
 */
#ifndef TPC_PARTICIPANT_API_H
#define TPC_PARTICIPANT_API_H

#include "http_server.h"

/* The http_handler_fn of the participant; ctx is its struct participant. */
void api_handle(void *ctx, const struct http_request *req, struct http_response *res);

#endif
