"""The operator's view on real processes (issue: the operator's view): `tpcctl resolve` ends an
undecided transaction through Paxos at any replica that holds its votes, and never contradicts
a decision; a transaction's detail shows its votes, ballots and acceptors; the cluster view
probes every node; and at a participant whose replicas are lost, a heuristic decision is made,
recorded, counted, kept across a restart, and reconciled when the replicas return: confirmed,
or heuristic mixed, reported."""
import concurrent.futures
import os
import subprocess
import time
import unittest

from tpclaunch import Cluster, http_call, metrics, wait_until
from tpclaunch.cluster import BANK_SCHEMA, CLIENT_TOKEN, TOKEN

TPCCTL = os.environ.get("TPC_TPCCTL_BIN", "tpcctl")
DEBIT = "UPDATE accounts SET balance = balance - 10 WHERE id = 1"


def tpcctl(*args, token=CLIENT_TOKEN, cluster_token=None):
    env = dict(os.environ, TPC_CLIENT_TOKEN=token)
    env.pop("TPC_CLUSTER_TOKEN", None)
    if cluster_token:
        env["TPC_CLUSTER_TOKEN"] = cluster_token
    r = subprocess.run([TPCCTL] + list(args), capture_output=True, text=True, timeout=60, env=env)
    return r.returncode, r.stdout, r.stderr


def now_ms():
    return int(time.time() * 1000)


class ResolveTest(unittest.TestCase):
    """A cluster whose sweep waits a minute: whatever ends here, resolve ended it."""

    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(n_replicas=3, timeouts={"stale": 60000})

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def relay(self, replica, txid, participant, born, parts=("bank-a", "bank-b")):
        """A leader's ballot-0 relay of participant's prepared vote, to one acceptor."""
        code, r = self.c.call(replica, "POST", "/v1/paxos", {"messages": [
            {"type": "phase2a", "txid": txid, "instance": participant,
             "ballot": {"round": 0, "replica": 0}, "value": "prepared",
             "participants": list(parts), "born": born}]}, token=TOKEN)
        self.assertEqual(code, 200, r)
        self.assertEqual(r["messages"][0]["type"], "phase2b", r)

    def test_active_transaction_at_its_leader(self):
        c = self.c
        tx = c.begin(0)
        code, r = c.exec(0, tx, "bank-a", DEBIT)
        self.assertEqual(code, 200, r)
        rc, out, err = tpcctl("--url", c.replica_urls[0], "resolve", tx)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.split()[:2], [tx, "aborted"], out)
        wait_until(lambda: c.parts["bank-a"].status(tx)[1].get("state") == "aborted",
                   what="bank-a told the abort")
        self.assertEqual(c.parts["bank-a"].balance(1), 100)

    def test_in_doubt_at_a_replica_that_did_not_lead_it(self):
        """Only bank-a's vote reached one acceptor (r1); its leader is gone. r2 holds nothing
        of it (404, and tpcctl goes on to the next replica); r1 recovers it through Paxos:
        bank-b's instance has no vote, so aborted is chosen."""
        c = self.c
        tx, born = "op-doubt-1", now_ms()
        self.relay(1, tx, "bank-a", born)
        code, r = c.status(1, tx)
        self.assertEqual((code, r.get("state")), (200, "in_doubt"), r)
        code, r = c.call(1, "GET", "/v1/transactions/%s?detail=1" % tx)
        self.assertEqual(code, 200, r)
        acc = {a["participant"]: a for a in r["detail"]["acceptor"]}
        self.assertEqual(acc["bank-a"]["value"], "prepared", r)
        self.assertEqual(acc["bank-a"]["accepted_ballot"], {"round": 0, "replica": 0}, r)
        code, r = c.call(2, "POST", "/v1/transactions/%s/resolve" % tx, {"outcome": "aborted"})
        self.assertEqual((code, r["error"]["code"]), (404, "unknown_transaction"), r)
        rc, out, err = tpcctl("resolve", tx, c.replica_urls[2], c.replica_urls[1])
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.split()[:2], [tx, "aborted"], out)
        for i in (1, 2):  # the outcome reaches every replica, and the participants
            wait_until(lambda: c.status(i, tx)[1].get("outcome") == "aborted",
                       what="replica %d learns the outcome" % i)
        # Resolving again is a read: the same outcome.
        code, r = c.call(1, "POST", "/v1/transactions/%s/resolve" % tx, {})
        self.assertEqual((code, r.get("outcome")), (200, "aborted"), r)

    def test_resolve_never_contradicts_a_chosen_vote(self):
        """Both branches prepared and both votes accepted by F+1 acceptors: commit is chosen,
        whoever asks; resolve says committed, and the participants apply it."""
        c = self.c
        tx, born = "op-chosen-1", now_ms()
        for name in ("bank-a", "bank-b"):
            p = c.parts[name]
            code, r = p.exec(tx, DEBIT)
            self.assertEqual(code, 200, r)
            code, r = p.call("POST", "/v1/branches/%s/prepare" % tx, {
                "type": "prepare", "txid": tx, "participants": ["bank-a", "bank-b"], "born": born})
            self.assertEqual((code, r.get("value")), (200, "prepared"), r)
            for replica in (1, 2):
                self.relay(replica, tx, name, born)
        rc, out, err = tpcctl("resolve", tx, c.replica_urls[1])
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.split()[:2], [tx, "committed"], out)
        for name in ("bank-a", "bank-b"):
            wait_until(lambda: c.parts[name].status(tx)[1].get("state") == "committed",
                       what="%s applies the commit" % name)
            self.assertEqual(c.parts[name].balance(1), 90)

    def test_resolve_takes_only_an_abort(self):
        code, r = self.c.call(0, "POST", "/v1/transactions/any-1/resolve", {"outcome": "committed"})
        self.assertEqual((code, r["error"]["code"]), (400, "bad_request"), r)
        code, r = self.c.call(0, "POST", "/v1/transactions/any-1/resolve", {}, token="wrong")
        self.assertEqual((code, r["error"]["code"]), (401, "unauthorized"), r)

    def test_detail_of_a_commit(self):
        c = self.c
        tx = c.begin(0)
        for name in ("bank-a", "bank-b"):
            code, r = c.exec(0, tx, name, "UPDATE accounts SET balance = balance WHERE id = 2")
            self.assertEqual(code, 200, r)
        code, r = c.commit(0, tx, wait="applied")
        self.assertEqual((code, r.get("outcome")), (200, "committed"), r)
        code, r = c.call(0, "GET", "/v1/transactions/%s?detail=1" % tx)
        self.assertEqual(code, 200, r)
        d = r["detail"]
        self.assertTrue(d["leading"], d)
        self.assertGreater(d["born_ms"], 0)
        insts = {i["participant"]: i for i in d["instances"]}
        self.assertEqual(set(insts), {"bank-a", "bank-b"})
        for i in insts.values():
            self.assertEqual((i["vote"], i["chosen"], i["phase"], i["told"]),
                             ("prepared", "prepared", "chosen", True), i)
            accepted = [a for a in i["accepted"] if a["value"] == "prepared"]
            self.assertTrue(accepted and len(accepted[0]["acceptors"]) >= 2, i)
        code, r = c.call(0, "GET", "/v1/transactions/%s?detail=2" % tx)
        self.assertEqual((code, r["error"]["code"]), (400, "bad_request"), r)

    def test_cluster_view(self):
        c = self.c
        code, r = c.call(1, "GET", "/v1/cluster")
        self.assertEqual(code, 200, r)
        self.assertEqual(r["self"], 1)
        self.assertEqual([x["id"] for x in r["replicas"]], [0, 1, 2])
        self.assertTrue(all(x["up"] and x["health"]["replica"] == x["id"] for x in r["replicas"]), r)
        names = {p["name"]: p for p in r["participants"]}
        self.assertEqual(set(names), {"bank-a", "bank-b"})
        for p in names.values():
            self.assertTrue(p["up"] and p["latency_ms"] >= 0, p)
            self.assertEqual(p["health"]["name"], p["name"])
            self.assertEqual(p["heuristics"], [], p)
        code, r = c.call(1, "GET", "/v1/cluster", token="wrong")
        self.assertEqual(code, 401, r)

    def test_cluster_views_asked_together_share_one_round_of_probes(self):
        """However many pages poll at once, one round of probes is out at a time: views asked
        while it is out get its answer."""
        c, a = self.c, self.c.parts["bank-a"]
        c.faults(c.replica_urls[2], {"delay_ms": {a.url: 1000}})  # a round takes a second
        try:
            def served():
                return metrics(a.url)['tpc_http_requests_total{code="2xx"}']
            before = served()
            with concurrent.futures.ThreadPoolExecutor(6) as pool:
                views = list(pool.map(lambda _: c.call(2, "GET", "/v1/cluster"), range(6)))
            after = served()
        finally:
            c.faults(c.replica_urls[2], {})
        for code, r in views:
            self.assertEqual(code, 200, r)
            self.assertEqual(r["self"], 2)
            self.assertEqual({p["name"]: p["up"] for p in r["participants"]},
                             {"bank-a": True, "bank-b": True}, r)
        # Each round asks bank-a twice (/health, /v1/heuristics); six rounds would be twelve.
        # Its own /metrics reads count too (the one before this was counted by "after").
        self.assertLessEqual(after - before, 2 * 2 + 1, (before, after))


class HeuristicTest(unittest.TestCase):
    """Every replica is lost while two branches are prepared: the operator decides them
    heuristically, one each way; when the replicas return, aborted is chosen (no vote reached
    them): bank-b's abort is confirmed, bank-a's commit is reported as heuristic mixed."""

    def setUp(self):
        self.c = Cluster(n_replicas=3, timeouts={"stale": 60000},
                         schema=BANK_SCHEMA + "CREATE TABLE notes(id TEXT PRIMARY KEY);")

    def tearDown(self):
        self.c.stop()

    def heuristics(self, name):
        code, r = self.c.parts[name].call("GET", "/v1/heuristics")
        self.assertEqual(code, 200, r)
        return {h["txid"]: h for h in r["heuristics"]}

    def test_heuristic_decisions_are_recorded_and_reconciled(self):
        c = self.c
        a, b = c.parts["bank-a"], c.parts["bank-b"]
        tx, tx2 = c.begin(0), "op-heur-2"
        for p in (a, b):
            code, r = c.exec(0, tx, p.name, DEBIT)
            self.assertEqual(code, 200, r)
        code, r = a.exec(tx2, "UPDATE accounts SET balance = balance - 1 WHERE id = 3")
        self.assertEqual(code, 200, r)
        born = c.call(0, "GET", "/v1/transactions/%s?detail=1" % tx)[1]["detail"]["born_ms"]
        for r in c.replicas:  # lost, before anybody voted
            r.kill()
        for p, t in ((a, tx), (b, tx), (a, tx2)):
            code, r = p.call("POST", "/v1/branches/%s/prepare" % t, {
                "type": "prepare", "txid": t, "participants": ["bank-a", "bank-b"], "born": born})
            self.assertEqual((code, r.get("value")), (200, "prepared"), r)

        # Not prepared: refused, nothing changes.
        code, r = a.call("POST", "/v1/branches/never-1/heuristic", {"outcome": "committed"})
        self.assertEqual((code, r["error"]["code"]), (409, "not_prepared"), r)
        code, r = a.call("POST", "/v1/branches/%s/heuristic" % tx, {"outcome": "maybe"})
        self.assertEqual((code, r["error"]["code"]), (400, "bad_request"), r)

        rc, out, err = tpcctl("resolve", "--heuristic", "commit", "--participant", a.url, tx,
                              cluster_token=TOKEN)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.split(), [tx, "heuristic", "committed", "pending"], out)
        self.assertEqual(a.balance(1), 90)  # applied at once; the row is free again
        self.assertEqual(a.status(tx)[1]["state"], "heuristic_committed")
        # A repeat answers the same; the other decision is refused.
        code, r = a.call("POST", "/v1/branches/%s/heuristic" % tx, {"outcome": "committed"})
        self.assertEqual((code, r.get("state")), (200, "pending"), r)
        code, r = a.call("POST", "/v1/branches/%s/heuristic" % tx, {"outcome": "aborted"})
        self.assertEqual((code, r["error"]["code"]), (409, "not_prepared"), r)
        rc, out, err = tpcctl("resolve", "--heuristic", "abort", "--participant", b.url, tx,
                              cluster_token=TOKEN)
        self.assertEqual(rc, 0, err)
        self.assertEqual(b.balance(1), 100)
        code, r = a.call("POST", "/v1/branches/%s/heuristic" % tx2, {"outcome": "aborted"})
        self.assertEqual((code, r["heuristic"], r["state"]), (200, "aborted", "pending"), r)
        m = metrics(a.url)
        self.assertEqual(m['tpc_heuristic_decisions_total{outcome="committed"}'], 1)
        self.assertEqual(m['tpc_heuristic_decisions_total{outcome="aborted"}'], 1)
        self.assertEqual(a.call("GET", "/health")[1]["heuristic"]["pending"], 2)

        # A restart keeps the pending decisions (they still ask the replicas).
        self.assertEqual(a.kill(), -9)
        a.start()
        self.assertEqual({t: h["state"] for t, h in self.heuristics("bank-a").items()},
                         {tx: "pending", tx2: "pending"})

        for r in c.replicas:  # back: the participants ask, the replicas choose aborted
            r.start()
        wait_until(lambda: self.heuristics("bank-a")[tx]["state"] != "pending" and
                   self.heuristics("bank-a")[tx2]["state"] != "pending" and
                   self.heuristics("bank-b")[tx]["state"] != "pending",
                   timeout=30, what="the heuristic decisions reconciled")
        ha, hb = self.heuristics("bank-a"), self.heuristics("bank-b")
        self.assertEqual((ha[tx]["state"], ha[tx]["outcome"]), ("mixed", "aborted"), ha)
        self.assertEqual((ha[tx2]["state"], ha[tx2]["outcome"]), ("confirmed", "aborted"), ha)
        self.assertEqual((hb[tx]["state"], hb[tx]["outcome"]), ("confirmed", "aborted"), hb)
        # The replica that recovered it announces the outcome to the others.
        wait_until(lambda: all(c.status(i, tx)[1].get("outcome") == "aborted" for i in range(3)),
                   what="every replica knows the outcome")
        m = metrics(a.url)
        self.assertEqual(m['tpc_heuristic_reconciled_total{result="mixed"}'], 1)
        self.assertEqual(m['tpc_heuristic_reconciled_total{result="confirmed"}'], 1)
        self.assertIn("HEURISTIC MIXED", a.read_log())
        self.assertEqual(a.call("GET", "/health")[1]["heuristic"],
                         {"committed": 0, "aborted": 0, "pending": 0, "mixed": 1})
        # The cluster view and tpcctl show it; the leader's telling is acknowledged.
        code, r = c.call(0, "GET", "/v1/cluster")
        self.assertEqual(code, 200, r)
        view = {p["name"]: p for p in r["participants"]}
        self.assertEqual({h["txid"]: h["state"] for h in view["bank-a"]["heuristics"]},
                         {tx: "mixed", tx2: "confirmed"})
        rc, out, err = tpcctl("heuristics", "--participant", a.url, cluster_token=TOKEN)
        self.assertEqual(rc, 0, err)
        self.assertIn("%s\theuristic committed\tmixed\tchosen aborted" % tx, out)
        code, r = a.call("POST", "/v1/branches/%s/abort" % tx)
        self.assertEqual((code, r.get("type")), (200, "ack"), r)

    def test_more_decisions_than_a_page_are_all_reconciled_after_a_restart(self):
        """More pending decisions than one page of the listing (1000): a restart reloads every
        one, so each asks the replicas and each is reconciled, the oldest too."""
        c, a, n = self.c, self.c.parts["bank-a"], 1003
        for r in c.replicas:
            r.kill()
        txids = ["page-%04d" % i for i in range(n)]

        def decide(t):
            code, r = a.exec(t, "INSERT INTO notes VALUES (?)", [t])
            assert code == 200, r
            code, r = a.call("POST", "/v1/branches/%s/prepare" % t, {
                "type": "prepare", "txid": t, "participants": ["bank-a", "bank-b"],
                "born": now_ms()})
            assert code == 200 and r["value"] == "prepared", r
            code, r = a.call("POST", "/v1/branches/%s/heuristic" % t, {"outcome": "committed"})
            assert code == 200 and r["state"] == "pending", r
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(decide, txids))
        self.assertEqual(a.call("GET", "/health")[1]["heuristic"]["pending"], n)
        listed = self.heuristics("bank-a")
        self.assertEqual(len(listed), 1000)  # one page, every one pending
        self.assertEqual({h["state"] for h in listed.values()}, {"pending"})

        self.assertEqual(a.kill(), -9)
        a.start()
        for r in c.replicas:  # back: every branch asks, aborted is chosen, each one is mixed
            r.start()
        wait_until(lambda: a.call("GET", "/health")[1]["heuristic"]["pending"] == 0,
                   timeout=120, what="every heuristic decision reconciled")
        m = metrics(a.url)
        self.assertEqual(m['tpc_heuristic_reconciled_total{result="mixed"}'], n)
        self.assertEqual(a.call("GET", "/health")[1]["heuristic"]["mixed"], n)
        # The oldest one too (the first in txid order, outside the newest page).
        code, r = a.status(txids[0])
        self.assertEqual((code, r.get("state")), (200, "heuristic_committed"), r)
        code, r = a.call("GET", "/v1/heuristics")
        self.assertEqual({h["state"] for h in r["heuristics"]}, {"mixed"})


if __name__ == "__main__":
    unittest.main()
