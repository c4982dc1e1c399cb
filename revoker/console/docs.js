// The API reference, rendered from /openapi.json: paths grouped by tag, each operation's
// summary, parameters, request body and responses, with schemas written out as text.

import { byId, el, fill } from "./dom.js";

let components = {};

function refName(ref) { return ref.split("/").pop(); }

/** A schema as one readable line or block: "object {kind: enum(...), value: string}". */
export function schemaText(schema, depth = 0) {
  if (!schema || typeof schema !== "object") return "any";
  if (schema.$ref) return refName(schema.$ref);
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  for (const key of ["oneOf", "anyOf"]) {
    if (schema[key]) return schema[key].map((s) => schemaText(s, depth)).join(" | ");
  }
  const types = Array.isArray(schema.type) ? schema.type : [schema.type || "object"];
  const parts = types.map((type) => {
    if (type === "array") return `array of ${schemaText(schema.items, depth)}`;
    if (type === "object" && schema.properties) return objectText(schema, depth);
    return type + constraints(schema);
  });
  return parts.join(" | ");
}

function constraints(schema) {
  const notes = [];
  if (schema.minLength !== undefined || schema.maxLength !== undefined) {
    notes.push(`${schema.minLength ?? 0}–${schema.maxLength ?? "∞"} chars`);
  }
  if (schema.minimum !== undefined || schema.maximum !== undefined) {
    notes.push(`${schema.minimum ?? "−∞"}…${schema.maximum ?? "∞"}`);
  }
  if (schema.minItems !== undefined || schema.maxItems !== undefined) {
    notes.push(`${schema.minItems ?? 0}–${schema.maxItems ?? "∞"} items`);
  }
  if (schema.pattern) notes.push(`pattern ${schema.pattern}`);
  return notes.length ? ` (${notes.join(", ")})` : "";
}

function objectText(schema, depth) {
  if (depth > 3) return "object {…}";
  const required = new Set(schema.required || []);
  const pad = "  ".repeat(depth + 1);
  const lines = Object.entries(schema.properties).map(([name, sub]) =>
    `${pad}${name}${required.has(name) ? "" : "?"}: ${schemaText(sub, depth + 1)}`);
  return `object {\n${lines.join("\n")}\n${"  ".repeat(depth)}}`;
}

function contentBlocks(content) {
  return Object.entries(content || {}).map(([media, body]) => el("div", {},
    el("span", { class: "muted" }, media), el("pre", { class: "schema" },
      schemaText(body.schema))));
}

function parametersTable(parameters) {
  return el("table", {},
    el("thead", {}, el("tr", {}, ["Name", "In", "Required", "Schema", "Description"]
      .map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, parameters.map((p) => el("tr", {},
      el("td", {}, el("code", {}, p.name)), el("td", {}, p.in),
      el("td", {}, p.required ? "yes" : "no"), el("td", {}, el("code", {}, schemaText(p.schema))),
      el("td", {}, p.description || "")))));
}

function operationCard(path, method, op, anchor) {
  const children = [
    el("header", {}, el("span", { class: `method method-${method}` }, method),
      el("span", { class: "path" }, path)),
    el("h3", {}, op.summary || ""),
  ];
  if (op.description) children.push(el("p", {}, op.description));
  if (op.security) {
    const schemes = op.security.map((s) => Object.keys(s).join(" + ") || "none").join(" or ");
    children.push(el("p", { class: "muted" }, `Credentials: ${schemes || "none"}`));
  }
  if (op.parameters && op.parameters.length) {
    children.push(el("h4", {}, "Parameters"), parametersTable(op.parameters));
  }
  if (op.requestBody) {
    children.push(el("h4", {}, op.requestBody.required ? "Request body" : "Request body (optional)"),
      ...contentBlocks(op.requestBody.content));
  }
  children.push(el("h4", {}, "Responses"), el("dl", { class: "facts" },
    Object.entries(op.responses || {}).map(([status, response]) => [
      el("dt", {}, el("strong", {}, status)),
      el("dd", {}, response.description || "", contentBlocks(response.content),
        response.headers ? el("div", { class: "muted" },
          `Headers: ${Object.keys(response.headers).join(", ")}`) : null),
    ])));
  return el("section", { class: "card op", id: anchor }, children);
}

function render(document) {
  components = (document.components || {}).schemas || {};
  fill(byId("title"), `${document.info.title} ${document.info.version}`);
  fill(byId("status"), document.info.description || "");
  const byTag = new Map();
  for (const [path, item] of Object.entries(document.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push({ path, method, op });
    }
  }
  const reference = byId("reference");
  const toc = [el("h2", {}, "Operations")];
  let n = 0;
  for (const [tag, ops] of byTag) {
    const links = [];
    reference.append(el("h2", { id: `tag-${tag}` }, tag));
    for (const { path, method, op } of ops) {
      const anchor = `op-${n++}`;
      reference.append(operationCard(path, method, op, anchor));
      links.push(el("li", {}, el("a", { href: `#${anchor}` },
        el("span", { class: `method method-${method}` }, method), " ", path)));
    }
    toc.push(el("h3", {}, tag), el("ul", {}, links));
  }
  toc.push(el("h3", {}, el("a", { href: "#schemas" }, "Schemas")));
  reference.append(el("section", { class: "card", id: "schemas" }, el("h2", {}, "Schemas"),
    Object.entries(components).map(([name, schema]) => [el("h3", { id: `schema-${name}` }, name),
      el("pre", { class: "schema" }, schemaText(schema))])));
  fill(byId("toc"), toc);
}

async function load() {
  try {
    const response = await fetch("/openapi.json", { credentials: "omit" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
  } catch (error) {
    fill(byId("status"), `Could not load /openapi.json: ${error.message}`);
  }
}

load();
