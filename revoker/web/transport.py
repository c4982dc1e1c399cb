"""The connection guard: strict request framing and time limits, before aiohttp parses.

aiohttp's HTTP parser answers a malformed header line with a 400 whose body quotes the
line, and logs the line at error level; when that line carries a credential (an API key
with a stray control byte, a bearer token pasted with a bare CR from a CRLF file), the
credential ends up in the log and in the answer. aiohttp also never times out a request
that trickles in: a few hundred stalled connections tie up a worker.

``Guard`` is an ``asyncio.Protocol`` in front of aiohttp's ``RequestHandler`` (the
protocol ``web.Server()`` makes). It holds each request's line and header block until they
are complete and checks them against a strict subset of RFC 9112 that aiohttp's parser
always accepts: CRLF line endings, a known method, an origin-form target, HTTP/1.0 or 1.1,
token field names, no control bytes other than HTAB, bounded line and block sizes, a Host
in HTTP/1.1, no repeated singleton header (Host, Content-Length...), no Transfer-Encoding
and no Content-Encoding. A violation is answered with a fixed problem
document that quotes nothing, logged in one line that says what was wrong (never the
bytes), and the connection closed; aiohttp never sees it. Only then are the bytes passed
on, unchanged.

Refusing ``Transfer-Encoding`` (411) rather than following chunked framing keeps the
guard small and removes any Content-Length / Transfer-Encoding disagreement between the
guard, aiohttp and a gateway in front (request smuggling). revoker's clients send bodies of
a known, small size; every HTTP/1.1 client can send Content-Length.

Time limits: a request's line and headers must be in within ``header_timeout_s`` of its
first byte (a new connection's clock starts when it opens, so a silent connection is closed
too); its body within ``body_timeout_s`` of the end of its headers. A stalled client is
disconnected. Idle keep-alive connections are aiohttp's: its ``keepalive_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Final, cast

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from revoker.config import Settings
from revoker.web.jsonio import dumps

log = logging.getLogger(__name__)

#: Longest request line or header line. A bearer token may be 16 KiB (the contract's limit,
#: which revoker answers itself); aiohttp's own limits (revoker.server) are above this, so
#: its parser never refuses a line the guard let through.
MAX_LINE_BYTES: Final = 18 * 1024
#: Longest request line plus header block, and most header fields (aiohttp allows 128).
MAX_HEAD_BYTES: Final = 64 * 1024
MAX_FIELDS: Final = 100
#: How long a refused connection is drained (so that the client reads the answer rather
#: than a reset) before it is cut.
LINGER_S: Final = 2.0

_TOKEN: Final = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_METHODS: Final = rb"(?:GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS)"
_HEAD_RE: Final = re.compile(
    rb"(?:" + _METHODS + rb" /[\x21-\x7e]{0,%d}|OPTIONS \*) HTTP/1\.[01]\r\n"
    % (MAX_LINE_BYTES - 32)
    + rb"(?:" + _TOKEN + rb"{1,256}:[\t\x20-\x7e\x80-\xff]{0,%d}\r\n){0,%d}\r\n"
    % (MAX_LINE_BYTES - 258, MAX_FIELDS))
_REQUEST_LINE_RE: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ \S+ HTTP/\d\.\d")
_CONTROL_RE: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
#: Control bytes that are wrong anywhere in a head (CR and LF may be half of a CRLF).
_NEVER_VALID_RE: Final = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: Headers that decide the framing, and those aiohttp refuses to see twice (RFC 9110
#: singletons): one scan of the head finds them all.
_FRAMING_RE: Final = re.compile(
    rb"\r\n(host|content-length|transfer-encoding|content-encoding|content-type|"
    rb"content-location|content-range|etag|max-forwards|server|user-agent):")


@dataclass(frozen=True, slots=True)
class Limits:
    header_timeout_s: float
    body_timeout_s: float

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.header_timeout_s, settings.body_timeout_s)


class Refusal(Exception):
    """A request the guard answers itself: a status and a fixed, generic description."""

    def __init__(self, status: int, detail: str, reason: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.reason = reason  # a short name, in the log line


def _answer(status: int, title: str, detail: str) -> bytes:
    body = dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    return (f"HTTP/1.1 {status} {title}\r\nContent-Type: application/problem+json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


_TITLES: Final = {400: "Bad Request", 411: "Length Required", 415: "Unsupported Media Type",
                  501: "Not Implemented"}


def diagnose(head: bytes) -> Refusal:
    """Why ``head`` (a complete head that failed the fast check) is refused. Slow and
    detailed, for the log line and the answer; quotes nothing from ``head``."""
    lines = head[:-4].split(b"\r\n")
    request_line, fields = lines[0], lines[1:]
    if len(fields) > MAX_FIELDS:
        return Refusal(400, "too many header fields", "head_too_large")
    if any(len(line) > MAX_LINE_BYTES for line in lines):
        return Refusal(400, "a request or header line is too long", "line_too_long")
    if any(_CONTROL_RE.search(line) for line in lines):
        return Refusal(400, "a control character in the request line or a header line "
                            "(only CRLF line endings are accepted)", "control_character")
    if not _REQUEST_LINE_RE.fullmatch(request_line):
        return Refusal(400, "the request line is malformed", "bad_request_line")
    method, target, version = request_line.split(b" ")
    if not re.fullmatch(_METHODS, method):
        return Refusal(501, "the request method is not supported", "method")
    if version not in (b"HTTP/1.0", b"HTTP/1.1"):
        return Refusal(400, "only HTTP/1.0 and HTTP/1.1 are served", "version")
    if not target.startswith(b"/") and not (target == b"*" and method == b"OPTIONS"):
        return Refusal(400, "the request target must be a path", "bad_request_line")
    for field in fields:
        name, colon, _ = field.partition(b":")
        if not colon or not re.fullmatch(_TOKEN + rb"{1,256}", name):
            return Refusal(400, "a header line is malformed (a name, a colon, a value; "
                                "no folding)", "bad_header")
    return Refusal(400, "the request head is malformed", "bad_header")


def body_length(head: bytes) -> int:
    """The body's length, from a head that passed the grammar check. Raises ``Refusal``
    for what aiohttp would refuse with a quoting 400 (a repeated singleton header such as
    Host or Content-Length, no Host in HTTP/1.1) and for a body revoker does not take: a
    Transfer-Encoding (411) or a Content-Encoding (415: no compressed bodies, so no
    decompression bombs either)."""
    lowered = head.lower()
    names = _FRAMING_RE.findall(lowered)
    seen = set(names)
    if len(seen) != len(names):
        raise Refusal(400, "a header that may appear once appears more than once",
                      "duplicate_header")
    if b"host" not in seen and head[head.index(b"\r\n") - 1] == 0x31:  # HTTP/1.1
        raise Refusal(400, "an HTTP/1.1 request needs a Host header", "no_host")
    if names == [b"host"]:
        return 0  # the common case
    if b"transfer-encoding" in seen:
        raise Refusal(411, "request bodies must be sent with a Content-Length "
                           "(no Transfer-Encoding)", "length_required")
    if b"content-encoding" in seen and _value(head, lowered, b"content-encoding") \
            .lower() != b"identity":
        raise Refusal(415, "request bodies must not be compressed (no Content-Encoding)",
                      "content_encoding")
    if b"content-length" not in seen:
        return 0
    value = _value(head, lowered, b"content-length")
    if not value.isdigit() or len(value) > 15:
        raise Refusal(400, "the Content-Length is not a number", "bad_content_length")
    return int(value)


def _value(head: bytes, lowered: bytes, name: bytes) -> bytes:
    start = lowered.index(b"\r\n" + name + b":") + len(name) + 3
    return head[start:head.index(b"\r\n", start)].strip(b" \t")


class Guard(asyncio.Protocol):
    """One connection: checks each request head and times head and body, then hands the
    bytes to ``inner`` (aiohttp's ``RequestHandler``), which does everything else."""

    __slots__ = ("answers", "body_left", "cause", "heads", "held", "inner", "limits", "loop",
                 "pending", "refused", "timer", "transport")

    def __init__(self, inner: web.RequestHandler, limits: Limits) -> None:
        self.inner = inner
        self.limits = limits
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.pending = bytearray()  # an incomplete head, held back from aiohttp
        self.body_left = 0  # body bytes still to come before the next head
        self.timer: asyncio.TimerHandle | None = None
        self.refused = False
        self.held: Refusal | None = None  # a refusal waiting for earlier answers
        self.heads = 0  # requests passed on to aiohttp
        self.answers = 0  # ... and answered by it
        self.cause: Exception | None = None  # why the guard cut the connection
        tracker = inner.access_logger
        if isinstance(tracker, AnswerTracker):
            tracker.guard = self

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.inner.connection_made(transport)
        self._arm(self.limits.header_timeout_s, "header_timeout")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.transport = None
        tracker = self.inner.access_logger
        if isinstance(tracker, AnswerTracker):
            tracker.guard = None  # no reference cycle left for the garbage collector
        # aiohttp raises this from the handler's pending body read: a body timeout then
        # ends that request as a 408 (answered to nobody), not as an unexplained error.
        self.inner.connection_lost(self.cause or exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def eof_received(self) -> bool | None:
        if not (self.refused or self.pending):  # (half a head will never complete)
            self.inner.eof_received()
        return None  # close, as aiohttp does

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return  # draining until the client has read the refusal
        continuing = bool(self.pending)
        if continuing:
            # Appended and searched from where the last read ended: a client trickling
            # bytes costs time in proportion to what it sends, not to what it sent before.
            searched_to = max(len(self.pending) - 3, 0)
            self.pending += data
            if self.pending.find(b"\r\n\r\n", searched_to) < 0:
                self._hold_more(data)
                return
            data = bytes(self.pending)
            self.pending = bytearray()
        size = len(data)
        position = 0
        while position < size:
            if self.body_left:
                taken = min(self.body_left, size - position)
                position += taken
                self.body_left -= taken
                if not self.body_left:
                    self._disarm()
                continue
            end = data.find(b"\r\n\r\n", position)
            if end < 0:
                self._hold(data, position, started=position > 0 or not continuing)
                if self.refused:
                    return
                break
            end += 4
            try:
                self._check(data, position, end)
            except Refusal as refusal:
                self._forward(data, position)
                self._refuse(refusal)
                return
            position = end
            if self.body_left and position + self.body_left > size:
                self._arm(self.limits.body_timeout_s, "body_timeout")
            else:
                self._disarm()
        self._forward(data, position if self.pending else size)

    # -- the checks -------------------------------------------------------------------

    def _check(self, data: bytes, start: int, end: int) -> None:
        """Check the head ``data[start:end]``; sets ``body_left``."""
        if end - start > MAX_HEAD_BYTES:
            raise Refusal(400, "the request head is too large", "head_too_large")
        head = data[start:end]
        if _HEAD_RE.fullmatch(head) is None:
            raise diagnose(head)
        self.body_left = body_length(head)
        self.heads += 1

    def _hold(self, data: bytes, position: int, *, started: bool) -> None:
        """Keep an incomplete head back; refuse one that can no longer be valid.
        ``started``: its first bytes are in this read."""
        self.pending = bytearray(data[position:])
        refusal = self._hopeless(data[position:])
        if refusal is not None:
            self._forward(data, position)
            self._refuse(refusal)
            return
        if started:
            # The first bytes of a request: its header clock starts (a new connection's
            # started when it opened), and aiohttp's idle keep-alive timer gives way to it
            # (aiohttp restarts that timer after the answer).
            if self.timer is None:
                self._arm(self.limits.header_timeout_s, "header_timeout")
            self.inner.keep_alive(True)

    def _hold_more(self, data: bytes) -> None:
        """More of a held head arrived, still incomplete."""
        refusal = self._hopeless(data)
        if refusal is not None:
            self._refuse(refusal)

    def _hopeless(self, new: bytes) -> Refusal | None:
        """A refusal when the held head can no longer become valid: too large already, or
        ``new`` (its latest bytes) holds a control byte that is never valid (refused
        early: neither binary garbage nor a slow client need wait for the timeout)."""
        pending = self.pending
        if len(pending) > MAX_HEAD_BYTES:
            return Refusal(400, "the request head is too large", "head_too_large")
        if len(pending) - pending.rfind(b"\r\n") > MAX_LINE_BYTES + 2:
            return Refusal(400, "a request or header line is too long", "line_too_long")
        if _NEVER_VALID_RE.search(new):
            return Refusal(400, "a control character in the request line or a header line "
                                "(only CRLF line endings are accepted)", "control_character")
        return None

    def _forward(self, data: bytes, end: int) -> None:
        if end:
            self.inner.data_received(data if end == len(data) else data[:end])

    # -- refusals and timeouts -----------------------------------------------------------

    def _refuse(self, refusal: Refusal) -> None:
        """Answer with a fixed problem document, then close: nothing of the request is
        quoted, in the answer or in the log."""
        self.refused = True
        self.pending = bytearray()
        self.body_left = 0
        self._disarm()  # the answer's own linger timer replaces any other
        log.info("refused a malformed request from %s (%s): %s", self._peer(), refusal.reason,
                 refusal.detail)
        if self.answers < self.heads:
            # Earlier requests (pipelined, or still running) are answered first, in order.
            self.held = refusal
            return
        self._answer_refusal(refusal)

    def answered(self) -> None:
        """aiohttp has written a whole answer (``AnswerTracker``)."""
        self.answers += 1
        if self.held is not None and self.answers >= self.heads:
            refusal, self.held = self.held, None
            self._answer_refusal(refusal)

    def _answer_refusal(self, refusal: Refusal) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(_answer(refusal.status, _TITLES[refusal.status], refusal.detail))
        if transport.can_write_eof():
            # Half-close, drain what the client still sends, then cut: closing with unread
            # data would reset the connection and the client could lose the answer.
            transport.write_eof()
            self._arm(LINGER_S, "")
        else:
            transport.close()

    def _arm(self, delay_s: float, reason: str) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(delay_s, self._expire, reason)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expire(self, reason: str) -> None:
        self.timer = None
        transport = self.transport
        if transport is None:
            return
        if reason:
            log.debug("disconnected a stalled client %s: %s", self._peer(), reason)
        if reason == "body_timeout":
            self.cause = web.HTTPRequestTimeout(text="the request body did not arrive in time")
        transport.abort()

    def _peer(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        return str(peer[0]) if isinstance(peer, tuple) and peer else "a client"


class AnswerTracker(AbstractAccessLogger):
    """Tells a connection's ``Guard`` when aiohttp has written an answer, so that a
    refusal never overtakes the answers to the requests before it. aiohttp calls an access
    logger once per answer, after its last byte; revoker's own access log is elsewhere
    (``middlewares.account``), so this one logs nothing."""

    __slots__ = ("guard",)

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        self.guard: Guard | None = None

    def log(self, request: web.BaseRequest, response: web.StreamResponse,
            time: float) -> None:
        if self.guard is not None:
            self.guard.answered()
