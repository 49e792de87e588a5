"""Test harness: real participant processes on loopback, real database files,
and small in-test acceptors (replicas) that speak /v1/paxos.

Only the standard library. Every process a test starts is stopped by PID at
the end; every wait is bounded in time and polls a condition.
"""
import http.server
import json
import os
import shutil
import signal
import socketserver
import sqlite3
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

PARTICIPANT = os.environ.get("TPC_PARTICIPANT_BIN", "participant")
TOKEN = "test-cluster-token"

SCHEMA = """
CREATE TABLE accounts(id INTEGER PRIMARY KEY, owner TEXT NOT NULL,
                      balance INTEGER NOT NULL CHECK (balance >= 0));
CREATE TABLE notes(msg TEXT);
INSERT INTO accounts VALUES (1, 'alice', 100), (2, 'bob', 50), (3, 'carol', 10);
"""


def wait_until(cond, timeout=10.0, what="condition"):
    """Polls cond() until true; fails the test after timeout seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.01)
    raise AssertionError("timed out waiting for " + what)


class FakeReplica:
    """An in-test acceptor: accepts ballot-0 phase 2a like a real one (one value per
    instance, answered with phase 2b), and answers status queries with a set outcome."""

    def __init__(self, replica_id):
        self.id = replica_id
        self.accepted = {}  # (txid, instance) -> value
        self.outcomes = {}  # txid -> "committed" | "aborted"
        self.status_asked = []
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n))
                if self.path != "/v1/paxos" or self.headers.get("Authorization") != "Bearer " + TOKEN:
                    return self.reply(404 if self.path != "/v1/paxos" else 401, {"error": {}})
                out = [owner.handle(m) for m in body["messages"]]
                self.reply(200, {"messages": [m for m in out if m]})

            def reply(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def handle(self, m):
        with self.lock:
            if m["type"] == "phase2a":
                key = (m["txid"], m["instance"])
                prev = self.accepted.setdefault(key, m["value"])
                assert prev == m["value"], "two values in ballot 0 for %s" % (key,)
                return {"type": "phase2b", "txid": m["txid"], "instance": m["instance"],
                        "acceptor": self.id, "ballot": m["ballot"], "value": m["value"]}
            if m["type"] == "status":
                self.status_asked.append(m["txid"])
                o = self.outcomes.get(m["txid"])
                return {"type": "outcome", "txid": m["txid"], "outcome": o} if o else None
        return None

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Participant:
    """One participant process over a database file in its own temporary folder."""

    def __init__(self, name="bank-a", replicas=(), **opts):
        self.dir = tempfile.mkdtemp(prefix="tpc-part-")
        self.name = name
        self.db = os.path.join(self.dir, name + ".db")
        with open(os.path.join(self.dir, "schema.sql"), "w") as f:
            f.write(SCHEMA)
        with open(os.path.join(self.dir, "token"), "w") as f:
            f.write(TOKEN + "\n")
        self.replicas = list(replicas)
        self.opts = {"lock-timeout-ms": 300, "branch-timeout-ms": 20000, "doubt-ms": 200,
                     "vote-timeout-ms": 1000}
        self.opts.update({k.replace("_", "-"): v for k, v in opts.items()})
        self.proc = None
        self.start()

    def start(self):
        port_file = os.path.join(self.dir, "port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        args = [PARTICIPANT, "--name", self.name, "--db", self.db,
                "--schema", os.path.join(self.dir, "schema.sql"),
                "--token-file", os.path.join(self.dir, "token"), "--port-file", port_file]
        if self.replicas:
            args += ["--replicas", ",".join(r.url for r in self.replicas)]
        for k, v in self.opts.items():
            args += ["--" + k, str(v)]
        self.log = open(os.path.join(self.dir, "log"), "a")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(args, stderr=self.log)
        wait_until(lambda: os.path.exists(port_file) or self.proc.poll() is not None,
                   what="participant to listen")
        assert self.proc.poll() is None, "participant exited: " + self.read_log()
        self.ready_after = time.monotonic() - self.started_at
        with open(port_file) as f:
            self.url = "http://127.0.0.1:%d" % int(f.read())

    def read_log(self):
        with open(os.path.join(self.dir, "log")) as f:
            return f.read()

    def kill(self, sig=signal.SIGKILL):
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=10)
        self.log.close()
        return code

    def stop(self):
        """Stops cleanly: exit status 0 (under the sanitizers, also no leak reports)."""
        code = 0
        if self.proc and self.proc.poll() is None:
            code = self.kill(signal.SIGTERM)
        log = self.read_log()
        shutil.rmtree(self.dir, ignore_errors=True)
        assert code == 0, "participant exited with %s on SIGTERM:\n%s" % (code, log[-4000:])

    # -- HTTP --
    def call(self, method, path, body=None, token=TOKEN, raw=None, timeout=10):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def exec(self, txid, sql, params=None, **kw):
        body = {"sql": sql}
        if params is not None:
            body["params"] = params
        return self.call("POST", "/v1/branches/%s/exec" % txid, body, **kw)

    def prepare(self, txid, participants=None):
        return self.call("POST", "/v1/branches/%s/prepare" % txid,
                         {"type": "prepare", "txid": txid,
                          "participants": participants or [self.name]})

    def commit(self, txid):
        return self.call("POST", "/v1/branches/%s/commit" % txid)

    def abort(self, txid):
        return self.call("POST", "/v1/branches/%s/abort" % txid)

    def status(self, txid):
        return self.call("GET", "/v1/branches/%s" % txid)

    # -- the database file, read directly --
    def rows(self, sql="SELECT id, owner, balance FROM accounts ORDER BY id"):
        con = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=5)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def dump(self):
        """Everything in the file, bookkeeping included, to compare before and after."""
        con = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=5)
        try:
            return list(con.iterdump())
        finally:
            con.close()

    def balance(self, account_id):
        return self.rows("SELECT balance FROM accounts WHERE id = %d" % account_id)[0][0]
