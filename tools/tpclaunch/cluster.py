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
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The CA each https:// origin's certificate is verified against (dev_certs registers them);
# an origin not here is verified against the system's CAs, which fails for a development CA.
CA_BY_ORIGIN = {}


def ssl_context(url):
    """None for http://; for https://, a context that verifies against the origin's CA."""
    import ssl
    if not url.startswith("https://"):
        return None
    origin = "/".join(url.split("/")[:3])
    return ssl.create_default_context(cafile=CA_BY_ORIGIN.get(origin))


def dev_certs(directory):
    """A development CA and certificate for 127.0.0.1 (scripts/dev-certs): {"cert", "key",
    "ca"} file paths."""
    subprocess.run([os.path.join(ROOT, "scripts", "dev-certs"), directory], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=60)
    return {"cert": os.path.join(directory, "node.pem"),
            "key": os.path.join(directory, "node.key"), "ca": os.path.join(directory, "ca.pem")}
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
        self.down = False
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                if owner.down:  # stopped: kept-alive connections get no answer either
                    self.close_connection = True
                    return
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
        self.down = True
        self.server.shutdown()
        self.server.server_close()


class Participant:
    """One participant process over a database file in its own temporary folder."""

    def __init__(self, name="bank-a", replicas=(), schema=SCHEMA, tls=None, **opts):
        """tls: {"cert", "key", "ca"} file paths (dev_certs): HTTPS only."""
        self.dir = tempfile.mkdtemp(prefix="tpc-part-")
        self.name = name
        self.tls = tls
        self.db = os.path.join(self.dir, name + ".db")
        self.failpoints = None
        with open(os.path.join(self.dir, "schema.sql"), "w") as f:
            f.write(schema)
        write_secret(os.path.join(self.dir, "token"), TOKEN)
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
        if self.tls:
            args += ["--tls-cert", self.tls["cert"], "--tls-key", self.tls["key"],
                     "--tls-ca", self.tls["ca"]]
        for k, v in self.opts.items():
            args += ["--" + k, str(v)]
        if getattr(self, "port", None):
            args += ["--port", str(self.port)]  # a restart keeps its address
        if getattr(self, "log", None) and not self.log.closed:
            self.log.close()  # the last run's, if it ended on its own (a failpoint)
        self.log = open(os.path.join(self.dir, "log"), "a")
        self.started_at = time.monotonic()
        env = dict(os.environ)
        env.pop("TPC_FAILPOINTS", None)
        if self.failpoints:
            env["TPC_FAILPOINTS"] = self.failpoints
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.log, env=env)
        wait_until(lambda: os.path.exists(port_file) or self.proc.poll() is not None,
                   what="participant to listen")
        if self.proc.poll() is not None and self.failpoints:
            return  # armed, it may reach its failpoint at once (e.g. on reloaded branches)
        assert self.proc.poll() is None, "participant exited: " + self.read_log()
        self.ready_after = time.monotonic() - self.started_at
        with open(port_file) as f:
            self.port = int(f.read())
        self.url = "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)
        if self.tls:
            CA_BY_ORIGIN[self.url] = self.tls["ca"]

    def read_log(self):
        with open(os.path.join(self.dir, "log")) as f:
            return f.read()

    def kill(self, sig=signal.SIGKILL):
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=10)
        self.log.close()
        return code

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout=60):
        """Until the process ended on its own (a failpoint); its exit status."""
        code = self.proc.wait(timeout=timeout)
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
            with urllib.request.urlopen(req, timeout=timeout, context=ssl_context(self.url)) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def exec(self, txid, sql, params=None, seq=None, **kw):
        body = {"sql": sql}
        if params is not None:
            body["params"] = params
        if seq is not None:
            body["seq"] = seq
        return self.call("POST", "/v1/branches/%s/exec" % txid, body, **kw)

    def prepare(self, txid, participants=None, query=""):
        """By default as a branch of a two-participant transaction."""
        return self.call("POST", "/v1/branches/%s/prepare%s" % (txid, query),
                         {"type": "prepare", "txid": txid,
                          "participants": participants or [self.name, "other-bank"]})

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
        """Everything in the file, bookkeeping included, to compare before and after; but the
        horizon (tpc_meta), which the clock moves every second, not a request."""
        con = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=5)
        try:
            return [line for line in con.iterdump()
                    if not line.startswith("INSERT INTO \"tpc_meta\" VALUES('horizon',")]
        finally:
            con.close()

    def balance(self, account_id):
        return self.rows("SELECT balance FROM accounts WHERE id = %d" % account_id)[0][0]


COORDINATOR = os.environ.get("TPC_COORDINATOR_BIN", "coordinator")
CLIENT_TOKEN = "test-client-token"

BANK_SCHEMA = """
CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0));
INSERT INTO accounts VALUES (1, 100), (2, 100), (3, 100);
"""


def write_secret(path, token):
    """A token file only its owner can read (the programs warn about any other)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_call(method, url, body=None, token=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ssl_context(url)) as r:
            return r.status, parse_body(r.read())
    except urllib.error.HTTPError as e:
        return e.code, parse_body(e.read())


METRIC_LINE = None


def metrics(url):
    """GET url/metrics, checked line by line against the Prometheus text format (0.0.4):
    every sample's family has HELP and TYPE lines before it, histogram buckets are
    cumulative and end at +Inf = _count. Returns {"name{labels}": value}."""
    import re
    global METRIC_LINE
    METRIC_LINE = METRIC_LINE or re.compile(
        r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? '
        r'([0-9]+(\.[0-9]+)?)$')
    with urllib.request.urlopen(url + "/metrics", timeout=10, context=ssl_context(url)) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    typed, out, last_bucket = {}, {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            if parts[1] == "TYPE":
                typed[parts[2]] = parts[3]
            continue
        m = METRIC_LINE.match(line)
        assert m, "not a Prometheus sample line: %r" % line
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(4))
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in typed else name
        assert family in typed, "sample %s without a TYPE line" % name
        if name.endswith("_bucket"):
            assert value >= last_bucket.get(family, 0), "buckets of %s not cumulative" % family
            last_bucket[family] = value
        if name.endswith("_count") and typed[family] == "histogram":
            assert out[family + '_bucket{le="+Inf"}'] == value, "+Inf bucket != count: " + family
        out[name + labels] = value
    return out


def parse_body(data):
    """JSON, or {"raw": text} when it is not (another server answering on a reused port)."""
    try:
        return json.loads(data)
    except ValueError:
        return {"raw": data.decode(errors="replace")}


class Replica:
    def __init__(self, cluster, idx):
        self.cluster, self.idx, self.proc = cluster, idx, None
        self.url = cluster.replica_urls[idx]
        self.env = dict(os.environ)

    def init(self):
        """Makes this replica's state file (coordinator --init), once, before its first start."""
        r = subprocess.run([COORDINATOR, "--config", self.cluster.config, "--id", str(self.idx),
                            "--init"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, env=self.env, text=True, timeout=30)
        assert r.returncode == 0, "replica %d --init: %s" % (self.idx, r.stdout)

    def start(self, failpoints=None):
        env = dict(self.env)
        if failpoints:
            env["TPC_FAILPOINTS"] = failpoints
        else:
            env.pop("TPC_FAILPOINTS", None)
        self.log = open(os.path.join(self.cluster.dir, "replica-%d.log" % self.idx), "a")
        # No stdin/stdout of the test runner: an orphan must never hold its pipe open.
        self.proc = subprocess.Popen([COORDINATOR, "--config", self.cluster.config,
                                      "--id", str(self.idx)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        wait_until(lambda: self.healthy() or self.proc.poll() is not None,
                   what="replica %d to answer" % self.idx)
        if self.proc.poll() is not None and failpoints:
            return  # armed, it may reach its failpoint at once
        assert self.proc.poll() is None, "replica %d exited:\n%s" % (self.idx, self.read_log())

    def healthy(self):
        """This replica answers on its port (not another server that took the port)."""
        try:
            code, r = http_call("GET", self.url + "/health", timeout=1)
            return code == 200 and r.get("replica") == self.idx
        except OSError:
            return False

    def read_log(self):
        with open(os.path.join(self.cluster.dir, "replica-%d.log" % self.idx)) as f:
            return f.read()

    def kill(self, sig=signal.SIGKILL):
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=10)
        self.log.close()
        return code

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout=60):
        """Until the process ended on its own (a failpoint); its exit status."""
        code = self.proc.wait(timeout=timeout)
        self.log.close()
        return code


class Cluster:
    """2F+1 coordinator replicas and some participants, all on loopback, one config file."""

    def __init__(self, n_replicas=3, participants=("bank-a", "bank-b"), timeouts=None,
                 schema=BANK_SCHEMA, retention_ms=None, tls=False):
        # Ports are chosen free and then bound by the processes: another test may take one
        # in between. A start that fails stops what it started, and is tried again anew.
        for attempt in range(3):
            self.replicas, self.parts = [], {}
            try:
                self._start(n_replicas, participants, timeouts, schema, retention_ms, tls)
                return
            except (AssertionError, OSError):
                self.stop(strict=False)
                if attempt == 2:
                    raise

    def _start(self, n_replicas, participants, timeouts, schema, retention_ms, tls):
        """tls: HTTPS on every link, with a development CA (scripts/dev-certs) in the cluster's
        folder; self.tls holds its files."""
        self.dir = tempfile.mkdtemp(prefix="tpc-cluster-")
        self.tls = dev_certs(os.path.join(self.dir, "certs")) if tls else None
        scheme = "https" if tls else "http"
        self.replica_urls = ["%s://127.0.0.1:%d" % (scheme, free_port())
                             for _ in range(n_replicas)]
        for u in self.replica_urls:
            if tls:
                CA_BY_ORIGIN[u] = self.tls["ca"]
        for name, tok in (("client.token", CLIENT_TOKEN), ("cluster.token", TOKEN)):
            write_secret(os.path.join(self.dir, name), tok)
        fake_replicas = [type("R", (), {"url": u}) for u in self.replica_urls]
        self.parts = {}
        # retention_ms: how long everything about a transaction is kept (DESIGN.md section 11),
        # the same at the replicas and the participants.
        keep = {"retention_ms": retention_ms} if retention_ms else {}
        for name in participants:
            self.parts[name] = Participant(name, replicas=fake_replicas, schema=schema,
                                           tls=self.tls, doubt_ms=300, lock_timeout_ms=300,
                                           **keep)
        cfg = {"replicas": self.replica_urls,
               "participants": {n: p.url for n, p in self.parts.items()},
               "data_dir": "data", "client_token_file": "client.token",
               "cluster_token_file": "cluster.token",
               "timeouts_ms": dict({"prepare": 1000, "commit": 3000, "transaction": 20000,
                                    "retry": 50, "retry_max": 500, "stale": 1000},
                                   **(timeouts or {}))}
        cfg.update(keep)
        if self.tls:
            cfg["tls"] = {k: os.path.relpath(v, self.dir) for k, v in self.tls.items()}
        os.mkdir(os.path.join(self.dir, "data"))
        self.config = os.path.join(self.dir, "cluster.json")
        with open(self.config, "w") as f:
            json.dump(cfg, f)
        self.replicas = [Replica(self, i) for i in range(n_replicas)]
        for r in self.replicas:
            r.init()
            r.start()
            assert r.healthy(), "replica %d is not the one answering on its port" % r.idx

    def call(self, i, method, path, body=None, token=CLIENT_TOKEN, timeout=30):
        return http_call(method, self.replica_urls[i] + path, body, token=token, timeout=timeout)

    def begin(self, i=0, **body):
        code, r = self.call(i, "POST", "/v1/transactions", body)
        assert code == 201, (code, r)
        return r["txid"]

    def exec(self, i, txid, participant, sql, params=None, seq=None):
        body = {"participant": participant, "sql": sql}
        if params is not None:
            body["params"] = params
        if seq is not None:
            body["seq"] = seq
        return self.call(i, "POST", "/v1/transactions/%s/exec" % txid, body)

    def commit(self, i, txid, timeout=30, wait=None):
        """wait=None: answered once decided; "applied": once the participants applied it."""
        return self.call(i, "POST", "/v1/transactions/%s/commit" % txid,
                         {"wait": wait} if wait else None, timeout=timeout)

    def abort(self, i, txid):
        return self.call(i, "POST", "/v1/transactions/%s/abort" % txid)

    def status(self, i, txid):
        return self.call(i, "GET", "/v1/transactions/%s" % txid)

    def faults(self, url, rules):
        """Sets the network-fault rules of the process at url (its outgoing calls)."""
        code, r = http_call("POST", url + "/v1/admin/faults", rules, token=TOKEN, timeout=10)
        assert code == 200, (code, r)

    def urls(self):
        return list(self.replica_urls) + [p.url for p in self.parts.values()]

    def isolate(self, url):
        """Cuts the process at url from every other process, both ways."""
        others = [u for u in self.urls() if u != url]
        self.faults(url, {"drop": others})
        for u in others:
            self.faults(u, {"drop": [url]})

    def heal(self):
        for u in self.urls():
            try:
                self.faults(u, {})
            except (OSError, AssertionError):
                pass  # a process that is down has no faults to heal

    def balances(self):
        return {n: dict(p.rows("SELECT id, balance FROM accounts")) for n, p in self.parts.items()}

    def stop(self, strict=True):
        problems = []
        for r in self.replicas:
            if r.alive():
                code = r.kill(signal.SIGTERM)
                if code != 0:
                    problems.append("replica %d exited %s:\n%s" % (r.idx, code, r.read_log()[-3000:]))
        for p in self.parts.values():
            try:
                p.stop()
            except AssertionError as e:
                problems.append(str(e))
        shutil.rmtree(self.dir, ignore_errors=True)
        assert not (strict and problems), "\n".join(problems)

__all__ = ['Cluster', 'FakeReplica', 'Participant', 'Replica', 'dev_certs', 'free_port', 'http_call', 'metrics', 'parse_body', 'ssl_context', 'wait_until']
