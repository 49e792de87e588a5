#!/usr/bin/python3
"""The peer: PostgreSQL's own two-phase commit between two PostgreSQL servers, with the same
transfer workload as tpcbench, so the two can be compared in one run on one machine.

Starts two PostgreSQL servers on loopback (fresh data directories on the same disk as the
cluster's, fsync on, synchronous_commit on: the defaults), loads 10,000 accounts into each, and
runs N clients, each a process of its own with one connection per server. A transfer debits an
account on server A and credits one on B inside one global transaction, through psycopg2's
two-phase commit API: tpc_begin on both, the two UPDATEs, tpc_prepare on A then B, tpc_commit on
A then B. The commit latency is the time of those four calls (the counterpart of tpcbench's
commit call); a lock not granted within --lock-timeout-ms aborts the transfer (tpc_rollback),
like the participants' lock timeout. Afterwards the totals of both servers and the absence of
prepared transactions are checked.

With --client-bin (tpcpgclient, bench/pg_client.c), the same clients run a second time as
threads of one C program over libpq, with PREPARE TRANSACTION and COMMIT PREPARED statements:
the peer without Python's cost. Each result says its "driver" (psycopg2 or libpq).

Needs Debian's postgresql and python3-psycopg2 (scripts/deps --bench installs them, and
libpq-dev for the C clients), and runs the servers as the postgres user. Prints progress to
stderr and one JSON object per client count and driver to --json (a list).

    /usr/bin/python3 bench/pg_peer.py --clients 1,8,32 --seconds 10 --warmup 2 \
        [--accounts 10000] [--label NAME] [--json FILE] [--samples-dir DIR] [--client-bin B]
"""
import argparse
import glob
import json
import multiprocessing
import os
import pwd
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import psycopg2
import psycopg2.errors

BALANCE = 1000000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin(name):
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    if not dirs:
        sys.exit("pg_peer: PostgreSQL is not installed (apt-get install postgresql)")
    return os.path.join(dirs[-1], name)


def as_postgres(args, **kw):
    return subprocess.run(["runuser", "-u", "postgres", "--"] + args, check=True,
                          stdout=subprocess.DEVNULL, **kw)


class Server:
    def __init__(self, root, name, max_clients):
        self.dir = os.path.join(root, name)
        self.port = free_port()
        as_postgres([pg_bin("initdb"), "-D", self.dir, "-U", "postgres", "--auth=trust",
                     "--no-sync"])
        with open(os.path.join(self.dir, "postgresql.conf"), "a") as f:
            f.write("listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n"
                    "max_prepared_transactions = %d\nmax_connections = %d\n"
                    "fsync = on\nsynchronous_commit = on\n"
                    % (self.port, root, max_clients + 10, max_clients + 20))
        as_postgres([pg_bin("pg_ctl"), "-D", self.dir, "-l", os.path.join(root, name + ".log"),
                     "-w", "-t", "60", "start"])

    def connect(self):
        return psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres",
                                dbname="postgres")

    def stop(self):
        as_postgres([pg_bin("pg_ctl"), "-D", self.dir, "-m", "fast", "-w", "stop"])


def usage(servers):
    """{pid: (CPU seconds, context switches)} of every process of the servers: each postmaster
    (its pid is the first line of postmaster.pid) and its children."""
    tick = os.sysconf("SC_CLK_TCK")
    roots = set()
    for s in servers:
        with open(os.path.join(s.dir, "postmaster.pid")) as f:
            roots.add(int(f.readline()))
    seen = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(pid) not in roots and int(fields[1]) not in roots:
                continue
            # A postmaster's counts include its children that ended (cutime, cstime): the
            # backends of clients that disconnected before the last snapshot.
            cpu = (int(fields[11]) + int(fields[12]) +
                   (int(fields[13]) + int(fields[14]) if int(pid) in roots else 0)) / tick
            switches = 0
            with open("/proc/%s/status" % pid) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
            seen[int(pid)] = (cpu, switches)
        except (OSError, IndexError, ValueError):
            continue  # a process that ended meanwhile
    return seen


def usage_between(before, after):
    """CPU seconds and switches spent between two usage() snapshots (a process that started
    meanwhile counts whole; the CPU of one that ended meanwhile is in its postmaster's, its
    context switches are lost: that figure is a floor)."""
    cpu = sum(c - before.get(p, (0, 0))[0] for p, (c, _) in after.items())
    # An ended process's whole CPU time is in its postmaster's now: take off its part before.
    cpu -= sum(c for p, (c, _) in before.items() if p not in after)
    switches = sum(s - before.get(p, (0, 0))[1] for p, (_, s) in after.items())
    return cpu, switches


def load(server, accounts):
    with server.connect() as c, c.cursor() as cur:
        cur.execute("CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance BIGINT NOT NULL "
                    "CHECK (balance >= 0))")
        cur.execute("INSERT INTO accounts SELECT i, %s FROM generate_series(1, %s) i",
                    (BALANCE, accounts))
    c.close()


def totals(server):
    c = server.connect()
    with c.cursor() as cur:
        cur.execute("SELECT sum(balance), count(*) FROM accounts")
        s, n = cur.fetchone()
        cur.execute("SELECT count(*) FROM pg_prepared_xacts")
        prepared = cur.fetchone()[0]
        cur.execute("SELECT wal_sync FROM pg_stat_wal")
        syncs = cur.fetchone()[0]
    c.close()
    return int(s), int(n), int(prepared), int(syncs)


def client(idx, ports, accounts, lock_timeout_ms, measure_from, end, out_q):
    """One client: transfers one after another until `end` (time.monotonic())."""
    rnd = random.Random(7919 * (idx + 1))
    conns = []
    for p in ports:
        c = psycopg2.connect(host="127.0.0.1", port=p, user="postgres", dbname="postgres")
        with c.cursor() as cur:
            cur.execute("SET lock_timeout = %s", ("%dms" % lock_timeout_ms,))
        c.commit()
        conns.append(c)
    a, b = conns
    committed = aborted = errors = 0
    commit_ms, txn_ms = [], []
    n = 0
    while True:
        t0 = time.monotonic()
        if t0 >= end:
            break
        measured = t0 >= measure_from
        n += 1
        xa = a.xid(1, "tx-%d-%d" % (idx, n), "a")
        xb = b.xid(1, "tx-%d-%d" % (idx, n), "b")
        src, dst = rnd.randint(1, accounts), rnd.randint(1, accounts)
        try:
            a.tpc_begin(xa)
            b.tpc_begin(xb)
            with a.cursor() as cur:
                cur.execute("UPDATE accounts SET balance = balance - 1 WHERE id = %s", (src,))
            with b.cursor() as cur:
                cur.execute("UPDATE accounts SET balance = balance + 1 WHERE id = %s", (dst,))
        except (psycopg2.errors.LockNotAvailable, psycopg2.errors.DeadlockDetected):
            a.tpc_rollback()
            b.tpc_rollback()
            aborted += measured
            continue
        t1 = time.monotonic()
        try:
            a.tpc_prepare()
            b.tpc_prepare()
            a.tpc_commit()
            b.tpc_commit()
        except psycopg2.Error as e:
            errors += 1
            print("pg_peer: client %d: %s" % (idx, e), file=sys.stderr)
            break
        t2 = time.monotonic()
        if measured and t2 <= end:
            committed += 1
            commit_ms.append((t2 - t1) * 1e3)
            txn_ms.append((t2 - t0) * 1e3)
    for c in conns:
        c.close()
    out_q.put((committed, aborted, errors, commit_ms, txn_ms))


def pct(v, p):
    return v[int(p * (len(v) - 1))] if v else 0.0


def stats(v):
    v.sort()
    return {"p50": pct(v, 0.5), "p95": pct(v, 0.95), "p99": pct(v, 0.99),
            "max": v[-1] if v else 0.0, "n": len(v)}


def finish(servers, clients, args, label, driver, counts, commit_ms, txn_ms, syncs, use):
    """The result of one run: counts (committed, aborted, errors), samples, WAL syncs and
    process usage over the measured window."""
    committed, aborted, errors = counts
    cpu, _ = use  # context switches: those of backends that ended are lost, so not shown
    txs = committed + aborted
    if args.samples_dir:
        with open(os.path.join(args.samples_dir, "%s.samples" % label), "w") as f:
            f.write("".join("%.4f\n" % x for x in commit_ms))
    res = {"label": label, "system": "postgresql", "driver": driver, "clients": clients,
           "participants": 2, "accounts": args.accounts, "seconds": args.seconds,
           "committed": committed, "aborted": aborted, "undecided": 0, "errors": errors,
           "tx_per_s": committed / args.seconds,
           "abort_rate": aborted / txs if txs else 0.0,
           "fsyncs_per_tx": syncs / txs if txs else 0.0,
           "server_cpu_ms_per_tx": 1e3 * cpu / txs if txs else 0.0,
           "commit_ms": stats(commit_ms), "transaction_ms": stats(txn_ms)}
    print("%s: %d clients (%s), %.0f tx/s, %.2f%% aborted, %d errors; commit ms p50 %.3f "
          "p95 %.3f p99 %.3f max %.3f; %.2f WAL fsyncs/tx, %.2f server CPU ms/tx"
          % (label, clients, driver, res["tx_per_s"], 100 * res["abort_rate"], errors,
             res["commit_ms"]["p50"], res["commit_ms"]["p95"], res["commit_ms"]["p99"],
             res["commit_ms"]["max"], res["fsyncs_per_tx"], res["server_cpu_ms_per_tx"]))
    return res


def run_c(servers, clients, args, label):
    """The same clients as threads of tpcpgclient (libpq)."""
    out = os.path.join(tempfile.mkdtemp(prefix="tpc-pgc-"), "out.json")
    start = time.monotonic()
    proc = subprocess.Popen([args.client_bin, "--port-a", str(servers[0].port),
                             "--port-b", str(servers[1].port), "--clients", str(clients),
                             "--seconds", str(args.seconds), "--warmup", str(args.warmup),
                             "--accounts", str(args.accounts),
                             "--lock-timeout-ms", str(args.lock_timeout_ms), "--json", out])
    while time.monotonic() < start + args.warmup:
        time.sleep(0.05)  # the run's clock, not a wait for a condition
    syncs0 = sum(totals(s)[3] for s in servers)
    use0 = usage(servers)
    while time.monotonic() < start + args.warmup + args.seconds:
        time.sleep(0.05)
    syncs1 = sum(totals(s)[3] for s in servers)
    use = usage_between(use0, usage(servers))
    proc.wait(timeout=120)
    with open(out) as f:
        r = json.load(f)
    shutil.rmtree(os.path.dirname(out), ignore_errors=True)
    return finish(servers, clients, args, label, "libpq",
                  (r["committed"], r["aborted"], r["errors"] + (proc.returncode != 0)),
                  r["commit_ms"], r["transaction_ms"], syncs1 - syncs0, use)


def run(servers, clients, args, label):
    start = time.monotonic()
    measure_from = start + args.warmup
    end = measure_from + args.seconds
    q = multiprocessing.Queue()
    ports = [s.port for s in servers]
    syncs0 = None
    procs = [multiprocessing.Process(target=client, args=(i, ports, args.accounts,
                                                          args.lock_timeout_ms, measure_from,
                                                          end, q))
             for i in range(clients)]
    for p in procs:
        p.start()
    while time.monotonic() < measure_from:
        time.sleep(0.05)  # the run's clock, not a wait for a condition
    syncs0 = sum(totals(s)[3] for s in servers)
    use0 = usage(servers)
    while time.monotonic() < end:
        time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        print("  %-28s %5.1f s" % (label, time.monotonic() - start), file=sys.stderr)
    syncs1 = sum(totals(s)[3] for s in servers)
    cpu, switches = usage_between(use0, usage(servers))
    results = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    committed = sum(r[0] for r in results)
    aborted = sum(r[1] for r in results)
    errors = sum(r[2] for r in results)
    commit_ms = [x for r in results for x in r[3]]
    txn_ms = [x for r in results for x in r[4]]
    return finish(servers, clients, args, label, "psycopg2", (committed, aborted, errors),
                  commit_ms, txn_ms, syncs1 - syncs0, (cpu, switches))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--accounts", type=int, default=10000)
    ap.add_argument("--lock-timeout-ms", type=int, default=300)
    ap.add_argument("--label", default="postgresql")
    ap.add_argument("--json")
    ap.add_argument("--samples-dir")
    ap.add_argument("--dir", help="where the data directories go (default: a new one in /tmp)")
    ap.add_argument("--client-bin", help="tpcpgclient: also run the clients in C over libpq")
    args = ap.parse_args()
    counts = [int(x) for x in args.clients.split(",")]
    root = tempfile.mkdtemp(prefix="tpc-pg-", dir=args.dir)
    pw = pwd.getpwnam("postgres")
    os.chown(root, pw.pw_uid, pw.pw_gid)
    servers, out, ok = [], [], True
    try:
        for name in ("pg-a", "pg-b"):
            servers.append(Server(root, name, max(counts)))
        for s in servers:
            load(s, args.accounts)
        for n in counts:
            out.append(run(servers, n, args, "%s-%dc" % (args.label, n)))
            if args.client_bin:
                out.append(run_c(servers, n, args, "%s-libpq-%dc" % (args.label, n)))
        for s in servers:
            total, rows, prepared, _ = totals(s)
            # Each transfer moves 1 from A to B: A's loss is B's gain, summed over both.
            out[-1].setdefault("check", []).append({"rows": rows, "total": total,
                                                    "prepared_left": prepared})
        grand = sum(c["total"] for c in out[-1]["check"])
        ok = grand == 2 * args.accounts * BALANCE and all(
            c["prepared_left"] == 0 for c in out[-1]["check"])
        for r in out:
            r["totals_ok"] = ok
        print("postgresql totals: %d (expected %d), prepared left %s: %s"
              % (grand, 2 * args.accounts * BALANCE,
                 [c["prepared_left"] for c in out[-1]["check"]], "OK" if ok else "WRONG"))
    finally:
        for s in servers:
            try:
                s.stop()
            except subprocess.CalledProcessError:
                ok = False
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
