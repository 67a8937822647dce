// Line charts in SVG, drawn from the store's history: no library.

import { h } from "./util.js";

/**
 * A chart of `series` ([{name, points: [[time, value]]}]) over the last `span` seconds.
 * The SVG has a text alternative: the latest value of each series.
 */
export function lineChart({ title, series, span = 300, unit = "", max }) {
  const width = 560;
  const height = 160;
  const pad = { left: 40, right: 8, top: 8, bottom: 18 };
  const now = Date.now() / 1000;
  const start = now - span;
  const values = series.flatMap((s) => s.points.map(([, value]) => value));
  const top = Math.max(max ?? 0, ...values, 1) * (max ? 1 : 1.15);
  const x = (t) => pad.left + ((t - start) / span) * (width - pad.left - pad.right);
  const y = (v) => height - pad.bottom - (v / top) * (height - pad.top - pad.bottom);
  const latest = series
    .map((s) => `${s.name}: ${s.points.length ? s.points.at(-1)[1].toFixed(1) : "no data"}${unit}`)
    .join(", ");
  const svg = h(
    "svg:svg",
    { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title}. Now: ${latest || "no data"}` },
    h("svg:line", { class: "axis", x1: pad.left, x2: width - pad.right, y1: y(0), y2: y(0) }),
    h("svg:line", { class: "axis", x1: pad.left, x2: pad.left, y1: pad.top, y2: y(0) }),
    h("svg:text", { x: 4, y: pad.top + 10 }, formatAxis(top, unit)),
    h("svg:text", { x: 4, y: y(0) }, `0${unit}`),
    h("svg:text", { x: pad.left, y: height - 4 }, `${Math.round(span / 60)} min ago`),
    h("svg:text", { x: width - pad.right - 24, y: height - 4 }, "now"),
    ...series.map((s, index) =>
      h("svg:polyline", {
        class: `series s${(index % 5) + 1}`,
        points: s.points.filter(([t]) => t >= start).map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" "),
      }),
    ),
  );
  return h(
    "div",
    { class: "chart panel" },
    h("h2", {}, title),
    svg,
    h("div", { class: "legend", "aria-hidden": "true" }, series.map((s, index) => h("span", { class: `s${(index % 5) + 1}` }, s.name))),
  );
}

function formatAxis(value, unit) {
  return value >= 100 ? `${Math.round(value)}${unit}` : `${value.toFixed(1)}${unit}`;
}
