// Tasks: a filterable table (status, kind, node), updated by the task events; a detail view.

import { loadTask, loadTasks, store } from "../store.js";
import { badge, fill, h, seconds, time } from "../util.js";
import { drawTask } from "./taskDetail.js";

export const title = "Tasks";
let body;
let detail;
let filters;
let selected = null;

export function enter(main) {
  selected = new URLSearchParams(location.search).get("task");
  body = h("tbody", { id: "tasks-body" });
  detail = h("section", { class: "panel", id: "task-detail", "aria-live": "polite", "aria-label": "Task detail" },
    h("p", { class: "muted" }, "Choose a task to see it in full."));
  const choice = (id, label, values) =>
    h("div", {}, h("label", { for: id }, label),
      h("select", { id, onchange: () => update("tasks") }, h("option", { value: "" }, "any"), values.map((v) => h("option", { value: v }, v))));
  filters = h("div", { class: "row", role: "search", "aria-label": "Filter tasks" },
    choice("filter-status", "Status", ["queued", "running", "completed", "failed", "timeout", "cancelled"]),
    choice("filter-kind", "Kind", ["code", "function"]),
    h("div", {}, h("label", { for: "filter-node" }, "Node"), h("input", { id: "filter-node", type: "search", placeholder: "node id", oninput: () => update("tasks") })));
  main.append(
    h("h1", {}, "Tasks"),
    h("div", { class: "split" },
      h("section", { class: "panel", "aria-labelledby": "tasks-title" },
        h("h2", { id: "tasks-title" }, "Recent tasks"),
        filters,
        h("div", { class: "table-wrap" },
          h("table", { id: "tasks-table" },
            h("thead", {}, h("tr", {}, ["Task", "Kind", "Status", "Node", "Created", "Ran"].map((c) => h("th", { scope: "col" }, c)))),
            body))),
      detail),
  );
  update("tasks");
  loadTasks().catch(() => {});
  if (selected) loadTask(selected).catch(() => {});
}

export function update(kind) {
  if (kind !== "tasks" && kind !== "snapshot") return;
  const status = document.getElementById("filter-status")?.value ?? "";
  const kindFilter = document.getElementById("filter-kind")?.value ?? "";
  const node = (document.getElementById("filter-node")?.value ?? "").trim();
  const tasks = [...store.tasks.values()]
    .filter((t) => (!status || t.status === status) && (!kindFilter || t.kind === kindFilter))
    .filter((t) => !node || (t.node_id ?? "").includes(node))
    .sort((a, b) => (b.created_at ?? "").localeCompare(a.created_at ?? ""))
    .slice(0, 200);
  fill(
    body,
    tasks.length === 0
      ? h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No tasks match."))
      : tasks.map((task) =>
          h("tr", {
              class: "clickable", tabindex: 0, "data-task": task.task_id, "aria-selected": task.task_id === selected ? "true" : "false",
              onclick: () => choose(task.task_id),
              onkeydown: (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); choose(task.task_id); } },
            },
            h("td", {}, h("code", {}, task.task_id.slice(0, 18))),
            h("td", {}, task.kind),
            h("td", {}, badge(task.status)),
            h("td", {}, task.node_id ?? "–"),
            h("td", {}, time(task.created_at)),
            h("td", {}, seconds(task.execution_time)))),
  );
  if (selected) drawTask(detail, selected);
}

function choose(id) {
  selected = id;
  history.replaceState({}, "", `/web/tasks?task=${encodeURIComponent(id)}`);
  update("tasks");
  document.getElementById("task-detail").focus?.();
}
