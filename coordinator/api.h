/* api.h - the coordinator replica's HTTP endpoints (see api.c and http-api.md). */
#ifndef TPC_COORD_API_H
#define TPC_COORD_API_H

#include "http_server.h"

/* The http_handler_fn of a replica; ctx is its struct coord. */
void api_handle(void *ctx, const struct http_request *req, struct http_response *res);

#endif
