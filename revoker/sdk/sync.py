"""The synchronous twin of ``RevokerClient``, for WSGI code (Flask, Django) and scripts.

It needs no event loop and no dependency beyond the standard library: ``http.client``
with a small pool of keep-alive connections. A connection is lent to one thread for one
exchange (an ``HTTPConnection`` must never be used by two threads at once) and given
back, so WSGI servers that start a thread per request do not leak a socket per thread.
The answers and the errors are exactly those of the async client:

    rc = SyncRevokerClient("http://revoker:8080", key=os.environ["REVOKER_API_KEY"])
    if rc.check(claims={"jti": jti, "sub": sub, "iat": iat}).revoked: ...
    decision = rc.authz(user_token)
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from revoker.model import Record
from revoker.sdk.client import (
    AUTHZ_PATH,
    DEFAULT_URL,
    INTROSPECT_PATH,
    USER_AGENT,
    Authz,
    Check,
    Revocation,
    Unreachable,
    _api_error,
    _check_from,
    _decode,
    _describe,
    _record_path,
    authz_from,
    introspection_from,
    record_from,
    revocation_from,
)

Response = tuple[int, Mapping[str, str], bytes]


class SyncRevokerClient:
    """Thread-safe; at most ``pool_size`` idle connections are kept."""

    def __init__(self, url: str = DEFAULT_URL, key: str | None = None, *,
                 timeout_s: float = 10.0, pool_size: int = 8) -> None:
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be http:// or https:// with a host")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._base = parts.path
        self._key = key
        self.timeout_s = timeout_s
        self.pool_size = pool_size
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        """Closes the idle connections (one lent out is closed when given back)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __enter__(self) -> SyncRevokerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        """A connection, and whether it was used before (it may have been closed)."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=self.timeout_s), False

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self.pool_size:
                self._idle.append(conn)
                return
        conn.close()

    def send(self, method: str, path: str, *, body: bytes | None = None,
             headers: Mapping[str, str] | None = None) -> Response:
        """One exchange. An idle connection that the server closed meanwhile is replaced
        and the request sent again: every call of this API is idempotent (a revoke
        repeated is a merge). A fresh connection that fails is ``Unreachable``."""
        all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        while True:
            conn, reused = self._take()
            try:
                conn.request(method, self._base + path, body=body, headers=all_headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as exc:
                conn.close()
                if reused:
                    continue
                raise Unreachable(f"cannot reach {self.url}: {_describe(exc)}") from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if isinstance(exc, socket.timeout | TimeoutError):
                    exc = TimeoutError()
                raise Unreachable(f"cannot reach {self.url}: {_describe(exc)}") from exc
            if resp.will_close:
                conn.close()
            else:
                self._give_back(conn)
            return resp.status, dict(resp.headers.items()), raw

    def request(self, method: str, path: str, *, json_body: Any = None,
                params: Mapping[str, str] | None = None,
                ok: Sequence[int] = (200, 201, 204)) -> tuple[int, Any]:
        """As ``RevokerClient.request``: (status, decoded JSON or None)."""
        headers = self._headers()
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        if params:
            path = f"{path}?{urlencode(params)}"
        status, _, raw = self.send(method, path, body=body, headers=headers)
        data = _decode(raw)
        if status not in ok:
            raise _api_error(status, data)
        return status, data

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"} if self._key else {}

    # -- checks ------------------------------------------------------------------------

    def check(self, *, token: str | None = None,
              claims: Mapping[str, Any] | None = None) -> Check:
        """Exactly one of ``token`` (only decoded, not validated) or ``claims``."""
        if (token is None) == (claims is None):
            raise ValueError("give exactly one of token or claims")
        body = {"token": token} if token is not None else {"claims": dict(claims or {})}
        _, data = self.request("POST", "/v1/check", json_body=body)
        return _check_from(data)

    def check_jti(self, jti: str) -> Check:
        _, data = self.request("GET", "/v1/check/" + quote(jti, safe=""))
        record = data.get("record")
        return Check(revoked=bool(data["revoked"]),
                     matches=[record_from(record)] if record else [])

    def authz(self, token: str) -> Authz:
        """As ``RevokerClient.authz``."""
        headers = {"Authorization": f"Bearer {token}"}
        if self._key:
            headers["X-Revoker-Key"] = self._key
        status, answer_headers, raw = self.send("GET", AUTHZ_PATH, headers=headers)
        return authz_from(status, answer_headers, raw)

    def introspect(self, token: str) -> dict[str, Any]:
        """As ``RevokerClient.introspect``."""
        headers = {**self._headers(), "Content-Type": "application/x-www-form-urlencoded"}
        status, _, raw = self.send("POST", INTROSPECT_PATH,
                                   body=urlencode({"token": token}).encode(), headers=headers)
        return introspection_from(status, raw)

    # -- revocations -------------------------------------------------------------------

    def revoke(self, kind: str, value: str, *, expires_at: int | None = None,
               ttl_s: int | None = None, issued_before: int | None = None,
               reason: str | None = None) -> Revocation:
        body: dict[str, Any] = {"kind": kind, "value": value}
        optional = {"expires_at": expires_at, "ttl": ttl_s, "issued_before": issued_before,
                    "reason": reason}
        body.update({k: v for k, v in optional.items() if v is not None})
        status, data = self.request("POST", "/v1/revocations", json_body=body)
        return revocation_from(data, status)

    def revoke_token(self, token: str, *, reason: str | None = None) -> Revocation:
        """Revokes the token's ``jti`` until its ``exp`` (the token is not validated)."""
        body: dict[str, Any] = {"token": token}
        if reason is not None:
            body["reason"] = reason
        status, data = self.request("POST", "/v1/revocations", json_body=body)
        return revocation_from(data, status)

    def get(self, kind: str, value: str) -> Record | None:
        status, data = self.request("GET", _record_path(kind, value), ok=(200, 404))
        return record_from(data) if status == 200 else None

    def unrevoke(self, kind: str, value: str) -> bool:
        status, _ = self.request("DELETE", _record_path(kind, value), ok=(204, 404))
        return status == 204

    def ready(self) -> tuple[bool, Any]:
        status, data = self.request("GET", "/readyz", ok=(200, 503))
        return status == 200, data

