// The console: one page whose script shows the part the path names, kept live by the
// gateway's events. Links between the parts change the view without reloading.

import { follow } from "./api.js";
import { apply, loadSnapshot, store, subscribe } from "./store.js";
import * as overview from "./pages/overview.js";
import * as monitor from "./pages/monitor.js";
import * as tasks from "./pages/tasks.js";
import * as submit from "./pages/submit.js";

const pages = { "/web": overview, "/web/monitor": monitor, "/web/tasks": tasks, "/web/submit": submit };
const main = document.getElementById("main");
let current = null;
let unsubscribe = null;

function show(path, { focus = false } = {}) {
  const page = pages[path] ?? overview;
  unsubscribe?.();
  current?.leave?.();
  current = page;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.getAttribute("href") === path) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${page.title} · EasyRemote console`;
  main.replaceChildren();
  page.enter(main);
  unsubscribe = subscribe((kind) => page.update?.(kind));
  main.setAttribute("aria-busy", "false");
  if (focus) main.focus();
}

document.querySelector("nav").addEventListener("click", (event) => {
  const link = event.target.closest("a");
  if (!link || event.metaKey || event.ctrlKey || event.shiftKey) return;
  event.preventDefault();
  const path = link.getAttribute("href");
  history.pushState({}, "", path);
  show(path, { focus: true });
});
window.addEventListener("popstate", () => show(location.pathname));

/** Lets a page move to another part (the submit page to the task it made). */
export function go(path) {
  history.pushState({}, "", path);
  show(new URL(path, location.href).pathname, { focus: true });
}

const live = document.getElementById("live");
function setLive(state) {
  live.dataset.state = state;
  live.textContent = state === "live" ? "Live" : "Reconnecting…";
}

async function boot() {
  try {
    await loadSnapshot();
  } catch (error) {
    main.replaceChildren(Object.assign(document.createElement("p"), { className: "error", textContent: `Cannot load the gateway's state: ${error.message}` }));
    return;
  }
  show(location.pathname);
  follow({ onEvent: apply, onState: setLive, onReconnect: () => loadSnapshot().catch(() => {}) });
}

window.easyremote = { store };
boot();
