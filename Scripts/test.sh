#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."

# Nothing outside the Swift toolchain is needed yet; later suites add their servers here
# (apt-get install -y postgresql openssh-server ...), installed only when missing.
need=()
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need[@]}"
fi

# Build every product too: tests start `easyremote` as a real child process.
swift build --build-tests
swift test --skip-build "$@"
