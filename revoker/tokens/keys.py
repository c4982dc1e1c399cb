"""Key material: which keys may verify which algorithm, and the keys fixed at start.

A token never chooses where its key comes from: ``kid`` is only an exact lookup in keys
the operator configured (PEM files, an HMAC secret, a JWKS URL); ``jku``, ``x5u``,
``x5c`` and an embedded ``jwk`` are never read. A key is only ever used with an
algorithm of its own type, so no public key can be used as an HMAC secret.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Protocol

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

from revoker.errors import ConfigError

log = logging.getLogger(__name__)

_EC_CURVES: Final = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}
_CURVE_NAMES: Final = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey \
    | ed448.Ed448PublicKey
MIN_RSA_BITS: Final = 2048
PEM_SUFFIXES: Final = (".pem", ".pub", ".crt")


class KeySource(Protocol):
    """Where verification keys come from; ``kid`` is only an exact lookup."""

    def get(self, kid: str | None, alg: str) -> Any | None:
        """A key usable by PyJWT for ``alg``, or None (never blocks, never fetches)."""

    async def refetch(self) -> bool:
        """Read the keys again now, for a kid nobody knows yet; True when a new read
        finished (bounded and rate-limited by the source; False when nothing was read)."""


class KeyChain:
    """Several sources (JWKS and PEM files); the first that knows the kid answers."""

    def __init__(self, sources: Sequence[KeySource]) -> None:
        self.sources = tuple(sources)

    def get(self, kid: str | None, alg: str) -> Any | None:
        for source in self.sources:
            key = source.get(kid, alg)
            if key is not None:
                return key
        return None

    async def refetch(self) -> bool:
        results = await asyncio.gather(*(source.refetch() for source in self.sources))
        return any(results)


def key_fits(key: Any, alg: str) -> bool:
    """Whether ``key`` may verify ``alg``: the key's type decides, never the token."""
    if alg.startswith(("RS", "PS")):
        return isinstance(key, rsa.RSAPublicKey)
    if alg in _EC_CURVES:
        return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(
            key.curve, _EC_CURVES[alg])
    if alg == "EdDSA":
        return isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
    if alg.startswith("HS"):
        return isinstance(key, bytes)
    return False


def single_fitting(keys: Sequence[Any], alg: str) -> Any | None:
    """A token without ``kid`` is accepted only when exactly one key could verify it."""
    fitting = {id(k): k for k in keys if key_fits(k, alg)}
    return next(iter(fitting.values())) if len(fitting) == 1 else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(number: int, size: int | None = None) -> bytes:
    return number.to_bytes(size or max(1, (number.bit_length() + 7) // 8), "big")


def thumbprint(key: PublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256): the kid of a key that has no other name."""
    members: dict[str, str]
    if isinstance(key, rsa.RSAPublicKey):
        nums = key.public_numbers()
        members = {"e": _b64(_int_bytes(nums.e)), "kty": "RSA", "n": _b64(_int_bytes(nums.n))}
    elif isinstance(key, ec.EllipticCurvePublicKey):
        size = (key.curve.key_size + 7) // 8
        point = key.public_numbers()
        members = {"crv": _CURVE_NAMES.get(key.curve.name, key.curve.name), "kty": "EC",
                   "x": _b64(_int_bytes(point.x, size)), "y": _b64(_int_bytes(point.y, size))}
    else:
        raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        crv = "Ed25519" if isinstance(key, ed25519.Ed25519PublicKey) else "Ed448"
        members = {"crv": crv, "kty": "OKP", "x": _b64(raw)}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64(hashlib.sha256(canonical).digest())


def load_public_key(path: Path) -> PublicKey:
    """A PEM public key or certificate; a private key is refused (it does not belong on a
    verifier) and so are RSA keys under 2048 bits."""
    variable = "REVOKER_JWT_PUBLIC_KEYS"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(variable, f"cannot read {path}: {exc.strerror}") from exc
    if b"PRIVATE KEY" in data:
        raise ConfigError(variable, f"{path} holds a private key; give the public key")
    try:
        if b"BEGIN CERTIFICATE" in data:
            key: Any = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = load_pem_public_key(data)
    except ValueError as exc:
        raise ConfigError(variable, f"{path} is not a PEM public key or certificate") from exc
    if not isinstance(key, PublicKey):
        raise ConfigError(variable, f"{path}: only RSA, EC and Ed25519/Ed448 keys are supported")
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise ConfigError(variable, f"{path}: RSA keys need at least {MIN_RSA_BITS} bits")
    return key


def _pem_files(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir()
                                if p.is_file() and p.suffix in PEM_SUFFIXES))
        else:
            files.append(path)
    return files


class StaticKeys:
    """Keys fixed at start: an HMAC secret (HS*) and/or PEM public keys.

    A PEM key's kid is its file stem (``keys/2026-01.pem`` -> ``2026-01``) and also its
    RFC 7638 thumbprint. The HMAC secret has no kid: it is the only symmetric key.
    """

    def __init__(self, *, secret: str | None = None, public_keys: Sequence[str] = ()) -> None:
        self._secret = secret.encode("utf-8") if secret else None
        self._by_kid: dict[str, PublicKey] = {}
        for path in _pem_files(public_keys):
            key = load_public_key(path)
            if path.stem in self._by_kid:
                raise ConfigError("REVOKER_JWT_PUBLIC_KEYS", f"two keys named {path.stem!r}")
            self._by_kid[path.stem] = key
            self._by_kid.setdefault(thumbprint(key), key)
        self._all = list(self._by_kid.values())

    @property
    def kids(self) -> list[str]:
        return sorted(self._by_kid)

    def get(self, kid: str | None, alg: str) -> Any | None:
        if alg.startswith("HS"):
            return self._secret
        if kid is None:
            return single_fitting(self._all, alg)
        key = self._by_kid.get(kid)
        return key if key is not None and key_fits(key, alg) else None

    async def refetch(self) -> bool:
        """Files are read once at start: there is nothing newer to read."""
        return False


def parse_jwks(document: Any) -> dict[str, tuple[Any, str | None]]:
    """kid -> (key, the JWK's own ``alg`` or None). Symmetric (``oct``), encryption and
    unparsable keys are skipped: a JWKS may only ever add public signature keys."""
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise ValueError("a JWKS is an object with a 'keys' list")
    out: dict[str, tuple[Any, str | None]] = {}
    for jwk in keys:
        if not isinstance(jwk, dict) or jwk.get("kty") not in ("RSA", "EC", "OKP"):
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(jwk).key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            log.warning("skipping an unusable key in the JWKS (kid %r)", jwk.get("kid"))
            continue
        if not isinstance(key, PublicKey):
            continue  # a private JWK published by mistake is never used
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
            continue
        kid = jwk.get("kid")
        alg = jwk.get("alg")
        kid = kid if isinstance(kid, str) and kid else thumbprint(key)
        out[kid] = (key, alg if isinstance(alg, str) else None)
    return out
