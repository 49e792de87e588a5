/*
 * quorum.h - learning which value is chosen in one Paxos instance.
 *
 * A value is chosen when F+1 of the 2F+1 acceptors accepted it in the same
 * ballot (DESIGN.md section 3). struct quorum counts phase 2b messages per
 * ballot. It keeps the QUORUM_SLOTS highest ballots it has heard of; a 2b for
 * a ballot below all of them when the slots are full is dropped, which can
 * only delay learning: a value chosen in a lower ballot is the value of every
 * higher ballot that is accepted (Paxos safety), so it is learned there too.
 */
#ifndef TPC_QUORUM_H
#define TPC_QUORUM_H

#include <stdint.h>

#include "ballot.h"
#include "msg.h"
#include "tpc_err.h"

#define QUORUM_SLOTS 8

struct quorum_slot {
    struct ballot ballot;
    enum tpc_value value;
    uint32_t acceptors; /* bit i: acceptor i accepted (ballot, value) */
};

struct quorum {
    uint32_t used;
    struct quorum_slot slot[QUORUM_SLOTS];
};

/* F+1 of n_acceptors = 2F+1. */
uint32_t quorum_size(uint32_t n_acceptors);

/*
 * Records that acceptor accepted (ballot, value). Sets *chosen to the value
 * when that makes F+1 acceptors (of n_acceptors) in one ballot, else leaves it
 * TPC_VALUE_NONE. Two different values in one ballot is TPC_ERR_PROTOCOL (no
 * correct proposer does that); q is then unchanged.
 */
enum tpc_err quorum_add(struct quorum *q, uint32_t n_acceptors, uint32_t acceptor,
                        struct ballot ballot, enum tpc_value value, enum tpc_value *chosen);

#endif
