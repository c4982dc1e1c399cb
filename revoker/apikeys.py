"""API keys: generation, digests and constant-time lookup.

Only SHA-256 digests are configured or held in memory, so a leaked config or core dump
does not leak usable keys; the presented key is hashed and compared against every
configured digest with ``hmac.compare_digest`` so timing reveals nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from revoker.config import SCOPE_IMPLIES, ApiKey

KEY_PREFIX: Final = "rvk_"
MAX_KEY_CHARS: Final = 256


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: the key's name is the ``actor`` of what it revokes."""

    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        implied = _IMPLIED.get(self.scopes)
        if implied is None:  # computed once per distinct scope set, not per request
            implied = frozenset(i for s in self.scopes for i in SCOPE_IMPLIES[s])
            _IMPLIED[self.scopes] = implied
        return scope in implied


#: Scope set -> every scope it grants; keys are the few scope sets configured.
_IMPLIED: dict[frozenset[str], frozenset[str]] = {}


ANONYMOUS_CHECKER: Final = Principal("anonymous", frozenset({"check"}))


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate() -> str:
    """A key that secret scanners can recognise by its prefix."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def config_line(name: str, scopes: Iterable[str], key: str) -> str:
    return f"{name}:{'+'.join(scopes)}:{digest(key)}"


class KeyRing:
    """The configured keys; ``find`` costs one SHA-256 and one compare per key."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._keys = tuple((key.digest, Principal(key.name, key.scopes)) for key in keys)

    def __len__(self) -> int:
        return len(self._keys)

    def find(self, presented: str) -> Principal | None:
        if not presented or len(presented) > MAX_KEY_CHARS:
            return None
        candidate = hashlib.sha256(presented.encode("utf-8", "replace")).digest()
        found: Principal | None = None
        for key_digest, principal in self._keys:  # no early exit: every key is compared
            if hmac.compare_digest(candidate, key_digest):
                found = principal
        return found
