"""A real nginx (Debian package) with ``auth_request`` in front of a real ``revoker serve``
and a small upstream, configured by the shipped ``deploy/nginx/revoker.conf``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from revoker import apikeys
from tests.jwt_factory import AUDIENCE, ISSUER, KeySet
from tests.nginx_conf import main_conf
from tests.redis_proc import RedisProcess, free_port, wait_port

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)
REPO = Path(__file__).resolve().parents[2]
DEPLOY_CONF = REPO / "deploy" / "nginx" / "revoker.conf"
ADMIN_KEY = apikeys.generate()
GATEWAY_KEY = apikeys.generate()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed "
                       "(Debian: apt-get install -y nginx; .ci/run installs it)"),
]



class Upstream:
    """The protected application: records what nginx forwarded to it."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.server = TestServer(app)

    async def handle(self, request: web.Request) -> web.Response:
        seen = {"path": request.path_qs, "method": request.method,
                "subject": request.headers.get("X-Auth-Subject"),
                "jti": request.headers.get("X-Auth-Jti")}
        self.seen.append(seen)
        return web.json_response(seen)


def start_revoker(port: int, store_url: str, prefix: str, pem_dir: Path,
                  tmp: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REVOKER_PORT": str(port), "REVOKER_STORE_URL": store_url,
           "REVOKER_KEY_PREFIX": prefix, "REVOKER_JWT_PUBLIC_KEYS": str(pem_dir),
           "REVOKER_JWT_ISSUER": ISSUER, "REVOKER_JWT_AUDIENCE": AUDIENCE,
           "REVOKER_API_KEYS": ",".join([apikeys.config_line("admin", ["admin"], ADMIN_KEY),
                                         apikeys.config_line("nginx", ["check"], GATEWAY_KEY)])}
    with (tmp / "revoker.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "revoker", "serve"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, timeout_s=20)
    except TimeoutError:
        proc.kill()
        raise AssertionError((tmp / "revoker.log").read_text()) from None
    return proc


def render_site(*, listen: int, revoker: int, upstream: int) -> str:
    """The deploy example with this test's addresses and gateway key."""
    text = DEPLOY_CONF.read_text()
    replacements = {"127.0.0.1:8080": f"127.0.0.1:{revoker}",
                    "127.0.0.1:3000": f"127.0.0.1:{upstream}",
                    "127.0.0.1:8000": f"127.0.0.1:{listen}",
                    "REPLACE-WITH-CHECK-KEY": GATEWAY_KEY}
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def start_nginx(tmp: Path, site: str, port: int) -> subprocess.Popen[bytes]:
    assert NGINX is not None
    (tmp / "revoker.conf").write_text(site)
    (tmp / "nginx.conf").write_text(main_conf(tmp))
    command = [NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e",
               str(tmp / "error.log"), "-g", "daemon off;"]
    check = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc


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
    nginx_url: str
    revoker_url: str
    revoker: subprocess.Popen[bytes]
    upstream: Upstream
    http: aiohttp.ClientSession


@pytest.fixture(scope="module")
def keyset() -> KeySet:
    return KeySet()


@pytest.fixture
def pem_dir(keyset: KeySet, tmp_path: Path) -> Path:
    return keyset.write_pems(tmp_path / "keys")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in reversed(started):
        stop(proc)


@pytest.fixture
async def stack(redis_server: RedisProcess, prefix: str, pem_dir: Path, tmp_path: Path,
                processes: list[subprocess.Popen[bytes]]) -> AsyncIterator[Stack]:
    upstream = Upstream()
    await upstream.server.start_server()
    revoker_port, nginx_port = free_port(), free_port()
    revoker = start_revoker(revoker_port, redis_server.url, prefix, pem_dir, tmp_path)
    processes.append(revoker)
    site = render_site(listen=nginx_port, revoker=revoker_port,
                       upstream=upstream.server.port or 0)
    processes.append(start_nginx(tmp_path, site, nginx_port))
    async with aiohttp.ClientSession() as http:
        yield Stack(f"http://127.0.0.1:{nginx_port}", f"http://127.0.0.1:{revoker_port}",
                    revoker, upstream, http)
    await upstream.server.close()


async def get(stack: Stack, path: str, token: str | None = None,
              **headers: str) -> aiohttp.ClientResponse:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with stack.http.get(stack.nginx_url + path, headers=headers) as resp:
        await resp.read()
        return resp


async def test_valid_revoked_and_missing_tokens(stack: Stack, keyset: KeySet) -> None:
    token = keyset.token(jti="nginx-1", sub="alice")
    # a valid token reaches the upstream, which sees who it is, never what the client claimed
    resp = await get(stack, "/orders/7?x=1", token, **{"X-Auth-Subject": "admin"})
    assert resp.status == 200
    assert stack.upstream.seen[-1] == {"path": "/orders/7?x=1", "method": "GET",
                                       "subject": "alice", "jti": "nginx-1"}
    # revoked at revoker: refused at the client with revoker's challenge
    async with stack.http.post(stack.revoker_url + "/v1/revocations",
                               json={"kind": "jti", "value": "nginx-1"},
                               headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as created:
        assert created.status == 201
    hits = len(stack.upstream.seen)
    resp = await get(stack, "/orders/7", token)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == (
        'Bearer realm="revoker", error="invalid_token", error_description="revoked"')
    # no token, and a forged one: refused too
    resp = await get(stack, "/orders/7")
    assert resp.status == 401
    assert 'error_description="missing token"' in resp.headers["WWW-Authenticate"]
    resp = await get(stack, "/orders/7", keyset.token(iss="https://evil.test"))
    assert resp.status == 401
    assert len(stack.upstream.seen) == hits


async def test_revoker_stopped_means_refused(stack: Stack, keyset: KeySet) -> None:
    token = keyset.token()
    assert (await get(stack, "/", token)).status == 200
    hits = len(stack.upstream.seen)
    stop(stack.revoker)
    deadline = time.monotonic() + 10
    while stack.revoker.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    resp = await get(stack, "/", token)
    assert resp.status == 500
    assert len(stack.upstream.seen) == hits
