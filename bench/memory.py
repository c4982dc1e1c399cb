"""Redis bytes per revoked jti (no reason): the compact stored form beside the older full
form and a bare ``SET key 1 EXAT t``, each the ``INFO used_memory`` delta over N keys; and
what a lookup costs for a miss and for a hit (a hit also reads the key's expiry).

    python -m bench.memory [--count 100000] [--url redis://127.0.0.1:6379/0]

Without ``--url`` a private redis-server is started (and stopped) for the measurement.
The events stream is trimmed out of the figures (``MEMORY USAGE`` of the stream).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from revoker.model import Lifetimes, Record, RevokeRequest
from revoker.service import Revoker
from revoker.store.codec import compact_json
from revoker.store.redis import RedisStore

BATCH = 1000
LOOKUPS = 500
ROUNDS = 6


async def used(client: Any) -> int:
    info = await client.info("memory")
    return int(info["used_memory"])


async def per_key(client: Any, names: list[str], value: Callable[[str], str], at: int) -> float:
    """Bytes per key of ``SET name value EXAT at`` over ``names``; the keys are removed."""
    before = await used(client)
    for start in range(0, len(names), BATCH):
        async with client.pipeline(transaction=False) as pipe:
            for name in names[start:start + BATCH]:
                pipe.set(name, value(name), exat=at)
            await pipe.execute()
    after = await used(client)
    for start in range(0, len(names), BATCH):
        await client.unlink(*names[start:start + BATCH])
    await asyncio.sleep(0.5)  # let Redis shrink its keyspace table before the next load
    return round((after - before) / len(names), 1)


async def through_store(url: str, client: Any, values: list[str], exp: int) -> dict[str, Any]:
    """The service's own revokes (compact form, one event each, the stream subtracted)."""
    prefix = f"bench-memory-{uuid.uuid4().hex[:8]}:"
    store = RedisStore(url, prefix=prefix, timeout_s=10, events_maxlen=len(values) + 1)
    await store.open()
    try:
        service = Revoker(store, lifetimes=Lifetimes(86400, 30))
        before = await used(client)
        for start in range(0, len(values), BATCH):
            await service.revoke_many([RevokeRequest("jti", v, token_exp=exp)
                                       for v in values[start:start + BATCH]], actor="bench-admin")
        after = await used(client)
        stream = int(await client.memory_usage(store.events_key) or 0)
        sample = await client.get(store.key("jti", values[0]))
        timings = await lookup_costs(store, client, values)
        await client.unlink(store.events_key)
        for start in range(0, len(values), BATCH):
            await client.unlink(*[store.key("jti", v) for v in values[start:start + BATCH]])
    finally:
        await store.close()
    return {"compact_bytes_per_jti": round((after - before - stream) / len(values), 1),
            "compact_value": sample.decode(), "compact_value_bytes": len(sample), **timings}


async def lookup_costs(store: RedisStore, client: Any,
                       values: list[str]) -> dict[str, float]:
    """Microseconds per single-key lookup, sequential, best of several rounds (the machine
    may be shared): the store's lookup script (value and expiry in one call) beside the
    alternative of a plain MGET followed, for a hit, by EXPIRETIME."""
    async def mget_then_expiretime(value: str) -> None:
        key = store.key("jti", value)
        if (await client.mget([key]))[0] is not None:
            await client.expiretime(key)

    async def script(value: str) -> None:
        await store.get_many([("jti", value)])

    def absent(i: int) -> str:
        return f"absent-{i}"

    best: dict[str, float] = {}
    for _ in range(ROUNDS):
        for way, lookup in (("script", script), ("mget_expiretime", mget_then_expiretime)):
            for name, pick in (("miss", absent), ("hit", values.__getitem__)):
                started = time.perf_counter()
                for i in range(LOOKUPS):
                    await lookup(pick(i))
                took = round((time.perf_counter() - started) / LOOKUPS * 1e6, 1)
                label = f"lookup_{name}_{way}_us"
                best[label] = min(best.get(label, took), took)
    return best


async def measure(url: str, count: int) -> dict[str, Any]:
    client = aioredis.Redis.from_url(url)
    try:
        exp = int(time.time()) + 3600
        values = [str(uuid.uuid4()) for _ in range(count)]
        now = int(time.time())
        bare = await per_key(client, [f"bench-memory:set:{v}" for v in values],
                             lambda _: "1", exp + 30)

        def full(name: str) -> str:
            record = Record("jti", name.rpartition(":")[2], revoked_at=now,
                            expires_at=exp + 30, actor="bench-admin")
            return record.to_json()

        old = await per_key(client, [f"bench-memory:jti:{v}" for v in values], full, exp + 30)
        figures = await through_store(url, client, values, exp)
        sample = Record("jti", values[0], revoked_at=now, expires_at=exp + 30,
                        actor="bench-admin")
        return {"records": count, "set_exat_bytes_per_key": bare,
                "full_form_bytes_per_jti": old, "full_value_bytes": len(sample.to_json()),
                "compact_json_bytes": len(compact_json(sample)), **figures}
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--url", help="an existing Redis (default: start a private one)")
    args = parser.parse_args()
    if args.url:
        print(json.dumps(asyncio.run(measure(args.url, args.count)), indent=2))
        return
    from tests.redis_proc import RedisProcess

    server = RedisProcess().start()
    try:
        print(json.dumps(asyncio.run(measure(server.url, args.count)), indent=2))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
