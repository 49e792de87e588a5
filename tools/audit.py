#!/usr/bin/env python3
"""Audits the bank databases of a live or stopped cluster (the demo's schema: accounts, and
transfers(id, amount) written at both banks by every transfer).

    tools/audit.py BANK_A.db BANK_B.db [--total N] [--committed FILE] [--settle SECONDS]

Checks: every transfer is in both databases or in neither; debit and credit of each match;
the total balance is N (when given); every transfer id listed in FILE (one per line: the
commits clients were told about) is in both; no branch is left prepared (in doubt), waiting
up to --settle seconds (default 0) for a live cluster to resolve them; and no operator's
heuristic decision contradicts the chosen outcome (heuristic mixed; pending ones are listed). Reads the files
read-only. Exit status 0 when every check passes, 1 otherwise, 2 on a usage error.
"""
import argparse
import os
import sqlite3
import sys
import time


def rows(path, sql):
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def prepared(path):
    return rows(path, "SELECT count(*) FROM tpc_prepared")[0][0]


def heuristics(path):
    """An operator's heuristic decisions: (txid, decision, chosen outcome or None)."""
    try:
        return rows(path, "SELECT txid, substr(outcome, 11), learned FROM tpc_outcome "
                          "WHERE outcome LIKE 'heuristic%' ORDER BY txid")
    except sqlite3.OperationalError:
        return []  # a database made before heuristic decisions existed holds none


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bank_a")
    ap.add_argument("bank_b")
    ap.add_argument("--total", type=int, help="the total balance there must be")
    ap.add_argument("--committed", help="file of transfer ids clients were told committed")
    ap.add_argument("--settle", type=float, default=0.0,
                    help="seconds to wait for in-doubt branches of a live cluster")
    args = ap.parse_args()
    end = time.monotonic() + args.settle
    while (prepared(args.bank_a) or prepared(args.bank_b)) and time.monotonic() < end:
        time.sleep(0.1)  # a live cluster resolving its in-doubt branches; bounded by --settle
    ta = dict(rows(args.bank_a, "SELECT id, amount FROM transfers"))
    tb = dict(rows(args.bank_b, "SELECT id, amount FROM transfers"))
    both, half = set(ta) & set(tb), set(ta) ^ set(tb)
    total = sum(r[0] for r in rows(args.bank_a, "SELECT balance FROM accounts")) + \
        sum(r[0] for r in rows(args.bank_b, "SELECT balance FROM accounts"))
    checks = [
        ("transfers in both databases or in neither",
         "%d in both, %d in one only%s" % (len(both), len(half),
                                           (": " + ", ".join(sorted(half)[:5])) if half else ""),
         not half),
        ("debit and credit of each transfer match", "%d checked" % len(both),
         all(ta[t] == -tb[t] for t in both)),
        ("nothing left prepared (in doubt)", "%d at %s, %d at %s" % (
            prepared(args.bank_a), os.path.basename(args.bank_a), prepared(args.bank_b),
            os.path.basename(args.bank_b)),
         not prepared(args.bank_a) and not prepared(args.bank_b)),
        ("total balance", str(total) if args.total is None else "%d (want %d)" % (total, args.total),
         None if args.total is None else total == args.total),
    ]
    heur = [(os.path.basename(p), h) for p in (args.bank_a, args.bank_b) for h in heuristics(p)]
    mixed = ["%s at %s" % (h[0], db) for db, h in heur if h[2] and h[2] != h[1]]
    pending = [h for _, h in heur if not h[2]]
    checks.append(("no heuristic decision contradicts the outcome",
                   "%d heuristic, %d pending, %d mixed%s" % (
                       len(heur), len(pending), len(mixed),
                       (": " + ", ".join(mixed[:5])) if mixed else ""), not mixed))
    if args.committed:
        with open(args.committed) as f:
            told = [line.strip() for line in f if line.strip()]
        missing = [t for t in told if t not in both]
        checks.append(("every commit a client was told is in both",
                       "%d told, %d missing" % (len(told), len(missing)), not missing))
    for name, value, ok in checks:
        print("  %-45s %-40s %s" % (name, value, "" if ok is None else "ok" if ok else "FAILED"))
    return 0 if all(ok is not False for _, _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
