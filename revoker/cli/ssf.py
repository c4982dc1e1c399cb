"""``revoker ssf-stream show`` and ``revoker ssf-stream reset``: revoker's Shared Signals
stream, straight from the transmitter's management API.

They read the service's own settings (``REVOKER_SSF_TRANSMITTER``, its token, the
delivery and the events revoker acts on), so they see the stream exactly as the service
would look for it. ``show`` prints its configuration and status; ``reset`` deletes it and
creates it again (a stream stuck ``disabled``, or left with a wrong configuration on the
transmitter). A running service notices a re-created stream at its next status check, and
asks for verification again.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp

from revoker.cli.common import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, Subcommands, emit, fail
from revoker.config import Settings

if TYPE_CHECKING:
    from revoker.web.ssf_stream import Management, StreamWanted

EXIT_CODES = ("exit status: 0 success; 1 the transmitter failed or has no stream for "
              "revoker (show); 2 bad configuration")


def add_commands(sub: Subcommands) -> None:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--config", help="TOML file with settings (the environment wins)")
    options.add_argument("--json", action="store_true", help="machine-readable output")
    group = sub.add_parser("ssf-stream", epilog=EXIT_CODES,
                           help="revoker's Shared Signals stream on the transmitter")
    actions = group.add_subparsers(metavar="ACTION")
    show = actions.add_parser("show", parents=[options], epilog=EXIT_CODES,
                              help="the stream's configuration and status")
    show.set_defaults(func=lambda args: _run(args, cmd_show))
    reset = actions.add_parser("reset", parents=[options], epilog=EXIT_CODES,
                               help="delete the stream and create it again")
    reset.set_defaults(func=lambda args: _run(args, cmd_reset))


def _run(args: argparse.Namespace, command: Any) -> int:
    # Imported when the command runs, not when the CLI starts: the stream module belongs to
    # the web layer, which imports prometheus_client, and a multi-worker ``revoker serve``
    # must import that only after it has set PROMETHEUS_MULTIPROC_DIR (every command module
    # is imported whatever the command).
    from revoker.web.ssf_stream import StreamWanted, TransmitterError

    settings = Settings.from_env(config_file=args.config)
    wanted = StreamWanted.from_settings(settings)
    if wanted is None:
        return fail("REVOKER_SSF_TRANSMITTER is not set", EXIT_CONFIG)
    try:
        code: int = asyncio.run(_with_api(args, wanted, command))
    except TransmitterError as exc:
        return fail(f"{wanted.issuer}: {exc}")
    return code


async def _with_api(args: argparse.Namespace, wanted: StreamWanted, command: Any) -> int:
    from revoker.web.ssf_stream import REQUEST_TIMEOUT_S, Management

    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        api = Management(session, wanted.issuer, wanted.token)
        await api.discover()
        code: int = await command(args, api, wanted)
        return code


async def cmd_show(args: argparse.Namespace, api: Management, wanted: StreamWanted) -> int:
    from revoker.web.ssf_stream import find_stream

    stream = await find_stream(api, wanted)
    if stream is None:
        emit(args, {"transmitter": wanted.issuer, "stream": None, "status": None},
             f"{wanted.issuer} has no {wanted.delivery} stream for revoker")
        return EXIT_FAILURE
    status = await api.status(stream["stream_id"])
    emit(args, {"transmitter": wanted.issuer, "stream": stream, "status": status},
         describe(wanted, stream, status))
    return EXIT_OK


async def cmd_reset(args: argparse.Namespace, api: Management, wanted: StreamWanted) -> int:
    from revoker.web.ssf_stream import ensure_stream, find_stream

    old = await find_stream(api, wanted)
    if old is not None:
        await api.delete(old["stream_id"])
    stream = await ensure_stream(api, wanted)
    status = await api.status(stream["stream_id"])
    emit(args, {"transmitter": wanted.issuer, "deleted": old["stream_id"] if old else None,
                "stream": stream, "status": status},
         (f"deleted stream {old['stream_id']}\n" if old else "") + "created "
         + describe(wanted, stream, status))
    return EXIT_OK


def describe(wanted: StreamWanted, stream: dict[str, Any], status: dict[str, Any]) -> str:
    delivery = stream.get("delivery") or {}
    lines = [f"stream {stream['stream_id']} at {wanted.issuer}",
             f"  status:    {status.get('status', 'unknown')}"
             + (f" ({status['reason']})" if status.get("reason") else ""),
             f"  delivery:  {delivery.get('method')} {delivery.get('endpoint_url') or ''}",
             f"  requested: {', '.join(stream.get('events_requested') or []) or '-'}",
             f"  delivered: {', '.join(stream.get('events_delivered') or []) or '-'}"]
    return "\n".join(line.rstrip() for line in lines)
