#!/usr/bin/env bash
# A seed names one schedule: replaying it must print the very same trace, or a failing
# seed could not be debugged. Runs a few seeds twice each and compares the traces (all but
# the line with the wall-clock rate).
set -euo pipefail
sim="$1"
for f in 0 1 2; do
  for seed in 7 248 4242; do
    a=$("$sim" --f "$f" --seed "$seed" --trace | grep -v "schedules/s")
    b=$("$sim" --f "$f" --seed "$seed" --trace | grep -v "schedules/s")
    lines=$(printf '%s\n' "$a" | wc -l)
    if [ "$a" != "$b" ]; then
      echo "seed $seed, F=$f: two runs printed different traces" >&2
      diff <(printf '%s\n' "$a") <(printf '%s\n' "$b") | head -20 >&2
      exit 1
    fi
    [ "$lines" -gt 20 ] || { echo "seed $seed, F=$f: trace too short ($lines lines)" >&2; exit 1; }
  done
done
echo "replays are identical"
