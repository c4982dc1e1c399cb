// Watch: the live feed of revocations, service health from /readyz and figures from
// /metrics.

import { readiness, streamEvents, text } from "./api.js";
import { byId, el, fill } from "./dom.js";
import { parseMetrics, total } from "./prom.js";
import { eventItem, kindBadge } from "./records.js";

const MAX_FEED = 200;
const HEALTH_EVERY_MS = 5000;
let events = [];
let stopStream = null;
let healthTimer = null;

export function startWatching() {
  events = [];
  renderFeed();
  stopStream = streamEvents({
    onEvent(message) {
      try {
        events.unshift(JSON.parse(message.data));
      } catch {
        return;
      }
      if (events.length > MAX_FEED) events.length = MAX_FEED;
      renderFeed();
    },
    onState(state) {
      const pill = byId("feed-state");
      fill(pill, state);
      pill.className = `pill ${state === "live" ? "ok" : "warn"}`;
    },
  });
  refreshHealth();
  healthTimer = setInterval(refreshHealth, HEALTH_EVERY_MS);
}

export function stopWatching() {
  if (stopStream) stopStream();
  stopStream = null;
  clearInterval(healthTimer);
  events = [];
  renderFeed();
  fill(byId("feed-state"), "stopped");
}

function matchesFilter(event) {
  const kind = byId("feed-kind").value;
  const needle = byId("feed-text").value.trim().toLowerCase();
  const record = event.record || {};
  if (kind && record.kind !== kind) return false;
  if (!needle) return true;
  return [record.value, record.reason, record.actor]
    .some((field) => typeof field === "string" && field.toLowerCase().includes(needle));
}

export function renderFeed() {
  const shown = events.filter(matchesFilter);
  const counts = {};
  for (const event of shown) {
    const kind = event.record ? event.record.kind : "?";
    counts[kind] = (counts[kind] || 0) + 1;
  }
  fill(byId("feed-counts"),
    shown.length ? Object.entries(counts).map(([kind, n]) => el("span", { class: "count" },
      kindBadge(kind), ` ${n}`)) : null,
    `${shown.length} of ${events.length} events since sign-in`);
  fill(byId("feed"), shown.length ? shown.map(eventItem)
    : el("li", { class: "none" }, "Waiting for revocations…"));
}

function describe(value) {
  if (value === null || typeof value !== "object") return String(value);
  return Object.entries(value).map(([k, v]) => `${k}: ${typeof v === "object" && v !== null
    ? JSON.stringify(v) : v}`).join(" · ");
}

async function refreshHealth() {
  const box = byId("health");
  try {
    const { ok, body } = await readiness();
    const checks = body.checks || {};
    fill(box,
      el("p", {}, el("span", { class: `pill ${ok ? "ok" : "bad"}` }, ok ? "ready" : "not ready"),
        ok ? "" : ` ${body.detail || ""}`),
      el("dl", { class: "facts" }, Object.entries(checks).map(([name, value]) =>
        [el("dt", {}, name), el("dd", {}, describe(value))])),
      (body.warnings || []).map((w) => el("p", { class: "warning" }, w)));
  } catch (error) {
    fill(box, el("p", {}, el("span", { class: "pill bad" }, "unreachable"), ` ${error.message}`));
  }
  try {
    renderFigures(parseMetrics(await text("/metrics")));
  } catch (error) {
    fill(byId("figures"), el("dt", {}, "metrics"), el("dd", {}, error.message));
  }
}

function renderFigures(samples) {
  const figures = [
    ["Active revocations", total(samples, "revoker_revocations_active")],
    ["Checks: passed", total(samples, "revoker_checks_total", { result: "ok" })],
    ["Checks: revoked", total(samples, "revoker_checks_total", { result: "revoked" })],
    ["Accepted while store down (fail open)", total(samples, "revoker_fail_open_total")],
    ["Store errors", total(samples, "revoker_store_errors_total")],
    ["Open event streams", total(samples, "revoker_streams_open")],
  ];
  fill(byId("figures"), figures.map(([name, value]) => el("div", { class: "figure" },
    el("dt", {}, name), el("dd", {}, Number.isFinite(value) ? value.toLocaleString() : "–"))));
  const rows = samples.filter((s) => s.name === "revoker_revocations_total" && s.value > 0);
  fill(byId("by-source"), rows.length ? el("table", { class: "records" },
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Kind"),
      el("th", { scope: "col" }, "Source"), el("th", { scope: "col" }, "Count"))),
    el("tbody", {}, rows.map((s) => el("tr", {}, el("td", {}, kindBadge(s.labels.kind)),
      el("td", {}, s.labels.source || ""), el("td", { class: "num" }, s.value.toLocaleString())))))
    : el("p", { class: "none" }, "None yet."));
}
