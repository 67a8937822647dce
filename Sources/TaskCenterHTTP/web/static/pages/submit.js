// Submit: a code task from a form; its progress shown as the events come, until its result.

import { api } from "../api.js";
import { loadTask, store } from "../store.js";
import { h } from "../util.js";
import { drawTask } from "./taskDetail.js";

export const title = "Submit";
let progress;
let current = null;

export function enter(main) {
  progress = h("section", { class: "panel", id: "submit-progress", "aria-live": "polite", "aria-label": "Progress of the task" },
    h("p", { class: "muted" }, "The task you submit shows here, live."));
  const error = h("p", { id: "submit-error", class: "error", role: "alert" });
  const form = h(
    "form",
    { class: "stack", id: "submit-form", onsubmit: (event) => submit(event, error) },
    h("div", {}, h("label", { for: "submit-code" }, "Python code"),
      h("textarea", { id: "submit-code", name: "code", required: true, spellcheck: "false" }, "print(sum(range(10)))")),
    h("div", { class: "row" },
      h("div", {}, h("label", { for: "submit-timeout" }, "Timeout (seconds)"), h("input", { id: "submit-timeout", type: "number", min: 1, max: 86400, value: 60 })),
      h("div", {}, h("label", { for: "submit-cpu" }, "CPU cores"), h("input", { id: "submit-cpu", type: "number", min: 1, max: 256, step: 1, value: 1 })),
      h("div", {}, h("label", { for: "submit-memory" }, "Memory (MB)"), h("input", { id: "submit-memory", type: "number", min: 16, max: 1048576, step: 1, value: 512 }))),
    error,
    h("div", { class: "actions" }, h("button", { type: "submit", id: "submit-button" }, "Submit task")),
  );
  main.append(h("h1", {}, "Submit a task"), h("div", { class: "split" }, h("section", { class: "panel" }, form), progress));
  if (current) update("tasks");
}

export function update(kind) {
  if (!current || (kind !== "tasks" && kind !== "snapshot")) return;
  drawTask(progress, current);
}

async function submit(event, error) {
  event.preventDefault();
  error.textContent = "";
  const button = document.getElementById("submit-button");
  button.disabled = true;
  try {
    const answer = await api("/tasks", {
      method: "POST",
      body: {
        code: document.getElementById("submit-code").value,
        timeout: Number(document.getElementById("submit-timeout").value),
        resources: { cpu: Number(document.getElementById("submit-cpu").value), memory: Number(document.getElementById("submit-memory").value) },
      },
    });
    current = answer.task_id;
    // Shown at once as queued; the events move it on (the record is fetched once, for its details).
    if (!store.tasks.has(current)) {
      store.tasks.set(current, { task_id: current, status: answer.status, kind: "code", attempts: 0, max_attempts: 0, created_at: new Date().toISOString() });
      store.timelines.set(current, [{ status: answer.status, at: new Date().toISOString() }]);
    }
    drawTask(progress, current);
    await loadTask(current);
  } catch (failure) {
    error.textContent = `${failure.code ?? "ERROR"}: ${failure.message}`;
  } finally {
    button.disabled = false;
  }
}
