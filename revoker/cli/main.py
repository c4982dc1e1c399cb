"""``revoker``: parse the command line and run one command.

Only the command line configures logging and turns errors into exit codes (defined
once, in ``revoker.cli.common``). Each command group lives in its own module and
registers its parsers here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from revoker import __version__
from revoker.cli import admin, bulk, dev, find, keygen, serve, ssf
from revoker.cli.common import EXIT_CONFIG, EXIT_FAILURE, EXIT_USAGE, fail
from revoker.errors import ConfigError

GROUPS = (serve, dev, keygen, admin, find, bulk, ssf)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        return fail(f"configuration error: {exc}", EXIT_CONFIG)
    except KeyboardInterrupt:
        return EXIT_FAILURE
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="revoker", description="Token revocation service")
    parser.add_argument("--version", action="version", version=f"revoker {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND")
    for group in GROUPS:
        group.add_commands(sub)
    return parser
