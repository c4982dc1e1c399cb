// Find (what is revoked for a user, session, token, client or key) and Act on it.

import { ApiError, call, recordPath } from "./api.js";
import { byId, clear, countdown, el, fill, when } from "./dom.js";
import { claimOf, decodeJwt, looksLikeJwt } from "./jwt.js";
import { eventItem, KIND_NAMES, kindBadge, recordCard } from "./records.js";
import { can, confirmAction, gate, scopeReason } from "./session.js";

const CLAIM_FOR_KIND = { sub: "sub", sid: "sid", jti: "jti", client: "client_id", kid: "kid" };
const KINDS = ["jti", "sub", "sid", "client", "kid"];
let target = null; // {kind, value} or {token, decoded}

function quote(value) { return `“${value}”`; }

/** The confirmation wording: what the action cuts off, in plain words. */
function consequences(kind, value) {
  switch (kind) {
    case "sub": return {
      label: "Sign out everywhere", title: "Sign this user out everywhere?",
      text: `Every token already issued to user ${quote(value)} stops working now, on every ` +
        "device and app. Signing in again afterwards works normally.",
    };
    case "sid": return {
      label: "End session", title: "End this session?",
      text: `Every token of session ${quote(value)} stops working now. The user's other ` +
        "sessions and devices are not affected.",
    };
    case "jti": return {
      label: "Revoke token", title: "Revoke this token?",
      text: `The one token with jti ${quote(value)} stops working now. Other tokens of the ` +
        "same user keep working.",
    };
    case "client": return {
      label: "Revoke client", title: "Revoke this client?",
      text: `Every token issued to client ${quote(value)} up to now stops working, for every ` +
        "user of that application. Tokens it obtains later work again: to lock it out for " +
        "good, disable it at the identity provider.",
    };
    case "kid": return {
      label: "Revoke signing key", title: "Revoke this signing key?",
      text: `Every token signed with key ${quote(value)} stops working, whoever it was ` +
        "issued to, until the longest token lifetime has passed. Do this only for a " +
        "compromised or retired key: while the issuer still signs with it, every new " +
        "token is refused too.",
    };
    default: return { label: "Revoke", title: "Revoke?", text: "" };
  }
}

function showError(id, error) {
  const text = error instanceof ApiError ? `${error.status} ${error.title}: ${error.message}`
    : error.message;
  fill(byId(id), text);
}

export async function runFind() {
  fill(byId("find-error"));
  const raw = byId("find-value").value.trim();
  if (!raw) { fill(byId("find-error"), "Enter a value to look up."); return; }
  const kind = byId("find-kind").value;
  try {
    if (looksLikeJwt(raw)) {
      target = { token: raw, decoded: decodeJwt(raw) };
    } else {
      target = { kind, value: raw };
    }
    await renderTarget();
  } catch (error) {
    target = null;
    clear(byId("result"));
    byId("act").hidden = true;
    showError("find-error", error);
  }
}

async function renderTarget() {
  const result = byId("result");
  if (target.token) {
    const check = await call("POST", "/v1/check", { body: { token: target.token } });
    fill(result, tokenSummary(target.decoded, check.body));
    const pairs = KINDS.map((k) => [k, claimOf(k, target.decoded)])
      .filter(([, v]) => typeof v === "string" && v !== "");
    result.append(await historySection(pairs));
  } else {
    const claims = { [CLAIM_FOR_KIND[target.kind]]: target.value };
    const check = await call("POST", "/v1/check", { body: { claims } });
    const matches = check.body.matches.filter((r) => r.kind === target.kind);
    fill(result, el("h3", {}, `${KIND_NAMES[target.kind]} `, el("code", {}, target.value)),
      matches.length ? matches.map(withUnrevoke)
        : el("p", { class: "none" }, `No active revocation for this ${KIND_NAMES[target.kind]}.`));
    result.append(await historySection([[target.kind, target.value]]));
  }
  renderActions();
}

function tokenSummary(decoded, check) {
  const covered = new Map(check.matches.map((r) => [r.kind, r]));
  const rows = [];
  const shown = ["jti", "sub", "sid", "client_id", "azp", "iss", "aud", "iat", "exp"];
  const label = (name) => ({ client_id: "client", azp: "client" }[name] || name);
  for (const name of shown) {
    const value = decoded.claims[name];
    if (value === undefined) continue;
    const kind = { client_id: "client", azp: "client" }[name] || name;
    const record = KINDS.includes(kind) && claimOf(kind, decoded) === value ? covered.get(kind)
      : undefined;
    let shownValue = typeof value === "string" ? value : JSON.stringify(value);
    if ((name === "iat" || name === "exp") && typeof value === "number") {
      shownValue = el("span", {}, when(value), name === "exp" ? [" (", countdown(value), ")"] : []);
    }
    rows.push(el("tr", {}, el("th", { scope: "row" }, name),
      el("td", {}, shownValue),
      el("td", {}, record ? el("span", { class: "flag revoked" }, `revoked (${label(name)})`)
        : "")));
  }
  if (decoded.header.kid !== undefined) {
    const record = covered.get("kid");
    rows.push(el("tr", {}, el("th", { scope: "row" }, "kid (header)"),
      el("td", {}, String(decoded.header.kid)),
      el("td", {}, record ? el("span", { class: "flag revoked" }, "revoked (signing key)") : "")));
  }
  return [
    el("div", { class: check.revoked ? "verdict revoked" : "verdict ok", role: "status" },
      check.revoked ? "This token is revoked" : "This token is not revoked",
      el("span", { class: "muted" }, " (claims read in the browser; signature not verified)")),
    el("table", { class: "claims" },
      el("caption", {}, "Claims of the pasted token"),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Claim"),
        el("th", { scope: "col" }, "Value"), el("th", { scope: "col" }, "Status"))),
      el("tbody", {}, rows)),
    check.matches.length ? el("h3", {}, "Matching records") : null,
    check.matches.map(withUnrevoke),
  ];
}

function withUnrevoke(record) {
  const button = el("button", { type: "button", class: "danger-outline" }, "Unrevoke");
  if (!gate(button, "admin")) {
    return recordCard(record, { actions: [button,
      el("span", { class: "hint" }, scopeReason("admin"))] });
  }
  button.addEventListener("click", () => unrevoke(record));
  return recordCard(record, { actions: [button] });
}

async function unrevoke(record) {
  const ok = await confirmAction({
    title: `Unrevoke this ${KIND_NAMES[record.kind] || record.kind}?`,
    text: "Tokens this record blocks are accepted again wherever they are otherwise valid. " +
      "The removal is written to the audit log. To block them again, revoke again.",
    value: `${record.kind}: ${record.value}`, ok: "Unrevoke",
  });
  if (!ok) return;
  fill(byId("act-error"));
  try {
    await call("DELETE", recordPath(record.kind, record.value));
    fill(byId("act-outcome"), el("p", { class: "success", role: "status" },
      "Removed: ", kindBadge(record.kind), " ", el("code", {}, record.value)));
    await renderTarget();
  } catch (error) {
    showError("act-error", error);
  }
}

async function historySection(pairs) {
  const section = el("section", { class: "history" }, el("h3", {}, "Audit history"));
  if (!can("admin")) {
    section.append(el("p", { class: "hint" }, scopeReason("admin")));
    return section;
  }
  const events = [];
  for (const [kind, value] of pairs) {
    // Each page examines a bounded stretch of the audit log: follow `next` to its end
    // (at most 50 pages, a bound on what one look-up may cost).
    let after = null;
    for (let pages = 0; pages < 50; pages += 1) {
      const page = await call("GET", "/v1/events", {
        query: { kind, value, limit: 1000, after },
      });
      events.push(...page.body.events.filter((e) => e.record.kind === kind &&
        e.record.value === value));
      if (!page.body.next || page.body.next === after) break;
      after = page.body.next;
    }
  }
  events.sort((a, b) => (b.at - a.at) || (b.id > a.id ? 1 : -1));
  section.append(events.length ? el("ol", { class: "feed" }, events.map(eventItem))
    : el("p", { class: "none" }, "No events recorded for this value."));
  return section;
}

function actionSpecs() {
  if (!target) return [];
  if (target.token) {
    const jti = claimOf("jti", target.decoded);
    const specs = [{
      ...consequences("jti", jti || "(none)"), label: "Revoke this token",
      text: "The pasted token stops working now, until it would have expired anyway. " +
        "Other tokens of the same user keep working.",
      value: jti ? `jti: ${jti}` : "", body: { token: target.token }, kind: "jti",
    }];
    for (const kind of ["sid", "sub", "client", "kid"]) {
      const value = claimOf(kind, target.decoded);
      if (typeof value === "string" && value) {
        specs.push({ ...consequences(kind, value), value: `${kind}: ${value}`,
          body: { kind, value }, kind });
      }
    }
    return specs;
  }
  return [{ ...consequences(target.kind, target.value), value: `${target.kind}: ${target.value}`,
    body: { kind: target.kind, value: target.value }, kind: target.kind }];
}

function renderActions() {
  const box = byId("actions");
  const hint = byId("act-hint");
  fill(hint);
  fill(byId("act-error"));
  byId("act").hidden = false;
  fill(byId("act-target"), target.token ? "The pasted token, or what its claims name:"
    : `Acting on ${KIND_NAMES[target.kind]} `, target.token ? null
    : el("code", {}, target.value));
  gate(byId("reason"), "revoke");
  fill(box, actionSpecs().map((spec) => {
    const button = el("button", { type: "button", class: "danger", dataset: { kind: spec.kind } },
      spec.label);
    if (gate(button, "revoke", hint)) button.addEventListener("click", () => act(spec));
    return button;
  }));
}

async function act(spec) {
  const ok = await confirmAction({ title: spec.title, text: spec.text, value: spec.value,
    ok: spec.label });
  if (!ok) return;
  fill(byId("act-error"));
  const reason = byId("reason").value.trim();
  const body = reason ? { ...spec.body, reason } : spec.body;
  try {
    const answer = await call("POST", "/v1/revocations", { body });
    const record = answer.body;
    if (record.stored === false) {
      fill(byId("act-outcome"), el("p", { class: "success", role: "status" },
        "Nothing stored: ", record.detail));
    } else {
      fill(byId("act-outcome"), el("p", { class: "success", role: "status" },
        answer.status === 201 ? "Revoked. Stored record:"
          : "Already revoked; the record now lasts until the later expiry:"),
      recordCard(record));
    }
    await renderTarget();
  } catch (error) {
    showError("act-error", error);
  }
}

export function resetFind() {
  target = null;
  for (const id of ["result", "act-outcome", "find-error", "act-error", "browse-list",
    "browse-error"]) clear(byId(id));
  byId("act").hidden = true;
  byId("browse-more").hidden = true;
  byId("find-value").value = "";
  byId("reason").value = "";
}

// Browsing the active records (admin): kind, value prefix and actor, a page at a time.
let browseCursor = null;
// Which browse is current: a new search (or sign-in's first listing) supersedes one still
// waiting for its pages, whose answer is then dropped rather than appended to the new list.
let browseRun = 0;

export async function runBrowse(more = false) {
  fill(byId("browse-error"));
  const kind = byId("browse-kind").value;
  const prefix = byId("browse-prefix").value;
  const actor = byId("browse-actor").value.trim();
  if (!more) { browseRun += 1; browseCursor = null; clear(byId("browse-list")); }
  const run = browseRun;
  try {
    // A filtered page examines a bounded stretch of the store and may come back empty
    // with a cursor: keep reading (a few pages at most) until something shows.
    let items = [];
    for (let pages = 0; pages < 20; pages += 1) {
      const page = await call("GET", "/v1/revocations", {
        query: { kind, prefix, actor, limit: 50, cursor: browseCursor },
      });
      if (run !== browseRun) return;
      browseCursor = page.body.cursor;
      items = page.body.items.filter((r) => (!kind || r.kind === kind) &&
        r.value.startsWith(prefix) && (!actor || r.actor === actor));
      if (items.length || !browseCursor) break;
    }
    const list = byId("browse-list");
    let table = list.querySelector("table");
    if (!table) {
      table = el("table", { class: "records" }, el("thead", {}, el("tr", {},
        ["Kind", "Value", "Reason", "Actor", "Expires in", ""].map((h) =>
          el("th", { scope: "col" }, h)))), el("tbody"));
      list.append(table);
    }
    table.tBodies[0].append(...items.map(browseRow));
    if (!table.tBodies[0].rows.length && !browseCursor) {
      fill(list, el("p", { class: "none" }, "No active revocation matches."));
    }
    byId("browse-more").hidden = !browseCursor;
  } catch (error) {
    if (run === browseRun) showError("browse-error", error);
  }
}

function browseRow(record) {
  const open = el("button", { type: "button", class: "small" }, "Open");
  open.addEventListener("click", () => {
    byId("find-kind").value = record.kind;
    byId("find-value").value = record.value;
    runFind();
    byId("find-value").focus();
  });
  return el("tr", {}, el("td", {}, kindBadge(record.kind)),
    el("td", {}, el("code", { class: "value" }, record.value)),
    el("td", {}, record.reason || ""), el("td", {}, record.actor || ""),
    el("td", {}, countdown(record.expires_at)), el("td", {}, open));
}
