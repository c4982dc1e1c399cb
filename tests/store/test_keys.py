"""The key layout's two readers of record keys agree: ``record_names`` (a mirror's first
load, over every key a SCAN returns) keeps exactly the keys ``parse_record`` reads as
records, whatever follows the prefix."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from revoker.model import KINDS
from revoker.store.keys import REPLAY_TAGS, Keys

PREFIX = "revoker:"
KEYS = Keys(PREFIX)
#: Tails that start like a record's, or nearly: kinds, tags, colons and their neighbours.
HEADS = st.sampled_from([*KINDS, *REPLAY_TAGS, "events", "jtix", "JTI", "su", "", "client"])
TAILS = st.builds(lambda head, sep, rest: head.encode() + sep + rest, HEADS,
                  st.sampled_from([b":", b"", b"::", b";"]), st.binary(max_size=12))


def is_record(tail: bytes) -> bool:
    return KEYS.parse_record(PREFIX.encode() + tail) is not None


@given(st.lists(TAILS | st.binary(max_size=16), max_size=30))
def test_record_names_keeps_what_parse_record_reads_as_a_record(tails: list[bytes]) -> None:
    keys = [PREFIX.encode() + tail for tail in tails]
    assert KEYS.record_names(keys) == [t for t in tails if is_record(t)]


def test_record_names_by_example() -> None:
    keys = [b"revoker:jti:abc", b"revoker:jti:", b"revoker:jti::", b"revoker:sub:a:b",
            b"revoker:events", b"revoker:bcl:iss:1", b"revoker:jtix:1", b"revoker:client:c",
            b"revoker:kid:"]
    assert KEYS.record_names(keys) == [b"jti:abc", b"jti::", b"sub:a:b", b"client:c"]
