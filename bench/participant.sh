#!/usr/bin/env bash
# Benchmark of one participant alone (no replicas): exec + prepare + commit per
# transaction, with 1 and 16 concurrent branches on disjoint rows; prints
# transactions/s, step latencies and fsyncs per transaction. Then the same for an
# exec over UNIQUE and FOREIGN KEY constraints (workload shop: an email changed,
# an order added) and over twin tables without them (shop-plain): the cost of
# the constraints' locks (http-api.md, "Isolation"); ROUNDS times, alternating, since
# one run differs from the next by up to a third on a shared machine.
#   bench/participant.sh [seconds-per-run] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-5}"
rounds="${2:-1}"
scripts/deps >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

dir=$(mktemp -d /tmp/tpc-bench.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
{
  echo "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);"
  for i in $(seq 1 256); do echo "INSERT INTO accounts VALUES ($i, 0);"; done
  for t in "" _plain; do
    if [ -z "$t" ]; then u="UNIQUE"; r="REFERENCES customers(id)"; else u=""; r=""; fi
    echo "CREATE TABLE customers$t(id INTEGER PRIMARY KEY, email TEXT NOT NULL $u);"
    echo "CREATE TABLE orders$t(id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL $r,"
    echo "                      ref TEXT NOT NULL $u);"
    [ -z "$t" ] || echo "CREATE INDEX orders_plain_customer ON orders_plain(customer_id);"
    [ -n "$t" ] || echo "CREATE INDEX orders_customer ON orders(customer_id);"
    for i in $(seq 1 256); do echo "INSERT INTO customers$t VALUES ($i, 'c$i@example.com');"; done
  done
} > "$dir/schema.sql"
(umask 077; head -c 24 /dev/urandom | base64 > "$dir/token")
build/participant/participant --name bench --db "$dir/bench.db" --schema "$dir/schema.sql" \
  --token-file "$dir/token" --port-file "$dir/port" --log-level warn &
pid=$!
for _ in $(seq 1 500); do [ -s "$dir/port" ] && break; sleep 0.01; done
[ -s "$dir/port" ] || { echo "participant did not start" >&2; exit 1; }
url="http://127.0.0.1:$(cat "$dir/port")"
echo "participant benchmark: $(nproc) cores; database on $(df -h "$dir" | awk 'NR==2 {print $1}')"
run() {
  build/bench/participant_bench --url "$url" --token-file "$dir/token" --clients "$2" \
    --seconds "$secs" --workload "$1"
}
for clients in 1 16; do run accounts "$clients"; done
for _ in $(seq 1 "$rounds"); do
  for clients in 1 16; do
    for workload in shop shop-plain; do run "$workload" "$clients"; done
  done
done
