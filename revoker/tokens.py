"""The only module that imports ``jwt``: reading and validating tokens.

Security rules that live here: tokens are size-checked before any decoding; the
algorithm allow-list never contains ``none``; a token's header never chooses where keys
come from (``jku``, ``x5u``, ``x5c`` and embedded ``jwk`` are ignored, ``kid`` is only an
exact lookup in keys the operator configured); HS* and asymmetric algorithms are never
allowed together, and a key is only ever used with an algorithm of its own type, so no
public key can be used as an HMAC secret. Key sources (PEM files, a JWKS URL) live here
too, because they hand PyJWT its keys; the module is longer than most for that reason.

Time checks (``exp``, ``nbf``, ``iat``, lifetime) are done here rather than by PyJWT so
that they use one injectable clock and give one precise reason each.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import aiohttp
import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)
from jwt.types import Options

from revoker import metrics
from revoker.errors import ConfigError, TokenError
from revoker.model import Claims, claims_from_token, is_valid_value

if TYPE_CHECKING:
    from revoker.config import Settings


log = logging.getLogger(__name__)

MAX_TOKEN_BYTES: Final = 16 * 1024
ALWAYS_REQUIRED: Final = ("exp", "jti")
#: Claims that become revocation lookups: a present but unusable value could never match
#: a revocation, so such a token is refused instead of silently unrevocable.
LOOKUP_CLAIMS: Final = ("jti", "sub", "sid", "client_id", "azp")
#: Every reason ``validate`` can give (plus "missing claim: <configured name>").
REASONS: Final = frozenset({
    "missing token", "malformed token", "token too large", "algorithm not allowed",
    "unknown key", "bad signature", "expired", "not yet valid", "issued in the future",
    "wrong issuer", "wrong audience", "lifetime too long", "revoked"})
_SIGNATURE_ONLY: Final[Options] = {
    "verify_signature": True, "verify_exp": False, "verify_nbf": False, "verify_iat": False,
    "verify_aud": False, "verify_iss": False, "verify_sub": False, "verify_jti": False,
    "require": [],
}


def check_size(token: str) -> None:
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenError("token too large", code="too_large")


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a token *without* validating it.

    Used only where the caller is already trusted with the ``revoke`` or ``check`` scope
    and merely names a token (``POST /v1/check``, ``POST /v1/revocations``).
    """
    check_size(token)
    try:
        header = jwt.get_unverified_header(token)
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise TokenError("malformed token") from None
    if not isinstance(payload, dict):
        raise TokenError("malformed token")
    return header, payload


@dataclass(frozen=True, slots=True)
class Verified:
    """A token whose signature and claims passed every check (revocation not included)."""

    header: dict[str, Any]
    payload: dict[str, Any]
    claims: Claims


class KeySource(Protocol):
    """Where verification keys come from; ``kid`` is only an exact lookup."""

    def get(self, kid: str | None, alg: str) -> Any | None:
        """A key usable by PyJWT for ``alg``, or None (never blocks, never fetches)."""


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


# -- keys -------------------------------------------------------------------------------

_EC_CURVES: Final = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}
_CURVE_NAMES: Final = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey \
    | ed448.Ed448PublicKey
MIN_RSA_BITS: Final = 2048
MAX_JWKS_BYTES: Final = 1024 * 1024
PEM_SUFFIXES: Final = (".pem", ".pub", ".crt")


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


def _single_fitting(keys: Sequence[Any], alg: str) -> Any | None:
    """A token without ``kid`` is accepted only when exactly one key could verify it."""
    fitting = {id(k): k for k in keys if key_fits(k, alg)}
    return next(iter(fitting.values())) if len(fitting) == 1 else None


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
            return _single_fitting(self._all, alg)
        key = self._by_kid.get(kid)
        return key if key is not None and key_fits(key, alg) else None


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


class JwksKeys:
    """One JWKS URL, fetched in the background and served from memory.

    ``get`` never blocks: an unknown kid answers None at once and wakes the refresher, at
    most once per ``min_refetch_s``. A failed fetch keeps the last good key set, so an
    identity provider outage does not stop validation.
    """

    def __init__(self, url: str, *, refresh_s: float, clock: Callable[[], float] = time.monotonic,
                 min_refetch_s: float | None = None, timeout_s: float = 5.0) -> None:
        self.url = url
        self.refresh_s = refresh_s
        self.min_refetch_s = min(refresh_s, 30.0) if min_refetch_s is None else min_refetch_s
        self.timeout_s = timeout_s
        self.clock = clock
        self.fetches = 0
        self._keys: dict[str, tuple[Any, str | None]] = {}
        self._listeners: list[Callable[[], None]] = []
        self._last_attempt = -math.inf
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def kids(self) -> list[str]:
        return sorted(self._keys)

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def get(self, kid: str | None, alg: str) -> Any | None:
        if kid is None:
            return _single_fitting([k for k, a in self._keys.values() if a in (None, alg)], alg)
        entry = self._keys.get(kid)
        if entry is None:
            self._want_refetch()
            return None
        key, jwk_alg = entry
        if jwk_alg is not None and jwk_alg != alg:
            return None
        return key if key_fits(key, alg) else None

    def _want_refetch(self) -> None:
        if self._wake is not None and self.clock() - self._last_attempt >= self.min_refetch_s:
            self._wake.set()

    async def start(self) -> None:
        """First fetch, bounded by the timeout; a failure is logged, not fatal."""
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        self._wake = asyncio.Event()
        await self.refresh()
        self._task = asyncio.create_task(self._run(), name="jwks-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        assert self._wake is not None
        ok = True
        while True:
            delay = self.refresh_s if ok else min(self.refresh_s, self.min_refetch_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()
            ok = await self.refresh()

    async def refresh(self) -> bool:
        """Fetch once; True when a key set was read (changed or not)."""
        self._last_attempt = self.clock()
        self.fetches += 1
        try:
            keys = parse_jwks(await self._fetch())
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("JWKS fetch from %s failed (%s); keeping %d cached keys",
                        self.url, exc or type(exc).__name__, len(self._keys))
            return False
        if _fingerprint(keys) != _fingerprint(self._keys):
            log.info("JWKS from %s: %d keys (%s)", self.url, len(keys), ", ".join(sorted(keys)))
            self._keys = keys
            for listener in self._listeners:
                listener()
        return True

    async def _fetch(self) -> Any:
        if self._session is None:
            raise ValueError("not started")
        async with self._session.get(self.url, allow_redirects=False) as resp:
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status}")
            raw = await resp.content.read(MAX_JWKS_BYTES + 1)
        if len(raw) > MAX_JWKS_BYTES:
            raise ValueError("the JWKS is larger than 1 MiB")
        return json.loads(raw)


def _fingerprint(keys: dict[str, tuple[Any, str | None]]) -> set[tuple[str, str, str | None]]:
    return {(kid, thumbprint(key), alg) for kid, (key, alg) in keys.items()}


# -- validation -------------------------------------------------------------------------

def _number(payload: dict[str, Any], name: str) -> float | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError("malformed token")
    try:
        number = float(value)  # a huge JSON integer overflows here
    except OverflowError:
        raise TokenError("malformed token") from None
    if not math.isfinite(number):
        raise TokenError("malformed token")
    return number


def _digest(token: str) -> bytes:
    return hashlib.blake2b(token.encode("utf-8", "surrogatepass"), digest_size=20).digest()


class _ParseOnce(jwt.PyJWS):
    """A PyJWS that parses a token once for header peek + decode (a cache miss costs one
    parse, ~30 us, less). Only the token being verified is held, and only during
    ``_verify``: ``forget`` drops it, so no raw token outlives the call."""

    _held: tuple[Any, Any] | None = None

    def _load(self, token: str | bytes) -> Any:
        held = self._held
        if held is not None and held[0] is token:
            return held[1]
        loaded = super()._load(token)
        self._held = (token, loaded)
        return loaded

    def forget(self) -> None:
        self._held = None


class TokenValidator:
    """Validate JWTs against configured keys; remembers verified tokens until their exp.

    The cache holds only the outcome of signature and claim validation (never revocation
    state), keyed by a digest of the token, bounded to ``cache_size`` entries, and an
    entry is never used at or after ``exp + leeway``. Key-set changes (JWKS rotation)
    empty it, so a removed key stops being accepted at the next refresh.
    """

    def __init__(self, keys: KeySource, *, algorithms: Sequence[str], issuer: str | None,
                 audience: Sequence[str], leeway_s: int, max_lifetime_s: int,
                 required_claims: Sequence[str] = ALWAYS_REQUIRED, cache_size: int = 10000,
                 clock: Callable[[], float] = time.time) -> None:
        if not algorithms or any(a.lower() == "none" for a in algorithms):
            raise ValueError("the algorithm allow-list must be non-empty and without 'none'")
        self.keys = keys
        self.algorithms = frozenset(algorithms)
        self.issuer = issuer
        self.audience = frozenset(audience)
        self.leeway_s = leeway_s
        self.max_lifetime_s = max_lifetime_s
        self.required = tuple(dict.fromkeys((*ALWAYS_REQUIRED, *required_claims)))
        self.cache_size = cache_size
        self.clock = clock
        self._cache: dict[bytes, tuple[float, Verified]] = {}
        self._jwt = jwt.PyJWT()
        self._jws = _ParseOnce(options=self._jwt._jws.options)
        self._jwt._jws = self._jws  # as PyJWT does for its own module-level object
        for source in getattr(keys, "sources", (keys,)):
            listen = getattr(source, "on_change", None)
            if listen is not None:
                listen(self.clear_cache)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenValidator:
        sources: list[KeySource] = []
        if settings.jwks_url:
            sources.append(JwksKeys(settings.jwks_url, refresh_s=settings.jwks_refresh_s))
        if settings.jwt_public_keys or settings.jwt_secret:
            sources.append(StaticKeys(secret=settings.jwt_secret,
                                      public_keys=settings.jwt_public_keys))
        keys: KeySource = sources[0] if len(sources) == 1 else KeyChain(sources)
        return cls(keys, algorithms=settings.jwt_algorithms, issuer=settings.jwt_issuer,
                   audience=settings.jwt_audience, leeway_s=settings.leeway_s,
                   max_lifetime_s=settings.max_token_lifetime_s,
                   required_claims=settings.jwt_required_claims,
                   cache_size=settings.token_cache_size)

    async def start(self) -> None:
        """Start JWKS refreshers. Warn here, not at construction, so that a configuration
        error found later at start stays the one line the operator sees."""
        if isinstance(self.keys, KeyChain) and not self.keys.sources:
            log.warning("no JWT keys configured (REVOKER_JWKS_URL, REVOKER_JWT_PUBLIC_KEYS, "
                        "REVOKER_JWT_SECRET): every token will be refused")
        for source in getattr(self.keys, "sources", (self.keys,)):
            if isinstance(source, JwksKeys):
                await source.start()

    async def stop(self) -> None:
        for source in getattr(self.keys, "sources", (self.keys,)):
            if isinstance(source, JwksKeys):
                await source.stop()

    def clear_cache(self) -> None:
        self._cache.clear()

    @property
    def cache_len(self) -> int:
        return len(self._cache)

    def validate(self, token: str) -> Verified:
        """The verified token, or ``TokenError(reason)`` (counted by reason)."""
        try:
            return self._validate(token)
        except TokenError as exc:
            metrics.TOKEN_REJECTIONS.labels(reason=exc.reason).inc()
            raise

    def _validate(self, token: str) -> Verified:
        if not token:
            raise TokenError("missing token")
        check_size(token)
        digest = _digest(token)
        hit = self._cache.get(digest)
        if hit is not None:
            if self.clock() < hit[0]:
                return hit[1]
            del self._cache[digest]
        verified = self._verify(token)
        self._remember(digest, verified)
        return verified

    def _remember(self, digest: bytes, verified: Verified) -> None:
        if self.cache_size <= 0:
            return
        while len(self._cache) >= self.cache_size:
            del self._cache[next(iter(self._cache))]  # oldest first: insertion order
        self._cache[digest] = (float(verified.payload["exp"]) + self.leeway_s, verified)

    def verify_signature(self, token: str) -> Verified:
        """Algorithm, key and signature only: for formats with their own claim rules
        (logout tokens and Security Event Tokens need no ``exp``). Never cached."""
        check_size(token)
        return self._verify(token, check_claims=False)

    def _verify(self, token: str, *, check_claims: bool = True) -> Verified:
        try:
            return self._verify_parsed(token, check_claims=check_claims)
        finally:
            self._jws.forget()

    def _verify_parsed(self, token: str, *, check_claims: bool) -> Verified:
        try:
            header = self._jws.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise TokenError("algorithm not allowed")
        kid = header.get("kid")
        if kid is not None and not (isinstance(kid, str) and is_valid_value(kid)):
            raise TokenError("unknown key")
        key = self.keys.get(kid, alg)
        if key is None:
            raise TokenError("unknown key")
        payload = self._decode(token, key, alg)
        if check_claims:
            self._check_claims(payload)
        return Verified(header=header, payload=payload,
                        claims=claims_from_token(payload, header))

    def _decode(self, token: str, key: Any, alg: str) -> dict[str, Any]:
        try:
            payload = self._jwt.decode(token, key, algorithms=[alg], options=_SIGNATURE_ONLY)
        except jwt.InvalidSignatureError:
            raise TokenError("bad signature") from None
        except (jwt.InvalidAlgorithmError, jwt.InvalidKeyError):
            raise TokenError("unknown key") from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise TokenError("malformed token") from None
        if not isinstance(payload, dict):
            raise TokenError("malformed token")
        return payload

    def _check_claims(self, payload: dict[str, Any]) -> None:
        for name in self.required:
            if name not in payload:
                raise TokenError(f"missing claim: {name}")
        for name in LOOKUP_CLAIMS:
            value = payload.get(name)
            if value is not None and not (isinstance(value, str) and is_valid_value(value)):
                raise TokenError("malformed token")
        self._check_times(payload)
        if self.issuer is not None and payload.get("iss") != self.issuer:
            raise TokenError("wrong issuer")
        if self.audience and not self._audience_ok(payload.get("aud")):
            raise TokenError("wrong audience")

    def _check_times(self, payload: dict[str, Any]) -> None:
        now, leeway = self.clock(), self.leeway_s
        exp = _number(payload, "exp")
        nbf = _number(payload, "nbf")
        iat = _number(payload, "iat")
        if exp is None:
            raise TokenError("missing claim: exp")
        if exp <= now - leeway:
            raise TokenError("expired")
        if nbf is not None and nbf > now + leeway:
            raise TokenError("not yet valid")
        if iat is not None and iat > now + leeway:
            raise TokenError("issued in the future")
        # A token living longer than the max lifetime could outlive its revocation
        # record (records are kept max lifetime + leeway); without iat, bound what is left.
        start = iat if iat is not None else now
        slack = 0 if iat is not None else leeway
        if exp - start > self.max_lifetime_s + slack:
            raise TokenError("lifetime too long")

    def _audience_ok(self, aud: Any) -> bool:
        if isinstance(aud, str):
            return aud in self.audience
        if isinstance(aud, list):
            return any(isinstance(a, str) and a in self.audience for a in aud)
        return False
