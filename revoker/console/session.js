// Who is signed in, what their key may do, and the one confirmation dialog.

import { byId, fill } from "./dom.js";

const RANKS = { check: 1, revoke: 2, admin: 3 };
export const me = { name: null, scopes: [] };

/** admin implies revoke implies check, as the service itself decides. */
export function can(scope) {
  const best = Math.max(0, ...me.scopes.map((s) => RANKS[s] || 0));
  return best >= RANKS[scope];
}

export function scopeReason(scope) {
  return `Needs a key with the ${scope} scope; ${me.name} has ${me.scopes.join(", ") || "none"}.`;
}

/** Disable a control the key may not use, saying why (tooltip and the hint beside it). */
export function gate(control, scope, hint) {
  const allowed = can(scope);
  control.disabled = !allowed;
  if (allowed) {
    control.removeAttribute("title");
  } else {
    control.title = scopeReason(scope);
    if (hint) hint.textContent = scopeReason(scope);
  }
  return allowed;
}

/** Ask before acting; resolves true only on the explicit confirm button. */
export function confirmAction({ title, text, value, ok }) {
  const dialog = byId("confirm");
  fill(byId("confirm-title"), title);
  fill(byId("confirm-text"), text);
  fill(byId("confirm-value"), value || "");
  byId("confirm-value").hidden = !value;
  fill(byId("confirm-ok"), ok);
  return new Promise((resolve) => {
    const done = (answer) => {
      byId("confirm-ok").removeEventListener("click", yes);
      byId("confirm-cancel").removeEventListener("click", no);
      dialog.removeEventListener("cancel", no);
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const yes = () => done(true);
    const no = (event) => { event.preventDefault(); done(false); };
    byId("confirm-ok").addEventListener("click", yes);
    byId("confirm-cancel").addEventListener("click", no);
    dialog.addEventListener("cancel", no);
    dialog.showModal();
    byId("confirm-cancel").focus();
  });
}
