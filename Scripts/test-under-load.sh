#!/usr/bin/env bash
# The whole suite, several times in a row, while stress-ng keeps every core busy: a test that
# waits on a sleep instead of an event fails here, as it would on a busy CI or user machine.
#
#   ./Scripts/test-under-load.sh          # 3 runs
#   RUNS=5 ./Scripts/test-under-load.sh   # 5 runs
#   ./Scripts/test-under-load.sh --filter GatewayTests   # arguments go to `swift test`
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}

command -v stress-ng >/dev/null || { apt-get update -qq && apt-get install -y -qq stress-ng; }
swift build --build-tests

stress-ng --cpu "$(nproc)" --timeout 0 --quiet &
stress=$!
trap 'kill "$stress" 2>/dev/null; wait "$stress" 2>/dev/null || true' EXIT

failed=0
for run in $(seq 1 "$runs"); do
  echo "=== run $run of $runs, with $(nproc) cores busy ==="
  if ./Scripts/test.sh "$@"; then
    echo "=== run $run passed ==="
  else
    echo "=== run $run FAILED ==="
    failed=$((failed + 1))
  fi
done
echo "$((runs - failed)) of $runs runs passed under load"
[ "$failed" -eq 0 ]
