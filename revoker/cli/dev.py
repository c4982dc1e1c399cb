"""``revoker dev`` and ``revoker token``: try the service in one minute.

``dev`` runs the service on the memory store with a generated admin key and a generated
HS256 secret, and prints, once, everything needed to call it: the key, the secret, a
sample token that ``/v1/authz`` accepts, and ``export`` lines to paste. ``token`` mints
more HS256 test tokens for such a secret. Neither is for production: HS256 shares the
signing secret with the service, and the memory store forgets everything on exit.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import time
import uuid
from typing import Any, Final

import jwt

from revoker import apikeys, logs, server
from revoker.cli.common import EXIT_OK, EXIT_USAGE, Subcommands, UsageError, fail
from revoker.config import PREFIX, Settings

DEV_ALGORITHM: Final = "HS256"
SECRET_VARIABLE: Final = PREFIX + "JWT_SECRET"
MIN_SECRET_BYTES: Final = 32  # the service refuses shorter HS256 secrets (RFC 7518 3.2)
SAMPLE_TTL_S: Final = 3600
#: Settings ``dev`` decides itself, whatever the environment says.
DEV_OWNED: Final = tuple(PREFIX + name for name in (
    "STORE_URL", "WORKERS", "CHECK_MODE", "API_KEYS", "API_KEYS_FILE", "JWT_ALGORITHMS",
    "JWT_SECRET", "JWKS_URL", "JWT_PUBLIC_KEYS"))
BANNER: Final = "NOT FOR PRODUCTION"


def add_commands(sub: Subcommands) -> None:
    dev = sub.add_parser(
        "dev", help=f"try the service: memory store, generated key and HS256 secret "
                    f"({BANNER})",
        epilog="Other REVOKER_* settings apply; these are chosen by dev: "
               + ", ".join(DEV_OWNED) + ". exit status: 0 stopped; 2 bad configuration")
    dev.add_argument("--host", help="listen address (default: $REVOKER_HOST or 127.0.0.1)")
    dev.add_argument("--port", type=int, help="listen port (default: $REVOKER_PORT or 8080)")
    dev.set_defaults(func=cmd_dev)

    token = sub.add_parser("token", help="mint an HS256 test token for a dev secret",
                           epilog="prints the token alone on stdout, for JWT=$(revoker token "
                                  "...). exit status: 0 success; 2 usage error")
    token.add_argument("--secret", default=None,
                       help=f"the service's HS256 secret (default: ${SECRET_VARIABLE})")
    token.add_argument("--sub", required=True, help="the subject (user)")
    token.add_argument("--jti", help="token id (default: random)")
    token.add_argument("--sid", help="session id (default: none)")
    token.add_argument("--ttl", type=int, default=SAMPLE_TTL_S,
                       help=f"seconds until exp (default: {SAMPLE_TTL_S})")
    token.add_argument("--kid", help="key id header (default: none)")
    token.add_argument("--iss", help="issuer, when the service requires one")
    token.add_argument("--aud", help="audience, when the service requires one")
    token.set_defaults(func=cmd_token)


def mint(secret: str, *, sub: str, jti: str | None = None, sid: str | None = None,
         ttl_s: int = SAMPLE_TTL_S, kid: str | None = None, iss: str | None = None,
         aud: str | None = None) -> str:
    """An HS256 token with ``iat`` now and ``exp`` ``ttl_s`` later."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "jti": jti or uuid.uuid4().hex, "iat": now,
                              "exp": now + ttl_s}
    optional = {"sid": sid, "iss": iss, "aud": aud}
    claims.update({name: value for name, value in optional.items() if value is not None})
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims, secret, algorithm=DEV_ALGORITHM, headers=headers)


def cmd_token(args: argparse.Namespace) -> int:
    secret = args.secret or os.environ.get(SECRET_VARIABLE)
    try:
        if not secret:
            raise UsageError(f"no secret: pass --secret or set {SECRET_VARIABLE}")
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise UsageError(f"--secret must be at least {MIN_SECRET_BYTES} bytes: the "
                             "service refuses shorter HS256 secrets")
        if args.ttl < 1:
            raise UsageError("--ttl must be a positive number of seconds")
    except UsageError as exc:
        return fail(str(exc), EXIT_USAGE)
    print(mint(secret, sub=args.sub, jti=args.jti, sid=args.sid, ttl_s=args.ttl,
               kid=args.kid, iss=args.iss, aud=args.aud))
    return EXIT_OK


def dev_settings(args: argparse.Namespace, *, admin_key: str, secret: str) -> Settings:
    """The environment's settings, with the store, keys and JWT key source chosen here."""
    env = {k: v for k, v in os.environ.items() if k.startswith(PREFIX) and k not in DEV_OWNED}
    env.update({PREFIX + "STORE_URL": "memory://",
                PREFIX + "API_KEYS": apikeys.config_line("dev-admin", ["admin"], admin_key),
                PREFIX + "JWT_ALGORITHMS": DEV_ALGORITHM, SECRET_VARIABLE: secret})
    if args.host:
        env[PREFIX + "HOST"] = args.host
    if args.port is not None:
        env[PREFIX + "PORT"] = str(args.port)
    return Settings.from_env(env)


def cmd_dev(args: argparse.Namespace) -> int:
    admin_key = apikeys.generate()
    secret = secrets.token_urlsafe(32)
    settings = dev_settings(args, admin_key=admin_key, secret=secret)
    logs.configure(fmt=settings.log_format, level=settings.log_level)
    ttl_s = min(SAMPLE_TTL_S, settings.max_token_lifetime_s)  # longer would be refused
    sample = mint(secret, sub="alice", sid=uuid.uuid4().hex, ttl_s=ttl_s,
                  iss=settings.jwt_issuer,
                  aud=settings.jwt_audience[0] if settings.jwt_audience else None)
    print(banner(settings, admin_key=admin_key, secret=secret, sample=sample, ttl_s=ttl_s),
          flush=True)
    return server.run(settings)


def banner(settings: Settings, *, admin_key: str, secret: str, sample: str,
           ttl_s: int) -> str:
    """Shown once, on stdout; everything in it is throw-away, made for this run."""
    scheme = "https" if settings.tls_cert else "http"
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    url = f"{scheme}://{host}:{settings.port}"
    rule = "=" * 24
    return "\n".join([
        f"{rule} revoker dev: {BANNER} {rule}",
        "Memory store: every revocation is lost on exit. Key, secret and token below were",
        "made for this run; anyone who sees them can use them.",
        f"  service:       {url}",
        f"  admin key:     {admin_key}",
        f"  HS256 secret:  {secret}",
        f"  sample token:  {sample}",
        f"                 (sub=alice, with a jti and a sid, valid {ttl_s} s)",
        "Paste into a shell:",
        f"export ADMIN={shlex.quote(admin_key)} JWT={shlex.quote(sample)}",
        f"export SECRET={shlex.quote(secret)} REVOKER_URL={shlex.quote(url)}"
        ' REVOKER_API_KEY="$ADMIN"',
        "Then try:",
        f'  curl -i -H "X-Revoker-Key: $ADMIN" -H "Authorization: Bearer $JWT" {url}/v1/authz',
        '  revoker revoke token "$JWT"        # then the curl above answers 401',
        '  revoker token --secret "$SECRET" --sub bob    # another token',
        f"{rule}{'=' * (len(BANNER) + 15)}{rule}",
    ])
