"""Every Redis key shape revoker uses, in one place (the layout operators may read).

``{prefix}{kind}:{value}`` holds a record, ``{prefix}events`` the audit stream, and
``{prefix}{tag}:{id}`` (``bcl:``, ``set:``) the replay guards of logout tokens and
Security Event Tokens. Nothing else builds a key or a SCAN pattern.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from revoker.model import KINDS

#: Tags of replay-guard keys: back-channel logout tokens and Shared Signals SETs.
REPLAY_TAGS: Final = ("bcl", "set")
EVENTS: Final = "events"
_GLOB_SPECIAL: Final = frozenset("*?[]\\")
#: ``kind:`` as a record name starts; a name that is only that has no value.
_KIND_HEADS: Final = tuple(f"{kind}:".encode() for kind in KINDS)
_BARE_HEADS: Final = frozenset(_KIND_HEADS)


def replay_suffix(tag: str, scope: str, token_id: str) -> str:
    """The part after the prefix of a replay guard: ``{tag}:{scope}:{token_id}``, where
    ``tag`` is one of ``REPLAY_TAGS`` and ``scope`` names the issuer."""
    if tag not in REPLAY_TAGS:
        raise ValueError(f"unknown replay tag {tag!r}")
    return f"{tag}:{scope}:{token_id}"


def glob_escape(text: str) -> str:
    """``text`` as a literal inside a SCAN MATCH pattern."""
    return "".join("\\" + ch if ch in _GLOB_SPECIAL else ch for ch in text)


@dataclass(frozen=True, slots=True)
class Keys:
    """The key names of one prefix."""

    prefix: str

    def record(self, kind: str, value: str) -> str:
        return f"{self.prefix}{kind}:{value}"

    @property
    def events(self) -> str:
        return self.prefix + EVENTS

    def replay(self, suffix: str) -> str:
        """A replay guard; ``suffix`` is ``{tag}:{id}`` (see ``REPLAY_TAGS``)."""
        return self.prefix + suffix

    def record_pattern(self, kind: str | None = None, value_prefix: str = "") -> str:
        """A SCAN MATCH pattern for records: of one kind, and whose value starts with
        ``value_prefix`` taken literally (glob characters escaped). Without a kind the
        pattern is wider than records (any key of the prefix); ``parse_record`` sorts."""
        if kind is None:
            return glob_escape(self.prefix) + "*"
        return glob_escape(self.record(kind, value_prefix)) + "*"

    def parse_record(self, key: bytes | str) -> tuple[str, str] | None:
        """``(kind, value)`` of a record key; None for the stream, guards, foreign keys."""
        text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        if not text.startswith(self.prefix):
            return None
        kind, sep, value = text[len(self.prefix):].partition(":")
        if not sep or kind not in KINDS or not value:
            return None
        return kind, value

    def record_names(self, keys: Iterable[bytes]) -> list[bytes]:
        """The ``kind:value`` (bytes) of the record keys among ``keys``, which a SCAN of
        ``record_pattern()`` found (so they all start with the prefix): the stream and
        the guards are left out. A mirror's first load runs this over every key."""
        skip = len(self.prefix.encode())
        # Comprehensions and C-level tests: a cold load runs this ten million times.
        names = [key[skip:] for key in keys]
        return [name for name in names
                if name.startswith(_KIND_HEADS) and name not in _BARE_HEADS]
