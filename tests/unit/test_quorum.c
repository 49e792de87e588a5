/* test_quorum.c - learning a chosen value: F+1 of 2F+1 acceptors, one ballot (quorum.h). */
#include "check.h"
#include "quorum.h"

static struct ballot b(uint64_t round, uint32_t replica)
{
    struct ballot x = {round, replica};
    return x;
}

static void test_sizes(void)
{
    CHECK_EQ_INT(quorum_size(1), 1);
    CHECK_EQ_INT(quorum_size(3), 2);
    CHECK_EQ_INT(quorum_size(5), 3);
    CHECK_EQ_INT(quorum_size(9), 5);
}

static void test_chosen(void)
{
    struct quorum q = {0};
    enum tpc_value c;

    /* F = 1: one acceptor is not enough; the same acceptor twice is still one. */
    CHECK_EQ_INT(quorum_add(&q, 3, 0, b(0, 0), TPC_VALUE_PREPARED, &c), TPC_OK);
    CHECK_EQ_INT(c, TPC_VALUE_NONE);
    CHECK_EQ_INT(quorum_add(&q, 3, 0, b(0, 0), TPC_VALUE_PREPARED, &c), TPC_OK);
    CHECK_EQ_INT(c, TPC_VALUE_NONE);
    /* Another acceptor in another ballot does not make a quorum either. */
    CHECK_EQ_INT(quorum_add(&q, 3, 1, b(1, 2), TPC_VALUE_PREPARED, &c), TPC_OK);
    CHECK_EQ_INT(c, TPC_VALUE_NONE);
    /* Two acceptors in one ballot do. */
    CHECK_EQ_INT(quorum_add(&q, 3, 2, b(1, 2), TPC_VALUE_PREPARED, &c), TPC_OK);
    CHECK_EQ_INT(c, TPC_VALUE_PREPARED);
    /* One ballot, two values: refused, nothing counted. */
    CHECK_EQ_INT(quorum_add(&q, 3, 0, b(1, 2), TPC_VALUE_ABORTED, &c), TPC_ERR_PROTOCOL);
    CHECK_EQ_INT(c, TPC_VALUE_NONE);

    /* F = 0: the one acceptor decides. F = 2: three of five. */
    q = (struct quorum){0};
    CHECK_EQ_INT(quorum_add(&q, 1, 0, b(0, 0), TPC_VALUE_ABORTED, &c), TPC_OK);
    CHECK_EQ_INT(c, TPC_VALUE_ABORTED);
    q = (struct quorum){0};
    quorum_add(&q, 5, 4, b(2, 1), TPC_VALUE_ABORTED, &c);
    quorum_add(&q, 5, 3, b(2, 1), TPC_VALUE_ABORTED, &c);
    CHECK_EQ_INT(c, TPC_VALUE_NONE);
    quorum_add(&q, 5, 0, b(2, 1), TPC_VALUE_ABORTED, &c);
    CHECK_EQ_INT(c, TPC_VALUE_ABORTED);
}

static void test_slots(void)
{
    struct quorum q = {0};
    enum tpc_value c;
    uint64_t r;

    /* Fill every slot with ballots 10..17, one acceptor each. */
    for (r = 10; r < 10 + QUORUM_SLOTS; r++)
        CHECK_EQ_INT(quorum_add(&q, 3, 0, b(r, 0), TPC_VALUE_ABORTED, &c), TPC_OK);
    /* A lower ballot is dropped when full: no quorum can form from it. */
    CHECK_EQ_INT(quorum_add(&q, 3, 1, b(3, 0), TPC_VALUE_ABORTED, &c), TPC_OK);
    CHECK_EQ_INT(quorum_add(&q, 3, 2, b(3, 0), TPC_VALUE_ABORTED, &c), TPC_OK);
    CHECK_EQ_INT(c, TPC_VALUE_NONE);
    /* A higher one evicts the lowest (10) and still counts. */
    CHECK_EQ_INT(quorum_add(&q, 3, 1, b(30, 0), TPC_VALUE_ABORTED, &c), TPC_OK);
    CHECK_EQ_INT(quorum_add(&q, 3, 2, b(30, 0), TPC_VALUE_ABORTED, &c), TPC_OK);
    CHECK_EQ_INT(c, TPC_VALUE_ABORTED);
    /* The kept ballots still count. */
    CHECK_EQ_INT(quorum_add(&q, 3, 1, b(17, 0), TPC_VALUE_ABORTED, &c), TPC_OK);
    CHECK_EQ_INT(c, TPC_VALUE_ABORTED);
}

void run_tests(void)
{
    test_sizes();
    test_chosen();
    test_slots();
}

CHECK_MAIN("quorum")
