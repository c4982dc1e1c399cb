"""Shared Signals stream management (OpenID Shared Signals Framework 1.0, receiver side):
revoker connects itself to a transmitter, so that nobody configures the stream by hand
on the transmitter.

With ``REVOKER_SSF_TRANSMITTER`` set, one task per service (the only process, or worker 0
of several, as the poller) reads the transmitter's ``/.well-known/ssf-configuration`` and
then, on its configuration endpoint with ``REVOKER_SSF_TRANSMITTER_TOKEN``:

- finds revoker's stream among the receiver's streams (``GET``): the one with our
  delivery (push to our ``/ssf/events``, or poll). If there is none it creates one
  (``POST``); should the transmitter allow one stream per receiver only (409), the
  existing one is taken. A found stream whose events or delivery differ is updated
  (``PATCH``), never duplicated.
- asks for the event types revoker acts on (``REVOKER_SSF_EVENT_ACTIONS`` and the
  defaults, without those set to ``ignore``), delivered by push (``urn:ietf:rfc:8935``)
  to ``REVOKER_PUBLIC_URL`` + ``/ssf/events`` or by poll (``urn:ietf:rfc:8936``) from the
  endpoint the transmitter names, which the poller then uses (``REVOKER_SSF_POLL_URL``
  overrides it).
- requests a verification event with a random ``state`` and records when the matching,
  verified SET arrives (``Receiver.observers``); it asks again, no more often than the
  stream's ``min_verification_interval``, until one does.
- reads the stream's status now and then (a ``stream-updated`` SET updates it at once);
  a stream deleted on the transmitter (404) is found or created again.

Every failure (transmitter down, refused credential, malformed answer) is logged, kept as
``last_error`` and retried with a doubling back-off. Stream management never makes the
service unready: revocation checks work whatever the transmitter does, so ``/readyz``
shows the stream as a detail (``ssf_stream``) that is always "ok".

``Management`` and ``find_stream`` are shared with ``revoker ssf-stream``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp import web

from revoker.config import Settings
from revoker.tokens import SecurityEvent
from revoker.web import ssf_poll
from revoker.web.ssf import RECEIVER, SSF, event_actions
from revoker.web.state import READINESS, SETTINGS

log = logging.getLogger(__name__)
routes = web.RouteTableDef()  # serves nothing: a background task of the application

PUSH_METHOD: Final = "urn:ietf:rfc:8935"
POLL_METHOD: Final = "urn:ietf:rfc:8936"
METHODS: Final = {"push": PUSH_METHOD, "poll": POLL_METHOD}
VERIFICATION: Final = SSF + "verification"
STREAM_UPDATED: Final = SSF + "stream-updated"
INITIAL_BACKOFF_S: Final = 1.0
MAX_BACKOFF_S: Final = 300.0
STATUS_REFRESH_S: Final = 300.0
#: How long to wait for a requested verification event before asking again.
VERIFY_RETRY_S: Final = 30.0
REQUEST_TIMEOUT_S: Final = 10.0
DESCRIPTION: Final = "revoker: token revocation"


class TransmitterError(Exception):
    """The transmitter's management API could not be used; the message says why, for the
    operator (never with the credential)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def discovery_url(issuer: str) -> str:
    """SSF 1.0 section 6.2: ``/.well-known/ssf-configuration`` goes between the host and
    the issuer's path (``https://tr.example/t1`` -> ``.../.well-known/ssf-configuration/t1``)."""
    parts = urlsplit(issuer)
    path = "/.well-known/ssf-configuration" + parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


@dataclass(frozen=True, slots=True)
class StreamWanted:
    """The stream revoker asks for, from the settings."""

    issuer: str
    token: str | None
    delivery: str
    events: tuple[str, ...]
    push_url: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamWanted | None:
        if not settings.ssf_transmitter:
            return None
        acted_on = sorted(t for t, action in event_actions(settings).items()
                          if action != "ignore")
        push_url = f"{settings.public_url}/ssf/events" if settings.public_url else None
        return cls(settings.ssf_transmitter, settings.ssf_transmitter_token,
                   settings.ssf_delivery, tuple(acted_on), push_url)

    def delivery_object(self) -> dict[str, str]:
        if self.delivery == "push":
            assert self.push_url is not None  # config.py requires REVOKER_PUBLIC_URL
            return {"method": PUSH_METHOD, "endpoint_url": self.push_url}
        return {"method": POLL_METHOD}  # the transmitter supplies the poll endpoint

    def is_ours(self, stream: dict[str, Any]) -> bool:
        delivery = stream.get("delivery")
        if not isinstance(delivery, dict) or delivery.get("method") != METHODS[self.delivery]:
            return False
        return self.delivery == "poll" or delivery.get("endpoint_url") == self.push_url

    def update_for(self, stream: dict[str, Any]) -> dict[str, Any] | None:
        """The PATCH body that makes ``stream`` ours, or None when it already is."""
        change: dict[str, Any] = {}
        if set(stream.get("events_requested") or ()) != set(self.events):
            change["events_requested"] = list(self.events)
        if not self.is_ours(stream):
            change["delivery"] = self.delivery_object()
        return {"stream_id": stream["stream_id"], **change} if change else None

    def poll_endpoint(self, stream: dict[str, Any]) -> str:
        """The poll URL the transmitter named, refused unless it is as safe as the
        transmitter itself (https; http only from a loopback transmitter): the bearer
        credential is sent there."""
        delivery = stream.get("delivery") or {}
        url = delivery.get("endpoint_url") if isinstance(delivery, dict) else None
        if not isinstance(url, str) or not url:
            raise TransmitterError("the stream names no poll endpoint_url")
        scheme = urlsplit(url).scheme
        if scheme != "https" and not (scheme == "http" and self.issuer.startswith("http:")):
            raise TransmitterError(f"the poll endpoint_url {url!r} is not https")
        return url


class Management:
    """The transmitter's stream management API (SSF 1.0 section 8), as revoker uses it."""

    def __init__(self, session: aiohttp.ClientSession, issuer: str, token: str | None) -> None:
        self.session = session
        self.issuer = issuer
        self.token = token
        self.metadata: dict[str, Any] = {}

    async def discover(self) -> dict[str, Any]:
        data = await self._call("GET", discovery_url(self.issuer), auth=False)
        if not isinstance(data, dict):
            raise TransmitterError("the ssf-configuration document is not a JSON object")
        if str(data.get("issuer", "")).rstrip("/") != self.issuer.rstrip("/"):
            raise TransmitterError(f"the ssf-configuration names issuer "
                                   f"{data.get('issuer')!r}, not {self.issuer}")
        if not isinstance(data.get("configuration_endpoint"), str):
            raise TransmitterError("the transmitter has no configuration_endpoint")
        self.metadata = data
        return data

    async def streams(self) -> list[dict[str, Any]]:
        data = await self._call("GET", self._endpoint("configuration_endpoint"))
        if isinstance(data, dict):  # a transmitter with one stream per receiver
            data = [data]
        if not isinstance(data, list):
            raise TransmitterError("the stream list is not a JSON array")
        return [s for s in data if isinstance(s, dict) and isinstance(s.get("stream_id"), str)]

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return _stream(await self._call("POST", self._endpoint("configuration_endpoint"),
                                        body=body, expect=(200, 201)))

    async def update(self, body: dict[str, Any]) -> dict[str, Any]:
        return _stream(await self._call("PATCH", self._endpoint("configuration_endpoint"),
                                        body=body))

    async def delete(self, stream_id: str) -> None:
        await self._call("DELETE", self._endpoint("configuration_endpoint"),
                         params={"stream_id": stream_id}, expect=(204, 200))

    async def status(self, stream_id: str) -> dict[str, Any]:
        if not isinstance(self.metadata.get("status_endpoint"), str):
            return {"status": "unknown"}
        data = await self._call("GET", self._endpoint("status_endpoint"),
                                params={"stream_id": stream_id})
        return data if isinstance(data, dict) else {"status": "unknown"}

    async def verify(self, stream_id: str, state: str) -> None:
        await self._call("POST", self._endpoint("verification_endpoint"),
                         body={"stream_id": stream_id, "state": state}, expect=(204, 200))

    def _endpoint(self, name: str) -> str:
        url = self.metadata.get(name)
        if not isinstance(url, str):
            raise TransmitterError(f"the transmitter announces no {name}")
        return url

    async def _call(self, method: str, url: str, *, body: Any = None, auth: bool = True,
                    params: dict[str, str] | None = None,
                    expect: tuple[int, ...] = (200,)) -> Any:
        headers = {"Accept": "application/json"}
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            async with self.session.request(method, url, json=body, params=params,
                                            headers=headers) as resp:
                if resp.status in (401, 403):
                    raise TransmitterError(
                        f"{method} {url}: the transmitter refused the credential "
                        f"({resp.status}); check REVOKER_SSF_TRANSMITTER_TOKEN",
                        status=resp.status)
                if resp.status not in expect:
                    raise TransmitterError(f"{method} {url} answered {resp.status}",
                                           status=resp.status)
                if resp.status == 204:
                    return None
                return await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            what = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}"
            raise TransmitterError(f"{method} {url}: {what}") from None
        except (ValueError, UnicodeDecodeError):
            raise TransmitterError(f"{method} {url}: the answer is not JSON") from None


def _stream(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("stream_id"), str):
        raise TransmitterError("the transmitter's stream configuration has no stream_id")
    return data


async def find_stream(api: Management, wanted: StreamWanted) -> dict[str, Any] | None:
    """Revoker's stream among the receiver's streams, if any."""
    return next((s for s in await api.streams() if wanted.is_ours(s)), None)


async def ensure_stream(api: Management, wanted: StreamWanted) -> dict[str, Any]:
    """Find, update or create revoker's stream (see the module docstring)."""
    stream = await find_stream(api, wanted)
    if stream is None:
        body = {"events_requested": list(wanted.events),
                "delivery": wanted.delivery_object(), "description": DESCRIPTION}
        try:
            return await api.create(body)
        except TransmitterError as exc:
            existing = await api.streams() if exc.status == 409 else []
            if len(existing) != 1:
                raise
            stream = existing[0]
    change = wanted.update_for(stream)
    return await api.update(change) if change else stream


@dataclass(slots=True)
class StreamManager:
    """Keeps revoker's stream in place and knows how it is, for ``/readyz``."""

    wanted: StreamWanted
    stream: dict[str, Any] | None = None
    status: str = "unknown"
    reason: str | None = None
    verified_at: int | None = None
    last_error: str | None = None
    poll_url: str | None = None
    pending_state: str | None = None
    requested_at: float | None = None
    poll_url_known: asyncio.Event = field(default_factory=asyncio.Event)
    #: False in the workers that do not manage the stream (only worker 0 does).
    running: bool = False

    def observe(self, signal: SecurityEvent) -> None:
        """A verified SET was applied: our verification, or a status change."""
        if signal.issuer.rstrip("/") != self.wanted.issuer:
            return
        verification = signal.events.get(VERIFICATION)
        if isinstance(verification, dict) and self.pending_state is not None \
                and secrets.compare_digest(str(verification.get("state", "")),
                                           self.pending_state):
            self.verified_at, self.pending_state = int(time.time()), None
            log.info("the Shared Signals stream is verified")
        update = signal.events.get(STREAM_UPDATED)
        if isinstance(update, dict) and "subject" not in update \
                and isinstance(update.get("status"), str):
            self.status, self.reason = update["status"], update.get("reason")

    async def poll_endpoint(self) -> str:
        await self.poll_url_known.wait()
        assert self.poll_url is not None
        return self.poll_url

    def detail(self) -> dict[str, Any]:
        if not self.running:
            return {"transmitter": self.wanted.issuer, "managed_by": "worker 0"}
        stream_id = self.stream["stream_id"] if self.stream else None
        return {"transmitter": self.wanted.issuer, "delivery": self.wanted.delivery,
                "stream_id": stream_id, "status": self.status, "reason": self.reason,
                "verified": self.verified_at is not None, "verified_at": self.verified_at,
                "last_error": self.last_error}

    async def probe(self) -> tuple[bool, str, Any]:
        return True, "ssf_stream", self.detail()  # checks work whatever the stream does

    async def run(self, api: Management, stop: asyncio.Event) -> None:
        delay = INITIAL_BACKOFF_S
        while not stop.is_set():
            try:
                wait_s = await self.cycle(api)
            except TransmitterError as exc:
                self.last_error = str(exc)
                log.warning("Shared Signals stream management: %s; retrying in %.0fs",
                            exc, delay)
                wait_s, delay = delay, min(delay * 2, MAX_BACKOFF_S)
            except Exception as exc:  # a bug must not end stream management
                self.last_error = f"unexpected error: {type(exc).__name__}"
                log.exception("Shared Signals stream management failed; retrying")
                wait_s, delay = delay, min(delay * 2, MAX_BACKOFF_S)
            else:
                delay = INITIAL_BACKOFF_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait_s)

    async def cycle(self, api: Management) -> float:
        """One round: make sure of the stream, read its status, ask for verification when
        due. Returns the seconds until the next round."""
        if self.stream is None:
            await api.discover()
            self.adopt(await ensure_stream(api, self.wanted))
        assert self.stream is not None
        stream_id = self.stream["stream_id"]
        try:
            status = await api.status(stream_id)
        except TransmitterError as exc:
            if exc.status == 404:
                self.stream, self.verified_at = None, None
                raise TransmitterError(f"stream {stream_id} is gone; finding or creating "
                                       "it again") from None
            raise
        self.status, self.reason = str(status.get("status", "unknown")), status.get("reason")
        interval = max(VERIFY_RETRY_S, float(self.stream.get("min_verification_interval")
                                             or 0))
        now = time.monotonic()
        if self.verified_at is None and (self.requested_at is None
                                         or now - self.requested_at >= interval):
            self.pending_state = secrets.token_urlsafe(24)
            self.requested_at = now
            await api.verify(stream_id, self.pending_state)
        self.last_error = None
        return STATUS_REFRESH_S if self.verified_at is not None else interval

    def adopt(self, stream: dict[str, Any]) -> None:
        if self.wanted.delivery == "poll":
            self.poll_url = self.wanted.poll_endpoint(stream)
            self.poll_url_known.set()
        self.stream, self.requested_at = stream, None
        log.info("Shared Signals stream %s at %s: %s delivery, events %s",
                 stream["stream_id"], self.wanted.issuer, self.wanted.delivery,
                 ", ".join(self.wanted.events))


STREAM = web.AppKey("ssf_stream", StreamManager)


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    wanted = StreamWanted.from_settings(settings)
    if wanted is None:
        return
    manager = StreamManager(wanted)
    app[STREAM] = manager
    app[RECEIVER].observers.append(manager.observe)
    app[READINESS].append(manager.probe)
    if wanted.delivery == "poll" and ssf_poll.POLL_CONFIG not in app:
        app[ssf_poll.POLL_CONFIG] = ssf_poll.PollConfig(
            url=wanted.issuer, token=settings.ssf_poll_token or wanted.token,
            max_events=settings.ssf_poll_max_events, timeout_s=settings.ssf_poll_timeout_s)
        app[ssf_poll.POLL_ENDPOINT] = manager.poll_endpoint
        if settings.workers == 1:
            ssf_poll.install(app)
    if settings.workers == 1:
        install(app)


def install(app: web.Application) -> None:
    """Manage the stream while the app runs: by ``setup`` in a single process, by the
    server in worker 0 of several (the other workers' ``/readyz`` show no progress)."""
    if STREAM in app and _lifecycle not in app.cleanup_ctx:
        app.cleanup_ctx.append(_lifecycle)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    manager = app[STREAM]
    manager.running = True
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        stop = asyncio.Event()
        api = Management(session, manager.wanted.issuer, manager.wanted.token)
        task = asyncio.create_task(manager.run(api, stop), name="revoker-ssf-stream")
        try:
            yield
        finally:
            stop.set()
            task.cancel()  # a request in flight has nothing worth finishing
            with contextlib.suppress(asyncio.CancelledError):
                await task
