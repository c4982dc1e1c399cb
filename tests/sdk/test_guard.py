"""``Guard`` against a real ``revoker serve`` on a real redis-server: decisions in both
modes, revocations of every kind enforced within the staleness bound, and the fail mode
when the service is gone."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest

from revoker.sdk import Guard, Outcome, SyncRevokerClient
from tests.jwt_factory import KeySet, jwk
from tests.sdk.conftest import ADMIN, STALENESS_S, JwksHttp, eventually
from tests.serve_proc import ServeProcess

pytestmark = pytest.mark.redis


class admin:
    """One admin call on a connection closed right after it."""

    def __init__(self, service: ServeProcess) -> None:
        self.client = SyncRevokerClient(service.url, ADMIN)

    def revoke(self, kind: str, value: str) -> None:
        with self.client:
            self.client.revoke(kind, value)

    def revoke_token(self, token: str) -> None:
        with self.client:
            self.client.revoke_token(token)

    def unrevoke(self, kind: str, value: str) -> None:
        with self.client:
            self.client.unrevoke(kind, value)


def test_valid_token_is_accepted_from_the_mirror_with_its_claims(
        make_guard: Callable[..., Guard], keyset: KeySet) -> None:
    guard = make_guard()
    token = keyset.token(sub="alice", sid="s-1")
    outcome = guard.authenticate(token)
    assert outcome.ok and outcome.source == "mirror"
    assert outcome.claims["sub"] == "alice" and outcome.claims["sid"] == "s-1"
    assert outcome.header["kid"] == "rsa1"


@pytest.mark.parametrize("kind", ["jti", "sub", "sid", "kid", "client"])
def test_each_kind_of_revocation_is_enforced_within_the_bound(
        make_guard: Callable[..., Guard], keyset: KeySet, service: ServeProcess,
        kind: str) -> None:
    guard = make_guard()
    unique = uuid.uuid4().hex
    claims = {"jti": f"j-{unique}", "sub": f"u-{unique}", "sid": f"s-{unique}",
              "client_id": f"c-{unique}"}
    token = keyset.token(iat=int(time.time()) - 5, **claims)
    assert guard.authenticate(token).ok
    value = {"jti": claims["jti"], "sub": claims["sub"], "sid": claims["sid"],
             "kid": "rsa1", "client": claims["client_id"]}[kind]
    admin(service).revoke(kind, value)
    revoked_at = time.monotonic()
    assert eventually(lambda: guard.authenticate(token).reason == "revoked",
                      within_s=STALENESS_S)
    assert time.monotonic() - revoked_at <= STALENESS_S


def test_unrevoke_is_followed_too(make_guard: Callable[..., Guard], keyset: KeySet,
                                  service: ServeProcess) -> None:
    guard = make_guard()
    token = keyset.token(jti=f"j-{uuid.uuid4().hex}")
    jti = guard.authenticate(token).claims["jti"]
    admin(service).revoke("jti", jti)
    assert eventually(lambda: not guard.authenticate(token).ok, within_s=STALENESS_S)
    admin(service).unrevoke("jti", jti)
    assert eventually(lambda: guard.authenticate(token).ok, within_s=STALENESS_S)


def test_invalid_tokens_are_refused_with_the_services_reasons(
        make_guard: Callable[..., Guard], keyset: KeySet) -> None:
    guard = make_guard()
    assert guard.authenticate(None).reason == "missing token"
    assert guard.authenticate("not-a-jwt").reason == "malformed token"
    expired = keyset.token(iat=int(time.time()) - 4000, exp=int(time.time()) - 3000)
    assert guard.authenticate(expired).reason == "expired"
    assert guard.authenticate(keyset.token(aud="someone-else")).reason == "wrong audience"
    assert guard.authenticate(keyset.token(kid="nobody-knows")).reason == "unknown key"
    assert guard.authenticate(keyset.token("HS256")).reason == "algorithm not allowed"
    refused = guard.authenticate(expired)
    assert refused.http_status == 401
    assert refused.challenge().startswith('Bearer error="invalid_token"')


async def test_async_path_gives_the_same_answers(make_guard: Callable[..., Guard],
                                                 keyset: KeySet,
                                                 service: ServeProcess) -> None:
    guard = make_guard()
    token = keyset.token(jti=f"j-{uuid.uuid4().hex}")
    assert (await guard.authenticate_async(token)).ok
    admin(service).revoke_token(token)
    deadline = time.monotonic() + STALENESS_S
    while (await guard.authenticate_async(token)).ok and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert (await guard.authenticate_async(token)).reason == "revoked"
    await guard.aclose()


def test_authz_mode_delegates_validation_and_checks(make_guard: Callable[..., Guard],
                                                    keyset: KeySet,
                                                    service: ServeProcess) -> None:
    guard = make_guard(mode="authz")
    token = keyset.token(jti=f"j-{uuid.uuid4().hex}", scope="read")
    outcome = guard.authenticate(token)
    assert outcome.ok and outcome.source == "authz" and outcome.claims["scope"] == "read"
    assert guard.authenticate(keyset.token(aud="other")).reason == "wrong audience"
    admin(service).revoke_token(token)
    revoked = guard.authenticate(token)  # no copy here: the very next request sees it
    assert not revoked.ok and revoked.reason == "revoked"


def test_metric_hook_sees_every_outcome(make_guard: Callable[..., Guard],
                                        keyset: KeySet) -> None:
    seen: list[Outcome] = []
    guard = make_guard(on_outcome=seen.append)
    guard.authenticate(keyset.token())
    guard.authenticate("nope")
    assert [o.status for o in seen] == ["ok", "refused"]


def test_a_rotated_key_is_fetched_before_the_token_is_refused(
        make_guard: Callable[..., Guard], jwks: JwksHttp) -> None:
    """A kid the JWKS did not list at start: the guard waits (bounded) for one new read
    of the JWKS, from a WSGI thread and from an event loop alike."""
    threaded, looped = make_guard(), make_guard()
    rotated = KeySet()  # new keys, published after both guards started
    before = dict(jwks.jwks)
    jwks.jwks = {"keys": [*before["keys"], jwk(rotated.ec, "ec-rotated", "ES256")]}
    try:
        token = rotated.token("ES256", kid="ec-rotated")
        outcome = threaded.authenticate(token)
        assert outcome.ok, outcome.reason
        assert asyncio.run(looped.authenticate_async(token)).ok
        assert threaded.authenticate(rotated.token("ES256", kid="ec-unknown")).reason \
            == "unknown key"
    finally:
        jwks.jwks = before
