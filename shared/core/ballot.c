/* ballot.c - ordering and validity of ballots (see ballot.h). */
#include "ballot.h"

int ballot_cmp(struct ballot a, struct ballot b)
{
    if (a.round != b.round)
        return a.round < b.round ? -1 : 1;
    if (a.replica != b.replica)
        return a.replica < b.replica ? -1 : 1;
    return 0;
}

bool ballot_is_zero(struct ballot b)
{
    return b.round == 0 && b.replica == 0;
}

bool ballot_valid(struct ballot b, uint32_t max_replicas)
{
    if (b.round > BALLOT_ROUND_MAX || b.replica >= max_replicas)
        return false;
    return b.round > 0 || b.replica == 0;
}
