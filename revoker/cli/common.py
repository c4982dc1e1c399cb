"""What every command shares: exit codes, errors, output and the HTTP runner.

Exit codes are defined here once, for every command and for the service itself:
0 success; 1 the command failed at run time (service unreachable, key rejected, request
refused, nothing found, import lines failed); 2 bad configuration or usage;
3 ``revoker check`` found the token revoked (so that scripts need not parse text).
Errors are one line on stderr, ``revoker: ...``; results go to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol, TextIO
from urllib.parse import urlsplit

from revoker.client import DEFAULT_URL, ApiError, AuthError, ClientError, RevokerClient
from revoker.model import Record

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
#: Bad configuration stops the service with the same code as a usage error.
EXIT_CONFIG: Final = EXIT_USAGE
EXIT_REVOKED: Final = 3

EXIT_CODES: Final = ("exit status: 0 success; 1 failed (service unreachable, key rejected, "
                     "request refused, nothing found, import lines failed); 2 usage error")
URL_VARIABLE: Final = "REVOKER_URL"
KEY_VARIABLE: Final = "REVOKER_API_KEY"

Command = Callable[[argparse.Namespace, RevokerClient], Awaitable[int]]


class Subcommands(Protocol):
    """What ``ArgumentParser.add_subparsers()`` returns, as far as the commands use it."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


class UsageError(Exception):
    """Bad arguments discovered after parsing (exit 2)."""


def fail(message: str, code: int = EXIT_FAILURE) -> int:
    """Print one ``revoker: ...`` line on stderr and return ``code``."""
    print(f"revoker: {message}", file=sys.stderr)
    return code


def emit(args: argparse.Namespace, data: Any, human: str) -> None:
    """The result on stdout: ``human`` text, or ``data`` as JSON with ``--json``."""
    print(json.dumps(data, ensure_ascii=False) if args.json else human)


def describe(record: Record) -> str:
    parts = [f"{record.kind} {record.value!r} revoked until {when(record.expires_at)}"]
    if record.issued_before is not None:
        parts.append(f"for tokens issued before {when(record.issued_before)}")
    if record.reason:
        parts.append(f"reason: {record.reason}")
    if record.actor:
        parts.append(f"by {record.actor}")
    return ", ".join(parts)


def when(timestamp: int) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def read_arg(value: str) -> str:
    """``-`` reads the value from stdin, so that a token need not be on the command line."""
    return sys.stdin.read().strip() if value == "-" else value


def client_options() -> argparse.ArgumentParser:
    """The options every command that talks to the service takes (a parent parser)."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--url", default=None,
                         help=f"service URL (default: ${URL_VARIABLE} or {DEFAULT_URL})")
    options.add_argument("--key", default=None, help=f"API key (default: ${KEY_VARIABLE})")
    options.add_argument("--json", action="store_true", help="machine-readable output")
    options.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    return options


def service_url(args: argparse.Namespace) -> str:
    """The URL to use, checked: without a scheme, aiohttp's complaint would not say why."""
    source, url = ("--url", args.url) if args.url else (URL_VARIABLE,
                                                       os.environ.get(URL_VARIABLE))
    if not url:
        return DEFAULT_URL
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{source} must be an http:// or https:// URL with a host, such "
                         f"as {DEFAULT_URL}; got {url!r}")
    return url


def runner(command: Command) -> Callable[[argparse.Namespace], int]:
    """Resolve URL and key, run the command, and map every error to one line + a code."""
    def run(args: argparse.Namespace) -> int:
        try:
            url = service_url(args)
        except UsageError as exc:
            return fail(str(exc), EXIT_USAGE)
        key = args.key or os.environ.get(KEY_VARIABLE)
        if not key:
            return fail(f"no API key: pass --key or set {KEY_VARIABLE}", EXIT_USAGE)
        try:
            return asyncio.run(_with_client(command, args, url, key))
        except UsageError as exc:
            return fail(str(exc), EXIT_USAGE)
        except AuthError as exc:
            what = ("rejected the API key" if exc.status == 401
                    else "refused: the key lacks the scope")
            return fail(f"{url} {what} ({exc.status}): {exc.detail}")
        except ApiError as exc:
            return fail(f"request refused ({exc.status}): {exc.detail}")
        except ClientError as exc:
            return fail(str(exc))
    return run


async def _with_client(command: Command, args: argparse.Namespace, url: str, key: str) -> int:
    async with RevokerClient(url, key, timeout_s=args.timeout) as client:
        return await command(args, client)


def output_stream(path: str | None) -> TextIO:
    """stdout, or ``path`` opened for writing (a usage error when it cannot be)."""
    if not path:
        return sys.stdout
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
