// Small DOM and formatting helpers shared by the pages.

/** Builds an element: h("td", {class: "x", "data-id": 1}, "text", child...). */
export function h(tag, attributes = {}, ...children) {
  const element = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Replaces the children of `element`. */
export function fill(element, ...children) {
  element.replaceChildren(...children.flat().filter((c) => c !== undefined && c !== null && c !== false));
  return element;
}

export function badge(status) {
  return h("span", { class: "badge", "data-status": status }, status);
}

export function number(value, digits = 0) {
  if (value === undefined || value === null || Number.isNaN(value)) return "–";
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function percent(value) {
  if (value === undefined || value === null || !Number.isFinite(value)) return "–";
  return `${(value * 100).toFixed(1)}%`;
}

export function time(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "–" : date.toLocaleTimeString();
}

export function seconds(value) {
  if (value === undefined || value === null) return "–";
  if (value < 1) return `${(value * 1000).toFixed(0)} ms`;
  if (value < 120) return `${value.toFixed(1)} s`;
  return `${(value / 60).toFixed(1)} min`;
}

/** A bar of `value` (0–100) with a mark at `limit`: load against a node's threshold. */
export function meter(value, limit, label) {
  const fill = h("span", { class: value >= limit ? "fill over" : "fill" });
  fill.style.width = `${Math.min(100, Math.max(0, value))}%`;
  const mark = h("span", { class: "limit", title: `threshold ${limit}%` });
  mark.style.left = `${Math.min(100, Math.max(0, limit))}%`;
  return h(
    "span",
    {},
    h("span", { class: "meter", role: "meter", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": value.toFixed(0), "aria-label": label }, fill, mark),
    h("span", { class: "meter-label" }, `${value.toFixed(0)}% / ${limit}%`),
  );
}
