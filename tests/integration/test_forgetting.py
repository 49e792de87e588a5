"""Forgetting old transactions (docs/DESIGN.md section 11, http-api.md "Retention"): with a
short retention, a decided transaction leaves every file, questions about it get the documented
answers, late protocol messages about it change nothing, its client txid can be begun again,
and a decision still owed to a participant outlives the retention until it is acknowledged."""
import os
import sqlite3
import unittest

from tpclaunch import Cluster, metrics, wait_until

RETENTION_MS = 10000  # the least a cluster takes
ROWS = {"decision": "SELECT count(*) FROM decision WHERE txid = ?",
        "acceptor": "SELECT count(*) FROM acceptor WHERE txid = ?",
        "begun": "SELECT count(*) FROM begun WHERE txid = ?"}


class ForgettingTest(unittest.TestCase):
    def setUp(self):
        self.c = Cluster(n_replicas=3, retention_ms=RETENTION_MS,
                         timeouts={"transaction": RETENTION_MS // 2})

    def tearDown(self):
        self.c.stop()

    def replica_rows(self, i, txid):
        path = os.path.join(self.c.dir, "data", "replica-%d.db" % i)
        con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
        try:
            return {t: con.execute(q, (txid,)).fetchone()[0] for t, q in ROWS.items()}
        finally:
            con.close()

    def replica_query(self, i, sql, *args):
        path = os.path.join(self.c.dir, "data", "replica-%d.db" % i)
        con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    def outcome_row(self, part, txid):
        return part.rows("SELECT outcome, vote, born FROM tpc_outcome WHERE txid = '%s'" % txid)

    def transfer(self, name, amount=5):
        tx = self.c.begin(0, txid=name)
        for p, sign in (("bank-a", -1), ("bank-b", 1)):
            code, r = self.c.exec(0, tx, p, "UPDATE accounts SET balance = balance + ? WHERE id = 1",
                                  [sign * amount])
            self.assertEqual(code, 200, r)
        return tx

    def test_a_decided_transaction_is_forgotten_and_late_messages_change_nothing(self):
        tx = self.transfer("old-1")
        code, r = self.c.commit(0, tx, wait="applied")
        self.assertEqual((code, r.get("outcome")), (200, "committed"), r)
        a, b = self.c.parts["bank-a"], self.c.parts["bank-b"]
        wait_until(lambda: self.outcome_row(b, tx), timeout=10, what="bank-b to record it")
        born = self.outcome_row(a, tx)[0][2]
        self.assertGreater(born, 1.6e12)  # milliseconds since 1970, from the coordinator
        wait_until(lambda: all(self.c.status(i, tx)[1].get("state") == "committed"
                               for i in range(3)), timeout=10, what="every replica to learn it")
        # A recorded decision stands for the acceptor's records: none are left.
        for i in range(3):
            self.assertEqual(self.replica_rows(i, tx)["acceptor"], 0, i)

        # After the retention every process forgets it.
        wait_until(lambda: all(self.c.status(i, tx)[0] == 404 for i in range(3)),
                   timeout=RETENTION_MS / 1000 + 20, what="the replicas to forget it")
        code, r = self.c.status(1, tx)
        self.assertEqual(r["error"]["code"], "unknown_transaction")
        self.assertIn("retention", r["error"]["message"])
        for i in range(3):
            self.assertEqual(self.replica_rows(i, tx), {"decision": 0, "acceptor": 0,
                                                        "begun": 1 if i == 0 else 0})
        wait_until(lambda: not self.outcome_row(a, tx) and not self.outcome_row(b, tx),
                   timeout=10, what="the participants to forget it")

        # Late messages about it: nothing is made, nothing is voted, nothing changes.
        before = (a.dump(), b.dump(), [self.replica_rows(i, tx) for i in range(3)])
        parts = ["bank-a", "bank-b"]
        late = {"messages": [
            {"type": "phase2a", "txid": tx, "instance": "bank-a", "ballot": {"round": 0,
             "replica": 0}, "value": "aborted", "participants": parts, "born": born},
            {"type": "phase1a", "txid": tx, "instance": "bank-b", "ballot": {"round": 9,
             "replica": 1}, "participants": parts, "born": born},
            {"type": "status", "txid": tx, "instance": "bank-a", "participants": parts,
             "born": born}]}
        for i in range(3):
            code, r = self.c.call(i, "POST", "/v1/paxos", late, token="test-cluster-token")
            self.assertEqual((code, r), (200, {"messages": []}), i)
        code, r = a.call("POST", "/v1/branches/%s/prepare" % tx,
                         {"type": "prepare", "txid": tx, "participants": parts, "born": born})
        self.assertEqual((code, r["error"]["code"]), (410, "transaction_forgotten"), r)
        code, r = b.call("POST", "/v1/outcomes",
                         {"outcomes": [{"txid": tx, "outcome": "committed", "born": born}]})
        self.assertEqual(code, 200, r)
        self.assertEqual(r["results"][0].get("type"), "ack", r)
        # The status question starts no recovery: each replica counted it refused, and holds
        # nothing in doubt.
        for i in range(3):
            url = self.c.replica_urls[i]
            wait_until(lambda: metrics(url).get("tpc_expired_refused_total", 0) >= 1,
                       timeout=10, what="replica %d to refuse the recovery" % i)
            self.assertEqual(self.c.call(i, "GET", "/v1/transactions?state=in_doubt")[1],
                             {"transactions": []})
        self.assertEqual((a.dump(), b.dump(), [self.replica_rows(i, tx) for i in range(3)]),
                         before)

        # The client's txid stays taken a retention longer (so that whatever a clock behind
        # still holds of the first is forgotten too), then it is free again: a new transaction.
        code, r = self.c.call(0, "POST", "/v1/transactions", {"txid": "old-1"})
        self.assertEqual((code, r["error"]["code"]), (409, "txid_exists"), r)
        wait_until(lambda: self.replica_rows(0, tx)["begun"] == 0,
                   timeout=RETENTION_MS / 1000 + 20, what="the begun txid to go")
        tx2 = self.transfer("old-1")
        self.assertEqual(tx2, tx)
        code, r = self.c.commit(0, tx2)
        self.assertEqual((code, r.get("outcome")), (200, "committed"), r)
        wait_until(lambda: (self.c.balances()["bank-a"][1], self.c.balances()["bank-b"][1])
                   == (90, 110), timeout=10, what="both transfers applied")

    def test_a_decision_owed_to_a_participant_outlives_the_retention(self):
        b = self.c.parts["bank-b"]
        # bank-b will die right after its prepared record is durable, before it votes: aborted
        # is chosen for it, and the leader owes it the outcome while it is down.
        self.assertEqual(b.kill(), -9)
        b.failpoints = "participant-after-prepare"
        b.start()
        tx = self.transfer("owed-1")
        code, r = self.c.commit(0, tx)
        self.assertEqual((code, r.get("outcome")), (200, "aborted"), r)
        wait_until(lambda: b.proc.poll() is not None, timeout=10, what="bank-b to crash")
        # Past the retention, a replica that decided it (the leader, and maybe another that
        # recovered it meanwhile) still holds it: it owes bank-b the outcome (told 0). One that
        # only learned it forgot it.
        # (The answer comes once the outcome is chosen; the leader's record follows.)
        wait_until(lambda: self.replica_query(0, "SELECT born FROM decision WHERE txid = ?", tx),
                   timeout=10, what="the leader's decision record")
        born = self.replica_query(0, "SELECT born FROM decision WHERE txid = ?", tx)[0][0]
        wait_until(lambda: all(self.replica_query(i, "SELECT value FROM meta WHERE key = "
                                                     "'horizon'")[0][0] > born
                               for i in range(3)),
                   timeout=RETENTION_MS / 1000 + 20, what="the retention to pass everywhere")
        self.assertEqual(self.c.status(0, tx)[1].get("outcome"), "aborted")
        for i in range(3):
            told = self.replica_query(i, "SELECT told FROM decision WHERE txid = ?", tx)
            self.assertIn(told, ([], [(0,)]), i)
            self.assertEqual(self.c.status(i, tx)[0], 200 if told else 404, i)
        # bank-b comes back prepared, learns the outcome, acknowledges; then the leader forgets.
        b.failpoints = None
        b.start()
        wait_until(lambda: b.call("GET", "/v1/prepared")[1].get("prepared") == [],
                   timeout=20, what="bank-b to apply the outcome")
        wait_until(lambda: all(self.c.status(i, tx)[0] == 404 for i in range(3)), timeout=15,
                   what="the replicas to forget it once told")
        for i in range(3):
            self.assertEqual(self.replica_rows(i, tx)["decision"], 0, i)
            self.assertEqual(self.replica_rows(i, tx)["acceptor"], 0, i)
        bal = self.c.balances()
        self.assertEqual((bal["bank-a"][1], bal["bank-b"][1]), (100, 100))


if __name__ == "__main__":
    unittest.main()
