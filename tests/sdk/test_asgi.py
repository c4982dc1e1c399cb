"""FastAPI on a real uvicorn with the ASGI middleware and the dependency, and aiohttp with
its middleware, against a real ``revoker serve`` on a real redis-server."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from fastapi import Depends, FastAPI, Request

from revoker.sdk import Guard, SyncRevokerClient
from revoker.sdk.aio import CLAIMS_KEY, revoker_middleware
from revoker.sdk.asgi import RevokerMiddleware
from revoker.sdk.fastapi import RevokerBearer
from tests.jwt_factory import KeySet
from tests.sdk.conftest import ADMIN, STALENESS_S
from tests.sdk.servers import call, status_within, uvicorn_server
from tests.serve_proc import ServeProcess

pytestmark = pytest.mark.redis


def fastapi_app(guard: Guard, *, middleware: bool) -> FastAPI:
    app = FastAPI()
    claims_of_caller = Depends(RevokerBearer(guard))
    if middleware:
        app.add_middleware(RevokerMiddleware, guard=guard, exclude=("/health",))

    @app.get("/me")
    async def me(request: Request,
                 claims: dict[str, Any] = claims_of_caller) -> dict[str, Any]:
        return {"sub": claims["sub"], "jti": claims["jti"]}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def revoke(service: ServeProcess, kind: str, value: str) -> None:
    with SyncRevokerClient(service.url, ADMIN) as rc:
        rc.revoke(kind, value)


@pytest.mark.parametrize("middleware", [True, False], ids=["middleware", "dependency"])
def test_fastapi_on_uvicorn(make_guard: Callable[..., Guard], keyset: KeySet,
                            service: ServeProcess, middleware: bool) -> None:
    guard = make_guard()
    sub = f"u-{uuid.uuid4().hex}"
    token = keyset.token(sub=sub, iat=int(time.time()) - 5)
    with uvicorn_server(fastapi_app(guard, middleware=middleware)) as url:
        status, _, body = call(url, "/me", token)
        assert status == 200 and json.loads(body)["sub"] == sub
        status, headers, body = call(url, "/me")
        assert status == 401
        assert headers["www-authenticate"].startswith('Bearer error="invalid_token"')
        status, headers, _ = call(url, "/me", keyset.token(aud="elsewhere"))
        assert status == 401 and "wrong audience" in headers["www-authenticate"]
        if middleware:
            assert call(url, "/health")[0] == 200
        revoke(service, "sub", sub)
        assert status_within(url, "/me", token, 401, within_s=STALENESS_S)
        status, headers, body = call(url, "/me", token)
        assert 'error_description="revoked"' in headers["www-authenticate"]
    guard.close()


def test_fastapi_fail_open_is_visible(make_guard: Callable[..., Guard], keyset: KeySet,
                                      service: ServeProcess) -> None:
    guard = make_guard(fail_mode="open", max_staleness_s=0.5)
    token = keyset.token()
    with uvicorn_server(fastapi_app(guard, middleware=True)) as url:
        service.stop()
        deadline = time.monotonic() + 5
        headers: dict[str, str] = {}
        while time.monotonic() < deadline and "x-revoker-degraded" not in headers:
            status, headers, _ = call(url, "/me", token)
            assert status == 200
        assert headers["x-revoker-degraded"] == "fail-open"


def test_fastapi_fail_closed_is_a_503(make_guard: Callable[..., Guard], keyset: KeySet,
                                      service: ServeProcess) -> None:
    guard = make_guard(max_staleness_s=0.5)
    token = keyset.token()
    with uvicorn_server(fastapi_app(guard, middleware=True)) as url:
        assert call(url, "/me", token)[0] == 200
        service.stop()
        assert status_within(url, "/me", token, 503, within_s=5)
        _, headers, body = call(url, "/me", token)
        assert headers["retry-after"] and json.loads(body)["status"] == 503


async def test_aiohttp_middleware(make_guard: Callable[..., Guard], keyset: KeySet,
                                  service: ServeProcess) -> None:
    guard = make_guard()

    async def me(request: web.Request) -> web.Response:
        return web.json_response({"sub": request[CLAIMS_KEY]["sub"]})

    app = web.Application(middlewares=[revoker_middleware(guard)])
    app.router.add_get("/me", me)
    jti = f"j-{uuid.uuid4().hex}"
    token = keyset.token(jti=jti, sub="carol")
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 200 and (await resp.json())["sub"] == "carol"
        resp = await client.get("/me", headers={"Authorization": "Bearer x.y.z"})
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
        revoke(service, "jti", jti)
        deadline = time.monotonic() + STALENESS_S
        while time.monotonic() < deadline:
            resp = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
            if resp.status == 401:
                break
        assert resp.status == 401
    await guard.aclose()
