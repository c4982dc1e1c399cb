"""Cold load of the mirror: how long the keeper takes to load N records from Redis into
the host's table, and the table's bytes per record.

    python -m bench.mirror_load [--records 1000000] [--profile] [--no-baseline]

A private redis-server is started, filled with N jti records in the stored (compact)
form with their EXAT expiry (a pipeline of SETs, not the service: the events stream is not
what is measured), and the keeper's loads (``Keeper.resync``) are timed: by names (what a
Redis store does: in sync once every name is in the table), then the fill of the details
that follows it (run at once, unpaced), and a load of every record's details in one pass
(what a Cluster store does, and what Redis did before). The same-run baseline is a load
through the listing API (``scan`` pages of ``Record``s, the way the mirror loaded at
first; ``--no-baseline`` skips it: at 10M it takes minutes). ``--profile`` prints where
the load by names spends its time. Then the loaded table is checkpointed
and restored (``revoker.store.checkpoint``), each step timed: the copy the keeper pauses
for, the write by a thread, and a restore with its digest check.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import tempfile
import time
from typing import Any

from revoker.store import checkpoint
from revoker.store.codec import compact_json
from revoker.store.mirror import MirrorStore
from revoker.store.redis import RedisStore
from revoker.store.shared import Table

BATCH = 10_000
PREFIX = "bench-load:"


async def fill(store: RedisStore, count: int) -> None:
    from revoker.model import Record

    now = int(time.time())
    value = compact_json(Record("jti", "x", revoked_at=now, expires_at=now + 3600,
                                reason=None, actor="bench-admin"))
    for start in range(0, count, BATCH):
        async with store.cold_client.pipeline(transaction=False) as pipe:
            for i in range(start, min(start + BATCH, count)):
                pipe.set(store.key("jti", f"token-{i:012d}"), value, exat=now + 3600 + i % 600)
            await pipe.execute()


async def listing_load(store: RedisStore) -> float:
    """The baseline: every record through ``scan`` pages, as ``Record`` objects."""
    started = time.perf_counter()
    cursor: str | None = None
    seen = 0
    while True:
        records, cursor = await store.scan(cursor=cursor, limit=1000)
        seen += len(records)
        if cursor is None:
            return time.perf_counter() - started


async def export_load(store: RedisStore) -> float:
    """A load of every record's details in one pass (no names first)."""
    keeper = MirrorStore(store, names_first=False).keeper
    assert keeper is not None
    started = time.perf_counter()
    await keeper.resync()
    seconds = time.perf_counter() - started
    assert keeper.table is not None
    assert not keeper.table.filling
    keeper.table.close()
    return seconds


async def keeper_load(store: RedisStore, profile: bool) -> dict[str, Any]:
    mirror = MirrorStore(store, names_first=True)
    keeper = mirror.keeper
    assert keeper is not None
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    await keeper.resync()
    if profiler is not None:
        profiler.disable()
    seconds = time.perf_counter() - started
    table = keeper.table
    assert table is not None
    assert keeper.filling
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    started = time.perf_counter()
    await keeper.fill_now()
    fill_s = time.perf_counter() - started
    return {"keeper_load_s": round(seconds, 2), "details_fill_s": round(fill_s, 2),
            "entries": table.used,
            **checkpoint_figures(table, keeper.position.last_id),
            "capacity": table.capacity, "table_bytes": table.nbytes,
            "bytes_per_entry": round(table.nbytes / max(table.used, 1), 1)}


def checkpoint_figures(table: Table, last_id: str) -> dict[str, Any]:
    """Save the loaded table as the keeper would, and restore it, timing each step."""
    with tempfile.TemporaryDirectory(prefix="revoker-ckpt-") as directory:
        path = os.path.join(directory, "mirror.ckpt")
        started = time.perf_counter()
        data = checkpoint.image(table)
        copied = time.perf_counter()
        meta = checkpoint.Meta(store="bench", last_id=last_id, added=None,
                               capacity=table.capacity, entries=table.used,
                               saved_at=time.time())
        checkpoint.save(path, data, meta)
        saved = time.perf_counter()
        del data
        restored, _ = checkpoint.restore(path, "bench", lambda n: Table.create(None, n))
        done = time.perf_counter()
        size = os.path.getsize(path)
        restored.close()
    return {"checkpoint_copy_s": round(copied - started, 3),
            "checkpoint_write_s": round(saved - copied, 2),
            "checkpoint_restore_s": round(done - saved, 2),
            "checkpoint_mib": round(size / 2 ** 20, 1)}


async def run(url: str, count: int, profile: bool, baseline: bool) -> dict[str, Any]:
    store = RedisStore(url, prefix=PREFIX, timeout_s=30, events_maxlen=1000)
    await store.open()
    try:
        started = time.perf_counter()
        await fill(store, count)
        fill_s = time.perf_counter() - started
        listing = await listing_load(store) if baseline else None
        result = await keeper_load(store, profile)
        result["export_load_s"] = round(await export_load(store), 2)
        result["speedup_vs_export"] = round(result["export_load_s"] / result["keeper_load_s"],
                                            2)
    finally:
        await store.close()
    compared = {} if listing is None else {
        "listing_load_s": round(listing, 2),
        "speedup_vs_listing": round(listing / result["keeper_load_s"], 2)}
    return {"records": count, "fill_s": round(fill_s, 1), **compared, **result,
            "records_per_s": round(count / result["keeper_load_s"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the load through the listing API")
    args = parser.parse_args()
    from tests.redis_proc import RedisProcess

    server = RedisProcess().start()
    try:
        print(json.dumps(asyncio.run(run(server.url, args.records, args.profile,
                                          not args.no_baseline)), indent=2))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
