/*
 * test_lockset.c - which locks each kind of change takes (participant/lockset.h), and how
 * the lock table holds them (participant/locks.h): shared and exclusive holds.
 *
 * The model: customers(id PK, email UNIQUE NOCASE, name), referred to by
 * orders(id PK, customer_id -> customers(id), ref UNIQUE, note UNIQUE RTRIM).
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lockset.h"
#include "locks.h"

int check_failures;
int check_count;

#define MAX_KEYS 16

struct got {
    char what[MAX_KEYS][200];
    unsigned char key[MAX_KEYS][LOCKSET_KEY_MAX];
    size_t len[MAX_KEYS];
    bool shared[MAX_KEYS];
    size_t n;
};

static void collect(void *ctx, const void *key, size_t len, bool shared)
{
    struct got *g = ctx;

    if (g->n == MAX_KEYS)
        return;
    lockset_describe(key, len, g->what[g->n], sizeof(g->what[g->n]));
    memcpy(g->key[g->n], key, len);
    g->len[g->n] = len;
    g->shared[g->n++] = shared;
}

static struct lockset_value I(int64_t i) {
    struct lockset_value v = {.type = LOCKSET_INT, .i = i};
    return v;
}

static struct lockset_value
R(double r) {
    struct lockset_value v = {.type = LOCKSET_REAL, .r = r};
    return v;
}

static struct lockset_value
T(const char *s) {
    struct lockset_value v = {.type = LOCKSET_TEXT, .p = s, .n = strlen(s)};
    return v;
}

static struct lockset_value
N(void) {
    struct lockset_value v = {.type = LOCKSET_NULL};
    return v;
}

static char *customer_cols[] = {"id", "email", "name"};
static char *order_cols[] = {"id", "customer_id", "ref", "note"};

#define KEY(n, c, coll)                                                                            \
    {                                                                                              \
        .name = (n), .cols = { 1, {(c)}, {(coll)} }                                                \
    }
static struct lockset_key customer_unique[] = {KEY("email", 1, LOCKSET_NOCASE)};
static struct lockset_key customer_parent_keys[] = {KEY("id", 0, LOCKSET_BINARY)};
static struct lockset_table customers = {.name = "customers",
                                         .ncol = 3,
                                         .colnames = customer_cols,
                                         .pk = KEY("id", 0, LOCKSET_BINARY),
                                         .unique = customer_unique,
                                         .n_unique = 1,
                                         .parent_keys = customer_parent_keys,
                                         .n_parent_keys = 1};

static struct lockset_key order_unique[] = {KEY("ref", 2, LOCKSET_BINARY),
                                            KEY("note", 3, LOCKSET_RTRIM)};
static struct lockset_fk order_fks[] = {
    {.parent = "customers", .keyname = "id", .cols = {1, {1}, {LOCKSET_BINARY}}}};
static struct lockset_table orders = {.name = "orders",
                                      .ncol = 4,
                                      .colnames = order_cols,
                                      .pk = KEY("id", 0, LOCKSET_BINARY),
                                      .unique = order_unique,
                                      .n_unique = 2,
                                      .fks = order_fks,
                                      .n_fks = 1};

static struct got change(const struct lockset_table *t, const struct lockset_value *old,
                         const struct lockset_value *new_, const struct lockset_value *parent)
{
    const struct lockset_value *parents[1] = {parent};
    struct got g;

    memset(&g, 0, sizeof(g));
    CHECK_EQ_INT(lockset_change(t, old, new_, parents, collect, &g), TPC_OK);
    return g;
}

/* g holds exactly the n descriptions (in order), shared as the letters say ('s'/'x'). */
static void expect(const struct got *g, const char *modes, const char *const *what)
{
    size_t i, n = strlen(modes);

    CHECK_EQ_INT(g->n, n);
    for (i = 0; i < n && i < g->n; i++) {
        CHECK_STR(g->what[i], what[i]);
        CHECK_EQ_INT(g->shared[i], modes[i] == 's');
    }
}

static void test_customer_changes(void)
{
    struct lockset_value a[] = {I(3), T("Cat@Example.com"), T("Cat")};
    struct lockset_value renamed[] = {I(3), T("Cat@Example.com"), T("Catherine")};
    struct lockset_value moved[] = {I(3), T("cat@new.example"), T("Cat")};
    struct lockset_value no_email[] = {I(4), N(), T("Nobody")};
    struct got g;

    /* Insert: its row and its email, exclusive; the email as NOCASE compares it. */
    g = change(&customers, NULL, a, NULL);
    expect(&g, "xx",
           (const char *[]){"the row customers(id) = (3)",
                            "the UNIQUE value customers(email) = ('cat@example.com')"});
    /* A NULL constrains nothing: the row alone. */
    g = change(&customers, NULL, no_email, NULL);
    expect(&g, "x", (const char *[]){"the row customers(id) = (4)"});
    /* An update of other columns: the row alone (the email stays the row's, and the row is
     * held; the key others refer to is unchanged). */
    g = change(&customers, a, renamed, NULL);
    expect(&g, "x", (const char *[]){"the row customers(id) = (3)"});
    /* A new email: the old one too, until the outcome (the branch may abort). */
    g = change(&customers, a, moved, NULL);
    expect(&g, "xxx",
           (const char *[]){"the row customers(id) = (3)",
                            "the UNIQUE value customers(email) = ('cat@example.com')",
                            "the UNIQUE value customers(email) = ('cat@new.example')"});
    /* Delete: row, email, and the key orders refer to, exclusive (no new child meanwhile). */
    g = change(&customers, a, NULL, NULL);
    expect(&g, "xxx",
           (const char *[]){"the row customers(id) = (3)",
                            "the UNIQUE value customers(email) = ('cat@example.com')",
                            "the referenced key customers(id) = (3)"});
}

static void test_order_changes(void)
{
    struct lockset_value parent[] = {I(3)}, other_parent[] = {I(5)};
    struct lockset_value o[] = {I(10), I(3), T("A-10"), N()};
    struct lockset_value o_amount[] = {I(10), I(3), T("A-10"), T("gift")};
    struct lockset_value o_moved[] = {I(10), I(5), T("A-10"), N()};
    struct lockset_value o_orphan[] = {I(11), N(), N(), N()};
    struct got g;

    /* Insert: row, ref, and its customer, shared (other orders may join; no delete). */
    g = change(&orders, NULL, o, parent);
    expect(&g, "xxs",
           (const char *[]){"the row orders(id) = (10)", "the UNIQUE value orders(ref) = ('A-10')",
                            "the referenced key customers(id) = (3)"});
    CHECK(lockset_fk_refers(&orders, 0, NULL, o));
    /* A NULL foreign key refers to nothing. */
    CHECK(!lockset_fk_refers(&orders, 0, NULL, o_orphan));
    g = change(&orders, NULL, o_orphan, NULL);
    expect(&g, "x", (const char *[]){"the row orders(id) = (11)"});
    /* An update of another column: neither the customer nor the ref. */
    CHECK(!lockset_fk_refers(&orders, 0, o, o_amount));
    g = change(&orders, o, o_amount, NULL);
    expect(
        &g, "xx",
        (const char *[]){"the row orders(id) = (10)", "the UNIQUE value orders(note) = ('gift')"});
    /* To another customer: the new one, shared. */
    CHECK(lockset_fk_refers(&orders, 0, o, o_moved));
    g = change(&orders, o, o_moved, other_parent);
    expect(&g, "xs",
           (const char *[]){"the row orders(id) = (10)", "the referenced key customers(id) = (5)"});
    /* Delete: row and ref; a child's delete holds no parent. */
    g = change(&orders, o, NULL, NULL);
    expect(
        &g, "xx",
        (const char *[]){"the row orders(id) = (10)", "the UNIQUE value orders(ref) = ('A-10')"});
    /* A child's lock and its parent's delete lock are one key. */
    {
        struct lockset_value c[] = {I(3), T("x@y"), N()};
        struct got child = change(&orders, NULL, o, parent),
                   del = change(&customers, c, NULL, NULL);

        CHECK_EQ_INT(child.len[2], del.len[2]);
        CHECK(memcmp(child.key[2], del.key[2], del.len[2]) == 0);
    }
}

/* Values SQLite finds equal make one key; values it tells apart, two. */
static void test_equal_values_share_a_key(void)
{
    struct lockset_value i3[] = {I(3), N(), N(), N()}, r3[] = {R(3.0), N(), N(), N()};
    struct lockset_value r35[] = {R(3.5), N(), N(), N()};
    struct lockset_value t1[] = {I(1), N(), N(), T("gift")}, t2[] = {I(1), N(), N(), T("gift   ")};
    struct lockset_value t3[] = {I(1), N(), N(), T(" gift")};
    char a[300], b[300], c[300];
    struct got g1, g2, g3;

    g1 = change(&orders, NULL, i3, NULL);
    g2 = change(&orders, NULL, r3, NULL);
    g3 = change(&orders, NULL, r35, NULL);
    CHECK(g1.len[0] == g2.len[0] && memcmp(g1.key[0], g2.key[0], g1.len[0]) == 0);
    CHECK(!(g1.len[0] == g3.len[0] && memcmp(g1.key[0], g3.key[0], g1.len[0]) == 0));
    CHECK_STR(g3.what[0], "the row orders(id) = (3.5)");
    /* RTRIM: trailing spaces do not count, leading ones do. */
    g1 = change(&orders, NULL, t1, NULL);
    g2 = change(&orders, NULL, t2, NULL);
    g3 = change(&orders, NULL, t3, NULL);
    CHECK_STR(g1.what[1], g2.what[1]);
    CHECK(g1.len[1] == g2.len[1] && memcmp(g1.key[1], g2.key[1], g1.len[1]) == 0);
    CHECK(!(g1.len[1] == g3.len[1] && memcmp(g1.key[1], g3.key[1], g1.len[1]) == 0));
    /* Long texts: by hash under the collation; equal under NOCASE, one key. */
    memset(a, 'a', sizeof(a) - 1);
    a[sizeof(a) - 1] = '\0';
    memcpy(b, a, sizeof(a));
    b[150] = 'A';
    memcpy(c, a, sizeof(a));
    c[150] = 'b';
    {
        struct lockset_value ca[] = {I(1), T(a), N()}, cb[] = {I(1), T(b), N()},
                             cc[] = {I(1), T(c), N()};

        g1 = change(&customers, NULL, ca, NULL);
        g2 = change(&customers, NULL, cb, NULL);
        g3 = change(&customers, NULL, cc, NULL);
        CHECK(g1.len[1] == g2.len[1] && memcmp(g1.key[1], g2.key[1], g1.len[1]) == 0);
        CHECK(!(g1.len[1] == g3.len[1] && memcmp(g1.key[1], g3.key[1], g1.len[1]) == 0));
        CHECK(strstr(g1.what[1], "...") != NULL);
    }
}

/* NOCASE compares lengths and the bytes up to a NUL, as SQLite's does. */
static void test_nocase_stops_at_nul(void)
{
    struct lockset_value a[] = {I(1), {.type = LOCKSET_TEXT, .p = "a\0x", .n = 3}, N()};
    struct lockset_value b[] = {I(1), {.type = LOCKSET_TEXT, .p = "A\0y", .n = 3}, N()};
    struct lockset_value c[] = {I(1), {.type = LOCKSET_TEXT, .p = "a\0xy", .n = 4}, N()};
    struct got ga = change(&customers, NULL, a, NULL), gb = change(&customers, NULL, b, NULL),
               gc = change(&customers, NULL, c, NULL);

    CHECK(ga.len[1] == gb.len[1] && memcmp(ga.key[1], gb.key[1], ga.len[1]) == 0);
    CHECK(!(ga.len[1] == gc.len[1] && memcmp(ga.key[1], gc.key[1], ga.len[1]) == 0));
}

/* A partial UNIQUE index: whether a row is in it may change with any column, so any update
 * locks its values (old and new, here the same). */
static void test_partial_index_locks_at_any_update(void)
{
    static struct lockset_key partial[] = {
        {.name = "email", .cols = {1, {1}, {LOCKSET_BINARY}}, .partial = true}};
    static struct lockset_table t = {.name = "u",
                                     .ncol = 3,
                                     .colnames = customer_cols,
                                     .pk = KEY("id", 0, LOCKSET_BINARY),
                                     .unique = partial,
                                     .n_unique = 1};
    struct lockset_value before[] = {I(1), T("x"), I(0)}, after[] = {I(1), T("x"), I(1)};
    struct got g = change(&t, before, after, NULL);

    expect(&g, "xxx",
           (const char *[]){"the row u(id) = (1)", "the UNIQUE value u(email) = ('x')",
                            "the UNIQUE value u(email) = ('x')"});
}

static void test_shared_and_exclusive_holds(void)
{
    struct locks *l = locks_new();
    struct lock_key sh = {"k", 1, true}, ex = {"k", 1, false}, other = {"o", 1, false};
    struct lock_key two[2] = {{"o", 1, false}, {"k", 1, true}};
    char blocker[80];
    uint64_t gen;
    size_t blocked;
    bool fresh[2];

    /* Any number of shared holders. */
    CHECK(locks_try_take(l, "a", &sh, 1, &blocked, blocker, sizeof(blocker), &gen, fresh));
    CHECK(fresh[0]);
    CHECK(locks_try_take(l, "b", &sh, 1, &blocked, blocker, sizeof(blocker), &gen, NULL));
    /* No exclusive while another shares, not even for a sharer. */
    CHECK(!locks_try_take(l, "c", &ex, 1, &blocked, blocker, sizeof(blocker), &gen, NULL));
    CHECK(!locks_try_take(l, "a", &ex, 1, &blocked, blocker, sizeof(blocker), &gen, NULL));
    CHECK_STR(blocker, "b");
    /* All or none: "o" is free but "k" is not, so "o" stays free. */
    CHECK(!locks_try_take(l, "c", (struct lock_key[]){{"o", 1, false}, {"k", 1, false}}, 2,
                          &blocked, blocker, sizeof(blocker), &gen, NULL));
    CHECK_EQ_INT(blocked, 1);
    CHECK(locks_try_take(l, "d", &other, 1, &blocked, blocker, sizeof(blocker), &gen, NULL));
    locks_release(l, "d", &other, 1);
    /* The last sharer alone may make its hold exclusive; then nobody shares. */
    locks_release(l, "b", &sh, 1);
    CHECK(locks_try_take(l, "a", &ex, 1, &blocked, blocker, sizeof(blocker), &gen, fresh));
    CHECK(!fresh[0]); /* held before: not fresh */
    CHECK(!locks_try_take(l, "b", &sh, 1, &blocked, blocker, sizeof(blocker), &gen, NULL));
    CHECK_STR(blocker, "a");
    /* One release lets go of it, whatever the mode. */
    locks_release(l, "a", &ex, 1);
    CHECK(locks_try_take(l, "b", two, 2, &blocked, blocker, sizeof(blocker), &gen, fresh));
    CHECK(fresh[0] && fresh[1]);
    locks_release(l, "b", two, 2);
    CHECK(locks_try_take(l, "c", &ex, 1, &blocked, blocker, sizeof(blocker), &gen, NULL));
    locks_release(l, "c", &ex, 1);
    locks_free(l);
}

int main(void)
{
    test_customer_changes();
    test_order_changes();
    test_equal_values_share_a_key();
    test_nocase_stops_at_nul();
    test_partial_index_locks_at_any_update();
    test_shared_and_exclusive_holds();
    printf("%d checks, %d failed\n", check_count, check_failures);
    return check_failures != 0;
}
