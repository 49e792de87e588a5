#!/usr/bin/env python3
"""The whole benchmark matrix in one run, written up as BENCHMARKS.md with gnuplot plots.

    bench/run.py [--quick] [--build DIR] [--out BENCHMARKS.md]

Measures, all on this machine and in this run:
  1. the physical limit (tpclimit: one SQLite commit with synchronous=FULL on the data disk, one
     keep-alive HTTP round trip on loopback);
  2. tpcbench against real clusters started by the test launcher: F = 0, 1, 2 (1, 3, 5 replicas)
     x 1, 2, 4 participants x 1, 8, 32 clients, uniform over 10,000 accounts; and, with 2
     participants at every F, the contended variant (10 accounts) and the oneshot variant (each
     transfer one POST /v1/transactions/oneshot);
  3. the peer, bench/pg_peer.py: PostgreSQL two-phase commit between two servers, same workload,
     with Python clients (psycopg2) and with C clients (tpcpgclient, libpq) when it is built.
After each cluster's runs it checks that every database's total is what it was and nothing is
left prepared. Quick mode measures shorter (about two minutes in all); the full run about ten.
Raw results go to bench/results/ (JSON, latency samples), plots to bench/plots/.
"""
import argparse
import datetime
import json
import os
import platform
import sqlite3
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)

ACCOUNTS = 10000
BALANCE = 1000000
NAMES = ["bank-a", "bank-b", "bank-c", "bank-d"]
CLIENTS = [1, 8, 32]
SCHEMA = ("CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL "
          "CHECK (balance >= 0));\n"
          "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "
          "INSERT INTO accounts SELECT i, %d FROM n;\n" % (ACCOUNTS, BALANCE))


def log(msg):
    print(msg, flush=True)


def check_totals(cluster):
    """Waits (bounded) until no participant holds a branch, then checks every database."""
    from tpclaunch import metrics, wait_until
    for p in cluster.parts.values():
        wait_until(lambda: metrics(p.url)["tpc_branches_live"] == 0, timeout=30,
                   what="%s to end every branch" % p.name)
    problems = []
    grand = 0
    for name, p in cluster.parts.items():
        db = sqlite3.connect(p.db)
        total, rows = db.execute("SELECT sum(balance), count(*) FROM accounts").fetchone()
        prepared = db.execute("SELECT count(*) FROM tpc_prepared").fetchone()[0]
        db.close()
        grand += total
        if rows != ACCOUNTS or prepared:
            problems.append("%s: %d rows, %d prepared" % (name, rows, prepared))
    if grand != len(cluster.parts) * ACCOUNTS * BALANCE:
        problems.append("total %d, expected %d" % (grand, len(cluster.parts) * ACCOUNTS * BALANCE))
    return problems


def run_cluster(args, f, n_parts, variants, results):
    from tpclaunch import Cluster
    t0 = time.monotonic()
    c = Cluster(n_replicas=2 * f + 1, participants=NAMES[:n_parts], schema=SCHEMA,
                timeouts={"transaction": 30000, "commit": 10000})
    try:
        for accounts, tag in variants:
            for clients in CLIENTS:
                label = "F%d-p%d-%s-%dc" % (f, n_parts, tag, clients)
                out = os.path.join(args.results, label + ".json")
                cmd = [os.path.join(args.build, "bench", "tpcbench"),
                       "--token-file", os.path.join(c.dir, "client.token"),
                       "--participants", ",".join(NAMES[:n_parts]),
                       "--clients", str(clients), "--seconds", str(args.seconds),
                       "--warmup", str(args.warmup), "--accounts", str(accounts),
                       "--label", label, "--json", out,
                       "--mode", "oneshot" if tag == "oneshot" else "interactive",
                       "--samples", os.path.join(args.results, label + ".samples")]
                for u in c.replica_urls:
                    cmd += ["--url", u]
                for p in c.parts.values():
                    cmd += ["--participant-url", p.url]
                r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=600)
                log("  " + r.stdout.strip())
                res = json.load(open(out))
                res.update({"system": "paxos-commit", "f": f, "variant": tag})
                results.append(res)
        problems = check_totals(c)
        for r in results:
            if r.get("f") == f and r["participants"] == n_parts:
                r["totals_ok"] = not problems
        log("  totals after F=%d, %d participants: %s (%.1f s for this cluster)"
            % (f, n_parts, "; ".join(problems) or "OK", time.monotonic() - t0))
    finally:
        c.stop()
    return not problems


def fmt(v, digits=2):
    return ("%%.%df" % digits) % v


def write_plots(args, results, plots):
    """Throughput against clients; commit latency distribution at 1 client."""
    def series(pred):
        return sorted((r["clients"], r) for r in results if pred(r))

    dat = os.path.join(args.results, "throughput.dat")
    lines = []
    def pg(driver):
        return lambda r: r["system"] == "postgresql" and r.get("driver", "psycopg2") == driver

    cols = [("F=0", lambda r: r.get("f") == 0), ("F=1", lambda r: r.get("f") == 1),
            ("F=2", lambda r: r.get("f") == 2), ("PostgreSQL 2PC (psycopg2)", pg("psycopg2")),
            ("PostgreSQL 2PC (libpq)", pg("libpq"))]
    with open(dat, "w") as f:
        for clients in CLIENTS:
            row = [str(clients)]
            for _, pred in cols:
                v = [r["tx_per_s"] for r in results
                     if pred(r) and r["clients"] == clients and r["participants"] == 2 and
                     r.get("variant", "uniform") == "uniform"]
                row.append(fmt(v[0], 1) if v else "NaN")
            f.write(" ".join(row) + "\n")
    lines.append("set terminal pngcairo size 900,520 font ',11'")
    lines.append("set output '%s'" % os.path.join(plots, "throughput.png"))
    lines.append("set title 'Two-participant transfer, uniform over 10,000 accounts: throughput'")
    lines.append("set xlabel 'clients'; set ylabel 'committed transactions/s'")
    lines.append("set logscale x 2; set xtics (1, 8, 32); set key left top; set grid")
    lines.append("set yrange [0:*]")
    lines.append("plot " + ", ".join("'%s' using 1:%d with linespoints lw 2 title '%s'"
                                     % (dat, i + 2, name) for i, (name, _) in enumerate(cols)))
    lat = []
    for name, pred in cols:
        r = [r for r in results if pred(r) and r["clients"] == 1 and r["participants"] == 2 and
             r.get("variant", "uniform") == "uniform"]
        if not r:
            continue
        samples = os.path.join(args.results, r[0]["label"] + ".samples")
        if not os.path.exists(samples):
            continue
        v = sorted(float(x) for x in open(samples) if x.strip())
        cdf = os.path.join(args.results, r[0]["label"] + ".cdf")
        with open(cdf, "w") as f:
            step = max(1, len(v) // 400)
            for i in range(0, len(v), step):
                f.write("%.4f %.5f\n" % (v[i], (i + 1) / len(v)))
            if v:
                f.write("%.4f 1.0\n" % v[-1])
        lat.append("'%s' using 1:2 with lines lw 2 title '%s'" % (cdf, name))
    lines.append("set output '%s'" % os.path.join(plots, "latency.png"))
    lines.append("set title 'Commit latency distribution, two-participant transfer, 1 client'")
    lines.append("set xlabel 'commit call latency (ms, log scale)'; set ylabel 'fraction of commits'")
    lines.append("set logscale x 10; set xtics (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500)")
    lines.append("set key right bottom; set yrange [0:1]; set xrange [0.3:*]")
    if args.limit:
        lines.append("set arrow from %f, graph 0 to %f, graph 1 nohead dt 2 lc rgb 'gray'"
                     % (args.limit["limit_ms"], args.limit["limit_ms"]))
        lines.append("set label 'limit' at %f, graph 0.05 offset 0.5,0" % args.limit["limit_ms"])
    lines.append("plot " + ", ".join(lat))
    script = os.path.join(args.results, "plots.gp")
    with open(script, "w") as f:
        f.write("\n".join(lines) + "\n")
    subprocess.run(["gnuplot", script], check=True)


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    fs = subprocess.run(["df", "-hT", "/tmp"], capture_output=True, text=True).stdout.split("\n")
    fs = fs[1].split() if len(fs) > 1 else ["?", "?"]
    sqlite_v = sqlite3.sqlite_version
    pg = subprocess.run(["/usr/bin/python3", "-c", "import psycopg2; print(psycopg2.__version__)"],
                        capture_output=True, text=True).stdout.strip()
    return ("%s, %d cores, %.0f GiB RAM; %s %s; data on %s (%s); SQLite %s; psycopg2 %s"
            % (cpu, os.cpu_count(), mem, platform.system(), platform.release(), fs[0], fs[1],
               sqlite_v, pg or "?"))


def find(results, **kw):
    for r in results:
        if all(r.get(k, "uniform" if k == "variant" else None) == v for k, v in kw.items()):
            return r
    return None


def write_report(args, results, started, took):
    lim = args.limit
    out = []
    out.append("# Benchmarks\n")
    out.append("Produced by `%s` on %s in %.0f s%s. Every figure below was measured in that one "
               "run, on one machine, with every process (replicas, participants, PostgreSQL "
               "servers and the load generator) on it at the same time.\n"
               % ("scripts/bench --quick" if args.quick else "scripts/bench",
                  started.strftime("%Y-%m-%d %H:%M UTC"), took,
                  " (quick mode: %g s measured per cell after %g s warm-up)" % (args.seconds, args.warmup)
                  if args.quick else " (%g s measured per cell after %g s warm-up)" % (args.seconds, args.warmup)))
    out.append("**Machine:** %s.\n" % machine())
    out.append("## The physical limit\n")
    out.append("`tpclimit`: one SQLite commit (WAL, `synchronous=FULL`, one row) on the data disk: "
               "median **%.3f ms** (p95 %.3f); one keep-alive HTTP round trip on loopback "
               "(libcurl to the project's HTTP server): median **%.3f ms** (p95 %.3f). A "
               "client's commit needs two durable writes in sequence (the participant's prepared "
               "record, then the acceptors' record of its vote) and four round trips, so the "
               "limit is 2 x %.3f + 4 x %.3f = **%.3f ms**.\n"
               % (lim["sqlite_commit_ms"], lim["sqlite_commit_p95_ms"], lim["http_round_trip_ms"],
                  lim["http_round_trip_p95_ms"], lim["sqlite_commit_ms"], lim["http_round_trip_ms"],
                  lim["limit_ms"]))
    out.append("## Targets (two-participant transfer, uniform)\n")
    out.extend(targets(results, lim))
    out.append("\n## Plots\n")
    out.append("![throughput](bench/plots/throughput.png)\n")
    out.append("![latency](bench/plots/latency.png)\n")
    out.append("## All cells\n")
    out.append("Latency is of the commit call (ms): from sending `POST .../commit` to its answer "
               "(for PostgreSQL: tpc_prepare on both servers, then tpc_commit on both). "
               "fsyncs/tx counts every process's fsyncs (for PostgreSQL: WAL syncs from "
               "`pg_stat_wal`) per committed or aborted transaction; acceptor fsyncs/tx is the "
               "busiest replica's; HTTP/tx counts every request the processes answered. "
               "CPU ms/tx is the CPU time (user and system) of every server process together "
               "(replicas and participants; for PostgreSQL: both servers' processes, from "
               "/proc), switches/tx the context switches of the replicas and participants, per "
               "transaction; threads is the "
               "most threads one replica / one participant process had at the end of the cell "
               "(its `tpc_threads` metric).\n")
    out.append("| system | F | participants | accounts | clients | tx/s | abort % | p50 | p95 | "
               "p99 | max | fsyncs/tx | acceptor fsyncs/tx | HTTP/tx | CPU ms/tx | switches/tx | "
               "threads | totals |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        cm = r["commit_ms"]
        acc = r.get("acceptor_fsyncs_per_tx")
        out.append("| %s | %s | %d | %d | %d | %.0f | %.1f | %.2f | %.2f | %.2f | %.1f | %.2f | %s | "
                   "%s | %s | %s | %s | %s |"
                   % (system_name(r),
                      r.get("f", "-"), r["participants"], r["accounts"], r["clients"],
                      r["tx_per_s"], 100 * r["abort_rate"], cm["p50"], cm["p95"], cm["p99"],
                      cm["max"], r["fsyncs_per_tx"], fmt(max(acc)) if acc else "-",
                      fmt(r["http_requests_per_tx"], 1) if "http_requests_per_tx" in r else "-",
                      fmt(r["server_cpu_ms_per_tx"]) if "server_cpu_ms_per_tx" in r else "-",
                      fmt(r["context_switches_per_tx"], 1)
                      if "context_switches_per_tx" in r else "-",
                      "%d / %d" % (r["replica_threads"], r["participant_threads"])
                      if "replica_threads" in r else "-",
                      "ok" if r.get("totals_ok") else "WRONG"))
    out.append("\nRaw results: `bench/results/*.json` (`all.json` has every cell); the commit "
               "latency samples stay in `bench/results/*.samples` of the run.\n")
    out.append("## How to read it\n")
    out.append("- A Paxos Commit transfer is `POST /v1/transactions` carrying the first "
               "statement, one `exec` per other statement (one here; the replica forwards each to "
               "its participant), and `commit`. The "
               "commit answers once the outcome is chosen (every vote accepted by F+1 "
               "replicas after their fsync): the outcome is durable then; the participants "
               "apply it in the background (`{\"wait\": \"applied\"}` waits for that, and is "
               "not measured here). PostgreSQL's commit is tpc_prepare and tpc_commit on each "
               "server in turn, each a round trip with an fsync.")
    out.append("- The leader passes the votes to F+1 acceptors first (itself and the next F), in "
               "one batch each; each acceptor, each participant and each PostgreSQL server "
               "shares its fsyncs among concurrent transactions (group commit).")
    out.append("- Everything shares one disk and %d cores: fsyncs of different processes wait "
               "for each other on the disk, so the two participants' prepared records (and the "
               "acceptors' writes) cost more than one commit each; the limit counts one." %
               os.cpu_count())
    out.append("- The PostgreSQL peer runs twice: its clients as Python processes (psycopg2), one "
               "per client, and as threads of one C program over libpq (`tpcpgclient`: BEGIN, "
               "the UPDATE, PREPARE TRANSACTION, COMMIT PREPARED); each target is stated against "
               "the faster of the two in the same cell (the C clients send BEGIN and the first "
               "statement in one round trip, as Paxos Commit's begin carries its first "
               "statement). The load generator of Paxos Commit is "
               "one C thread (libcurl multi). All use a 300 ms lock timeout; a conflict past it "
               "aborts the transfer (the contended rows). The oneshot rows send each transfer as "
               "one `POST /v1/transactions/oneshot`; their commit latency is that whole call.")
    out.append("- Server CPU for PostgreSQL is every process of both servers, from /proc (a "
               "postmaster's count includes its backends that ended); its context switches are "
               "not shown, since those of backends that ended before the cell's last reading "
               "are lost. In quick mode PostgreSQL's statistics (WAL syncs) may lag the 2 s "
               "cells: its fsyncs/tx can read low.")
    out.append("- This machine is a shared VM: the same cell differs by up to about 30% "
               "between runs. Figures are from one run, all cells measured in it.\n")
    out.append("## How to run it\n")
    out.append("`scripts/bench` (full matrix, about ten minutes) or `scripts/bench --quick` "
               "(about two minutes). It installs what it needs (PostgreSQL, psycopg2, libpq, "
               "gnuplot from Debian), builds, runs `bench/run.py`, and rewrites this file up to "
               "its soak section, which `scripts/soak` measures (hours) and this run keeps.\n")
    kept = ""
    if os.path.exists(args.out):
        with open(args.out) as f:
            text = f.read()
        at = text.find("\n" + SOAK_HEADING)
        kept = text[at:] if at >= 0 else ""
    text = "\n".join(out) + "\n"
    if kept:
        text += "\n" + kept.lstrip("\n")
    with open(args.out, "w") as f:
        f.write(text)


def system_name(r):
    if r["system"] == "paxos-commit":
        return "Paxos Commit" + (" (oneshot)" if r.get("variant") == "oneshot" else "")
    return "PostgreSQL 2PC (%s)" % r.get("driver", "psycopg2")


def peer(results, clients, variant, key, better):
    """The faster PostgreSQL peer of a cell (by key: higher tx/s, or lower latency)."""
    peers = [r for r in results if r["system"] == "postgresql" and r["clients"] == clients
             and r.get("variant", "uniform") == variant]
    return better(peers, key=key) if peers else None


def targets(results, lim):
    out = []
    tps = lambda r: r["tx_per_s"]
    p50 = lambda r: r["commit_ms"]["p50"]
    f1 = find(results, f=1, participants=2, clients=1, variant="uniform")
    pg1 = peer(results, 1, "uniform", p50, min)
    if f1 and pg1:
        m = p50(f1)
        ok = m <= 0.9 * p50(pg1) and m <= 1.25 * lim["limit_ms"]
        out.append("- **1 client, F = 1, median commit latency**: %.3f ms; %s %.3f ms (%.2fx); "
                   "limit %.3f ms, so %.2fx the limit (target: at most 0.9x PostgreSQL's and at "
                   "most 1.25x the limit): **%s**."
                   % (m, system_name(pg1), p50(pg1), m / p50(pg1), lim["limit_ms"],
                      m / lim["limit_ms"], "met" if ok else "not met"))
    for n in (8, 32):
        a = find(results, f=1, participants=2, clients=n, variant="uniform")
        p = peer(results, n, "uniform", tps, max)
        if a and p:
            out.append("- **%d clients, F = 1, throughput**: %.0f tx/s; %s %.0f tx/s, %.2fx "
                       "(target: at least 1.5x): **%s**."
                       % (n, tps(a), system_name(p), tps(p), tps(a) / tps(p),
                          "met" if tps(a) >= 1.5 * tps(p) else "not met"))
    a = find(results, f=1, participants=2, clients=32, variant="uniform")
    z = find(results, f=0, participants=2, clients=32, variant="uniform")
    if a and z:
        out.append("- **32 clients, F = 1 against F = 0**: %.0f against %.0f tx/s, %.2fx "
                   "(target: at least 0.9x): **%s**."
                   % (tps(a), tps(z), tps(a) / tps(z),
                      "met" if tps(a) >= 0.9 * tps(z) else "not met"))
    c = find(results, f=1, participants=2, clients=32, variant="contended")
    p = peer(results, 32, "contended", tps, max)
    if c and p:
        ok = tps(c) >= tps(p) and c["abort_rate"] <= 0.01
        out.append("- **Contended (10 accounts), F = 1, 32 clients**: %.0f tx/s with %.1f%% "
                   "aborts; %s %.0f tx/s (target: at least PostgreSQL's, at most 1%% aborts): "
                   "**%s**." % (tps(c), 100 * c["abort_rate"], system_name(p), tps(p),
                                "met" if ok else "not met"))
    cells = [find(results, f=1, participants=2, clients=n, variant="uniform") for n in CLIENTS]
    cells = [x for x in cells if x and "server_cpu_ms_per_tx" in x]
    if cells:
        worst = max(x["server_cpu_ms_per_tx"] for x in cells)
        out.append("- **Server CPU per transfer, F = 1, every server process together**: %s ms "
                   "at 1, 8, 32 clients (target: at most 0.8 ms): **%s**."
                   % (", ".join(fmt(x["server_cpu_ms_per_tx"]) for x in cells),
                      "met" if worst <= 0.8 else "not met"))
    return out


SOAK_HEADING = "## Soak: 1,000,000 transactions"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--build", default=os.path.join(root, "build"))
    ap.add_argument("--out", default=os.path.join(root, "BENCHMARKS.md"))
    ap.add_argument("--only", help="comma list of F values to run (for trying things out)")
    ap.add_argument("--no-peer", action="store_true")
    args = ap.parse_args()
    args.seconds, args.warmup = (2, 0.5) if args.quick else (8, 2)
    args.results = os.path.join(here, "results")
    plots = os.path.join(here, "plots")
    for d in (args.results, plots):
        os.makedirs(d, exist_ok=True)
        for name in os.listdir(d):
            os.remove(os.path.join(d, name))
    os.environ.setdefault("TPC_PARTICIPANT_BIN", os.path.join(args.build, "participant", "participant"))
    os.environ.setdefault("TPC_COORDINATOR_BIN", os.path.join(args.build, "coordinator", "coordinator"))
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    results, ok = [], True
    limit_json = os.path.join(args.results, "limit.json")
    log("physical limit:")
    r = subprocess.run([os.path.join(args.build, "bench", "tpclimit"), "--dir", "/tmp",
                        "--json", limit_json], stdout=subprocess.PIPE, text=True, check=True)
    log("  " + r.stdout.strip())
    args.limit = json.load(open(limit_json))
    fs = [int(x) for x in args.only.split(",")] if args.only else [0, 1, 2]
    for f in fs:
        for n_parts in (1, 2, 4):
            log("F=%d (%d replicas), %d participant%s:" % (f, 2 * f + 1, n_parts, "s" * (n_parts > 1)))
            variants = [(ACCOUNTS, "uniform")] + ([(10, "contended"), (ACCOUNTS, "oneshot")]
                                                  if n_parts == 2 else [])
            ok = run_cluster(args, f, n_parts, variants, results) and ok
    if not args.no_peer:
        log("PostgreSQL 2PC, two servers:")
        for accounts, tag in ((ACCOUNTS, "uniform"), (10, "contended")):
            out = os.path.join(args.results, "postgresql-%s.json" % tag)
            cbin = os.path.join(args.build, "bench", "tpcpgclient")
            r = subprocess.run(["/usr/bin/python3", os.path.join(here, "pg_peer.py"),
                                "--clients", ",".join(map(str, CLIENTS)),
                                "--seconds", str(args.seconds), "--warmup", str(args.warmup),
                                "--accounts", str(accounts), "--label", "postgresql-" + tag,
                                "--json", out, "--samples-dir", args.results]
                               + (["--client-bin", cbin] if os.path.exists(cbin) else []),
                               stdout=subprocess.PIPE, text=True, timeout=900)
            log("  " + r.stdout.strip().replace("\n", "\n  "))
            ok = ok and r.returncode == 0
            for x in json.load(open(out)):
                x["variant"] = tag
                results.append(x)
    took = time.monotonic() - t0
    with open(os.path.join(args.results, "all.json"), "w") as f:
        json.dump({"limit": args.limit, "results": results}, f, indent=2)
    write_plots(args, results, plots)
    write_report(args, results, started, took)
    log("wrote %s and bench/plots/*.png in %.0f s%s" % (args.out, took, "" if ok else
                                                           "; TOTALS WRONG somewhere (see table)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
