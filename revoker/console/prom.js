// A small reader of the Prometheus text exposition format: enough for the console's
// figures (samples with labels; HELP/TYPE and comments skipped).

const SAMPLE_RE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/;
const LABEL_RE = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = SAMPLE_RE.exec(line);
    if (!match) continue;
    const labels = {};
    for (const label of (match[3] || "").matchAll(LABEL_RE)) {
      labels[label[1]] = label[2].replace(/\\n/g, "\n").replace(/\\(.)/g, "$1");
    }
    samples.push({ name: match[1], labels, value: Number(match[4]) });
  }
  return samples;
}

/** Sum of every sample of a metric whose labels include `where`. */
export function total(samples, name, where = {}) {
  return samples
    .filter((s) => s.name === name &&
      Object.entries(where).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}
