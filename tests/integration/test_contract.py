"""The API contract on real processes (issue: a retry-safe API that does exactly what
http-api.md says): every endpoint of both programs with bad input of every kind (malformed
and wrongly typed JSON, huge bodies, NUL and non-ASCII bytes in paths and bodies, unknown ids,
wrong methods, missing and wrong tokens), each refusal checked for its documented status, code
and body, and the databases compared before and after it: a refused request changes nothing.
Then the documented fields of the answers that succeed."""
import json
import socket
import unittest
import urllib.parse

from tpclaunch import Cluster, http_call, wait_until
from tpclaunch.cluster import CLIENT_TOKEN, TOKEN

BIG = 1024 * 1024 + 1  # one byte over the default body cap


def raw_http(url, method, path, body=b"", token=None, timeout=10):
    """One request with the path's bytes as given (urllib would refuse some); returns (status,
    parsed body)."""
    u = urllib.parse.urlsplit(url)
    head = b"%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: %d\r\n" % (
        method.encode(), path, u.netloc.encode(), len(body))
    if token:
        head += b"Authorization: Bearer " + token.encode() + b"\r\n"
    with socket.create_connection((u.hostname, u.port), timeout=timeout) as s:
        s.sendall(head + b"\r\n" + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    headers, _, payload = rest.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in headers.lower():
        out, p = b"", payload
        while p:
            size, _, p = p.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out, p = out + p[:n], p[n + 2:]
        payload = out
    return int(status_line.split()[1]), json.loads(payload)


class ContractTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(n_replicas=3)
        cls.a, cls.b = cls.c.parts["bank-a"], cls.c.parts["bank-b"]
        # Something in every state a refusal could touch: an active transaction with a branch,
        # a committed one.
        cls.active = cls.c.begin(0)
        code, r = cls.c.exec(0, cls.active, "bank-a", "UPDATE accounts SET balance = 99 WHERE id = 2")
        assert code == 200, r
        cls.done = cls.c.begin(0)
        cls.c.exec(0, cls.done, "bank-b", "UPDATE accounts SET balance = balance + 1 WHERE id = 1")
        assert cls.c.commit(0, cls.done, wait="applied")[1]["outcome"] == "committed"
        # Settled: every replica lists it decided (the others learn it a moment later).
        wait_until(lambda: all(cls.c.status(i, cls.done)[1].get("state") == "committed"
                               for i in range(3)), timeout=10, what="the replicas to learn it")

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def state(self):
        """Everything a request could change: both databases, whole, and every replica's list."""
        return (self.a.dump(), self.b.dump(),
                [self.c.call(i, "GET", "/v1/transactions")[1] for i in range(3)])

    def refused(self, status, code, call):
        """call() -> (status, body): refused as documented, and nothing changed."""
        before = self.state()
        got, body = call()
        self.assertEqual((got, body.get("error", {}).get("code")), (status, code), body)
        self.assertEqual(list(body), ["error"], body)
        self.assertEqual(sorted(body["error"]), ["code", "message"], body)
        self.assertTrue(isinstance(body["error"]["message"], str) and body["error"]["message"])
        self.assertEqual(self.state(), before, "a refused request changed something")

    def replica(self, method, path, body=None, token=CLIENT_TOKEN, raw=None, i=0):
        if raw is not None:
            return raw_http(self.c.replica_urls[i], method, path.encode(), raw, token)
        return http_call(method, self.c.replica_urls[i] + path, body, token=token)

    def part(self, method, path, body=None, token=TOKEN, raw=None):
        if raw is not None:
            return raw_http(self.a.url, method, path.encode(), raw, token)
        return self.a.call(method, path, body, token=token)

    def test_tokens(self):
        for method, path in (("POST", "/v1/transactions"), ("GET", "/v1/transactions"),
                             ("GET", "/v1/transactions/" + self.active),
                             ("POST", "/v1/transactions/%s/exec" % self.active),
                             ("POST", "/v1/transactions/%s/commit" % self.active),
                             ("POST", "/v1/transactions/%s/abort" % self.active),
                             ("POST", "/v1/transactions/oneshot"), ("POST", "/v1/paxos"),
                             ("GET", "/v1/admin/faults")):
            for token in (None, "wrong", TOKEN if "paxos" not in path else CLIENT_TOKEN):
                if path == "/v1/admin/faults" and token == TOKEN:
                    continue
                self.refused(401, "unauthorized", lambda: self.replica(method, path, {}, token))
        for method, path in (("POST", "/v1/branches/t1/exec"), ("POST", "/v1/outcomes"),
                             ("GET", "/v1/prepared"), ("GET", "/v1/branches/t1")):
            for token in (None, "wrong", CLIENT_TOKEN):
                self.refused(401, "unauthorized", lambda: self.part(method, path, {}, token))
        # No token needed for health and metrics.
        self.assertEqual(self.replica("GET", "/health", token=None)[0], 200)
        self.assertEqual(self.part("GET", "/health", token=None)[0], 200)

    def test_paths_and_methods(self):
        for path in ("/", "/v1", "/v1/", "/v2/transactions", "/v1/transaction",
                     "/v1/transactions/%s/frob" % self.active, "/v1/transactions/%s/exec/x" % self.active):
            self.refused(404, "not_found", lambda: self.replica("GET", path))
        for method, path in (("GET", "/v1/transactions/%s/commit" % self.active),
                             ("DELETE", "/v1/transactions"), ("PUT", "/v1/transactions/" + self.active),
                             ("GET", "/v1/transactions/oneshot"), ("GET", "/v1/paxos"),
                             ("POST", "/health"), ("POST", "/metrics")):
            token = TOKEN if "paxos" in path else CLIENT_TOKEN
            self.refused(405, "method_not_allowed",
                         lambda: self.replica(method, path, {} if method != "GET" else None, token))
        for method, path in (("GET", "/v1/branches/t1/exec"), ("DELETE", "/v1/branches/t1"),
                             ("POST", "/v1/prepared"), ("GET", "/v1/outcomes")):
            self.refused(405, "method_not_allowed", lambda: self.part(method, path, {}))
        self.refused(404, "not_found", lambda: self.part("GET", "/v1/nothing"))
        # Odd bytes in a path: encoded NUL, non-ASCII (raw and encoded), too long, a slash.
        for tx in ("%00", "a%00b", "%C3%A9", "\u00e9".encode().decode("latin-1"), "x" * 65,
                   "a%20b", "..", "%", "%zz"):
            for method, path in (("GET", "/v1/transactions/" + tx),
                                 ("POST", "/v1/transactions/%s/commit" % tx),
                                 ("POST", "/v1/transactions/%s/exec" % tx)):
                self.refused(400, "bad_txid",
                             lambda: self.replica(method, path, token=CLIENT_TOKEN,
                                                  raw=b'{"participant": "bank-a", "sql": "SELECT 1"}'
                                                  if method == "POST" else b""))
            self.refused(400, "bad_txid",
                         lambda: self.part("POST", "/v1/branches/%s/exec" % tx,
                                           raw=b'{"sql": "SELECT 1"}'))
        # An encoded slash is a slash: another path.
        self.refused(404, "not_found",
                     lambda: self.replica("POST", "/v1/transactions/a%2Fb/commit", {}))
        self.refused(404, "unknown_transaction", lambda: self.replica("GET", "/v1/transactions/nope"))
        self.refused(404, "unknown_transaction",
                     lambda: self.replica("POST", "/v1/transactions/nope/commit", {}))
        self.refused(404, "unknown_transaction",
                     lambda: self.replica("POST", "/v1/transactions/nope/exec",
                                          {"participant": "bank-a", "sql": "SELECT 1"}))
        self.refused(404, "unknown_branch", lambda: self.part("GET", "/v1/branches/nope"))
        self.refused(400, "bad_state", lambda: self.replica("GET", "/v1/transactions?state=dunno"))
        self.refused(400, "bad_state", lambda: self.replica("GET", "/v1/transactions?state=%00"))

    def bodies(self, valid, empty_ok=False, also_valid=(), json_code="bad_json"):
        """Bodies that are not JSON objects, then the valid one with each key spoiled (but into
        (key, value) of also_valid, which would be valid too)."""
        if not empty_ok:
            yield 400, json_code, b""
        for raw in (b"{", b"[]", b"null", b"5", b'"x"', b"\xff\xfe", b'{"a": 1} x',
                    b'{"a": 1, "a": 2}', b"\x00"):
            yield 400, json_code, raw
        yield 413, "body_too_large", b'{"x": "' + b"a" * BIG + b'"}'
        yield 400, None, json.dumps(dict(valid, unknown_key=1)).encode()
        for key in valid:
            for spoiled in (None, 5, "", [], {}, "\u0000", "\u00e9" * 3, 1.5, -1, True):
                if spoiled == valid[key] or (key, spoiled) in also_valid:
                    continue
                yield 400, None, json.dumps(dict(valid, **{key: spoiled})).encode()

    def check_bodies(self, send, valid, codes=("bad_request",), **kw):
        for status, code, raw in self.bodies(valid, **kw):
            before = self.state()
            got, body = send(raw)
            self.assertEqual(got, status, (raw[:80], body))
            allowed = (code,) if code else ("bad_request", "bad_json", "bad_txid") + tuple(codes)
            self.assertIn(body["error"]["code"], allowed, (raw[:80], body))
            self.assertEqual(self.state(), before, (raw[:80], "changed something"))

    def test_begin_bodies(self):
        self.check_bodies(lambda raw: self.replica("POST", "/v1/transactions", raw=raw),
                          {"txid": "contract-1", "timeout_ms": 1000},
                          codes=("unknown_participant",), empty_ok=True,
                          also_valid=(("timeout_ms", 5),))

    def test_exec_bodies(self):
        path = "/v1/transactions/%s/exec" % self.active
        self.check_bodies(lambda raw: self.replica("POST", path, raw=raw),
                          {"participant": "bank-a", "sql": "SELECT 1", "params": []},
                          codes=("unknown_participant", "sql_error", "forbidden_statement"))
        self.check_bodies(lambda raw: self.part("POST", "/v1/branches/%s/exec" % self.active, raw=raw),
                          {"sql": "SELECT 1", "params": []},
                          codes=("sql_error", "forbidden_statement"))
        # seq: anything but an integer 1..4294967295 is a bad request, before anything runs.
        for seq in (0, -1, 1.5, "1", None, True, [], 2 ** 32):
            self.refused(400, "bad_request", lambda: self.part(
                "POST", "/v1/branches/%s/exec" % self.active, {"sql": "SELECT 1", "seq": seq}))

    def test_commit_abort_oneshot_bodies(self):
        path = "/v1/transactions/%s/commit" % self.active
        self.check_bodies(lambda raw: self.replica("POST", path, raw=raw),
                          {"wait": "applied"}, empty_ok=True)
        path = "/v1/transactions/%s/abort" % self.active
        self.check_bodies(lambda raw: self.replica("POST", path, raw=raw), {"x": 1},
                          empty_ok=True)
        self.check_bodies(lambda raw: self.replica("POST", "/v1/transactions/oneshot", raw=raw),
                          {"txid": "contract-2", "branches": [{"participant": "bank-a",
                                                               "sql": "SELECT 1"}]},
                          codes=("unknown_participant",))

    def test_protocol_bodies(self):
        self.check_bodies(lambda raw: self.replica("POST", "/v1/paxos", raw=raw, token=TOKEN),
                          {"messages": [{"type": "status", "txid": "x"}]}, codes=("bad_message",),
                          json_code="bad_message", also_valid=(("messages", []),))
        self.check_bodies(lambda raw: self.part("POST", "/v1/branches/%s/prepare" % self.active,
                                                raw=raw),
                          {"type": "prepare", "txid": self.active,
                           "participants": ["bank-a", "bank-b"]},
                          codes=("bad_message", "not_a_participant"), json_code="bad_message")
        self.check_bodies(lambda raw: self.part("POST", "/v1/outcomes", raw=raw),
                          {"outcomes": [{"txid": self.done, "outcome": "committed"}]})
        self.check_bodies(lambda raw: self.replica("POST", "/v1/admin/faults", raw=raw,
                                                   token=TOKEN),
                          {"drop": ["http://127.0.0.1:1"]}, also_valid=(("drop", []),))

    def test_answers_have_their_documented_fields(self):
        code, r = self.replica("POST", "/v1/transactions", {"timeout_ms": 5000})
        self.assertEqual((code, sorted(r)), (201, ["state", "timeout_ms", "txid"]))
        tx = r["txid"]
        code, r = self.replica("POST", "/v1/transactions/%s/exec" % tx,
                               {"participant": "bank-a", "sql": "SELECT id FROM accounts LIMIT 1"})
        self.assertEqual((code, sorted(r)), (200, ["results", "txid"]))
        self.assertEqual(sorted(r["results"][0]), ["changes", "columns", "last_insert_rowid", "rows"])
        code, r = self.replica("GET", "/v1/transactions/" + tx)
        self.assertEqual((code, sorted(r)), (200, ["participants", "state", "txid"]))
        code, r = self.replica("POST", "/v1/transactions/%s/commit" % tx, {})
        self.assertEqual((code, sorted(r)), (200, ["outcome", "participants", "state", "txid"]))
        # The leader's own status of it has the outcome too.
        code, s = self.replica("GET", "/v1/transactions/" + tx)
        self.assertEqual((code, s["state"], s.get("outcome")), (200, "committed", "committed"))
        self.assertEqual(self.replica("POST", "/v1/transactions/%s/commit" % tx, {}), (code, r))
        # Settled before the next test compares states: every replica knows it.
        wait_until(lambda: all(self.c.status(i, tx)[1].get("state") == "committed"
                               for i in range(3)), timeout=10, what="the replicas to learn it")
        code, r = self.replica("GET", "/v1/transactions")
        self.assertEqual((code, list(r)), (200, ["transactions"]))
        for t in r["transactions"]:
            self.assertTrue({"txid", "state"} <= set(t), t)
        code, r = self.replica("GET", "/health", token=None)
        self.assertTrue({"status", "replica", "replicas", "transactions", "decided", "recoveries",
                         "recovered_for_others", "storage"} <= set(r), r)
        code, r = self.part("GET", "/health", token=None)
        self.assertTrue({"status", "name", "branches", "waiting_for_locks", "in_doubt_resolved",
                         "storage"} <= set(r), r)
        code, r = self.part("GET", "/v1/prepared")
        self.assertEqual((code, list(r)), (200, ["prepared"]))


if __name__ == "__main__":
    unittest.main()
