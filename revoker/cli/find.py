"""``revoker list`` and ``revoker events``: find records and their history (admin).

Support staff ask "what was revoked for this user, and by whom?": ``list`` walks the live
records with the service's filters (value prefix, actor, kind), ``events`` the audit log
(kind, value, actor as exact matches). Both follow the service's paging to the end or to
``--limit`` results: a filtered page may be short, or empty, while more follow, so neither
stops at the first empty page.
"""

from __future__ import annotations

import argparse
from typing import Final

from revoker.cli.common import (
    EXIT_CODES,
    EXIT_OK,
    Subcommands,
    client_options,
    describe,
    emit,
    runner,
    when,
)
from revoker.client import RevokerClient

KINDS: Final = ("jti", "sub", "sid", "kid", "client")
PAGE: Final = 500
#: Pages read at most by one command: a bound, should a service page forever.
MAX_PAGES: Final = 10_000


def add_commands(sub: Subcommands) -> None:
    options = client_options()
    listing = sub.add_parser("list", parents=[options], epilog=EXIT_CODES,
                             help="list live revocations, filtered (admin)")
    listing.add_argument("--kind", choices=KINDS)
    listing.add_argument("--prefix", help="values that start with this text (literally)")
    listing.add_argument("--actor", help="made by this key or client (exact)")
    listing.add_argument("--limit", type=int, default=100,
                         help="show at most this many (default 100)")
    listing.set_defaults(func=runner(cmd_list))

    events = sub.add_parser("events", parents=[options], epilog=EXIT_CODES,
                            help="the audit log, filtered (admin)")
    events.add_argument("--kind", choices=KINDS)
    events.add_argument("--value", help="events of this exact value")
    events.add_argument("--actor", help="events of records made by this key or client")
    events.add_argument("--after", help="only events after this event id")
    events.add_argument("--limit", type=int, default=100,
                        help="show at most this many (default 100)")
    events.set_defaults(func=runner(cmd_events))


async def cmd_list(args: argparse.Namespace, client: RevokerClient) -> int:
    found = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await client.list_revocations(kind=args.kind, prefix=args.prefix,
                                             actor=args.actor, cursor=cursor, limit=PAGE)
        found += page.items
        cursor = page.cursor
        if cursor is None or len(found) >= args.limit:
            break
    shown = found[:max(args.limit, 0)]
    human = "\n".join(describe(record) for record in shown) or "no matching revocations"
    emit(args, [record.to_dict() for record in shown], human)
    return EXIT_OK


async def cmd_events(args: argparse.Namespace, client: RevokerClient) -> int:
    found = []
    after: str | None = args.after
    for _ in range(MAX_PAGES):
        page = await client.events(after=after, limit=PAGE, kind=args.kind, value=args.value,
                                   actor=args.actor)
        found += page.events
        if page.next is None or page.next == after or len(found) >= args.limit:
            break
        after = page.next
    shown = found[:max(args.limit, 0)]
    lines = [f"{event.id}  {when(event.at)}  {event.type}: {describe(event.record)}"
             for event in shown]
    emit(args, [event.to_dict() for event in shown], "\n".join(lines) or "no matching events")
    return EXIT_OK
