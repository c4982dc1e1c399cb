"""Soak: steady checks and revokes for N minutes against a real ``revoker serve``.

Not part of the test suite. It answers two questions the fault tests cannot:

* does revoker's memory stay flat under a long steady load (RSS sampled over time), and
* does Redis give the space back: once the load stops and the short TTLs pass, the
  number of record keys returns to where it started (the capped events stream is the
  only key that stays, and its length stays under ``REVOKER_EVENTS_MAXLEN``).

    .venv/bin/python bench/soak.py --minutes 5
    .venv/bin/python bench/soak.py --minutes 1 --store-url redis://127.0.0.1:6400/0

Without ``--store-url`` it starts its own ``redis-server`` on a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import redis

from revoker import apikeys

PREFIX = "soak:"
ADMIN_KEY = "rvk_soak_admin_key_0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def record_keys(client: redis.Redis) -> int:
    """Keys of revocation records (the events stream is not one)."""
    return sum(1 for key in client.scan_iter(match=f"{PREFIX}*", count=1000)
               if key != f"{PREFIX}events".encode())


@dataclass
class Counts:
    requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)

    def saw(self, status: int) -> None:
        self.requests += 1
        self.by_status[status] = self.by_status.get(status, 0) + 1


async def worker(session: aiohttp.ClientSession, base: str, counts: Counts, stop: float,
                 ttl_s: int, number: int) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    sequence = 0
    while time.monotonic() < stop:
        value = f"soak-{number}-{sequence}"
        sequence += 1
        async with session.post(f"{base}/v1/revocations", headers=headers,
                                json={"kind": "jti", "value": value, "ttl": ttl_s}) as resp:
            await resp.read()
            counts.saw(resp.status)
        for _ in range(4):  # a gateway checks far more often than anyone revokes
            probe = f"soak-{number}-{random.randrange(max(sequence, 1) * 2)}"
            async with session.get(f"{base}/v1/check/{probe}", headers=headers) as resp:
                await resp.read()
                counts.saw(resp.status)


async def drive(base: str, pid: int, client: redis.Redis, args: argparse.Namespace) -> int:
    counts = Counts()
    start_keys = record_keys(client)
    stop = time.monotonic() + args.minutes * 60
    print(f"start: record keys {start_keys}, revoker RSS {rss_mib(pid):.1f} MiB")
    print(f"{'t_s':>6} {'rss_mib':>8} {'record_keys':>12} {'events':>8} {'requests':>9} "
          f"{'non_2xx':>8}")
    samples: list[float] = []
    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.create_task(worker(session, base, counts, stop, args.ttl, n))
                 for n in range(args.concurrency)]
        began = time.monotonic()
        while any(not t.done() for t in tasks):
            await asyncio.sleep(min(args.sample_s, max(0.1, stop - time.monotonic())))
            rss = rss_mib(pid)
            samples.append(rss)
            bad = sum(v for k, v in counts.by_status.items() if not 200 <= k < 300)
            print(f"{time.monotonic() - began:6.0f} {rss:8.1f} {record_keys(client):12d} "
                  f"{client.xlen(f'{PREFIX}events'):8d} {counts.requests:9d} {bad:8d}")
        await asyncio.gather(*tasks)
    drained_s = await wait_drained(client, start_keys, timeout_s=args.ttl + 60)
    return report(samples, counts, drained_s)


async def wait_drained(client: redis.Redis, start_keys: int, *, timeout_s: float) -> float | None:
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        if record_keys(client) <= start_keys:
            return time.monotonic() - began
        await asyncio.sleep(1.0)
    return None


def report(samples: list[float], counts: Counts, drained_s: float | None) -> int:
    warm = samples[len(samples) // 4:] or samples
    growth = (warm[-1] - warm[0]) / warm[0] * 100 if warm and warm[0] else 0.0
    print(f"\nrequests {counts.requests}, by status {dict(sorted(counts.by_status.items()))}")
    print(f"RSS after warm-up: {warm[0]:.1f} -> {warm[-1]:.1f} MiB ({growth:+.1f}%), "
          f"peak {max(samples):.1f} MiB")
    if drained_s is None:
        print("record keys did NOT return to the starting count")
    else:
        print(f"record keys back to the starting count {drained_s:.0f} s after the load")
    ok = drained_s is not None and growth < 15 and all(
        200 <= s < 300 for s in counts.by_status)
    print("verdict:", "flat memory, keys drained" if ok else "CHECK THE FIGURES ABOVE")
    return 0 if ok else 1


def start_redis() -> tuple[subprocess.Popen[bytes], str, str]:
    port = free_port()
    directory = tempfile.mkdtemp(prefix="revoker-soak-")
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port),
                             "--bind", "127.0.0.1", "--dir", directory, "--save", "",
                             "--maxmemory-policy", "noeviction"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, f"redis://127.0.0.1:{port}/0", directory


def start_revoker(store_url: str, port: int, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REVOKER_STORE_URL": store_url, "REVOKER_PORT": str(port),
           "REVOKER_KEY_PREFIX": PREFIX, "REVOKER_LEEWAY": "1", "REVOKER_ACCESS_LOG": "false",
           "REVOKER_EVENTS_MAXLEN": str(args.events_maxlen), "REVOKER_ALLOW_EVICTION": "false",
           "REVOKER_API_KEYS": apikeys.config_line("soak", ["admin"], ADMIN_KEY)}
    proc = subprocess.Popen([sys.executable, "-m", "revoker", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_port(port)
    return proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--ttl", type=int, default=20, help="revocation ttl in seconds")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--events-maxlen", type=int, default=10000)
    parser.add_argument("--store-url", help="a redis:// URL; default: start a redis-server")
    args = parser.parse_args()
    redis_proc, directory = None, None
    store_url = args.store_url
    if store_url is None:
        redis_proc, store_url, directory = start_redis()
    port = free_port()
    revoker = start_revoker(store_url, port, args)
    try:
        client = redis.Redis.from_url(store_url)
        return asyncio.run(drive(f"http://127.0.0.1:{port}", revoker.pid, client, args))
    finally:
        revoker.send_signal(signal.SIGTERM)
        revoker.wait(timeout=15)
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
            shutil.rmtree(directory or "", ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
