"""Admin commands over the HTTP API: revoke, check, unrevoke, import, export.

They are thin shells around ``revoker.client``. Exit codes (also in docs/integrations.md):
0 success; 1 the command failed (service unreachable, key rejected, request refused, record
not found, import lines failed); 2 usage error (bad arguments, no API key, unreadable file).
Errors are one line on stderr, ``revoker: ...``; results go to stdout, human-readable by
default and as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, TextIO

from revoker.client import DEFAULT_URL, ApiError, AuthError, ClientError, RevokerClient
from revoker.model import Record

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
EXIT_CODES = ("exit codes: 0 success; 1 failed (service unreachable, key rejected, request "
              "refused, nothing found, import lines failed); 2 usage error")
REVOKE_KINDS = ("jti", "token", "sub", "sid", "kid", "client")
RECORD_KINDS = ("jti", "sub", "sid", "kid", "client")

Command = Callable[[argparse.Namespace, RevokerClient], Awaitable[int]]


class UsageError(Exception):
    """Bad arguments discovered after parsing (exit 2)."""


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registered by ``revoker.cli``; the commands are built on ``revoker.client``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=None,
                        help=f"service URL (default: $REVOKER_URL or {DEFAULT_URL})")
    common.add_argument("--key", default=None, help="API key (default: $REVOKER_API_KEY)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("--timeout", type=float, default=30.0, help="seconds per request")

    revoke = sub.add_parser("revoke", parents=[common], epilog=EXIT_CODES,
                            help="revoke a jti, token, sub, ...")
    revoke.add_argument("kind", choices=REVOKE_KINDS)
    revoke.add_argument("value", help="the value; for 'token', the JWT or - to read stdin")
    when = revoke.add_mutually_exclusive_group()
    when.add_argument("--expires-at", type=int, help="Unix time the token expires")
    when.add_argument("--ttl", type=int, help="seconds the token may still be valid")
    revoke.add_argument("--issued-before", type=int,
                        help="sub/client: cutoff as Unix time (default: now)")
    revoke.add_argument("--reason")
    revoke.set_defaults(func=_runner(cmd_revoke))

    check = sub.add_parser("check", parents=[common], epilog=EXIT_CODES,
                           help="is a jti / token / claim revoked?")
    check.add_argument("jti", nargs="?", help="a jti to check")
    check.add_argument("--token", help="a JWT (only decoded) or - to read stdin")
    for claim in ("sub", "sid", "kid", "client-id"):
        check.add_argument(f"--{claim}")
    check.add_argument("--iat", type=float, help="the token's iat, for sub/client cutoffs")
    check.set_defaults(func=_runner(cmd_check))

    unrevoke = sub.add_parser("unrevoke", parents=[common], epilog=EXIT_CODES,
                              help="remove a revocation (admin)")
    unrevoke.add_argument("kind", choices=RECORD_KINDS)
    unrevoke.add_argument("value")
    unrevoke.set_defaults(func=_runner(cmd_unrevoke))

    from revoker import bulk  # import / export live in their own module

    bulk.add_commands(sub, common, _runner)


def _runner(command: Command) -> Callable[[argparse.Namespace], int]:
    """Resolve URL and key, run the command, and map every error to one line + a code."""
    def run(args: argparse.Namespace) -> int:
        url = args.url or os.environ.get("REVOKER_URL") or DEFAULT_URL
        key = args.key or os.environ.get("REVOKER_API_KEY")
        if not key:
            return fail("no API key: pass --key or set REVOKER_API_KEY", EXIT_USAGE)
        try:
            return asyncio.run(_with_client(command, args, url, key))
        except UsageError as exc:
            return fail(str(exc), EXIT_USAGE)
        except AuthError as exc:
            what = "rejected the API key" if exc.status == 401 else "refused: the key lacks " \
                "the scope"
            return fail(f"{url} {what} ({exc.status}): {exc.detail}", EXIT_FAILURE)
        except ApiError as exc:
            return fail(f"request refused ({exc.status}): {exc.detail}", EXIT_FAILURE)
        except ClientError as exc:
            return fail(str(exc), EXIT_FAILURE)
    return run


async def _with_client(command: Command, args: argparse.Namespace, url: str, key: str) -> int:
    async with RevokerClient(url, key, timeout_s=args.timeout) as client:
        return await command(args, client)


def fail(message: str, code: int) -> int:
    print(f"revoker: {message}", file=sys.stderr)
    return code


def emit(args: argparse.Namespace, data: Any, human: str, *, out: TextIO | None = None) -> None:
    print(json.dumps(data, ensure_ascii=False) if args.json else human, file=out or sys.stdout)


def describe(record: Record) -> str:
    parts = [f"{record.kind} {record.value!r} revoked until {_when(record.expires_at)}"]
    if record.issued_before is not None:
        parts.append(f"for tokens issued before {_when(record.issued_before)}")
    if record.reason:
        parts.append(f"reason: {record.reason}")
    if record.actor:
        parts.append(f"by {record.actor}")
    return ", ".join(parts)


def _when(timestamp: int) -> str:
    import datetime

    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _read_arg(value: str) -> str:
    return sys.stdin.read().strip() if value == "-" else value


async def cmd_revoke(args: argparse.Namespace, client: RevokerClient) -> int:
    if args.kind == "token":
        if args.expires_at is not None or args.ttl is not None or args.issued_before:
            raise UsageError("a token carries its own exp: --expires-at/--ttl/--issued-before "
                             "do not apply")
        outcome = await client.revoke_token(_read_arg(args.value), reason=args.reason)
    else:
        outcome = await client.revoke(args.kind, args.value, expires_at=args.expires_at,
                                      ttl_s=args.ttl, issued_before=args.issued_before,
                                      reason=args.reason)
    if outcome.record is None:
        emit(args, {"stored": False}, "already expired: nothing to revoke")
        return EXIT_OK
    verb = "revoked" if outcome.created else "already revoked (expiry kept at the later)"
    emit(args, {"created": outcome.created, "record": outcome.record.to_dict()},
         f"{verb}: {describe(outcome.record)}")
    return EXIT_OK


async def cmd_check(args: argparse.Namespace, client: RevokerClient) -> int:
    claims = {name: getattr(args, attr) for name, attr in
              (("sub", "sub"), ("sid", "sid"), ("kid", "kid"), ("client_id", "client_id"),
               ("iat", "iat"))
              if getattr(args, attr) is not None}
    given = sum(1 for x in (args.jti, args.token) if x) + (1 if claims else 0)
    if given != 1:
        raise UsageError("check takes a jti, or --token, or claims (--sub/--sid/--kid/"
                         "--client-id with --iat)")
    if args.token:
        result = await client.check(token=_read_arg(args.token))
    elif claims:
        result = await client.check(claims=claims)
    else:
        result = await client.check_jti(args.jti)
    data = {"revoked": result.revoked, "matches": [m.to_dict() for m in result.matches]}
    human = "revoked: " + "; ".join(describe(m) for m in result.matches) if result.revoked \
        else "not revoked"
    emit(args, data, human)
    return EXIT_OK


async def cmd_unrevoke(args: argparse.Namespace, client: RevokerClient) -> int:
    if await client.unrevoke(args.kind, args.value):
        emit(args, {"removed": True}, f"removed the {args.kind} revocation")
        return EXIT_OK
    emit(args, {"removed": False}, f"no {args.kind} revocation for this value",
         out=sys.stderr)
    return EXIT_FAILURE


def record_dict(record: Record) -> dict[str, Any]:
    return asdict(record)
