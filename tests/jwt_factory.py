"""Keys and tokens made in-test with ``cryptography``: no key material in the repository.

``KeySet`` holds one RSA, one EC P-256 and one Ed25519 signing key plus an HMAC secret,
writes the public halves as PEM files (kid = file stem) and serves them as a JWKS.
``forge`` builds tokens by hand for the attack suite (any header, any signature).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

HS_SECRET = "test-hmac-secret-that-is-long-enough-for-hs256!"
ISSUER = "https://idp.example.test"
AUDIENCE = "api.example.test"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

_RSA_CACHE: list[rsa.RSAPrivateKey] = []


def rsa_key() -> rsa.RSAPrivateKey:
    """RSA generation is the slow part; a small pool is shared by the whole session."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pooled_rsa(index: int) -> rsa.RSAPrivateKey:
    while len(_RSA_CACHE) <= index:
        _RSA_CACHE.append(rsa_key())
    return _RSA_CACHE[index]


def pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(data: Any) -> str:
    return b64(json.dumps(data, separators=(",", ":")).encode())


def jwk(key: PrivateKey, kid: str | None, alg: str | None = None) -> dict[str, Any]:
    """The public JWK of ``key`` (PyJWT's serializer), with kid and alg when given."""
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        data = jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        data = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        data = jwt.algorithms.OKPAlgorithm.to_jwk(public, as_dict=True)
    if kid is not None:
        data["kid"] = kid
    if alg is not None:
        data["alg"] = alg
    data["use"] = "sig"
    return dict(data)


def claims(now: float | None = None, **overrides: Any) -> dict[str, Any]:
    """A valid payload: sub, jti, iat, exp (+10 min), iss and aud; None drops a claim."""
    t = int(time.time() if now is None else now)
    payload: dict[str, Any] = {"sub": "alice", "jti": uuid.uuid4().hex, "iat": t,
                               "exp": t + 600, "iss": ISSUER, "aud": AUDIENCE}
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def forge(header: dict[str, Any], payload: dict[str, Any] | str, signature: bytes = b"") -> str:
    """A token built by hand: nothing is checked, nothing is signed."""
    body = payload if isinstance(payload, str) else b64json(payload)
    return f"{b64json(header)}.{body}.{b64(signature)}"


@dataclass
class KeySet:
    """The trusted signing keys of a test, by kid."""

    rsa: rsa.RSAPrivateKey = field(default_factory=lambda: pooled_rsa(0))
    ec: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(
        ec.SECP256R1()))
    ed: ed25519.Ed25519PrivateKey = field(default_factory=ed25519.Ed25519PrivateKey.generate)

    def by_alg(self, alg: str) -> tuple[str, PrivateKey]:
        table: dict[str, tuple[str, PrivateKey]] = {
            "RS256": ("rsa1", self.rsa), "ES256": ("ec1", self.ec), "EdDSA": ("ed1", self.ed)}
        return table[alg]

    def write_pems(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        for kid, key in (("rsa1", self.rsa), ("ec1", self.ec), ("ed1", self.ed)):
            (directory / f"{kid}.pem").write_bytes(pem(key))
        return directory

    def jwks(self) -> dict[str, Any]:
        return {"keys": [jwk(self.rsa, "rsa1", "RS256"), jwk(self.ec, "ec1", "ES256"),
                         jwk(self.ed, "ed1", "EdDSA")]}

    def token(self, alg: str = "RS256", *, kid: str | None = "", now: float | None = None,
              headers: dict[str, Any] | None = None, **overrides: Any) -> str:
        """A validly signed token; ``kid=""`` means the key's own kid, None means none."""
        if alg.startswith("HS"):
            return sign(HS_SECRET, alg, claims(now, **overrides), kid=kid or None,
                        headers=headers)
        own_kid, key = self.by_alg(alg)
        return sign(key, alg, claims(now, **overrides),
                    kid=own_kid if kid == "" else kid, headers=headers)


def sign(key: Any, alg: str, payload: dict[str, Any], *, kid: str | None = None,
         headers: dict[str, Any] | None = None) -> str:
    extra = dict(headers or {})
    if kid is not None:
        extra["kid"] = kid
    return jwt.encode(payload, key, algorithm=alg, headers=extra or None)


def self_signed_cert_b64(key: rsa.RSAPrivateKey) -> str:
    """A self-signed certificate for ``key``, as an ``x5c`` entry (standard base64 DER)."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
