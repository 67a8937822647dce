#!/usr/bin/env python3
"""The web console in a real headless Chromium, driven over WebDriver (Selenium, from PyPI,
with Debian's chromium-driver): a gateway with a token, a node, and the pages as a person
uses them. Screenshots of each page go to .artifacts/console/.

Usage: console_test.py EASYREMOTE_BINARY
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

EASYREMOTE = sys.argv[1]
TOKEN = "console-s3cret"
# Nodes take tasks whatever their machine's load (the tests also run with every core busy,
# where a node would otherwise, rightly, wait for its owner's work to end).
ANY_LOAD = ["--max-cpu-percent", "101", "--max-memory-percent", "101"]
ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".artifacts", "console")
WAIT = 60  # seconds any one thing may take on a loaded machine
work = tempfile.mkdtemp(prefix="easyremote-console-")
processes = []
failures = []


def start(args, ready):
    """Starts `easyremote ARGS`; returns (process, lines so far) once a line starts with `ready`."""
    log = open(os.path.join(work, f"p{len(processes)}.log"), "w+")
    process = subprocess.Popen([EASYREMOTE] + args, stdout=subprocess.PIPE, stderr=log, text=True,
                               env={**os.environ, "EASYREMOTE_TOKEN": TOKEN})
    processes.append(process)
    lines = []
    for line in process.stdout:
        lines.append(line.strip())
        if line.startswith(ready):
            return process, lines
    raise RuntimeError(f"{args[0]} ended without '{ready}': {lines}")


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(WAIT)
        except subprocess.TimeoutExpired:
            process.kill()


def check(condition, message):
    if not condition:
        failures.append(message)
        print(f"FAIL: {message}", file=sys.stderr)
    else:
        print(f"ok: {message}")


def until(driver, what, condition):
    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(lambda d: condition(d))
    except TimeoutException:
        shot(driver, "failure-" + what.replace(" ", "-")[:40])
        for entry in driver.get_log("browser"):
            print(f"browser: {entry}", file=sys.stderr)
        raise AssertionError(f"timed out: {what}")


def shot(driver, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    driver.save_screenshot(os.path.join(ARTIFACTS, f"{name}.png"))


def text(driver, css):
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].text if found else ""


def go(driver, label):
    """Follows a link of the console's navigation (no reload)."""
    driver.find_element(By.CSS_SELECTOR, f'nav a[data-page="{label}"]').click()
    until(driver, f"page {label}", lambda d: d.find_elements(By.CSS_SELECTOR, f'nav a[data-page="{label}"][aria-current="page"]'))


def no_horizontal_scroll(driver, page):
    width = driver.execute_script("return document.documentElement.scrollWidth")
    inner = driver.execute_script("return window.innerWidth")
    check(width <= inner, f"{page}: no horizontal scrolling at {inner} px (content {width} px)")


def main():
    gateway, lines = start(["gateway", "--port", "0", "--http-port", "0", "--db", os.path.join(work, "tasks.sqlite")],
                           "gateway listening on ")
    http = next(l for l in lines if l.startswith("http api on ")).removeprefix("http api on ")
    address = lines[-1].removeprefix("gateway listening on ")
    node1, _ = start(["node", "--gateway", address, "--id", "console-node-1"] + ANY_LOAD, "node console-node-1 joined")

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        # The console asks for the token once and keeps it for the tab.
        driver.get(http + "/web")
        until(driver, "the token dialog", lambda d: d.find_element(By.ID, "token-dialog").get_attribute("open") is not None)
        driver.find_element(By.ID, "token-input").send_keys(TOKEN)
        driver.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
        until(driver, "live events", lambda d: d.find_element(By.ID, "live").get_attribute("data-state") == "live")
        driver.execute_script("window.__noReload = 'still the same page'")
        until(driver, "one node online", lambda d: text(d, "#card-nodes .value") == "1")
        check(driver.execute_script("return sessionStorage.getItem('easyremote-token')") == TOKEN, "the token is kept for the tab")
        no_horizontal_scroll(driver, "overview")
        # Charts fill from the stats events.
        until(driver, "a chart with data", lambda d: d.execute_script("return window.easyremote.store.history.length") >= 2)
        shot(driver, "overview")

        # Monitor: the node, the fair queue; a second node appears when it starts, leaves when it stops.
        go(driver, "monitor")
        until(driver, "node 1 listed", lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-node="console-node-1"]'))
        node2, _ = start(["node", "--gateway", address, "--id", "console-node-2"] + ANY_LOAD, "node console-node-2 joined")
        until(driver, "node 2 appears", lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-node="console-node-2"][data-status="idle"]'))
        until(driver, "node 2 in the fair queue", lambda d: d.find_elements(By.CSS_SELECTOR, '#fair-queue li[data-node="console-node-2"]'))
        shot(driver, "monitor-two-nodes")
        stop(node2)
        until(driver, "node 2 leaves", lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-node="console-node-2"][data-status="offline"]'))
        check(driver.execute_script("return window.__noReload") == "still the same page", "nodes came and went without a reload")

        # The functions form: sync_add(2, 3), then a stream whose items arrive one by one.
        Select(driver.find_element(By.ID, "call-function")).select_by_value("sync_add")
        args = driver.find_element(By.ID, "call-args")
        args.clear()
        args.send_keys("[2, 3]")
        driver.find_element(By.ID, "call-submit").click()
        until(driver, "sync_add's result", lambda d: text(d, "#call-result").strip() == "5")
        check(True, "sync_add(2, 3) = 5 from the functions form")
        Select(driver.find_element(By.ID, "call-function")).select_by_value("sync_number_stream")
        args.clear()
        args.send_keys("[10, 4, 0.05]")
        driver.find_element(By.ID, "call-submit").click()
        until(driver, "the stream's items", lambda d: len(d.find_elements(By.CSS_SELECTOR, "#stream-items li")) == 4)
        until(driver, "the stream's end", lambda d: "4 items, done" in text(d, "#call-result"))
        items = [json.loads(li.text) for li in driver.find_elements(By.CSS_SELECTOR, "#stream-items li")]
        check([item["value"] for item in items] == [10, 11, 12, 13], f"the stream's items in order: {items}")
        until(driver, "sync_add counted", lambda d: text(d, 'tr[data-function="sync_add"] td:nth-of-type(3)') == "1")
        no_horizontal_scroll(driver, "monitor")
        shot(driver, "monitor")

        # Submit: a code task seen queued → running → completed with its output, without reloading.
        go(driver, "submit")
        code = driver.find_element(By.ID, "submit-code")
        code.clear()
        code.send_keys("import time\ntime.sleep(1.5)\nprint('hello from the console')")
        driver.find_element(By.ID, "submit-button").click()
        until(driver, "the task completes", lambda d: d.find_elements(By.CSS_SELECTOR, '#task-timeline li[data-status="completed"]'))
        steps = [li.get_attribute("data-status") for li in driver.find_elements(By.CSS_SELECTOR, "#task-timeline li")]
        check(steps == ["queued", "running", "completed"], f"the task went queued → running → completed: {steps}")
        until(driver, "the task's output", lambda d: "hello from the console" in text(d, "#task-output"))
        check(driver.execute_script("return window.__noReload") == "still the same page", "the task was followed without a reload")
        no_horizontal_scroll(driver, "submit")
        shot(driver, "submit")

        # Tasks: the table, a filter, the detail view.
        go(driver, "tasks")
        until(driver, "the task listed", lambda d: d.find_elements(By.CSS_SELECTOR, "#tasks-body tr[data-task]"))
        Select(driver.find_element(By.ID, "filter-status")).select_by_value("completed")
        row = driver.find_element(By.CSS_SELECTOR, "#tasks-body tr[data-task]")
        row.click()
        until(driver, "the task's detail", lambda d: "hello from the console" in text(d, "#task-output"))
        check("time.sleep" in text(driver, "#task-code"), "the detail shows the task's code")
        Select(driver.find_element(By.ID, "filter-status")).select_by_value("failed")
        until(driver, "the filter", lambda d: "No tasks match" in text(d, "#tasks-body"))
        Select(driver.find_element(By.ID, "filter-status")).select_by_value("")
        no_horizontal_scroll(driver, "tasks")
        shot(driver, "tasks")

        # The overview after all that: the charts have something to show (docs/console.png).
        go(driver, "overview")
        until(driver, "calls counted", lambda d: int(text(d, "#card-calls .value") or "0") >= 2)
        shot(driver, "overview-after")

        # Dark mode: the same page, readable.
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        go(driver, "overview")
        background = driver.execute_script("return getComputedStyle(document.body).backgroundColor")
        check(background != "rgb(247, 248, 250)", f"dark mode changes the colours ({background})")
        shot(driver, "overview-dark")

        # Keyboard: every control can be reached, and has a label.
        unlabeled = driver.execute_script("""
          go = [...document.querySelectorAll('input, select, textarea')].filter(e => !e.labels || e.labels.length === 0);
          return go.map(e => e.id || e.name);""")
        for page in ["monitor", "submit", "tasks"]:
            go(driver, page)
            unlabeled += driver.execute_script("""
              return [...document.querySelectorAll('input, select, textarea')]
                .filter(e => !e.labels || e.labels.length === 0).map(e => e.id || e.name);""")
        check(unlabeled == [], f"every form control has a label ({unlabeled})")

        # No JavaScript errors on any page (network 401s before the token was given are expected).
        logs = driver.get_log("browser")
        errors = [entry for entry in logs if (entry["level"] == "SEVERE" and entry.get("source") != "network")
                  or (entry["level"] == "WARNING" and entry.get("source") in ("console-api", "javascript"))]
        check(errors == [], f"no JavaScript errors: {errors}")
        network = [entry for entry in logs if entry["level"] == "SEVERE" and entry.get("source") == "network"
                   and "401" not in entry["message"]]
        check(network == [], f"no failed requests but the 401 before the token: {network}")
    finally:
        driver.quit()
        for process in processes:
            stop(process)
    if failures:
        print(f"{len(failures)} console check(s) failed", file=sys.stderr)
        sys.exit(1)
    print("console: all checks passed; screenshots in .artifacts/console/")


if __name__ == "__main__":
    main()
