// Monitor: the nodes (status, load against thresholds, resources, slots, functions), the fair
// queue, the functions (calls, error rate, latency) and a form to call or stream one.

import { api } from "../api.js";
import { store } from "../store.js";
import { badge, fill, h, meter, number, percent, time } from "../util.js";

export const title = "Monitor";
let nodesBody;
let queueList;
let functionsBody;
let form;
let select;
let result;
let items;
let running = null;

export function enter(main) {
  nodesBody = h("tbody", { id: "nodes-body" });
  queueList = h("ol", { id: "fair-queue", class: "events", "aria-label": "Fair queue: who gets the next task" });
  functionsBody = h("tbody", { id: "functions-body" });
  select = h("select", { id: "call-function", name: "function", required: true });
  const args = h("textarea", { id: "call-args", name: "args", rows: 3, spellcheck: "false" }, "[2, 3]");
  const timeout = h("input", { id: "call-timeout", name: "timeout", type: "number", min: "0.001", max: "3600", step: "any", value: "30" });
  result = h("pre", { id: "call-result", "aria-live": "polite", "aria-label": "Result" }, "—");
  items = h("ol", { id: "stream-items", class: "events", "aria-label": "Stream items" });
  form = h(
    "form",
    { class: "stack", id: "call-form", onsubmit: callFunction },
    h("div", { class: "row" },
      h("div", {}, h("label", { for: "call-function" }, "Function"), select),
      h("div", {}, h("label", { for: "call-timeout" }, "Timeout (s)"), timeout)),
    h("div", {}, h("label", { for: "call-args" }, "Arguments (a JSON array, or an object of keyword arguments)"), args),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "secondary", id: "call-stop", onclick: stopStream, disabled: true }, "Stop"),
      h("button", { type: "submit", id: "call-submit" }, "Call")),
  );
  select.addEventListener("change", () => labelButton());
  main.append(
    h("h1", {}, "Monitor"),
    h("section", { class: "panel", "aria-labelledby": "nodes-title" },
      h("h2", { id: "nodes-title" }, "Nodes"),
      h("div", { class: "table-wrap" },
        h("table", { id: "nodes-table" },
          h("thead", {}, h("tr", {}, ["Node", "Status", "CPU", "Memory", "Resources", "Slots", "Functions", "Joined"].map((c) => h("th", { scope: "col" }, c)))),
          nodesBody))),
    h("div", { class: "split" },
      h("section", { class: "panel", "aria-labelledby": "functions-title" },
        h("h2", { id: "functions-title" }, "Functions"),
        h("div", { class: "table-wrap" },
          h("table", {},
            h("thead", {}, h("tr", {}, ["Function", "Kind", "Nodes", "Calls", "Errors", "Avg ms"].map((c) => h("th", { scope: "col" }, c)))),
            functionsBody))),
      h("section", { class: "panel", "aria-labelledby": "queue-title" },
        h("h2", { id: "queue-title" }, "Fair queue"),
        h("p", { class: "muted" }, "Idle nodes in the order they get the next task."),
        queueList)),
    h("section", { class: "panel", "aria-labelledby": "call-title" },
      h("h2", { id: "call-title" }, "Call a function"),
      form,
      h("h2", {}, "Result"), result, items),
  );
  update("snapshot");
}

export function leave() {
  stopStream();
}

export function update(kind) {
  const functionsByNode = new Map();
  for (const f of store.functions) for (const node of f.nodes ?? []) functionsByNode.set(node, (functionsByNode.get(node) ?? 0) + 1);
  const nodes = [...store.nodes.values()].sort((a, b) => a.node_id.localeCompare(b.node_id));
  fill(
    nodesBody,
    nodes.length === 0
      ? h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No nodes yet: start one with `easyremote node`."))
      : nodes.map((node) =>
          h("tr", { "data-node": node.node_id, "data-status": node.status },
            h("th", { scope: "row" }, node.node_id),
            h("td", {}, badge(node.status)),
            h("td", {}, meter(node.current_load.cpu_percent, node.thresholds?.max_cpu_percent ?? 80, `${node.node_id} CPU`)),
            h("td", {}, meter(node.current_load.memory_percent, node.thresholds?.max_memory_percent ?? 90, `${node.node_id} memory`)),
            h("td", {}, `${node.resources.cpu_cores} cores, ${number(node.resources.memory_mb)} MB, ${node.platform}`),
            h("td", {}, `${node.running} / ${node.slots}`),
            h("td", {}, number(functionsByNode.get(node.node_id) ?? 0)),
            h("td", {}, time(node.joined_at)))),
  );
  const queue = store.stats?.queue ?? [];
  fill(
    queueList,
    queue.length === 0
      ? h("li", { class: "muted" }, "No idle node waits for work.")
      : queue.map((entry, index) =>
          h("li", { "data-node": entry.node_id },
            `${index + 1}. ${entry.node_id} `,
            h("span", { class: `badge ${entry.priority}` }, entry.priority),
            ` ${entry.reason.replaceAll("_", " ")}, waiting ${number(entry.wait_time_seconds, 1)} s`)),
  );
  const perFunction = store.stats?.functions ?? {};
  fill(
    functionsBody,
    store.functions.map((f) => {
      const figures = perFunction[f.name];
      return h("tr", { "data-function": f.name },
        h("th", { scope: "row" }, f.name),
        h("td", {}, f.streaming ? "stream" : "call"),
        h("td", {}, (f.nodes ?? []).join(", ")),
        h("td", {}, number(figures?.calls ?? 0)),
        h("td", {}, figures && figures.calls > 0 ? percent(figures.failures / figures.calls) : "–"),
        h("td", {}, figures ? number(figures.avg_ms, 1) : "–"));
    }),
  );
  if (kind === "snapshot" || kind === "functions") {
    const chosen = select.value;
    fill(select, store.functions.map((f) => h("option", { value: f.name, selected: f.name === chosen }, f.streaming ? `${f.name} (stream)` : f.name)));
    if (!chosen && store.functions.some((f) => f.name === "sync_add")) select.value = "sync_add";
    labelButton();
  }
}

function chosenFunction() {
  return store.functions.find((f) => f.name === select.value);
}

function labelButton() {
  document.getElementById("call-submit").textContent = chosenFunction()?.streaming ? "Stream" : "Call";
}

function readArguments() {
  const text = document.getElementById("call-args").value.trim();
  const value = text ? JSON.parse(text) : [];
  if (Array.isArray(value)) return { args: value };
  if (value && typeof value === "object") return { kwargs: value };
  return { args: [value] };
}

async function callFunction(event) {
  event.preventDefault();
  const fn = chosenFunction();
  if (!fn) return;
  let body;
  try {
    body = readArguments();
  } catch (error) {
    result.textContent = `The arguments are not JSON: ${error.message}`;
    return;
  }
  body.timeout = Number(document.getElementById("call-timeout").value) || 30;
  fill(items);
  const submitButton = document.getElementById("call-submit");
  submitButton.disabled = true;
  try {
    if (fn.streaming) await streamFunction(fn.name, body);
    else {
      result.textContent = "Calling…";
      const answer = await api(`/functions/${encodeURIComponent(fn.name)}/call`, { method: "POST", body });
      result.textContent = JSON.stringify(answer.result, null, 2);
    }
  } catch (error) {
    result.textContent = `${error.code ?? "ERROR"}: ${error.message}`;
  } finally {
    submitButton.disabled = false;
  }
}

/** Shows a stream's items as they arrive (one JSON value per line from the API). */
async function streamFunction(name, body) {
  const controller = new AbortController();
  running = controller;
  document.getElementById("call-stop").disabled = false;
  result.textContent = "Streaming…";
  let count = 0;
  try {
    const response = await api(`/functions/${encodeURIComponent(name)}/stream`, { method: "POST", body, raw: true, signal: controller.signal });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (!line) continue;
        const item = JSON.parse(line);
        if (item && item.error) throw Object.assign(new Error(item.error.message), { code: item.error.code });
        count += 1;
        items.append(h("li", {}, JSON.stringify(item)));
        if (items.children.length > 500) items.firstElementChild.remove();
      }
    }
    result.textContent = `${count} items, done.`;
  } catch (error) {
    if (error.name === "AbortError") result.textContent = `${count} items, stopped.`;
    else throw error;
  } finally {
    running = null;
    document.getElementById("call-stop").disabled = true;
  }
}

function stopStream() {
  running?.abort();
}
