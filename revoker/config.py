"""Settings: one frozen dataclass, read from the environment and an optional TOML file.

All validation happens here, at start, so that a bad value stops the process with one
line naming the variable instead of failing on the first request that needs it.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from revoker.errors import ConfigError

PREFIX: Final = "REVOKER_"
SCOPES: Final = ("check", "revoke", "admin")
SCOPE_IMPLIES: Final = {"admin": {"admin", "revoke", "check"}, "revoke": {"revoke", "check"},
                        "check": {"check"}}
STORE_SCHEMES: Final = ("memory", "redis", "rediss", "redis+sentinel", "redis+cluster",
                        "rediss+sentinel", "rediss+cluster")
ASYMMETRIC_ALGS: Final = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                    "ES256", "ES384", "ES512", "EdDSA"})
SYMMETRIC_ALGS: Final = frozenset({"HS256", "HS384", "HS512"})
#: Variables read by the admin commands (``revoker revoke``, ``check``...), not by the
#: service: known, so that one environment can hold both, but not settings.
CLIENT_VARIABLES: Final = frozenset({PREFIX + "URL", PREFIX + "API_KEY"})
#: Kubernetes gives every pod variables for each Service of its namespace (unless the pod
#: sets ``enableServiceLinks: false``); a Service named ``revoker`` yields these names.
#: They are not settings, and refusing them would stop the service in a plain deployment.
SERVICE_LINK_RE: Final = re.compile(
    r"^REVOKER_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)$")
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
#: ``REVOKER_ACCESS_LOG``: which answered requests get an access line (revoker.web.middlewares
#: applies it). ``skip-hot-2xx`` leaves out the 2xx answers of the routes a gateway calls on
#: every request it lets through: at two workers a text access line costs about as much CPU
#: as answering the check itself (docs/performance.md, "Gateway cost").
ACCESS_LOG_ALL: Final = "all"
ACCESS_LOG_SKIP_HOT_2XX: Final = "skip-hot-2xx"
ACCESS_LOG_OFF: Final = "off"
ACCESS_LOG_SETTINGS: Final = (ACCESS_LOG_ALL, ACCESS_LOG_SKIP_HOT_2XX, ACCESS_LOG_OFF)
KEY_NAME_RULE: Final = "1-64 letters, digits, . _ @ -"
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_HEX64_RE: Final = re.compile(r"^[0-9a-f]{64}$")
_HEADER_RE: Final = re.compile(r"^[A-Za-z0-9-]{1,64}$")
#: What a Shared Signals event may do (``REVOKER_SSF_EVENT_ACTIONS``): revoke the session
#: it names (``sid``; ``sub`` for a user-only subject), the user (``sub``), the client
#: (``client``), the signing key (``kid``), or nothing.
SSF_ACTIONS: Final = ("session", "subject", "client", "key", "ignore")
_LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A configured API key: only its SHA-256 digest is ever held."""

    name: str
    scopes: frozenset[str]
    digest: bytes


@dataclass(frozen=True, slots=True)
class OAuthClient:
    client_id: str
    digest: bytes


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the service; see the README's configuration table."""

    store_url: str = "memory://"
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    key_prefix: str = "revoker:"
    max_token_lifetime_s: int = 86400
    leeway_s: int = 30
    api_keys: tuple[ApiKey, ...] = ()
    check_auth: str = "key"
    jwt_algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    jwks_url: str | None = None
    jwt_public_keys: tuple[str, ...] = ()
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_issuer: str | None = None
    jwt_audience: tuple[str, ...] = ()
    jwt_required_claims: tuple[str, ...] = ("exp", "jti")
    jwks_refresh_s: float = 300.0
    token_cache_size: int = 10000
    authz_claim_headers: tuple[tuple[str, str], ...] = ()
    fail_mode: str = "closed"
    store_timeout_s: float = 0.25
    redis_wait_replicas: int = 0
    redis_wait_timeout_s: float = 1.0
    allow_eviction: bool = False
    check_mode: str = "strict"
    #: Where the mirror's keeper saves its table, so that a restart resumes from it
    #: (``revoker.store.checkpoint``); None: no checkpoint.
    mirror_checkpoint: str | None = None
    mirror_checkpoint_s: float = 300.0
    #: Not read from the environment: set by the supervisor of a multi-worker ``revoker
    #: serve`` to the control segment of the host's mirror (``revoker.store.shared``).
    mirror_control: str | None = None
    oauth_clients: tuple[OAuthClient, ...] = ()
    oidc_issuers: tuple[tuple[str, str], ...] = ()
    oidc_audience: tuple[str, ...] = ()
    oidc_max_age_s: int = 300
    log_format: str = "text"
    log_level: str = "INFO"
    access_log: str = ACCESS_LOG_SKIP_HOT_2XX
    events_maxlen: int = 1_000_000
    max_body_bytes: int = 1024 * 1024
    shutdown_timeout_s: float = 10.0
    header_timeout_s: float = 10.0
    body_timeout_s: float = 20.0
    keepalive_timeout_s: float = 15.0
    max_streams: int = 256
    redis_pool_size: int = 64
    jwks_refetch_wait_s: float = 2.0
    jwks_min_refetch_s: float = 5.0
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    public_url: str | None = None
    gtr_clients: tuple[str, ...] = ()
    ssf_event_actions: tuple[tuple[str, str], ...] = ()
    ssf_poll_url: str | None = None
    ssf_poll_token: str | None = field(default=None, repr=False)
    ssf_poll_max_events: int = 100
    ssf_poll_timeout_s: float = 60.0
    ssf_transmitter: str | None = None
    ssf_transmitter_token: str | None = field(default=None, repr=False)
    ssf_delivery: str = "push"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *,
                 config_file: str | None = None) -> Settings:
        """Environment wins over the TOML file.

        An unknown ``REVOKER_*`` variable or TOML key is an error, not ignored: a typo
        such as ``REVOKER_STOREURL`` would otherwise start the service on its defaults
        (here: a memory store that loses every revocation on restart).
        """
        env = dict(os.environ if environ is None else environ)
        ours = {k: v for k, v in env.items()
                if k.startswith(PREFIX) and not SERVICE_LINK_RE.match(k)}
        for name in sorted(ours):
            if name not in _PARSERS and name not in CLIENT_VARIABLES:
                raise ConfigError(name, "unknown variable" + _suggest(name, PREFIX) +
                                  " (revoker reads no such setting: fix or unset it)")
        merged = _read_toml(config_file) if config_file else {}
        merged.update({k: v for k, v in ours.items() if k not in CLIENT_VARIABLES})
        return _parse(merged)


def valid_key_name(name: str) -> bool:
    """What ``REVOKER_API_KEYS`` accepts as a key's name (also the records' ``actor``)."""
    return bool(_NAME_RE.match(name))


def _suggest(name: str, prefix: str) -> str:
    """``; did you mean X?`` for the closest known setting. Names are compared without
    ``prefix`` (``REVOKER_`` for variables, nothing for TOML keys), so that the prefix
    every variable shares does not make them all look alike."""
    known = {v.removeprefix(PREFIX).lower(): v for v in _PARSERS}
    close = difflib.get_close_matches(name.removeprefix(prefix).lower(), known, n=1,
                                      cutoff=0.6)
    if not close:
        return ""
    return f"; did you mean {known[close[0]] if prefix else close[0]}?"


def _read_toml(path: str) -> dict[str, str]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from exc
    out: dict[str, str] = {}
    for key, value in data.items():
        name = PREFIX + key.upper()
        if name not in _PARSERS:
            raise ConfigError("--config", f"unknown setting {key!r} in {path}"
                              + _suggest(key, ""))
        out[name] = _toml_to_str(value)
    return out


def _toml_to_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_toml_to_str(v) for v in value)
    return str(value)


def _parse(raw: Mapping[str, str]) -> Settings:
    values: dict[str, Any] = {}
    for variable, (attr, parser) in _PARSERS.items():
        text = raw.get(variable)
        if attr == "api_keys_file":
            continue  # read below, after REVOKER_API_KEYS
        if text is None or text.strip() == "":
            continue
        try:
            values[attr] = parser(text.strip())
        except ConfigError:
            raise
        except (ValueError, OSError) as exc:
            raise ConfigError(variable, str(exc)) from exc
    keys_file = raw.get(PREFIX + "API_KEYS_FILE")
    if keys_file and keys_file.strip():
        values["api_keys"] = values.get("api_keys", ()) + _keys_from_file(keys_file.strip())
    settings = Settings(**values)
    _cross_check(settings)
    return settings


def _keys_from_file(path: str) -> tuple[ApiKey, ...]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(PREFIX + "API_KEYS_FILE", f"cannot read {path}: {exc.strerror}") from exc
    lines = [ln.strip() for ln in text.splitlines()]
    entries = ",".join(ln for ln in lines if ln and not ln.startswith("#"))
    try:
        return _api_keys(entries) if entries else ()
    except ValueError as exc:
        raise ConfigError(PREFIX + "API_KEYS_FILE", str(exc)) from exc


def _cross_check(s: Settings) -> None:
    algs = set(s.jwt_algorithms)
    if algs & SYMMETRIC_ALGS and algs & ASYMMETRIC_ALGS:
        raise ConfigError(PREFIX + "JWT_ALGORITHMS",
                          "HS* and asymmetric algorithms may not be allowed together")
    if algs & SYMMETRIC_ALGS and not s.jwt_secret:
        raise ConfigError(PREFIX + "JWT_SECRET", "required when HS* algorithms are allowed")
    if s.jwt_secret and len(s.jwt_secret.encode()) < 32:
        raise ConfigError(PREFIX + "JWT_SECRET",
                          "must be at least 32 bytes (RFC 7518 3.2: no shorter than the hash)")
    if s.jwt_secret and not algs & SYMMETRIC_ALGS:
        raise ConfigError(PREFIX + "JWT_ALGORITHMS",
                          "REVOKER_JWT_SECRET is set but no HS* algorithm is allowed")
    if bool(s.tls_cert) != bool(s.tls_key):
        raise ConfigError(PREFIX + "TLS_KEY", "REVOKER_TLS_CERT and REVOKER_TLS_KEY go together")
    if s.tls_client_ca and not s.tls_cert:
        raise ConfigError(PREFIX + "TLS_CLIENT_CA", "needs REVOKER_TLS_CERT and REVOKER_TLS_KEY")
    if s.oidc_issuers and not s.oidc_audience:
        raise ConfigError(PREFIX + "OIDC_AUDIENCE", "required when REVOKER_OIDC_ISSUERS is set")
    if s.workers > 1 and s.store_url.startswith("memory"):
        raise ConfigError(PREFIX + "WORKERS", "memory:// is single-process; use a Redis store")
    if s.check_mode == "mirror" and s.store_url.startswith("memory"):
        raise ConfigError(PREFIX + "CHECK_MODE", "mirror needs a Redis store")
    if s.mirror_checkpoint and s.check_mode != "mirror":
        raise ConfigError(PREFIX + "MIRROR_CHECKPOINT", "needs REVOKER_CHECK_MODE=mirror")
    clients = {c.client_id for c in s.oauth_clients}
    for client_id in s.gtr_clients:
        if client_id not in clients:
            raise ConfigError(PREFIX + "GTR_CLIENTS",
                              f"{client_id!r} is not a client of REVOKER_OAUTH_CLIENTS")
    if s.ssf_poll_url and not s.oidc_issuers:
        raise ConfigError(PREFIX + "SSF_POLL_URL", "needs REVOKER_OIDC_ISSUERS: the "
                          "transmitter's SETs are verified with its keys")
    _check_transmitter(s)


def _check_transmitter(s: Settings) -> None:
    """Stream management needs what the stream itself will need: a URL the transmitter
    can push to, and trust in the transmitter's signature (else every SET it sends on
    the stream would be refused, and the stream would look healthy while doing nothing)."""
    if not s.ssf_transmitter:
        if s.ssf_transmitter_token:
            raise ConfigError(PREFIX + "SSF_TRANSMITTER_TOKEN", "needs REVOKER_SSF_TRANSMITTER")
        return
    trusted = {issuer.rstrip("/") for issuer, _ in s.oidc_issuers}
    if s.ssf_transmitter not in trusted:
        raise ConfigError(PREFIX + "SSF_TRANSMITTER", f"{s.ssf_transmitter} must be one of "
                          "the issuers of REVOKER_OIDC_ISSUERS, so that its SETs are trusted")
    if s.ssf_delivery == "push" and not s.public_url:
        raise ConfigError(PREFIX + "PUBLIC_URL", "required for REVOKER_SSF_DELIVERY=push: "
                          "the stream's endpoint_url is REVOKER_PUBLIC_URL + /ssf/events")


# -- value parsers: each raises ValueError with a message fit for the operator ------------

def _int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}, got {number}")
        return number
    return parse


def _port(text: str) -> int:
    if text.startswith("tcp://"):  # what Kubernetes sets for a Service named revoker
        raise ValueError(f"expected a port number, got {text!r}: Kubernetes sets this for a "
                         "Service named revoker; set REVOKER_PORT in the pod spec, or "
                         "enableServiceLinks: false")
    return _int_range(0, 65535)(text)


def _float_range(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"expected a number of seconds, got {text!r}") from None
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}, got {number}")
        return number
    return parse


def _choice(*options: str) -> Callable[[str], str]:
    """Case-insensitive (``OPEN`` is ``open``); the canonical spelling is kept."""
    canonical = {option.lower(): option for option in options}

    def parse(text: str) -> str:
        found = canonical.get(text.lower())
        if found is None:
            raise ValueError(f"must be one of {', '.join(options)}, got {text!r}")
        return found
    return parse


def _log_level(text: str) -> str:
    upper = text.upper()
    return _choice(*LOG_LEVELS)("WARNING" if upper == "WARN" else upper)


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _access_log(text: str) -> str:
    """``all``, ``skip-hot-2xx`` or ``off``; the boolean spellings it had before
    (``true``/``false``, ``1``/``0``, ``yes``/``no``, ``on``/``off``) keep their meaning:
    every request, or none."""
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return ACCESS_LOG_ALL
    if lowered in ("0", "false", "no"):
        return ACCESS_LOG_OFF
    try:
        return _choice(*ACCESS_LOG_SETTINGS)(lowered)
    except ValueError:
        raise ValueError(f"must be one of {', '.join(ACCESS_LOG_SETTINGS)} (or true, "
                         f"false), got {text!r}") from None


def _text(text: str) -> str:
    return text


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _store_url(text: str) -> str:
    scheme, sep, _ = text.partition("://")
    if not sep or scheme not in STORE_SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(s + '://' for s in STORE_SCHEMES)}")
    return text


def _prefix(text: str) -> str:
    if len(text) > 64 or any(ord(c) < 0x21 for c in text):
        raise ValueError("must be at most 64 printable characters without spaces")
    return text


def _algorithms(text: str) -> tuple[str, ...]:
    algs = _csv(text)
    if not algs:
        raise ValueError("at least one algorithm is required")
    known = {alg.lower(): alg for alg in ASYMMETRIC_ALGS | SYMMETRIC_ALGS}
    out = []
    for alg in algs:
        if alg.lower() == "none":
            raise ValueError("'none' is never accepted")
        if alg.lower() not in known:
            names = ", ".join(sorted(known.values()))
            raise ValueError(f"unknown algorithm {alg!r}; known: {names}")
        out.append(known[alg.lower()])  # hs256 -> HS256: PyJWT matches names exactly
    return tuple(out)


def _api_keys(text: str) -> tuple[ApiKey, ...]:
    keys = []
    for entry in _csv(text):
        parts = entry.split(":")
        if len(parts) != 3:
            raise ValueError("each key is name:scope+scope:sha256hex")
        name, scopes_text, digest = parts
        if not _NAME_RE.match(name):
            raise ValueError(f"bad key name {name!r} ({KEY_NAME_RULE})")
        scopes = frozenset(scopes_text.split("+"))
        if not scopes or not scopes <= set(SCOPES):
            raise ValueError(f"key {name!r}: scopes must be among {', '.join(SCOPES)}")
        if not _HEX64_RE.match(digest.lower()):
            raise ValueError(f"key {name!r}: digest must be 64 hex characters (SHA-256)")
        keys.append(ApiKey(name, scopes, bytes.fromhex(digest)))
    if len({k.name for k in keys}) != len(keys):
        raise ValueError("key names must be unique")
    return tuple(keys)


def _oauth_clients(text: str) -> tuple[OAuthClient, ...]:
    clients = []
    for entry in _csv(text):
        client_id, sep, digest = entry.rpartition(":")
        if not sep or not client_id or not _HEX64_RE.match(digest.lower()):
            raise ValueError("each client is client_id:sha256hex")
        clients.append(OAuthClient(client_id, bytes.fromhex(digest)))
    return tuple(clients)


def _pairs(sep: str, what: str) -> Callable[[str], tuple[tuple[str, str], ...]]:
    def parse(text: str) -> tuple[tuple[str, str], ...]:
        out = []
        for entry in _csv(text):
            left, found, right = entry.partition(sep)
            if not found or not left.strip() or not right.strip():
                raise ValueError(f"each entry is {what}")
            out.append((left.strip(), right.strip()))
        return tuple(out)
    return parse


def _claim_headers(text: str) -> tuple[tuple[str, str], ...]:
    pairs = _pairs("=", "claim=Header-Name")(text)
    for _, header in pairs:
        if not _HEADER_RE.match(header):
            raise ValueError(f"bad header name {header!r}")
    return pairs


def _existing_file(text: str) -> str:
    if not Path(text).is_file():
        raise ValueError(f"no such file: {text}")
    return text


def _file_to_write(text: str) -> str:
    """A file revoker writes: its directory must exist; the file itself need not."""
    if not Path(text).parent.is_dir() or Path(text).is_dir():
        raise ValueError(f"not a file in an existing directory: {text}")
    return text


def _paths(text: str) -> tuple[str, ...]:
    paths = _csv(text)
    for path in paths:
        if not Path(path).exists():
            raise ValueError(f"no such file or directory: {path}")
    return paths


def _https_url(text: str) -> str:
    """An absolute https URL without query or fragment (RFC 8414 issuer rules); plain
    http only to a loopback host, where nothing crosses a network."""
    parts = urlsplit(text)
    loopback = parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS
    if parts.scheme != "https" and not loopback:
        raise ValueError(f"must be an https:// URL (http:// only to localhost), got {text!r}")
    if not parts.netloc or parts.query or parts.fragment or "#" in text:
        raise ValueError(f"must be an absolute URL without query or fragment, got {text!r}")
    return text.rstrip("/")


def _event_actions(text: str) -> tuple[tuple[str, str], ...]:
    """``event-type-uri=action``, comma separated; the action is after the last ``=``."""
    out: dict[str, str] = {}
    for entry in _csv(text):
        uri, sep, action = entry.rpartition("=")
        uri, action = uri.strip(), action.strip().lower()
        if not sep or not uri:
            raise ValueError("each entry is event-type-uri=action")
        if not uri.startswith(("https://", "http://", "urn:")) or any(c.isspace() for c in uri):
            raise ValueError(f"{uri!r} is not an event type URI")
        if action not in SSF_ACTIONS:
            raise ValueError(f"unknown action {action!r} for {uri}; "
                             f"actions: {', '.join(SSF_ACTIONS)}")
        if uri in out:
            raise ValueError(f"{uri} is listed twice")
        out[uri] = action
    return tuple(out.items())


_PARSERS: Final[dict[str, tuple[str, Callable[[str], Any]]]] = {
    PREFIX + "STORE_URL": ("store_url", _store_url),
    PREFIX + "HOST": ("host", _text),
    PREFIX + "PORT": ("port", _port),
    PREFIX + "WORKERS": ("workers", _int_range(1, 64)),
    PREFIX + "KEY_PREFIX": ("key_prefix", _prefix),
    PREFIX + "MAX_TOKEN_LIFETIME": ("max_token_lifetime_s", _int_range(1, 366 * 86400)),
    PREFIX + "LEEWAY": ("leeway_s", _int_range(0, 3600)),
    PREFIX + "API_KEYS": ("api_keys", _api_keys),
    PREFIX + "API_KEYS_FILE": ("api_keys_file", _existing_file),
    PREFIX + "CHECK_AUTH": ("check_auth", _choice("key", "none")),
    PREFIX + "JWT_ALGORITHMS": ("jwt_algorithms", _algorithms),
    PREFIX + "JWKS_URL": ("jwks_url", _text),
    PREFIX + "JWT_PUBLIC_KEYS": ("jwt_public_keys", _paths),
    PREFIX + "JWT_SECRET": ("jwt_secret", _text),
    PREFIX + "JWT_ISSUER": ("jwt_issuer", _text),
    PREFIX + "JWT_AUDIENCE": ("jwt_audience", _csv),
    PREFIX + "JWT_REQUIRED_CLAIMS": ("jwt_required_claims", _csv),
    PREFIX + "JWKS_REFRESH_INTERVAL": ("jwks_refresh_s", _float_range(1, 86400)),
    PREFIX + "TOKEN_CACHE_SIZE": ("token_cache_size", _int_range(0, 10_000_000)),
    PREFIX + "AUTHZ_CLAIM_HEADERS": ("authz_claim_headers", _claim_headers),
    PREFIX + "FAIL_MODE": ("fail_mode", _choice("closed", "open")),
    PREFIX + "STORE_TIMEOUT": ("store_timeout_s", _float_range(0.001, 60)),
    PREFIX + "REDIS_WAIT_REPLICAS": ("redis_wait_replicas", _int_range(0, 16)),
    PREFIX + "REDIS_WAIT_TIMEOUT": ("redis_wait_timeout_s", _float_range(0.001, 60)),
    PREFIX + "ALLOW_EVICTION": ("allow_eviction", _bool),
    PREFIX + "CHECK_MODE": ("check_mode", _choice("strict", "mirror")),
    PREFIX + "MIRROR_CHECKPOINT": ("mirror_checkpoint", _file_to_write),
    PREFIX + "MIRROR_CHECKPOINT_INTERVAL": ("mirror_checkpoint_s", _float_range(10, 86400)),
    PREFIX + "OAUTH_CLIENTS": ("oauth_clients", _oauth_clients),
    PREFIX + "OIDC_ISSUERS": ("oidc_issuers", _pairs("=", "issuer-url=jwks-url")),
    PREFIX + "OIDC_AUDIENCE": ("oidc_audience", _csv),
    PREFIX + "OIDC_MAX_AGE": ("oidc_max_age_s", _int_range(1, 86400)),
    PREFIX + "LOG_FORMAT": ("log_format", _choice("text", "json")),
    PREFIX + "LOG_LEVEL": ("log_level", _log_level),
    PREFIX + "ACCESS_LOG": ("access_log", _access_log),
    PREFIX + "EVENTS_MAXLEN": ("events_maxlen", _int_range(1, 1_000_000_000)),
    PREFIX + "MAX_BODY_BYTES": ("max_body_bytes", _int_range(1024, 64 * 1024 * 1024)),
    PREFIX + "SHUTDOWN_TIMEOUT": ("shutdown_timeout_s", _float_range(0, 600)),
    PREFIX + "HEADER_TIMEOUT": ("header_timeout_s", _float_range(0.1, 600)),
    PREFIX + "BODY_TIMEOUT": ("body_timeout_s", _float_range(0.1, 600)),
    PREFIX + "KEEPALIVE_TIMEOUT": ("keepalive_timeout_s", _float_range(0.1, 3600)),
    PREFIX + "MAX_STREAMS": ("max_streams", _int_range(0, 100_000)),
    PREFIX + "REDIS_POOL_SIZE": ("redis_pool_size", _int_range(1, 10_000)),
    PREFIX + "JWKS_REFETCH_WAIT": ("jwks_refetch_wait_s", _float_range(0, 30)),
    PREFIX + "JWKS_MIN_REFETCH_INTERVAL": ("jwks_min_refetch_s", _float_range(0, 3600)),
    PREFIX + "TLS_CERT": ("tls_cert", _existing_file),
    PREFIX + "TLS_KEY": ("tls_key", _existing_file),
    PREFIX + "TLS_CLIENT_CA": ("tls_client_ca", _existing_file),
    PREFIX + "PUBLIC_URL": ("public_url", _https_url),
    PREFIX + "GTR_CLIENTS": ("gtr_clients", _csv),
    PREFIX + "SSF_EVENT_ACTIONS": ("ssf_event_actions", _event_actions),
    PREFIX + "SSF_POLL_URL": ("ssf_poll_url", _https_url),
    PREFIX + "SSF_POLL_TOKEN": ("ssf_poll_token", _text),
    PREFIX + "SSF_POLL_MAX_EVENTS": ("ssf_poll_max_events", _int_range(1, 10_000)),
    PREFIX + "SSF_POLL_TIMEOUT": ("ssf_poll_timeout_s", _float_range(1, 3600)),
    PREFIX + "SSF_TRANSMITTER": ("ssf_transmitter", _https_url),
    PREFIX + "SSF_TRANSMITTER_TOKEN": ("ssf_transmitter_token", _text),
    PREFIX + "SSF_DELIVERY": ("ssf_delivery", _choice("push", "poll")),
}
