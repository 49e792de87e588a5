"""The fault suite: real clusters (3 replicas, 2 bank databases) under concurrent transfers.

One scenario per failpoint: the named process is restarted armed, crashes at that point,
is restarted clean, transfers go on, and the audit must pass. Then a randomized soak: short
runs, each with a seeded schedule of kills, restarts, pauses (SIGSTOP/SIGCONT) and network
partitions (/v1/admin/faults) of random processes, each followed by the audit. A failing run prints its seed;
TPC_SOAK_SEED=<seed> replays it, TPC_SOAK_RUNS=<n> runs a longer soak.
"""
import os
import random
import signal
import sys
import time
import unittest
import zlib


from tpclaunch.bank import SCHEMA, Workload, audit, total
from tpclaunch import Cluster, wait_until

TOTALS = {"runs": 0, "transfers": 0, "recovered": 0}


def report(c, work, before):
    checks = audit(c, work, before)
    TOTALS["runs"] += 1
    TOTALS["transfers"] += len(work.committed)
    TOTALS["recovered"] += int([v for n, v, ok in checks if "other than their leader" in n][0])
    failed = ["%s: %s" % (n, v) for n, v, ok in checks if ok is False]
    return failed


def restart_armed(proc, failpoint):
    """Restarts a replica or participant with the failpoint armed."""
    proc.kill(signal.SIGKILL)
    if hasattr(proc, "failpoints"):
        proc.failpoints = failpoint
        proc.start()
    else:
        proc.start(failpoints=failpoint)


def wait_crash(proc, what):
    wait_until(lambda: proc.proc.poll() is not None, timeout=60, what=what + " to crash")
    proc.log.close()


class FailpointTest(unittest.TestCase):
    def scenario(self, target, failpoint):
        c = Cluster(n_replicas=3, schema=SCHEMA, timeouts={"commit": 5000, "stale": 1000})
        work = None
        try:
            proc = c.parts[target] if target.startswith("bank") else c.replicas[int(target)]
            before = total(c)
            work = Workload(c, clients=3, seed=zlib.crc32(failpoint.encode())).start()
            wait_until(lambda: len(work.committed) >= 20, timeout=30, what="transfers")
            restart_armed(proc, failpoint)
            wait_crash(proc, "%s at %s" % (target, failpoint))
            if hasattr(proc, "failpoints"):
                proc.failpoints = None
                proc.start()
            else:
                proc.start()
            done = len(work.committed)
            wait_until(lambda: len(work.committed) >= done + 20, timeout=60,
                       what="transfers after the restart")
            work.stop()
            failed = report(c, work, before)
            self.assertEqual(failed, [], "%s at %s" % (target, failpoint))
        finally:
            if work:
                work.stop()
            c.stop()

    def test_participant_after_prepare(self):
        self.scenario("bank-a", "participant-after-prepare")

    def test_participant_before_commit(self):
        self.scenario("bank-b", "participant-before-commit")

    def test_participant_after_commit(self):
        self.scenario("bank-a", "participant-after-commit")

    def test_acceptor_after_persist(self):
        self.scenario("2", "acceptor-after-persist")

    def test_leader_after_some_prepares(self):
        self.scenario("0", "leader-after-some-prepares")

    def test_leader_after_decide(self):
        self.scenario("0", "leader-after-decide")


class SoakTest(unittest.TestCase):
    def run_one(self, seed):
        rng = random.Random(seed)
        c = Cluster(n_replicas=3, schema=SCHEMA, timeouts={"commit": 3000, "stale": 1000})
        paused, work = [], None
        try:
            procs = list(c.replicas) + list(c.parts.values())
            before = total(c)
            work = Workload(c, clients=3, seed=seed).start()
            end = time.monotonic() + 6
            while time.monotonic() < end:
                time.sleep(rng.uniform(0.2, 0.8))  # the schedule's own clock
                p = rng.choice(procs)
                if p.proc.poll() is not None:
                    continue
                action = rng.random()
                if action < 0.3:
                    try:
                        c.isolate(p.url)  # a partition: p and everyone else stop hearing
                        time.sleep(rng.uniform(0.2, 1.5))  # each other for a while
                    except (OSError, AssertionError):
                        pass  # a process restarting meanwhile; heal below anyway
                    c.heal()
                elif action < 0.65:
                    p.kill(signal.SIGKILL)
                    time.sleep(rng.uniform(0.0, 0.8))  # down for a while, then back
                    if hasattr(p, "failpoints"):
                        p.failpoints = None
                    p.start()
                else:
                    p.proc.send_signal(signal.SIGSTOP)
                    paused.append(p)
                    time.sleep(rng.uniform(0.1, 1.0))  # paused for a while
                    p.proc.send_signal(signal.SIGCONT)
                    paused.remove(p)
            work.stop()
            return report(c, work, before)
        finally:
            if work:
                work.stop()
            for p in paused:
                p.proc.send_signal(signal.SIGCONT)
            c.stop()

    def test_soak(self):
        if os.environ.get("TPC_SOAK_SEED"):
            seeds = [int(os.environ["TPC_SOAK_SEED"])]
        else:
            first = int(os.environ.get("TPC_SOAK_FIRST", "1"))
            seeds = range(first, first + int(os.environ.get("TPC_SOAK_RUNS", "4")))
        for seed in seeds:
            failed = self.run_one(seed)
            self.assertEqual(failed, [], "soak seed %d failed; replay: PYTHONPATH=tools TPC_SOAK_SEED=%d %s %s"
                             % (seed, seed, sys.executable, os.path.abspath(__file__)))


def tearDownModule():
    print("\nfault suite: %d audited runs, %d committed transfers, %d transactions recovered "
          "by a replica other than their leader" % (TOTALS["runs"], TOTALS["transfers"],
                                                    TOTALS["recovered"]))
    assert TOTALS["runs"] == 0 or TOTALS["recovered"] > 0, "the suite never reached a recovery"


if __name__ == "__main__":
    unittest.main()
