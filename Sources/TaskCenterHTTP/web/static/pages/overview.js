// Overview: the pool at a glance, and charts of the last minutes.

import { lineChart } from "../chart.js";
import { store } from "../store.js";
import { fill, h, number } from "../util.js";

export const title = "Overview";
let cards;
let charts;
let events;

export function enter(main) {
  cards = h("section", { class: "cards", "aria-label": "Summary" });
  charts = h("section", { class: "grid", "aria-label": "Charts" });
  events = h("ol", { class: "events", "aria-live": "polite", "aria-label": "Recent events" });
  main.append(
    h("h1", {}, "Overview"),
    cards,
    charts,
    h("section", { class: "panel" }, h("h2", {}, "Recent events"), events),
  );
  update();
}

export function update() {
  const nodes = [...store.nodes.values()];
  const online = nodes.filter((n) => n.status !== "offline");
  const stats = store.stats;
  const card = (label, value, id) => h("div", { class: "card", id }, h("div", { class: "value" }, value), h("div", { class: "label" }, label));
  fill(
    cards,
    card("nodes online", number(online.length), "card-nodes"),
    card("idle", number(online.filter((n) => n.status === "idle").length)),
    card("functions", number(store.functions.length)),
    card("calls in flight", number(stats?.calls_in_flight ?? 0)),
    card("tasks queued", number(stats?.tasks?.queued ?? 0), "card-queued"),
    card("tasks running", number(stats?.tasks?.running ?? 0)),
    card("tasks completed", number(stats?.tasks?.completed ?? 0)),
    card("calls", number(stats?.calls_total ?? 0), "card-calls"),
  );
  const history = store.history;
  const nodeIDs = [...new Set(history.flatMap((p) => Object.keys(p.load)))].slice(0, 5);
  fill(
    charts,
    lineChart({ title: "Calls per second", series: [{ name: "calls/s", points: history.map((p) => [p.time, p.callsPerSecond]) }] }),
    lineChart({ title: "Tasks finished per second", series: [{ name: "tasks/s", points: history.map((p) => [p.time, p.tasksPerSecond]) }] }),
    lineChart({ title: "Queue length", series: [{ name: "queued tasks", points: history.map((p) => [p.time, p.queue]) }] }),
    lineChart({
      title: "Node CPU load",
      unit: "%",
      max: 100,
      series: nodeIDs.map((id) => ({ name: id, points: history.filter((p) => id in p.load).map((p) => [p.time, p.load[id]]) })),
    }),
  );
  // Only when there is news: the list is read out to screen readers.
  const newest = store.events[0] ? `${store.events[0].at.getTime()} ${store.events[0].text}` : "";
  if (events.dataset.newest !== newest) {
    events.dataset.newest = newest;
    fill(events, store.events.slice(0, 12).map((e) => h("li", {}, `${e.at.toLocaleTimeString()} — ${e.text}`)));
  }
}
