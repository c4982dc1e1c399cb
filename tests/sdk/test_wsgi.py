"""Flask (with the WSGI middleware, and with flask-jwt-extended's blocklist callback) on
a real threaded WSGI server, against a real ``revoker serve`` on a real redis-server."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, request
from flask_jwt_extended import JWTManager, create_access_token, get_jwt, jwt_required

from revoker.sdk import Guard, SyncRevokerClient, VerifierSettings
from revoker.sdk.flask_jwt import blocklist_loader
from revoker.sdk.wsgi import CLAIMS_KEY, RevokerWSGI
from tests.jwt_factory import KeySet
from tests.sdk.conftest import ADMIN, STALENESS_S
from tests.sdk.servers import call, status_within, wsgi_server
from tests.serve_proc import ServeProcess

pytestmark = pytest.mark.redis


def revoke(service: ServeProcess, kind: str, value: str) -> None:
    with SyncRevokerClient(service.url, ADMIN) as rc:
        rc.revoke(kind, value)


def flask_app(guard: Guard) -> Flask:
    app = Flask(__name__)

    @app.get("/me")
    def me() -> dict[str, Any]:
        return {"sub": request.environ[CLAIMS_KEY]["sub"]}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.wsgi_app = RevokerWSGI(app.wsgi_app, guard, exclude=("/health",))  # type: ignore[method-assign]
    return app


@pytest.mark.parametrize("mode", ["mirror", "authz"])
def test_flask_with_the_wsgi_middleware(make_guard: Callable[..., Guard], keyset: KeySet,
                                        service: ServeProcess, mode: str) -> None:
    guard = make_guard(mode=mode)
    sid = f"s-{uuid.uuid4().hex}"
    token = keyset.token(sid=sid, sub="dave")
    with wsgi_server(flask_app(guard)) as url:
        status, _, body = call(url, "/me", token)
        assert status == 200 and json.loads(body) == {"sub": "dave"}
        status, headers, body = call(url, "/me", token[:-3] + "AAA")
        assert status == 401
        assert headers["www-authenticate"].startswith('Bearer error="invalid_token"')
        assert json.loads(body)["status"] == 401
        assert headers["content-type"] == "application/problem+json"
        assert call(url, "/health")[0] == 200
        revoke(service, "sid", sid)
        assert status_within(url, "/me", token, 401, within_s=STALENESS_S)


def test_flask_service_down_fail_closed_then_open(make_guard: Callable[..., Guard],
                                                 keyset: KeySet,
                                                 service: ServeProcess) -> None:
    closed = make_guard(max_staleness_s=0.5)
    opened = make_guard(max_staleness_s=0.5, fail_mode="open")
    token = keyset.token()
    with wsgi_server(flask_app(closed)) as closed_url, \
            wsgi_server(flask_app(opened)) as open_url:
        assert call(closed_url, "/me", token)[0] == 200
        service.stop()
        assert status_within(closed_url, "/me", token, 503, within_s=5)
        deadline = time.monotonic() + 5
        headers: dict[str, str] = {}
        while time.monotonic() < deadline and "x-revoker-degraded" not in headers:
            status, headers, _ = call(open_url, "/me", token)
            assert status == 200
        assert headers["x-revoker-degraded"] == "fail-open"


def test_flask_jwt_extended_blocklist(make_guard: Callable[..., Guard],
                                      service: ServeProcess) -> None:
    """flask-jwt-extended validates its own HS256 tokens; revoker only answers whether
    one is revoked, so the guard needs no keys."""
    guard = make_guard(verifier=VerifierSettings())
    app = Flask(__name__)
    app.config["JWT_SECRET_KEY"] = "flask-jwt-extended-test-secret-long-enough"
    jwt = JWTManager(app)
    jwt.token_in_blocklist_loader(blocklist_loader(guard))

    @app.get("/me")
    @jwt_required()
    def me() -> dict[str, Any]:
        return {"sub": get_jwt()["sub"]}

    with app.app_context():
        erin = create_access_token(identity="erin")
        frank = create_access_token(identity="frank")
    with wsgi_server(app) as url:
        assert call(url, "/me", erin)[0] == 200
        assert call(url, "/me", frank)[0] == 200
        revoke(service, "sub", "erin")  # every token erin holds
        assert status_within(url, "/me", erin, 401, within_s=STALENESS_S)
        _, _, body = call(url, "/me", erin)
        assert "revoked" in json.loads(body)["msg"]
        assert call(url, "/me", frank)[0] == 200
