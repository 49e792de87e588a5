/* quorum.c - counting phase 2b messages per ballot (see quorum.h). */
#include "quorum.h"

#include <assert.h>

uint32_t quorum_size(uint32_t n_acceptors)
{
    return n_acceptors / 2 + 1;
}

static uint32_t popcount(uint32_t x)
{
    uint32_t n = 0;

    for (; x; x &= x - 1)
        n++;
    return n;
}

enum tpc_err quorum_add(struct quorum *q, uint32_t n_acceptors, uint32_t acceptor,
                        struct ballot ballot, enum tpc_value value, enum tpc_value *chosen)
{
    struct quorum_slot *s = NULL;
    uint32_t i, low = 0;

    assert(acceptor < n_acceptors && n_acceptors <= TPC_MAX_REPLICAS);
    assert(value == TPC_VALUE_PREPARED || value == TPC_VALUE_ABORTED);
    *chosen = TPC_VALUE_NONE;
    for (i = 0; i < q->used; i++) {
        if (ballot_cmp(q->slot[i].ballot, ballot) == 0) {
            s = &q->slot[i];
            break;
        }
        if (ballot_cmp(q->slot[i].ballot, q->slot[low].ballot) < 0)
            low = i;
    }
    if (s && s->value != value)
        return TPC_ERR_PROTOCOL;
    if (!s) {
        if (q->used < QUORUM_SLOTS) {
            s = &q->slot[q->used++];
        } else if (ballot_cmp(ballot, q->slot[low].ballot) > 0) {
            s = &q->slot[low]; /* forget the lowest ballot; see the note in quorum.h */
        } else {
            return TPC_OK;
        }
        s->ballot = ballot;
        s->value = value;
        s->acceptors = 0;
    }
    s->acceptors |= 1u << acceptor;
    if (popcount(s->acceptors) >= quorum_size(n_acceptors))
        *chosen = value;
    return TPC_OK;
}
