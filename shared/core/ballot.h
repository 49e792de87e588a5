/*
 * ballot.h - Paxos ballot numbers of Paxos Commit.
 *
 * A ballot is the pair (round, replica), ordered by round then replica, so two
 * replicas never use the same ballot. Ballot 0 = (0, 0) belongs to the
 * participant alone: it is the ballot of its own vote, which skips phase 1
 * (Gray & Lamport, "Consensus on Transaction Commit", section 4). Replicas
 * recover with rounds >= 1. (0, r) for r != 0 does not exist.
 */
#ifndef TPC_BALLOT_H
#define TPC_BALLOT_H

#include <stdbool.h>
#include <stdint.h>

/* Rounds stay at most 2^53 - 1 so they survive a JSON number in any client. */
#define BALLOT_ROUND_MAX (((uint64_t)1 << 53) - 1)

struct ballot {
    uint64_t round;
    uint32_t replica;
};

/* <0, 0, >0 as a is lower than, equal to, higher than b. */
int ballot_cmp(struct ballot a, struct ballot b);

bool ballot_is_zero(struct ballot b);

/* True when b is a ballot at all: round <= BALLOT_ROUND_MAX, and round 0 only as (0, 0). */
bool ballot_valid(struct ballot b, uint32_t max_replicas);

#endif
