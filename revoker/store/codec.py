"""How a record is held at its Redis key: only what the key and its expiry do not say.

``{prefix}{kind}:{value}`` already names the kind and the value, and the key's absolute
expiry (``EXAT``) is the record's ``expires_at``, so the stored JSON keeps only
``revoked_at`` and the fields that are set (``issued_before``, ``reason``, ``actor``):
about a third of the bytes of the full record, on every one of millions of keys. Values
written in the older full form (every field, nulls included) are read alike.
"""

from __future__ import annotations

from typing import Any, Final

from revoker.jsoncodec import encode_stored, loads
from revoker.model import Record

#: What a key without an expiry is read as (it never expires; not written by revoker).
NEVER: Final = 2**63 - 1


def compact_json(record: Record) -> str:
    """The stored form: no kind, no value, no expires_at, no null field."""
    data: dict[str, Any] = {"revoked_at": record.revoked_at}
    if record.issued_before is not None:
        data["issued_before"] = record.issued_before
    if record.reason is not None:
        data["reason"] = record.reason
    if record.actor is not None:
        data["actor"] = record.actor
    return encode_stored(data)


def parse(raw: str | bytes) -> dict[str, Any]:
    data: dict[str, Any] = loads(raw)
    return data


def has_expiry(data: dict[str, Any]) -> bool:
    """True for the older full form, which carries its own ``expires_at``."""
    return data.get("expires_at") is not None


def to_record(kind: str, value: str, data: dict[str, Any], expiretime: int | None) -> Record:
    """The full record from a stored value; ``expiretime`` is the key's EXPIRETIME
    (needed only for the compact form; -1, no expiry, reads as ``NEVER``)."""
    expires_at = data.get("expires_at")
    if expires_at is None:
        expires_at = NEVER if expiretime is None or expiretime < 0 else expiretime
    issued_before = data.get("issued_before")
    return Record(kind=kind, value=value, revoked_at=int(data["revoked_at"]),
                  expires_at=int(expires_at),
                  issued_before=None if issued_before is None else int(issued_before),
                  reason=data.get("reason"), actor=data.get("actor"))
