#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the suites need beyond the Swift toolchain, installed only when missing:
# python3 (the sandbox's interpreter), SQLite's headers (GRDB), util-linux's prlimit,
# setpriv and unshare (the sandbox's limits), bubblewrap (the sandbox itself), procps (`ps`,
# which the sandbox tests run inside a task), OpenSSH's server and client (the remote-host
# tests start their own sshd), python3-requests (seed 003's Python client), Prometheus
# (promtool and a real server scraping the gateway), Chromium with its WebDriver (the
# console's tests; screenshots in .artifacts/console/) and PostgreSQL (the tests start their
# own server for the PostgreSQL task store).
need=()
command -v python3 >/dev/null || need+=(python3)
dpkg -s libsqlite3-dev >/dev/null 2>&1 || need+=(libsqlite3-dev)
command -v prlimit >/dev/null && command -v setpriv >/dev/null || need+=(util-linux)
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v ps >/dev/null || need+=(procps)
command -v openssl >/dev/null || need+=(openssl)  # certificate files for the config tests
command -v ssh >/dev/null || need+=(openssh-client)
command -v curl >/dev/null || need+=(curl)  # the HTTPS test
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
[ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ] || need+=(prometheus)  # /metrics: promtool, a real scrape
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || need+=(chromium chromium-driver)  # the web console
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)  # the PostgreSQL task store
/usr/bin/python3 -c 'import requests' 2>/dev/null || need+=(python3-requests)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

# Build every product too: tests start `easyremote` as a real child process.
swift build --build-tests
swift test --skip-build "$@"
# The HTTP API against its own openapi.yaml, fuzzed (Schemathesis from PyPI), unless a subset
# of the tests was asked for.
if [ $# -eq 0 ]; then
  ./Scripts/schemathesis.sh
  # Sequences of API calls with extreme numbers (a Hypothesis state machine, about a minute):
  # no 5xx, no death, errors in the API's shape.
  python3 -c 'import hypothesis, requests' 2>/dev/null || python3 -m pip install -q hypothesis requests
  python3 Scripts/stateful_fuzz.py "$(swift build --show-bin-path)/easyremote" --seconds 60
  # The web console in a headless Chromium over WebDriver (Selenium from PyPI).
  python3 -c 'import selenium' 2>/dev/null || python3 -m pip install -q selenium
  python3 Scripts/console_test.py "$(swift build --show-bin-path)/easyremote"
fi
