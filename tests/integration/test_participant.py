"""Integration tests of the participant program (issue: participant, a SQLite
resource manager over HTTP): the real binary, a real database file, loopback."""
import json
import signal
import threading
import time
import unittest

from tpclaunch import FakeReplica, Participant, wait_until


class ParticipantTest(unittest.TestCase):
    def setUp(self):
        self.replicas = [FakeReplica(i) for i in range(3)]
        self.p = Participant(replicas=self.replicas)

    def tearDown(self):
        self.p.stop()
        for r in self.replicas:
            r.stop()

    def test_starts_fast_and_answers_health(self):
        self.assertLess(self.p.ready_after, 1.0)
        code, body = self.p.call("GET", "/health", token=None)
        self.assertEqual(code, 200)
        self.assertEqual(body["status"], "ok")
        self.assertEqual(body["name"], "bank-a")

    def test_writes_invisible_until_commit(self):
        code, r = self.p.exec("t1", "UPDATE accounts SET balance = balance - 30 WHERE id = 1")
        self.assertEqual(code, 200, r)
        self.assertEqual(r["results"][0]["changes"], 1)
        # The branch reads its own write; another branch and the file do not see it.
        code, r = self.p.exec("t1", "SELECT balance FROM accounts WHERE id = 1")
        self.assertEqual(r["results"][0]["rows"], [[70]])
        code, r = self.p.exec("t2", "SELECT balance FROM accounts WHERE id = 1")
        self.assertEqual(r["results"][0]["rows"], [[100]])
        self.assertEqual(self.p.balance(1), 100)
        code, vote = self.p.prepare("t1")
        self.assertEqual(code, 200, vote)
        self.assertEqual(self.p.balance(1), 100)
        code, ack = self.p.commit("t1")
        self.assertEqual(code, 200, ack)
        self.assertEqual(ack, {"type": "ack", "txid": "t1", "instance": "bank-a",
                               "outcome": "committed"})
        self.assertEqual(self.p.balance(1), 70)
        code, r = self.p.exec("t2", "SELECT balance FROM accounts WHERE id = 1")
        self.assertEqual(r["results"][0]["rows"], [[70]])

    def test_abort_leaves_database_as_before(self):
        before = self.p.rows()
        self.p.exec("t1", "UPDATE accounts SET balance = 0 WHERE id = 2")
        code, r = self.p.call("POST", "/v1/branches/t1/exec", {"statements": [
            {"sql": "INSERT INTO accounts VALUES (?, ?, ?)", "params": [9, "zed", 5]},
            {"sql": "DELETE FROM accounts WHERE id = 3"}]})
        self.assertEqual(code, 200, r)
        self.assertEqual(r["results"][0]["last_insert_rowid"], 9)
        self.p.prepare("t1")
        code, ack = self.p.abort("t1")
        self.assertEqual(code, 200, ack)
        self.assertEqual(ack["outcome"], "aborted")
        self.assertEqual(self.p.rows(), before)
        # Its rows are free again.
        code, r = self.p.exec("t2", "UPDATE accounts SET balance = 1 WHERE id = 2")
        self.assertEqual(code, 200, r)

    def test_vote_goes_back_to_the_caller(self):
        # The vote is the answer to the prepare; the leader relays it to the acceptors
        # (leader.h rule 5): the participant itself sends it to none.
        self.p.exec("t1", "UPDATE accounts SET balance = 1 WHERE id = 1")
        code, vote = self.p.prepare("t1", ["bank-a", "bank-b"])
        self.assertEqual(code, 200, vote)
        self.assertEqual(vote["type"], "vote")
        self.assertEqual(vote["value"], "prepared")
        self.assertEqual(vote["accepted_by"], [])
        self.assertEqual([r.accepted for r in self.replicas], [{}, {}, {}])
        self.assertEqual(self.p.status("t1")[1]["state"], "prepared")
        # A repeated prepare gives the same vote.
        code, again = self.p.prepare("t1", ["bank-a", "bank-b"])
        self.assertEqual(again, vote)
        # A branch this participant never saw votes aborted, and stays aborted: a late
        # statement cannot start it again, and a later prepare repeats the aborted vote.
        code, vote = self.p.prepare("t-unknown")
        self.assertEqual(vote["value"], "aborted")
        code, err = self.p.exec("t-unknown", "UPDATE accounts SET balance = 1 WHERE id = 3")
        self.assertEqual((code, err["error"]["code"]), (409, "transaction_ended"))
        self.assertEqual(self.p.prepare("t-unknown")[1]["value"], "aborted")
        # A prepared branch refuses a prepare with another participant list.
        code, err = self.p.prepare("t1", ["bank-a"])
        self.assertEqual((code, err["error"]["code"]), (409, "participants_conflict"))

    def test_read_only_branch(self):
        # A branch that only read votes prepared, read-only; it holds nothing and needs no
        # outcome: commit and abort are no-ops, and the vote stays the same.
        code, r = self.p.exec("t1", "SELECT balance FROM accounts WHERE id = 1")
        self.assertEqual(code, 200, r)
        code, vote = self.p.prepare("t1", ["bank-a", "bank-b"])
        self.assertEqual(code, 200, vote)
        self.assertEqual((vote["value"], vote.get("read_only")), ("prepared", True))
        self.assertEqual(vote["accepted_by"], [])
        self.assertEqual(self.p.status("t1")[1]["state"], "read_only")
        self.assertEqual(self.p.call("GET", "/v1/prepared")[1]["prepared"], [])
        self.assertEqual(self.p.prepare("t1", ["bank-a", "bank-b"])[1], vote)
        self.assertEqual(self.p.commit("t1")[0], 200)
        self.assertEqual(self.p.abort("t1")[0], 200)
        self.assertEqual(self.p.exec("t1", "SELECT 1")[0], 409)
        self.assertEqual(self.p.rows(), [(1, "alice", 100), (2, "bob", 50), (3, "carol", 10)])

    def test_relayed_vote_goes_to_no_acceptor(self):
        # ?relay=1 (what the coordinator sends) and ?relay=0 mean the same: the leader passes
        # the vote on; the participant waits for the outcome, even as the only participant.
        self.p.exec("t1", "UPDATE accounts SET balance = 1 WHERE id = 1")
        code, vote = self.p.prepare("t1", ["bank-a"], query="?relay=1")
        self.assertEqual((code, vote["type"], vote["value"], vote["accepted_by"]),
                         (200, "vote", "prepared", []), vote)
        self.assertEqual([r.accepted for r in self.replicas], [{}, {}, {}])
        self.assertEqual(self.p.status("t1")[1]["state"], "prepared")
        # The vote stands: asked again, with or without relay, the same.
        self.assertEqual(self.p.prepare("t1", ["bank-a"], query="?relay=1")[1], vote)
        self.assertEqual(self.p.prepare("t1", ["bank-a"], query="?relay=0")[1], vote)
        self.assertEqual([r.accepted for r in self.replicas], [{}, {}, {}])
        self.assertEqual(self.p.commit("t1")[0], 200)
        self.assertEqual(self.p.balance(1), 1)
        for bad in ("?relay=yes", "?relay=2"):
            self.p.exec("t2", "UPDATE accounts SET balance = 2 WHERE id = 2")
            code, r = self.p.prepare("t2", ["bank-a"], query=bad)
            self.assertEqual((code, r["error"]["code"]), (400, "bad_request"), r)
            self.assertEqual(self.p.status("t2")[1]["state"], "working")

    def test_vote_needs_no_replica(self):
        # Voting is local (write, then answer): every replica down changes nothing.
        for r in self.replicas:
            r.stop()
        self.p.exec("t1", "UPDATE accounts SET balance = 1 WHERE id = 1")
        code, vote = self.p.prepare("t1")
        self.assertEqual((code, vote["value"]), (200, "prepared"), vote)
        self.assertEqual(self.p.status("t1")[1]["state"], "prepared")

    def race(self, tx, sql):
        """A statement and a prepare of branch tx at once; their answers as exec and vote."""
        barrier, res = threading.Barrier(2), {}

        def statement():
            barrier.wait()
            res["exec"] = self.p.exec(tx, sql)

        def prepare():
            barrier.wait()
            res["vote"] = self.p.prepare(tx)

        threads = [threading.Thread(target=statement), threading.Thread(target=prepare)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        return res

    def test_statement_racing_the_prepare(self):
        # A statement and the prepare of the same branch at once, many times. Either the
        # statement ran before the vote (then the vote covers it and commit applies it) or it
        # is refused (409); never acknowledged and lost. And a branch prepared meanwhile keeps
        # its earlier changes and their locks, whatever the refused statement did.
        for i in range(40):
            tx = "race%d" % i
            before = self.p.balance(2)
            self.assertEqual(self.p.exec(tx, "UPDATE accounts SET balance = balance + 1 "
                                             "WHERE id = 2")[0], 200)
            res = self.race(tx, "UPDATE accounts SET balance = balance + 10 WHERE id = 2")
            code, vote = res["vote"]
            self.assertEqual((code, vote.get("value"), vote.get("read_only")),
                             (200, "prepared", None), vote)
            self.assertIn(res["exec"][0], (200, 409), res["exec"])
            status = self.p.status(tx)[1]
            self.assertEqual((status["state"], status["locked_rows"]), ("prepared", 1), status)
            self.assertEqual(self.p.commit(tx)[0], 200)
            self.assertEqual(self.p.balance(2), before + (11 if res["exec"][0] == 200 else 1),
                             (i, res))

    def test_first_statement_racing_the_prepare(self):
        # The branch's first statement and its prepare at once: the vote is prepared (the
        # statement ran first and is applied at commit), or read-only or aborted (the statement
        # is refused and nothing changes); an acknowledged statement is never lost.
        for i in range(40):
            tx = "first%d" % i
            before = self.p.balance(2)
            res = self.race(tx, "UPDATE accounts SET balance = balance + 1 WHERE id = 2")
            code, vote = res["vote"]
            self.assertEqual(code, 200, vote)
            if res["exec"][0] == 200:
                self.assertEqual((vote["value"], vote.get("read_only")), ("prepared", None),
                                 (i, res))
                self.assertEqual(self.p.commit(tx)[0], 200)
                self.assertEqual(self.p.balance(2), before + 1)
            else:
                self.assertEqual(res["exec"][0], 409, res)
                self.assertTrue(vote["value"] == "aborted" or vote.get("read_only"), (i, res))
                self.p.abort(tx)
                self.assertEqual(self.p.balance(2), before)

    def test_disjoint_branches_run_concurrently(self):
        # Eight branches at once, each on its own row, all the way to commit, none waiting
        # for a lock: every step succeeds and the run takes less than one lock timeout.
        self.p.stop()
        self.p = Participant(replicas=self.replicas, lock_timeout_ms=2000)
        for i in range(4, 12):
            self.p.exec("seed", "INSERT INTO accounts VALUES (?, ?, 0)", [i, "u%d" % i])
        self.p.prepare("seed")
        self.p.commit("seed")
        errors, barrier = [], threading.Barrier(8)

        def branch(i):
            txid = "c%d" % i
            barrier.wait(timeout=10)
            for step in (lambda: self.p.exec(txid, "UPDATE accounts SET balance = balance + ? "
                                                   "WHERE id = ?", [i, i]),
                         lambda: self.p.prepare(txid), lambda: self.p.commit(txid)):
                code, body = step()
                if code != 200:
                    errors.append((txid, code, body))

        threads = [threading.Thread(target=branch, args=(i,)) for i in range(4, 12)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        self.assertEqual(errors, [])
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual(self.p.rows("SELECT id, balance FROM accounts WHERE id >= 4 ORDER BY id"),
                         [(i, i) for i in range(4, 12)])

    def test_conflict_gets_409_after_lock_timeout(self):
        self.p.exec("ta", "UPDATE accounts SET balance = balance - 10 WHERE id = 1")
        t0 = time.monotonic()
        code, err = self.p.exec("tb", "UPDATE accounts SET balance = balance - 20 WHERE id = 1")
        waited = time.monotonic() - t0
        self.assertEqual(code, 409, err)
        self.assertEqual(err["error"]["code"], "lock_timeout")
        self.assertIn("ta", err["error"]["message"])
        self.assertGreaterEqual(waited, 0.3)
        self.assertLess(waited, 3.0)
        # tb changed nothing and holds nothing; reading the row is fine (read committed).
        code, st = self.p.status("tb")
        self.assertEqual(st["locked_rows"], 0)
        code, r = self.p.exec("tb", "SELECT balance FROM accounts WHERE id = 1")
        self.assertEqual(r["results"][0]["rows"], [[100]])

    def test_no_lost_update_after_waiting(self):
        self.p.exec("ta", "UPDATE accounts SET balance = balance + 5 WHERE id = 3")
        result = {}

        def second():
            result["r"] = self.p.exec("tb", "UPDATE accounts SET balance = balance + 7 WHERE id = 3")

        t = threading.Thread(target=second)
        t.start()
        wait_until(lambda: self.p.call("GET", "/health", token=None)[1]["waiting_for_locks"] == 1,
                   what="tb to wait for ta's lock")
        self.p.prepare("ta")
        self.p.commit("ta")
        t.join(timeout=10)
        self.assertEqual(result["r"][0], 200, result["r"])
        self.p.prepare("tb")
        self.p.commit("tb")
        self.assertEqual(self.p.balance(3), 10 + 5 + 7)

    def test_kill_after_prepare_keeps_branch_prepared(self):
        self.p.exec("t1", "UPDATE accounts SET balance = balance - 40 WHERE id = 1")
        code, vote = self.p.prepare("t1")
        self.assertEqual(vote["value"], "prepared")
        self.p.kill(signal.SIGKILL)
        self.p.start()
        code, st = self.p.status("t1")
        self.assertEqual(code, 200, st)
        self.assertEqual(st["state"], "prepared")
        self.assertEqual(st["locked_rows"], 1)
        code, lst = self.p.call("GET", "/v1/prepared")
        self.assertEqual([b["txid"] for b in lst["prepared"]], ["t1"])
        # Its lock is held again: a conflicting branch waits and gets 409.
        code, err = self.p.exec("t2", "UPDATE accounts SET balance = 0 WHERE id = 1")
        self.assertEqual(code, 409, err)
        # A repeated prepare repeats the vote; commit applies exactly once.
        self.assertEqual(self.p.prepare("t1")[1]["value"], "prepared")
        self.assertEqual(self.p.balance(1), 100)
        self.assertEqual(self.p.commit("t1")[0], 200)
        self.assertEqual(self.p.commit("t1")[0], 200)
        self.assertEqual(self.p.balance(1), 60)
        self.p.kill(signal.SIGKILL)
        self.p.start()
        self.assertEqual(self.p.balance(1), 60)
        self.assertEqual(self.p.status("t1")[1]["state"], "committed")

    def test_restart_learns_outcome_from_replicas(self):
        self.p.exec("t1", "UPDATE accounts SET balance = balance + 1 WHERE id = 2")
        self.p.prepare("t1")
        self.p.kill(signal.SIGKILL)
        for r in self.replicas:
            r.outcomes["t1"] = "committed"
        self.p.start()
        wait_until(lambda: self.p.status("t1")[1]["state"] == "committed",
                   what="the participant to learn the outcome")
        self.assertEqual(self.p.balance(2), 51)
        self.assertTrue(any("t1" in r.status_asked for r in self.replicas))

    def test_in_doubt_branch_keeps_asking_until_it_learns(self):
        self.p.exec("t1", "UPDATE accounts SET balance = 0 WHERE id = 1")
        self.p.prepare("t1")
        wait_until(lambda: sum(r.status_asked.count("t1") for r in self.replicas) >= 2,
                   what="the participant to ask about t1")
        self.assertEqual(self.p.status("t1")[1]["state"], "prepared")
        self.replicas[2].outcomes["t1"] = "aborted"
        self.replicas[0].outcomes["t1"] = "aborted"
        self.replicas[1].outcomes["t1"] = "aborted"
        wait_until(lambda: self.p.status("t1")[1]["state"] == "aborted", timeout=20,
                   what="the abort to be learned")
        self.assertEqual(self.p.balance(1), 100)

    def test_idempotence_and_unknown_branches(self):
        code, ack = self.p.abort("never-seen")
        self.assertEqual(code, 200, ack)
        self.assertEqual(self.p.abort("never-seen")[0], 200)
        code, err = self.p.commit("never-seen-2")
        self.assertEqual(code, 404, err)
        self.assertEqual(err["error"]["code"], "unknown_branch")
        code, err = self.p.commit("never-seen")
        self.assertEqual(code, 409, err)
        # A statement for a transaction that ended is refused.
        code, err = self.p.exec("never-seen", "SELECT 1")
        self.assertEqual(code, 409, err)
        self.assertEqual(err["error"]["code"], "transaction_ended")
        # Commit before prepare is refused and changes nothing.
        self.p.exec("t5", "UPDATE accounts SET balance = 0 WHERE id = 2")
        code, err = self.p.commit("t5")
        self.assertEqual(code, 409, err)
        self.assertEqual(err["error"]["code"], "not_prepared")
        self.assertEqual(self.p.balance(2), 50)

    def test_outcomes_in_one_batch(self):
        # POST /v1/outcomes applies many outcomes, their writes in one group (one fsync), and
        # answers each as its own call would, in order.
        self.p.exec("b1", "UPDATE accounts SET balance = balance - 10 WHERE id = 1")
        self.p.exec("b2", "UPDATE accounts SET balance = balance + 10 WHERE id = 2")
        self.p.exec("b3", "UPDATE accounts SET balance = 0 WHERE id = 3")
        for t in ("b1", "b2", "b3"):
            self.assertEqual(self.p.prepare(t)[0], 200)
        groups = self.p.call("GET", "/health")[1]["storage"]["commit_groups"]
        batch = {"outcomes": [{"txid": "b1", "outcome": "committed"},
                              {"txid": "b2", "outcome": "committed"},
                              {"txid": "b3", "outcome": "aborted"},
                              {"txid": "never-seen", "outcome": "committed"},
                              {"txid": "never-seen-2", "outcome": "aborted"}]}
        code, r = self.p.call("POST", "/v1/outcomes", batch)
        self.assertEqual(code, 200, r)
        res = r["results"]
        self.assertEqual(res[0], {"type": "ack", "txid": "b1", "instance": "bank-a",
                                  "outcome": "committed"})
        self.assertEqual((res[1]["txid"], res[1]["outcome"]), ("b2", "committed"))
        self.assertEqual((res[2]["txid"], res[2]["outcome"]), ("b3", "aborted"))
        self.assertEqual((res[3]["txid"], res[3]["status"], res[3]["error"]["code"]),
                         ("never-seen", 404, "unknown_branch"))
        self.assertEqual((res[4]["txid"], res[4]["outcome"]), ("never-seen-2", "aborted"))
        self.assertEqual(self.p.rows(), [(1, "alice", 90), (2, "bob", 60), (3, "carol", 10)])
        after = self.p.call("GET", "/health")[1]["storage"]["commit_groups"]
        self.assertEqual(after - groups, 1, "the batch's four writes share one group")
        # Repeated, the same answers and no change; the other outcome is refused per item.
        self.assertEqual(self.p.call("POST", "/v1/outcomes", batch), (200, r))
        code, r = self.p.call("POST", "/v1/outcomes", {"outcomes": [
            {"txid": "b1", "outcome": "aborted"}, {"txid": "b3", "outcome": "committed"}]})
        self.assertEqual(code, 200, r)
        self.assertEqual([(x["status"], x["error"]["code"]) for x in r["results"]],
                         [(409, "outcome_conflict")] * 2)
        alone = [self.p.abort("b1"), self.p.commit("b3")]
        self.assertEqual([(c, x["error"]["code"]) for c, x in alone], [(409, "outcome_conflict")] * 2)
        self.assertEqual(self.p.rows(), [(1, "alice", 90), (2, "bob", 60), (3, "carol", 10)])

    def test_outcome_batch_naming_a_branch_twice(self):
        # Each item gets the answer about its own branch, also when another item (or call)
        # asks for the same branch at once.
        self.p.exec("d1", "UPDATE accounts SET balance = 1 WHERE id = 1")
        self.assertEqual(self.p.prepare("d1")[0], 200)
        code, r = self.p.call("POST", "/v1/outcomes", {"outcomes": [
            {"txid": "d1", "outcome": "committed"}, {"txid": "d1", "outcome": "committed"}]})
        self.assertEqual(code, 200, r)
        self.assertEqual([x.get("outcome") for x in r["results"]], ["committed"] * 2, r)
        self.assertEqual(self.p.balance(1), 1)

    def test_outcome_batch_with_a_statement_waiting_on_it(self):
        # b2's statement waits for a row b1 holds, holding b2 itself meanwhile; a batch that
        # ends both must not wait for b2 while b1's end, which frees the row, waits behind it
        # (until the statement's lock timeout, 5 s here).
        self.p.stop()
        self.p = Participant(replicas=self.replicas, lock_timeout_ms=5000)
        self.p.exec("b1", "UPDATE accounts SET balance = 0 WHERE id = 3")
        self.assertEqual(self.p.prepare("b1")[0], 200)
        self.p.exec("b2", "SELECT 1")
        got = {}
        waiter = threading.Thread(target=lambda: got.update(r=self.p.exec(
            "b2", "UPDATE accounts SET balance = 7 WHERE id = 3")))
        waiter.start()
        self.assertTrue(wait_until(
            lambda: self.p.call("GET", "/health")[1]["waiting_for_locks"] == 1, 5))
        started = time.monotonic()
        code, r = self.p.call("POST", "/v1/outcomes", {"outcomes": [
            {"txid": "b1", "outcome": "aborted"}, {"txid": "b2", "outcome": "aborted"}]})
        took = time.monotonic() - started
        waiter.join(10)
        self.assertEqual(code, 200, r)
        self.assertEqual([x.get("outcome") for x in r["results"]], ["aborted", "aborted"], r)
        self.assertLess(took, 2.5, "the batch waited for the statement's lock timeout")
        self.assertIn(got["r"][0], (200, 409), got)
        self.assertEqual(self.p.status("b2")[1]["state"], "aborted")
        self.assertEqual(self.p.balance(3), 10)

    def test_malformed_outcome_batches_change_nothing(self):
        self.p.exec("b1", "UPDATE accounts SET balance = 0 WHERE id = 1")
        self.assertEqual(self.p.prepare("b1")[0], 200)
        good = {"txid": "b1", "outcome": "committed"}
        bad = [None, [], {}, {"outcomes": []}, {"outcomes": good},
               {"outcomes": [good], "more": 1},
               {"outcomes": [good, {"txid": "b1"}]},
               {"outcomes": [good, {"txid": "b1", "outcome": "maybe"}]},
               {"outcomes": [good, {"txid": "a/b", "outcome": "aborted"}]},
               {"outcomes": [good, {"txid": "a\u0000b", "outcome": "aborted"}]},
               {"outcomes": [good, {"txid": "x" * 200, "outcome": "aborted"}]},
               {"outcomes": [good, {"txid": "b2", "outcome": "aborted", "x": 1}]},
               {"outcomes": [good] * 1001}]
        for body in bad:
            code, r = self.p.call("POST", "/v1/outcomes", body)
            self.assertEqual(code, 400, (body, r))
            self.assertIn(r["error"]["code"], ("bad_json", "bad_request"), r)
        code, r = self.p.call("POST", "/v1/outcomes", raw=b"{not json")
        self.assertEqual((code, r["error"]["code"]), (400, "bad_json"))
        self.assertEqual(self.p.call("GET", "/v1/outcomes")[0], 405)
        self.assertEqual(self.p.call("POST", "/v1/outcomes", {"outcomes": [good]},
                                     token="wrong")[0], 401)
        self.assertEqual(self.p.status("b1")[1]["state"], "prepared")
        self.assertEqual(self.p.balance(1), 100)

    def test_unprepared_branch_aborts_at_its_deadline(self):
        self.p.stop()
        self.p = Participant(replicas=self.replicas, branch_timeout_ms=300)
        self.p.exec("t1", "UPDATE accounts SET balance = 7 WHERE id = 1")
        wait_until(lambda: self.p.status("t1")[1].get("state") == "aborted",
                   what="the branch to abort on its own")
        code, r = self.p.exec("t2", "UPDATE accounts SET balance = 8 WHERE id = 1")
        self.assertEqual(code, 200, r)
        code, vote = self.p.prepare("t1")
        self.assertEqual(vote["value"], "aborted")

    def test_only_the_allow_list_runs(self):
        # http-api.md's allow-list: statements by their first word, functions by name; also
        # what would change nothing (DROP ... IF EXISTS of nothing) or only read (PRAGMA).
        before = self.p.dump()
        for sql in ["PRAGMA table_info(accounts)", "  /* x */ pragma user_version",
                    "DROP TABLE IF EXISTS nothere", "DROP INDEX IF EXISTS nothere", "VACUUM",
                    "EXPLAIN SELECT 1", "SELECT fts3_tokenizer('simple')",
                    "SELECT * FROM pragma_table_info('accounts')",
                    "SELECT * FROM json_each('[1, 2]')", "SELECT load_extension('x')",
                    "ROLLBACK", "END", "RELEASE s"]:
            code, err = self.p.exec("t1", sql)
            self.assertEqual((code, err["error"]["code"]), (403, "forbidden_statement"), sql)
        self.assertEqual(self.p.dump(), before)
        code, r = self.p.exec("t1", "-- a comment\nwith t(x) as (values (2)) select abs(-x), "
                                    "upper('a'), json_array(x), length(date('now')) from t")
        self.assertEqual(code, 200, r)
        self.assertEqual(r["results"][0]["rows"], [[2, "A", "[2]", 10]])
        code, r = self.p.exec("t1", "REPLACE INTO accounts VALUES (4, 'dan', 1)")
        self.assertEqual(code, 200, r)
        self.assertEqual(self.p.exec("t1", "SELEC 1")[1]["error"]["code"], "sql_error")

    def test_a_branch_takes_its_deadline_from_its_first_exec(self):
        # ?timeout_ms on the exec that begins the branch (the coordinator passes what is left
        # of the transaction's timeout): not prepared by then, it aborts and frees its rows,
        # however long --branch-timeout-ms is (20 s here).
        code, r = self.p.call("POST", "/v1/branches/t1/exec?timeout_ms=300",
                              {"sql": "UPDATE accounts SET balance = 7 WHERE id = 1"})
        self.assertEqual(code, 200, r)
        code, r = self.p.call("POST", "/v1/branches/t2/exec?timeout_ms=60000",
                              {"sql": "UPDATE accounts SET balance = 8 WHERE id = 2"})
        self.assertEqual(code, 200, r)
        wait_until(lambda: self.p.status("t1")[1].get("state") == "aborted", timeout=5,
                   what="t1 to abort at its own deadline")
        self.assertEqual(self.p.status("t2")[1]["state"], "working")
        self.assertEqual(self.p.exec("t3", "UPDATE accounts SET balance = 9 WHERE id = 1")[0], 200)
        for bad in ("0", "-1", "x", "86400001", "1.5", ""):
            code, r = self.p.call("POST", "/v1/branches/t4/exec?timeout_ms=" + bad,
                                  {"sql": "SELECT 1"})
            self.assertEqual((code, r["error"]["code"]), (400, "bad_request"), bad)
        self.assertEqual(self.p.status("t4")[0], 404)

    def test_a_numbered_exec_runs_once(self):
        inc = "UPDATE accounts SET balance = balance + 1 WHERE id = ?"
        code, first = self.p.exec("t1", inc, [1], seq=1)
        self.assertEqual(code, 200, first)
        # A repeat: the first answer, nothing run.
        self.assertEqual(self.p.exec("t1", inc, [1], seq=1), (200, first))
        code, err = self.p.exec("t1", inc, [2], seq=1)
        self.assertEqual((code, err["error"]["code"]), (409, "exec_seq_reused"))
        for seq in (3, 7):
            code, err = self.p.exec("t1", inc, [1], seq=seq)
            self.assertEqual((code, err["error"]["code"]), (409, "exec_out_of_order"), seq)
        for bad in (0, -1, "2", 1.5, 2 ** 32):
            code, err = self.p.exec("t1", inc, [1], seq=bad)
            self.assertEqual((code, err["error"]["code"]), (400, "bad_request"), bad)
        # A failing exec is answered the same way when repeated, and takes its number.
        code, failed = self.p.exec("t1", "UPDATE accounts SET balance = -5 WHERE id = 2", seq=2)
        self.assertEqual((code, failed["error"]["code"]), (409, "constraint_violation"))
        self.assertEqual(self.p.exec("t1", "UPDATE accounts SET balance = -5 WHERE id = 2",
                                     seq=2), (409, failed))
        code, r = self.p.exec("t1", "SELECT balance FROM accounts WHERE id = 1", seq=3)
        self.assertEqual(r["results"][0]["rows"], [[101]])
        # Prepared, the last exec's repeat still gets its answer; a new one is refused.
        self.assertEqual(self.p.prepare("t1")[0], 200)
        self.assertEqual(self.p.exec("t1", "SELECT balance FROM accounts WHERE id = 1",
                                     seq=3), (200, r))
        code, err = self.p.exec("t1", inc, [1], seq=4)
        self.assertEqual((code, err["error"]["code"]), (409, "branch_not_active"))
        self.assertEqual(self.p.commit("t1")[0], 200)
        self.assertEqual(self.p.balance(1), 101)
        # A first exec must be number 1.
        code, err = self.p.exec("t2", inc, [1], seq=2)
        self.assertEqual((code, err["error"]["code"]), (409, "exec_out_of_order"))

    def test_a_repeat_while_the_first_still_runs(self):
        # The first waits for a row lock; its repeat waits for it, and gets its answer.
        self.p.stop()
        self.p = Participant(replicas=self.replicas, lock_timeout_ms=5000)
        self.p.exec("t0", "UPDATE accounts SET balance = 0 WHERE id = 3")
        self.assertEqual(self.p.prepare("t0")[0], 200)
        inc = "UPDATE accounts SET balance = balance + 1 WHERE id = 3"
        got = []
        threads = [threading.Thread(target=lambda: got.append(self.p.exec("t1", inc, seq=1)))
                   for _ in range(2)]
        for t in threads:
            t.start()
        wait_until(lambda: self.p.call("GET", "/health")[1]["waiting_for_locks"] == 1, 5)
        self.assertEqual(self.p.commit("t0")[0], 200)
        for t in threads:
            t.join(10)
        self.assertEqual(len(got), 2)
        self.assertEqual(got[0], got[1])
        self.assertEqual(got[0][0], 200, got)
        self.assertEqual(self.p.prepare("t1")[0], 200)
        self.assertEqual(self.p.commit("t1")[0], 200)
        self.assertEqual(self.p.balance(3), 1)

    def test_forbidden_and_malformed_change_nothing(self):
        before = self.p.dump()
        forbidden = [
            "CREATE TABLE x(id INTEGER PRIMARY KEY)", "DROP TABLE accounts",
            "ALTER TABLE accounts ADD COLUMN y", "CREATE INDEX i ON accounts(owner)",
            "ATTACH DATABASE 'other.db' AS o", "DETACH DATABASE main", "PRAGMA journal_mode=DELETE",
            "PRAGMA user_version = 5", "SELECT load_extension('x')", "INSERT INTO notes VALUES ('no pk')",
            "DELETE FROM tpc_outcome", "SELECT * FROM tpc_prepared", "BEGIN", "COMMIT",
            "SAVEPOINT s", "VACUUM", "CREATE TRIGGER tr AFTER INSERT ON accounts BEGIN SELECT 1; END",
            "REINDEX", "ANALYZE",
        ]
        for sql in forbidden:
            code, err = self.p.exec("t1", sql)
            self.assertIn(code, (400, 403), (sql, err))
            self.assertTrue(err["error"]["message"], sql)
        code, err = self.p.exec("t1", "UPDATE accounts SET balance = 1 WHERE id = 1; DELETE FROM accounts")
        self.assertEqual(code, 400, err)
        self.assertIn("more than one", err["error"]["message"])
        code, err = self.p.exec("t1", "UPDATE accounts SET balance = -1 WHERE id = 1")
        self.assertEqual(code, 409, err)
        self.assertEqual(err["error"]["code"], "constraint_violation")
        code, err = self.p.exec("t1", "SELEC 1")
        self.assertEqual((code, err["error"]["code"]), (400, "sql_error"))
        code, err = self.p.exec("t1", "SELECT ?", [])
        self.assertEqual(code, 400, err)
        code, err = self.p.exec("t1", "SELECT ?", [{"a": 1}])
        self.assertEqual(code, 400, err)
        bodies = [b"", b"{", b"[]", b"null", b'{"sql": 5}', b'{"sql": ""}', b'{"statements": []}',
                  b'{"statements": [{"sql": "SELECT 1", "extra": 1}]}', b'{"sql": "SELECT 1", "x": 1}',
                  b'{"sql": "SELECT 1", "params": 3}', b'{"sql":"SELECT 1","sql":"SELECT 2"}',
                  b'{"statements": [5]}', b'\xff\xfe']
        for raw in bodies:
            code, err = self.p.call("POST", "/v1/branches/t1/exec", raw=raw)
            self.assertEqual(code, 400, (raw, err))
            self.assertIn("error", err)
        prepares = [b"{}", b'{"type":"prepare","txid":"other","participants":["bank-a"]}',
                    b'{"type":"prepare","txid":"t1","participants":[]}',
                    b'{"type":"prepare","txid":"t1","participants":["bank-b"]}',
                    b'{"type":"commit","txid":"t1"}']
        for raw in prepares:
            code, err = self.p.call("POST", "/v1/branches/t1/prepare", raw=raw)
            self.assertEqual(code, 400, (raw, err))
        for path in ["/v1/branches/bad%20id/exec", "/v1/branches/" + "x" * 65 + "/exec"]:
            code, err = self.p.call("POST", path, {"sql": "SELECT 1"})
            self.assertEqual(code, 400, (path, err))
        self.assertEqual(self.p.call("POST", "/v1/branches/t1/launch", {})[0], 404)
        self.assertEqual(self.p.call("GET", "/v1/branches/t1/exec")[0], 405)
        self.assertEqual(self.p.call("GET", "/nothing")[0], 404)
        # Tokens: missing or wrong is 401 with a JSON body.
        for tok in (None, "wrong"):
            code, err = self.p.call("POST", "/v1/branches/t1/exec", {"sql": "SELECT 1"}, token=tok)
            self.assertEqual(code, 401)
            self.assertEqual(err["error"]["code"], "unauthorized")
        self.assertEqual(self.p.dump(), before)
        self.assertNotIn("test-cluster-token", self.p.read_log())

    def test_tables_a_branch_cannot_lock_are_read_only(self):
        # A table without a declared primary key (rows cannot be locked), one with a trigger
        # (its writes could not be locked), and one whose foreign key refers to such a table
        # (its parent could not be held): refused up front, with the reason. UNIQUE and
        # FOREIGN KEY constraints are fine (test_constraints.py).
        self.p.stop()
        self.p = Participant(replicas=self.replicas, schema="""
            CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE);
            CREATE TABLE loose(v INTEGER UNIQUE);
            CREATE TABLE child(id INTEGER PRIMARY KEY, v INTEGER REFERENCES loose(v));
            CREATE TABLE audited(id INTEGER PRIMARY KEY, v INTEGER);
            CREATE TABLE audit_log(id INTEGER PRIMARY KEY, note TEXT);
            CREATE TRIGGER t AFTER UPDATE ON audited BEGIN INSERT INTO audit_log(note) VALUES ('x'); END;
            INSERT INTO users VALUES (1, 'a@x'); INSERT INTO audited VALUES (1, 1);""")
        cases = {"INSERT INTO loose VALUES (1)": "PRIMARY KEY",
                 "INSERT INTO child VALUES (1, NULL)": "loose, which is read-only",
                 "UPDATE audited SET v = 2 WHERE id = 1": "trigger"}
        for sql, why in cases.items():
            code, err = self.p.exec("t1", sql)
            self.assertEqual((code, err["error"]["code"]), (403, "forbidden_statement"), sql)
            self.assertIn(why, err["error"]["message"], sql)
        self.assertEqual(self.p.exec("t1", "SELECT email FROM users")[1]["results"][0]["rows"],
                         [["a@x"]])
        self.assertEqual(self.p.exec("t1", "INSERT INTO users VALUES (2, 'b@x')")[0], 200)

    def test_limits(self):
        code, err = self.p.call("POST", "/v1/branches/t1/exec",
                                raw=json.dumps({"sql": "SELECT '" + "x" * (1100 * 1024) + "'"}).encode())
        self.assertEqual(code, 413, err)
        self.assertEqual(err["error"]["code"], "body_too_large")
        code, err = self.p.call("POST", "/v1/branches/t1/exec",
                                {"statements": [{"sql": "SELECT 1"}] * 1001})
        self.assertEqual((code, err["error"]["code"]), (400, "too_many_statements"))
        code, err = self.p.exec("t1", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                                      "FROM c LIMIT 10001) SELECT x FROM c")
        self.assertEqual((code, err["error"]["code"]), (400, "too_many_rows"))
        code, r = self.p.exec("t1", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                                    "FROM c LIMIT 10000) SELECT x FROM c")
        self.assertEqual(code, 200)
        self.assertEqual(len(r["results"][0]["rows"]), 10000)
        # A statement that would run forever is stopped; the participant stays responsive.
        code, err = self.p.exec("t1", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                                      "FROM c) SELECT count(*) FROM c")
        self.assertEqual((code, err["error"]["code"]), (400, "statement_timeout"))
        self.assertEqual(self.p.exec("t2", "SELECT 1")[0], 200)

    def test_sigterm_stops_cleanly(self):
        code = self.p.kill(signal.SIGTERM)
        self.assertEqual(code, 0)
        self.assertIn("stopping", self.p.read_log())


if __name__ == "__main__":
    unittest.main()
