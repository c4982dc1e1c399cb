// The console's only way to the revoker API. The key lives in this module's memory for the
// life of the tab: never in a URL, a cookie or web storage, so a reload signs out.

let apiKey = null;

export class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail || title || `HTTP ${status}`);
    this.status = status;
    this.title = title;
  }
}

export function setKey(key) { apiKey = key; }
export function clearKey() { apiKey = null; }
export function hasKey() { return apiKey !== null; }

function headers(extra) {
  const out = { Accept: "application/json", ...extra };
  if (apiKey !== null) out.Authorization = `Bearer ${apiKey}`;
  return out;
}

async function failure(response) {
  let title = response.statusText;
  let detail = "";
  try {
    const body = await response.json();
    title = body.title || title;
    detail = body.detail || body.error_description || "";
  } catch {
    // not a problem document: keep the status line
  }
  return new ApiError(response.status, title, detail);
}

/** A JSON call; resolves to {status, body} (body null for 204) or throws ApiError. */
export async function call(method, path, { body, query } = {}) {
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.set(name, value);
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  const init = { method, headers: headers(), credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    init.headers = headers({ "Content-Type": "application/json" });
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return { status: 204, body: null };
  return { status: response.status, body: await response.json() };
}

/** Plain text without a key (the Prometheus scrape). */
export async function text(path) {
  const response = await fetch(path, { credentials: "omit", cache: "no-store" });
  if (!response.ok) throw await failure(response);
  return response.text();
}

/** /readyz answers 503 with a problem body that still carries the checks. */
export async function readiness() {
  const response = await fetch("/readyz", { credentials: "omit", cache: "no-store" });
  let body = {};
  try { body = await response.json(); } catch { body = {}; }
  return { ok: response.ok, body };
}

export function recordPath(kind, value) {
  return `/v1/revocations/${encodeURIComponent(kind)}/${encodeURIComponent(value)}`;
}

/**
 * Server-Sent Events over fetch(): EventSource cannot send the Authorization header.
 * Calls onEvent({id, event, data}) per message and onState(text) on changes; reconnects
 * with Last-Event-ID (so nothing is missed) until the returned stop() is called.
 */
export function streamEvents({ onEvent, onState }) {
  const controller = new AbortController();
  let lastId = null;
  let stopped = false;
  let retryMs = 2000;

  async function once() {
    const extra = { Accept: "text/event-stream" };
    if (lastId !== null) extra["Last-Event-ID"] = lastId;
    const response = await fetch("/v1/events/stream", {
      headers: headers(extra), credentials: "omit", cache: "no-store",
      signal: controller.signal,
    });
    if (!response.ok) throw await failure(response);
    onState("live");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const message = parseBlock(block);
        if (message.retry) retryMs = message.retry;
        if (message.id !== null) lastId = message.id;
        if (message.data !== null) onEvent(message);
      }
    }
  }

  (async () => {
    while (!stopped) {
      try {
        await once();
        if (!stopped) onState("reconnecting");
      } catch (error) {
        if (stopped) return;
        onState(error instanceof ApiError && error.status < 500 ? `stopped: ${error.message}`
          : "reconnecting");
        if (error instanceof ApiError && error.status < 500) return;
      }
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  })();

  return () => { stopped = true; controller.abort(); };
}

/** One SSE block: field lines, comments (":") ignored, data lines joined with "\n". */
export function parseBlock(block) {
  const message = { id: null, event: "message", data: null, retry: 0 };
  const data = [];
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    else if (field === "id") message.id = value;
    else if (field === "event") message.event = value;
    else if (field === "retry" && /^\d+$/.test(value)) message.retry = Number(value);
  }
  if (data.length) message.data = data.join("\n");
  return message;
}
