"""Retries take effect once (issue: a retry-safe API): a client that retries every call after
any error or timeout, as http-api.md's "Retrying" says, while each process is paused or killed
at each step of its transaction. Each transaction adds 1 to a counter at both participants;
at the end each counter equals the number of transactions committed: no statement ran twice,
none of a committed transaction was lost, and nothing is left prepared."""
import signal
import threading
import time
import unittest

from tpclaunch import Cluster, http_call, wait_until
from tpclaunch.cluster import CLIENT_TOKEN

SCHEMA = """
CREATE TABLE counters(id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
INSERT INTO counters VALUES (1, 0);
"""
PAUSE = 1.6      # seconds a process stays paused or down: longer than the calls' timeouts
CALL_TIMEOUT = 1.0
STEPS = ("begin", "exec-a", "exec-b", "commit")


class RetryClient:
    """Retries each call until it gets a definite answer, within a bound."""

    def __init__(self, url):
        self.url = url

    def call(self, method, path, body, ok, deadline):
        """Sends until the status is in ok or is a definite refusal; returns (status, body)."""
        while time.monotonic() < deadline:
            try:
                code, r = http_call(method, self.url + path, body, token=CLIENT_TOKEN,
                                    timeout=CALL_TIMEOUT)
            except OSError:  # no answer: timed out, refused, reset
                time.sleep(0.05)
                continue
            if code in ok or code not in (502, 503):
                return code, r
            time.sleep(0.05)
        raise AssertionError("no definite answer to %s %s" % (method, path))

    def transfer(self, txid, before_step):
        """One transaction, every call retried; before_step(step) injects the fault.
        Returns "committed", "aborted" or "given up" (a call refused for good)."""
        deadline = time.monotonic() + 60
        before_step("begin")
        code, r = self.call("POST", "/v1/transactions", {"txid": txid, "timeout_ms": 4000},
                            (201, 409), deadline)
        full = "r0-" + txid
        if code == 409:  # our earlier try began it, or not: its status says
            code, r = self.call("GET", "/v1/transactions/" + full, None, (200, 404), deadline)
            if code != 200 or r["state"] != "active":
                return "given up: begin %s %s" % (code, r.get("state"))
        elif code != 201:
            return "given up"
        for step, part in (("exec-a", "bank-a"), ("exec-b", "bank-b")):
            before_step(step)
            seq = 1
            while True:
                code, r = self.call("POST", "/v1/transactions/%s/exec" % full,
                                    {"participant": part, "seq": seq,
                                     "sql": "UPDATE counters SET n = n + 1 WHERE id = 1"},
                                    (200,), deadline)
                # A row still locked (by a branch whose leader died): that exec is answered
                # for good and changed nothing; running the statement again takes the next seq.
                if code != 409 or r["error"]["code"] != "lock_timeout":
                    break
                seq += 1
            if code != 200:
                self.call("POST", "/v1/transactions/%s/abort" % full, {}, (200, 404, 409),
                          deadline)
                return "given up: %s %s" % (code, r.get("error", {}).get("code"))
        before_step("commit")
        code, r = self.call("POST", "/v1/transactions/%s/commit" % full, {}, (200,), deadline)
        return r["outcome"] if code == 200 else "given up: commit %s" % code


class RetryTest(unittest.TestCase):
    def test_every_retried_call_takes_effect_once(self):
        c = Cluster(n_replicas=3, schema=SCHEMA,
                    timeouts={"commit": 1000, "prepare": 800, "transaction": 20000})
        outcomes = {}
        try:
            client = RetryClient(c.replica_urls[0])
            targets = {"replica-0": None, "bank-a": c.parts["bank-a"],
                       "bank-b": c.parts["bank-b"]}
            n = 0
            for name, proc in targets.items():
                for how in ("pause", "kill"):
                    for step in STEPS:
                        n += 1
                        txid = "rt%d-%s-%s-%s" % (n, name, how, step)

                        back = []

                        def fault(now, name=name, how=how, step=step, proc=proc, back=back):
                            if now == step:
                                back.append(self.inject(c, name, proc, how))
                        outcomes[txid] = client.transfer(txid, fault)
                        for t in back:  # the process is back before the next transaction
                            t.join(30)
                            self.assertFalse(t.is_alive(), "%s did not come back" % name)
            # Every transaction ended; nothing is left prepared; each counter is the number
            # of transactions committed.
            committed = sum(1 for o in outcomes.values() if o == "committed")
            for p in c.parts.values():
                wait_until(lambda p=p: p.call("GET", "/v1/prepared")[1]["prepared"] == [],
                           timeout=30, what="nothing prepared at " + p.name)
            for p in c.parts.values():
                wait_until(lambda p=p: p.rows("SELECT n FROM counters")[0][0] == committed,
                           timeout=30, what="%s's counter to be %d (outcomes %s)"
                           % (p.name, committed, outcomes))
            # Not vacuous: the cases without a fault on the commit path do commit.
            self.assertGreaterEqual(committed, len(outcomes) // 4, outcomes)
        finally:
            c.stop()

    def inject(self, c, name, proc, how):
        """Pauses or kills a process now; returns the started timer that brings it back PAUSE
        seconds later."""
        proc = c.replicas[0] if name.startswith("replica") else proc
        if how == "pause":
            proc.proc.send_signal(signal.SIGSTOP)
            t = threading.Timer(PAUSE, proc.proc.send_signal, (signal.SIGCONT,))
        else:
            proc.kill()
            t = threading.Timer(PAUSE, proc.start)
        t.start()
        return t


if __name__ == "__main__":
    unittest.main()
