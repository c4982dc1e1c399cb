"""Command line: ``revoker serve``, ``revoker keygen`` and the admin commands.

Only this module configures logging and turns errors into exit codes:
0 success, 1 failure at run time, 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
from collections.abc import Sequence

from revoker import __version__, keys, logs
from revoker.config import SCOPES, Settings
from revoker.errors import ConfigError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"revoker: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_FAILURE
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="revoker", description="Token revocation service")
    parser.add_argument("--version", action="version", version=f"revoker {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the service")
    serve.add_argument("--config", help="TOML file with settings (the environment wins)")
    serve.set_defaults(func=cmd_serve)

    keygen = sub.add_parser("keygen", help="make an API key and its configuration line")
    keygen.add_argument("--name", required=True)
    keygen.add_argument("--scopes", default="check",
                        help=f"'+'-separated among {', '.join(SCOPES)} (default: check)")
    keygen.set_defaults(func=cmd_keygen)
    _add_admin_commands(sub)
    return parser


def _add_admin_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = importlib.import_module("revoker.admin")
    admin.add_commands(sub)


def cmd_keygen(args: argparse.Namespace) -> int:
    scopes = [s for s in args.scopes.replace(",", "+").split("+") if s]
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        print(f"revoker: --scopes must be among {', '.join(SCOPES)}", file=sys.stderr)
        return EXIT_USAGE
    key = keys.generate()
    line = keys.config_line(args.name, scopes, key)
    Settings.from_env({"REVOKER_API_KEYS": line})  # validated as the service will read it
    print(f"key:    {key}")
    print(f"config: {line}")
    print("Give the key to its user and put the config line in REVOKER_API_KEYS; "
          "the key itself is not stored anywhere.", file=sys.stderr)
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env(config_file=args.config)
    logs.configure(fmt=settings.log_format, level=settings.log_level)
    settings = _with_bootstrap_key(settings)
    if settings.store_url.startswith("memory"):
        print("revoker: WARNING: REVOKER_STORE_URL is memory://: revocations live in this "
              "process only and are LOST on restart. Use redis:// in production.",
              file=sys.stderr)
    from revoker import server

    return server.run(settings)


def _with_bootstrap_key(settings: Settings) -> Settings:
    """With no key configured, make one admin key and show it once: a service that
    nobody can administer, or that anyone can, would both be wrong defaults."""
    if settings.api_keys:
        return settings
    key = keys.generate()
    line = keys.config_line("bootstrap-admin", ["admin"], key)
    print("revoker: no API key configured; generated an admin key for this run only:\n"
          f"    {key}\n"
          "It is shown once and not stored. To keep it, set "
          f"REVOKER_API_KEYS={line}", file=sys.stderr)
    admin_key = Settings.from_env({"REVOKER_API_KEYS": line}).api_keys
    return dataclasses.replace(settings, api_keys=admin_key)
