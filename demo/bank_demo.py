#!/usr/bin/env python3
"""The demo: a cross-database atomic commit that survives crashes.

Starts 3 coordinator replicas and 2 bank participants (SQLite files) on loopback, runs
concurrent transfers between the banks through the REST API, kills the leading replica in
the middle of a commit and a participant right after it voted (failpoints), restarts both,
and audits: the total is conserved, every transfer is in both databases or in neither, every
commit the clients were told about is there, and nothing is left prepared.
Exit status 0 when the audit passes, 1 when it does not.
"""
import os
import random
import signal
import sqlite3
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("TPC_PARTICIPANT_BIN", os.path.join(ROOT, "build/participant/participant"))
os.environ.setdefault("TPC_COORDINATOR_BIN", os.path.join(ROOT, "build/coordinator/coordinator"))

from harness import Cluster, wait_until  # noqa: E402

ACCOUNTS, BALANCE, CLIENTS, SECONDS = 100, 1000, 4, 20
SCHEMA = ("CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL "
          "CHECK (balance >= 0));\n"
          "CREATE TABLE transfers(id TEXT PRIMARY KEY, amount INTEGER NOT NULL);\n"
          "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "
          "INSERT INTO accounts SELECT i, %d FROM n;\n" % (ACCOUNTS, BALANCE))


def say(msg):
    print("[%5.1fs] %s" % (time.monotonic() - T0, msg), flush=True)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.committed, self.aborted, self.undecided, self.errors = [], 0, [], 0


def transfer(c, stats, n, rng):
    """One transfer through a random replica: debit bank-a, credit bank-b (or the reverse)."""
    i = rng.randrange(3)
    if not c.replicas[i].alive():
        i = next(k for k in range(3) if c.replicas[k].alive())
    src, dst = rng.sample(["bank-a", "bank-b"], 2)
    amount, tid = rng.randint(1, 50), "t%d-%d" % (n, rng.randrange(1 << 30))
    try:
        code, r = c.call(i, "POST", "/v1/transactions", {}, timeout=10)
        if code != 201:
            return
        tx = r["txid"]
        for part, sign in ((src, -1), (dst, 1)):
            code, r = c.call(i, "POST", "/v1/transactions/%s/exec" % tx, {"participant": part,
                             "statements": [
                                 {"sql": "UPDATE accounts SET balance = balance + ? WHERE id = ?",
                                  "params": [sign * amount, rng.randint(1, ACCOUNTS)]},
                                 {"sql": "INSERT INTO transfers VALUES (?, ?)",
                                  "params": [tid, sign * amount]}]}, timeout=10)
            if code != 200:
                c.call(i, "POST", "/v1/transactions/%s/abort" % tx, timeout=10)
                with stats.lock:
                    stats.aborted += 1
                return
        code, r = c.call(i, "POST", "/v1/transactions/%s/commit" % tx, timeout=15)
    except OSError:
        # The replica died mid-request: the client does not know the outcome. The audit
        # still holds it to all-or-nothing.
        with stats.lock:
            stats.undecided.append(tid)
        return
    with stats.lock:
        if code == 200 and r["outcome"] == "committed":
            stats.committed.append(tid)
        elif code == 200:
            stats.aborted += 1
        else:
            stats.undecided.append(tid)


def client(c, stats, n, stop):
    rng = random.Random(n)
    while not stop.is_set():
        transfer(c, stats, n, rng)


def db_rows(path, sql):
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def main():
    global T0
    T0 = time.monotonic()
    print("== Paxos Commit: two bank databases, one atomic transfer at a time ==")
    c = Cluster(n_replicas=3, schema=SCHEMA, timeouts={"commit": 5000, "stale": 1000})
    try:
        a, b = c.parts["bank-a"], c.parts["bank-b"]
        say("started 3 coordinator replicas (%s) and 2 participants (bank-a, bank-b), "
            "%d accounts of %d each per bank" % (", ".join(c.replica_urls), ACCOUNTS, BALANCE))
        before = sum(r[0] for r in db_rows(a.db, "SELECT balance FROM accounts")) + \
            sum(r[0] for r in db_rows(b.db, "SELECT balance FROM accounts"))
        stats, stop = Stats(), threading.Event()
        threads = [threading.Thread(target=client, args=(c, stats, n, stop)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        say("%d clients are transferring money between the banks through random replicas"
            % CLIENTS)
        time.sleep(3)  # the demo's script: let transfers run, then cut in
        say("arming replica 0 to crash right after it decides a transaction, before it "
            "tells anyone")
        c.replicas[0].kill(signal.SIGKILL)
        c.replicas[0].start(failpoints="leader-after-decide")
        wait_until(lambda: not c.replicas[0].alive(), timeout=60, what="replica 0 to crash")
        c.replicas[0].proc.wait(timeout=10)
        c.replicas[0].log.close()
        say("replica 0 crashed mid-commit (its participants were prepared, nobody told); the "
            "other replicas take over")
        time.sleep(2)  # the demo's script: show it keeps going with a replica down
        c.replicas[0].start()
        say("replica 0 restarted")
        say("arming bank-b to crash when it is told to commit (after it voted prepared)")
        b.kill(signal.SIGKILL)
        b.log.close()
        b.failpoints = "participant-before-commit"
        b.start()
        wait_until(lambda: b.proc.poll() is not None, timeout=60, what="bank-b to crash")
        b.log.close()
        say("bank-b crashed holding prepared transactions; restarting it, it asks the "
            "replicas for their outcome")
        b.failpoints = None
        b.start()
        time.sleep(4)  # the demo's script: transfers continue after the restarts
        stop.set()
        for t in threads:
            t.join(timeout=60)
        say("transfers stopped: %d committed, %d aborted, %d whose client got no answer"
            % (len(stats.committed), stats.aborted, len(stats.undecided)))
        def prepared():
            return (len(a.call("GET", "/v1/prepared")[1]["prepared"]),
                    len(b.call("GET", "/v1/prepared")[1]["prepared"]))
        try:
            wait_until(lambda: prepared() == (0, 0), timeout=60,
                       what="every in-doubt branch to be resolved")
        except AssertionError:
            pass  # reported by the audit below
        left = prepared()
        recovered = sum(c.call(i, "GET", "/health")[1]["recoveries"] for i in range(3))
        ta = dict(db_rows(a.db, "SELECT id, amount FROM transfers"))
        tb = dict(db_rows(b.db, "SELECT id, amount FROM transfers"))
        after = sum(r[0] for r in db_rows(a.db, "SELECT balance FROM accounts")) + \
            sum(r[0] for r in db_rows(b.db, "SELECT balance FROM accounts"))
        half = sorted(set(ta) ^ set(tb))
        lost = sorted(t for t in stats.committed if t not in ta or t not in tb)
        unknown_in = sum(1 for t in stats.undecided if t in ta and t in tb)
        checks = [
            ("total balance before = after", "%d = %d" % (before, after), before == after),
            ("transfers in both databases or in neither", "%d in both, %d in one only"
             % (len(set(ta) & set(tb)), len(half)), not half),
            ("every commit a client was told is in both", "%d told, %d missing"
             % (len(stats.committed), len(lost)), not lost),
            ("debit and credit of each transfer match", "%d checked" % len(set(ta) & set(tb)),
             all(ta[t] == -tb[t] for t in set(ta) & set(tb))),
            ("nothing left prepared (in doubt) within a minute", "%d at bank-a, %d at bank-b"
             % left, left == (0, 0)),
            ("transactions recovered by a replica (phase 1, higher ballot)", str(recovered),
             None),
            ("transfers whose client got no answer, committed anyway", "%d of %d"
             % (unknown_in, len(stats.undecided)), None),
        ]
        print("\n== audit ==")
        for name, value, ok in checks:
            print("  %-62s %-26s %s" % (name, value, "" if ok is None else "ok" if ok else "FAILED"))
        good = all(ok is not False for _, _, ok in checks)
        print("\n%s (%.0f s)" % ("All-or-nothing held across both databases through both crashes."
                                 if good else "AUDIT FAILED", time.monotonic() - T0))
        return 0 if good else 1
    finally:
        c.stop()


if __name__ == "__main__":
    sys.exit(main())
