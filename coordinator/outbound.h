/*
 * outbound.h - how the replica driver's actions leave (engine.c dispatches them here):
 *   - calls: a batch of phase 1a/2a to an acceptor's POST /v1/paxos, a prepare or an outcome to
 *     a participant; each answer is fed to the driver when it comes back;
 *   - store operations: this replica's own acceptor on a batch, recovery rounds, decision
 *     records, learned outcomes; each completion is fed back once durable;
 *   - in bulk: told marks (written at each tick) and outcome announcements to the other
 *     replicas (sent every ENGINE_ANNOUNCE_MS), neither needed for safety.
 * Everything here runs on the loop, outside any driver call. Private to coordinator/.
 */
#ifndef TPC_COORD_OUTBOUND_H
#define TPC_COORD_OUTBOUND_H

#include <jansson.h>
#include <stddef.h>

#include "engine.h"

/* Starts a call of msgs[0..n) (copied) to base + path with body (stolen); replica: the
 * acceptor's id for a batch, else -1 and participant's name. */
void outbound_call(struct engine *e, const char *base, const char *path, json_t *body, int replica,
                   const char *participant, const struct msg *msgs, size_t n);
/* An outcome for participant index p of the config: queued, sent in a batch (engine.h). */
void outbound_outcome(struct engine *e, uint32_t p, const struct msg *m);
/* Sends what is queued for participant p, if fewer than ENGINE_OUTCOME_CALLS are out. */
void outbound_outcomes_flush(struct engine *e, uint32_t p);
/* Drops what is queued (the engine is closing): back in flight terms. */
void outbound_outcomes_drop(struct engine *e);
/* How many of the n messages at m go in one batch to an acceptor. */
size_t outbound_batch_size(const struct msg *m, size_t n);
/* This replica's own acceptor on msgs[0..n). */
void outbound_self(struct engine *e, const struct msg *msgs, size_t n);
/* One write of the driver (NODE_WRITE_LEARNED ones together: learned[0..n)). */
void outbound_write(struct engine *e, const struct node_write *w, const struct msg *learned,
                    size_t n);
/* Gathered for the next bulk step; a full buffer drops the announcement, fails the mark. */
void outbound_announce_later(struct engine *e, const struct msg *m);
void outbound_told_later(struct engine *e, const struct node_write *w);
void outbound_flush_told(struct engine *e);
void outbound_flush_announcements(struct engine *e);
/* Starts a collection of what is older than the horizon unless one is on its way. */
void outbound_collect(struct engine *e);

/* engine.c's, for what comes back (each enters the driver itself; call none inside a call):
 * a message of txid counted on its way (+1) or back (-1); messages that will not be answered;
 * a prepare of txid on its way, and back (held-back phase 2a go into this event's box; inside
 * an event);
 * txid changed (the owner's waiting requests); a write that failed before it started. */
void engine_flight_change(struct engine *e, const char *txid, int delta);
void engine_flight_back(struct engine *e, const struct msg *msgs, size_t n);
bool engine_prepare_out(struct engine *e, const char *txid); /* false: not counted */
void engine_unpark(struct engine *e, const char *txid);
void engine_changed(struct engine *e, const char *txid);
void engine_write_failed(struct engine *e, const struct node_write *w);

#endif
