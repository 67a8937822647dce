#!/usr/bin/env python3
"""Floods a gateway the way an attacker without the token would, and measures what an honest
client sees meanwhile (issue 22; the figures are in docs/RELIABILITY.md).

    python3 Scripts/flood.py [PATH_TO_easyremote] [--json FILE]

It starts its own gateway (with a token) and a compute node, takes the gateway's memory as the
baseline, then runs each flood in turn while an honest client measures `/health` (HTTP) and a
new node joining (gRPC):

  grpc-preface   4,100 connections that send only the 24-byte HTTP/2 preface, from 20 loopback
                 addresses (the gateway closes them without a link HELLO within 10 s)
  http-idle      1,100 TCP connections to the HTTP port that never send a byte
  http-slow      HTTP/1.0 requests and 10 GB declared bodies (answered and closed at once?)
  metrics        20,000 calls of function names nobody serves (then the size of /metrics)
  guessing       3,000 requests with wrong tokens from one address (401 until 429)

Then it waits a minute and compares the gateway's memory with the baseline (within 20 %).
Exits non-zero when an honest request failed, or /health took over 100 ms at the median, or
the memory did not come back.
"""
import http.client
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

TOKEN = "flood-token"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def start(command, marker, env=None, timeout=120):
    """Starts `command`, returns (process, what follows `marker` on its first line that has it)."""
    log = tempfile.NamedTemporaryFile("w+", delete=False, suffix=".log")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(log.name) as file:
            for line in file:
                if marker in line:
                    return process, line.split(marker, 1)[1].strip(), log.name
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    sys.exit(f"{command[1]} did not say '{marker}':\n" + open(log.name).read())


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def request(base, path, token=True, method="GET", data=None, timeout=10):
    headers = {"Authorization": f"Bearer {TOKEN}"} if token else {}
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, method=method, headers=headers, data=data)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def status_from(source, base, path, headers):
    """The status of one GET from the loopback address `source` (another client to the server)."""
    host, port = base.split("//", 1)[1].rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(source, 0))
    try:
        connection.request("GET", path, headers=headers)
        reply = connection.getresponse()
        reply.read()
        return reply.status
    finally:
        connection.close()


def health_probe(base, samples=20):
    """Times `/health` `samples` times (ms); a failed request counts as None."""
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        try:
            status, _ = request(base, "/health", token=False, timeout=10)
            times.append((time.perf_counter() - started) * 1000 if status == 200 else None)
        except OSError:
            times.append(None)
        time.sleep(0.05)
    return times


def join_probe(easyremote, address, name):
    """Seconds until a new compute node has joined, or None."""
    started = time.perf_counter()
    env = dict(os.environ, EASYREMOTE_TOKEN=TOKEN)
    process = subprocess.Popen(
        [easyremote, "node", "--gateway", address, "--id", name, "--max-cpu-percent", "101"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    joined = None
    deadline = time.time() + 30
    for line in process.stdout:
        if f"node {name} joined" in line or "compute node joined" in line:
            joined = time.perf_counter() - started
            break
        if time.time() > deadline:
            break
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    return joined


def open_connections(port, count, sources, payload=None):
    """`count` TCP connections spread over `sources`, each sending `payload` (or nothing)."""
    held = []
    for index in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((sources[index % len(sources)], 0))
            sock.connect(("127.0.0.1", port))
            if payload:
                sock.sendall(payload)
            held.append(sock)
        except OSError:
            sock.close()
    return held


def still_open(sockets):
    """How many of `sockets` the server has not closed (a read would block)."""
    count = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
        except BlockingIOError:
            count += 1
        except OSError:
            pass
    return count


def summary(times):
    good = [t for t in times if t is not None]
    return {
        "health_p50_ms": round(statistics.median(good), 1) if good else None,
        "health_max_ms": round(max(good), 1) if good else None,
        "health_failed": len(times) - len(good),
    }


def main():
    arguments = sys.argv[1:]
    json_file = None
    if "--json" in arguments:
        index = arguments.index("--json")
        json_file = arguments[index + 1]
        del arguments[index:index + 2]
    easyremote = arguments[0] if arguments else subprocess.run(
        ["swift", "build", "--show-bin-path"], capture_output=True, text=True, check=True).stdout.strip() + "/easyremote"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))

    work = tempfile.mkdtemp(prefix="easyremote-flood-")
    env = dict(os.environ, EASYREMOTE_TOKEN=TOKEN)
    gateway, _, gateway_log = start(
        [easyremote, "gateway", "--port", "0", "--http-port", "0", "--db", f"{work}/tasks.sqlite"], "gateway listening on ", env)
    with open(gateway_log) as file:
        http = re.search(r"http api on (\S+)", file.read()).group(1)
    address = open(gateway_log).read().split("gateway listening on ")[1].split()[0]
    grpc_port = int(address.rsplit(":", 1)[1])
    http_port = int(http.rsplit(":", 1)[1])
    node, _, _ = start([easyremote, "node", "--gateway", address, "--id", "honest", "--max-cpu-percent", "101"],
                       "joined", env)
    results = {"gateway": gateway.pid}
    failures = []
    try:
        # Warm up, then the baseline.
        health_probe(http, 10)
        request(http, "/functions/sync_add/call", data=json.dumps({"args": [1, 2]}).encode())
        time.sleep(2)
        baseline = rss_mb(gateway.pid)
        results["baseline"] = {"rss_mb": round(baseline, 1), **summary(health_probe(http))}
        sources = [f"127.0.0.{i}" for i in range(2, 22)]

        # 1. gRPC: connections that send the HTTP/2 preface and nothing else.
        flood = open_connections(grpc_port, 4100, sources, PREFACE)
        phase = {"opened": len(flood), **summary(health_probe(http)), "join_s": join_probe(easyremote, address, "probe-1"),
                 "rss_mb": round(rss_mb(gateway.pid), 1)}
        time.sleep(12)  # past the 10 s handshake timeout
        phase["still_open_after_12s"] = still_open(flood)
        for sock in flood:
            sock.close()
        results["grpc-preface"] = phase

        # 2. HTTP: connections that never send a byte.
        flood = open_connections(http_port, 1100, sources)
        phase = {"opened": len(flood), **summary(health_probe(http)), "join_s": join_probe(easyremote, address, "probe-2"),
                 "rss_mb": round(rss_mb(gateway.pid), 1)}
        time.sleep(12)  # past the 10 s first-request timeout
        phase["still_open_after_12s"] = still_open(flood)
        for sock in flood:
            sock.close()
        results["http-idle"] = phase

        # 3. HTTP/1.0 and a declared 10 GB body: answered and closed at once?
        started = time.perf_counter()
        closed_10 = 0
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", http_port), timeout=30) as sock:
                sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")
                while sock.recv(65536):
                    pass
                closed_10 += 1
        http10_s = (time.perf_counter() - started) / 20
        with socket.create_connection(("127.0.0.1", http_port), timeout=30) as sock:
            started = time.perf_counter()
            sock.sendall(b"POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            huge_s = time.perf_counter() - started
        results["http-slow"] = {"http10_closed": closed_10, "http10_each_ms": round(http10_s * 1000, 1),
                                "declared_10gb_status": answer.split(b" ")[1].decode() if answer else None,
                                "declared_10gb_ms": round(huge_s * 1000, 1)}

        # 4. Metrics: 20,000 calls of functions nobody serves.
        def calls(start, count):
            for index in range(start, start + count):
                request(http, f"/functions/nope_{index}/call", data=b"{}")
        started = time.perf_counter()
        threads = [threading.Thread(target=calls, args=(i * 2500, 2500)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        _, metrics = request(http, "/metrics")
        results["metrics"] = {"calls": 20000, "seconds": round(time.perf_counter() - started, 1),
                              "exposition_bytes": len(metrics), "rss_mb": round(rss_mb(gateway.pid), 1),
                              "unknown_series": len(re.findall(rb'function="nope_', metrics))}

        # 5. Token guessing from one address (127.0.0.50); the honest client is another.
        counts = {}
        started = time.perf_counter()
        for index in range(3000):
            status = status_from("127.0.0.50", http, "/tasks", {"Authorization": f"Bearer guess-{index}"})
            counts[status] = counts.get(status, 0) + 1
        guessing = {"seconds": round(time.perf_counter() - started, 1), "statuses": counts,
                    "right_token_from_there": status_from("127.0.0.50", http, "/tasks", {"Authorization": f"Bearer {TOKEN}"}),
                    **summary(health_probe(http))}
        _, metrics = request(http, "/metrics")
        guessing["counted"] = [line.decode() for line in metrics.splitlines() if line.startswith(b"easyremote_auth_failures_total")]
        results["guessing"] = guessing
        if request(http, "/tasks")[0] != 200:
            failures.append("guessing: the honest client was refused")

        # A minute later: the memory back near the baseline?
        time.sleep(60)
        after = rss_mb(gateway.pid)
        results["after_60s"] = {"rss_mb": round(after, 1), "vs_baseline": round(after / baseline, 2)}
        if after > baseline * 1.2:
            failures.append(f"memory {after:.0f} MB a minute after the floods, baseline {baseline:.0f} MB")
        for name in ["grpc-preface", "http-idle"]:
            phase = results[name]
            if phase["health_failed"] or (phase["health_p50_ms"] or 1e9) > 100:
                failures.append(f"{name}: /health {phase}")
            if phase["join_s"] is None:
                failures.append(f"{name}: a node could not join")
        if gateway.poll() is not None:
            failures.append("the gateway died")
    finally:
        node.terminate()
        gateway.terminate()
        for process in (node, gateway):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
    print(json.dumps(results, indent=2))
    if json_file:
        with open(json_file, "w") as file:
            json.dump(results, file, indent=2)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("flood: the door held")


if __name__ == "__main__":
    main()
