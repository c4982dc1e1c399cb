"""A Shared Signals transmitter on a fixed free local port: its poll endpoint (RFC 8936),
a queue of SETs that are delivered until acknowledged, and its stream management API
(OpenID Shared Signals Framework 1.0), for the poll-delivery and stream tests.

What the RFC asks of a transmitter, and this one does:
- ``POST`` with an ``application/json`` body; ``maxEvents`` (0 = acknowledge only),
  ``returnImmediately`` (false: hold the request until a SET is available or the hold
  time passes), ``ack`` (jtis now acknowledged) and ``setErrs`` (jti -> ``{"err",
  "description"}``) are read first; a malformed request is a 400 ``{"err":
  "invalid_request"}`` and a missing or wrong bearer credential a 401.
- the answer is ``{"sets": {jti: SET}, "moreAvailable": bool}``; a SET stays queued, and
  is delivered again, until it is acknowledged or reported in ``setErrs``.

What SSF 1.0 asks of a transmitter's management API, and this one does (with ``keys``):
- ``GET /.well-known/ssf-configuration``: issuer (``http://127.0.0.1:{port}``), jwks_uri,
  delivery methods, and the configuration, status and verification endpoints; the JWKS
  itself at ``/jwks.json``.
- every management call needs the bearer credential (401 otherwise); a body that is not
  a JSON object is a 400.
- configuration endpoint: ``POST`` creates a stream (201; ``events_delivered`` is
  ``events_requested`` within ``events_supported``; a push stream needs its
  ``endpoint_url``, a poll stream gets this transmitter's poll URL); ``GET`` reads one
  (``stream_id``) or lists all; ``PATCH`` changes the receiver-supplied properties it
  names; ``DELETE`` removes one (204); an unknown ``stream_id`` is a 404. With
  ``single_stream`` a second ``POST`` is a 409.
- status endpoint: ``GET`` (``stream_id``) -> ``{"stream_id", "status"}``.
- verification endpoint: ``POST {"stream_id", "state"}`` -> 204, then a verification SET
  (``sub_id`` opaque stream id, event ``{"state"}``) signed with ``keys`` goes out on the
  stream: pushed to its ``endpoint_url`` or queued for polling.

Tests also make it fail (``fail_next``: 503s), restart it on the same port (the queue
survives, as a durable one would, and unacknowledged SETs come again), and read every
request it accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import aiohttp
from aiohttp import web

from tests.jwt_factory import KeySet, sign
from tests.redis_proc import free_port

SSF = "https://schemas.openid.net/secevent/ssf/event-type/"
VERIFICATION = SSF + "verification"
PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"
RECEIVER_PROPERTIES = ("events_requested", "delivery", "description", "format")


class SsfTransmitter:
    def __init__(self, *, token: str, hold_s: float = 0.3, keys: KeySet | None = None,
                 audience: str = "revoker-rp", events_supported: tuple[str, ...] = (),
                 single_stream: bool = False) -> None:
        self.token = token
        self.hold_s = hold_s
        self.keys = keys
        self.audience = audience
        self.events_supported = events_supported
        self.single_stream = single_stream
        self.port = free_port()
        #: stream_id -> configuration; status by stream_id
        self.streams: dict[str, dict[str, Any]] = {}
        self.status: dict[str, str] = {}
        #: every management call: (method, path, JSON body or None)
        self.calls: list[tuple[str, str, Any]] = []
        #: the status codes of every push of a SET to a receiver
        self.pushed: list[int] = []
        self._tasks: set[asyncio.Task[None]] = set()
        #: jti -> SET (or any JSON value, to send a malformed one), in delivery order
        self.pending: dict[str, Any] = {}
        self.acked: list[str] = []
        self.errors: dict[str, dict[str, Any]] = {}
        #: every request body accepted, and the number of SETs each answer carried
        self.requests: list[dict[str, Any]] = []
        self.served: list[int] = []
        self.refused_auth = 0
        self._failures = 0
        self._published = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ssf/poll"

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/jwks.json"

    def publish(self, jti: str, token: Any) -> None:
        self.pending[jti] = token
        self._published.set()

    def fail_next(self, count: int) -> None:
        self._failures = count

    async def start(self) -> SsfTransmitter:
        app = web.Application()
        app.router.add_post("/ssf/poll", self._poll)
        app.router.add_get("/.well-known/ssf-configuration", self._metadata)
        app.router.add_get("/jwks.json", self._jwks)
        app.router.add_route("*", "/ssf/stream", self._stream)
        app.router.add_get("/ssf/status", self._status)
        app.router.add_post("/ssf/verify", self._verify)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _poll(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self.refused_auth += 1
            return web.json_response({"err": "authentication_failed"}, status=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        if self._failures:
            self._failures -= 1
            return web.json_response({"err": "temporarily_unavailable"}, status=503)
        body = await self._read(request)
        if body is None:
            return web.json_response({"err": "invalid_request"}, status=400)
        self.requests.append(body)
        for jti in body.get("ack", []):
            self.pending.pop(jti, None)
            self.acked.append(jti)
        for jti, error in body.get("setErrs", {}).items():
            self.pending.pop(jti, None)
            self.errors[jti] = error
        max_events = body.get("maxEvents")
        if max_events == 0:
            return web.json_response({"sets": {}})
        if not self.pending and not body.get("returnImmediately", False):
            self._published.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._published.wait(), self.hold_s)
        chosen = dict(list(self.pending.items())[:max_events])
        self.served.append(len(chosen))
        return web.json_response({"sets": chosen,
                                  "moreAvailable": len(self.pending) > len(chosen)})

    @staticmethod
    async def _read(request: web.Request) -> dict[str, Any] | None:
        if request.content_type != "application/json":
            return None
        try:
            body = await request.json()
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        max_events, immediately = body.get("maxEvents"), body.get("returnImmediately", False)
        ack, errors = body.get("ack", []), body.get("setErrs", {})
        valid = (max_events is None or (isinstance(max_events, int) and max_events >= 0)) \
            and isinstance(immediately, bool) \
            and isinstance(ack, list) and all(isinstance(j, str) for j in ack) \
            and isinstance(errors, dict) \
            and all(isinstance(e, dict) and isinstance(e.get("err"), str)
                    for e in errors.values())
        return body if valid else None

    # -- stream management (SSF 1.0) -----------------------------------------------------

    async def _metadata(self, request: web.Request) -> web.Response:
        return web.json_response({
            "issuer": self.issuer, "jwks_uri": self.jwks_url, "spec_version": "1_0",
            "delivery_methods_supported": [PUSH, POLL],
            "configuration_endpoint": f"{self.issuer}/ssf/stream",
            "status_endpoint": f"{self.issuer}/ssf/status",
            "verification_endpoint": f"{self.issuer}/ssf/verify",
            "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}]})

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response(self.keys.jwks() if self.keys else {"keys": []})

    def _authorized(self, request: web.Request) -> bool:
        if request.headers.get("Authorization") == f"Bearer {self.token}":
            return True
        self.refused_auth += 1
        return False

    async def _management_body(self, request: web.Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    async def _stream(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401, headers={"WWW-Authenticate": "Bearer"})
        body = None
        if request.method in ("POST", "PATCH"):
            body = await self._management_body(request)
            if body is None:
                return web.Response(status=400)
        self.calls.append((request.method, request.path, body))
        stream_id = request.query.get("stream_id") or (body or {}).get("stream_id")
        if request.method == "GET" and stream_id is None:
            return web.json_response(list(self.streams.values()))
        if request.method == "POST":
            return self._create(body or {})
        if stream_id not in self.streams:
            return web.Response(status=404)
        if request.method == "GET":
            return web.json_response(self.streams[stream_id])
        if request.method == "PATCH":
            return self._update(stream_id, body or {})
        if request.method == "DELETE":
            del self.streams[stream_id]
            self.status.pop(stream_id, None)
            return web.Response(status=204)
        return web.Response(status=405)

    def _create(self, body: dict[str, Any]) -> web.Response:
        if self.single_stream and self.streams:
            return web.Response(status=409)
        stream_id = uuid.uuid4().hex
        stream = {"stream_id": stream_id, "iss": self.issuer, "aud": self.audience,
                  "events_supported": list(self.events_supported),
                  "min_verification_interval": 0}
        error = self._apply(stream, body)
        if error:
            return web.Response(status=400, text=error)
        self.streams[stream_id] = stream
        self.status[stream_id] = "enabled"
        return web.json_response(stream, status=201)

    def _update(self, stream_id: str, body: dict[str, Any]) -> web.Response:
        stream = dict(self.streams[stream_id])
        error = self._apply(stream, body)
        if error:
            return web.Response(status=400, text=error)
        self.streams[stream_id] = stream
        return web.json_response(stream)

    def _apply(self, stream: dict[str, Any], body: dict[str, Any]) -> str | None:
        """The receiver-supplied properties ``body`` names; an error text or None."""
        for name in RECEIVER_PROPERTIES:
            if name in body:
                stream[name] = body[name]
        delivery = stream.get("delivery") or {"method": PUSH}
        if not isinstance(delivery, dict) or delivery.get("method") not in (PUSH, POLL):
            return "unsupported delivery method"
        if delivery["method"] == PUSH and not isinstance(delivery.get("endpoint_url"), str):
            return "push delivery needs endpoint_url"
        if delivery["method"] == POLL:
            delivery = {**delivery, "endpoint_url": self.url}
        stream["delivery"] = delivery
        requested = stream.get("events_requested") or []
        stream["events_delivered"] = [e for e in requested if e in self.events_supported]
        return None

    async def _status(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401, headers={"WWW-Authenticate": "Bearer"})
        stream_id = request.query.get("stream_id", "")
        self.calls.append((request.method, request.path, None))
        if stream_id not in self.streams:
            return web.Response(status=404)
        return web.json_response({"stream_id": stream_id, "status": self.status[stream_id]})

    async def _verify(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401, headers={"WWW-Authenticate": "Bearer"})
        body = await self._management_body(request)
        if body is None or not isinstance(body.get("state", ""), str):
            return web.Response(status=400)
        self.calls.append((request.method, request.path, body))
        stream_id = body.get("stream_id")
        if stream_id not in self.streams:
            return web.Response(status=404)
        event = {"state": body["state"]} if "state" in body else {}
        task = asyncio.create_task(self.send(stream_id, {VERIFICATION: event}))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.Response(status=204)

    def make_set(self, stream_id: str, events: dict[str, Any]) -> str:
        assert self.keys is not None, "the transmitter signs with its keys"
        kid, key = self.keys.by_alg("RS256")
        payload = {"iss": self.issuer, "aud": self.audience, "iat": int(time.time()),
                   "jti": uuid.uuid4().hex, "sub_id": {"format": "opaque", "id": stream_id},
                   "events": events}
        return sign(key, "RS256", payload, kid=kid, headers={"typ": "secevent+jwt"})

    async def send(self, stream_id: str, events: dict[str, Any]) -> None:
        """A SET on the stream, as its delivery says: pushed now, or queued for a poll."""
        token = self.make_set(stream_id, events)
        delivery = self.streams[stream_id]["delivery"]
        if delivery["method"] == POLL:
            self.publish(uuid.uuid4().hex, token)
            return
        headers = {"Content-Type": "application/secevent+jwt"}
        async with aiohttp.ClientSession() as session, \
                session.post(delivery["endpoint_url"], data=token, headers=headers) as resp:
            self.pushed.append(resp.status)
