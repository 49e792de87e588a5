#!/usr/bin/env bash
# Fails when project C code calls a banned unsafe function (STYLE.md rule 11).
set -euo pipefail
cd "$(dirname "$0")/../.."
pattern='\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|atol|atoll)[[:space:]]*\('
if grep -rnE "$pattern" --include='*.c' --include='*.h' shared coordinator participant tests cli bench; then
  echo "banned function used (see above); use snprintf, memcpy, strtol/strtoull" >&2
  exit 1
fi
echo "no banned functions"
