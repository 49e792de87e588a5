"""Servers that cannot be starved (issue 15): a replica and a participant each hold more than a
thousand silent connections and a client trickling its headers, and still serve everybody
else at once; the idle ones are closed after the idle timeout (http-api.md, Conventions)."""
import resource
import socket
import time
import unittest

from tpclaunch import Cluster, wait_until

SILENT = 1200  # above libmicrohttpd's default limit (about 1020), below HTTP_MAX_CONNECTIONS


def hold(url, n):
    host, port = url.split("//")[1].split(":")
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, int(port)), timeout=5)
        socks.append(s)
    return socks


class LimitsTest(unittest.TestCase):
    def setUp(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 3 * SILENT + 256
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
        self.c = Cluster(n_replicas=1)
        self.socks = []

    def tearDown(self):
        for s in self.socks:
            s.close()
        self.c.stop()

    def test_silent_and_trickling_clients_starve_nobody(self):
        a = self.c.parts["bank-a"]
        self.socks += hold(self.c.replica_urls[0], SILENT)
        self.socks += hold(a.url, SILENT)
        # One client sends its request line and headers a byte at a time.
        slow = hold(self.c.replica_urls[0], 1)[0]
        self.socks.append(slow)
        slow.sendall(b"POST /v1/transactions HTTP/1.1\r\nHost: x\r\n")
        # Everybody else is served at once: a transfer through the replica and both
        # participants, and each process's health.
        started = time.monotonic()
        tx = self.c.begin(0)
        for p, sign in (("bank-a", -1), ("bank-b", 1)):
            code, r = self.c.exec(0, tx, p, "UPDATE accounts SET balance = balance + ? WHERE id = 1",
                                  [sign * 3])
            self.assertEqual(code, 200, r)
        slow.sendall(b"X")
        code, r = self.c.commit(0, tx)
        self.assertEqual((code, r.get("outcome")), (200, "committed"), r)
        self.assertEqual(a.call("GET", "/health")[0], 200)
        self.assertLess(time.monotonic() - started, 5.0)
        # The silent ones are closed once idle for the timeout: a read sees the end.
        probe = self.socks[0]
        probe.settimeout(45)
        self.assertEqual(probe.recv(1), b"")


if __name__ == "__main__":
    unittest.main()
