"""Identity-provider side of the tests: trusted issuers serving their keys as a JWKS on a
free local port, and the logout tokens / Security Event Tokens they sign."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest

from tests.jwks_server import JwksServer
from tests.jwt_factory import KeySet, jwk, pooled_rsa, sign

IDP = "https://idp.example.test/realms/main"
OTHER_IDP = "https://other-idp.example.test"
RP_CLIENT = "revoker-rp"
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@dataclass
class Issuers:
    main: KeySet
    other: KeySet
    main_jwks: JwksServer
    other_jwks: JwksServer

    def rotate_main(self, kid: str = "rotated-1") -> tuple[str, Any]:
        """The main issuer restarts with a new signing key: its JWKS now lists only that
        key. Returns (kid, private key) to sign with."""
        new_key = pooled_rsa(2)
        self.main_jwks.jwks = {"keys": [jwk(new_key, kid, "RS256")]}
        return kid, new_key

    @property
    def env(self) -> dict[str, str]:
        return {"REVOKER_OIDC_ISSUERS": f"{IDP}={self.main_jwks.url},"
                                        f"{OTHER_IDP}={self.other_jwks.url}",
                "REVOKER_OIDC_AUDIENCE": f"{RP_CLIENT},second-client",
                "REVOKER_OIDC_MAX_AGE": "120", "REVOKER_LEEWAY": "30"}


@pytest.fixture
async def issuers() -> AsyncIterator[Issuers]:
    main = KeySet()
    other = KeySet(rsa=pooled_rsa(1))
    main_jwks = await JwksServer(main.jwks()).start()
    other_jwks = await JwksServer(other.jwks()).start()
    yield Issuers(main, other, main_jwks, other_jwks)
    await main_jwks.stop()
    await other_jwks.stop()


def logout_claims(**overrides: Any) -> dict[str, Any]:
    """A valid logout token payload as Keycloak sends it; None drops a claim."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": IDP, "aud": RP_CLIENT, "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex,
        "sub": "user-1", "sid": "session-1", "typ": "Logout",
        "events": {LOGOUT_EVENT: {}}}
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def signed_raw(key: Any, kid: str, payload_json: str, *, typ: str = "logout+jwt") -> str:
    """A token over exactly these payload bytes (numbers JSON allows but Python would not
    write, such as ``1e309``), signed RS256 by ``key``."""
    return jwt.PyJWS().encode(payload_json.encode(), key, algorithm="RS256",
                              headers={"kid": kid, "typ": typ})


def signed(keys: KeySet, payload: dict[str, Any], *, alg: str = "RS256",
           kid: str | None = "", typ: str | None = "logout+jwt") -> str:
    own_kid, key = keys.by_alg(alg)
    headers = {"typ": typ} if typ is not None else None
    return sign(key, alg, payload, kid=own_kid if kid == "" else kid, headers=headers)
