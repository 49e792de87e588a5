"""tpcctl against a real cluster (3 replicas, 2 participants): readable output, --json, and
the exit codes scripts rely on."""
import json
import os
import signal
import subprocess
import unittest

from tpclaunch import Cluster, wait_until
from tpclaunch import procfs
from tpclaunch.cluster import dev_certs

TPCCTL = os.environ.get("TPC_TPCCTL_BIN", "tpcctl")


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(n_replicas=3)
        cls.token = os.path.join(cls.c.dir, "client.token")

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def run_cli(self, *args, replica=0, token=True):
        cmd = [TPCCTL, "--url", self.c.replica_urls[replica]]
        if token:
            cmd += ["--token-file", self.token]
        p = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout, p.stderr

    def test_transfer(self):
        code, out, _ = self.run_cli("begin")
        self.assertEqual(code, 0)
        tx = out.strip()
        # Numbered, the same command twice runs once (a retry after a lost answer).
        for _ in range(2):
            code, out, err = self.run_cli("exec", "--seq", "1", tx, "bank-a",
                                          "UPDATE accounts SET balance = balance - ? WHERE id = ?",
                                          "10", "1")
            self.assertEqual(code, 0, err)
            self.assertIn("1 row(s) changed", out)
        self.assertEqual(self.run_cli("exec", "--seq", "x", tx, "bank-a", "SELECT 1")[0], 2)
        code, out, _ = self.run_cli("exec", tx, "bank-b",
                                    "UPDATE accounts SET balance = balance + 10 WHERE id = 1")
        self.assertEqual(code, 0)
        code, out, _ = self.run_cli("exec", tx, "bank-a", "SELECT id, balance FROM accounts "
                                    "WHERE id = ?", "1")
        self.assertEqual(out.splitlines()[:2], ["id\tbalance", "1\t90"])
        code, out, _ = self.run_cli("commit", tx)
        self.assertEqual(code, 0)
        self.assertEqual(out.split("\t")[:2], [tx, "committed"])
        code, out, _ = self.run_cli("--json", "status", tx)
        self.assertEqual(json.loads(out)["state"], "committed")
        # Another replica learns it from the leader a moment after the commit answered.
        wait_until(lambda: json.loads(self.run_cli("--json", "status", tx, replica=2)[1] or "{}")
                   .get("state") == "committed", timeout=10, what="replica 2 to learn the outcome")
        code, out, _ = self.run_cli("list", "committed")
        self.assertIn(tx, out)

    def test_token_file_readable_by_others_is_warned_about(self):
        loose = os.path.join(self.c.dir, "loose.token")
        with open(self.token) as f, open(loose, "w") as g:
            g.write(f.read())
        os.chmod(loose, 0o644)
        cmd = [TPCCTL, "--url", self.c.replica_urls[0], "--token-file", loose, "list"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("can be read by other users", p.stderr)
        p = subprocess.run(cmd[:4] + [self.token, "list"], capture_output=True, text=True,
                           timeout=60)
        self.assertNotIn("can be read by other users", p.stderr)

    def test_exit_codes(self):
        self.assertEqual(self.run_cli()[0], 2)
        self.assertEqual(self.run_cli("commit")[0], 2)
        self.assertEqual(self.run_cli("frobnicate", "x")[0], 2)
        self.assertEqual(self.run_cli("status", "no-such-tx")[0], 4)
        # A txid goes into a URL's path: one that is not an id is refused before any request
        # ("x/abort?" would abort x, not answer x's status).
        for args in (("status", "x/abort?"), ("commit", "a b"), ("begin", "--txid", "x/y"),
                     ("exec", "x%2F", "bank-a", "SELECT 1"), ("resolve", "x?y"),
                     ("resolve", "--heuristic", "abort", "--participant",
                      self.c.parts["bank-a"].url, "t1/commit?")):
            code, _, err = self.run_cli(*args)
            self.assertEqual(code, 2, args)
            self.assertIn("is not a transaction id", err)
        self.assertEqual(self.run_cli("status", "x", token=False)[0], 7)
        self.assertEqual(self.run_cli("list", "weird")[0], 6)
        tx = self.run_cli("begin")[1].strip()
        self.assertEqual(self.run_cli("exec", tx, "bank-a", "DROP TABLE accounts")[0], 6)
        self.assertEqual(self.run_cli("exec", tx, "bank-a",
                                      "UPDATE accounts SET balance = 0 WHERE id = 3")[0], 0)
        other = self.run_cli("begin")[1].strip()
        code, _, err = self.run_cli("exec", other, "bank-a",
                                    "UPDATE accounts SET balance = 1 WHERE id = 3")
        self.assertEqual(code, 3, err)  # 409: the row is locked by tx
        self.assertIn("lock", err)
        self.assertEqual(self.run_cli("abort", tx)[0], 0)
        # A commit that aborts: a participant voted aborted (its branch is gone).
        tx = self.run_cli("begin")[1].strip()
        self.run_cli("exec", tx, "bank-b", "UPDATE accounts SET balance = 5 WHERE id = 2")
        self.c.parts["bank-b"].kill(signal.SIGKILL)
        self.c.parts["bank-b"].log.close()
        self.c.parts["bank-b"].start()
        code, out, _ = self.run_cli("commit", tx)
        self.assertEqual(code, 1)
        self.assertIn("aborted", out)
        code, out, _ = self.run_cli("health", *self.c.replica_urls)
        self.assertEqual(code, 0)
        self.assertEqual(out.count("\tok\t"), 3)
        self.assertEqual(self.run_cli("health", "http://127.0.0.1:1")[0], 8)


class LocalClusterTest(unittest.TestCase):
    """tpcctl cluster up / down: a whole cluster on free loopback ports in one command."""

    def setUp(self):
        import tempfile
        self.dir = os.path.join(tempfile.mkdtemp(prefix="tpc-lc-"), "c")
        self.up = False

    def tearDown(self):
        if self.up:  # a failed test still stops what it started
            subprocess.run([TPCCTL, "cluster", "down", "--dir", self.dir], timeout=60,
                           capture_output=True)
        import shutil
        shutil.rmtree(os.path.dirname(self.dir), ignore_errors=True)

    def cli(self, *args, env=None):
        p = subprocess.run([TPCCTL] + list(args), capture_output=True, text=True, timeout=60,
                           env=env)
        return p.returncode, p.stdout, p.stderr

    def test_up_transfer_down(self):
        schema = os.path.join(os.path.dirname(self.dir), "schema.sql")
        with open(schema, "w") as f:
            f.write("CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);"
                    "INSERT INTO accounts VALUES (1, 50);")
        rc, out, err = self.cli("cluster", "up", "--dir", self.dir, "--replicas", "3",
                                "--participants", "east,west", "--schema", schema)
        self.up = rc == 0
        self.assertEqual(rc, 0, err)
        self.assertIn("3 replica(s), 2 participant(s)", out)
        url = out.split("export TPC_URL=")[1].split()[0]
        with open(os.path.join(self.dir, "client.token")) as f:
            token = f.read().strip()
        env = dict(os.environ, TPC_URL=url, TPC_CLIENT_TOKEN=token)
        # A second up in the same directory is refused; the cluster is untouched.
        rc, _, err = self.cli("cluster", "up", "--dir", self.dir)
        self.assertEqual(rc, 2, err)
        self.assertIn("already", err)
        # Its pids file lost while it runs: not taken for a stopped one (its ports are in use).
        pids_file = os.path.join(self.dir, "pids")
        os.rename(pids_file, pids_file + ".kept")
        try:
            rc, _, err = self.cli("cluster", "up", "--dir", self.dir)
        finally:
            os.rename(pids_file + ".kept", pids_file)
        self.assertEqual(rc, 2, err)
        self.assertIn("is in use", err)
        rc, tx, err = self.cli("begin", env=env)
        self.assertEqual(rc, 0, err)
        tx = tx.strip()
        for name, sql in (("east", "UPDATE accounts SET balance = balance - 5 WHERE id = 1"),
                          ("west", "UPDATE accounts SET balance = balance + 5 WHERE id = 1")):
            rc, _, err = self.cli("exec", tx, name, sql, env=env)
            self.assertEqual(rc, 0, err)
        rc, out, err = self.cli("commit", tx, env=env)
        self.assertEqual(rc, 0, err)
        self.assertIn("committed", out)
        with open(os.path.join(self.dir, "pids")) as f:
            pids = [int(x) for x in f.read().split()]
        self.assertEqual(len(pids), 5)
        rc, out, err = self.cli("cluster", "down", "--dir", self.dir)
        self.assertEqual(rc, 0, err)
        self.up = False
        self.assertIn("5 process(es)", out)
        for pid in pids:  # gone (or a zombie its parent has yet to reap)
            fields = procfs.stat(pid)
            self.assertTrue(fields is None or fields[0] in "ZX", pid)
        # Up again in the same DIR: the same cluster, its data and its decisions as they were
        # (options for a new cluster are refused there).
        rc, _, err = self.cli("cluster", "up", "--dir", self.dir, "--replicas", "1")
        self.assertEqual(rc, 2, err)
        self.assertIn("stopped cluster", err)
        rc, out, err = self.cli("cluster", "up", "--dir", self.dir)
        self.up = rc == 0
        self.assertEqual(rc, 0, err)
        self.assertIn("started again with its data", out)
        self.assertEqual(out.split("export TPC_URL=")[1].split()[0], url)
        rc, out, err = self.cli("status", tx, env=env)
        self.assertEqual((rc, out.split()[1]), (0, "committed"), err)
        rc, tx2, err = self.cli("begin", env=env)
        rc, out, err = self.cli("exec", tx2.strip(), "west",
                                "SELECT balance FROM accounts WHERE id = 1", env=env)
        self.assertEqual((rc, out.split()[:2]), (0, ["balance", "55"]), err)
        rc, out, err = self.cli("cluster", "down", "--dir", self.dir)
        self.assertEqual(rc, 0, err)
        self.up = False
        rc, _, err = self.cli("cluster", "down", "--dir", self.dir)
        self.assertEqual(rc, 4, err)

    def test_a_failed_up_leaves_no_stopped_cluster(self):
        """A new cluster that could not start is not taken for a stopped one later."""
        rc, _, err = self.cli("cluster", "up", "--dir", self.dir,
                              env=dict(os.environ, TPC_COORDINATOR_BIN="/bin/false"))
        self.assertEqual(rc, 9, err)
        self.assertIn("--init failed", err)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "cluster.json")))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "pids")))
        rc, _, err = self.cli("cluster", "up", "--dir", self.dir)
        self.assertEqual(rc, 2, err)
        self.assertIn("start in an empty directory", err)

    def test_up_with_tls(self):
        """--tls CERTDIR: HTTPS on every link, verified against CERTDIR/ca.pem."""
        certs = os.path.join(os.path.dirname(self.dir), "certs")
        rc, _, err = self.cli("cluster", "up", "--dir", self.dir, "--tls", certs)
        self.assertEqual(rc, 2, err)  # no certificates yet: refused, and said how to make them
        self.assertIn("scripts/dev-certs", err)
        self.assertFalse(os.path.exists(self.dir))
        dev_certs(certs)
        rc, out, err = self.cli("cluster", "up", "--dir", self.dir, "--replicas", "1",
                                "--tls", certs)
        self.up = rc == 0
        self.assertEqual(rc, 0, err)
        env_line = out.strip().splitlines()[-1]
        url = env_line.split("TPC_URL=")[1].split()[0]
        self.assertTrue(url.startswith("https://127.0.0.1:"), url)
        self.assertIn("TPC_CA=" + os.path.join(os.path.realpath(certs), "ca.pem"), env_line)
        with open(os.path.join(self.dir, "client.token")) as f:
            token = f.read().strip()
        env = dict(os.environ, TPC_URL=url, TPC_CLIENT_TOKEN=token,
                   TPC_CA=os.path.join(certs, "ca.pem"))
        rc, tx, err = self.cli("begin", env=env)
        self.assertEqual(rc, 0, err)
        tx = tx.strip()
        for name, amount in (("bank-a", -5), ("bank-b", 5)):
            rc, _, err = self.cli("exec", tx, name,
                                  "UPDATE accounts SET balance = balance + ? WHERE id = 1",
                                  str(amount), env=env)
            self.assertEqual(rc, 0, err)
        rc, out, err = self.cli("commit", tx, env=env)
        self.assertEqual((rc, out.split()[1]), (0, "committed"), err)
        # Without the CA the replica's certificate is not trusted; plain HTTP is not served.
        rc, _, err = self.cli("status", tx, env=dict(env, TPC_CA=""))
        self.assertEqual(rc, 8, err)
        rc, _, err = self.cli("status", tx, env=dict(env, TPC_URL="http" + url[5:]))
        self.assertEqual(rc, 8, err)
        rc, out, err = self.cli("cluster", "down", "--dir", self.dir)
        self.assertEqual(rc, 0, err)
        self.up = False
        self.assertIn("3 process(es)", out)


if __name__ == "__main__":
    unittest.main()
