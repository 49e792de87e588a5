"""TLS on every link (issue: TLS, fuzzing, connection limits): a cluster whose replicas and
participants serve HTTPS only and verify each other against a development CA
(scripts/dev-certs). A transfer commits through it; plain HTTP gets no answer on any port; a
client without the CA, or a peer whose certificate another CA signed, gets a clear error and
nothing is decided wrongly."""
import json
import os
import signal
import ssl
import subprocess
import unittest
import urllib.error
import urllib.request

from tpclaunch import Cluster, dev_certs
from tpclaunch.cluster import COORDINATOR, CLIENT_TOKEN

TPCCTL = os.environ.get("TPC_TPCCTL_BIN")


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(n_replicas=3, tls=True)

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def transfer(self, amount):
        c = self.c
        tx = c.begin()
        for name, sign in (("bank-a", -1), ("bank-b", 1)):
            code, r = c.exec(0, tx, name, "UPDATE accounts SET balance = balance + ? WHERE id = 1",
                             [sign * amount])
            self.assertEqual(code, 200, r)
        code, r = c.commit(0, tx, wait="applied")
        self.assertEqual((code, r.get("outcome")), (200, "committed"), r)
        return tx

    def test_a_transfer_commits_over_tls_everywhere(self):
        before = self.c.balances()
        self.transfer(7)
        after = self.c.balances()
        self.assertEqual(after["bank-a"][1], before["bank-a"][1] - 7)
        self.assertEqual(after["bank-b"][1], before["bank-b"][1] + 7)
        for url in self.c.urls():
            self.assertTrue(url.startswith("https://"), url)
        for i in range(3):
            self.assertIn("(HTTPS)", self.c.replicas[i].read_log())

    def test_plain_http_gets_no_answer(self):
        for url in self.c.urls():
            plain = url.replace("https://", "http://")
            with self.assertRaises((ConnectionError, urllib.error.URLError, OSError), msg=plain):
                urllib.request.urlopen(plain + "/health", timeout=5).read()
        self.transfer(1)  # and the servers go on serving

    def test_a_client_without_the_ca_is_refused_clearly(self):
        url = self.c.replica_urls[0] + "/health"
        with self.assertRaises(urllib.error.URLError) as e:
            urllib.request.urlopen(url, timeout=5, context=ssl.create_default_context())
        self.assertIsInstance(e.exception.reason, ssl.SSLCertVerificationError)
        if TPCCTL:
            env = dict(os.environ, TPC_URL=self.c.replica_urls[0], TPC_CLIENT_TOKEN=CLIENT_TOKEN)
            env.pop("TPC_CA", None)
            r = subprocess.run([TPCCTL, "begin"], env=env, capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 8, r)
            self.assertIn("certificate", r.stderr)
            r = subprocess.run([TPCCTL, "--ca", self.c.tls["ca"], "begin"], env=env,
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r)
            self.assertTrue(r.stdout.strip())

    def test_a_peer_signed_by_another_ca_is_refused_and_nothing_is_decided_wrongly(self):
        c, b = self.c, self.c.parts["bank-b"]
        before = c.balances()
        other = dev_certs(os.path.join(c.dir, "other-ca"))
        b.kill(signal.SIGTERM)
        b.tls = other
        b.start()
        try:
            tx = c.begin()
            code, r = c.exec(0, tx, "bank-a", "UPDATE accounts SET balance = balance - 3 "
                                              "WHERE id = 1")
            self.assertEqual(code, 200, r)
            code, r = c.exec(0, tx, "bank-b", "UPDATE accounts SET balance = balance + 3 "
                                              "WHERE id = 1")
            self.assertEqual((code, r["error"]["code"]), (502, "participant_unavailable"), r)
            self.assertIn("certificate", r["error"]["message"])
            # ... and the replica's log says why, at the default level.
            self.assertIn("TLS failed calling " + b.url, c.replicas[0].read_log())
            code, r = c.abort(0, tx)
            self.assertEqual(code, 200, r)
        finally:
            b.kill(signal.SIGTERM)
            b.tls = c.tls
            b.start()
        self.assertEqual(c.balances(), before)
        self.transfer(2)

    def test_the_cluster_file_must_agree_with_tls(self):
        with open(self.c.config) as f:
            cfg = json.load(f)
        cfg["replicas"][1] = cfg["replicas"][1].replace("https://", "http://")
        bad = os.path.join(self.c.dir, "bad.json")
        with open(bad, "w") as f:
            json.dump(cfg, f)
        r = subprocess.run([COORDINATOR, "--config", bad, "--id", "0"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("https://", r.stderr)


if __name__ == "__main__":
    unittest.main()
