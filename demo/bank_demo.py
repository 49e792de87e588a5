#!/usr/bin/env python3
"""The demo: a cross-database atomic commit that survives crashes.

Starts 3 coordinator replicas and 2 bank participants (SQLite files) on loopback with
`tpcctl cluster up` (stopped with `tpcctl cluster down`), runs
concurrent transfers between the banks through the REST API, kills the leading replica in
the middle of a commit and a participant right after it voted (failpoints), restarts both,
and audits: the total is conserved, every transfer is in both databases or in neither, every
commit the clients were told about is there, and nothing is left prepared.
With --tls every link is HTTPS, verified against a development CA (scripts/dev-certs).
Exit status 0 when the audit passes, 1 when it does not.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
os.environ.setdefault("TPC_PARTICIPANT_BIN", os.path.join(ROOT, "build/participant/participant"))
os.environ.setdefault("TPC_COORDINATOR_BIN", os.path.join(ROOT, "build/coordinator/coordinator"))
os.environ.setdefault("TPC_TPCCTL_BIN", os.path.join(ROOT, "build/cli/tpcctl"))

from tpclaunch.cluster import dev_certs  # noqa: E402
from tpclaunch.local import LocalCluster  # noqa: E402

from tpclaunch.bank import ACCOUNTS, BALANCE, SCHEMA, Workload, audit, print_audit, total  # noqa: E402

CLIENTS = 4


def say(msg):
    print("[%5.1fs] %s" % (time.monotonic() - T0, msg), flush=True)


def main():
    global T0
    T0 = time.monotonic()
    tls = "--tls" in sys.argv[1:]
    print("== Paxos Commit: two bank databases, one atomic transfer at a time ==")
    folder = tempfile.mkdtemp(prefix="tpc-demo-")
    c = LocalCluster(folder, SCHEMA,
                     tls=dev_certs(os.path.join(folder, "certs")) if tls else None)
    work = None
    try:
        a, b = c.parts["bank-a"], c.parts["bank-b"]
        say("started 3 coordinator replicas (%s) and 2 participants (bank-a, bank-b), "
            "%d accounts of %d each per bank%s" % (
                ", ".join(c.replica_urls), ACCOUNTS, BALANCE,
                ", with `tpcctl cluster up --dir %s%s`; the dashboard is at %s/ui" % (
                    c.dir, " --tls %s" % os.path.dirname(c.tls["ca"]) if tls else "",
                    c.replica_urls[0])))
        if tls:
            say("every link is HTTPS: each process serves TLS only and verifies its peers "
                "against the development CA %s" % c.tls["ca"])
        before = total(c)
        work = Workload(c, clients=CLIENTS).start()
        say("%d clients are transferring money between the banks through random replicas"
            % CLIENTS)
        time.sleep(3)  # the demo's script: let transfers run, then cut in
        say("arming replica 0 to crash right after it decides a transaction, before it "
            "tells anyone")
        c.replicas[0].kill(signal.SIGKILL)
        c.replicas[0].start(failpoints="leader-after-decide")
        c.replicas[0].wait_exit(timeout=60)
        say("replica 0 crashed mid-commit (its participants were prepared, nobody told); the "
            "other replicas take over")
        time.sleep(2)  # the demo's script: show it keeps going with a replica down
        c.replicas[0].start()
        say("replica 0 restarted")
        say("arming bank-b to crash when it is told to commit (after it voted prepared)")
        b.kill(signal.SIGKILL)
        b.failpoints = "participant-before-commit"
        b.start()
        b.wait_exit(timeout=60)
        say("bank-b crashed holding prepared transactions; restarting it, it asks the "
            "replicas for their outcome")
        b.failpoints = None
        b.start()
        time.sleep(4)  # the demo's script: transfers continue after the restarts
        work.stop()
        say("transfers stopped: %d committed, %d aborted, %d whose client got no answer"
            % (len(work.committed), work.aborted, len(work.undecided)))
        print("\n== audit ==")
        good = print_audit(audit(c, work, before))
        # The same checks by the standalone auditor, which anyone can run on the files.
        told = os.path.join(c.dir, "committed.txt")
        with open(told, "w") as f:
            f.write("\n".join(work.committed) + "\n")
        print("\n== tools/audit.py on the database files ==", flush=True)
        good = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "audit.py"), a.db, b.db,
                               "--total", str(before), "--committed", told]).returncode == 0 and good
        print("\n%s (%.0f s)" % ("All-or-nothing held across both databases through both crashes."
                                 if good else "AUDIT FAILED", time.monotonic() - T0))
        return 0 if good else 1
    finally:
        if work:
            work.stop()
        c.stop()


if __name__ == "__main__":
    sys.exit(main())
