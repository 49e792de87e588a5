"""A cluster started by `tpcctl cluster up` (cli/local_cluster.c), driven from Python.

The demo starts its cluster the way a person would, with `tpcctl cluster up`, and stops it
with `tpcctl cluster down`; this adopts what `up` started (DIR/cluster.json, DIR/pids, each
process's command line from /proc) and offers what the bank workload, its audit and the demo
use of `Cluster`: call a replica, kill a process by its PID, start it again with the same
command line (armed with a failpoint or not), read a participant's database. A process started
again is written back to DIR/pids, so that `tpcctl cluster down` stops it too.
"""
import json
import os
import shutil
import signal
import subprocess

from . import procfs
from .cluster import CA_BY_ORIGIN, TOKEN, http_call, wait_until

TPCCTL = os.environ.get("TPC_TPCCTL_BIN", "tpcctl")


def _state(pid):
    """A process's state letter from /proc (None: gone). A stopped process that nobody reaps
    (its parent, tpcctl, exited) stays a zombie, "Z": gone as well."""
    fields = procfs.stat(pid)
    return fields[0] if fields else None


class LocalProcess:
    """One process of the cluster: a replica (idx) or a participant (name)."""

    def __init__(self, cluster, pid, log, url, idx=None, name=None):
        self.cluster, self.pid, self.url, self.idx, self.name = cluster, pid, url, idx, name
        self.log_path, self.proc, self.failpoints = log, None, None
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            self.argv = [a.decode() for a in f.read().split(b"\0") if a]

    def alive(self):
        if self.proc is not None:
            return self.proc.poll() is None
        return _state(self.pid) not in (None, "Z", "X")

    def wait_exit(self, timeout=60):
        """Until the process ended (a failpoint's crash, or a kill); bounded."""
        if self.proc is not None:
            return self.proc.wait(timeout=timeout)
        wait_until(lambda: not self.alive(), timeout=timeout, what="process %d to end" % self.pid)
        return None

    def kill(self, sig=signal.SIGKILL):
        os.kill(self.pid, sig)
        return self.wait_exit(timeout=10)

    def healthy(self):
        try:
            code, r = http_call("GET", self.url + "/health", timeout=1)
        except OSError:
            return False
        return code == 200 and (r.get("replica") == self.idx if self.name is None
                                else r.get("name") == self.name)

    def start(self, failpoints=None):
        """The same command line again; with failpoints, armed (it may crash at once)."""
        env = dict(os.environ)
        env.pop("TPC_FAILPOINTS", None)
        failpoints = failpoints or self.failpoints
        if failpoints:
            env["TPC_FAILPOINTS"] = failpoints
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log, env=env,
                                         start_new_session=True)
        self.pid = self.proc.pid
        self.cluster.write_pids()
        wait_until(lambda: self.healthy() or not self.alive(), timeout=30,
                   what="%s to answer" % (self.name or "replica %d" % self.idx))
        assert self.alive() or failpoints, "%s exited:\n%s" % (self.argv[0], self.read_log())

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()


class LocalParticipant(LocalProcess):
    def __init__(self, cluster, pid, name, url):
        super().__init__(cluster, pid, os.path.join(cluster.dir, name + ".log"), url, name=name)
        self.db = os.path.join(cluster.dir, "data", name + ".db")

    def call(self, method, path, body=None, token=TOKEN, timeout=10):
        return http_call(method, self.url + path, body, token=self.cluster.cluster_token
                         if token == TOKEN else token, timeout=timeout)


class LocalCluster:
    """`tpcctl cluster up --dir DIR` with a schema and participants; stop() is `down`.
    tls: {"cert", "key", "ca"} of one folder (dev_certs): `up --tls` that folder."""

    def __init__(self, directory, schema, participants=("bank-a", "bank-b"), n_replicas=3,
                 tls=None):
        self.dir, self.tls = os.path.abspath(directory), tls
        os.makedirs(self.dir, exist_ok=True)
        schema_file = os.path.join(self.dir, "schema-in.sql")
        with open(schema_file, "w") as f:
            f.write(schema)
        r = subprocess.run([TPCCTL, "cluster", "up", "--dir", self.dir, "--schema", schema_file,
                            "--replicas", str(n_replicas), "--participants",
                            ",".join(participants)] +
                           (["--tls", os.path.dirname(tls["ca"])] if tls else []),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, "tpcctl cluster up: %s%s" % (r.stdout, r.stderr)
        self.up_output = r.stdout
        with open(os.path.join(self.dir, "cluster.json")) as f:
            cfg = json.load(f)
        for name in ("client", "cluster"):
            with open(os.path.join(self.dir, name + ".token")) as f:
                setattr(self, name + "_token", f.read().strip())
        with open(os.path.join(self.dir, "pids")) as f:
            pids = [int(line) for line in f if line.strip()]
        # DIR/pids: the participants in the order given, then the replicas (local_cluster.c).
        self.replica_urls = cfg["replicas"]
        if tls:
            for url in self.replica_urls + list(cfg["participants"].values()):
                CA_BY_ORIGIN[url] = tls["ca"]
        self.parts = {name: LocalParticipant(self, pids[i], name, cfg["participants"][name])
                      for i, name in enumerate(participants)}
        self.replicas = [LocalProcess(self, pids[len(participants) + i],
                                      os.path.join(self.dir, "replica-%d.log" % i), url, idx=i)
                         for i, url in enumerate(self.replica_urls)]

    def write_pids(self):
        procs = list(self.parts.values()) + self.replicas
        tmp = os.path.join(self.dir, "pids.tmp")
        with open(tmp, "w") as f:
            f.write("".join("%d\n" % p.pid for p in procs))
        os.replace(tmp, os.path.join(self.dir, "pids"))

    def call(self, i, method, path, body=None, token=None, timeout=30):
        return http_call(method, self.replica_urls[i] + path, body,
                         token=token or self.client_token, timeout=timeout)

    def stop(self, remove=True):
        """`tpcctl cluster down`; remove: DIR too (its databases and logs)."""
        r = subprocess.run([TPCCTL, "cluster", "down", "--dir", self.dir], capture_output=True,
                           text=True, timeout=120)
        for p in list(self.parts.values()) + self.replicas:
            if p.proc is not None:
                try:
                    p.proc.wait(timeout=10)  # reaped: ours since a restart
                except subprocess.TimeoutExpired:
                    pass
        assert r.returncode == 0, "tpcctl cluster down: %s%s" % (r.stdout, r.stderr)
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)


__all__ = ["LocalCluster"]
