"""Shared Signals poll delivery (RFC 8936): revoker as a receiver asks a transmitter for
Security Event Tokens instead of waiting for pushes, for receivers that cannot be
reached from the transmitter (behind a firewall, no public URL).

One loop, owned by the application (a cleanup context): it POSTs to
``REVOKER_SSF_POLL_URL`` with ``Authorization: Bearer REVOKER_SSF_POLL_TOKEN``

    {"maxEvents": N, "returnImmediately": false, "ack": [...], "setErrs": {...}}

and the transmitter holds the request until it has SETs (long polling). Each SET is
applied by ``revoker.web.ssf.Receiver.apply``, exactly as a pushed one: verified, then
acted on as ``REVOKER_SSF_EVENT_ACTIONS`` says. Its ``jti`` is then acknowledged in the
next request (``ack``), or reported in ``setErrs`` with the RFC 8935 / 8936 error code
when it is refused. A SET whose revocation the store could not record is neither: the
transmitter delivers it again later. Acknowledgements are dropped only once a request
carrying them was answered 200, so a transmitter that restarts or a lost response costs
at most a redelivery; redeliveries, duplicates and reordering are harmless because
applying a SET is idempotent and cutoffs only move forward.

Failures (connection refused, timeouts, non-200 answers, malformed responses, store
errors) are logged without any SET and counted in ``revoker_ssf_polls_total``; the loop
then waits, doubling from ``initial_backoff_s`` up to ``max_backoff_s``, and resumes. An
empty answer that came back at once (a transmitter ignoring ``returnImmediately``) waits
``min_interval_s``, so a misbehaving transmitter cannot make revoker spin.

One poller per service: with ``REVOKER_WORKERS=1`` ``setup`` installs it; with several
workers only worker 0 may run it (``install``), as the active-revocation sampler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import aiohttp
from aiohttp import web

from revoker import metrics
from revoker.config import Settings
from revoker.errors import StoreError
from revoker.web.ssf import RECEIVER, Receiver, SetError
from revoker.web.state import SETTINGS

log = logging.getLogger(__name__)
routes = web.RouteTableDef()  # serves nothing: a background task of the application
T = TypeVar("T")

INITIAL_BACKOFF_S: Final = 1.0
MAX_BACKOFF_S: Final = 60.0
MIN_INTERVAL_S: Final = 1.0
#: Longest description sent back in setErrs (the transmitter logs it).
MAX_DESCRIPTION: Final = 200


class PollError(Exception):
    """The transmitter's answer cannot be used (status, body); retried after a back-off."""


@dataclass(frozen=True, slots=True)
class PollConfig:
    url: str
    token: str | None
    max_events: int
    timeout_s: float
    initial_backoff_s: float = INITIAL_BACKOFF_S
    max_backoff_s: float = MAX_BACKOFF_S
    min_interval_s: float = MIN_INTERVAL_S

    @classmethod
    def from_settings(cls, settings: Settings) -> PollConfig | None:
        if not settings.ssf_poll_url:
            return None
        return cls(url=settings.ssf_poll_url, token=settings.ssf_poll_token,
                   max_events=settings.ssf_poll_max_events,
                   timeout_s=settings.ssf_poll_timeout_s)


@dataclass(slots=True)
class Poller:
    """The receiver side of RFC 8936; ``run`` loops until ``stop`` is set."""

    config: PollConfig
    receiver: Receiver
    session: aiohttp.ClientSession
    acks: set[str] = field(default_factory=set)
    errors: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Where to poll when the transmitter names it (``revoker.web.ssf_stream``): awaited
    #: before each request, so a re-created stream's new endpoint is used at once.
    endpoint: Callable[[], Awaitable[str]] | None = None

    def request_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"maxEvents": self.config.max_events,
                                "returnImmediately": False, "ack": sorted(self.acks)}
        if self.errors:
            body["setErrs"] = dict(self.errors)
        return body

    async def exchange(self) -> dict[str, Any]:
        """One request; the acknowledgements it carried are settled once it is a 200."""
        headers = {"Accept": "application/json"}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        sent_acks, sent_errors = set(self.acks), set(self.errors)
        url = await self.endpoint() if self.endpoint is not None else self.config.url
        async with self.session.post(url, json=self.request_body(),
                                     headers=headers) as resp:
            if resp.status != 200:
                raise PollError(f"the transmitter answered {resp.status}")
            try:
                data = await resp.json(content_type=None)
            except (ValueError, UnicodeDecodeError):
                raise PollError("the transmitter's answer is not JSON") from None
        self.acks -= sent_acks
        for jti in sent_errors:
            self.errors.pop(jti, None)
        if not isinstance(data, dict) or not isinstance(data.get("sets", {}), dict):
            raise PollError("the transmitter's answer has no sets object")
        return data

    async def apply(self, sets: dict[str, Any]) -> None:
        """Apply each SET in the order sent; the first store failure stops the batch (the
        rest is not acknowledged, so it comes again) and is raised."""
        for jti, token in sets.items():
            if not isinstance(token, str):
                self.errors[jti] = {"err": "invalid_request",
                                    "description": "the SET is not a compact JWS string"}
                continue
            try:
                await self.receiver.apply(token.strip(), delivery="poll")
            except SetError as exc:
                self.errors[jti] = {"err": exc.err,
                                    "description": exc.description[:MAX_DESCRIPTION]}
            else:
                self.acks.add(jti)

    async def run(self, stop: asyncio.Event) -> None:
        delay = self.config.initial_backoff_s
        while not stop.is_set():
            started = time.monotonic()
            try:
                data = await _unless_stopped(self.exchange(), stop)
                if data is None:
                    return
                sets = data.get("sets", {})
                await self.apply(sets)
            except (aiohttp.ClientError, TimeoutError, PollError, StoreError) as exc:
                log.warning("polling the Shared Signals transmitter failed (%s); retrying "
                            "in %.1fs", _describe(exc), delay)
                delay = await self._back_off(stop, delay)
                continue
            except Exception:  # a bug must not end the only poller of the service
                log.exception("unexpected error while polling; retrying in %.1fs", delay)
                delay = await self._back_off(stop, delay)
                continue
            metrics.SSF_POLLS.labels(result="ok").inc()
            delay = self.config.initial_backoff_s
            quick = time.monotonic() - started < self.config.min_interval_s
            if not sets and not data.get("moreAvailable") and quick and not self.acks \
                    and not self.errors:
                await _wait(stop, self.config.min_interval_s)


    async def _back_off(self, stop: asyncio.Event, delay: float) -> float:
        metrics.SSF_POLLS.labels(result="error").inc()
        await _wait(stop, delay)
        return min(delay * 2, self.config.max_backoff_s)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"[:200]


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _unless_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """``work``'s result, or None when ``stop`` is set first (``work`` is then cancelled:
    a long poll may be held open by the transmitter for a minute)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


POLL_CONFIG = web.AppKey("ssf_poll_config", PollConfig)
POLL_ENDPOINT: web.AppKey[Callable[[], Awaitable[str]]] = web.AppKey("ssf_poll_endpoint")


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    config = PollConfig.from_settings(settings)
    if config is None:
        return
    app[POLL_CONFIG] = config
    if settings.workers == 1:
        install(app)


def install(app: web.Application) -> None:
    """Poll while the app runs, when a transmitter is configured, with
    ``app[POLL_CONFIG]`` as it is at start (after the store and the issuers' keys are
    ready: cleanup contexts start in order). Called by ``setup`` for a single process,
    and for worker 0 of several by the server."""
    if POLL_CONFIG in app and _lifecycle not in app.cleanup_ctx:
        app.cleanup_ctx.append(_lifecycle)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    config = app[POLL_CONFIG]
    timeout = aiohttp.ClientTimeout(total=config.timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        stop = asyncio.Event()
        poller = Poller(config, app[RECEIVER], session, endpoint=app.get(POLL_ENDPOINT))
        task = asyncio.create_task(poller.run(stop), name="revoker-ssf-poller")
        try:
            yield
        finally:
            stop.set()  # ends a long poll at once; a SET being applied finishes first
            try:
                await asyncio.wait_for(task, config.timeout_s)
            except (TimeoutError, asyncio.CancelledError):
                log.warning("the Shared Signals poller did not stop in time")
