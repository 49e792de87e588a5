"""A randomized concurrency test of branches over UNIQUE constraints and foreign keys, with
participant crashes (issue: real schemas).

Worker threads run transactions against one real participant (the test plays the coordinator,
with in-test acceptors that hold the outcomes): they insert, update, re-key and delete customers
(a UNIQUE NOCASE email) and their orders (a UNIQUE ref, ON DELETE and ON UPDATE CASCADE),
notes (ON DELETE SET NULL) and payments (a plain foreign key to orders), with values drawn from
small pools so that they collide; some swap two customers' emails. Each transaction's first
statement records its txid in a journal table. Another thread kills the participant (SIGKILL)
every second or two and starts it again; prepared branches come back and ask for their outcome.

At the end: PRAGMA foreign_key_check is empty and integrity_check ok (every UNIQUE index holds),
nothing is left prepared, the journal holds exactly the transactions decided committed (every
one told committed was applied, none aborted was), and no apply ever failed: the
tpc_apply_failures_total counter is 0 before every kill and at the end, and no log says so.

TPC_TEST_SECONDS (default 20) bounds the run; TPC_TEST_SEED picks the schedule."""
import os
import random
import re
import socket
import sqlite3
import threading
import time
import unittest
import urllib.error
import urllib.request

from tpclaunch import FakeReplica, Participant, wait_until

SCHEMA = """
CREATE TABLE customers(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE COLLATE NOCASE);
CREATE TABLE orders(id INTEGER PRIMARY KEY,
                    customer_id INTEGER NOT NULL REFERENCES customers(id)
                        ON DELETE CASCADE ON UPDATE CASCADE,
                    ref TEXT UNIQUE);
CREATE TABLE notes(id INTEGER PRIMARY KEY,
                   customer_id INTEGER REFERENCES customers(id) ON DELETE SET NULL);
CREATE TABLE payments(id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders(id));
CREATE TABLE journal(txid TEXT PRIMARY KEY);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20)
INSERT INTO customers SELECT i, 'user' || i || '@example.com' FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30)
INSERT INTO orders SELECT i, 1 + i % 20, 'R-' || i FROM n;
"""

SECONDS = float(os.environ.get("TPC_TEST_SECONDS", "20"))
SEED = int(os.environ.get("TPC_TEST_SEED", str(int(time.time()))))
WORKERS = 8
DOWN = (ConnectionError, urllib.error.URLError, socket.timeout, TimeoutError)


def email(rng):
    e = "user%d@example.com" % rng.randint(1, 30)
    return e.upper() if rng.random() < 0.3 else e


def statement(rng):
    c, c2, o = rng.randint(1, 30), rng.randint(1, 30), rng.randint(1, 100)
    ref = "R-%d" % rng.randint(1, 100)
    return rng.choice([
        ("INSERT INTO customers VALUES (?, ?)", [c, email(rng)]),
        ("UPDATE customers SET email = ? WHERE id = ?", [email(rng), c]),
        ("DELETE FROM customers WHERE id = ?", [c]),
        ("UPDATE customers SET id = ? WHERE id = ?", [c2, c]),
        ("INSERT INTO orders VALUES (?, ?, ?)", [o, c, ref]),
        ("UPDATE orders SET customer_id = ? WHERE id = ?", [c, o]),
        ("UPDATE orders SET ref = ? WHERE id = ?", [ref, o]),
        ("DELETE FROM orders WHERE id = ?", [o]),
        ("INSERT INTO notes VALUES (?, ?)", [rng.randint(1, 50), c]),
        ("INSERT INTO payments VALUES (?, ?)", [rng.randint(1, 50), o]),
        ("DELETE FROM payments WHERE id = ?", [rng.randint(1, 50)]),
    ])


class RandomConstraintsTest(unittest.TestCase):
    def setUp(self):
        self.replicas = [FakeReplica(i) for i in range(3)]
        self.p = Participant(replicas=self.replicas, schema=SCHEMA, lock_timeout_ms=200)
        self.up = threading.Event()
        self.up.set()
        self.mu = threading.Lock()
        self.decided = {}  # txid -> "committed" | "aborted"
        self.counts = {"transactions": 0, "lock_timeout": 0, "constraint_violation": 0,
                       "other_refusals": 0, "swaps": 0, "crashes": 0, "interrupted": 0,
                       "lock_waits": 0, "checks": 0}
        self.problems = []

    def tearDown(self):
        self.p.stop()
        for r in self.replicas:
            r.stop()

    def count(self, key):
        with self.mu:
            self.counts[key] += 1

    def decide(self, txid, outcome):
        with self.mu:
            self.decided[txid] = outcome
        for r in self.replicas:
            r.outcomes[txid] = outcome

    def metric(self, name):
        with urllib.request.urlopen(self.p.url + "/metrics", timeout=5) as r:
            text = r.read().decode()
        return int(re.search(r"^%s (\d+)$" % name, text, re.M).group(1))

    def apply_failures(self):
        return self.metric("tpc_apply_failures_total")

    def exec(self, txid, statements):
        code, r = self.p.call("POST", "/v1/branches/%s/exec" % txid, {"statements": [
            {"sql": sql, "params": params} for sql, params in statements]})
        if code != 200:
            kind = r["error"]["code"]
            self.count(kind if kind in ("lock_timeout", "constraint_violation") else
                       "other_refusals")
            if kind not in ("lock_timeout", "constraint_violation", "sql_error"):
                # Not a conflict: worth a look (a branch lost in a crash is "transaction_ended"
                # or similar, which is expected too).
                if kind == "internal":
                    self.problems.append("%s: %s" % (txid, r))
        return code, r

    def transaction(self, rng, txid):
        self.count("transactions")
        code, _ = self.exec(txid, [("INSERT INTO journal VALUES (?)", [txid])])
        if code != 200:
            self.decide(txid, "aborted")
            self.p.abort(txid)
            return
        for _ in range(rng.randint(1, 4)):
            # Think time between requests, as an application has: branches overlap more.
            time.sleep(rng.uniform(0, 0.01))
            if rng.random() < 0.1:
                # Swap two customers' emails: read them, then move one aside in one request.
                a, b = rng.sample(range(1, 31), 2)
                code, r = self.exec(txid, [("SELECT id, email FROM customers WHERE id IN (?, ?) "
                                            "ORDER BY id", [a, b])])
                rows = r["results"][0]["rows"] if code == 200 else []
                if len(rows) == 2:
                    self.count("swaps")
                    (ia, ea), (ib, eb) = rows
                    self.exec(txid, [("UPDATE customers SET email = ? WHERE id = ?",
                                      ["swap-%s" % txid, ia]),
                                     ("UPDATE customers SET email = ? WHERE id = ?", [ea, ib]),
                                     ("UPDATE customers SET email = ? WHERE id = ?", [eb, ia])])
                continue
            self.exec(txid, [statement(rng) for _ in range(rng.choice((1, 1, 1, 2)))])
        code, vote = self.p.prepare(txid)
        if code == 200 and vote.get("value") == "prepared" and rng.random() < 0.85:
            self.decide(txid, "committed")
            time.sleep(rng.uniform(0, 0.005))  # the coordinator's decision takes a while
            code, ack = self.p.commit(txid)
            if code != 200:
                self.problems.append("%s: commit answered %s %s" % (txid, code, ack))
        else:
            self.decide(txid, "aborted")
            code, ack = self.p.abort(txid)
            if code not in (200, 404, 409):
                self.problems.append("%s: abort answered %s %s" % (txid, code, ack))

    def worker(self, n, end):
        rng = random.Random(SEED * 100 + n)
        i = 0
        while time.monotonic() < end:
            i += 1
            txid = "w%d-%d" % (n, i)
            self.up.wait(10)
            try:
                self.transaction(rng, txid)
            except DOWN:
                self.count("interrupted")
                with self.mu:
                    outcome = self.decided.get(txid)
                if outcome is None:
                    # The prepare's answer may be lost: it may be prepared. Abort it.
                    self.decide(txid, "aborted")
            except Exception as e:  # a failure of the test itself: report it, do not hang
                self.problems.append("%s: %r" % (txid, e))
                return

    def crasher(self, end):
        rng = random.Random(SEED)
        while time.monotonic() < end - 1:
            time.sleep(rng.uniform(0.8, 2.0))  # the schedule of crashes, not a wait for a state
            try:
                failures = self.apply_failures()
                self.counts["lock_waits"] += self.metric("tpc_lock_waits_total")
            except DOWN:
                failures = None
            if failures:
                self.problems.append("tpc_apply_failures_total is %d before a crash" % failures)
            self.up.clear()
            self.p.kill()
            self.count("crashes")
            self.p.start()
            self.up.set()

    def checker(self, end):
        """Looks at the committed data all along: an orphan committed now could be deleted by a
        later transaction before the end."""
        con = sqlite3.connect("file:%s?mode=ro" % self.p.db, uri=True, timeout=5)
        try:
            while time.monotonic() < end:
                bad = con.execute("PRAGMA foreign_key_check").fetchall()
                if bad:
                    self.problems.append("committed data breaks a foreign key: %r" % bad)
                    return
                self.counts["checks"] += 1
                time.sleep(0.02)  # a sampling interval, not a wait for a state
        finally:
            con.close()

    def test_random_schedule_keeps_every_constraint(self):
        end = time.monotonic() + SECONDS
        threads = [threading.Thread(target=self.worker, args=(n, end)) for n in range(WORKERS)]
        threads.append(threading.Thread(target=self.crasher, args=(end,)))
        threads.append(threading.Thread(target=self.checker, args=(end,)))
        for t in threads:
            t.start()
        for t in threads:
            t.join(SECONDS + 120)
            self.assertFalse(t.is_alive(), "a test thread did not finish")
        self.assertEqual(self.problems, [])
        # Every prepared branch learns its outcome from the acceptors (the reloaded ones ask).
        wait_until(lambda: self.p.rows("SELECT count(*) FROM tpc_prepared") == [(0,)],
                   timeout=60, what="no branch left prepared")
        self.assertEqual(self.p.rows("PRAGMA foreign_key_check"), [])
        self.assertEqual(self.p.rows("PRAGMA integrity_check"), [("ok",)])
        journal = {t for (t,) in self.p.rows("SELECT txid FROM journal")}
        committed = {t for t, o in self.decided.items() if o == "committed"}
        self.assertEqual(sorted(committed - journal), [], "told committed, not applied")
        self.assertEqual(sorted(journal - committed), [], "applied, not decided committed")
        self.assertEqual(self.apply_failures(), 0)
        self.assertNotIn("cannot apply", self.p.read_log())
        self.counts["lock_waits"] += self.metric("tpc_lock_waits_total")
        print("\nseed %d, %.0f s: %d transactions (%d committed), %d lock waits (at least), "
              "%d lock timeouts, %d constraint violations, %d other refusals, %d swaps, "
              "%d crashes, %d transactions interrupted by one, %d checks of the committed "
              "data" % (
                  SEED, SECONDS, self.counts["transactions"], len(committed),
                  self.counts["lock_waits"], self.counts["lock_timeout"],
                  self.counts["constraint_violation"],
                  self.counts["other_refusals"], self.counts["swaps"], self.counts["crashes"],
                  self.counts["interrupted"], self.counts["checks"]))
        self.assertGreater(len(committed), 50)
        self.assertGreater(self.counts["crashes"], 3)


if __name__ == "__main__":
    unittest.main()
