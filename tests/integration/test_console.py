"""The admin console and the API reference, driven in a real Chromium (Debian's ``chromium``
package, through Playwright) against a real ``revoker serve`` on a real redis-server.

Every flow a support agent uses is walked through as they would: sign in with a key, find
a user, session, token, client or signing key, act on it, watch the live feed, unrevoke;
with a check-only key the controls it may not use are disabled and say why. XSS payloads
stored as a record's value and reason must render as inert text; a keyboard-only pass and
an axe-core audit keep the page usable; screenshots at 1280 and 390 px are written to
``docs/images``. Skipped where Chromium, Playwright or ``tests/console/node_modules`` (axe)
is missing: ``scripts/test.sh`` installs all three.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest

from revoker import apikeys
from tests.redis_proc import RedisProcess
from tests.serve_proc import ServeProcess

playwright_sync = pytest.importorskip("playwright.sync_api")
Page = playwright_sync.Page
Route = playwright_sync.Route
expect = playwright_sync.expect

pytestmark = [pytest.mark.redis, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "tests" / "console" / "node_modules" / "axe-core" / "axe.min.js"
IMAGES = ROOT / "docs" / "images"
ADMIN = "rvk_console_admin_key_0000000000000000"
REVOKER = "rvk_console_revoke_key_000000000000000"
CHECKER = "rvk_console_check_key_0000000000000000"
KEYS = ",".join([apikeys.config_line("support-admin", ["admin"], ADMIN),
                 apikeys.config_line("helpdesk", ["revoke"], REVOKER),
                 apikeys.config_line("gateway", ["check"], CHECKER)])
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
XSS_VALUE = "<img src=x onerror=window.__pwned=1>"
XSS_REASON = "<script>window.__pwned=2</script><img src=x onerror=alert(3)>"
UI_TIMEOUT_MS = 10_000

if CHROMIUM is None:
    pytest.skip("Debian's chromium package is not installed (scripts/test.sh installs it)",
                allow_module_level=True)


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


def api(base: str, method: str, path: str, *, key: str = ADMIN,
        body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """The API as a script would call it, to seed records and to check what the page did."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def record_path(kind: str, value: str) -> str:
    return f"/v1/revocations/{kind}/{urllib.parse.quote(value, safe='')}"


@pytest.fixture(scope="module")
def server(redis_server: RedisProcess) -> Iterator[ServeProcess]:
    proc = ServeProcess({"REVOKER_STORE_URL": redis_server.url, "REVOKER_API_KEYS": KEYS,
                         "REVOKER_KEY_PREFIX": f"console{uuid.uuid4().hex[:8]}:",
                         "REVOKER_ACCESS_LOG": "true"}).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@dataclass
class Watched:
    """A page plus everything it did that a test may want to forbid."""

    page: Page
    base: str
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def open_console(self) -> None:
        self.page.goto(self.base + "/console/")
        expect(self.page.locator("#key")).to_be_focused()

    def sign_in(self, key: str) -> None:
        self.open_console()
        self.page.fill("#key", key)
        self.page.click("#signin-button")
        expect(self.page.locator("#workspace")).to_be_visible()

    def find(self, kind: str, value: str) -> None:
        self.page.select_option("#find-kind", kind)
        self.page.fill("#find-value", value)
        self.page.click("#find-button")

    def clean(self) -> None:
        assert self.dialogs == [], self.dialogs
        assert self.errors == [], self.errors
        for key in (ADMIN, REVOKER, CHECKER):
            assert not any(key in url for url in self.urls), "a key appeared in a URL"


@pytest.fixture
def watched(browser: Any, server: ServeProcess) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    seen = Watched(page, server.url)

    def on_dialog(dialog: Any) -> None:
        seen.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.errors.append(str(e)))
    page.on("request", lambda r: seen.urls.append(r.url))
    yield seen
    context.close()


def confirm(page: Page, *, expect_text: str) -> None:
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(expect_text)
    page.click("#confirm-ok")
    expect(dialog).to_be_hidden()


# --- served by revoker, secure by construction ------------------------------------------


def _get(base: str, path: str) -> http.client.HTTPResponse:
    host = urllib.parse.urlsplit(base).netloc
    connection = http.client.HTTPConnection(host, timeout=5)
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


@pytest.mark.parametrize(("path", "status", "media"), [
    ("/console", 308, None), ("/console/", 200, "text/html"),
    ("/console/app.js", 200, "text/javascript"), ("/console/console.css", 200, "text/css"),
    ("/docs", 200, "text/html"), ("/console/docs.js", 200, "text/javascript"),
    ("/console/..%2fconsole.py", 404, "application/problem+json"),
    ("/console/nothing.js", 404, "application/problem+json"),
])
def test_every_console_response_carries_strict_headers(server: ServeProcess, path: str,
                                                       status: int, media: str | None) -> None:
    response = _get(server.url, path)
    assert response.status == status
    assert response.getheader("Content-Security-Policy") == CSP
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert response.getheader("Referrer-Policy") == "no-referrer"
    if media:
        assert (response.getheader("Content-Type") or "").startswith(media)
    if status == 308:
        assert response.getheader("Location") == "/console/"


def test_assets_have_no_inline_code_and_never_parse_data_as_markup() -> None:
    folder = ROOT / "revoker" / "console"
    for page in folder.glob("*.html"):
        html = page.read_text()
        assert re.findall(r"<script(?![^>]*\bsrc=)", html) == [], page.name
        assert "<style" not in html and " style=" not in html, page.name
        assert not re.search(r"\son[a-z]+=", html), page.name
    for script in folder.glob("*.js"):
        code = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                     "eval(", "new Function", "localStorage", "sessionStorage",
                     "document.cookie"):
            assert sink not in code, f"{script.name} uses {sink}"


# --- sign-in, find, act, watch, unrevoke ---------------------------------------------------


def test_admin_signs_a_user_out_everywhere_and_unrevokes(watched: Watched) -> None:
    page, base = watched.page, watched.base
    user = unique("alice")
    watched.sign_in(ADMIN)
    expect(page.locator("#whoami-name")).to_have_text("support-admin")
    expect(page.locator("#whoami-scopes")).to_have_text("admin")
    expect(page.locator("#key")).to_have_value("")
    expect(page.locator("#feed-state")).to_have_text("live")

    watched.find("sub", user)
    expect(page.locator("#result")).to_contain_text("No active revocation for this user")
    page.fill("#reason", "ticket 4821: laptop stolen")
    page.click("#actions button[data-kind=sub]")
    confirm(page, expect_text=f"Every token already issued to user “{user}”")

    outcome = page.locator("#act-outcome")
    expect(outcome).to_contain_text("Revoked. Stored record:")
    expect(outcome).to_contain_text("ticket 4821: laptop stolen")
    expect(outcome).to_contain_text("support-admin")
    expect(page.locator("#result .record")).to_have_count(1)
    expect(page.locator("#result .record .countdown")).to_have_text(re.compile(r"\d+ (d|h|min)"))
    expect(page.locator("#result .history")).to_contain_text("ticket 4821")
    expect(page.locator("#feed")).to_contain_text(user)
    status, record = api(base, "GET", record_path("sub", user))
    assert status == 200
    assert record["actor"] == "support-admin"
    assert record["reason"] == "ticket 4821: laptop stolen"
    assert record["issued_before"] is not None

    page.click("#result .record button:has-text('Unrevoke')")
    confirm(page, expect_text="accepted again")
    expect(outcome).to_contain_text("Removed")
    expect(page.locator("#result")).to_contain_text("No active revocation for this user")
    expect(page.locator("#feed .event-unrevoked")).to_contain_text(user)
    assert api(base, "GET", record_path("sub", user))[0] == 404

    storage = page.evaluate("() => [localStorage.length, sessionStorage.length, document.cookie]")
    assert storage == [0, 0, ""]
    assert ADMIN not in page.content()
    watched.clean()


def test_a_pasted_jwt_shows_its_claims_which_are_revoked_and_can_be_revoked(
        watched: Watched) -> None:
    page, base = watched.page, watched.base
    now = int(time.time())
    claims = {"jti": unique("jti"), "sub": unique("bob"), "sid": unique("sess"),
              "client_id": unique("mobile"), "iat": now - 60, "exp": now + 3600}
    token = jwt.encode(claims, "console-test-secret-0123456789abcdef", algorithm="HS256",
                       headers={"kid": unique("key")})
    assert api(base, "POST", "/v1/revocations",
               body={"kind": "sid", "value": claims["sid"], "reason": "session hijack"})[0] == 201
    watched.sign_in(ADMIN)
    watched.find("jti", token)

    result = page.locator("#result")
    expect(result.locator(".verdict")).to_have_text(re.compile("This token is revoked"))
    sid_row = result.locator("table.claims tr", has_text=claims["sid"])
    expect(sid_row).to_contain_text("revoked (sid)")
    expect(result.locator("table.claims tr", has_text=claims["sub"])).not_to_contain_text(
        "revoked")
    expect(result.locator(".record")).to_have_count(1)
    expect(result.locator(".record")).to_contain_text("session hijack")
    expect(page.locator("#actions button")).to_have_count(5)  # token, sid, sub, client, kid

    page.click("#actions button:has-text('Revoke this token')")
    confirm(page, expect_text="The pasted token stops working now")
    expect(page.locator("#act-outcome")).to_contain_text(claims["jti"])
    expect(result.locator(".record")).to_have_count(2)
    status, record = api(base, "GET", record_path("jti", claims["jti"]))
    assert status == 200
    assert claims["exp"] <= record["expires_at"] <= claims["exp"] + 30  # exp + leeway
    expect(page.locator("#feed")).to_contain_text(claims["jti"])
    watched.clean()


def test_client_and_signing_key_confirmations_say_what_they_cut_off(watched: Watched) -> None:
    page, base = watched.page, watched.base
    client, kid = unique("partner-app"), unique("rsa-2025")
    watched.sign_in(ADMIN)

    watched.find("client", client)
    page.click("#actions button[data-kind=client]")
    dialog = page.locator("#confirm")
    expect(dialog).to_contain_text(f"Every token issued to client “{client}” up to now")
    expect(dialog).to_contain_text("every user of that application")
    page.click("#confirm-cancel")
    expect(dialog).to_be_hidden()
    assert api(base, "GET", record_path("client", client))[0] == 404

    watched.find("kid", kid)
    page.click("#actions button[data-kind=kid]")
    confirm(page, expect_text="whoever it was issued to")
    expect(page.locator("#act-outcome")).to_contain_text(kid)
    assert api(base, "GET", record_path("kid", kid))[0] == 200

    watched.find("sid", unique("sess"))
    page.click("#actions button[data-kind=sid]")
    confirm(page, expect_text="other sessions and devices are not affected")
    expect(page.locator("#result .record")).to_have_count(1)
    watched.clean()


def test_a_check_only_key_sees_records_but_its_controls_are_disabled_with_the_reason(
        watched: Watched) -> None:
    page, base = watched.page, watched.base
    user = unique("carol")
    assert api(base, "POST", "/v1/revocations",
               body={"kind": "sub", "value": user, "reason": "offboarded"})[0] == 201
    watched.sign_in(CHECKER)
    expect(page.locator("#whoami-name")).to_have_text("gateway")
    expect(page.locator("#browse-button")).to_be_disabled()
    expect(page.locator("#browse-hint")).to_contain_text("Needs a key with the admin scope")

    watched.find("sub", user)
    expect(page.locator("#result .record")).to_contain_text("offboarded")
    action = page.locator("#actions button[data-kind=sub]")
    expect(action).to_be_disabled()
    expect(action).to_have_attribute("title", re.compile("revoke scope"))
    expect(page.locator("#act-hint")).to_contain_text("Needs a key with the revoke scope")
    expect(page.locator("#reason")).to_be_disabled()
    expect(page.locator("#result .record button:has-text('Unrevoke')")).to_be_disabled()
    expect(page.locator("#result .history")).to_contain_text("admin scope")
    expect(page.locator("#feed-state")).to_have_text("live")
    watched.clean()


def test_a_revoke_key_acts_but_cannot_unrevoke(watched: Watched) -> None:
    page = watched.page
    watched.sign_in(REVOKER)
    watched.find("jti", unique("jti"))
    page.click("#actions button[data-kind=jti]")
    confirm(page, expect_text="The one token with jti")
    expect(page.locator("#result .record")).to_have_count(1)
    expect(page.locator("#result .record button:has-text('Unrevoke')")).to_be_disabled()
    expect(page.locator("#result .record")).to_contain_text("Needs a key with the admin scope")
    watched.clean()


def test_feed_filters_counts_health_and_metrics(watched: Watched) -> None:
    page, base = watched.page, watched.base
    watched.sign_in(ADMIN)
    expect(page.locator("#feed-state")).to_have_text("live")
    tag = unique("feedtest")
    for kind, value in [("sub", f"{tag}-u1"), ("jti", f"{tag}-t1"), ("jti", f"{tag}-t2")]:
        assert api(base, "POST", "/v1/revocations",
                   body={"kind": kind, "value": value, "reason": f"{tag} batch"})[0] == 201
    feed = page.locator("#feed .event", has_text=tag)
    expect(feed).to_have_count(3)

    page.select_option("#feed-kind", "jti")
    expect(feed).to_have_count(2)
    page.fill("#feed-text", f"{tag}-t2")
    expect(feed).to_have_count(1)
    expect(page.locator("#feed-counts")).to_contain_text("1 of")
    page.select_option("#feed-kind", "")
    page.fill("#feed-text", "")
    expect(feed).to_have_count(3)

    health = page.locator("#health")
    expect(health).to_contain_text("ready")
    expect(health).to_contain_text("redis")
    expect(page.locator("#figures")).to_contain_text("Active revocations")
    expect(page.locator("#by-source")).to_contain_text("api", timeout=UI_TIMEOUT_MS)
    watched.clean()


def test_a_browse_superseded_by_another_is_dropped(watched: Watched) -> None:
    """Sign-in's first listing, answered after the admin's own search began, must not
    add its rows to the search's list (each row would show twice)."""
    page, base = watched.page, watched.base
    tag = unique("race")
    assert api(base, "POST", "/v1/revocations",
               body={"kind": "client", "value": f"{tag}-app"})[0] == 201
    held: list[Route] = []

    def hold_the_first(route: Route) -> None:
        if held:
            route.continue_()
        else:
            held.append(route)  # answered only once the search below has shown its rows

    page.route("**/v1/revocations?*", hold_the_first)
    watched.sign_in(ADMIN)
    page.select_option("#browse-kind", "client")
    page.fill("#browse-prefix", tag)
    page.click("#browse-button")
    row = page.locator("#browse-list tr", has_text=f"{tag}-app")
    expect(row).to_have_count(1)
    assert len(held) == 1
    with page.expect_response(lambda r: "/v1/revocations?" in r.url) as late:
        held[0].continue_()
    late.value.finished()
    page.evaluate("() => new Promise((done) => setTimeout(done))")  # its handler has run
    expect(row).to_have_count(1)
    watched.clean()


def test_browse_lists_active_records_and_opens_one(watched: Watched) -> None:
    page, base = watched.page, watched.base
    tag = unique("browse")
    assert api(base, "POST", "/v1/revocations",
               body={"kind": "client", "value": f"{tag}-app", "reason": "leaked secret"})[0] == 201
    watched.sign_in(ADMIN)
    page.select_option("#browse-kind", "client")
    page.fill("#browse-prefix", tag)
    page.click("#browse-button")
    row = page.locator("#browse-list tr", has_text=f"{tag}-app")
    expect(row).to_contain_text("leaked secret")
    row.locator("button").click()
    expect(page.locator("#result .record")).to_contain_text("leaked secret")
    expect(page.locator("#actions button[data-kind=client]")).to_be_enabled()
    watched.clean()


# --- XSS, keyboard, accessibility ------------------------------------------------------------


def test_markup_in_a_value_and_a_reason_renders_as_text(watched: Watched) -> None:
    page, base = watched.page, watched.base
    status, _ = api(base, "POST", "/v1/revocations",
                    body={"kind": "sub", "value": XSS_VALUE, "reason": XSS_REASON})
    assert status in (200, 201)
    watched.sign_in(ADMIN)
    watched.find("sub", XSS_VALUE)
    record = page.locator("#result .record")
    expect(record).to_contain_text(XSS_VALUE)
    expect(record).to_contain_text(XSS_REASON)
    expect(page.locator("#result .history")).to_contain_text(XSS_REASON)

    page.fill("#reason", XSS_REASON)
    page.click("#actions button[data-kind=sub]")
    confirm(page, expect_text=XSS_VALUE)
    expect(page.locator("#feed")).to_contain_text(XSS_VALUE)
    page.select_option("#browse-kind", "sub")
    page.fill("#browse-prefix", "<img")
    page.click("#browse-button")
    expect(page.locator("#browse-list")).to_contain_text(XSS_VALUE)

    assert page.locator("main img, main script, dialog img").count() == 0
    assert page.evaluate("() => window.__pwned === undefined")
    watched.clean()


def _tab_to(page: Page, selector: str, *, max_presses: int = 40) -> None:
    """Press Tab until the element has focus, as a keyboard user would."""
    for _ in range(max_presses):
        if page.evaluate("(s) => document.activeElement === document.querySelector(s)",
                         selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def test_keyboard_only_sign_in_search_and_revoke(watched: Watched) -> None:
    page, base = watched.page, watched.base
    user = unique("dave")
    watched.open_console()
    page.keyboard.type(ADMIN)
    page.keyboard.press("Enter")
    expect(page.locator("#workspace")).to_be_visible()
    expect(page.locator("#find-value")).to_be_focused()

    _tab_to(page, "#find-kind")
    page.keyboard.press("Home")  # "User (sub)" is the first option
    _tab_to(page, "#find-value")
    page.keyboard.type(user)
    page.keyboard.press("Enter")
    expect(page.locator("#result")).to_contain_text("No active revocation")

    _tab_to(page, "#reason")
    page.keyboard.type("keyboard pass")
    _tab_to(page, "#actions button[data-kind=sub]")
    page.keyboard.press("Enter")
    expect(page.locator("#confirm")).to_be_visible()
    expect(page.locator("#confirm-cancel")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#confirm-ok")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#act-outcome")).to_contain_text("keyboard pass")
    assert api(base, "GET", record_path("sub", user))[1]["reason"] == "keyboard pass"
    watched.clean()


def _critical_violations(page: Page) -> list[str]:
    page.evaluate(AXE.read_text())  # evaluated by the driver, not a <script> the CSP refuses
    result = page.evaluate("async () => await axe.run(document)")
    return [f"{v['id']}: {v['help']}" for v in result["violations"]
            if v["impact"] == "critical"]


@pytest.mark.skipif(not AXE.exists(), reason="npm ci in tests/console installs axe-core")
def test_no_critical_accessibility_violations(watched: Watched) -> None:
    page, base = watched.page, watched.base
    user = unique("erin")
    assert api(base, "POST", "/v1/revocations",
               body={"kind": "sub", "value": user, "reason": "a11y"})[0] == 201
    watched.open_console()
    assert _critical_violations(page) == []
    watched.sign_in(ADMIN)
    watched.find("sub", user)
    expect(page.locator("#result .record")).to_have_count(1)
    expect(page.locator("#figures")).to_contain_text("Active revocations")
    assert _critical_violations(page) == []
    page.goto(base + "/docs")
    expect(page.locator(".op").first).to_be_visible()
    assert _critical_violations(page) == []


# --- the API reference ----------------------------------------------------------------------


def test_docs_render_the_openapi_document(watched: Watched) -> None:
    page, base = watched.page, watched.base
    page.goto(base + "/docs")
    with urllib.request.urlopen(base + "/openapi.json", timeout=5) as response:
        document = json.load(response)
    operations = sum(len(item) for item in document["paths"].values())
    expect(page.locator(".op")).to_have_count(operations)
    revoke = page.locator(".op", has=page.locator(".path", has_text=re.compile(
        r"^/v1/revocations$"))).filter(has_text="Revoke by kind and value")
    expect(revoke).to_contain_text("application/json")
    expect(revoke).to_contain_text("RevokeBody")
    expect(revoke).to_contain_text("201")
    listing = page.locator(".op", has_text="List live records")
    expect(listing.locator("table")).to_contain_text("kind")
    expect(page.locator("#schemas")).to_contain_text("RevokeByValue | RevokeByToken")
    expect(page.locator("#schemas")).to_contain_text("expires_at: integer")
    expect(page.locator("#toc")).to_contain_text("/v1/events/stream")
    watched.clean()


# --- screenshots for the docs -------------------------------------------------------------


def test_screenshots_at_desktop_and_phone_width(browser: Any,
                                               redis_server: RedisProcess) -> None:
    """A server of its own, so the pictures show a tidy store, not the other tests' data."""
    proc = ServeProcess({"REVOKER_STORE_URL": redis_server.url, "REVOKER_API_KEYS": KEYS,
                         "REVOKER_KEY_PREFIX": f"consoleshot{uuid.uuid4().hex[:8]}:",
                         "REVOKER_ACCESS_LOG": "false"}).start()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(UI_TIMEOUT_MS)
    try:
        page = context.new_page()
        seen = Watched(page, proc.url)
        page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
        seen.sign_in(ADMIN)
        expect(page.locator("#feed-state")).to_have_text("live")
        for kind, value, reason in [
                ("sid", "8f14e45f-ceea-467f", "ticket 4821: laptop stolen"),
                ("client", "partner-reporting", "client secret leaked"),
                ("jti", "c4ca4238a0b9238", "token posted in a chat")]:
            api(proc.url, "POST", "/v1/revocations", body={"kind": kind, "value": value,
                                                            "reason": reason})
        user = "alice@example.com"
        seen.find("sub", user)
        page.fill("#reason", "ticket 4821: laptop stolen")
        page.click("#actions button[data-kind=sub]")
        confirm(page, expect_text=user)
        expect(page.locator("#feed .event")).to_have_count(4)
        expect(page.locator("#by-source")).to_contain_text("api")
        page.click("#browse-button")
        expect(page.locator("#browse-list tbody tr")).to_have_count(4)
        page.fill("#reason", "")
        page.locator("#find-value").focus()
        page.evaluate("() => document.activeElement.blur()")
        IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMAGES / "console-1280.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(IMAGES / "console-390.png"), full_page=True)
        seen.clean()
    finally:
        context.close()
        proc.stop()
    assert (IMAGES / "console-1280.png").stat().st_size > 10_000
    assert (IMAGES / "console-390.png").stat().st_size > 10_000


def test_the_key_is_in_no_url_and_no_log_line(browser: Any, redis_server: RedisProcess) -> None:
    proc = ServeProcess({"REVOKER_STORE_URL": redis_server.url, "REVOKER_API_KEYS": KEYS,
                         "REVOKER_KEY_PREFIX": f"consolelog{uuid.uuid4().hex[:8]}:",
                         "REVOKER_ACCESS_LOG": "true"}).start()
    context = browser.new_context()
    try:
        page = context.new_page()
        seen = Watched(page, proc.url)
        page.on("request", lambda r: seen.urls.append(r.url))
        seen.sign_in(ADMIN)
        seen.find("sub", unique("frank"))
        page.click("#actions button[data-kind=sub]")
        confirm(page, expect_text="Every token")
        expect(page.locator("#act-outcome")).to_contain_text("Revoked")
    finally:
        context.close()
        out, err = proc.stop()
    assert seen.urls
    assert not any(ADMIN in url for url in seen.urls)
    assert "/v1/whoami" in err + out  # the access log did record the console's calls
    assert ADMIN not in out + err
