"""Benchmark data: 100k revocations in Redis, keys and tokens, memory figures, propagation.

Each revoker mode gets its own key prefix (``PREFIXES``) in the one Redis, each loaded with
the same revocations (the same jtis, the same revoked token jtis), so one mode's revokes
never reach the other mode's server (a mirror follows only its own prefix's event stream).
The memory figures are measured once, on the first prefix loaded.

Everything here runs in the harness process, before (or beside) the load.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from revoker import apikeys
from revoker.model import Lifetimes, RevokeRequest
from revoker.service import Revoker
from revoker.store.mirror import MirrorStore as Mirror
from revoker.store.redis import RedisStore
from tests.redis_proc import RedisProcess

PREFIX = "revoker:"
#: Key prefix per revoker mode; the mirror keeps the historical one (``PREFIX``).
PREFIXES = {"mirror": PREFIX, "strict": "strict:"}
#: Small on purpose: the "distinct" rows cycle DISTINCT_TOKENS tokens, more than fit, so
#: every request misses the verified-token cache (FIFO) and pays a signature check.
TOKEN_CACHE_SIZE = 1000
DISTINCT_TOKENS = 3000
REVOKED_SAMPLE = 1000
BATCH = 1000


def prefix_for(mode: str) -> str:
    return PREFIXES.get(mode, f"{mode}:")


@dataclass
class Data:
    #: The prefix loaded first (memory figures measured on it); any one will do for naive.
    prefix: str
    #: Every loaded prefix, in loading order; each holds the same revocations.
    prefixes: list[str]
    admin_key: str
    keys_line: str
    key_dir: Path
    revoked_file: Path
    tokens: dict[tuple[str, str], Path] = field(default_factory=dict)
    public: dict[str, Any] = field(default_factory=dict)
    token_lists: dict[str, list[str]] = field(default_factory=dict)


async def prepare(redis: RedisProcess, tmp: Path, count: int, extra: dict[str, Any],
                  prefixes: list[str]) -> Data:
    """Load ``count`` revocations and the tokens' revoked jtis under each of ``prefixes``
    (at least one), the same values under each; memory figures from the first load only."""
    prefixes = list(dict.fromkeys(prefixes)) or [PREFIX]
    admin_key = apikeys.generate()
    data = Data(prefix=prefixes[0], prefixes=prefixes, admin_key=admin_key,
                keys_line=apikeys.config_line("bench-admin", ["admin"], admin_key),
                key_dir=tmp / "keys", revoked_file=tmp / "revoked.txt")
    token_jtis = _tokens(data, tmp)
    values: list[str] = []
    for i, prefix in enumerate(prefixes):
        store = RedisStore(redis.url, prefix=prefix, timeout_s=10, events_maxlen=1_000_000)
        await store.open()
        try:
            if i == 0:
                memory: dict[str, Any] = {}
                memory["set_exat_bytes_per_key"] = await _set_baseline(store, count)
                # generated here, between the baseline's UNLINKs and the load, as always: that
                # pause lets Redis shrink its keyspace table before the load regrows it (without
                # it, bytes per record read ~20 B lower)
                values = [str(uuid.uuid4()) for _ in range(count)]
                data.revoked_file.write_text("\n".join(values[:REVOKED_SAMPLE]) + "\n")
                await _load(store, values, memory)
                memory["mirror_bytes_per_entry"], memory["mirror_load_seconds"] = \
                    await _mirror_bytes(store)
                extra["memory"] = memory
            else:
                await _load(store, values, None)
            await _revoke(store, token_jtis)
        finally:
            await store.close()
    return data


async def _used(store: RedisStore) -> int:
    info = await store.client.info("memory")
    return int(info["used_memory"])


async def _set_baseline(store: RedisStore, count: int) -> float:
    """What a bare ``SET key 1 EXAT`` costs on this Redis, for comparison."""
    before = await _used(store)
    names = [f"bench:set:{uuid.uuid4()}" for _ in range(count)]
    at = int(time.time()) + 3600
    for start in range(0, count, BATCH):
        pipe = store.client.pipeline(transaction=False)
        for name in names[start:start + BATCH]:
            pipe.set(name, 1, exat=at)
        await pipe.execute()
    after = await _used(store)
    for start in range(0, count, BATCH):
        await store.client.unlink(*names[start:start + BATCH])
    return round((after - before) / count, 1)


async def _load(store: RedisStore, values: list[str], memory: dict[str, Any] | None) -> None:
    """A jti revocation per value, without a reason, as the API would store them; with
    ``memory``, what they cost in Redis."""
    service = Revoker(store, lifetimes=Lifetimes(86400, 30))
    count = len(values)
    exp = int(time.time()) + 3600
    before = await _used(store)
    started = time.perf_counter()
    for start in range(0, count, BATCH):
        await service.revoke_many([RevokeRequest("jti", v, token_exp=exp)
                                   for v in values[start:start + BATCH]], actor="bench-admin")
    elapsed = time.perf_counter() - started
    if memory is None:
        return
    after = await _used(store)
    stream = int(await store.client.memory_usage(store.events_key) or 0)
    sample = await store.client.memory_usage(store.key("jti", values[0]))
    memory.update({
        "records": count,
        "load_seconds": round(elapsed, 2),
        "redis_bytes_per_jti_with_event": round((after - before) / count, 1),
        "redis_bytes_per_jti_record_only": round((after - before - stream) / count, 1),
        "redis_stream_bytes_per_event": round(stream / count, 1),
        "memory_usage_one_record_key": sample,
        "record_json_bytes": len(await store.client.get(store.key("jti", values[0]))),
    })


async def _mirror_bytes(store: RedisStore) -> tuple[float, float]:
    """Bytes of the host's mirror table per record (one table for every worker: its size
    is exact, a file's length) and the time of a full load by its keeper."""
    mirror = Mirror(store)
    keeper = mirror.keeper
    assert keeper is not None
    started = time.perf_counter()
    await keeper.resync()
    load_s = round(time.perf_counter() - started, 2)
    table = keeper.table
    assert table is not None
    per_entry = round(table.nbytes / max(table.used, 1), 1)
    await mirror.stop()
    return per_entry, load_s


def _tokens(data: Data, tmp: Path) -> list[str]:
    """RS256 and ES256 keys, one repeated token each and DISTINCT_TOKENS distinct ones,
    1% of which carry a jti to revoke (returned)."""
    data.key_dir.mkdir(parents=True, exist_ok=True)
    private: dict[str, Any] = {
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ES256": ec.generate_private_key(ec.SECP256R1())}
    now = int(time.time())
    revoked: list[str] = []
    for alg, key in private.items():
        kid = alg.lower()
        pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        (data.key_dir / f"{kid}.pem").write_bytes(pem)
        data.public[alg] = key.public_key()

        def sign(i: int, jti: str, alg: str = alg, key: Any = key, kid: str = kid) -> str:
            claims = {"sub": f"user-{i % 5000}", "jti": jti, "iat": now, "exp": now + 3600}
            return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})

        repeated = tmp / f"{alg}-repeated.txt"
        repeated.write_text(sign(0, str(uuid.uuid4())) + "\n")
        jtis = [str(uuid.uuid4()) for _ in range(DISTINCT_TOKENS)]
        tokens = [sign(i, jti) for i, jti in enumerate(jtis)]
        revoked += jtis[::100]
        distinct = tmp / f"{alg}-distinct.txt"
        distinct.write_text("\n".join(tokens) + "\n")
        data.tokens[(alg, "repeated")] = repeated
        data.tokens[(alg, "distinct")] = distinct
        data.token_lists[alg] = tokens
    return revoked


async def _revoke(store: RedisStore, jtis: list[str]) -> None:
    service = Revoker(store, lifetimes=Lifetimes(86400, 30))
    exp = int(time.time()) + 3600
    await service.revoke_many([RevokeRequest("jti", j, token_exp=exp) for j in jtis],
                              actor="bench-admin")


def pyjwt_loop(data: Data, seconds: float = 2.0) -> dict[str, float]:
    """A bare PyJWT decode loop over the same distinct tokens: the signature-check ceiling."""
    out = {}
    for alg, tokens in data.token_lists.items():
        key, done, started = data.public[alg], 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            jwt.decode(tokens[done % len(tokens)], key, algorithms=[alg])
            done += 1
        out[alg] = round(done / (time.perf_counter() - started), 1)
    return out


async def propagation(ports: list[int], key: str, *, count: int) -> dict[str, float]:
    """Time from a 2xx revoke (sent to one worker in turn) until every worker refuses."""
    headers = {"X-Revoker-Key": key}
    delays: list[float] = []
    async with aiohttp.ClientSession() as session:
        for i in range(count):
            jti = f"prop-{uuid.uuid4()}"
            url = f"http://127.0.0.1:{ports[i % len(ports)]}/v1/revocations"
            async with session.post(url, json={"kind": "jti", "value": jti, "ttl": 600},
                                    headers=headers) as reply:
                assert reply.status == 201, reply.status
            started = time.perf_counter()
            pending = list(ports)
            while pending:
                answers = await asyncio.gather(*[_revoked(session, p, jti, headers)
                                                 for p in pending])
                pending = [p for p, revoked in zip(pending, answers, strict=True) if not revoked]
            delays.append((time.perf_counter() - started) * 1000)
    delays.sort()
    return {"count": count, "p50": delays[len(delays) // 2],
            "p99": delays[min(len(delays) - 1, int(len(delays) * 0.99))], "max": delays[-1]}


async def _revoked(session: aiohttp.ClientSession, port: int, jti: str,
                   headers: dict[str, str]) -> bool:
    async with session.get(f"http://127.0.0.1:{port}/v1/check/{jti}", headers=headers) as reply:
        return bool((await reply.json())["revoked"])
