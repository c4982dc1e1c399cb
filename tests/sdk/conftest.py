"""A real ``revoker serve`` on the suite's redis-server, validating tokens against a JWKS
served by a real (threaded) HTTP server, for the SDK and its framework integrations."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from revoker import apikeys
from revoker.sdk import Guard, VerifierSettings
from tests.jwt_factory import AUDIENCE, ISSUER, KeySet
from tests.redis_proc import RedisProcess
from tests.serve_proc import ServeProcess

ADMIN = "rvk_sdk_admin_key_000000000000000000"
CHECKER = "rvk_sdk_check_key_000000000000000000"
KEYS = ",".join([apikeys.config_line("ops", ["admin"], ADMIN),
                 apikeys.config_line("app", ["check"], CHECKER)])
#: The bound the tests hold the SDK to: a revoke is enforced within this many seconds.
STALENESS_S = 2.0


class JwksHttp:
    """A JWKS document on a stdlib HTTP server in a thread: usable from any thread or
    event loop, as the SDK's background loop and WSGI servers need."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        self.jwks = jwks
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps(owner.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def keyset() -> KeySet:
    return KeySet()


@pytest.fixture(scope="module")
def jwks(keyset: KeySet) -> Iterator[JwksHttp]:
    server = JwksHttp(keyset.jwks())
    yield server
    server.stop()


def service_env(redis_url: str, prefix: str, jwks_url: str) -> dict[str, str]:
    return {"REVOKER_STORE_URL": redis_url, "REVOKER_API_KEYS": KEYS,
            "REVOKER_KEY_PREFIX": prefix, "REVOKER_ACCESS_LOG": "false",
            "REVOKER_JWKS_URL": jwks_url, "REVOKER_JWT_ISSUER": ISSUER,
            "REVOKER_JWT_AUDIENCE": AUDIENCE}


@pytest.fixture
def service(redis_server: RedisProcess, prefix: str, jwks: JwksHttp) -> Iterator[ServeProcess]:
    server = ServeProcess(service_env(redis_server.url, prefix, jwks.url)).start()
    yield server
    server.stop()


def verifier_for(jwks: JwksHttp) -> VerifierSettings:
    """The same rules the service is configured with above."""
    return VerifierSettings(jwks_url=jwks.url, issuer=ISSUER, audience=(AUDIENCE,))


@pytest.fixture
def make_guard(service: ServeProcess, jwks: JwksHttp) -> Iterator[Callable[..., Guard]]:
    made: list[Guard] = []

    def make(**options: Any) -> Guard:
        options.setdefault("verifier", verifier_for(jwks))
        options.setdefault("max_staleness_s", STALENESS_S)
        guard = Guard(options.pop("url", service.url), options.pop("key", CHECKER), **options)
        made.append(guard.start(wait=True))
        return guard

    yield make
    for guard in made:
        guard.close()


def eventually(predicate: Callable[[], bool], *, within_s: float,
               step_s: float = 0.02) -> bool:
    """Poll ``predicate`` until it holds or the deadline passes (no fixed sleeps)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return predicate()
