"""Revocation records and the rules that give them their lifetimes (pure: no I/O, no clock).

Every rule of the contract's "Concepts" table lives here so that the HTTP layer, the
stores and the tests share one definition of when a record matches a token and for how
long it must be kept.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Final

from revoker.errors import InvalidInput
from revoker.jsoncodec import encode_stored, loads

KINDS: Final = ("jti", "sub", "sid", "kid", "client")
CUTOFF_KINDS: Final = frozenset({"sub", "client"})
MAX_VALUE_BYTES: Final = 512
MAX_REASON_CHARS: Final = 256


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """The two numbers every lifetime rule is made of."""

    max_token_lifetime_s: int
    leeway_s: int

    @property
    def horizon_s(self) -> int:
        """How long any token issued now can stay acceptable."""
        return self.max_token_lifetime_s + self.leeway_s


@dataclass(frozen=True, slots=True)
class Record:
    """One revocation, exactly as stored in Redis and returned by the API."""

    kind: str
    value: str
    revoked_at: int
    expires_at: int
    issued_before: int | None = None
    reason: str | None = None
    actor: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Built by hand: ``dataclasses.asdict`` deep-copies and is on every hot path."""
        return {"kind": self.kind, "value": self.value, "revoked_at": self.revoked_at,
                "expires_at": self.expires_at, "issued_before": self.issued_before,
                "reason": self.reason, "actor": self.actor}

    def to_json(self) -> str:
        return encode_stored(self.to_dict())

    @classmethod
    def from_json(cls, raw: str | bytes) -> Record:
        data = loads(raw)
        return cls(
            kind=data["kind"],
            value=data["value"],
            revoked_at=int(data["revoked_at"]),
            expires_at=int(data["expires_at"]),
            issued_before=_opt_int(data.get("issued_before")),
            reason=data.get("reason"),
            actor=data.get("actor"),
        )

    def matches_iat(self, iat: float | None) -> bool:
        """Cutoff kinds match only tokens issued before the cutoff; a token without
        ``iat`` cannot prove it is newer, so it is treated as issued before any cutoff."""
        if self.kind not in CUTOFF_KINDS or self.issued_before is None or iat is None:
            return True
        return iat < self.issued_before


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def merge(old: Record, new: Record) -> Record:
    """Revoking again never shortens anything: the later expiry and the later cutoff win.

    The first revocation's metadata (when, why, by whom) is kept: the audit trail of the
    event stream records the repeat.
    """
    cutoff = old.issued_before
    if new.issued_before is not None:
        cutoff = new.issued_before if cutoff is None else max(cutoff, new.issued_before)
    return replace(old, expires_at=max(old.expires_at, new.expires_at), issued_before=cutoff)


def check_kind(kind: Any) -> str:
    if not isinstance(kind, str) or kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="kind")
    return kind


def check_value(value: Any, *, field: str = "value") -> str:
    """Values are 1-512 bytes of UTF-8 without control characters."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string", field=field)
    if not is_valid_value(value):
        raise InvalidInput(
            f"{field} must be 1-{MAX_VALUE_BYTES} bytes of UTF-8 without control characters",
            field=field,
        )
    return value


def is_valid_value(value: str) -> bool:
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates cannot be stored as UTF-8
        return False
    return 1 <= size <= MAX_VALUE_BYTES and _CONTROL.search(value) is None


#: C0 and C1 controls, DEL and the Unicode line/paragraph separators.
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True, slots=True)
class RevokeRequest:
    """A validated revocation request, before the clock turns it into a record."""

    kind: str
    value: str
    token_exp: int | None = None
    ttl_s: int | None = None
    issued_before: int | None = None
    reason: str | None = None


def build_record(
    request: RevokeRequest, *, now: float, lifetimes: Lifetimes, actor: str | None
) -> Record | None:
    """Apply the contract's lifetime rules; ``None`` means nothing can match any more."""
    now_s = int(now)
    issued_before = None
    if request.kind in CUTOFF_KINDS:
        # The end of the current second: NumericDates are whole seconds, so a token issued
        # earlier in this second has ``iat == now_s`` and must be covered too.
        latest = now_s + 1
        issued_before = request.issued_before if request.issued_before is not None else latest
        if issued_before > latest:
            raise InvalidInput("issued_before may be at most the end of the current second",
                               field="issued_before")
        bound = issued_before + lifetimes.horizon_s
    else:
        bound = now_s + lifetimes.horizon_s
    expires_at = _requested_expiry(request, now=now, lifetimes=lifetimes)
    expires_at = bound if expires_at is None else min(expires_at, bound)
    if expires_at <= now:
        return None
    return Record(
        kind=request.kind,
        value=request.value,
        revoked_at=now_s,
        expires_at=expires_at,
        issued_before=issued_before,
        reason=request.reason,
        actor=actor,
    )


def _requested_expiry(request: RevokeRequest, *, now: float, lifetimes: Lifetimes) -> int | None:
    """An explicit ``expires_at`` (the token's ``exp``) or ``ttl`` (its remaining lifetime);
    a token stays acceptable for ``leeway`` after either, so the record does too."""
    if request.token_exp is not None:
        return request.token_exp + lifetimes.leeway_s
    if request.ttl_s is not None:
        return math.ceil(now) + request.ttl_s + lifetimes.leeway_s
    return None


@dataclass(frozen=True, slots=True)
class Claims:
    """The claims a revocation can match on, already reduced to valid lookup values.

    A value that cannot be a valid record value (wrong type, too long) can never have
    been revoked, so it is dropped here rather than looked up.
    """

    jti: str | None = None
    sub: str | None = None
    sid: str | None = None
    kid: str | None = None
    client: str | None = None
    iat: float | None = None
    _pairs: tuple[tuple[str, str], ...] = field(default=(), init=False, repr=False,
                                                compare=False)

    def __post_init__(self) -> None:
        # Built once: a verified token's claims are cached with it and checked on every
        # request that repeats the token.
        pairs = (("jti", self.jti), ("sub", self.sub), ("sid", self.sid),
                 ("kid", self.kid), ("client", self.client))
        object.__setattr__(self, "_pairs", tuple((kind, value) for kind, value in pairs
                                                 if value is not None))

    def lookups(self) -> tuple[tuple[str, str], ...]:
        """(kind, value) pairs to fetch, in the contract's kind order."""
        return self._pairs


def claims_from_token(payload: dict[str, Any], header: dict[str, Any]) -> Claims:
    """Lenient extraction from a decoded token: unusable values simply cannot match."""
    client = _usable(payload.get("client_id"))
    if client is None:
        client = _usable(payload.get("azp"))
    iat = payload.get("iat")
    return Claims(
        jti=_usable(payload.get("jti")),
        sub=_usable(payload.get("sub")),
        sid=_usable(payload.get("sid")),
        kid=_usable(header.get("kid")),
        client=client,
        iat=float(iat) if iat is not None and _is_number(iat) else None,
    )


def _usable(value: Any) -> str | None:
    return value if isinstance(value, str) and is_valid_value(value) else None


def _is_number(value: Any) -> bool:
    """A finite NumericDate; an integer too large for a float (``10**400``) is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def matching(claims: Claims, found: list[Record | None]) -> list[Record]:
    """Records (fetched for ``claims.lookups()``, in order) that really match the token."""
    return [rec for rec in found if rec is not None and rec.matches_iat(claims.iat)]


EVENT_TYPES: Final = ("revoked", "unrevoked")


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of the audit stream; ``id`` is the Redis stream id (``ms-seq``)."""

    id: str
    type: str
    record: Record
    at: int

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "record": self.record.to_dict(), "at": self.at}


def parse_stream_id(text: str, *, field: str = "after") -> tuple[int, int]:
    """Stream ids are ``ms-seq`` with both parts unsigned 64-bit decimals (Redis's own
    rule); a bare ``ms`` means ``ms-0``. ASCII digits only: ``str.isdigit`` would let
    Arabic-Indic or superscript digits through, which Redis then refuses. Raises
    InvalidInput, so a malformed position is the caller's 400 and never a store call."""
    match = _STREAM_ID_RE.fullmatch(text)
    if match is None:
        raise InvalidInput("event ids look like 1764340000000-0", field=field)
    ms, seq = int(match[1]), int(match[2] or 0)
    if ms > _U64_MAX or seq > _U64_MAX:
        raise InvalidInput("event id out of range (parts are unsigned 64-bit)", field=field)
    return ms, seq


#: An event (stream) id: ``ms`` or ``ms-seq``, ASCII digits (the API schema states it too).
STREAM_ID_PATTERN: Final = r"([0-9]{1,20})(?:-([0-9]{1,20}))?"
_STREAM_ID_RE: Final = re.compile(STREAM_ID_PATTERN, re.ASCII)
_U64_MAX: Final = 2**64 - 1
