#!/usr/bin/env bash
# shared/core/ is the pure protocol (docs/DESIGN.md section 2): it includes nothing from
# outside itself but the C library and jansson, and calls no clock, thread, socket, file,
# SQLite, curl or random function. Fails, listing the lines, when it does.
set -euo pipefail
cd "$(dirname "$0")/../.."
core=shared/core
bad=0
allowed='assert|ctype|errno|inttypes|limits|stdarg|stdbool|stddef|stdint|stdio|stdlib|string|jansson'
while IFS= read -r line; do
  file=${line%%:*}
  inc=$(sed -E 's/.*#include[[:space:]]*[<"]([^>"]+)[>"].*/\1/' <<<"${line#*:}")
  case "${line#*:}" in
    *'#include <'*)
      if ! grep -qE "^($allowed)\.h$" <<<"$inc"; then
        echo "$line: a system header the pure core may not use" >&2
        bad=1
      fi ;;
    *)
      if [ ! -f "$core/$inc" ]; then
        echo "$line: includes from outside shared/core" >&2
        bad=1
      fi ;;
  esac
done < <(grep -Hn '^[[:space:]]*#[[:space:]]*include' "$core"/*.c "$core"/*.h)
calls='(^|[^.>_[:alnum:]])(clock_gettime|gettimeofday|time|clock|nanosleep|usleep|sleep|rand|random|srand|getrandom|pthread_[a-z_]+|socket|connect|accept|bind|listen|send|recv|open|close|read|write|fopen|fclose|fread|fwrite|fsync|fdatasync|sqlite3_[a-z_0-9]+|curl_[a-z_]+|MHD_[A-Za-z_]+|getenv|system|fork|exec[lv]p?)[[:space:]]*\('
# Calls through a function pointer (io.send, out->send) are the point: the world comes in
# through them. Comments do not count.
if grep -nE "$calls" "$core"/*.c "$core"/*.h | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/?\*|//)'; then
  echo "the pure core calls a clock, thread, socket, file, SQLite, curl or random function (above)" >&2
  bad=1
fi
[ "$bad" -eq 0 ] && echo "shared/core is pure: $(ls "$core"/*.c | wc -l) files, C library and jansson only"
exit "$bad"
