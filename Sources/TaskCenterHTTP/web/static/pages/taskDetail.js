// One task in full: what it runs, its output, its timeline (as events came), cancel.

import { api } from "../api.js";
import { loadTask, store } from "../store.js";
import { badge, fill, h, seconds, time } from "../util.js";

/** Draws task `id` into `container`; returns false when it is not known yet. */
export function drawTask(container, id) {
  const task = store.tasks.get(id);
  if (!task) return false;
  const timeline = store.timelines.get(id) ?? [];
  const running = task.status === "queued" || task.status === "running";
  fill(
    container,
    h("h2", {}, "Task ", h("code", {}, task.task_id), " ", badge(task.status)),
    h("ol", { class: "timeline", "aria-label": "Timeline", id: "task-timeline" },
      timeline.map((step) => h("li", { "data-status": step.status }, `${step.status} ${time(step.at)}`))),
    h("dl", { class: "facts" },
      h("dt", {}, "Kind"), h("dd", {}, task.kind),
      h("dt", {}, "Node"), h("dd", {}, task.node_id ?? task.executed_on ?? "–"),
      h("dt", {}, "Attempts"), h("dd", {}, `${task.attempts} of ${task.max_attempts}`),
      h("dt", {}, "Resources"), h("dd", {}, `${task.resources?.cpu ?? "–"} CPU, ${task.resources?.memory ?? "–"} MB`),
      h("dt", {}, "Timeout"), h("dd", {}, seconds(task.timeout)),
      h("dt", {}, "Ran for"), h("dd", {}, seconds(task.execution_time)),
      h("dt", {}, "Exit status"), h("dd", {}, task.exit_status ?? "–"),
      task.error_message ? [h("dt", {}, "Error"), h("dd", { class: "error" }, task.error_message)] : null),
    task.kind === "code"
      ? [h("h2", {}, "Code"), h("pre", { id: "task-code" }, task.code ?? "")]
      : [h("h2", {}, "Call"), h("pre", { id: "task-call" }, `${task.function}(${JSON.stringify(task.args ?? task.arguments ?? [])})`)],
    h("h2", {}, "Output"),
    h("pre", { id: "task-output", "aria-live": "polite" }, task.stdout ?? (task.result === undefined ? "" : JSON.stringify(task.result)) ?? ""),
    task.stderr ? [h("h2", {}, "Errors (stderr)"), h("pre", { id: "task-stderr" }, task.stderr)] : null,
    running
      ? h("div", { class: "actions" },
          h("button", { class: "danger", id: "task-cancel", onclick: () => cancel(task.task_id) }, "Cancel task"))
      : null,
  );
  return true;
}

async function cancel(id) {
  try {
    await api(`/tasks/${encodeURIComponent(id)}`, { method: "DELETE" });
    await loadTask(id);
  } catch (error) {
    alert(`Cannot cancel: ${error.message}`);
  }
}
