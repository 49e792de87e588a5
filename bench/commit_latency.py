#!/usr/bin/env python3
"""Median commit latency of a two-participant transfer with 1 client, F = 0 and F = 1,
measured in the same run: starts a cluster of 1 replica, then one of 3, each with two
participants on loopback, and runs transfer_bench against each.

    bench/commit_latency.py [seconds-per-run]   (after building into build/)
"""
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
sys.path.insert(0, os.path.join(root, "tests", "integration"))
os.environ.setdefault("TPC_PARTICIPANT_BIN", os.path.join(root, "build/participant/participant"))
os.environ.setdefault("TPC_COORDINATOR_BIN", os.path.join(root, "build/coordinator/coordinator"))

from harness import Cluster  # noqa: E402

seconds = sys.argv[1] if len(sys.argv) > 1 else "5"
print("two-participant transfer, 1 client, %s s per run, all processes on this machine (%d cores)"
      % (seconds, os.cpu_count()))
ACCOUNTS = 10000
schema = ("CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL "
          "CHECK (balance >= 0));\n"
          "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "
          "INSERT INTO accounts SELECT i, 1000000 FROM n;\n" % ACCOUNTS)
for replicas, f in ((1, 0), (3, 1)):
    c = Cluster(n_replicas=replicas, schema=schema)
    try:
        out = subprocess.run([os.path.join(root, "build/bench/transfer_bench"), "--url",
                              c.replica_urls[0], "--token-file", os.path.join(c.dir, "client.token"),
                              "--clients", "1", "--seconds", seconds, "--accounts", str(ACCOUNTS)],
                             capture_output=True, text=True, timeout=600)
        print("F=%d (%d replica%s): %s" % (f, replicas, "s" if replicas > 1 else "",
                                           out.stdout.strip() or out.stderr.strip()))
    finally:
        c.stop()
