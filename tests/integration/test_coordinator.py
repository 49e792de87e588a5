"""Integration tests of the coordinator replicas (issue: coordinator replicas, REST API,
Paxos Commit over HTTP, recovery): real replica and participant processes on loopback,
real SQLite files, the databases checked afterwards. Run with F = 1 (3 replicas) and,
where the case needs no more replicas, with F = 0 (TPC_TEST_REPLICAS=1)."""
import json
import os
import signal
import threading
import unittest

from tpclaunch import Cluster, metrics, wait_until

N = int(os.environ.get("TPC_TEST_REPLICAS", "3"))


class CoordinatorTest(unittest.TestCase):
    def setUp(self):
        self.c = Cluster(n_replicas=N)

    def tearDown(self):
        self.c.stop()

    def transfer(self, i, txid=None, amount=10, src=1, dst=1):
        body = {"txid": txid} if txid else {}
        tx = self.c.begin(i, **body)
        code, r = self.c.exec(i, tx, "bank-a", "UPDATE accounts SET balance = balance - ? WHERE id = ?",
                              [amount, src])
        self.assertEqual(code, 200, r)
        code, r = self.c.exec(i, tx, "bank-b", "UPDATE accounts SET balance = balance + ? WHERE id = ?",
                              [amount, dst])
        self.assertEqual(code, 200, r)
        return tx

    def assert_applied(self, a, b, now=False):
        """Both databases hold these balances of account 1: at once (now), or once the
        participants have applied what was decided (a commit answers at the decision)."""
        if not now:
            try:
                wait_until(lambda: (self.c.balances()["bank-a"][1],
                                    self.c.balances()["bank-b"][1]) == (a, b), timeout=10)
            except AssertionError:
                pass  # the assertions below say what differs
        bal = self.c.balances()
        self.assertEqual(bal["bank-a"][1], a)
        self.assertEqual(bal["bank-b"][1], b)

    def test_commit_changes_both_databases(self):
        tx = self.transfer(0, txid="transfer-1")
        code, r = self.c.commit(0, tx)
        self.assertEqual(code, 200, r)
        self.assertEqual(r["outcome"], "committed")
        self.assertEqual(sorted(r["participants"]), ["bank-a", "bank-b"])
        self.assert_applied(90, 110)
        # Asked to wait until applied, the answer comes after both databases hold it.
        tx2 = self.transfer(0)
        code, r = self.c.commit(0, tx2, wait="applied")
        self.assertEqual((code, r.get("outcome")), (200, "committed"), r)
        self.assert_applied(80, 120, now=True)
        for bad in ({"wait": "soon"}, {"wait": 1}, {"hurry": True}):
            tx3 = self.transfer(0)
            code, r = self.c.call(0, "POST", "/v1/transactions/%s/commit" % tx3, bad)
            self.assertEqual((code, r["error"]["code"]), (400, "bad_request"), r)
            self.assertEqual(self.c.status(0, tx3)[1]["state"], "active")
            self.assertEqual(self.c.abort(0, tx3)[1]["outcome"], "aborted")
        self.assert_applied(80, 120)
        # Repeating the commit gives the same outcome; every replica reports it.
        self.assertEqual(self.c.commit(0, tx)[1]["outcome"], "committed")
        for i in range(N):
            wait_until(lambda: self.c.status(i, tx)[1].get("state") == "committed",
                       what="replica %d to know the outcome" % i)

    def test_metrics_count_what_happened(self):
        before = metrics(self.c.replica_urls[0])
        pbefore = metrics(self.c.parts["bank-a"].url)
        tx = self.transfer(0)
        self.assertEqual(self.c.commit(0, tx)[0], 200)
        tx = self.transfer(0)
        self.assertEqual(self.c.abort(0, tx)[0], 200)
        self.assertEqual(self.c.call(0, "GET", "/v1/transactions/nope")[0], 404)
        after = metrics(self.c.replica_urls[0])

        def grew(name, by, a=after, b=before):
            self.assertEqual(a[name] - b.get(name, 0), by, name)

        grew('tpc_transactions_total{outcome="committed"}', 1)
        grew('tpc_transactions_total{outcome="aborted"}', 1)
        grew("tpc_commit_duration_seconds_count", 1)
        grew("tpc_http_request_errors_total", 1)
        self.assertGreater(after["tpc_fsyncs_total"], before["tpc_fsyncs_total"])
        self.assertGreater(after["tpc_http_client_requests_total"],
                           before["tpc_http_client_requests_total"])
        self.assertGreaterEqual(after['tpc_http_requests_total{code="2xx"}'] -
                                before['tpc_http_requests_total{code="2xx"}'], 7)
        wait_until(lambda: metrics(self.c.parts["bank-a"].url)[
            'tpc_branches_total{outcome="aborted"}'] == pbefore[
            'tpc_branches_total{outcome="aborted"}'] + 1, what="bank-a to abort its branch")
        pafter = metrics(self.c.parts["bank-a"].url)
        grew('tpc_branches_total{outcome="committed"}', 1, pafter, pbefore)
        grew("tpc_prepare_duration_seconds_count", 1, pafter, pbefore)
        self.assertGreater(pafter["tpc_fsync_duration_seconds_count"],
                           pbefore["tpc_fsync_duration_seconds_count"])
        # Only GET, and no token needed (like /health); the answer is not JSON.
        code, r = self.c.call(0, "POST", "/metrics", {})
        self.assertEqual(code, 405, r)
        self.assertEqual(r["error"]["code"], "method_not_allowed")

    def test_abort_and_failed_branch_change_nothing(self):
        tx = self.transfer(0)
        code, r = self.c.abort(0, tx)
        self.assertEqual((code, r["outcome"]), (200, "aborted"), r)
        self.assert_applied(100, 100)
        # A failed branch (CHECK balance >= 0): the client aborts; nothing changes anywhere.
        tx = self.c.begin(0)
        self.assertEqual(self.c.exec(0, tx, "bank-b", "UPDATE accounts SET balance = balance + 500 "
                                                       "WHERE id = 1")[0], 200)
        code, r = self.c.exec(0, tx, "bank-a", "UPDATE accounts SET balance = balance - 500 "
                                                "WHERE id = 1")
        self.assertEqual((code, r["error"]["code"]), (409, "constraint_violation"))
        self.assertEqual(self.c.abort(0, tx)[1]["outcome"], "aborted")
        self.assert_applied(100, 100)

    def test_begin_with_first_statement(self):
        code, r = self.c.call(0, "POST", "/v1/transactions", {"exec": {
            "participant": "bank-a", "sql": "UPDATE accounts SET balance = balance - 5 WHERE id = 1"}})
        self.assertEqual((code, r["state"], r["results"][0]["changes"]), (201, "active", 1), r)
        tx = r["txid"]
        code, r = self.c.exec(0, tx, "bank-b", "UPDATE accounts SET balance = balance + 5 WHERE id = 1")
        self.assertEqual(code, 200, r)
        self.assertEqual(self.c.commit(0, tx)[1]["outcome"], "committed")
        self.assert_applied(95, 105)
        # A participant not in the cluster file: nothing begun. A failing statement: begun,
        # and its txid in the error, to abort it.
        live = self.c.call(0, "GET", "/health")[1]["transactions"]
        code, r = self.c.call(0, "POST", "/v1/transactions", {"exec": {
            "participant": "bank-x", "sql": "UPDATE accounts SET balance = 0"}})
        self.assertEqual((code, r["error"]["code"]), (400, "unknown_participant"), r)
        self.assertEqual(self.c.call(0, "GET", "/health")[1]["transactions"], live)
        code, r = self.c.call(0, "POST", "/v1/transactions", {"exec": {
            "participant": "bank-a", "sql": "UPDATE accounts SET balance = -1 WHERE id = 1"}})
        self.assertEqual((code, r["error"]["code"]), (409, "constraint_violation"), r)
        self.assertEqual(self.c.abort(0, r["txid"])[1]["outcome"], "aborted")
        self.assert_applied(95, 105)

    def test_conflict_gets_409_and_aborts_cleanly(self):
        t1 = self.transfer(0)
        t2 = self.c.begin(0)
        code, r = self.c.exec(0, t2, "bank-a", "UPDATE accounts SET balance = 0 WHERE id = 1")
        self.assertEqual((code, r["error"]["code"]), (409, "lock_timeout"), r)
        self.assertEqual(self.c.abort(0, t2)[1]["outcome"], "aborted")
        self.assertEqual(self.c.commit(0, t1)[1]["outcome"], "committed")
        self.assert_applied(90, 110)

    def test_oneshot(self):
        body = {"txid": "one-1", "branches": [
            {"participant": "bank-a", "sql": "UPDATE accounts SET balance = balance - 5 WHERE id = 1"},
            {"participant": "bank-b", "statements": [
                {"sql": "UPDATE accounts SET balance = balance + ? WHERE id = 1", "params": [5]}]}]}
        code, r = self.c.call(0, "POST", "/v1/transactions/oneshot", body)
        self.assertEqual((code, r["outcome"]), (200, "committed"), r)
        self.assertEqual(len(r["results"]), 2)
        self.assert_applied(95, 105)
        # A retry (its answer lost, say) runs nothing again: the txid is taken.
        code, r = self.c.call(0, "POST", "/v1/transactions/oneshot", body)
        self.assertEqual((code, r["error"]["code"]), (409, "txid_exists"), r)
        self.assertEqual(self.c.status(0, "r0-one-1")[1]["outcome"], "committed")
        self.assert_applied(95, 105)
        # Without a txid of the client's, a oneshot is refused: nothing would make a retry safe.
        del body["txid"]
        code, r = self.c.call(0, "POST", "/v1/transactions/oneshot", body)
        self.assertEqual((code, r["error"]["code"]), (400, "bad_request"), r)
        self.assert_applied(95, 105)
        code, r = self.c.call(0, "POST", "/v1/transactions/oneshot", {"txid": "one-2", "branches": [
            {"participant": "bank-b", "sql": "UPDATE accounts SET balance = balance + 1 WHERE id = 1"},
            {"participant": "bank-a", "sql": "UPDATE accounts SET balance = -1 WHERE id = 1"}]})
        self.assertEqual(code, 409, r)
        self.assertEqual((r["outcome"], r["failed_branch"]), ("aborted", 1))
        self.assert_applied(95, 105)

    def test_leader_killed_after_deciding(self):
        self.c.replicas[0].kill(signal.SIGKILL)
        self.c.replicas[0].start(failpoints="leader-after-decide")
        tx = self.transfer(0)
        try:
            answer = self.c.commit(0, tx, timeout=10)
        except OSError:
            answer = None  # the leader died before its answer left
        # It answers once the outcome is chosen, and dies recording it, before telling anyone:
        # the client gets "committed" or nothing, and in both cases it is applied everywhere.
        if answer is not None:
            self.assertEqual((answer[0], answer[1].get("outcome")), (200, "committed"), answer)
        # Its sockets close a moment before it can be reaped: wait for the exit itself.
        self.assertEqual(self.c.replicas[0].proc.wait(timeout=10), -signal.SIGKILL)
        self.c.replicas[0].log.close()
        # Participants are in doubt; they ask the others, which recover the transaction.
        if N == 1:
            self.c.replicas[0].start()
        live = [i for i in range(N) if self.c.replicas[i].alive()]
        wait_until(lambda: all(p.status(tx)[1].get("state") in ("committed", "aborted")
                               for p in self.c.parts.values()), timeout=30,
                   what="both participants to learn the outcome")
        states = {p.status(tx)[1]["state"] for p in self.c.parts.values()}
        self.assertEqual(states, {"committed"})  # both voted prepared: it was committed
        self.assert_applied(90, 110)
        for i in live:
            wait_until(lambda: self.c.status(i, tx)[1].get("state") == "committed",
                       what="replica %d to report the outcome" % i)
        # With 3 replicas it took a recovery (phase 1 with a higher ballot) by a replica that
        # was not its leader; with one, the restarted leader had the decision on disk.
        if N > 1:
            self.assertGreaterEqual(sum(self.c.call(i, "GET", "/health")[1]["recovered_for_others"]
                                        for i in live), 1)

    def test_branch_of_a_vanished_leader_frees_its_rows_at_the_deadline(self):
        # The participant learns the transaction's deadline with the first exec: when the
        # leader dies before commit, the branch's rows are free then (here 1 s and the margin
        # of 1 s), not after --branch-timeout-ms (20 s in these tests).
        tx = self.c.begin(0, timeout_ms=1000)
        code, r = self.c.exec(0, tx, "bank-a", "UPDATE accounts SET balance = 0 WHERE id = 1", [])
        self.assertEqual(code, 200, r)
        self.c.replicas[0].kill()
        p = self.c.parts["bank-a"]
        wait_until(lambda: p.status(tx)[1].get("state") == "aborted", timeout=8,
                   what="the branch to abort at the transaction's deadline")
        self.assertEqual(p.balance(1), 100)

    def test_answers_agree_with_the_documentation(self):
        from tpclaunch.cluster import TOKEN, http_call
        before = self.c.call(0, "GET", "/v1/transactions")[1]["transactions"]
        # An encoded NUL does not cut a path short: no begin, no listing, no 405.
        for method, path in (("POST", "/v1/transactions/%00/commit"),
                             ("GET", "/v1/transactions/%00"),
                             ("POST", "/v1/transactions/r0-x%00y/commit"),
                             ("GET", "/v1/transactions/r0-%C3%A9")):
            code, r = self.c.call(0, method, path)
            self.assertEqual((code, r["error"]["code"]), (400, "bad_txid"), path)
        self.assertEqual(self.c.call(0, "GET", "/v1/transactions")[1]["transactions"], before)
        code, r = self.c.parts["bank-a"].call("POST", "/v1/branches/x%00y/exec", {"sql": "SELECT 1"})
        self.assertEqual((code, r["error"]["code"]), (400, "bad_txid"))
        # A commit of a transaction with no branch says so: participants [].
        tx = self.c.begin(0)
        code, r = self.c.commit(0, tx)
        self.assertEqual((code, r["outcome"], r["participants"]), (200, "committed", []))
        # What status calls in doubt, the listing of that state lists.
        if N > 1:
            m = {"messages": [{"type": "phase2a", "txid": "r2-doubt", "instance": "bank-a",
                               "ballot": {"round": 0, "replica": 0}, "value": "prepared",
                               "participants": ["bank-a", "bank-b"]}]}
            code, r = http_call("POST", self.c.replica_urls[1] + "/v1/paxos", m, token=TOKEN)
            self.assertEqual(code, 200, r)
            code, r = self.c.call(1, "GET", "/v1/transactions/r2-doubt")
            self.assertEqual((code, r["state"]), (200, "in_doubt"))
            listed = self.c.call(1, "GET", "/v1/transactions?state=in_doubt")[1]["transactions"]
            self.assertIn({"txid": "r2-doubt", "state": "in_doubt",
                           "participants": ["bank-a", "bank-b"]}, listed)
        # A transaction aborted at its deadline: every replica that answers, the same answer.
        tx = self.c.begin(0, timeout_ms=200)
        self.assertEqual(self.c.exec(0, tx, "bank-a", "SELECT 1", [])[0], 200)
        wait_until(lambda: all(self.c.status(i, tx)[1].get("state") == "aborted"
                               for i in range(N)), timeout=10, what="every replica to learn it")
        answers = [self.c.status(i, tx)[1] for i in range(N)]
        self.assertEqual(answers, [answers[0]] * N)
        self.assertEqual(answers[0]["participants"], ["bank-a"])

    def test_a_retried_exec_runs_once(self):
        # The participant is paused: the exec answers 502 after timeouts_ms.commit (3 s here),
        # though the statement will run once the participant goes on. The client sends the
        # same exec again, with the same seq: it gets the first answer, and the counter goes
        # up by one, not two.
        p = self.c.parts["bank-a"]
        tx = self.c.begin(0)
        inc = "UPDATE accounts SET balance = balance + 1 WHERE id = 1"
        p.proc.send_signal(signal.SIGSTOP)
        try:
            code, r = self.c.exec(0, tx, "bank-a", inc, [], seq=1)
        finally:
            p.proc.send_signal(signal.SIGCONT)
        self.assertEqual((code, r["error"]["code"]), (502, "participant_unavailable"))
        code, r = self.c.exec(0, tx, "bank-a", inc, [], seq=1)
        self.assertEqual(code, 200, r)
        self.assertEqual(r["results"][0]["changes"], 1)
        code, r = self.c.exec(0, tx, "bank-a", inc, [], seq=3)
        self.assertEqual((code, r["error"]["code"]), (409, "exec_out_of_order"))
        code, r = self.c.exec(0, tx, "bank-b", "SELECT 1", [], seq=1)
        self.assertEqual(code, 200, r)
        self.assertEqual(self.c.commit(0, tx)[1]["outcome"], "committed")
        self.assert_applied(101, 100)

    def test_a_replica_without_its_state_refuses_to_start(self):
        # No amnesia: a replica whose state file is gone (a wiped disk) must not come back as
        # an acceptor that never promised anything; nor may it start on another's state.
        import subprocess
        from tpclaunch.cluster import COORDINATOR
        r = self.c.replicas[N - 1]
        tx = self.transfer(0, amount=4)
        self.assertEqual(self.c.commit(0, tx)[1]["outcome"], "committed")
        # Quiescent before the loss (docs/DESIGN.md, "Replacing a replica"): applied everywhere.
        self.assert_applied(96, 104)
        data = os.path.join(self.c.dir, "data")
        path = os.path.join(data, "replica-%d.db" % r.idx)
        self.assertEqual(r.kill(signal.SIGTERM), 0)

        def run(*args):
            p = subprocess.run([COORDINATOR, "--config", self.c.config] + list(args),
                               stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=30)
            return p.returncode, p.stdout + p.stderr

        # --init on a replica that has state is refused and changes nothing.
        before = os.path.getsize(path)
        code, out = run("--id", str(r.idx), "--init")
        self.assertEqual(code, 2, out)
        self.assertIn("already exists", out)
        self.assertEqual(os.path.getsize(path), before)
        # Another replica's state, or another cluster's, is refused.
        if N > 1:
            code, out = run("--id", "0", "--db", path)
            self.assertEqual(code, 2, out)
            self.assertIn("not of replica 0", out)
        other = os.path.join(self.c.dir, "other.json")
        with open(self.c.config) as f:
            cfg = json.load(f)
        cfg["cluster_id"] = "another-cluster"
        with open(other, "w") as f:
            json.dump(cfg, f)
        p = subprocess.run([COORDINATOR, "--config", other, "--id", str(r.idx)],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn('of cluster "another-cluster"', p.stderr)
        # Wiped: it refuses to start, says what happened and what to do.
        for name in os.listdir(data):
            if name.startswith("replica-%d.db" % r.idx):
                os.remove(os.path.join(data, name))
        code, out = run("--id", str(r.idx))
        self.assertEqual(code, 2, out)
        self.assertIn("has no state", out)
        self.assertIn("--init", out)
        self.assertIn("Replacing a replica", out)
        self.assertFalse(os.path.exists(path), "a refused start must not make the file")
        # A file that --init did not make (say, an empty one) is refused too.
        open(path, "w").close()
        code, out = run("--id", str(r.idx))
        self.assertEqual(code, 2, out)
        self.assertIn("not a replica's state made by", out)
        os.remove(path)
        # The documented way back for a new replica: --init, then it starts and serves.
        r.init()
        r.start()
        tx = self.transfer(N - 1, amount=1)
        self.assertEqual(self.c.commit(N - 1, tx)[1]["outcome"], "committed")
        self.assert_applied(95, 105)

    @unittest.skipIf(N < 3, "needs 3 replicas")
    def test_one_replica_down_commits_two_down_never_wrong(self):
        # Replica 0 relays votes first to itself and replica 1 (F+1 acceptors): with 1 down,
        # the votes reach replica 2 at the leader's next tick, and from then on go there first.
        self.c.replicas[1].kill()
        for amount in (3, 2):
            tx = self.transfer(0, amount=amount)
            self.assertEqual(self.c.commit(0, tx)[1]["outcome"], "committed")
        self.assert_applied(95, 105)
        self.c.replicas[1].start()
        self.c.replicas[2].kill()
        tx = self.transfer(0, amount=5)
        self.assertEqual(self.c.commit(0, tx)[1]["outcome"], "committed")
        self.assert_applied(90, 110)
        self.c.replicas[1].kill()
        tx = self.transfer(0, amount=1)
        code, r = self.c.commit(0, tx)
        self.assertEqual(code, 503, r)
        self.assertEqual(r["error"]["code"], "undecided")
        self.assert_applied(90, 110)  # nothing applied without a decision
        self.c.replicas[1].start()
        self.c.replicas[2].start()
        wait_until(lambda: self.c.status(0, tx)[1].get("state") in ("committed", "aborted"),
                   timeout=30, what="the in-doubt transaction to resolve")
        outcome = self.c.status(0, tx)[1]["state"]
        wait_until(lambda: all(p.status(tx)[1].get("state") == outcome
                               for p in self.c.parts.values()), timeout=30,
                   what="participants to apply " + outcome)
        self.assert_applied(89, 111) if outcome == "committed" else self.assert_applied(90, 110)

    def test_participant_down_at_prepare_gets_aborted_chosen(self):
        tx = self.transfer(0)
        b = self.c.parts["bank-b"]
        b.kill(signal.SIGKILL)  # its branch is gone with it; it cannot answer the prepare
        code, r = self.c.commit(0, tx)
        self.assertEqual((code, r["outcome"]), (200, "aborted"), r)
        # Decided through a higher ballot (phase 1 found no vote for bank-b), not by fiat: by
        # the leader at its prepare deadline, or by another replica's sweep, whichever first.
        self.assertGreaterEqual(sum(self.c.call(i, "GET", "/health")[1]["recoveries"]
                                    for i in range(N)), 1)
        wait_until(lambda: self.c.parts["bank-a"].status(tx)[1].get("state") == "aborted",
                   what="bank-a to be told")
        b.log.close()
        b.start()
        self.assert_applied(100, 100)

    def test_participant_killed_after_voting(self):
        b = self.c.parts["bank-b"]
        b.kill(signal.SIGKILL)
        b.failpoints = "participant-before-commit"
        b.start()
        tx = self.transfer(0)
        code, r = self.c.commit(0, tx)
        self.assertEqual((code, r["outcome"]), (200, "committed"), r)
        self.assertIsNotNone(b.proc.wait(timeout=10))  # it died when told to commit
        b.log.close()
        b.failpoints = None
        b.start()
        wait_until(lambda: b.status(tx)[1].get("state") == "committed", timeout=30,
                   what="the restarted participant to learn and apply the commit")
        self.assert_applied(90, 110)

    def test_leader_restart_resumes_telling_participants(self):
        b = self.c.parts["bank-b"]
        b.kill(signal.SIGKILL)
        b.failpoints = "participant-before-commit"
        b.start()
        tx = self.transfer(0)
        self.assertEqual(self.c.commit(0, tx)[1]["outcome"], "committed")
        self.assertIsNotNone(b.proc.wait(timeout=10))
        b.log.close()
        # The leader goes down owing bank-b the outcome; bank-b comes back not asking anyone
        # (its in-doubt timer is 10 minutes), so only the restarted leader can tell it.
        self.c.replicas[0].kill(signal.SIGKILL)
        b.failpoints = None
        b.opts["doubt-ms"] = 600000
        b.start()
        self.assertEqual(b.status(tx)[1]["state"], "prepared")
        self.c.replicas[0].start()
        wait_until(lambda: b.status(tx)[1].get("state") == "committed", timeout=30,
                   what="the restarted leader to tell bank-b")
        self.assert_applied(90, 110)

    def test_single_participant_vote_relayed_by_the_leader(self):
        # The leader passes votes to the acceptors itself (prepare?relay=1), so even a single
        # participant is told the outcome by the leader: no one-phase commit of its own.
        tx = self.c.begin(0)
        self.assertEqual(self.c.exec(0, tx, "bank-a", "UPDATE accounts SET balance = 1 WHERE id = 2")[0],
                         200)
        code, r = self.c.commit(0, tx)
        self.assertEqual((code, r["outcome"]), (200, "committed"), r)
        wait_until(lambda: self.c.balances()["bank-a"][2] == 1, what="bank-a to apply the commit")

    def test_read_only_branch_left_out_of_second_phase(self):
        tx = self.c.begin(0)
        self.assertEqual(self.c.exec(0, tx, "bank-a", "UPDATE accounts SET balance = 7 WHERE id = 3")[0],
                         200)
        self.assertEqual(self.c.exec(0, tx, "bank-b", "SELECT balance FROM accounts WHERE id = 3")[0],
                         200)
        code, r = self.c.commit(0, tx, wait="applied")
        self.assertEqual((code, r["outcome"]), (200, "committed"), r)
        self.assertEqual(self.c.balances()["bank-a"][3], 7)
        self.assertEqual(self.c.parts["bank-b"].status(tx)[1]["state"], "read_only")
        self.assertEqual(self.c.parts["bank-a"].status(tx)[1]["state"], "committed")

    def test_read_only_transaction_recorded_and_announced(self):
        # Branches that only read leave nothing to tell the participants; the leader still
        # records the decision and tells the other replicas, so none has to recover it.
        before = [metrics(u)["tpc_recoveries_total"] for u in self.c.replica_urls]
        tx = self.c.begin(0)
        for p in ("bank-a", "bank-b"):
            self.assertEqual(self.c.exec(0, tx, p, "SELECT balance FROM accounts WHERE id = 1")[0],
                             200)
        code, r = self.c.commit(0, tx)
        self.assertEqual((code, r["outcome"]), (200, "committed"), r)
        for i in range(N):
            wait_until(lambda: self.c.status(i, tx)[1].get("state") == "committed",
                       what="replica %d to learn the outcome" % i)
        self.assertEqual([metrics(u)["tpc_recoveries_total"] for u in self.c.replica_urls], before)
        for p in self.c.parts.values():
            self.assertEqual(p.status(tx)[1]["state"], "read_only")

    def test_network_faults(self):
        url = self.c.replica_urls[0]
        # The admin endpoint: cluster token, strict input, shows what is set.
        code, r = self.c.call(0, "POST", "/v1/admin/faults", {"drop": ["http://x"]})
        self.assertEqual(code, 401)
        for bad in ({"drop": "x"}, {"delay_ms": {"http://x": -1}}, {"cut": []}):
            code, r = self.c.call(0, "POST", "/v1/admin/faults", bad, token="test-cluster-token")
            self.assertEqual(code, 400, bad)
        self.c.faults(url, {"drop": ["http://127.0.0.1:1"], "delay_ms": {"http://127.0.0.1:2": 5}})
        code, r = self.c.call(0, "GET", "/v1/admin/faults", token="test-cluster-token")
        self.assertEqual(r, {"drop": ["http://127.0.0.1:1"], "delay_ms": {"http://127.0.0.1:2": 5}})
        self.c.heal()
        # bank-b cannot reach any acceptor: its vote gets there anyway, relayed by the leader
        # (its own ballot-0 message, leader rule 5), and the transfer commits.
        self.c.faults(self.c.parts["bank-b"].url, {"drop": list(self.c.replica_urls)})
        tx = self.transfer(0)
        code, r = self.c.commit(0, tx)
        self.assertEqual((code, r["outcome"]), (200, "committed"), r)
        self.assert_applied(90, 110)
        self.c.heal()
        if N < 3:
            return
        # One replica cut off from everybody: the other two still commit (F = 1).
        self.c.isolate(self.c.replica_urls[2])
        tx = self.transfer(0, amount=5)
        self.assertEqual(self.c.commit(0, tx)[1]["outcome"], "committed")
        self.assert_applied(85, 115)
        self.c.heal()

    def test_bad_input_and_tokens(self):
        for tok in (None, "wrong"):
            code, r = self.c.call(0, "POST", "/v1/transactions", {}, token=tok)
            self.assertEqual((code, r["error"]["code"]), (401, "unauthorized"))
        code, r = self.c.call(0, "POST", "/v1/paxos", {"messages": []}, token="test-client-token")
        self.assertEqual(code, 401)
        self.assertEqual(self.c.call(0, "POST", "/v1/transactions", {"txid": "bad id"})[0], 400)
        self.assertEqual(self.c.call(0, "POST", "/v1/transactions", {"colour": 1})[0], 400)
        self.assertEqual(self.c.status(0, "nope")[0], 404)
        self.assertEqual(self.c.commit(0, "nope")[0], 404)
        tx = self.c.begin(0)
        self.assertEqual(self.c.exec(0, tx, "bank-z", "SELECT 1")[0], 400)
        # A client's id gets the replica's prefix: a txid is begun on one replica only.
        self.assertEqual(self.c.begin(0, txid="dup-1"), "r0-dup-1")
        self.assertEqual(self.c.call(0, "POST", "/v1/transactions", {"txid": "dup-1"})[0], 409)
        if N > 1:
            self.assertEqual(self.c.begin(1, txid="dup-1"), "r1-dup-1")
        code, r = self.c.call(0, "GET", "/v1/transactions?state=active")
        self.assertEqual(code, 200)
        self.assertIn(tx, [t["txid"] for t in r["transactions"]])
        self.assertEqual(self.c.call(0, "GET", "/v1/transactions?state=weird")[0], 400)
        for log in (r.read_log() for r in self.c.replicas):
            self.assertNotIn("test-client-token", log)
            self.assertNotIn("test-cluster-token", log)

    def test_client_txid_taken_once_across_a_restart(self):
        # A replica that crashed with a client's transaction begun (here: prepared at a
        # participant, no vote at any acceptor yet) must not take that txid again: the first
        # one may be known, or decided, elsewhere. Its begin is on disk before the answer.
        tx = self.c.begin(0, txid="once-1")
        self.assertEqual(self.c.exec(0, tx, "bank-a", "UPDATE accounts SET balance = 1 WHERE id = 3")[0],
                         200)
        self.c.replicas[0].kill(signal.SIGKILL)
        self.assertEqual(self.c.replicas[0].proc.wait(timeout=10), -signal.SIGKILL)
        self.c.replicas[0].log.close()
        self.c.replicas[0].start()
        code, r = self.c.call(0, "POST", "/v1/transactions", {"txid": "once-1"})
        self.assertEqual((code, r["error"]["code"]), (409, "txid_exists"), r)
        self.assertEqual(self.c.begin(0, txid="once-2"), "r0-once-2")

    def test_stop_answers_requests_under_way(self):
        # SIGTERM while a commit waits for acceptors that are down and an exec waits at a
        # participant for a row lock: both requests get an answer, the replica exits 0.
        if N < 3:
            self.skipTest("needs replicas to take down")
        tx = self.transfer(0)
        self.c.replicas[1].kill()
        self.c.replicas[2].kill()
        got = {}
        commit = threading.Thread(target=lambda: got.update(commit=self.c.commit(0, tx)))
        commit.start()
        wait_until(lambda: self.c.status(0, tx)[1].get("state") == "preparing",
                   what="the commit to be under way")
        t2 = self.c.begin(0)
        run = threading.Thread(target=lambda: got.update(exec=self.c.exec(
            0, t2, "bank-a", "UPDATE accounts SET balance = 0 WHERE id = 1")))
        run.start()
        a = self.c.parts["bank-a"]
        wait_until(lambda: a.call("GET", "/health")[1]["waiting_for_locks"] >= 1,
                   what="the exec to wait for its lock")
        self.assertEqual(self.c.replicas[0].kill(signal.SIGTERM), 0)
        commit.join(timeout=30)
        run.join(timeout=30)
        code, r = got["commit"]  # what the replica knows then: not decided, ask later
        self.assertEqual((code, r["error"]["code"]), (503, "undecided"), r)
        # The exec was cut off by the stop, unless its lock wait ended first.
        code, r = got["exec"]
        self.assertIn((code, r["error"]["code"]), ((503, "shutting_down"), (409, "lock_timeout")),
                      r)

    def test_deadline_aborts_through_paxos(self):
        tx = self.c.begin(0, timeout_ms=300)
        self.assertEqual(self.c.exec(0, tx, "bank-a", "UPDATE accounts SET balance = 0 WHERE id = 2")[0],
                         200)
        wait_until(lambda: self.c.status(0, tx)[1].get("state") == "aborted", timeout=20,
                   what="the transaction to abort at its deadline")
        wait_until(lambda: self.c.parts["bank-a"].status(tx)[1].get("state") == "aborted",
                   what="bank-a to be told")
        self.assertEqual(self.c.balances()["bank-a"][2], 100)


if __name__ == "__main__":
    unittest.main()
