"""Token validation rules, key sources and the verified-token cache, with a fake clock."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from revoker import metrics
from revoker.config import Settings
from revoker.errors import ConfigError, TokenError
from revoker.tokens import (
    REASONS,
    JwksKeys,
    KeySets,
    SignalRules,
    StaticKeys,
    TokenValidator,
    cutoff_after,
    key_fits,
    logout_token,
    numeric_date,
    parse_jwks,
    peek,
    read_header,
    security_event,
    thumbprint,
)
from tests.conftest import FakeClock
from tests.jwks_server import JwksServer
from tests.jwt_factory import (
    AUDIENCE,
    HS_SECRET,
    ISSUER,
    KeySet,
    b64json,
    claims,
    jwk,
    pem,
    pooled_rsa,
    sign,
)
from tests.redis_proc import free_port

MAX_LIFETIME = 3600
LEEWAY = 30


@pytest.fixture(scope="module")
def keyset() -> KeySet:
    return KeySet()


@pytest.fixture(scope="module")
def pem_dir(keyset: KeySet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return keyset.write_pems(tmp_path_factory.mktemp("keys"))


def make_validator(keys: Any, clock: Callable[[], float], *,
                   algorithms: Sequence[str] = ("RS256", "ES256", "EdDSA"),
                   cache_size: int = 100, required: Sequence[str] = ("exp", "jti"),
                   issuer: str | None = ISSUER, audience: Sequence[str] = (AUDIENCE,),
                   ) -> TokenValidator:
    return TokenValidator(keys, algorithms=algorithms, issuer=issuer, audience=audience,
                          leeway_s=LEEWAY, max_lifetime_s=MAX_LIFETIME,
                          required_claims=required, cache_size=cache_size, clock=clock)


@pytest.fixture
def validator(pem_dir: Path, clock: FakeClock) -> TokenValidator:
    return make_validator(StaticKeys(public_keys=[str(pem_dir)]), clock)


def reason_of(validator: TokenValidator, token: str) -> str:
    with pytest.raises(TokenError) as caught:
        validator.validate(token)
    return caught.value.reason


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_accepts_each_asymmetric_algorithm(validator: TokenValidator, keyset: KeySet,
                                           clock: FakeClock, alg: str) -> None:
    verified = validator.validate(keyset.token(alg, now=clock.now, jti="j-1", sid="s-1"))
    assert verified.claims.jti == "j-1"
    assert verified.claims.sub == "alice"
    assert verified.claims.sid == "s-1"
    assert verified.claims.kid == keyset.by_alg(alg)[0]
    assert verified.header["alg"] == alg


def test_hs256_when_configured_alone(clock: FakeClock, keyset: KeySet) -> None:
    validator = make_validator(StaticKeys(secret=HS_SECRET), clock, algorithms=["HS256"])
    assert validator.validate(keyset.token("HS256", now=clock.now)).claims.sub == "alice"
    assert reason_of(validator, keyset.token("RS256", now=clock.now)) == "algorithm not allowed"


def test_thumbprint_is_a_kid_too(validator: TokenValidator, keyset: KeySet,
                                 clock: FakeClock) -> None:
    kid = thumbprint(keyset.ec.public_key())
    assert validator.validate(keyset.token("ES256", kid=kid, now=clock.now)).claims.kid == kid


def test_thumbprint_matches_rfc_7638_example() -> None:
    """The RFC 7638 section 3.1 example key and its published thumbprint."""
    n = ("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6t"
         "Soc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-6"
         "5YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLy"
         "rdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJz"
         "KnqDKgw")
    key = parse_jwks({"keys": [{"kty": "RSA", "n": n, "e": "AQAB", "kid": "x"}]})["x"][0]
    assert thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_token_without_kid_needs_a_single_fitting_key(validator: TokenValidator,
                                                      keyset: KeySet, clock: FakeClock) -> None:
    # one RSA key configured: no kid is fine; the token cannot name another key
    assert validator.validate(keyset.token("RS256", kid=None, now=clock.now)).claims.kid is None
    two = StaticKeys(public_keys=[])
    assert two.get(None, "RS256") is None


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"exp": None}, "missing claim: exp"),
    ({"jti": None}, "missing claim: jti"),
    ({"iss": "https://evil.test"}, "wrong issuer"),
    ({"iss": None}, "wrong issuer"),
    ({"aud": "other"}, "wrong audience"),
    ({"aud": ["x", "y"]}, "wrong audience"),
    ({"aud": None}, "wrong audience"),
    ({"exp": "tomorrow"}, "malformed token"),
    ({"jti": 12345}, "malformed token"),
    ({"sub": "x" * 600}, "malformed token"),
])
def test_claim_rules(validator: TokenValidator, keyset: KeySet, clock: FakeClock,
                     overrides: dict[str, Any], reason: str) -> None:
    assert reason_of(validator, keyset.token(now=clock.now, **overrides)) == reason


def test_audience_list_with_one_match_is_accepted(validator: TokenValidator, keyset: KeySet,
                                                  clock: FakeClock) -> None:
    token = keyset.token(now=clock.now, aud=["other", AUDIENCE])
    assert validator.validate(token).payload["aud"] == ["other", AUDIENCE]


def test_configured_required_claims_add_to_exp_and_jti(pem_dir: Path, keyset: KeySet,
                                                       clock: FakeClock) -> None:
    validator = make_validator(StaticKeys(public_keys=[str(pem_dir)]), clock,
                               required=("sub",))
    assert validator.required == ("exp", "jti", "sub")
    assert reason_of(validator, keyset.token(now=clock.now, sub=None)) == "missing claim: sub"
    assert reason_of(validator, keyset.token(now=clock.now, jti=None)) == "missing claim: jti"


def test_time_rules_with_leeway(validator: TokenValidator, keyset: KeySet,
                                clock: FakeClock) -> None:
    now = int(clock.now)
    ok = validator.validate
    assert ok(keyset.token(now=now, iat=now - 100, exp=now - LEEWAY + 1))
    assert reason_of(validator, keyset.token(now=now, iat=now - 100, exp=now - LEEWAY)) \
        == "expired"
    assert ok(keyset.token(now=now, nbf=now + LEEWAY))
    assert reason_of(validator, keyset.token(now=now, nbf=now + LEEWAY + 1)) == "not yet valid"
    assert ok(keyset.token(now=now, iat=now + LEEWAY, exp=now + 600))
    assert reason_of(validator, keyset.token(now=now, iat=now + LEEWAY + 1, exp=now + 600)) \
        == "issued in the future"


def test_lifetime_bound(validator: TokenValidator, keyset: KeySet, clock: FakeClock) -> None:
    now = int(clock.now)
    assert validator.validate(keyset.token(now=now, exp=now + MAX_LIFETIME))
    assert reason_of(validator, keyset.token(now=now, exp=now + MAX_LIFETIME + 1)) \
        == "lifetime too long"
    # a backdated iat cannot stretch a token: exp - iat is what counts
    assert reason_of(validator, keyset.token(now=now, iat=now - 7200, exp=now + 600)) \
        == "lifetime too long"
    # without iat, what remains of the token is bounded instead
    assert validator.validate(keyset.token(now=now, iat=None, exp=now + MAX_LIFETIME))
    assert reason_of(validator, keyset.token(now=now, iat=None,
                                             exp=now + MAX_LIFETIME + LEEWAY + 1)) \
        == "lifetime too long"


def test_rejections_are_counted_by_reason(validator: TokenValidator) -> None:
    counter = metrics.TOKEN_REJECTIONS.labels(reason="malformed token")
    before = counter._value.get()
    reason_of(validator, "not.a.jwt")
    assert counter._value.get() == before + 1


def test_empty_and_oversized_tokens(validator: TokenValidator) -> None:
    assert reason_of(validator, "") == "missing token"
    assert reason_of(validator, "a" * (16 * 1024 + 1)) == "token too large"


# -- the verified-token cache ------------------------------------------------------------

class CountingKeys:
    """Counts key lookups: a lookup happens only when a signature is verified."""

    def __init__(self, inner: StaticKeys) -> None:
        self.inner = inner
        self.calls = 0

    def get(self, kid: str | None, alg: str) -> Any | None:
        self.calls += 1
        return self.inner.get(kid, alg)

    async def refetch(self) -> bool:
        return await self.inner.refetch()


def test_repeated_token_is_verified_once(pem_dir: Path, keyset: KeySet,
                                         clock: FakeClock) -> None:
    keys = CountingKeys(StaticKeys(public_keys=[str(pem_dir)]))
    validator = make_validator(keys, clock)
    token = keyset.token(now=clock.now)
    first = validator.validate(token)
    for _ in range(5):
        assert validator.validate(token) is first
    assert keys.calls == 1


def test_cache_is_bounded(pem_dir: Path, keyset: KeySet, clock: FakeClock) -> None:
    keys = CountingKeys(StaticKeys(public_keys=[str(pem_dir)]))
    validator = make_validator(keys, clock, cache_size=3)
    tokens = [keyset.token("ES256", now=clock.now) for _ in range(5)]
    for token in tokens:
        validator.validate(token)
    assert validator.cache_len == 3
    validator.validate(tokens[-1])  # still cached
    assert keys.calls == 5
    validator.validate(tokens[0])  # the oldest was evicted: verified again
    assert keys.calls == 6
    assert validator.cache_len == 3


def test_cache_disabled_with_size_zero(pem_dir: Path, keyset: KeySet,
                                       clock: FakeClock) -> None:
    keys = CountingKeys(StaticKeys(public_keys=[str(pem_dir)]))
    validator = make_validator(keys, clock, cache_size=0)
    token = keyset.token(now=clock.now)
    validator.validate(token)
    validator.validate(token)
    assert keys.calls == 2 and validator.cache_len == 0


def test_cached_token_is_never_used_past_exp(validator: TokenValidator, keyset: KeySet,
                                             clock: FakeClock) -> None:
    token = keyset.token(now=clock.now, exp=int(clock.now) + 60)
    validator.validate(token)
    clock.advance(60 + LEEWAY - 1)
    assert validator.validate(token)
    clock.advance(1)
    assert reason_of(validator, token) == "expired"
    assert validator.cache_len == 0


def test_failures_are_not_cached(validator: TokenValidator, keyset: KeySet,
                                 clock: FakeClock) -> None:
    token = keyset.token(now=clock.now, nbf=int(clock.now) + 120)
    assert reason_of(validator, token) == "not yet valid"
    assert validator.cache_len == 0
    clock.advance(120)
    assert validator.validate(token)


def test_cache_key_is_a_digest_not_the_token(validator: TokenValidator, keyset: KeySet,
                                             clock: FakeClock) -> None:
    token = keyset.token(now=clock.now)
    validator.validate(token)
    assert all(len(key) == 32 and token.encode() not in key for key in validator._cache)


# -- key sources -------------------------------------------------------------------------

def test_key_types_never_cross_algorithms(keyset: KeySet) -> None:
    assert key_fits(keyset.rsa.public_key(), "RS256")
    assert key_fits(keyset.rsa.public_key(), "PS256")
    assert not key_fits(keyset.rsa.public_key(), "HS256")
    assert not key_fits(keyset.rsa.public_key(), "ES256")
    assert key_fits(keyset.ec.public_key(), "ES256")
    assert not key_fits(keyset.ec.public_key(), "ES384")
    assert key_fits(keyset.ed.public_key(), "EdDSA")
    assert not key_fits(keyset.ed.public_key(), "RS256")
    assert key_fits(b"secret", "HS256") and not key_fits(b"secret", "RS256")


def test_static_keys_are_named_by_file_stem_and_thumbprint(pem_dir: Path,
                                                           keyset: KeySet) -> None:
    keys = StaticKeys(public_keys=[str(pem_dir)])
    assert {"rsa1", "ec1", "ed1", thumbprint(keyset.rsa.public_key())} <= set(keys.kids)
    assert keys.get("rsa1", "RS256") is not None
    assert keys.get("rsa1", "ES256") is None
    assert keys.get("../rsa1", "RS256") is None
    assert keys.get("RSA1", "RS256") is None


def test_single_pem_file_and_certificate(tmp_path: Path, keyset: KeySet) -> None:
    path = tmp_path / "only.pem"
    path.write_bytes(pem(keyset.rsa))
    assert StaticKeys(public_keys=[str(path)]).get("only", "RS256") is not None


@pytest.mark.parametrize(("content", "message"), [
    (b"hello", "not a PEM public key"),
    (b"-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n", "private key"),
])
def test_bad_pem_files_are_config_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.pem"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as caught:
        StaticKeys(public_keys=[str(path)])
    assert caught.value.variable == "REVOKER_JWT_PUBLIC_KEYS"


def test_small_rsa_keys_are_refused(tmp_path: Path) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    path = tmp_path / "small.pem"
    path.write_bytes(pem(small))
    with pytest.raises(ConfigError, match="2048"):
        StaticKeys(public_keys=[str(path)])


def test_jwks_parsing_skips_symmetric_encryption_and_private_keys(keyset: KeySet) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    private_jwk = jwk(private, "priv")
    private_jwk["d"] = "AAAA"
    enc = jwk(keyset.rsa, "enc")
    enc["use"] = "enc"
    document = {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}, enc, "junk",
                         {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
                         jwk(keyset.ed, None)]}
    keys = parse_jwks(document)
    assert list(keys) == [thumbprint(keyset.ed.public_key())]
    with pytest.raises(ValueError, match="keys"):
        parse_jwks({"nokeys": []})


def test_from_settings_builds_static_keys(pem_dir: Path, keyset: KeySet) -> None:
    settings = Settings.from_env({"REVOKER_JWT_PUBLIC_KEYS": str(pem_dir),
                                  "REVOKER_JWT_ISSUER": ISSUER,
                                  "REVOKER_JWT_AUDIENCE": AUDIENCE})
    validator = TokenValidator.from_settings(settings)
    assert validator.validate(keyset.token("EdDSA")).claims.sub == "alice"


def test_validator_refuses_none_in_its_allow_list(validator: TokenValidator) -> None:
    with pytest.raises(ValueError, match="none"):
        make_validator(validator.keys, time.time, algorithms=["RS256", "none"])


def test_peek_still_reads_unvalidated_tokens(keyset: KeySet) -> None:
    header, payload = peek(keyset.token("ES256", jti="p-1"))
    assert header["kid"] == "ec1" and payload["jti"] == "p-1"
    with pytest.raises(TokenError):
        peek("garbage")


# -- JWKS --------------------------------------------------------------------------------

async def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_jwks_rotation_unknown_kid_and_outage(keyset: KeySet) -> None:
    old = pooled_rsa(0)
    new = pooled_rsa(1)
    server = await JwksServer({"keys": [jwk(old, "old", "RS256")]}).start()
    clock = FakeClock(0.0)
    keys = JwksKeys(server.url, refresh_s=3600, min_refetch_s=10, clock=clock)
    try:
        await keys.start()
        assert keys.kids == ["old"]
        assert keys.get("old", "RS256") is not None
        assert keys.get("old", "ES256") is None  # the JWK's alg pins it
        # rotation: a new kid is unknown until a refetch, which get() asks for, never waits for
        server.jwks = {"keys": [jwk(new, "new", "RS256")]}
        clock.advance(10)
        assert keys.get("new", "RS256") is None
        await wait_for(lambda: keys.kids == ["new"])
        assert keys.get("new", "RS256") is not None
        assert keys.get("old", "RS256") is None
        # unknown kids trigger at most one refetch per interval
        fetches = server.fetches
        for _ in range(20):
            assert keys.get("nope", "RS256") is None
        await asyncio.sleep(0.05)
        assert server.fetches == fetches
        # identity provider down: keys are served from cache
        server.down = True
        assert await keys.refresh() is False
        assert keys.get("new", "RS256") is not None
    finally:
        await keys.stop()
        await server.stop()


async def test_jwks_change_empties_the_verified_cache(keyset: KeySet) -> None:
    server = await JwksServer({"keys": [jwk(keyset.ec, "ec1", "ES256")]}).start()
    clock = FakeClock(time.time())
    keys = JwksKeys(server.url, refresh_s=3600, clock=time.monotonic)
    validator = make_validator(keys, clock)
    try:
        await validator.start()
        token = keyset.token("ES256", now=clock.now)
        assert validator.validate(token) and validator.cache_len == 1
        server.jwks = {"keys": []}
        assert await keys.refresh() is True
        assert validator.cache_len == 0
        assert reason_of(validator, token) == "unknown key"
    finally:
        await validator.stop()
        await server.stop()


async def test_jwks_unreachable_at_start_is_not_fatal() -> None:
    keys = JwksKeys(f"http://127.0.0.1:{free_port()}/jwks.json", refresh_s=3600,
                    timeout_s=1.0)
    try:
        await keys.start()
        assert keys.kids == [] and keys.get("any", "RS256") is None
    finally:
        await keys.stop()


def test_private_jwk_is_never_used() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    numbers = private.private_numbers()
    data = jwk(private, "p")
    data["d"] = base64.urlsafe_b64encode(
        numbers.private_value.to_bytes(32, "big")).rstrip(b"=").decode()
    assert parse_jwks({"keys": [data]}) == {}


# -- fuzz: nothing but TokenError ever comes out of validate ----------------------------------

_SEGMENT = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/!",
                   max_size=80)


@settings(max_examples=300, deadline=None)
@given(token=st.one_of(st.text(max_size=200),
                       st.builds(lambda a, b, c: f"{a}.{b}.{c}", _SEGMENT, _SEGMENT, _SEGMENT),
                       st.builds(lambda h, p: f"{b64json(h)}.{b64json(p)}.AAAA",
                                 st.dictionaries(st.sampled_from(["alg", "kid", "typ", "jku"]),
                                                 st.one_of(st.text(max_size=10), st.integers(),
                                                           st.none())),
                                 st.dictionaries(st.text(max_size=5), st.integers()))))
def test_garbage_only_ever_raises_token_error(token: str) -> None:
    validator = make_validator(StaticKeys(secret=None), time.time, cache_size=0)
    with pytest.raises(TokenError) as caught:
        validator.validate(token)
    assert caught.value.reason in REASONS or caught.value.reason.startswith("missing claim: ")


async def test_no_keys_warns_at_start_not_at_construction(
        caplog: pytest.LogCaptureFixture) -> None:
    validator = TokenValidator.from_settings(Settings.from_env({}))
    assert "no JWT keys" not in caplog.text
    await validator.start()
    await validator.stop()
    assert "no JWT keys configured" in caplog.text
    assert reason_of(validator, KeySet().token()) == "unknown key"


# -- one NumericDate parser, one header reader ---------------------------------------------

@pytest.mark.parametrize("value", [10**400, float("inf"), float("-inf"), float("nan"), -1,
                                   -0.5, "1700000000", True, False, [1], {}])
def test_absurd_numeric_dates_are_malformed(value: Any) -> None:
    with pytest.raises(TokenError) as caught:
        numeric_date({"iat": value}, "iat")
    assert caught.value.reason == "malformed token"


@pytest.mark.parametrize(("value", "expected"), [(None, None), (0, 0.0), (1_700_000_000, 1.7e9),
                                                 (1_700_000_000.5, 1_700_000_000.5)])
def test_numeric_dates(value: Any, expected: float | None) -> None:
    assert numeric_date({"iat": value} if value is not None else {}, "iat") == expected


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_validator_refuses_a_huge_date_in_any_date_claim(validator: TokenValidator,
                                                         keyset: KeySet, clock: FakeClock,
                                                         claim: str) -> None:
    assert reason_of(validator, keyset.token(now=clock.now, **{claim: 10**400})) \
        == "malformed token"


def test_peek_refuses_absurd_dates(keyset: KeySet) -> None:
    with pytest.raises(TokenError):
        peek(keyset.token(iat=10**400))


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d", "!!!.e30.x",
                                   f"{b64json([1])}.e30.x", f"{b64json({'kid': 7})}.e30.x",
                                   "e30.e30.e30.e30"])
def test_read_header_refuses_what_is_not_a_compact_jws(token: str) -> None:
    with pytest.raises(TokenError) as caught:
        read_header(token)
    assert caught.value.reason == "malformed token"


def test_read_header_reads_what_pyjwt_reads(keyset: KeySet) -> None:
    token = keyset.token("ES256", headers={"typ": "at+jwt"})
    assert read_header(token) == peek(token)[0]


def test_cutoff_covers_the_signal_second_and_never_passes_the_current_one() -> None:
    assert cutoff_after(1000.0, now=2000.4) == 1001
    assert cutoff_after(1000.7, now=2000.4) == 1001
    assert cutoff_after(2010.0, now=2000.4) == 2001  # iat within leeway in the future


# -- JWKS: refetch on unknown kid, shared, bounded, rate-limited ---------------------------

@pytest.fixture
async def jwks_server() -> Any:
    server = await JwksServer({"keys": [jwk(pooled_rsa(0), "old", "RS256")]}).start()
    yield server
    await server.stop()


async def test_refetch_reads_a_rotated_key_at_once(jwks_server: JwksServer) -> None:
    keys = JwksKeys(jwks_server.url, refresh_s=3600, min_refetch_s=60)
    try:
        await keys.start()
        jwks_server.jwks = {"keys": [jwk(pooled_rsa(1), "new", "RS256")]}
        assert await keys.refetch() is True
        assert keys.get("new", "RS256") is not None
        assert jwks_server.fetches == 2
    finally:
        await keys.stop()


async def test_concurrent_unknown_kids_share_one_read(jwks_server: JwksServer) -> None:
    keys = JwksKeys(jwks_server.url, refresh_s=3600, min_refetch_s=0)
    try:
        await keys.start()
        jwks_server.delay_s = 0.2
        results = await asyncio.gather(*(keys.refetch() for _ in range(20)))
        assert all(results)
        assert jwks_server.fetches == 2
    finally:
        await keys.stop()


async def test_unknown_kid_reads_are_rate_limited_per_key_set(jwks_server: JwksServer) -> None:
    clock = FakeClock(0.0)
    keys = JwksKeys(jwks_server.url, refresh_s=3600, min_refetch_s=5, clock=clock)
    try:
        await keys.start()
        assert await keys.refetch() is True
        clock.advance(4.9)
        assert await keys.refetch() is False  # answered at once, nothing read
        assert keys.get("random", "RS256") is None
        assert jwks_server.fetches == 2
        clock.advance(0.1)
        assert await keys.refetch() is True
        assert jwks_server.fetches == 3
    finally:
        await keys.stop()


async def test_scheduled_reads_leave_the_unknown_kid_budget_alone(
        jwks_server: JwksServer) -> None:
    """A key rotated just after a scheduled read is still found by its first token."""
    clock = FakeClock(0.0)
    keys = JwksKeys(jwks_server.url, refresh_s=0.05, min_refetch_s=5, clock=clock)
    try:
        await keys.start()
        await wait_for(lambda: jwks_server.fetches >= 3)
        assert await keys.refetch() is True
    finally:
        await keys.stop()


async def test_refetch_wait_is_bounded(jwks_server: JwksServer) -> None:
    keys = JwksKeys(jwks_server.url, refresh_s=3600, min_refetch_s=0, refetch_wait_s=0.1)
    try:
        await keys.start()
        jwks_server.delay_s = 2.0
        started = time.monotonic()
        assert await keys.refetch() is False
        assert time.monotonic() - started < 1.0
    finally:
        await keys.stop()


async def test_refetch_before_start_reads_nothing(jwks_server: JwksServer) -> None:
    keys = JwksKeys(jwks_server.url, refresh_s=3600)
    assert await keys.refetch() is False
    assert jwks_server.fetches == 0


async def test_one_key_set_per_url_started_until_the_last_owner_stops(
        jwks_server: JwksServer) -> None:
    key_sets = KeySets(refresh_s=3600, min_refetch_s=5, refetch_wait_s=1)
    first = key_sets.for_url(jwks_server.url)
    assert key_sets.for_url(jwks_server.url) is first and len(key_sets) == 1
    await key_sets.start()
    await key_sets.start()
    assert jwks_server.fetches == 1
    await key_sets.stop()
    assert await first.refetch() is True  # still running for the other owner
    await key_sets.stop()
    assert await first.refetch() is False


async def test_validate_waiting_accepts_the_first_token_of_a_rotated_key(
        jwks_server: JwksServer, keyset: KeySet) -> None:
    keys = JwksKeys(jwks_server.url, refresh_s=3600, min_refetch_s=60)
    clock = FakeClock(time.time())
    validator = make_validator(keys, clock)
    try:
        await validator.start()
        new = pooled_rsa(1)
        jwks_server.jwks = {"keys": [jwk(new, "new", "RS256")]}
        token = sign(new, "RS256", claims(clock.now), kid="new")
        assert (await validator.validate_waiting(token)).claims.kid == "new"
        with pytest.raises(TokenError):  # rate-limited now: refused at once
            await validator.validate_waiting(sign(new, "RS256", claims(clock.now), kid="x"))
    finally:
        await validator.stop()


# -- signal claim rules ------------------------------------------------------------------------

RULES = SignalRules(audience=frozenset({"rp"}), leeway_s=30, max_lifetime_s=3600,
                    logout_max_age_s=120)
NOW = 1_764_340_000.0
EVENT = {"http://schemas.openid.net/event/backchannel-logout": {}}


def logout_payload(**overrides: Any) -> dict[str, Any]:
    payload = {"iss": "idp", "aud": "rp", "iat": NOW, "jti": "j", "sid": "s", "events": EVENT}
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"iat": NOW - 151}, "issued too long ago"),
    ({"iat": NOW + 31}, "issued in the future"),
    ({"iat": 10**400}, "malformed token"),
    ({"iat": None}, "missing claim: iat"),
    ({"exp": NOW - 30}, "expired"),
    ({"aud": "other"}, "wrong audience"),
    ({"jti": None}, "missing claim: jti"),
    ({"sid": None}, "neither sub nor sid"),
    ({"nonce": "n"}, "nonce is not allowed"),
])
def test_logout_token_rules(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(TokenError) as caught:
        logout_token({}, logout_payload(**overrides), rules=RULES, now=NOW)
    assert caught.value.reason == reason


def test_logout_max_age_never_exceeds_the_max_token_lifetime() -> None:
    rules = SignalRules(audience=frozenset({"rp"}), leeway_s=30, max_lifetime_s=60,
                        logout_max_age_s=86400)
    assert logout_token({}, logout_payload(iat=NOW - 90), rules=rules, now=NOW)
    with pytest.raises(TokenError, match="issued too long ago"):
        logout_token({}, logout_payload(iat=NOW - 91), rules=rules, now=NOW)


def test_logout_jti_is_remembered_while_the_token_could_pass() -> None:
    token = logout_token({}, logout_payload(), rules=RULES, now=NOW)
    assert token.acceptable_until == int(NOW) + 120 + 30 + 1
    token = logout_token({}, logout_payload(exp=NOW + 10), rules=RULES, now=NOW)
    assert token.acceptable_until == int(NOW) + 10 + 30 + 1


def test_set_age_is_bounded_by_the_max_token_lifetime() -> None:
    payload = {"iss": "idp", "aud": "rp", "jti": "j", "events": {}}
    assert security_event({}, {**payload, "iat": NOW - 3630}, rules=RULES, now=NOW).iat \
        == NOW - 3630
    with pytest.raises(TokenError, match="issued too long ago"):
        security_event({}, {**payload, "iat": NOW - 3631}, rules=RULES, now=NOW)


async def test_a_kid_from_the_key_files_never_sends_the_jwks_looking(
        jwks_server: JwksServer, pem_dir: Path, keyset: KeySet) -> None:
    settings = Settings.from_env({"REVOKER_JWT_PUBLIC_KEYS": str(pem_dir),
                                  "REVOKER_JWKS_URL": jwks_server.url,
                                  "REVOKER_JWKS_MIN_REFETCH_INTERVAL": "0",
                                  "REVOKER_JWT_ISSUER": ISSUER,
                                  "REVOKER_JWT_AUDIENCE": AUDIENCE})
    validator = TokenValidator.from_settings(settings)
    try:
        await validator.start()
        for _ in range(3):
            assert await validator.validate_waiting(keyset.token("ES256"))
        assert jwks_server.fetches == 1
    finally:
        await validator.stop()
