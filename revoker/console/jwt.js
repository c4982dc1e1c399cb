// Reading a pasted JWT in the browser: the claims only, no signature check (the console
// shows what a token says; the server decides what is valid). The token never leaves the
// tab except in the body of POST /v1/check or /v1/revocations.

const JWT_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export function looksLikeJwt(text) { return JWT_RE.test(text); }

function decodePart(part) {
  const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "===".slice((base64.length + 3) % 4);
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
}

/** {header, claims} or throws Error with a sentence for the operator. */
export function decodeJwt(token) {
  const [header, payload] = token.split(".");
  let decoded;
  try {
    decoded = { header: decodePart(header), claims: decodePart(payload) };
  } catch {
    throw new Error("this does not decode as a JWT (header and payload must be base64url JSON)");
  }
  if (typeof decoded.header !== "object" || decoded.header === null ||
      typeof decoded.claims !== "object" || decoded.claims === null) {
    throw new Error("a JWT's header and payload are JSON objects");
  }
  return decoded;
}

/** Which claim of a token each revocation kind looks at. */
export function claimOf(kind, decoded) {
  if (kind === "kid") return decoded.header.kid;
  if (kind === "client") return decoded.claims.client_id ?? decoded.claims.azp;
  return decoded.claims[kind];
}
