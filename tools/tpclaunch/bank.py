"""The bank workload and its audit, for the demo and the fault suite.

Two participants, bank-a and bank-b, each with ACCOUNTS accounts. A transfer debits an
account at one bank and credits one at the other, and records its id and amount in a
`transfers` table at both, so an audit can check that it is in both databases or in neither.
"""
import random
import sqlite3
import threading

from .cluster import wait_until

ACCOUNTS, BALANCE = 100, 1000
SCHEMA = ("CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL "
          "CHECK (balance >= 0));\n"
          "CREATE TABLE transfers(id TEXT PRIMARY KEY, amount INTEGER NOT NULL);\n"
          "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "
          "INSERT INTO accounts SELECT i, %d FROM n;\n" % (ACCOUNTS, BALANCE))


def db_rows(path, sql):
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def total(cluster):
    return sum(sum(r[0] for r in db_rows(p.db, "SELECT balance FROM accounts"))
               for p in cluster.parts.values())


class Workload:
    """Clients transferring money through random live replicas until stopped."""

    def __init__(self, cluster, clients=4, seed=1):
        self.c, self.seed = cluster, seed
        self.lock = threading.Lock()
        self.committed, self.aborted, self.undecided = [], 0, []
        self.stop_event = threading.Event()
        # Daemons: an error in the caller must not leave the process waiting on them.
        self.threads = [threading.Thread(target=self.client, args=(n,), daemon=True)
                        for n in range(clients)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=120)

    def client(self, n):
        rng = random.Random(self.seed * 1000 + n)
        while not self.stop_event.is_set():
            self.transfer(n, rng)

    def transfer(self, n, rng):
        c = self.c
        live = [i for i in range(len(c.replicas)) if c.replicas[i].alive()]
        if not live:
            self.stop_event.wait(0.05)  # every replica is down: try again shortly
            return
        i = rng.choice(live)
        src, dst = rng.sample(["bank-a", "bank-b"], 2)
        amount, tid = rng.randint(1, 50), "t%d-%d" % (n, rng.randrange(1 << 40))
        try:
            code, r = c.call(i, "POST", "/v1/transactions", {}, timeout=10)
            if code != 201:
                return
            tx = r["txid"]
            for part, sign in ((src, -1), (dst, 1)):
                body = {"participant": part, "seq": 1, "statements": [
                    {"sql": "UPDATE accounts SET balance = balance + ? WHERE id = ?",
                     "params": [sign * amount, rng.randint(1, ACCOUNTS)]},
                    {"sql": "INSERT INTO transfers VALUES (?, ?)",
                     "params": [tid, sign * amount]}]}
                # Numbered, an exec is safe to send again after a 502 (its participant was
                # slow or away): it runs once (http-api.md).
                for _ in range(3):
                    code, r = c.call(i, "POST", "/v1/transactions/%s/exec" % tx, body,
                                     timeout=10)
                    if code != 502:
                        break
                if code != 200:
                    c.call(i, "POST", "/v1/transactions/%s/abort" % tx, timeout=10)
                    with self.lock:
                        self.aborted += 1
                    return
            code, r = c.call(i, "POST", "/v1/transactions/%s/commit" % tx, timeout=15)
        except OSError:
            # The replica died mid-request: the client does not know the outcome; the audit
            # still holds the transfer to all-or-nothing.
            with self.lock:
                self.undecided.append(tid)
            return
        with self.lock:
            if code == 200 and r["outcome"] == "committed":
                self.committed.append(tid)
            elif code == 200:
                self.aborted += 1
            else:
                self.undecided.append(tid)


def audit(cluster, work, before, settle_seconds=60):
    """Returns [(check, value, ok)]: ok is True/False, or None for a figure."""
    a, b = cluster.parts["bank-a"], cluster.parts["bank-b"]

    def prepared():
        return (len(a.call("GET", "/v1/prepared")[1]["prepared"]),
                len(b.call("GET", "/v1/prepared")[1]["prepared"]))
    try:
        wait_until(lambda: prepared() == (0, 0), timeout=settle_seconds,
                   what="every in-doubt branch to be resolved")
    except AssertionError:
        pass  # reported below
    left = prepared()
    ta = dict(db_rows(a.db, "SELECT id, amount FROM transfers"))
    tb = dict(db_rows(b.db, "SELECT id, amount FROM transfers"))
    after = total(cluster)
    both = set(ta) & set(tb)
    half = set(ta) ^ set(tb)
    lost = [t for t in work.committed if t not in both]
    recovered = 0
    for i in range(len(cluster.replicas)):
        if cluster.replicas[i].alive():
            recovered += cluster.call(i, "GET", "/health")[1]["recovered_for_others"]
    resolved = 0
    for p in (a, b):
        if p.alive():
            resolved += p.call("GET", "/health", token=None)[1]["in_doubt_resolved"]
    return [
        ("transfers committed / aborted / client got no answer", "%d / %d / %d"
         % (len(work.committed), work.aborted, len(work.undecided)), None),
        ("total balance before = after", "%d = %d" % (before, after), before == after),
        ("transfers in both databases or in neither", "%d in both, %d in one only"
         % (len(both), len(half)), not half),
        ("every commit a client was told is in both", "%d told, %d missing"
         % (len(work.committed), len(lost)), not lost),
        ("debit and credit of each transfer match", "%d checked" % len(both),
         all(ta[t] == -tb[t] for t in both)),
        ("nothing left prepared (in doubt) within %d s" % settle_seconds,
         "%d at bank-a, %d at bank-b" % left, left == (0, 0)),
        ("in-doubt branches resolved by asking the replicas", str(resolved), None),
        ("transactions recovered by a replica other than their leader", str(recovered), None),
        ("transfers whose client got no answer, committed anyway", "%d of %d"
         % (sum(1 for t in work.undecided if t in both), len(work.undecided)), None),
    ]


def print_audit(checks):
    for name, value, ok in checks:
        print("  %-62s %-26s %s" % (name, value, "" if ok is None else "ok" if ok else "FAILED"))
    return all(ok is not False for _, _, ok in checks)
