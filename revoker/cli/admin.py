"""``revoker revoke``, ``revoker check`` and ``revoker unrevoke`` over the HTTP API.

Thin shells around ``revoker.client``: human-readable output by default, JSON with
``--json``. ``check`` answers in its exit status too (0 not revoked, 3 revoked), so that
a script can branch on it without parsing text.
"""

from __future__ import annotations

import argparse
from typing import Any, Final

from revoker.cli.common import (
    EXIT_CODES,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_REVOKED,
    Subcommands,
    UsageError,
    client_options,
    describe,
    emit,
    fail,
    read_arg,
    runner,
)
from revoker.client import RevokerClient

REVOKE_KINDS: Final = ("jti", "token", "sub", "sid", "kid", "client")
RECORD_KINDS: Final = ("jti", "sub", "sid", "kid", "client")
CHECK_EXIT_CODES: Final = ("exit status: 0 not revoked; 3 revoked; 1 failed (service "
                           "unreachable, key rejected, request refused); 2 usage error")
#: check's claim options: (option, claim name in the API).
CHECK_CLAIMS: Final = (("sub", "sub"), ("sid", "sid"), ("kid", "kid"),
                       ("client_id", "client_id"), ("iat", "iat"))


def add_commands(sub: Subcommands) -> None:
    options = client_options()
    revoke = sub.add_parser("revoke", parents=[options], epilog=EXIT_CODES,
                            help="revoke a jti, token, sub, ...")
    revoke.add_argument("kind", choices=REVOKE_KINDS)
    revoke.add_argument("value", help="the value; for 'token', the JWT or - to read stdin")
    lifetime = revoke.add_mutually_exclusive_group()
    lifetime.add_argument("--expires-at", type=int, help="Unix time the token expires")
    lifetime.add_argument("--ttl", type=int, help="seconds the token may still be valid")
    revoke.add_argument("--issued-before", type=int,
                        help="sub/client: cutoff as Unix time (default: now)")
    revoke.add_argument("--reason")
    revoke.set_defaults(func=runner(cmd_revoke))

    check = sub.add_parser("check", parents=[options], epilog=CHECK_EXIT_CODES,
                           help="is a jti / token / claim revoked? (exit 3 when it is)")
    check.add_argument("jti_arg", nargs="?", metavar="JTI", help="a jti to check")
    check.add_argument("--jti", help="a jti to check (same as the positional JTI)")
    check.add_argument("--token", help="a JWT (only decoded) or - to read stdin")
    for claim in ("sub", "sid", "kid", "client-id"):
        check.add_argument(f"--{claim}", help=f"the token's {claim.replace('-', '_')}")
    check.add_argument("--iat", type=float, help="the token's iat, for sub/client cutoffs")
    check.set_defaults(func=runner(cmd_check))

    unrevoke = sub.add_parser("unrevoke", parents=[options], epilog=EXIT_CODES,
                              help="remove a revocation (admin)")
    unrevoke.add_argument("kind", choices=RECORD_KINDS)
    unrevoke.add_argument("value")
    unrevoke.set_defaults(func=runner(cmd_unrevoke))


async def cmd_revoke(args: argparse.Namespace, client: RevokerClient) -> int:
    if args.kind == "token":
        if args.expires_at is not None or args.ttl is not None or args.issued_before:
            raise UsageError("a token carries its own exp: --expires-at/--ttl/--issued-before "
                             "do not apply")
        outcome = await client.revoke_token(read_arg(args.value), reason=args.reason)
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


def _check_target(args: argparse.Namespace) -> tuple[str, Any]:
    """Exactly one of: a jti (positional or --jti), --token, or claim options."""
    if args.jti_arg is not None and args.jti is not None:
        raise UsageError("give the jti once: as JTI or as --jti")
    jti = args.jti if args.jti is not None else args.jti_arg
    claims = {name: getattr(args, attr) for attr, name in CHECK_CLAIMS
              if getattr(args, attr) is not None}
    given = [what for what, value in (("jti", jti), ("token", args.token), ("claims", claims))
             if value]
    if len(given) != 1:
        raise UsageError("check takes a jti (JTI or --jti), or --token, or claims "
                         "(--sub/--sid/--kid/--client-id with --iat)")
    return given[0], {"jti": jti, "token": args.token, "claims": claims}[given[0]]


async def cmd_check(args: argparse.Namespace, client: RevokerClient) -> int:
    what, value = _check_target(args)
    if what == "token":
        result = await client.check(token=read_arg(value))
    elif what == "claims":
        result = await client.check(claims=value)
    else:
        result = await client.check_jti(value)
    data = {"revoked": result.revoked, "matches": [m.to_dict() for m in result.matches]}
    human = ("revoked: " + "; ".join(describe(m) for m in result.matches) if result.revoked
             else "not revoked")
    emit(args, data, human)
    return EXIT_REVOKED if result.revoked else EXIT_OK


async def cmd_unrevoke(args: argparse.Namespace, client: RevokerClient) -> int:
    if await client.unrevoke(args.kind, args.value):
        emit(args, {"removed": True}, f"removed the {args.kind} revocation")
        return EXIT_OK
    if args.json:
        emit(args, {"removed": False}, "")
    return fail(f"no {args.kind} revocation for this value", EXIT_FAILURE)
