from __future__ import annotations

import pytest

from revoker.errors import InvalidInput
from revoker.model import (
    Claims,
    Lifetimes,
    Record,
    RevokeRequest,
    build_record,
    check_value,
    claims_from_token,
    merge,
    parse_stream_id,
)

L = Lifetimes(max_token_lifetime_s=86400, leeway_s=30)
NOW = 1_764_340_000.0


def test_jti_with_exp() -> None:
    rec = build_record(RevokeRequest("jti", "a", token_exp=int(NOW) + 3600), now=NOW,
                       lifetimes=L, actor="x")
    assert rec is not None and rec.expires_at == int(NOW) + 3630 and rec.actor == "x"


def test_jti_exp_is_capped_by_the_horizon() -> None:
    rec = build_record(RevokeRequest("jti", "a", token_exp=int(NOW) + 10 * 86400), now=NOW,
                       lifetimes=L, actor=None)
    assert rec is not None and rec.expires_at == int(NOW) + 86430


def test_expired_returns_none() -> None:
    assert build_record(RevokeRequest("jti", "a", token_exp=int(NOW) - 30), now=NOW,
                        lifetimes=L, actor=None) is None


def test_sub_cutoff_rules() -> None:
    rec = build_record(RevokeRequest("sub", "u"), now=NOW, lifetimes=L, actor=None)
    assert rec is not None and rec.issued_before == int(NOW) + 1
    assert rec.expires_at == int(NOW) + 1 + 86430
    explicit = build_record(RevokeRequest("sub", "u", issued_before=int(NOW) + 1), now=NOW,
                            lifetimes=L, actor=None)
    assert explicit is not None and explicit.issued_before == int(NOW) + 1
    with pytest.raises(InvalidInput):
        build_record(RevokeRequest("sub", "u", issued_before=int(NOW) + 2), now=NOW,
                     lifetimes=L, actor=None)


@pytest.mark.parametrize("kind", ["sub", "client"])
def test_default_cutoff_covers_tokens_issued_earlier_in_the_same_second(kind: str) -> None:
    now = 1_764_340_000.73  # a token issued at .10 of this second has iat 1764340000
    rec = build_record(RevokeRequest(kind, "u"), now=now, lifetimes=L, actor=None)
    assert rec is not None
    assert rec.matches_iat(1_764_340_000)
    assert not rec.matches_iat(1_764_340_001)


@pytest.mark.parametrize("text", ["1-", "-1", "", "1-2-3", "\u0661\u0662", "1\u00b2",
                                  str(2**64), f"1-{2**64}", "1 ", "+1", "0x10"])
def test_malformed_stream_ids_are_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_stream_id(text)


def test_stream_id_bounds() -> None:
    top = 2**64 - 1
    assert parse_stream_id(f"{top}-{top}") == (top, top)
    assert parse_stream_id("5") == (5, 0)


def test_matches_iat() -> None:
    rec = Record("sub", "u", 0, 100, issued_before=50)
    assert rec.matches_iat(49) and not rec.matches_iat(50) and rec.matches_iat(None)
    assert Record("jti", "u", 0, 100).matches_iat(10**10)


def test_merge_keeps_later_values_and_first_metadata() -> None:
    old = Record("sub", "u", 1, 100, issued_before=10, reason="r", actor="a")
    new = Record("sub", "u", 2, 90, issued_before=20, reason=None, actor="b")
    merged = merge(old, new)
    assert (merged.expires_at, merged.issued_before, merged.reason, merged.actor,
            merged.revoked_at) == (100, 20, "r", "a", 1)


@pytest.mark.parametrize("value", ["", "a\x00", "tab\there", "x" * 513, "\u0085", "\ud800"])
def test_bad_values(value: str) -> None:
    with pytest.raises(InvalidInput):
        check_value(value)


@pytest.mark.parametrize("value", ["a", "x" * 512, "é" * 256, "a:b/c d"])
def test_good_values(value: str) -> None:
    assert check_value(value) == value


def test_claims_from_token_is_lenient() -> None:
    claims = claims_from_token({"jti": 5, "sub": "s", "azp": "web", "iat": True,
                                "sid": "x" * 600}, {"kid": "k1"})
    assert claims == Claims(jti=None, sub="s", sid=None, kid="k1", client="web", iat=None)
    assert claims.lookups() == (("sub", "s"), ("kid", "k1"), ("client", "web"))
    assert claims_from_token({"client_id": "c", "azp": "a"}, {}).client == "c"


def test_record_json_is_compact_and_round_trips() -> None:
    rec = Record("jti", "ü", 1, 2, None, "why", "who")
    assert rec.to_json() == ('{"kind":"jti","value":"ü","revoked_at":1,"expires_at":2,'
                             '"issued_before":null,"reason":"why","actor":"who"}')
    assert Record.from_json(rec.to_json()) == rec


@pytest.mark.parametrize("text", ["abc", "1-x", "-1", "1" * 50])
def test_bad_stream_ids(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_stream_id(text)


def test_stream_ids() -> None:
    assert parse_stream_id("5") == (5, 0)
    assert parse_stream_id("5-7") == (5, 7)


@pytest.mark.parametrize("iat", [10**400, -(10**400), float("inf"), float("nan"), "1", None])
def test_an_unusable_iat_is_no_iat(iat: object) -> None:
    assert claims_from_token({"sub": "s", "iat": iat}, {}).iat is None
