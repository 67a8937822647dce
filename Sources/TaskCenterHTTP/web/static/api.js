// The HTTP API and the live event stream, with the gateway's token kept for this tab.

const tokenKey = "easyremote-token";
let askingForToken = null;

export function token() {
  return sessionStorage.getItem(tokenKey) ?? "";
}

export class APIError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code ?? "HTTP_ERROR";
  }
}

/** Asks for the token once (the dialog), remembers it for the tab. */
function askForToken(message) {
  if (askingForToken) return askingForToken;
  askingForToken = new Promise((resolve) => {
    const dialog = document.getElementById("token-dialog");
    const form = document.getElementById("token-form");
    const input = document.getElementById("token-input");
    document.getElementById("token-error").textContent = message ?? "";
    form.addEventListener(
      "submit",
      (event) => {
        event.preventDefault();
        sessionStorage.setItem(tokenKey, input.value.trim());
        dialog.close();
        askingForToken = null;
        resolve();
      },
      { once: true },
    );
    dialog.showModal();
    input.focus();
  });
  return askingForToken;
}

/** Calls the API; on 401 asks for the token and tries again. */
export async function api(path, { method = "GET", body, raw = false, signal } = {}) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = `Bearer ${token()}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, { method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body) });
    if (response.status === 401) {
      await askForToken(token() ? "That token was refused." : "");
      continue;
    }
    if (raw) {
      if (!response.ok) throw new APIError(response.status, await response.json().catch(() => null));
      return response;
    }
    const json = await response.json().catch(() => null);
    if (!response.ok) throw new APIError(response.status, json);
    return json;
  }
  throw new APIError(401, { error: { code: "UNAUTHORIZED", message: "no valid token" } });
}

/**
 * Follows `/ws/updates`: calls `onEvent({event, data})` for each event, `onState` with
 * "live" / "down"; reconnects with backoff (then `onReconnect`, to reload what was missed).
 */
export function follow({ onEvent, onState, onReconnect }) {
  let delay = 500;
  let opened = false;
  const connect = async () => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    // With a token: a short-lived ticket for this one connection, never the token in a URL.
    let query = "";
    if (token()) {
      try {
        query = `?ticket=${encodeURIComponent((await api("/ws/ticket", { method: "POST" })).ticket)}`;
      } catch (error) {
        onState("down");
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 10_000);
        return;
      }
    }
    const socket = new WebSocket(`${scheme}://${location.host}/ws/updates${query}`);
    socket.addEventListener("open", () => {
      delay = 500;
      onState("live");
      if (opened) onReconnect?.();
      opened = true;
    });
    socket.addEventListener("message", (message) => {
      try {
        onEvent(JSON.parse(message.data));
      } catch (error) {
        console.warn("an event the console could not read", error);
      }
    });
    socket.addEventListener("close", () => {
      onState("down");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10_000);
    });
  };
  connect();
}
