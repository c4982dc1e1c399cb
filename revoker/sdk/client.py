"""A typed async client for revoker's HTTP API, for applications and the admin CLI.

    async with RevokerClient("http://revoker:8080", key=os.environ["REVOKER_API_KEY"]) as rc:
        await rc.revoke("sub", "user-42", reason="password changed")
        result = await rc.check(claims={"jti": jti, "sub": "user-42", "iat": iat})
        decision = await rc.authz(user_token)   # validated by the service, then checked
        answer = await rc.introspect(user_token)  # RFC 7662: {"active": ...}

``check`` only decodes a token to read its claims; ``authz`` and ``introspect`` have the
service validate it (signature, times, issuer, audience) as well. A refused token is an
answer, not an error: ``Authz.ok`` is False and ``Authz.reason`` says why.

Every failure is a ``ClientError``: ``Unreachable`` when no answer came (connection
refused, DNS, timeout), ``ApiError`` (with ``status`` and the problem ``detail``) when the
service refused the request, with ``AuthError`` for 401/403 so that a rejected key can be
told apart from a bad request.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote

import aiohttp

from revoker.model import Event, Record

DEFAULT_URL: Final = "http://127.0.0.1:8080"
USER_AGENT: Final = "revoker-client"
RECONNECT_DELAY_S: Final = 0.2
AUTHZ_PATH: Final = "/v1/authz"
INTROSPECT_PATH: Final = "/oauth2/introspect"
DEGRADED_HEADER: Final = "X-Revoker-Degraded"
DENYLIST_PATH: Final = "/v1/denylist"
POSITION_HEADER: Final = "X-Revoker-Position"
OLDEST_HEADER: Final = "X-Revoker-Oldest"


class ClientError(Exception):
    """Base of every error this client raises."""


class Unreachable(ClientError):
    """The service gave no HTTP answer (connection refused, name not found, timeout)."""


class ApiError(ClientError):
    """The service answered with an error status; ``detail`` is its problem detail."""

    def __init__(self, status: int, detail: str, *, body: Any = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.body = body


class AuthError(ApiError):
    """401 (key missing or unknown) or 403 (key lacks the scope)."""


@dataclass(frozen=True, slots=True)
class Revocation:
    """Outcome of a revoke: ``record`` is None when the token had already expired."""

    record: Record | None
    created: bool

    @property
    def stored(self) -> bool:
        return self.record is not None


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One result of a batch revoke: either ``revocation`` or ``error`` is set."""

    revocation: Revocation | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Check:
    revoked: bool
    matches: list[Record] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Authz:
    """The answer of ``/v1/authz``: ``ok`` with the identity headers, or the reason the
    token was refused. ``degraded`` means the service accepted without revocation state
    (its fail mode is ``open`` and its store could not answer)."""

    ok: bool
    subject: str | None = None
    jti: str | None = None
    reason: str | None = None
    degraded: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DenylistPosition:
    """``latest``: the newest event id when the snapshot started (follow events after it);
    ``oldest``: the oldest event the service still holds, None when it holds none."""

    latest: str
    oldest: str | None


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Record]
    cursor: str | None


@dataclass(frozen=True, slots=True)
class EventPage:
    events: list[Event]
    next: str | None


def record_from(data: Mapping[str, Any]) -> Record:
    return Record(kind=data["kind"], value=data["value"], revoked_at=int(data["revoked_at"]),
                  expires_at=int(data["expires_at"]),
                  issued_before=None if data.get("issued_before") is None
                  else int(data["issued_before"]),
                  reason=data.get("reason"), actor=_interned(data.get("actor")))


def _interned(actor: Any) -> Any:
    """Actors are the few names of API keys, repeated on every record a mirror holds."""
    return sys.intern(actor) if isinstance(actor, str) else actor


def event_from(data: Mapping[str, Any]) -> Event:
    return Event(id=data["id"], type=data["type"], record=record_from(data["record"]),
                 at=int(data["at"]))


def revocation_from(data: Mapping[str, Any], status: int) -> Revocation:
    if data.get("stored") is False:
        return Revocation(record=None, created=False)
    return Revocation(record=record_from(data), created=status == 201)


class RevokerClient:
    """One connection pool per client; use it as an async context manager or ``close()``."""

    def __init__(self, url: str = DEFAULT_URL, key: str | None = None, *,
                 timeout_s: float = 10.0,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.url = url.rstrip("/")
        self._key = key
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> RevokerClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout,
                                                  headers={"User-Agent": USER_AGENT})
            self._owns_session = True
        return self._session

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"} if self._key else {}

    async def request(self, method: str, path: str, *, json_body: Any = None,
                      params: Mapping[str, str] | None = None,
                      ok: Sequence[int] = (200, 201, 204)) -> tuple[int, Any]:
        """One call: (status, decoded JSON or None); errors become ``ClientError``s."""
        try:
            async with self._http().request(method, self.url + path, json=json_body,
                                            params=params, headers=self._headers()) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise Unreachable(f"cannot reach {self.url}: {_describe(exc)}") from exc
        except aiohttp.ClientError as exc:
            raise Unreachable(f"bad answer from {self.url}: {_describe(exc)}") from exc
        body = _decode(raw)
        if status not in ok:
            raise _api_error(status, body)
        return status, body

    # -- revocations -------------------------------------------------------------------

    async def revoke(self, kind: str, value: str, *, expires_at: int | None = None,
                     ttl_s: int | None = None, issued_before: int | None = None,
                     reason: str | None = None) -> Revocation:
        body: dict[str, Any] = {"kind": kind, "value": value}
        optional = {"expires_at": expires_at, "ttl": ttl_s, "issued_before": issued_before,
                    "reason": reason}
        body.update({k: v for k, v in optional.items() if v is not None})
        status, data = await self.request("POST", "/v1/revocations", json_body=body)
        return revocation_from(data, status)

    async def revoke_token(self, token: str, *, reason: str | None = None) -> Revocation:
        """Revokes the token's ``jti`` until its ``exp`` (the token is not validated)."""
        body: dict[str, Any] = {"token": token}
        if reason is not None:
            body["reason"] = reason
        status, data = await self.request("POST", "/v1/revocations", json_body=body)
        return revocation_from(data, status)

    async def revoke_batch(self, items: Sequence[Mapping[str, Any]]) -> list[BatchItem]:
        """Up to 10000 revoke bodies in one request; a bad item fails alone."""
        _, data = await self.request("POST", "/v1/revocations/batch",
                                     json_body={"items": list(items)})
        return [_batch_item(result) for result in data["results"]]

    async def get(self, kind: str, value: str) -> Record | None:
        status, data = await self.request("GET", _record_path(kind, value), ok=(200, 404))
        return record_from(data) if status == 200 else None

    async def unrevoke(self, kind: str, value: str) -> bool:
        """True when a record was removed, False when there was none."""
        status, _ = await self.request("DELETE", _record_path(kind, value), ok=(204, 404))
        return status == 204

    async def list_revocations(self, *, kind: str | None = None, prefix: str | None = None,
                               actor: str | None = None, cursor: str | None = None,
                               limit: int = 100) -> Page:
        """One page; a filtered page may be short or empty while ``cursor`` is not None
        (the service examines a bounded number of records per page)."""
        params = _present(limit=str(limit), kind=kind, prefix=prefix, actor=actor,
                          cursor=cursor)
        _, data = await self.request("GET", "/v1/revocations", params=params)
        return Page([record_from(item) for item in data["items"]], data.get("cursor"))

    async def iter_revocations(self, *, kind: str | None = None, prefix: str | None = None,
                               actor: str | None = None,
                               page_size: int = 1000) -> AsyncIterator[Record]:
        cursor: str | None = None
        while True:
            page = await self.list_revocations(kind=kind, prefix=prefix, actor=actor,
                                               cursor=cursor, limit=page_size)
            for record in page.items:
                yield record
            if page.cursor is None:
                return
            cursor = page.cursor

    # -- checks ------------------------------------------------------------------------

    async def check_jti(self, jti: str) -> Check:
        _, data = await self.request("GET", "/v1/check/" + quote(jti, safe=""))
        record = data.get("record")
        return Check(revoked=bool(data["revoked"]),
                     matches=[record_from(record)] if record else [])

    async def check(self, *, token: str | None = None,
                    claims: Mapping[str, Any] | None = None) -> Check:
        """Exactly one of ``token`` (only decoded, not validated) or ``claims``."""
        if (token is None) == (claims is None):
            raise ValueError("give exactly one of token or claims")
        body = {"token": token} if token is not None else {"claims": dict(claims or {})}
        _, data = await self.request("POST", "/v1/check", json_body=body)
        return _check_from(data)

    async def check_batch(self, items: Sequence[Mapping[str, Any]]) -> list[Check | ApiError]:
        _, data = await self.request("POST", "/v1/check/batch", json_body={"items": list(items)})
        return [ApiError(r["status"], r.get("detail", "")) if "status" in r else _check_from(r)
                for r in data["results"]]

    async def authz(self, token: str) -> Authz:
        """``/v1/authz``: the service validates ``token`` and checks every revocation kind.
        Raises ``AuthError`` when the API key is refused and ``ApiError`` (503) when the
        service cannot know the revocation state and its fail mode is ``closed``."""
        headers = {"Authorization": f"Bearer {token}"}
        if self._key:
            headers["X-Revoker-Key"] = self._key
        try:
            async with self._http().get(self.url + AUTHZ_PATH, headers=headers) as resp:
                raw = await resp.read()
                return authz_from(resp.status, resp.headers, raw)
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise Unreachable(f"cannot reach {self.url}: {_describe(exc)}") from exc

    async def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 introspection: ``{"active": False}`` for an invalid, expired or revoked
        token, else ``{"active": True, ...claims}``. A 503 (revocation state unknown) is an
        ``ApiError``: introspection never calls a token active without checking it."""
        try:
            async with self._http().post(self.url + INTROSPECT_PATH, data={"token": token},
                                         headers=self._headers()) as resp:
                raw, status = await resp.read(), resp.status
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise Unreachable(f"cannot reach {self.url}: {_describe(exc)}") from exc
        return introspection_from(status, raw)

    # -- events ------------------------------------------------------------------------

    async def events(self, *, after: str | None = None, limit: int = 100,
                     kind: str | None = None, value: str | None = None,
                     actor: str | None = None) -> EventPage:
        """One page of the audit log, with exact-match filters; ``next`` moves on even when
        nothing in the examined stretch matched."""
        params = _present(limit=str(limit), after=after, kind=kind, value=value, actor=actor)
        _, data = await self.request("GET", "/v1/events", params=params)
        return EventPage([event_from(e) for e in data["events"]], data.get("next"))

    async def stream_events(self, *, after: str | None = None) -> AsyncIterator[Event]:
        """Follow ``/v1/events/stream``; reconnects with ``Last-Event-ID`` after a drop."""
        last = after
        while True:
            try:
                async for event in self.stream_once(last):
                    last = event.id
                    yield event
            except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
                await asyncio.sleep(RECONNECT_DELAY_S)  # cut off: resume where we were

    async def stream_once(self, after: str | None) -> AsyncIterator[Event]:
        """One connection of ``/v1/events/stream``, from after ``after`` until it ends
        (a cut connection raises ``aiohttp.ClientPayloadError``); for callers that decide
        themselves what a reconnection needs, as the mirror does."""
        headers = {**self._headers(), "Accept": "text/event-stream"}
        if after:
            headers["Last-Event-ID"] = after
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._timeout.total)
        try:
            resp = await self._http().get(self.url + "/v1/events/stream", headers=headers,
                                          timeout=timeout)
        except aiohttp.ClientConnectionError as exc:
            raise Unreachable(f"cannot reach {self.url}: {_describe(exc)}") from exc
        async with resp:
            if resp.status != 200:
                raise _api_error(resp.status, _decode(await resp.read()))
            data: list[str] = []
            async for raw_line in resp.content:
                line = raw_line.decode().rstrip("\r\n")
                if line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif not line and data:
                    yield event_from(json.loads("\n".join(data)))
                    data = []

    # -- the denylist snapshot ---------------------------------------------------------

    async def denylist_position(self) -> DenylistPosition:
        """``HEAD /v1/denylist``: where the events are now, without reading any record."""
        try:
            async with self._http().head(self.url + DENYLIST_PATH,
                                         headers=self._headers()) as resp:
                status, headers = resp.status, resp.headers
                raw = await resp.read()
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise Unreachable(f"cannot reach {self.url}: {_describe(exc)}") from exc
        if status != 200:
            raise _api_error(status, _decode(raw))
        return _position_from(headers)

    async def denylist(self, sink: Callable[[Record], None]) -> DenylistPosition:
        """``GET /v1/denylist``: hands every active record to ``sink`` as it arrives (the
        snapshot is never held twice) and returns the position to follow events from.
        A snapshot cut short raises ``Unreachable``: it must never pass for a whole one."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._timeout.total,
                                        sock_read=self._timeout.total)
        try:
            async with self._http().get(self.url + DENYLIST_PATH, headers=self._headers(),
                                        timeout=timeout) as resp:
                if resp.status != 200:
                    raise _api_error(resp.status, _decode(await resp.read()))
                position = _position_from(resp.headers)
                async for line in resp.content:
                    if line.strip():
                        sink(record_from(json.loads(line)))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unreachable(f"denylist from {self.url} cut short: {_describe(exc)}") from exc
        return position

    # -- logout hooks and health -------------------------------------------------------

    async def logout(self, user_token: str, *, everywhere: bool = False) -> None:
        """``POST /v1/logout`` with the user's own token (no API key involved)."""
        params = {"everywhere": "true"} if everywhere else None
        try:
            async with self._http().post(self.url + "/v1/logout", params=params,
                                         headers={"Authorization": f"Bearer {user_token}"}
                                         ) as resp:
                status, raw = resp.status, await resp.read()
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise Unreachable(f"cannot reach {self.url}: {_describe(exc)}") from exc
        if status != 204:
            raise _api_error(status, _decode(raw))

    async def ready(self) -> tuple[bool, Any]:
        status, data = await self.request("GET", "/readyz", ok=(200, 503))
        return status == 200, data


def authz_from(status: int, headers: Mapping[str, str], raw: bytes) -> Authz:
    """Shared by the async and the synchronous client. A 401 that carries
    ``error="invalid_token"`` refuses the user's token; any other 401 refuses our key."""
    if status == 200:
        return Authz(ok=True, subject=headers.get("X-Auth-Subject") or None,
                     jti=headers.get("X-Auth-Jti") or None,
                     degraded=headers.get(DEGRADED_HEADER) is not None,
                     headers={k: v for k, v in headers.items() if k.lower().startswith("x-")})
    challenge = headers.get("WWW-Authenticate", "")
    if status == 401 and 'error="invalid_token"' in challenge:
        return Authz(ok=False, reason=_detail(_decode(raw)) or "invalid token")
    raise _api_error(status, _decode(raw))


def introspection_from(status: int, raw: bytes) -> dict[str, Any]:
    body = _decode(raw)
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("active"), bool):
        raise _api_error(status if status != 200 else 502, body)
    return body


def _position_from(headers: Mapping[str, str]) -> DenylistPosition:
    latest = headers.get(POSITION_HEADER)
    if not latest:
        raise ApiError(502, f"the answer has no {POSITION_HEADER} header")
    return DenylistPosition(latest=latest, oldest=headers.get(OLDEST_HEADER) or None)


def _record_path(kind: str, value: str) -> str:
    return f"/v1/revocations/{quote(kind, safe='')}/{quote(value, safe='')}"


def _check_from(data: Mapping[str, Any]) -> Check:
    return Check(revoked=bool(data["revoked"]),
                 matches=[record_from(m) for m in data.get("matches", [])])


def _batch_item(result: Mapping[str, Any]) -> BatchItem:
    if "result" in result:
        return BatchItem(revocation=revocation_from(result["result"], int(result["status"])))
    return BatchItem(error=str(result.get("detail") or result.get("title") or "refused"))


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def _api_error(status: int, body: Any) -> ApiError:
    detail = _detail(body) or f"HTTP {status}"
    cls = AuthError if status in (401, 403) else ApiError
    return cls(status, detail, body=body)


def _detail(body: Any) -> str:
    if isinstance(body, dict):
        for name in ("detail", "error_description", "description", "title", "error"):
            if isinstance(body.get(name), str) and body[name]:
                return str(body[name])
    if isinstance(body, str):
        return body.strip()[:200]
    return ""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return text.split("\n")[0][:200]


def _present(**params: str | None) -> dict[str, str]:
    """Query parameters that were given (the service refuses empty filters)."""
    return {name: value for name, value in params.items() if value}
