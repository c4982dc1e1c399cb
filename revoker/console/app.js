// The console's entry point: sign-in and sign-out, and wiring every control.

import { ApiError, call, clearKey, setKey } from "./api.js";
import { byId, fill, tick } from "./dom.js";
import { resetFind, runBrowse, runFind } from "./find.js";
import { gate, me } from "./session.js";
import { renderFeed, startWatching, stopWatching } from "./watch.js";

let ticker = null;

async function signIn(event) {
  event.preventDefault();
  const input = byId("key");
  const key = input.value.trim();
  fill(byId("signin-error"));
  if (!key) { fill(byId("signin-error"), "Enter your API key."); input.focus(); return; }
  setKey(key);
  try {
    const { body } = await call("GET", "/v1/whoami");
    me.name = body.name;
    me.scopes = body.scopes;
  } catch (error) {
    clearKey();
    fill(byId("signin-error"), error instanceof ApiError && error.status === 401
      ? "That key is not valid." : `Sign-in failed: ${error.message}`);
    input.focus();
    return;
  }
  input.value = "";
  showWorkspace();
}

function showWorkspace() {
  fill(byId("whoami-name"), me.name);
  fill(byId("whoami-scopes"), me.scopes.map((s) => {
    const badge = document.createElement("span");
    badge.className = "scope";
    badge.textContent = s;
    return badge;
  }));
  byId("identity").hidden = false;
  byId("signin").hidden = true;
  byId("workspace").hidden = false;
  fill(byId("browse-hint"));
  const allowed = [byId("browse-button"), byId("browse-kind"), byId("browse-prefix"),
    byId("browse-actor")].map((c) => gate(c, "admin", byId("browse-hint")));
  if (allowed[0]) runBrowse();
  startWatching();
  ticker = setInterval(tick, 1000);
  byId("find-value").focus();
}

function signOut() {
  stopWatching();
  clearInterval(ticker);
  clearKey();
  me.name = null;
  me.scopes = [];
  resetFind();
  byId("identity").hidden = true;
  byId("workspace").hidden = true;
  byId("signin").hidden = false;
  byId("key").focus();
}

function submitting(handler) {
  return (event) => { event.preventDefault(); handler(); };
}

byId("signin-form").addEventListener("submit", signIn);
byId("signout").addEventListener("click", signOut);
byId("find-form").addEventListener("submit", submitting(runFind));
byId("browse-form").addEventListener("submit", submitting(() => runBrowse(false)));
byId("browse-more").addEventListener("click", () => runBrowse(true));
byId("feed-filter").addEventListener("submit", submitting(renderFeed));
byId("feed-kind").addEventListener("change", renderFeed);
byId("feed-text").addEventListener("input", renderFeed);
byId("key").focus();
