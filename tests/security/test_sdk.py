"""Attacks on applications that enforce revocations with the SDK: forged tokens, tokens
echoed back, header injection through a relayed reason, and a replayed old event."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from revoker.model import Claims, Event, Record
from revoker.sdk import Guard, Outcome, RevokerClient, VerifierSettings
from revoker.sdk.mirror import Gap, Mirror
from revoker.sdk.responses import refusal
from revoker.sdk.wsgi import RevokerWSGI
from tests.jwt_factory import KeySet, b64, b64json, forge

pytestmark = pytest.mark.security


@pytest.fixture
def guard(tmp_path: Path) -> Iterator[Guard]:
    """Local validation only: every attack here is refused before any revocation check
    (the guard is never started, so nothing could answer one)."""
    keyset = KeySet()
    keyset.write_pems(tmp_path / "keys")
    made = Guard("http://127.0.0.1:9", None, verifier=VerifierSettings(
        public_keys=[str(tmp_path / "keys")], algorithms=("RS256", "ES256")))
    made.keyset = keyset  # type: ignore[attr-defined]
    yield made
    made.close()


def confused(public_pem: bytes, payload: dict[str, Any]) -> str:
    """The classic key confusion: HMAC-signed with the verifier's own public key."""
    signing_input = f"{b64json({'alg': 'HS256', 'kid': 'rsa1'})}.{b64json(payload)}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def test_forged_tokens_are_refused_by_the_services_rules(guard: Guard) -> None:
    keyset: KeySet = guard.keyset  # type: ignore[attr-defined]
    now = int(time.time())
    payload = {"sub": "mallory", "jti": "j", "iat": now, "exp": now + 60}
    public_pem = keyset.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    genuine = keyset.token()
    attacks = {
        "alg none": forge({"alg": "none", "typ": "JWT"}, payload),
        "HS256 keyed with the RSA public key": confused(public_pem, payload),
        "signature of another token": genuine.rsplit(".", 1)[0][:-2] + "AA." + b64(b"x" * 256),
        "oversized": forge({"alg": "RS256", "kid": "rsa1"}, {"pad": "x" * 20000}),
        "lifetime too long": keyset.token(iat=now, exp=now + 10 * 86400),
    }
    for name, token in attacks.items():
        outcome = guard.authenticate(token)
        assert outcome.status == "refused", name
    assert guard.authenticate(b64json({"alg": "RS256"})).status == "refused"


def test_a_refusal_never_echoes_the_token(guard: Guard) -> None:
    token = forge({"alg": "RS256", "kid": "rsa1"}, {"sub": "SECRET-CLAIM"}, b"sig")
    seen: list[tuple[str, list[tuple[str, str]]]] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        raise AssertionError("a refused request must not reach the application")

    middleware = RevokerWSGI(app, guard)
    body = b"".join(middleware({"HTTP_AUTHORIZATION": f"Bearer {token}", "PATH_INFO": "/"},
                               lambda status, headers: seen.append((status, headers))))
    status, headers = seen[0]
    assert status.startswith("401")
    everything = body.decode() + "".join(f"{k}: {v}" for k, v in headers)
    assert token not in everything and "SECRET-CLAIM" not in everything
    assert token.split(".")[1] not in everything


def test_a_relayed_reason_cannot_split_the_challenge_header() -> None:
    outcome = Outcome("refused", reason='revoked"\r\nSet-Cookie: session=stolen')
    challenge = outcome.challenge()
    assert "\r" not in challenge and "\n" not in challenge
    assert challenge.count('"') == 4
    _, headers, _ = refusal(outcome)
    assert all("\n" not in value for _, value in headers)


def test_a_replayed_older_event_is_a_gap_and_changes_nothing() -> None:
    """An event older than the copy's position (a replay, or a service that lost its
    events) must not unrevoke anything: the copy is loaded again instead."""
    now = int(time.time())
    record = Record(kind="sub", value="alice", revoked_at=now, expires_at=now + 600,
                    issued_before=now + 1)
    copy = Mirror(RevokerClient("http://127.0.0.1:9"))
    copy.apply(Event(id="20-0", type="revoked", record=record, at=now))
    with pytest.raises(Gap):
        copy.apply(Event(id="19-0", type="unrevoked", record=record, at=now))
    assert copy.table.match(Claims(sub="alice", iat=now - 5), now)
