// What the console knows: one snapshot at load (GET /snapshot), then every event of
// /ws/updates applied as it comes. Pages subscribe and redraw; nothing polls.

import { api } from "./api.js";

const historySeconds = 600;

export const store = {
  nodes: new Map(), // node_id → the object GET /nodes/{id} answers
  functions: [], // GET /functions
  stats: null, // the last `stats` event
  tasks: new Map(), // task_id → the object GET /tasks/{id} answers
  timelines: new Map(), // task_id → [{status, at}] as events arrived
  history: [], // [{time, callsPerSecond, tasksPerSecond, queue, load: {node: cpu}}]
  events: [], // the last events, newest first, for people to read
  maxWorkers: null,
  listeners: new Set(),
};

export function subscribe(listener) {
  store.listeners.add(listener);
  return () => store.listeners.delete(listener);
}

function changed(kind) {
  for (const listener of store.listeners) listener(kind);
}

export async function loadSnapshot() {
  const snapshot = await api("/snapshot");
  store.nodes = new Map(snapshot.nodes.map((node) => [node.node_id, node]));
  store.functions = snapshot.functions;
  store.maxWorkers = snapshot.max_workers;
  store.stats = snapshot.stats;
  changed("snapshot");
}

export async function loadFunctions() {
  store.functions = (await api("/functions")).functions;
  changed("functions");
}

export async function loadTasks(query = "") {
  const list = await api(`/tasks?limit=200${query}`);
  for (const task of list.tasks) remember(task);
  changed("tasks");
}

export async function loadTask(id) {
  remember(await api(`/tasks/${encodeURIComponent(id)}`));
  changed("tasks");
}

const rank = { queued: 0, running: 1 };

/** Keeps the newest of what is known of a task: an answer fetched before an event that
 * came in the meantime must not move it back (a requeued task, with more attempts, may). */
function remember(task) {
  const known = store.tasks.get(task.task_id);
  if (known && known.max_attempts > 0 && (task.attempts ?? 0) <= (known.attempts ?? 0)) {
    if ((rank[task.status] ?? 2) < (rank[known.status] ?? 2)) return;
  }
  store.tasks.set(task.task_id, task);
  const timeline = store.timelines.get(task.task_id) ?? [];
  if (timeline.length === 0) {
    timeline.push({ status: "queued", at: task.created_at });
    if (task.started_at) timeline.push({ status: "running", at: task.started_at });
    if (task.finished_at && task.status !== "queued" && task.status !== "running") {
      timeline.push({ status: task.status, at: task.finished_at });
    }
  } else if (timeline.at(-1).status !== task.status) {
    timeline.push({ status: task.status, at: new Date().toISOString() });
  }
  store.timelines.set(task.task_id, timeline);
}

function note(text) {
  store.events.unshift({ text, at: new Date() });
  store.events.length = Math.min(store.events.length, 50);
}

/** One event of /ws/updates. */
export function apply({ event, data }) {
  switch (event) {
    case "stats":
      record(data);
      store.stats = data;
      for (const node of data.nodes) {
        const known = store.nodes.get(node.node_id);
        if (known) {
          known.status = node.status;
          known.current_load = node.load;
          known.running = node.running;
          known.slots = node.slots;
        }
      }
      changed("stats");
      return;
    case "node_joined":
      store.nodes.set(data.node_id, data);
      note(`node ${data.node_id} joined`);
      changed("nodes");
      return;
    case "node_left": {
      // {node_id, reason}: the node stays listed, offline.
      const known = store.nodes.get(data.node_id);
      if (known) known.status = "offline";
      note(`node ${data.node_id} left${data.reason ? ` (${data.reason})` : ""}`);
      changed("nodes");
      return;
    }
    case "node_connected":
    case "node_disconnected":
      note(`node ${data.node_id} ${event === "node_connected" ? "connected" : `disconnected (${data.reason})`}`);
      if (event === "node_disconnected") {
        const known = store.nodes.get(data.node_id);
        if (known) known.status = "offline";
      }
      loadFunctions().catch(() => {}); // the functions it serves came or went
      changed("nodes");
      return;
    case "task_created":
    case "task_started":
    case "task_completed":
    case "task_failed":
      remember(data);
      note(`task ${data.task_id} ${data.status}`);
      changed("tasks");
      return;
    default:
      return;
  }
}

/** Keeps what the charts draw: rates from the `stats` events' totals. */
function record(stats) {
  const time = new Date(stats.time).getTime() / 1000;
  const previous = store.stats;
  const finished = (s) => ["completed", "failed", "timeout", "cancelled"].reduce((sum, k) => sum + (s.tasks[k] ?? 0), 0);
  let callsPerSecond = 0;
  let tasksPerSecond = 0;
  if (previous && previous.time) {
    const elapsed = Math.max(0.001, time - new Date(previous.time).getTime() / 1000);
    callsPerSecond = Math.max(0, (stats.calls_total - previous.calls_total) / elapsed);
    tasksPerSecond = Math.max(0, (finished(stats) - finished(previous)) / elapsed);
  }
  const load = {};
  for (const node of stats.nodes) if (node.status !== "offline") load[node.node_id] = node.load.cpu_percent;
  store.history.push({ time, callsPerSecond, tasksPerSecond, queue: stats.queue_length, load });
  while (store.history.length && store.history[0].time < time - historySeconds) store.history.shift();
}
