/* node_io.c - small constructors for the types of node_io.h. */
#include "node_io.h"

#include <string.h>

struct node_addr node_replica(uint32_t id)
{
    struct node_addr a;

    memset(&a, 0, sizeof(a));
    a.kind = NODE_REPLICA;
    a.id = id;
    return a;
}

struct node_addr node_participant(const char *name)
{
    struct node_addr a;

    memset(&a, 0, sizeof(a));
    a.kind = NODE_PARTICIPANT;
    msg_copy_str(a.name, TPC_NAME_MAX, name);
    return a;
}

struct node_addr node_client(void)
{
    struct node_addr a;

    memset(&a, 0, sizeof(a));
    a.kind = NODE_CLIENT;
    return a;
}

struct node_addr node_caller(uint32_t handle)
{
    struct node_addr a;

    memset(&a, 0, sizeof(a));
    a.kind = NODE_CALLER;
    a.id = handle;
    return a;
}

void node_write_init(struct node_write *w, enum node_write_kind kind, const char *txid)
{
    memset(w, 0, sizeof(*w));
    w->kind = kind;
    msg_copy_str(w->txid, TPC_TXID_MAX, txid);
}
