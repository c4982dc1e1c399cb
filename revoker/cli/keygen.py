"""``revoker keygen``: a new API key and the line that configures it.

The key is printed once and never stored; only its SHA-256 digest goes into the
configuration line. Bad input is blamed on the option that carries it.
"""

from __future__ import annotations

import argparse
import sys

from revoker import apikeys
from revoker.cli.common import EXIT_OK, EXIT_USAGE, Subcommands, fail
from revoker.config import KEY_NAME_RULE, SCOPES, Settings, valid_key_name


def add_commands(sub: Subcommands) -> None:
    keygen = sub.add_parser("keygen", help="make an API key and its configuration line",
                            epilog="exit status: 0 success; 2 bad --name or --scopes")
    keygen.add_argument("--name", required=True,
                        help=f"who uses the key, recorded as the actor ({KEY_NAME_RULE})")
    keygen.add_argument("--scopes", default="check",
                        help=f"'+'-separated among {', '.join(SCOPES)} (default: check)")
    keygen.set_defaults(func=cmd_keygen)


def cmd_keygen(args: argparse.Namespace) -> int:
    if not valid_key_name(args.name):
        return fail(f"--name {args.name!r} is not a valid key name ({KEY_NAME_RULE})",
                    EXIT_USAGE)
    scopes = [s for s in args.scopes.replace(",", "+").split("+") if s]
    if not scopes or any(s not in SCOPES for s in scopes):
        return fail(f"--scopes must be among {', '.join(SCOPES)}, joined by '+'", EXIT_USAGE)
    key = apikeys.generate()
    line = apikeys.config_line(args.name, scopes, key)
    Settings.from_env({"REVOKER_API_KEYS": line})  # the service must read it as written
    print(f"key:    {key}")
    print(f"config: {line}")
    print("Give the key to its user and put the config line in REVOKER_API_KEYS; "
          "the key itself is not stored anywhere.", file=sys.stderr)
    return EXIT_OK
