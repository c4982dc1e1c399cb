#!/usr/bin/env python
"""The SDK's costs, with their ratios measured in the same run.

    .venv/bin/python bench/sdk.py                    # ~1 min: 100k records, 3 rounds of 5 s
    .venv/bin/python bench/sdk.py --duration 2 --rounds 1 --records 20000

1. In-process checks: ``Mirror.lookup`` of a token's claims against a copy holding
   ``--records`` revocations (a miss, the common case, and a hit), and the whole local
   decision ``Guard.authenticate`` of a repeated RS256 token (verified-token cache hit,
   copy lookup, outcome). Target: a mirror check <= 2 us.
2. The memory one mirrored record costs (tracemalloc), records decoded from JSON as the
   snapshot delivers them.
3. A FastAPI app on uvicorn (one process each) answering ``GET /me`` with a repeated valid
   token: with ``RevokerMiddleware`` in mirror mode against a real ``revoker serve``
   (memory store), and the same app without it. A load generator in its own process keeps
   ``--connections`` requests in flight; rounds alternate the two apps so that drift on a
   shared machine hits both alike, and the ratio is the median of per-round ratios.
   Target: >= 0.9x.

Not part of the test suite. Numbers are only meaningful on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request

from revoker import apikeys
from revoker.model import Claims, Record
from revoker.sdk import Guard, VerifierSettings
from revoker.sdk.asgi import RevokerMiddleware
from revoker.sdk.client import record_from
from revoker.sdk.mirror import Table
from tests.redis_proc import free_port, wait_port

CHECK_KEY = "rvk_bench_sdk_check_key_0000000000000"


def make_keys(directory: Path) -> tuple[rsa.RSAPrivateKey, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bench.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return key, directory


def make_token(key: rsa.RSAPrivateKey) -> str:
    now = int(time.time())
    return jwt.encode({"sub": "bench", "jti": uuid.uuid4().hex, "iat": now, "exp": now + 3600,
                       "sid": "s-bench"}, key, algorithm="RS256", headers={"kid": "bench"})


def fill(table: Table, count: int, now: int) -> None:
    for i in range(count):
        table.put(Record(kind="jti", value=f"{i:032x}", revoked_at=now,
                         expires_at=now + 3600), now)


def per_call_us(fn: Any, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def in_process(records: int, pem_dir: Path, token: str) -> dict[str, float]:
    """Guard with the copy marked fresh and no service: only local work is timed."""
    guard = Guard("http://127.0.0.1:9", None,
                  verifier=VerifierSettings(public_keys=[str(pem_dir)], algorithms=("RS256",)))
    mirror = guard.mirror
    assert mirror is not None
    now = int(time.time())
    fill(mirror.table, records, now)
    mirror.monotonic = lambda: 0.0
    mirror.synced = True
    mirror.confirm(0.0)
    miss = Claims(jti="0" * 31 + "x", sub="bench", sid="s-bench", iat=now)
    hit = Claims(jti=f"{records // 2:032x}", sub="bench", iat=now)
    assert mirror.lookup(miss) == []
    assert mirror.lookup(hit)
    assert guard.authenticate(token).ok
    return {"mirror_check_miss_us": per_call_us(lambda: mirror.lookup(miss), 200_000),
            "mirror_check_hit_us": per_call_us(lambda: mirror.lookup(hit), 200_000),
            "guard_authenticate_us": per_call_us(lambda: guard.authenticate(token), 50_000)}


def memory_per_record(count: int = 100_000) -> dict[str, float]:
    now = int(time.time())
    out = {}
    for label, reason in (("bytes_per_record", None), ("bytes_per_record_with_reason",
                                                       "stolen laptop")):
        lines = [json.dumps({"kind": "jti", "value": f"{i:032x}", "revoked_at": now,
                             "expires_at": now + 3600, "issued_before": None,
                             "reason": reason, "actor": "admin-console"})
                 for i in range(count)]
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        table = Table()
        for line in lines:
            table.put(record_from(json.loads(line)), now)
        out[label] = (tracemalloc.get_traced_memory()[0] - before) / count
        tracemalloc.stop()
    return out


# -- the FastAPI comparison ------------------------------------------------------------------

def app(guarded: bool) -> Any:
    """The measured app; with the middleware it is configured from the environment."""
    api = FastAPI()

    @api.get("/me")
    async def me(request: Request) -> dict[str, Any]:
        claims = getattr(request.state, "token_claims", None)
        return {"sub": claims["sub"] if claims else "anonymous"}

    if guarded:
        guard = Guard(os.environ["BENCH_REVOKER_URL"], CHECK_KEY,
                      verifier=VerifierSettings(public_keys=[os.environ["BENCH_PEM_DIR"]],
                                                algorithms=("RS256",))).start(wait=True)
        api.add_middleware(RevokerMiddleware, guard=guard)
    return api


def serve_app(guarded: bool, port: int) -> None:
    import uvicorn

    uvicorn.run(app(guarded), host="127.0.0.1", port=port, log_level="warning",
                access_log=False, lifespan="off")


async def load(url: str, token: str, connections: int, duration_s: float) -> dict[str, Any]:
    import aiohttp

    counts = {"ok": 0, "other": 0}
    stop = time.monotonic() + duration_s
    headers = {"Authorization": f"Bearer {token}"}

    async def one(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < stop:
            async with session.get(url, headers=headers) as resp:
                await resp.read()
                counts["ok" if resp.status == 200 else "other"] += 1

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        await asyncio.gather(*(one(session) for _ in range(connections)))
        elapsed = time.monotonic() - started
    return {"rps": counts["ok"] / elapsed, "non200": counts["other"]}


def measure(port: int, token: str, connections: int, duration_s: float) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--load", f"http://127.0.0.1:{port}/me",
                          "--token", token, "--connections", str(connections),
                          "--duration", str(duration_s)], capture_output=True, text=True,
                         check=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def fastapi_ratio(pem_dir: Path, token: str, args: argparse.Namespace) -> dict[str, Any]:
    service_port, plain_port, guarded_port = free_port(), free_port(), free_port()
    service = spawn(["-m", "revoker", "serve"], {
        "REVOKER_PORT": str(service_port), "REVOKER_STORE_URL": "memory://",
        "REVOKER_API_KEYS": apikeys.config_line("bench", ["check"], CHECK_KEY),
        "REVOKER_JWT_PUBLIC_KEYS": str(pem_dir), "REVOKER_JWT_ALGORITHMS": "RS256",
        "REVOKER_ACCESS_LOG": "false"})
    wait_port(service_port)
    env = {"BENCH_REVOKER_URL": f"http://127.0.0.1:{service_port}",
           "BENCH_PEM_DIR": str(pem_dir)}
    plain = spawn([__file__, "--serve", "plain", "--port", str(plain_port)], env)
    guarded = spawn([__file__, "--serve", "guarded", "--port", str(guarded_port)], env)
    try:
        wait_port(plain_port, timeout_s=30)
        wait_port(guarded_port, timeout_s=30)
        for port in (plain_port, guarded_port):
            measure(port, token, args.connections, 1.0)  # warm-up
        rounds: list[dict[str, Any]] = []
        for index in range(args.rounds):
            order = [("plain", plain_port), ("guarded", guarded_port)]
            if index % 2:
                order.reverse()
            result: dict[str, Any] = {
                name: measure(port, token, args.connections, args.duration)
                for name, port in order}
            result["ratio"] = result["guarded"]["rps"] / result["plain"]["rps"]
            rounds.append(result)
    finally:
        for proc in (plain, guarded, service):
            proc.terminate()
            proc.wait(10)
    return {"rounds": rounds,
            "plain_rps": statistics.median(r["plain"]["rps"] for r in rounds),
            "guarded_rps": statistics.median(r["guarded"]["rps"] for r in rounds),
            "ratio": statistics.median(r["ratio"] for r in rounds),
            "non200": sum(r[n]["non200"] for r in rounds for n in ("plain", "guarded"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--serve", choices=("plain", "guarded"))
    parser.add_argument("--port", type=int)
    parser.add_argument("--load")
    parser.add_argument("--token")
    args = parser.parse_args()
    if args.serve:
        serve_app(args.serve == "guarded", args.port)
        return
    if args.load:
        print(json.dumps(asyncio.run(load(args.load, args.token, args.connections,
                                          args.duration))))
        return
    with tempfile.TemporaryDirectory(prefix="revoker-bench-sdk-") as tmp:
        key, pem_dir = make_keys(Path(tmp) / "keys")
        token = make_token(key)
        results: dict[str, Any] = in_process(args.records, pem_dir, token)
        results.update(memory_per_record())
        results["fastapi"] = fastapi_ratio(pem_dir, token, args)
    fast = results["fastapi"]
    print(f"mirror check (miss, {args.records} records): "
          f"{results['mirror_check_miss_us']:.2f} us  (target <= 2 us: "
          f"{'PASS' if results['mirror_check_miss_us'] <= 2 else 'FAIL'})")
    print(f"mirror check (hit):                {results['mirror_check_hit_us']:.2f} us")
    print(f"Guard.authenticate, repeated RS256: {results['guard_authenticate_us']:.2f} us")
    print(f"memory per record: {results['bytes_per_record']:.0f} B "
          f"({results['bytes_per_record_with_reason']:.0f} B with a reason)")
    print(f"FastAPI /me: plain {fast['plain_rps']:.0f} req/s, with RevokerMiddleware "
          f"{fast['guarded_rps']:.0f} req/s: {fast['ratio']:.2f}x (target >= 0.9x: "
          f"{'PASS' if fast['ratio'] >= 0.9 else 'FAIL'}); non-200: {fast['non200']}")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"sdk-{int(time.time())}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
