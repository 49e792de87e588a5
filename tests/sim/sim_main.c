/*
 * sim_main.c - runs seeds through the simulator and reports.
 *
 *   tpcsim --f 1 --seeds 10000           10,000 seeded schedules with 3 replicas
 *   tpcsim --f 1 --seed 42 --trace       replay one schedule, printing every message
 *   tpcsim --break accept-lower-ballot --expect-violation --seeds 2000
 *
 * Exit status: 0 when every seed passed (with --expect-violation: when some
 * seed was caught), 1 otherwise, 2 on a usage error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "breakable.h"
#include "sim.h"

static const struct {
    const char *name;
    enum tpc_break rule;
} breaks[] = {
    {"accept-lower-ballot", TPC_BREAK_ACCEPT_LOWER_BALLOT},
    {"decide-on-votes", TPC_BREAK_DECIDE_ON_VOTES},
    {"recover-prepared", TPC_BREAK_RECOVER_PREPARED},
    {"forget-aborted-vote", TPC_BREAK_FORGET_ABORTED_VOTE},
    {"tell-before-record", TPC_BREAK_TELL_BEFORE_RECORD},
    {"answer-before-chosen", TPC_BREAK_ANSWER_BEFORE_CHOSEN},
    {"told-before-ack", TPC_BREAK_TOLD_BEFORE_ACK},
    {"vote-before-durable", TPC_BREAK_VOTE_BEFORE_DURABLE},
    {"forget-before-told", TPC_BREAK_FORGET_BEFORE_TOLD},
};

void sim_before_send(struct sim *s, uint32_t node)
{
    /* Rarer than a crash after a write: dying in the middle of a fan-out, or after deciding
     * and before telling anyone. */
    if (s->faults && node < sim_client(s) && !s->dying[node] &&
        prng_chance(&s->rng, s->p.midcrash_ppm / 4)) {
        s->dying[node] = true;
        sim_trace(s, "crash point: %s%u dies before it sends", sim_is_replica(s, node) ? "r" : "p",
                  sim_is_replica(s, node) ? node : node - s->p.n_replicas);
    }
}

void sim_after_persist(struct sim *s, uint32_t node)
{
    if (s->faults && !s->dying[node] && prng_chance(&s->rng, s->p.midcrash_ppm)) {
        s->dying[node] = true;
        sim_trace(s, "crash point: %s%u dies after a durable write, before it speaks",
                  sim_is_replica(s, node) ? "r" : "p",
                  sim_is_replica(s, node) ? node : node - s->p.n_replicas);
    }
}

void sim_crash(struct sim *s, uint32_t node)
{
    char name[16];

    s->up[node] = false;
    s->dying[node] = false;
    s->down_until[node] = s->now + prng_range(&s->rng, 1, s->p.max_down);
    s->stats->crashes++;
    sim_trace(s, "%s crashes (down until t=%" PRIu64 ")",
              sim_node_name(s, node, name, sizeof(name)), s->down_until[node]);
    if (sim_is_replica(s, node))
        sim_replica_crash(s, node);
    else
        sim_part_crash(s, node - s->p.n_replicas);
}

void sim_after_handler(struct sim *s, uint32_t node)
{
    if (s->dying[node]) {
        s->stats->midcrashes++;
        sim_crash(s, node);
    }
}

static void restart(struct sim *s, uint32_t node)
{
    char name[16];

    s->up[node] = true;
    sim_trace(s, "%s restarts", sim_node_name(s, node, name, sizeof(name)));
    if (sim_is_replica(s, node))
        sim_replica_restart(s, node);
    else
        sim_part_restart(s, node - s->p.n_replicas);
}

/* Draws the shape and the fault rates of one seed's run. */
static void draw_params(struct sim *s, int f)
{
    struct sim_params *p = &s->p;
    struct prng *g = &s->rng;

    p->f = f >= 0 ? (uint32_t)f : (uint32_t)prng_below(g, SIM_MAX_F + 1);
    p->n_replicas = 2 * p->f + 1;
    p->n_parts = (uint32_t)prng_range(g, 1, SIM_MAX_P);
    p->n_txns = (uint32_t)prng_range(g, 1, SIM_MAX_T);
    /* Each kind of fault is off in about a third of the seeds, so calm runs are covered too. */
    p->loss_ppm = prng_below(g, 3) ? (uint32_t)prng_below(g, 200000) : 0;
    p->dup_ppm = prng_below(g, 3) ? (uint32_t)prng_below(g, 100000) : 0;
    p->long_delay_ppm = prng_below(g, 3) ? (uint32_t)prng_below(g, 100000) : 0;
    p->crash_ppm = prng_below(g, 3) ? (uint32_t)prng_below(g, 20000) : 0;
    p->midcrash_ppm = prng_below(g, 3) ? (uint32_t)prng_below(g, 150000) : 0;
    p->vote_abort_ppm = prng_below(g, 3) ? (uint32_t)prng_below(g, 300000) : 0;
    p->read_only_ppm = prng_below(g, 3) ? (uint32_t)prng_below(g, 400000) : 0;
    p->max_delay = (uint32_t)prng_range(g, 1, 8);
    p->max_down = (uint32_t)prng_range(g, 5, 200);
    p->fault_ticks = prng_range(g, 200, 500);
    p->live_ticks = 5000;
    p->retry_interval = prng_range(g, 4, 20);
    p->retry_max = p->retry_interval * prng_range(g, 8, 16);
    p->prepare_timeout = prng_range(g, 10, 80);
    p->client_timeout = prng_range(g, 20, 400);
    p->sweep_age = prng_range(g, 30, 300);
    p->branch_timeout = prng_range(g, 50, 400);
    p->txn_timeout = prng_range(g, 30, 600);
    p->client_abort_ppm = prng_below(g, 3) ? (uint32_t)prng_below(g, 200000) : 0;
    p->write_delay = (uint32_t)prng_below(g, 4);
    p->write_fail_ppm = prng_below(g, 3) ? (uint32_t)prng_below(g, 60000) : 0;
    /* Longer than any transaction's life (its timeout is at most half of it, as a replica's
     * config demands), shorter than the run: every seed forgets everything before it ends. */
    p->retention = prng_range(g, 1500, 3000);
    p->replay_ppm = prng_below(g, 3) ? (uint32_t)prng_below(g, 50000) : 0;
    p->heuristic_ppm = prng_below(g, 4) ? 0 : (uint32_t)prng_below(g, 20000);
}

static void setup_txns(struct sim *s)
{
    uint32_t t, k, order[SIM_MAX_P];

    for (t = 0; t < s->p.n_txns; t++) {
        struct sim_txn *x = &s->txn[t];
        uint32_t n = (uint32_t)prng_range(&s->rng, 1, s->p.n_parts);

        snprintf(x->txid, sizeof(x->txid), "t%u", t);
        /* A random subset of the participants, in random order. */
        for (k = 0; k < s->p.n_parts; k++)
            order[k] = k;
        for (k = s->p.n_parts; k > 1; k--) {
            uint32_t j = (uint32_t)prng_below(&s->rng, k), tmp = order[k - 1];

            order[k - 1] = order[j];
            order[j] = tmp;
        }
        x->parts.n = n;
        for (k = 0; k < n; k++) {
            snprintf(x->parts.name[k], sizeof(x->parts.name[k]), "p%u", order[k]);
            x->part_node[k] = s->p.n_replicas + order[k];
            x->branch_ok[k] = !prng_chance(&s->rng, s->p.vote_abort_ppm);
            x->changed[k] = !prng_chance(&s->rng, s->p.read_only_ppm);
        }
        x->leader = (uint32_t)prng_below(&s->rng, s->p.n_replicas);
        x->start = prng_below(&s->rng, s->p.fault_ticks / 2);
        x->commit_at = x->start + prng_below(&s->rng, 60);
        x->client_aborts = prng_chance(&s->rng, s->p.client_abort_ppm);
        /* Votes are relayed by the leader, first to a random F+1 of the acceptors (as the
         * coordinator does, to those that answer) or to all of them. */
        x->relay_first = 0;
        if (prng_chance(&s->rng, 500000))
            while (__builtin_popcount(x->relay_first) < (int)(s->p.n_replicas / 2 + 1))
                x->relay_first |= 1u << prng_below(&s->rng, s->p.n_replicas);
    }
}

static void client_tick(struct sim *s)
{
    uint32_t t;

    for (t = 0; t < s->p.n_txns; t++) {
        struct sim_txn *x = &s->txn[t];
        enum sim_req req = x->client_aborts ? SIM_ABORT : SIM_COMMIT;
        struct msg q;

        if (!x->started && s->now >= x->start) {
            uint32_t i;

            x->started = true;
            x->born = sim_wall(s); /* the leader's clock when it begins it: one clock here */
            sim_trace(s, "client: begin %s at r%u", x->txid, x->leader);
            sim_send_request(s, x->leader, t, SIM_BEGIN);
            for (i = 0; i < x->parts.n; i++)
                sim_send_request(s, x->part_node[i], t, SIM_EXEC);
        }
        if (x->started && !x->requested && s->now >= x->commit_at) {
            x->requested = true;
            sim_trace(s, "client: %s %s at r%u", x->client_aborts ? "abort" : "commit", x->txid,
                      x->leader);
            sim_send_request(s, x->leader, t, req);
            x->client_timer = s->now + s->p.client_timeout;
            continue;
        }
        if (!x->requested || x->told != TPC_OUTCOME_NONE || s->now < x->client_timer)
            continue;
        if (x->born && msg_expired(x->born, sim_horizon(s)))
            continue; /* forgotten: a replica answers 404, and the client stops asking */
        /* No answer yet: ask any replica (one with a record of it recovers it), and ask the
         * leader again, as a client retries its request. */
        memset(&q, 0, sizeof(q));
        q.type = MSG_STATUS;
        memcpy(q.txid, x->txid, sizeof(q.txid));
        if (prng_chance(&s->rng, 250000)) {
            /* An operator who lost patience: resolve (abort through Paxos) at any replica. */
            sim_trace(s, "operator: resolve %s", x->txid);
            sim_send_request(s, (uint32_t)prng_below(&s->rng, s->p.n_replicas), t, SIM_RESOLVE);
            s->stats->resolves++;
        } else {
            sim_send(s, sim_client(s), (uint32_t)prng_below(&s->rng, s->p.n_replicas), &q);
        }
        sim_send_request(s, x->leader, t, req);
        if (x->client_attempts < 2)
            x->client_attempts++; /* backoff capped at 4x, so the liveness bound stays small */
        x->client_timer = s->now + (s->p.client_timeout << x->client_attempts);
    }
}

static void faults(struct sim *s)
{
    uint32_t n, node, n_nodes = s->p.n_replicas + s->p.n_parts;

    for (node = 0; node < n_nodes; node++)
        if (!s->up[node] && (!s->faults || s->now >= s->down_until[node]))
            restart(s, node);
    if (!s->faults || !prng_chance(&s->rng, s->p.crash_ppm))
        return;
    n = (uint32_t)prng_below(&s->rng, n_nodes);
    if (s->up[n])
        sim_crash(s, n);
}

struct run_result {
    bool violated, errored, stuck;
    char why[600];
};

static void run_seed(struct sim *s, uint64_t seed, int f, struct run_result *res)
{
    uint64_t end, settled_at = 0;
    uint32_t node, n_nodes, t;
    bool settled = false, drained = false;

    memset(res, 0, sizeof(*res));
    s->seed = seed;
    s->now = 0;
    s->faults = true;
    s->n_net = 0;
    s->n_replay = 0;
    s->violation[0] = s->error[0] = '\0';
    memset(s->up, 0, sizeof(s->up));
    memset(s->dying, 0, sizeof(s->dying));
    for (node = 0; node < SIM_MAX_R; node++)
        sim_replica_stop(s, node);
    for (node = 0; node < SIM_MAX_P; node++)
        sim_part_stop(s, node);
    memset(s->rep, 0, sizeof(s->rep));
    memset(s->part, 0, sizeof(s->part));
    memset(s->txn, 0, sizeof(s->txn));
    check_free(s);
    prng_seed(&s->rng, seed);
    draw_params(s, f);
    setup_txns(s);
    n_nodes = s->p.n_replicas + s->p.n_parts;
    for (node = 0; node < SIM_MAX_NODES; node++)
        s->up[node] = true;
    for (node = 0; node < s->p.n_replicas; node++)
        sim_replica_boot(s, node);
    for (node = 0; node < s->p.n_parts; node++)
        sim_part_boot(s, node);
    if (s->verbose)
        fprintf(s->log,
                "seed %" PRIu64 ": F=%u (%u replicas), %u participants, %u transactions; "
                "loss %.1f%%, dup %.1f%%, crash %.2f%%/tick, crash-after-write %.1f%%\n",
                seed, s->p.f, s->p.n_replicas, s->p.n_parts, s->p.n_txns, s->p.loss_ppm / 1e4,
                s->p.dup_ppm / 1e4, s->p.crash_ppm / 1e4, s->p.midcrash_ppm / 1e4);
    for (t = 0; s->verbose && t < s->p.n_txns; t++) {
        fprintf(s->log, "  %s: participants", s->txn[t].txid);
        for (node = 0; node < s->txn[t].parts.n; node++)
            fprintf(s->log, " %s%s", s->txn[t].parts.name[node],
                    !s->txn[t].branch_ok[node] ? " (its branch will fail: votes aborted)"
                    : !s->txn[t].changed[node] ? " (read-only)"
                                               : "");
        fprintf(s->log, "; client commits it at r%u at t=%" PRIu64 "\n", s->txn[t].leader,
                s->txn[t].start);
    }

    end = s->p.fault_ticks + s->p.live_ticks;
    for (s->now = 0; s->now < end; s->now++) {
        if (s->faults && s->now >= s->p.fault_ticks) {
            s->faults = false;
            sim_trace(s, "faults stop: every process is up, the network is reliable");
        }
        faults(s);
        client_tick(s);
        sim_replay(s);
        sim_deliver_due(s);
        for (node = 0; node < n_nodes; node++) {
            if (!s->up[node])
                continue;
            if (sim_is_replica(s, node))
                sim_replica_tick(s, node);
            else
                sim_part_tick(s, node - s->p.n_replicas);
            sim_after_handler(s, node);
        }
        check_step(s);
        if (s->violation[0] || s->error[0])
            break;
        if (!s->faults && !settled && check_settled(s, res->why, sizeof(res->why))) {
            settled = true;
            settled_at = s->now;
        }
        /* Then every driver must let go of what it holds (no transaction stays in memory),
         * and, once every transaction is older than the retention, every disk. */
        if (settled && !drained && check_drained(s, res->why, sizeof(res->why)))
            drained = true;
        if (drained && check_collected(s, res->why, sizeof(res->why)))
            break;
    }
    s->stats->seeds++;
    s->stats->ticks += s->now;
    if (settled && settled_at - s->p.fault_ticks > s->stats->settle_max) {
        s->stats->settle_max = settled_at - s->p.fault_ticks;
        s->stats->settle_max_seed = seed;
    }
    if (s->violation[0]) {
        res->violated = true;
        snprintf(res->why, sizeof(res->why), "%s", s->violation);
    } else if (s->error[0]) {
        res->errored = true;
        snprintf(res->why, sizeof(res->why), "%s", s->error);
    } else if (s->now >= end) {
        char why[400];

        if (drained)
            check_collected(s, why, sizeof(why));
        else if (settled)
            check_drained(s, why, sizeof(why));
        else
            check_settled(s, why, sizeof(why));
        res->stuck = true;
        snprintf(res->why, sizeof(res->why),
                 "liveness: %s %" PRIu64 " ticks after faults stopped: %s",
                 drained   ? "storage not collected"
                 : settled ? "memory not drained"
                           : "not settled",
                 s->p.live_ticks, why);
    }
    for (t = 0; t < s->p.n_txns; t++) {
        enum tpc_outcome d = check_decision(s, t);
        uint32_t others = s->txn[t].recovered_by & ~(1u << s->txn[t].leader);

        s->stats->txns++;
        s->stats->committed += d == TPC_OUTCOME_COMMITTED;
        s->stats->aborted += d == TPC_OUTCOME_ABORTED;
        s->stats->recovered_by_other += others != 0;
        s->stats->dueled += (s->txn[t].recovered_by & (s->txn[t].recovered_by - 1)) != 0;
        if (s->verbose)
            fprintf(s->log, "  %s: %s (leader r%u, recovered by %u other replica(s))\n",
                    s->txn[t].txid, msg_outcome_name(d), s->txn[t].leader,
                    (unsigned)__builtin_popcount(others));
    }
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: tpcsim [options]\n"
        "  --f N               fault tolerance F (0..%d; 2F+1 replicas); default: drawn per seed\n"
        "  --seeds N           number of seeds to run (default 1000)\n"
        "  --first S           first seed (default 1)\n"
        "  --seed S            run only seed S (same as --first S --seeds 1)\n"
        "  --verbose, -v       print the key events: crashes, recoveries, decisions\n"
        "  --trace             print every message delivered or lost as well\n"
        "  --wire              round-trip every message through the JSON codec (alone or in\n"
        "                      a batch), and check that it refuses spoiled copies of messages\n"
        "  --break RULE        break one protocol rule: accept-lower-ballot,\n"
        "                      decide-on-votes, recover-prepared, forget-aborted-vote,\n"
        "                      tell-before-record, answer-before-chosen, told-before-ack,\n"
        "                      vote-before-durable, forget-before-told\n"
        "  --expect-violation  succeed only if some seed violates an invariant\n"
        "  --help              this text\n",
        SIM_MAX_F);
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;

    errno = 0;
    if (!s || !*s || *s == '-')
        return -1;
    *out = strtoull(s, &end, 10);
    return (errno || *end) ? -1 : 0;
}

int main(int argc, char **argv)
{
    static struct sim s; /* large; keep it off the stack */
    struct sim_stats stats = {0};
    struct run_result res;
    uint64_t first = 1, n_seeds = 1000, v, i, failed = 0;
    bool expect = false;
    int f = -1, a, rc = 1;
    const char *broken = NULL;
    struct timespec t0, t1;
    double secs;
    size_t k;

    for (a = 1; a < argc; a++) {
        const char *o = argv[a], *val = a + 1 < argc ? argv[a + 1] : NULL;

        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(o, "--verbose") || !strcmp(o, "-v")) {
            s.verbose = s.verbose > 1 ? s.verbose : 1;
        } else if (!strcmp(o, "--trace")) {
            s.verbose = 2;
        } else if (!strcmp(o, "--wire")) {
            s.wire = true;
        } else if (!strcmp(o, "--expect-violation")) {
            expect = true;
        } else if (!strcmp(o, "--f") && parse_u64(val, &v) == 0 && v <= SIM_MAX_F) {
            f = (int)v;
            a++;
        } else if (!strcmp(o, "--seeds") && parse_u64(val, &v) == 0 && v > 0) {
            n_seeds = v;
            a++;
        } else if (!strcmp(o, "--first") && parse_u64(val, &v) == 0) {
            first = v;
            a++;
        } else if (!strcmp(o, "--seed") && parse_u64(val, &v) == 0) {
            first = v;
            n_seeds = 1;
            a++;
        } else if (!strcmp(o, "--break") && val) {
            for (k = 0; k < sizeof(breaks) / sizeof(breaks[0]); k++)
                if (!strcmp(val, breaks[k].name))
                    break;
            if (k == sizeof(breaks) / sizeof(breaks[0])) {
                fprintf(stderr, "tpcsim: unknown rule '%s'\n", val);
                usage(stderr);
                return 2;
            }
            tpc_broken_rule = breaks[k].rule;
            broken = breaks[k].name;
            a++;
        } else {
            fprintf(stderr, "tpcsim: bad option '%s'%s\n", o,
                    val ? "" : " (or its value is missing)");
            usage(stderr);
            return 2;
        }
    }
    s.log = stdout;
    s.stats = &stats;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; i < n_seeds; i++) {
        uint64_t seed = first + i;

        run_seed(&s, seed, f, &res);
        if (!res.violated && !res.errored && !res.stuck)
            continue;
        failed++;
        if (expect && res.violated) {
            printf("caught: seed %" PRIu64 " with rule '%s' broken: %s\n", seed, broken, res.why);
            printf("replay: %s%s --seed %" PRIu64 " --break %s --trace\n", argv[0],
                   f >= 0 ? (f == 0   ? " --f 0"
                             : f == 1 ? " --f 1"
                                      : " --f 2")
                          : "",
                   seed, broken);
            rc = 0;
            break;
        }
        if (expect)
            continue; /* a stall or core error is not the checker catching the break */
        printf("FAIL seed %" PRIu64 " (F=%u, %u participants, %u transactions): %s%s\n", seed,
               s.p.f, s.p.n_parts, s.p.n_txns,
               res.violated  ? "VIOLATION: "
               : res.errored ? "ERROR: "
                             : "",
               res.why);
        printf("replay: %s%s%s --seed %" PRIu64 " --trace\n", argv[0],
               f >= 0 ? (f == 0   ? " --f 0"
                         : f == 1 ? " --f 1"
                                  : " --f 2")
                      : "",
               s.wire ? " --wire" : "", seed);
        break;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (!expect && failed == 0)
        rc = 0;
    if (expect && rc != 0)
        printf("NOT CAUGHT: rule '%s' broken, yet %" PRIu64 " seeds showed no violation\n",
               broken ? broken : "(none)", stats.seeds);
    printf("%" PRIu64 " seeds (F=%s) in %.2f s: %.0f schedules/s; %" PRIu64 " ticks, %" PRIu64
           " messages (%" PRIu64 " lost, %" PRIu64 " duplicated%s), %" PRIu64 " crashes (%" PRIu64
           " at a crash point: right after a durable write or just before a send)\n",
           stats.seeds,
           f >= 0 ? (f == 0   ? "0"
                     : f == 1 ? "1"
                              : "2")
                  : "0..2",
           secs, secs > 0 ? (double)stats.seeds / secs : 0.0, stats.ticks, stats.sent,
           stats.dropped, stats.duplicated, s.wire ? ", all through the JSON codec" : "",
           stats.crashes, stats.midcrashes);
    printf("%" PRIu64 " spoiled copies of messages (junk) refused by the nodes%s\n",
           stats.junk_refused, s.wire ? " and the codec" : "");
    printf("%" PRIu64 " resolve requests of operators (abort through Paxos, at any replica)\n",
           stats.resolves);
    printf("%" PRIu64 " heuristic decisions of operators at participants, %" PRIu64
           " of them reconciled as heuristic mixed (each learned the chosen outcome)\n",
           stats.heuristics, stats.heur_mixed);
    printf("%" PRIu64
           " messages delivered again late (some after their transaction expired); %" PRIu64
           " records forgotten (each run ends once storage holds nothing)\n",
           stats.replayed, stats.forgotten);
    printf("%" PRIu64 " transactions: %" PRIu64 " committed, %" PRIu64 " aborted; %" PRIu64
           " recovery rounds; %" PRIu64 " recovered by a replica other than their leader, %" PRIu64
           " by two or more replicas at once\n",
           stats.txns, stats.committed, stats.aborted, stats.recoveries, stats.recovered_by_other,
           stats.dueled);
    if (stats.settle_max)
        printf("slowest to settle after faults stopped: %" PRIu64 " ticks (seed %" PRIu64
               "; bound %" PRIu64 ")\n",
               stats.settle_max, stats.settle_max_seed, s.p.live_ticks);
    for (i = 0; i < SIM_MAX_R; i++)
        sim_replica_stop(&s, (uint32_t)i);
    for (i = 0; i < SIM_MAX_P; i++)
        sim_part_stop(&s, (uint32_t)i);
    check_free(&s);
    free(s.net);
    free(s.due);
    return rc;
}
