#!/usr/bin/env python3
"""TLS against plain HTTP: the two-participant transfer (tpcbench, interactive, uniform over
10,000 accounts) on a cluster of 3 replicas and 2 participants, once with plain HTTP and once
with TLS on every link (scripts/dev-certs), at 1 and 16 clients; ROUNDS rounds alternating
the two, so that the machine's drift between runs falls on both. Prints one line per cell and
the medians.

    bench/tls.py [SECONDS] [ROUNDS]        (default 8 s per cell, 2 rounds)

Needs a build in build/ (scripts/test makes one)."""
import json
import os
import statistics
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
build = os.path.join(root, "build")
sys.path.insert(0, os.path.join(root, "tools"))
os.environ.setdefault("TPC_PARTICIPANT_BIN", os.path.join(build, "participant", "participant"))
os.environ.setdefault("TPC_COORDINATOR_BIN", os.path.join(build, "coordinator", "coordinator"))

from tpclaunch import Cluster  # noqa: E402

ACCOUNTS = 10000
SCHEMA = ("CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL "
          "CHECK (balance >= 0));\n"
          "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "
          "INSERT INTO accounts SELECT i, 1000000 FROM n;\n" % ACCOUNTS)
CLIENTS = [1, 16]


def cell(c, tls, clients, seconds, out_dir):
    label = "%s-%dc" % ("tls" if tls else "http", clients)
    out = os.path.join(out_dir, label + ".json")
    cmd = [os.path.join(build, "bench", "tpcbench"),
           "--token-file", os.path.join(c.dir, "client.token"),
           "--participants", "bank-a,bank-b", "--clients", str(clients),
           "--seconds", str(seconds), "--warmup", "1", "--accounts", str(ACCOUNTS),
           "--label", label, "--json", out]
    if tls:
        cmd += ["--ca", c.tls["ca"]]
    for u in c.replica_urls:
        cmd += ["--url", u]
    for p in c.parts.values():
        cmd += ["--participant-url", p.url]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True, timeout=seconds + 120)
    with open(out) as f:
        return json.load(f)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 8
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    out_dir = tempfile.mkdtemp(prefix="tpc-bench-tls-")
    got = {}
    print("TLS against plain HTTP: 3 replicas, 2 participants, %g s per cell, %d round(s); "
          "%d cores" % (seconds, rounds, os.cpu_count()), flush=True)
    for rnd in range(rounds):
        for tls in (False, True):
            c = Cluster(n_replicas=3, participants=("bank-a", "bank-b"), schema=SCHEMA,
                        timeouts={"transaction": 30000, "commit": 10000}, tls=tls)
            try:
                for clients in CLIENTS:
                    r = cell(c, tls, clients, seconds, out_dir)
                    cm = r["commit_ms"]
                    got.setdefault((tls, clients), []).append(r)
                    print("round %d %-5s clients %2d: %6.0f tx/s, commit p50 %.2f ms p99 %.2f "
                          "ms, abort %.1f%%" % (rnd + 1, "TLS" if tls else "HTTP", clients,
                                                r["tx_per_s"], cm["p50"], cm["p99"],
                                                100 * r["abort_rate"]), flush=True)
            finally:
                c.stop()
    print("\nmedians over %d round(s):" % rounds)
    print("| links | clients | tx/s | commit p50 ms | commit p99 ms |")
    print("|---|---|---|---|---|")
    for clients in CLIENTS:
        for tls in (False, True):
            rs = got[(tls, clients)]
            print("| %s | %d | %.0f | %.2f | %.2f |" % (
                "TLS" if tls else "plain HTTP", clients,
                statistics.median(r["tx_per_s"] for r in rs),
                statistics.median(r["commit_ms"]["p50"] for r in rs),
                statistics.median(r["commit_ms"]["p99"] for r in rs)))


if __name__ == "__main__":
    main()
