// Building DOM from data without ever parsing data as markup: every string becomes a text
// node, so a value or reason such as <img src=x onerror=...> shows as those characters.

/** el("td", {class: "x"}, "text", childNode, ...): attributes set one by one, children as
 * text nodes unless they are already nodes. Nothing in the console parses a string as HTML. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(node) { node.replaceChildren(); }
export function fill(node, ...children) { node.replaceChildren(); append(node, children); }
export function byId(id) { return document.getElementById(id); }

/** A Unix time as local date and time, plus the ISO form as a tooltip. */
export function when(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const date = new Date(seconds * 1000);
  return el("time", { datetime: date.toISOString(), title: date.toISOString() },
    date.toLocaleString([], { dateStyle: "medium", timeStyle: "medium" }));
}

/** "3 h 04 min", "42 s": a remaining duration in the largest sensible units. */
export function duration(seconds) {
  if (seconds <= 0) return "expired";
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.floor(seconds % 60);
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${String(m).padStart(2, "0")} min`;
  if (m > 0) return `${m} min ${String(s).padStart(2, "0")} s`;
  return `${s} s`;
}

/** An element whose text counts down to a Unix time; tick() updates every one. */
export function countdown(expiresAt) {
  const node = el("span", { class: "countdown", dataset: { expires: String(expiresAt) } });
  node.textContent = duration(expiresAt - Date.now() / 1000);
  return node;
}

export function tick() {
  const now = Date.now() / 1000;
  for (const node of document.querySelectorAll("[data-expires]")) {
    const left = Number(node.dataset.expires) - now;
    node.textContent = duration(left);
    node.classList.toggle("expired", left <= 0);
  }
}
