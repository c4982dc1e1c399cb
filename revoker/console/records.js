// Rendering records and audit events: every field through text nodes (see dom.js).

import { countdown, el, when } from "./dom.js";

export const KIND_NAMES = {
  sub: "user", sid: "session", jti: "token", client: "client", kid: "signing key",
};

export function kindBadge(kind) {
  return el("span", { class: `kind kind-${KIND_NAMES[kind] ? kind : "other"}` }, kind);
}

/** What a record blocks, in words. */
export function scopeText(record) {
  const cutoff = record.issued_before;
  switch (record.kind) {
    case "sub": return "tokens of this user issued before the cutoff";
    case "client": return "tokens of this client issued before the cutoff";
    case "sid": return "every token of this session";
    case "kid": return "every token signed with this key";
    case "jti": return "this one token";
    default: return cutoff ? "tokens issued before the cutoff" : "matching tokens";
  }
}

export function recordCard(record, { actions = [] } = {}) {
  const rows = [
    ["Blocks", scopeText(record)],
    ["Reason", record.reason || el("span", { class: "muted" }, "none given")],
    ["Actor", record.actor || el("span", { class: "muted" }, "unknown")],
    ["Revoked", when(record.revoked_at)],
  ];
  if (record.issued_before) rows.push(["Cutoff", when(record.issued_before)]);
  rows.push(["Expires in", el("span", {}, countdown(record.expires_at), " ",
    el("span", { class: "muted" }, "(", when(record.expires_at), ")"))]);
  return el("article", { class: "record", dataset: { kind: record.kind } },
    el("header", {}, kindBadge(record.kind), el("code", { class: "value" }, record.value)),
    el("dl", { class: "facts" }, rows.map(([name, value]) => [el("dt", {}, name),
      el("dd", {}, value)])),
    actions.length ? el("div", { class: "actions" }, actions) : null);
}

export function eventItem(event) {
  const record = event.record || {};
  return el("li", { class: `event event-${event.type}` },
    el("div", { class: "event-head" },
      el("span", { class: `type type-${event.type === "unrevoked" ? "unrevoked" : "revoked"}` },
        event.type),
      kindBadge(record.kind),
      el("code", { class: "value" }, record.value),
      el("span", { class: "event-time" }, when(event.at))),
    el("div", { class: "event-meta" },
      el("span", {}, "by ", el("strong", {}, record.actor || "unknown")),
      record.reason ? el("span", { class: "reason" }, record.reason) : null));
}
