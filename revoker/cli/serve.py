"""``revoker serve``: the service, configured from the environment and a TOML file.

With no API key configured it makes one admin key and shows it once: a service that
nobody can administer, or that anyone can, would both be wrong defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from revoker import apikeys, logs, server
from revoker.cli.common import Subcommands
from revoker.config import Settings


def add_commands(sub: Subcommands) -> None:
    serve = sub.add_parser("serve", help="run the service",
                           epilog="exit status: 0 stopped; 1 failed at run time; "
                                  "2 bad configuration (one line naming the variable)")
    serve.add_argument("--config", help="TOML file with settings (the environment wins)")
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env(config_file=args.config)
    logs.configure(fmt=settings.log_format, level=settings.log_level)
    settings = _with_bootstrap_key(settings)
    if settings.store_url.startswith("memory"):
        print("revoker: WARNING: REVOKER_STORE_URL is memory://: revocations live in this "
              "process only and are LOST on restart. Use redis:// in production.",
              file=sys.stderr)
    return server.run(settings)


def _with_bootstrap_key(settings: Settings) -> Settings:
    if settings.api_keys:
        return settings
    key = apikeys.generate()
    line = apikeys.config_line("bootstrap-admin", ["admin"], key)
    print("revoker: no API key configured; generated an admin key for this run only:\n"
          f"    {key}\n"
          "It is shown once and not stored. To keep it, set "
          f"REVOKER_API_KEYS={line}", file=sys.stderr)
    admin_key = Settings.from_env({"REVOKER_API_KEYS": line}).api_keys
    return dataclasses.replace(settings, api_keys=admin_key)
