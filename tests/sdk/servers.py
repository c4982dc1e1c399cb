"""Real servers for the framework tests, each in a thread on a free port: uvicorn for
ASGI apps, werkzeug's threaded server for WSGI apps; and a plain HTTP caller."""

from __future__ import annotations

import asyncio
import http.client
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from werkzeug.serving import make_server

from tests.redis_proc import free_port, wait_port


@contextmanager
def uvicorn_server(app: Any) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off",
                            log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    wait_port(port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def wsgi_server(app: Any) -> Iterator[str]:
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def call(url: str, path: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """One GET on a fresh connection: (status, headers, body)."""
    host, _, port = url.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def status_within(url: str, path: str, token: str, status: int, *, within_s: float) -> bool:
    """Poll until the app answers ``status`` for ``token`` (a revoke propagating)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if call(url, path, token)[0] == status:
            return True
        time.sleep(0.02)
    return call(url, path, token)[0] == status
