"""The soak: a steady load against an F = 1 cluster (3 replicas, 2 participants) for a given
number of transactions, printing a line per window (tx/s, commit p50 and p99, disk bytes of
every process's files, RSS of every process) and ending with an audit: the money is conserved
and nothing is left prepared. Run it with scripts/soak (see README)."""
import argparse
import json
import os
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
sys.path.insert(0, here)

import run as bench  # noqa: E402  (the benchmark's schema and audit)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def disk_bytes(paths):
    """Bytes of every file whose path starts with one of paths (a database and its WAL)."""
    total = 0
    for p in paths:
        d, base = os.path.split(p)
        for name in os.listdir(d):
            if name.startswith(base):
                total += os.path.getsize(os.path.join(d, name))
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--transactions", type=int, default=1000000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--window", type=float, default=60.0, help="seconds per window")
    ap.add_argument("--build", default=os.path.join(root, "build"))
    ap.add_argument("--json", help="write every window here too")
    ap.add_argument("--retention", type=float, default=60.0,
                    help="seconds everything about a transaction is kept (retention_ms)")
    args = ap.parse_args()
    os.environ.setdefault("TPC_PARTICIPANT_BIN", os.path.join(args.build, "participant", "participant"))
    os.environ.setdefault("TPC_COORDINATOR_BIN", os.path.join(args.build, "coordinator", "coordinator"))
    from tpclaunch import Cluster

    retention_ms = int(args.retention * 1000)
    c = Cluster(n_replicas=3, participants=bench.NAMES[:2], schema=bench.SCHEMA,
                timeouts={"transaction": min(30000, retention_ms // 2), "commit": 10000},
                retention_ms=retention_ms)
    windows, done, t0 = [], 0, time.monotonic()
    try:
        procs = [("replica-%d" % r.idx, r.proc.pid,
                  [os.path.join(c.dir, "data", "replica-%d.db" % r.idx)]) for r in c.replicas]
        procs += [(name, p.proc.pid, [p.db]) for name, p in c.parts.items()]
        print("soak: F = 1, 2 participants, %d clients, %d transactions, %.0f s windows, "
              "retention %.0f s" % (args.clients, args.transactions, args.window, args.retention),
              flush=True)
        print("| window | transactions | tx/s | commit p50 ms | commit p99 ms | disk MB (%s) | RSS MB (%s) |"
              % (", ".join(n for n, _, _ in procs), ", ".join(n for n, _, _ in procs)))
        print("|---|---|---|---|---|---|---|", flush=True)
        out = os.path.join(c.dir, "window.json")
        while done < args.transactions:
            cmd = [os.path.join(args.build, "bench", "tpcbench"),
                   "--token-file", os.path.join(c.dir, "client.token"),
                   "--participants", "bank-a,bank-b", "--clients", str(args.clients),
                   "--seconds", str(args.window), "--warmup", "0",
                   "--accounts", str(bench.ACCOUNTS), "--json", out]
            for u in c.replica_urls:
                cmd += ["--url", u]
            for p in c.parts.values():
                cmd += ["--participant-url", p.url]
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=args.window * 4 + 120,
                           check=True)
            r = json.load(open(out))
            n = r["committed"] + r["aborted"]
            done += n
            w = {"window": len(windows) + 1, "transactions": done, "tx_per_s": r["tx_per_s"],
                 "p50": r["commit_ms"]["p50"], "p99": r["commit_ms"]["p99"],
                 "errors": r["errors"] + r["undecided"],
                 "disk": {name: disk_bytes(paths) for name, _, paths in procs},
                 "rss_kib": {name: rss_kib(pid) for name, pid, _ in procs}}
            windows.append(w)
            print("| %d | %d | %.0f | %.2f | %.2f | %s | %s |"
                  % (w["window"], done, w["tx_per_s"], w["p50"], w["p99"],
                     " / ".join("%.1f" % (v / 1e6) for v in w["disk"].values()),
                     " / ".join("%.1f" % (v / 1024) for v in w["rss_kib"].values())),
                  flush=True)
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(windows, f, indent=1)
        problems = bench.check_totals(c)
        print("audit after %d transactions in %.0f s: %s" % (
            done, time.monotonic() - t0, "; ".join(problems) or
            "OK (money conserved, nothing prepared)"), flush=True)
        return 1 if problems else 0
    finally:
        c.stop()


if __name__ == "__main__":
    sys.exit(main())
