#!/usr/bin/env bash
# Runs the gateway, the compute node and the client of the async & streaming example
# together and checks every result (exit status 0 when all are correct).
set -euo pipefail
cd "$(dirname "$0")/../.."
port=${PORT:-18181}
swift build --product async-stream-server --product async-stream-node --product async-stream-client >/dev/null 2>&1 \
  || swift build
bin=$(swift build --show-bin-path)
"$bin/async-stream-server" "$port" & server=$!
trap 'kill $server $node 2>/dev/null || true' EXIT
sleep 1
"$bin/async-stream-node" "127.0.0.1:$port" & node=$!
"$bin/async-stream-client" "127.0.0.1:$port"
