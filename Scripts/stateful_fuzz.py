#!/usr/bin/env python3
"""Stateful fuzzing of the gateway's HTTP API with Hypothesis (a RuleBasedStateMachine).

Schemathesis sends one request at a time; some bugs need a sequence: a heartbeat that claims
Int.max slots, a second node's heartbeat, then any POST /tasks made the gateway die summing
the slots. Here pulling nodes join and beat with ordinary and extreme numbers (and wrong
types), tasks are submitted, claimed, reported, listed and cancelled, and every read
endpoint is asked in between. After every step:
  - the answer is below 500, but for POST /tasks' documented 503 RESOURCE_UNAVAILABLE (no
    node can run the task) and /health's 503 when its body says it is not healthy;
  - every error is JSON {"error": {"code", "message"}}, and no 2xx carries one (a failed
    encoding is answered that way);
  - the gateway process is alive (no connection error, no exit).

Each example gets a fresh gateway (its own SQLite file): a failure then depends on that
example's steps alone, so Hypothesis can shrink it to a short sequence and replay it. Spare
gateways are started ahead so examples do not wait for one.

Usage: stateful_fuzz.py EASYREMOTE_BINARY [--seconds N] [--shrink-seconds N] [--steps N]
Environment: FUZZ_SEED (default 20261130) seeds the runs (how many examples fit in the time
depends on the machine's speed, so a repeat matches as far as that allows).
Exit status 0: no failure; 1: a failure, printed with the shortest sequence Hypothesis found.
"""
import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

import requests
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.internal.conjecture import engine
from hypothesis.stateful import (
    Bundle, RuleBasedStateMachine, get_state_machine_test, initialize, multiple, rule)

READY_TIMEOUT = 60  # seconds a gateway may take to start on a loaded machine
REQUEST_TIMEOUT = 30  # seconds an answer may take; longer is a hang, and a failure
SPARES = 2  # gateways started ahead of the examples that will use them


# -- Values ---------------------------------------------------------------------------------

class Raw:
    """A JSON token sent as written (a number no Python value prints as, or invalid JSON)."""

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return f"Raw({self.text!r})"


class Marker:
    """A named placeholder in a rule's arguments (printed by name in a failing sequence)."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


OMIT = Marker("OMIT")  # leave the field (or query parameter) out
OWN = Marker("OWN")  # the node's own key / the node or attempt the task was handed to
NO_KEY = Marker("NO_KEY")  # present no key

# Numbers at and just past edges: the gateway's input bounds (percent, slots, MiB), Int32,
# Double's exact integers, Int, and beyond.
INTS = [0, -1, 1, 2, 100, 101, 4096, 4097, 64 << 20, (64 << 20) + 1, 2**31 - 1, 2**31, -2**31, -2**31 - 1,
        2**32, 2**53, 2**53 + 1, 2**63 - 1, -2**63, 2**63, -2**63 - 1, 2**64, 10**30]
FLOATS = [0.0, -0.0, 5e-324, 1e-300, 0.001, 0.5, 1.5, 99.999, 100.0, 100.000001, 1000.0001, 86400.0, 86400.001,
          31622400.0, 31622400.5, 1e15, 9.3e18, 1e308, -1e308, 1.7976931348623157e308, -1.0, -1e-300]
RAWS = [Raw("1e400"), Raw("-1e400"), Raw("1e-400"), Raw("-0"), Raw("1.0"), Raw("1E2"), Raw("NaN"), Raw("Infinity"),
        Raw("-Infinity"), Raw("123456789012345678901234567890.5"), Raw("0.1e1")]
WRONG = [None, True, False, "1", "", "abc", [], [1], {}, {"n": 1}]
# The likeliest to break arithmetic get branches of their own, so they come up often.
ODD_INT = st.one_of(st.just(2**63 - 1), st.just(-2**63), st.sampled_from([0, -1]), st.sampled_from(INTS),
                    st.sampled_from(FLOATS + RAWS + WRONG))
ODD_REAL = st.one_of(st.just(1e308), st.sampled_from([-1e308, 5e-324, -0.0, Raw("1e400")]), st.sampled_from(FLOATS),
                     st.sampled_from(INTS + RAWS + WRONG))
ODD_OBJECT = st.sampled_from(WRONG)
NEST = Marker("NEST")  # in `fuzzed`: an object made of the fields under it


def optional(strategy):
    """`strategy`, or now and then OMIT (the field left out)."""
    return st.one_of(strategy, strategy, strategy, st.just(OMIT))


def fuzzed(spec, focus=()):
    """JSON objects whose fields are ordinary, except that most draws make one of the
    `focus` fields odd, or each field odd or not. A request with every number extreme is
    refused at its first one and leaves no state behind; one odd field among valid ones
    reaches further. `spec`: {path: (ordinary, odd)}, "a.b" being field b of object a; an
    object's ordinary value is NEST (or OMIT), its odd one a wrong type in its place.
    Hypothesis shrinks the choice towards "none odd", so a minimal sequence shows only the
    odd fields it needs."""
    paths = list(spec)
    # About a quarter all ordinary; without a focus, all of them.
    modes = [None] * (len(focus) // 2) + list(focus) + ["some"] if focus else [None]

    @st.composite
    def objects(draw):
        mode = draw(st.sampled_from(modes))
        top = {}
        nested = {"": top}  # path -> an object this draw built from NEST
        for path in paths:
            ordinary, odd = spec[path]
            if mode == "some":
                value = draw(st.one_of(ordinary, odd))
            else:
                value = draw(odd if mode == path else ordinary)
            parent, _, name = path.rpartition(".")
            if value is OMIT or parent not in nested:  # left out, or its object is
                continue
            if value is NEST:
                value = nested[path] = {}
            nested[parent][name] = value
        return top

    return objects()


# Ordinary nodes are mostly big enough, and idle enough, for ordinary tasks: tasks get handed
# out, reported, cancelled and time out, which is where sequences of calls reach.
HEARTBEAT_FIELDS = {
    "resources": (st.just(NEST), ODD_OBJECT),
    "resources.cpu_cores": (st.sampled_from([4, 16, 1]), ODD_INT),
    "resources.memory_mb": (st.sampled_from([4096, 65536, 256]), ODD_INT),
    "resources.platform": (optional(st.sampled_from(["linux", "darwin"])),
                           st.sampled_from(["", "ü" * 70, "x" * 1000, 5, None])),
    "current_load": (optional(st.just(NEST)), ODD_OBJECT),
    "current_load.cpu_percent": (st.floats(0, 50), ODD_REAL),
    "current_load.memory_percent": (st.floats(0, 50), ODD_REAL),
    "slots": (optional(st.integers(1, 8)), ODD_INT),
}
HEARTBEAT = fuzzed(HEARTBEAT_FIELDS, focus=["resources.cpu_cores", "resources.memory_mb", "current_load.cpu_percent",
                                            "current_load.memory_percent", "slots"])
ORDINARY_HEARTBEAT = fuzzed(HEARTBEAT_FIELDS)
CODE_TASK = fuzzed({
    "code": (st.sampled_from(["print(1)", "import time; time.sleep(5)"]),
             st.sampled_from(["", " ", "x" * 100000, 5, None, ["print(1)"]])),
    "timeout": (optional(st.floats(0.1, 600)), ODD_REAL),
    "resources": (optional(st.just(NEST)), ODD_OBJECT),
    "resources.cpu": (optional(st.one_of(st.sampled_from([0.5, 1, 2]), st.floats(0.1, 8))), ODD_REAL),
    "resources.memory": (optional(st.one_of(st.sampled_from([64, 512]), st.integers(1, 4096))), ODD_INT),
    "max_attempts": (optional(st.integers(1, 5)), ODD_INT),
}, focus=["code", "timeout", "resources.cpu", "resources.memory", "max_attempts"])
RESULT = fuzzed({
    "attempt": (optional(st.just(OWN)), ODD_INT),  # OWN: the attempt the task was handed out as
    "status": (st.sampled_from(["success", "failed", "timeout"]),
               st.sampled_from(["completed", "error", "bogus", "", 1, None])),
    "result": (optional(st.sampled_from(["1", ""])), st.sampled_from(["x" * 100000, "\u0000", None, 5])),
    "execution_time": (optional(st.floats(0, 100)), ODD_REAL),
    "exit_status": (optional(st.integers(-255, 255)), ODD_INT),
    "stderr": (optional(st.sampled_from(["", "boom"])), st.sampled_from([None, 5, "x" * 100000])),
}, focus=["attempt", "status", "execution_time", "exit_status"])

# Query parameters are text: numbers as written, plus what no integer parser should take.
QUERY_INT = st.one_of(
    st.integers(1, 1000).map(str), st.integers(1, 1000).map(str),
    st.sampled_from([str(n) for n in INTS] + ["1e3", "1.5", "abc", "", " 5", "5 ", "+5", "0x10", "-0", "\u0665",
                     "99999999999999999999999999"]))

NODE_NAMES = st.sampled_from(["n0", "n1", "n2", "n3"])
ODD_IDS = st.sampled_from(["", " ", "a/b", "../x", "%2F", "ü-node", "x" * 300, "q?x=1", "#frag", "'; --", "\u0000"])
NODE_IDS = st.one_of(NODE_NAMES, NODE_NAMES, NODE_NAMES, ODD_IDS)
UNKNOWN_TASK_IDS = st.sampled_from(["nope", "", "00000000-0000-0000-0000-000000000000", "x" * 2000, "%00", "..",
                                    "a b", "'; DROP TABLE tasks; --"])
KEY_WHERE = st.sampled_from(["header", "body"])  # the query too, on GET /internal/task/request
JUNK_KEYS = st.sampled_from(["junk", ""])
TASK_STATUSES = ["queued", "running", "completed", "failed", "timeout", "cancelled", "pending"]
READ_PATHS = ["/", "/health", "/nodes", "/stats", "/stats/gateway", "/stats/nodes/top", "/stats/nodes/queue",
              "/functions", "/snapshot", "/metrics"]
# What POST /tasks must refuse: no code, a function no node serves, broken JSON.
NOT_A_CODE_TASK = st.sampled_from([
    {}, {"code": "x", "function": "f"}, {"function": "nope", "args": [1]}, {"function": ""},
    {"code": "x", "args": "no"}, [], "code", Raw(""), Raw("{"), Raw('{"code": "x"}}'),
    Raw('{"code": "x", "code": "y"}'), Raw("\ufeff{}"), {"code": "x", "unknown": 1}])


def encode(value):
    """JSON text of `value`, Raw tokens as written and OMIT fields left out."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{encode(v)}" for k, v in value.items() if v is not OMIT) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(v) for v in value) + "]"
    return json.dumps(value)


# -- Gateways -------------------------------------------------------------------------------

class Gateway:
    """An `easyremote gateway` of its own (SQLite file, free ports, no token, no SSH)."""

    def __init__(self, binary, work, number):
        self.dir = os.path.join(work, f"g{number}")
        os.makedirs(self.dir)
        self.out_path = os.path.join(self.dir, "out.log")
        self.err_path = os.path.join(self.dir, "err.log")
        self.out, self.err = open(self.out_path, "w"), open(self.err_path, "w")
        env = {k: v for k, v in os.environ.items() if k != "EASYREMOTE_TOKEN"}
        # A crash prints its message either way; a symbolicated backtrace of a debug binary
        # takes seconds per crash, which shrinking pays again and again.
        env.setdefault("SWIFT_BACKTRACE", "enable=no")
        self.process = subprocess.Popen(
            [binary, "gateway", "--port", "0", "--http-port", "0", "--no-remote",
             "--db", os.path.join(self.dir, "fuzz.sqlite")],
            stdout=self.out, stderr=self.err, stdin=subprocess.DEVNULL, env=env)
        self.base = None
        self.stopping = False
        self.signalled = False  # stopped by us, alive until then: it should exit cleanly
        self.killed = False

    def wait_ready(self):
        """The HTTP API's base URL, once the gateway says where it listens."""
        deadline = time.monotonic() + READY_TIMEOUT
        while self.base is None:
            with open(self.out_path) as out:
                for line in out:
                    if line.startswith("http api on "):
                        self.base = line[len("http api on "):].strip()
            if self.base is None:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the gateway exited ({self.process.returncode}) before serving:\n{self.tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the gateway did not serve within {READY_TIMEOUT} s:\n{self.tail()}")
                time.sleep(0.02)
        return self.base

    def alive(self):
        return self.process.poll() is None

    def tail(self, lines=15):
        """The end of its stderr (where a crash says why)."""
        try:
            with open(self.err_path, errors="replace") as err:
                return "".join(collections.deque(err, lines)).rstrip()
        except OSError as error:
            return f"(no stderr: {error})"

    def stop(self, wait=0):
        """SIGTERM (once), then up to `wait` seconds for it to exit, then SIGKILL if `wait`
        was given. True once it has exited (and its files are gone). One that exits other
        than cleanly after SIGTERM is recorded in Run.bad_stops."""
        if not self.stopping and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.signalled = True
        self.stopping = True
        if wait:
            try:
                self.process.wait(wait)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                self.killed = True
        if self.process.poll() is not None:
            if self.killed:
                Run.bad_stops.append("a gateway did not stop within 10 s of SIGTERM (it was killed)")
            # 0: stopped as asked; -SIGTERM: the signal came before its handler (starting).
            elif self.signalled and self.process.returncode not in (0, -signal.SIGTERM):
                Run.bad_stops.append(f"a gateway exited with status {self.process.returncode} when stopped "
                                     f"(SIGTERM); its stderr ends:\n{self.tail()}")
            self.out.close()
            self.err.close()
            shutil.rmtree(self.dir, ignore_errors=True)
            return True
        return False


class Pool:
    """Fresh gateways on demand, `SPARES` of them started ahead."""

    def __init__(self, binary, work):
        self.binary, self.work = binary, work
        self.spares = collections.deque()
        self.stopping = []
        self.started = 0

    def _start(self):
        self.spares.append(Gateway(self.binary, self.work, self.started))
        self.started += 1

    def take(self):
        if not self.spares:
            self._start()
        gateway = self.spares.popleft()
        while len(self.spares) < SPARES:
            self._start()
        gateway.wait_ready()
        return gateway

    def release(self, gateway):
        """Stops it without waiting; stopped ones are reaped on the next release."""
        self.stopping = [g for g in self.stopping + [gateway] if not g.stop()]

    def close(self):
        """Stops every gateway: SIGTERM to all, then SIGKILL to any still there 10 s later."""
        gateways = list(self.spares) + self.stopping
        for gateway in gateways:
            gateway.stop()
        deadline = time.monotonic() + 10
        for gateway in gateways:
            gateway.stop(wait=max(1, deadline - time.monotonic()))
        self.spares.clear()
        self.stopping = []


# -- The run's shared state -----------------------------------------------------------------

class Run:
    pool = None
    requests = 0  # requests sent (about one per step)
    handed = 0  # tasks handed to a node (how deep the examples went)
    examples = 0
    statuses = collections.defaultdict(collections.Counter)  # endpoint -> status -> count
    # Gateways that crashed or hung when stopped after their example: found after the
    # example ended, so without a sequence (the example's own checks had passed).
    bad_stops = []
    first_failure = None  # when (time.monotonic()) a check first failed: shrinking starts


# -- The state machine ----------------------------------------------------------------------

class GatewayAPI(RuleBasedStateMachine):
    nodes = Bundle("nodes")  # node ids that joined
    keys = Bundle("keys")  # node keys the gateway handed out (any node's: a wrong key too)
    tasks = Bundle("tasks")  # task ids submitted or offered
    # Which key a request presents: mostly the node's own, else none, any node's, or junk.
    KEYS = st.one_of(st.just(OWN), st.just(OWN), st.just(NO_KEY), keys, JUNK_KEYS)

    def __init__(self):
        super().__init__()
        self.gateway = Run.pool.take()
        self.session = requests.Session()
        self.node_keys = {}  # node id -> the key its first heartbeat was answered with
        self.handed = {}  # task id -> (node id, attempt) it was handed to
        self.failed = False
        Run.examples += 1

    def teardown(self):
        try:
            self.session.close()
            if not self.failed:  # else the failure is already on its way
                self.check_alive("after the last step")
        finally:
            Run.pool.release(self.gateway)

    def fail(self, message):
        """The AssertionError to raise (teardown then does not pile a second one on it)."""
        self.failed = True
        Run.first_failure = Run.first_failure or time.monotonic()
        return AssertionError(message)

    def death(self, when):
        """What to say when the gateway process has exited, else None."""
        if self.gateway.alive():
            return None
        return (f"the gateway process died {when} (exit status {self.gateway.process.returncode}); "
                f"its stderr ends:\n{self.gateway.tail()}")

    def check_alive(self, when):
        if message := self.death(when):
            raise self.fail(message)

    # -- One request, checked --

    def call(self, method, path, endpoint, body=OMIT, params=None, headers=None):
        """Sends a request and checks the invariants; returns (status, JSON body or None)."""
        Run.requests += 1
        data = None
        headers = dict(headers or {})
        if body is not OMIT:
            data = encode(body).encode()
            headers["Content-Type"] = "application/json"
        if params:
            params = {k: v for k, v in params.items() if v is not OMIT}
        what = f"{method} {path}" + (f" ?{urllib.parse.urlencode(params)}" if params else "") + \
            (f" body {data[:300]!r}" if data else "")
        try:
            response = self.session.request(
                method, self.gateway.base + path, data=data, params=params, headers=headers, timeout=REQUEST_TIMEOUT)
        except requests.Timeout:
            raise self.fail(f"{what}: no answer in {REQUEST_TIMEOUT} s") from None
        except requests.ConnectionError as error:
            try:  # a crashing process may still be writing why: let it finish exiting
                self.gateway.process.wait(1)
            except subprocess.TimeoutExpired:
                pass
            raise self.fail(self.death(f"answering {what}")
                            or f"{what}: connection failed ({error}), the process still runs") from None
        status = response.status_code
        Run.statuses[endpoint][status] += 1
        text = response.text
        what += f" -> {status} {text[:500]!r}"
        try:
            parsed = response.json()
        except ValueError:
            parsed = None
        error = parsed.get("error") if isinstance(parsed, dict) else None
        if status >= 500:
            documented = (
                status == 503 and endpoint == "POST /tasks" and isinstance(error, dict)
                and error.get("code") == "RESOURCE_UNAVAILABLE"
            ) or (
                status == 503 and endpoint == "GET /health" and isinstance(parsed, dict)
                and parsed.get("status") in ("degraded", "unhealthy")
            )
            if not documented:
                raise self.fail(f"undocumented server error: {what}")
        if status >= 400 and endpoint != "GET /health" and not (
                isinstance(error, dict) and isinstance(error.get("code"), str)
                and isinstance(error.get("message"), str)):
            raise self.fail(f"error without {{error: {{code, message}}}}: {what}")
        if 200 <= status < 300 and endpoint != "GET /metrics":
            if parsed is None:
                raise self.fail(f"success whose body is not JSON: {what}")
            if error is not None:
                raise self.fail(f"success carrying an error (a failed encoding?): {what}")
        self.check_alive(f"after answering {what}")
        return status, parsed

    def key_for(self, node, key):
        """The key to present: the node's own (OWN), none (NO_KEY), or the one drawn."""
        if key is OWN:
            return self.node_keys.get(node)
        return None if key is NO_KEY else key

    def beat(self, node, key, where, body):
        body = {"node_id": node, **body}
        headers = {}
        if key is not None and where == "header":
            headers["X-Node-Key"] = key
        elif key is not None:
            body["node_key"] = key
        status, reply = self.call("POST", "/internal/heartbeat", "POST /internal/heartbeat", body, headers=headers)
        if status == 200 and isinstance(reply, dict) and isinstance(reply.get("node_key"), str):
            self.node_keys[node] = reply["node_key"]
        return status

    def join_as(self, node, body):
        """A heartbeat without a key; the node id for the bundle when it was taken."""
        status = self.beat(node, None, "body", body)
        return node if status == 200 else multiple()

    def submit_as(self, body, idempotency_key):
        """POST /tasks; the task id for the bundle when one was made."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        status, reply = self.call("POST", "/tasks", "POST /tasks", body, headers=headers)
        if status == 201 and isinstance(reply, dict) and isinstance(reply.get("task_id"), str):
            return reply["task_id"]
        return multiple()

    # -- How every example starts: two nodes (one surely in) and a task. Else, with rules
    # drawn at random and some switched off per example, few examples would hand a task to
    # a node.

    @initialize(target=nodes, node=NODE_NAMES, body=ORDINARY_HEARTBEAT)
    def first_node(self, node, body):
        return self.join_as(node, body)

    @initialize(target=nodes, node=NODE_NAMES, body=HEARTBEAT)
    def second_node(self, node, body):
        return self.join_as(node, body)

    @initialize(target=tasks, body=CODE_TASK)
    def first_task(self, body):
        return self.submit_as(body, None)

    # -- Rules: nodes --

    @rule(target=nodes, node=NODE_IDS, body=HEARTBEAT)
    def join(self, node, body):
        """A node's first heartbeat (or one without its key): answered with its key."""
        return self.join_as(node, body)

    @rule(node=nodes, key=KEYS, where=KEY_WHERE, body=HEARTBEAT)
    def heartbeat(self, node, key, where, body):
        self.beat(node, self.key_for(node, key), where, body)

    @rule(target=keys, node=nodes)
    def learn_key(self, node):
        """Makes a node's key one any node may present."""
        key = self.node_keys.get(node)
        return key if key is not None else multiple()

    @rule(node=st.one_of(nodes, ODD_IDS))
    def get_node(self, node):
        self.call("GET", "/nodes/" + urllib.parse.quote(node, safe=""), "GET /nodes/{id}")

    # -- Rules: tasks --

    @rule(target=tasks, body=st.one_of(CODE_TASK, CODE_TASK, CODE_TASK, NOT_A_CODE_TASK),
          idempotency_key=st.one_of(st.just(None), st.just(None), st.sampled_from(["k1", "k2"])))
    def submit(self, body, idempotency_key):
        return self.submit_as(body, idempotency_key)

    @rule(target=tasks, node=st.one_of(nodes, nodes, nodes, st.just(OMIT), ODD_IDS), key=KEYS,
          where=st.sampled_from(["query", "header"]))
    def request_task(self, node, key, where):
        """A pulling node asks for work (without node_id: the key-less node at this address)."""
        key = self.key_for(node, key)
        params = {"node_id": node}
        headers = {}
        if key is not None and where == "header":
            headers["X-Node-Key"] = key
        elif key is not None:
            params["node_key"] = key
        status, reply = self.call("GET", "/internal/task/request", "GET /internal/task/request", params=params,
                                  headers=headers)
        task = reply.get("task") if status == 200 and isinstance(reply, dict) else None
        if isinstance(task, dict) and isinstance(task.get("task_id"), str):
            self.handed[task["task_id"]] = (None if node is OMIT else node, task.get("attempt"))
            Run.handed += 1
            return task["task_id"]
        return multiple()

    @rule(task=st.one_of(tasks, tasks, UNKNOWN_TASK_IDS),
          node=st.one_of(st.just(OWN), st.just(OWN), nodes, st.just(OMIT), ODD_IDS), key=KEYS, where=KEY_WHERE,
          body=RESULT)
    def report(self, task, node, key, where, body):
        """A node reports a task's outcome: OWN is the node (and attempt) it was handed to."""
        owner, attempt = self.handed.get(task, (None, None))
        if node is OWN:
            node = OMIT if owner is None else owner
        body = {"task_id": task, "node_id": node, **body}
        if body.get("attempt") is OWN:
            body["attempt"] = OMIT if attempt is None else attempt
        key = self.key_for(node, key)
        headers = {}
        if key is not None and where == "header":
            headers["X-Node-Key"] = key
        elif key is not None:
            body["node_key"] = key
        self.call("POST", "/internal/task/result", "POST /internal/task/result", body, headers=headers)

    @rule(method=st.sampled_from(["GET", "DELETE"]), task=st.one_of(tasks, tasks, UNKNOWN_TASK_IDS))
    def task_by_id(self, method, task):
        """One task, or its cancellation."""
        self.call(method, "/tasks/" + urllib.parse.quote(task, safe=""), method + " /tasks/{id}")

    @rule(status=optional(st.sampled_from(TASK_STATUSES + ["bogus", ""])), limit=optional(QUERY_INT),
          offset=optional(st.one_of(st.just("0"), QUERY_INT)))
    def list_tasks(self, status, limit, offset):
        self.call("GET", "/tasks", "GET /tasks", params={"status": status, "limit": limit, "offset": offset})

    # -- Rules: everything else that reads --

    @rule(path=st.sampled_from(READ_PATHS), limit=st.one_of(st.just(OMIT), QUERY_INT))
    def read(self, path, limit):
        """The rest of the API (limit counts on /stats/nodes/*; elsewhere it is ignored)."""
        self.call("GET", path, "GET " + path, params={"limit": limit})

    @rule(seconds=st.sampled_from([0.01, 0.05, 0.2]))
    def wait(self, seconds):
        """Lets time pass: task timeouts, leases and the scheduler's waits act between steps."""
        time.sleep(seconds)
        self.check_alive(f"during a {seconds} s wait")


# -- Main -----------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("easyremote", help="the easyremote binary")
    parser.add_argument("--seconds", type=float, default=60, help="time for new examples (default 60)")
    parser.add_argument("--shrink-seconds", type=float, default=40,
                        help="time on top for shrinking a failure (default 40)")
    parser.add_argument("--steps", type=int, default=20, help="steps per example (default 20)")
    args = parser.parse_args()
    base_seed = int(os.environ.get("FUZZ_SEED", "20261130"))
    sys.stdout.reconfigure(line_buffering=True)  # in a log, in order with stderr

    # Stopped from outside (a test runner's timeout): unwind as for Ctrl-C, stopping the
    # gateways on the way out.
    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    work = tempfile.mkdtemp(prefix="easyremote-fuzz-")
    Run.pool = Pool(os.path.abspath(args.easyremote), work)
    # Hypothesis shrinks for up to five minutes (an internal constant); this run has a budget.
    # Past it, Hypothesis reports the smallest failing sequence found so far (with a warning
    # that it stopped).
    if hasattr(engine, "MAX_SHRINKING_SECONDS"):
        engine.MAX_SHRINKING_SECONDS = args.shrink_seconds
    started = time.monotonic()
    deadline = started + args.seconds
    failure = None
    batch = 0
    print(f"stateful fuzz: {args.seconds:.0f} s, seed {base_seed}, {args.steps} steps per example", flush=True)
    try:
        # Hypothesis has no time budget of its own, and deciding inside a run to stop would
        # make it see the same choices behave two ways (flaky). So: runs of a few examples,
        # each with its own seed, sized so the last one ends about when the time is spent.
        # (Each run's first example is Hypothesis's simplest one, so runs are not tiny.)
        while (remaining := deadline - time.monotonic()) > 0:
            per_example = (time.monotonic() - started) / Run.examples if Run.examples else 3.0
            if batch > 0 and remaining < per_example / 2:
                break
            examples = max(2, min(50, round(remaining / per_example)))
            config = settings(
                max_examples=examples, stateful_step_count=args.steps, deadline=None,
                suppress_health_check=list(HealthCheck), database=None, report_multiple_bugs=False,
                print_blob=False, phases=[Phase.generate, Phase.shrink])
            # get_state_machine_test is run_state_machine_as_test without the call (HypoFuzz
            # uses it too), so that @seed can be put on it.
            test = seed(base_seed * 1000 + batch)(get_state_machine_test(GatewayAPI, settings=config))
            batch += 1
            test()
    except BaseException as error:  # a failure (or Ctrl-C): reported below
        failure = error
    finally:
        Run.pool.close()

    elapsed = time.monotonic() - started
    print(f"\n{Run.requests} requests in {Run.examples} examples of up to {args.steps} steps ({batch} runs, "
          f"{Run.pool.started} gateways, {Run.handed} tasks handed to nodes) in {elapsed:.0f} s; statuses by endpoint:")
    for endpoint in sorted(Run.statuses):
        counts = " ".join(f"{status}x{n}" for status, n in sorted(Run.statuses[endpoint].items()))
        print(f"  {endpoint:32} {counts}")
    for problem in Run.bad_stops:
        print(f"\nFAILED: {problem}", file=sys.stderr)
    if isinstance(failure, KeyboardInterrupt):
        print("\nstateful fuzz: interrupted", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
        sys.exit(130)
    if failure is not None:
        # Hypothesis adds the failing sequence to the exception as notes, after its message.
        print("\nFAILED (why, then the shortest sequence of calls Hypothesis found):", file=sys.stderr)
        traceback.print_exception(type(failure), failure, failure.__traceback__,
                                  limit=0 if isinstance(failure, AssertionError) else None)
        if Run.first_failure and time.monotonic() - Run.first_failure >= args.shrink_seconds:
            print(f"(Hypothesis stopped shrinking after --shrink-seconds {args.shrink_seconds:.0f}: the "
                  f"sequence may be longer than it needs to be)", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
        sys.exit(1)
    shutil.rmtree(work, ignore_errors=True)
    if Run.bad_stops:
        sys.exit(1)
    print("stateful fuzz: no failures")


if __name__ == "__main__":
    main()
