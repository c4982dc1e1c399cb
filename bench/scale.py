#!/usr/bin/env python
"""Ten million revocations: what revoker costs at scale, measured in one command.

    flock /work/bench.lock .venv/bin/python bench/scale.py                 # 10M (~20 min)
    .venv/bin/python bench/scale.py --count 200000 --duration 3 --rounds 2  # a quick run

Starts private redis-servers on free ports and ``revoker serve`` processes against them,
and reports, each beside a baseline measured in the same run:

- revoke rate: ``--count`` jti revocations (random UUIDs, 6 h TTL, no reason) sent through
  the HTTP API's bulk form, ``POST /v1/revocations/batch`` (the path ``revoker import``
  uses), ``--batch`` items per request and ``--concurrency`` requests in flight, to a
  strict-mode serve of ``--workers`` workers; the same for the ``--small`` store. Server,
  Redis and client CPU per revocation beside it (client and servers share the cores);
- Redis bytes per record: the ``INFO memory`` ``used_memory`` delta of the load over the
  count, with the audit stream's share (``MEMORY USAGE`` of the stream, which holds at most
  ``REVOKER_EVENTS_MAXLEN`` events) shown apart, beside a bare ``SET key 1 EXAT t`` of the
  same key shape (``revoker:jti:<uuid>``) loaded into a fresh redis-server of its own;
- mirror memory: ``revoker serve`` with ``REVOKER_CHECK_MODE=mirror`` against the loaded
  Redis, and an identical serve against an empty Redis (the baseline): PSS summed over each
  serve's process tree (``/proc/PID/smaps_rollup``; shared pages count once however the
  mirror is laid out), the difference divided by the entries the mirror reports; per process
  too (worker minus baseline worker);
- cold load: from spawning the serve to ``/readyz`` 200 (first answer) and to the host
  being fully ready: every worker process listening and ``PROBES`` consecutive
  ``/readyz`` probes on fresh connections all 200 (the kernel spreads connections over the
  workers, so a worker still loading would answer one of them 503); then to the fill's
  end (the keeper, ready once it holds every record's name, reads their details after:
  the probes say ``filling: false``), which every later step waits for. ``--cold-loads``
  (3) cold loads in all, the last one the serve the later steps use; the median, the
  range, and each one's Redis and serve CPU seconds;
- worker restart: ``kill -9`` of one worker of the loaded serve; time until the supervisor's
  replacement listens and the host is fully ready again, and the replacement's PSS beside
  the killed worker's (a worker that reloaded the mirror holds as much);
- resuming: ``kill -9`` of the loaded serve's mirror keeper, and the time until every
  probe says a new keeper is in sync (it adopts the table the dead one left); then a
  restart of the whole serve, which has ``REVOKER_MIRROR_CHECKPOINT`` set: how long the
  stop takes (the keeper saves the checkpoint as it stops), the checkpoint's size, and the
  time from spawning the new serve to fully ready (it restores the checkpoint instead of
  reading every record);
- check throughput: wrk (``bench/wrk/mix.lua``, 64 connections, 2 threads, ~1% of checks
  naming a revoked jti) on ``GET /v1/check/{jti}`` against the loaded mirror serve and
  against the ``--small`` one, interleaved, ``--rounds`` rounds alternating which goes
  first; the median of the per-round ratios (target: >= 0.9).

A sampler watches the PSS of everything this run started (and the host's available memory)
every second and interrupts the run past ``--max-gib``. Prints a table; writes JSON to
bench/results/. Not part of the test suite; figures are meaningful only on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import redis  # noqa: E402

from bench import procfs  # noqa: E402
from bench.run import (  # noqa: E402
    CONNECTIONS,
    PY,
    THREADS,
    Measure,
    Server,
    cpu_s,
    positive_int,
    spawn,
    tree,
    write_results,
    wrk,
)
from revoker import apikeys  # noqa: E402
from tests.redis_proc import RedisProcess, free_port  # noqa: E402

KEY_PREFIX = "revoker:"
TTL_S = 6 * 3600
#: Revoked jtis kept for the check rows (~1% of checks name one of them).
REVOKED_SAMPLE = 1000
#: Consecutive /readyz 200s on fresh connections that make a host "fully ready".
PROBES = 24
RETRIES = 5
GIB = 1024 ** 3
#: Estimates for the up-front memory check (bytes per revocation): the Redis record (the
#: capped audit stream adds at most ~0.2 GiB) and the mirror's copy per worker, as measured
#: (see docs/performance.md), with a margin of about 10%.
EST_REDIS_PER_RECORD = 240
EST_MIRROR_PER_ENTRY = 400


# -- memory watch ------------------------------------------------------------------------------

class Watch(threading.Thread):
    """Every second: PSS of this process and everything it started, and the host's
    available memory. Past the limit it interrupts the main thread (SIGINT), whose
    ``finally`` blocks stop every server."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(daemon=True, name="memory-watch")
        self.limit = limit_bytes
        self.peak = 0
        self.min_available = procfs.mem_available()
        self.tripped: str | None = None
        self.done = threading.Event()

    def sample(self) -> int:
        total = sum(m.pss for m in procfs.memories(tree(os.getpid())))
        self.peak = max(self.peak, total)
        self.min_available = min(self.min_available, procfs.mem_available())
        return total

    def run(self) -> None:
        while not self.done.wait(1.0):
            total = self.sample()
            if self.tripped is None and (total > self.limit or self.min_available < GIB):
                self.tripped = (f"memory guard: this run holds {total / GIB:.1f} GiB PSS, "
                                f"{self.min_available / GIB:.1f} GiB available on the host")
                print(self.tripped, file=sys.stderr, flush=True)
                os.kill(os.getpid(), signal.SIGINT)


# -- loading through the API -------------------------------------------------------------------

@dataclass
class Load:
    """One load through ``POST /v1/revocations/batch``."""

    count: int
    seconds: float
    rate: float
    new: int
    existing: int
    retried_batches: int
    server_cpu_us: float
    redis_cpu_us: float
    client_cpu_us: float
    revoked_file: str = ""


async def _send(session: aiohttp.ClientSession, url: str, key: str, body: bytes,
                size: int) -> tuple[int, int, int]:
    """One batch, retried while the service says it is briefly unavailable; returns
    (new, existing, retries). Any item refused fails the run: a benchmark must not
    report a rate of revocations that were not stored."""
    headers = {"X-Revoker-Key": key, "Content-Type": "application/json"}
    for attempt in range(RETRIES + 1):
        try:
            async with session.post(url, data=body, headers=headers) as reply:
                text = await reply.read()
                if reply.status == 503 and attempt < RETRIES:
                    await asyncio.sleep(0.5 * 2 ** attempt)
                    continue
                if reply.status != 200:
                    raise RuntimeError(f"batch answered {reply.status}: {text[:300]!r}")
                results = json.loads(text)["results"]
        except aiohttp.ClientConnectionError:
            if attempt == RETRIES:
                raise
            await asyncio.sleep(0.5 * 2 ** attempt)
            continue
        statuses = [item.get("status") for item in results]
        if len(statuses) != size or any(s not in (200, 201) for s in statuses):
            bad = next((item for item in results if item.get("status") not in (200, 201)),
                       None)
            raise RuntimeError(f"batch of {size}: {len(statuses)} results, e.g. {bad}")
        new = statuses.count(201)
        return new, size - new, attempt
    raise AssertionError("unreachable")


async def load_api(port: int, key: str, count: int, *, batch: int, concurrency: int,
                   sample_to: Path, label: str) -> tuple[float, int, int, int]:
    """``count`` fresh random jtis in batches, ``concurrency`` requests in flight. Keeps an
    evenly spread sample of REVOKED_SAMPLE jtis in ``sample_to``. Returns (seconds, new,
    existing, retried batches)."""
    url = f"http://127.0.0.1:{port}/v1/revocations/batch"
    every = max(1, count // REVOKED_SAMPLE)
    sample: list[str] = []
    batches = iter(range(0, count, batch))
    totals = [0, 0, 0]
    done = 0
    started = last = time.perf_counter()

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done, last
        for start in batches:
            size = min(batch, count - start)
            values = [str(uuid.uuid4()) for _ in range(size)]
            sample.extend(values[(-start) % every::every])
            body = ('{"items":[' + ",".join(
                f'{{"kind":"jti","value":"{v}","ttl":{TTL_S}}}' for v in values)
                + "]}").encode()
            for i, n in enumerate(await _send(session, url, key, body, size)):
                totals[i] += n
            done += size
            now = time.perf_counter()
            if now - last >= 10:
                last = now
                print(f"  {label}: {done:>10} revoked, {done / (now - started):>8.0f}/s",
                      flush=True)

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*[worker(session) for _ in range(concurrency)])
    elapsed = time.perf_counter() - started
    sample_to.write_text("\n".join(sample[:REVOKED_SAMPLE]) + "\n")
    return elapsed, totals[0], totals[1], totals[2]


def bare_set_exat(count: int, batch: int) -> dict[str, Any]:
    """A bare ``SET revoker:jti:<uuid> 1 EXAT t`` per revocation in a fresh redis-server
    (``redis-cli --pipe``), its ``used_memory`` delta per key; the server is stopped."""
    server = RedisProcess().start()
    try:
        client = redis.Redis(port=server.port)
        before = int(client.info("memory")["used_memory"])
        at = str(int(time.time()) + TTL_S).encode()
        pipe = subprocess.Popen(["redis-cli", "-p", str(server.port), "--pipe"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        assert pipe.stdin is not None
        assert pipe.stdout is not None
        head = b"*5\r\n$3\r\nSET\r\n"
        tail = b"\r\n$1\r\n1\r\n$4\r\nEXAT\r\n$" + str(len(at)).encode() + b"\r\n" + at + b"\r\n"
        started = time.perf_counter()
        for start in range(0, count, batch):
            chunk = []
            for _ in range(min(batch, count - start)):
                name = f"{KEY_PREFIX}jti:{uuid.uuid4()}".encode()
                chunk.append(head + b"$" + str(len(name)).encode() + b"\r\n" + name + tail)
            pipe.stdin.write(b"".join(chunk))
        pipe.stdin.close()
        out = pipe.stdout.read().decode(errors="replace")
        pipe.wait()
        elapsed = time.perf_counter() - started
        keys = int(client.dbsize())
        if "errors: 0" not in out or keys != count:
            raise RuntimeError(f"redis-cli --pipe: {out[-300:]} ({keys} keys)")
        after = int(client.info("memory")["used_memory"])
        client.close()
        return {"keys": keys, "bytes_per_key": round((after - before) / count, 1),
                "seconds": round(elapsed, 1)}
    finally:
        server.stop()


# -- readiness of a whole host -----------------------------------------------------------------

def readyz(port: int) -> tuple[int, dict[str, Any]]:
    """One /readyz on a fresh connection: (status, body); (0, {}) when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        with contextlib.suppress(ValueError):
            return exc.code, json.loads(exc.read())
        return exc.code, {}
    except (OSError, TimeoutError, ValueError):
        return 0, {}


def workers_of(server: Server) -> list[int]:
    out = []
    for pid in server.pids():
        with contextlib.suppress(OSError):
            if procfs.process_role(pid) == "worker":
                out.append(pid)
    return sorted(out)


@dataclass
class Readiness:
    first_200_s: float | None = None
    listening_s: float | None = None
    ready_s: float | None = None
    #: The mirror entries every probe of the final burst reported (min, max).
    entries: tuple[int, int] | None = None
    worker_pids: list[int] = field(default_factory=list)
    #: When every record's details were in the table too (see ``wait_filled``).
    filled_s: float | None = None
    #: CPU seconds from spawn to ready: the store's Redis, the serve's processes.
    redis_cpu_s: float | None = None
    serve_cpu_s: float | None = None


def wait_host_ready(server: Server, workers: int, started: float, *,
                    timeout_s: float, exclude: frozenset[int] = frozenset()) -> Readiness:
    """Until ``workers`` worker processes (none of ``exclude``) listen on the port and
    PROBES consecutive /readyz probes on fresh connections answer 200. Times are from
    ``started`` (time.monotonic())."""
    out = Readiness()
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        server.check_alive()
        pids = [p for p in workers_of(server) if p not in exclude]
        status, _ = readyz(server.port)
        if status == 200 and out.first_200_s is None:
            out.first_200_s = time.monotonic() - started
        if len(pids) < workers or not all(procfs.listening(p, server.port) for p in pids):
            time.sleep(0.05)
            continue
        if out.listening_s is None:
            out.listening_s = time.monotonic() - started
        entries: list[int] = []
        for _ in range(PROBES):
            status, body = readyz(server.port)
            if status != 200:
                break
            entries.append(int(body.get("checks", {}).get("mirror", {}).get("entries", -1)))
        else:
            out.ready_s = time.monotonic() - started
            out.entries = (min(entries), max(entries))
            out.worker_pids = pids
            return out
        time.sleep(0.05)
    raise TimeoutError(f"{server.name} not fully ready after {timeout_s:.0f} s")


def wait_filled(server: Server, started: float, *, timeout_s: float) -> float:
    """Until PROBES consecutive /readyz probes say the mirror is in sync and no longer
    filling (a first load by names reads the records' details after it is ready); the
    time from ``started``."""
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        server.check_alive()
        for _ in range(PROBES):
            status, body = readyz(server.port)
            mirror = body.get("checks", {}).get("mirror", {})
            if status != 200 or mirror.get("filling", True):
                break
        else:
            return time.monotonic() - started
        time.sleep(0.2)
    raise TimeoutError(f"{server.name} not filled after {timeout_s:.0f} s")


# -- the run -------------------------------------------------------------------------------------

def tree_memory(server: Server) -> list[procfs.ProcMemory]:
    return procfs.memories(server.pids())


def summarize_memory(loaded: list[procfs.ProcMemory], empty: list[procfs.ProcMemory],
                     entries: int) -> dict[str, Any]:
    """Host (tree) PSS of the loaded serve minus the empty one's, per entry; and per role."""
    def by_role(mems: list[procfs.ProcMemory]) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for m in mems:
            out.setdefault(m.role, []).append(m.pss)
        return out

    host, base = sum(m.pss for m in loaded), sum(m.pss for m in empty)
    roles, base_roles = by_role(loaded), by_role(empty)
    per_process = []
    for m in loaded:
        ref = base_roles.get(m.role)
        ref_pss = statistics.fmean(ref) if ref else 0.0
        per_process.append({"pid": m.pid, "role": m.role, "pss_mib": round(m.pss / 2 ** 20, 1),
                            "rss_mib": round(m.rss / 2 ** 20, 1),
                            "baseline_pss_mib": round(ref_pss / 2 ** 20, 1),
                            "bytes_per_entry": round((m.pss - ref_pss) / max(entries, 1), 1)})
    return {"entries": entries, "host_pss_mib": round(host / 2 ** 20, 1),
            "baseline_host_pss_mib": round(base / 2 ** 20, 1),
            "host_bytes_per_entry": round((host - base) / max(entries, 1), 1),
            "workers": len(roles.get("worker", [])), "per_process": per_process}


def ratios(small: list[Measure], big: list[Measure]) -> list[float]:
    """Per-round throughput of the big store over the small one (rounds paired)."""
    return [b.rps / s.rps for s, b in zip(small, big, strict=True)]


class Scale:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="revoker-scale-"))
        self.key = apikeys.generate()
        self.keys_line = apikeys.config_line("bench-admin", ["admin"], self.key)
        self.out: dict[str, Any] = {}
        self.watch = Watch(int(args.max_gib * GIB))

    # -- servers ---------------------------------------------------------------------------

    def serve(self, name: str, store: RedisProcess, mode: str, **extra: str) -> Server:
        port, log = free_port(), self.tmp / f"{name}.log"
        env = {"REVOKER_STORE_URL": store.url, "REVOKER_PORT": str(port),
               "REVOKER_HOST": "127.0.0.1", "REVOKER_WORKERS": str(self.args.workers),
               "REVOKER_API_KEYS": self.keys_line, "REVOKER_ACCESS_LOG": "false",
               "REVOKER_LOG_LEVEL": "WARNING", "REVOKER_CHECK_MODE": mode,
               "REVOKER_KEY_PREFIX": KEY_PREFIX} | extra
        return Server(name, port, [spawn([PY, "-m", "revoker", "serve"], log, env)], log)

    def load(self, name: str, store: RedisProcess, count: int) -> Load:
        """``count`` revocations through a strict serve's bulk API; the serve is stopped."""
        server = self.serve(f"load-{name}", store, "strict")
        try:
            wait_host_ready(server, self.args.workers, time.monotonic(), timeout_s=60)
            pids, redis_pid = server.pids(), store.proc.pid if store.proc else 0
            cpu0, redis0 = cpu_s(pids), cpu_s([redis_pid])
            usage0 = resource.getrusage(resource.RUSAGE_SELF)
            sample = self.tmp / f"revoked-{name}.txt"
            seconds, new, existing, retried = asyncio.run(load_api(
                server.port, self.key, count, batch=self.args.batch,
                concurrency=self.args.concurrency, sample_to=sample, label=name))
            usage1 = resource.getrusage(resource.RUSAGE_SELF)
            client = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
            return Load(count=count, seconds=round(seconds, 1), rate=round(count / seconds),
                        new=new, existing=existing, retried_batches=retried,
                        server_cpu_us=round((cpu_s(pids) - cpu0) / count * 1e6, 1),
                        redis_cpu_us=round((cpu_s([redis_pid]) - redis0) / count * 1e6, 1),
                        client_cpu_us=round(client / count * 1e6, 1), revoked_file=str(sample))
        finally:
            server.stop()

    # -- steps -------------------------------------------------------------------------------

    def check_memory_budget(self) -> None:
        args = self.args
        need = args.count * (EST_REDIS_PER_RECORD + args.workers * EST_MIRROR_PER_ENTRY) + GIB
        available = procfs.mem_available()
        print(f"estimated peak {need / GIB:.1f} GiB; {available / GIB:.1f} GiB available; "
              f"limit {args.max_gib} GiB", flush=True)
        if need > args.max_gib * GIB or need > available - GIB:
            raise SystemExit(f"not enough memory for --count {args.count} with "
                             f"{args.workers} workers (about {need / GIB:.1f} GiB)")

    def redis_figures(self, store: RedisProcess, before: int, load: Load) -> dict[str, Any]:
        count = load.count
        client = redis.Redis(port=store.port)
        try:
            after = int(client.info("memory")["used_memory"])
            events = f"{KEY_PREFIX}events"
            stream = int(client.memory_usage(events, samples=0) or 0)
            length = int(client.xlen(events))
            one = f"{KEY_PREFIX}jti:{Path(load.revoked_file).read_text().split()[0]}"
            return {"records": count, "keys": int(client.dbsize()),
                    "used_memory_mib": round(after / 2 ** 20, 1),
                    "bytes_per_record_with_events": round((after - before) / count, 1),
                    "bytes_per_record": round((after - before - stream) / count, 1),
                    "stream_events": length, "stream_cap": 1_000_000,
                    "stream_mib": round(stream / 2 ** 20, 1),
                    "stream_bytes_per_event": round(stream / max(length, 1), 1),
                    "memory_usage_one_record": int(client.memory_usage(one) or 0)}
        finally:
            client.close()

    def run(self) -> None:
        args = self.args
        self.check_memory_budget()
        self.watch.start()
        started = time.monotonic()
        stores = {name: RedisProcess().start() for name in ("big", "small", "empty")}
        servers: list[Server] = []
        try:
            print(f"bare SET EXAT baseline: {args.count} keys", flush=True)
            self.out["bare_set_exat"] = bare_set_exat(args.count, args.batch)
            print(f"  {self.out['bare_set_exat']}", flush=True)

            loads: dict[str, Load] = {}
            for name, count in (("small", args.small), ("big", args.count)):
                client = redis.Redis(port=stores[name].port)
                before = int(client.info("memory")["used_memory"])
                client.close()
                print(f"loading {count} revocations ({name}) through POST "
                      f"/v1/revocations/batch", flush=True)
                loads[name] = self.load(name, stores[name], count)
                print(f"  {asdict(loads[name])}", flush=True)
                self.out[f"redis_{name}"] = self.redis_figures(stores[name], before, loads[name])
                print(f"  {self.out[f'redis_{name}']}", flush=True)
            self.out["load"] = {name: asdict(load) for name, load in loads.items()}

            # mirror serves: the empty baseline and the small one first, then the big one
            # alone, so its cold load competes with nothing but idle servers
            ready: dict[str, Readiness] = {}
            mirrors: dict[str, Server] = {}
            for name in ("empty", "small", "big"):
                if name == "big":
                    self.out["cold_loads"] = self.cold_loads(stores["big"])
                t0 = time.monotonic()
                mirrors[name], ready[name] = self.cold_start(
                    f"mirror-{name}", stores[name], servers, **self.checkpoint_env(name))
                ready[name].filled_s = wait_filled(mirrors[name], t0,
                                                   timeout_s=args.ready_timeout)
                print(f"mirror {name}: ready in {ready[name].ready_s:.2f} s "
                      f"(first 200 after {ready[name].first_200_s or 0:.2f} s), "
                      f"entries {ready[name].entries}, filled after "
                      f"{ready[name].filled_s:.2f} s", flush=True)
            self.out["cold_load"] = {name: asdict(r) for name, r in ready.items()}
            time.sleep(2)  # let the freshly loaded workers settle before reading memory
            empty_mem = tree_memory(mirrors["empty"])
            self.out["mirror_memory"] = {
                name: summarize_memory(tree_memory(mirrors[name]), empty_mem,
                                       (ready[name].entries or (0, 0))[0])
                for name in ("big", "small")}
            self.out["mirror_memory"]["empty"] = [asdict(m) for m in empty_mem]
            print(json.dumps(self.out["mirror_memory"]["big"], indent=1), flush=True)

            self.out["restart"] = self.restart(mirrors["big"])
            print(f"  restart: {self.out['restart']}", flush=True)

            self.out["check"] = self.checks(mirrors["small"], mirrors["big"], stores, loads)

            self.out["resume"] = self.resume(mirrors["big"], stores["big"], servers)
            print(f"  resume: {self.out['resume']}", flush=True)
        finally:
            for server in servers:
                server.stop()
            # what the serves logged (WARNING and up: a mirror out of sync, a store error),
            # kept because the temporary directory goes
            self.out["serve_logs"] = {
                log.stem: log.read_text(errors="replace")[-4000:]
                for log in sorted(self.tmp.glob("*.log")) if log.stat().st_size}
            for store in stores.values():
                store.stop()
            self.watch.done.set()
            self.watch.sample()
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.out["peak_pss_gib"] = round(self.watch.peak / GIB, 2)
        self.out["min_available_gib"] = round(self.watch.min_available / GIB, 2)
        self.report(time.monotonic() - started)

    def cold_loads(self, store: RedisProcess) -> list[dict[str, Any]]:
        """The big store's cold load ``--cold-loads`` - 1 more times before the one the
        later steps use: a serve (no checkpoint) from spawn to fully ready, then stopped,
        with the empty and small serves idle beside it as for that one. One figure on a
        shared machine says little; the table gives the median and range of all of them,
        with each one's Redis and serve CPU seconds (the load by names is Redis's SCAN on
        one core and the keeper's inserts on the other)."""
        runs = []
        for i in range(self.args.cold_loads - 1):
            started: list[Server] = []
            try:
                _, ready = self.cold_start(f"cold-{i}", store, started)
            finally:
                for server in started:
                    server.stop()
            runs.append({"ready_s": round(ready.ready_s or 0, 2),
                         "redis_cpu_s": ready.redis_cpu_s, "serve_cpu_s": ready.serve_cpu_s})
            print(f"  cold load {i + 1}: {runs[-1]}", flush=True)
        return runs

    def cold_start(self, name: str, store: RedisProcess, servers: list[Server],
                   **extra: str) -> tuple[Server, Readiness]:
        """A mirror serve on ``store`` (added to ``servers``, to be stopped by the caller),
        timed from spawn to fully ready, with the CPU seconds Redis and the serve spent."""
        redis_pid = store.proc.pid if store.proc else 0
        redis_cpu0, t0 = cpu_s([redis_pid]), time.monotonic()
        server = self.serve(name, store, "mirror", **extra)
        servers.append(server)
        ready = wait_host_ready(server, self.args.workers, t0,
                                timeout_s=self.args.ready_timeout)
        ready.redis_cpu_s = round(cpu_s([redis_pid]) - redis_cpu0, 1)
        ready.serve_cpu_s = round(cpu_s(server.pids()), 1)
        return server, ready

    def restart(self, server: Server) -> dict[str, Any]:
        """kill -9 one worker; the supervisor starts another, which must reload."""
        before = workers_of(server)
        victim = before[0]
        old = procfs.memory(victim)
        t0 = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        back = wait_host_ready(server, self.args.workers, t0, exclude=frozenset([victim]),
                               timeout_s=self.args.ready_timeout)
        fresh = [p for p in back.worker_pids if p not in before]
        new = procfs.memory(fresh[0]) if fresh else None
        return {"killed_pid": victim, "killed_pss_mib": round(old.pss / 2 ** 20, 1) if old
                else None,
                "new_pid": fresh[0] if fresh else None,
                "new_pss_mib": round(new.pss / 2 ** 20, 1) if new else None,
                "new_worker_listening_s": round(back.listening_s or 0, 2),
                "fully_ready_s": round(back.ready_s or 0, 2), "entries": back.entries}

    def checkpoint_env(self, name: str) -> dict[str, str]:
        """The big mirror saves checkpoints, and logs at INFO what its keeper does (load,
        resume, checkpoints: a few lines, kept in the JSON's serve_logs)."""
        if name != "big":
            return {}
        return {"REVOKER_MIRROR_CHECKPOINT": str(self.tmp / f"{name}.ckpt"),
                "REVOKER_LOG_LEVEL": "INFO"}

    def resume(self, server: Server, store: RedisProcess,
               servers: list[Server]) -> dict[str, Any]:
        """A dead keeper's replacement adopts its table; a restarted serve restores the
        checkpoint its keeper saved on the way out."""
        timeout = self.args.ready_timeout
        keeper = next(p for p in server.pids() if procfs.process_role(p) == "keeper")
        t0 = time.monotonic()
        os.kill(keeper, signal.SIGKILL)
        deadline = t0 + timeout
        while True:  # every probe: in sync, under a keeper that is not the one killed
            server.check_alive()
            answers = [readyz(server.port) for _ in range(PROBES)]
            if all(status == 200 and body["checks"]["mirror"].get("keeper_pid")
                   not in (None, keeper) for status, body in answers):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("no keeper back in sync")
            time.sleep(0.05)
        keeper_back_s = time.monotonic() - t0

        t0 = time.monotonic()
        for proc in server.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in server.procs:
            proc.wait(timeout=timeout)
        stop_s = time.monotonic() - t0
        saved = self.tmp / "big.ckpt"
        size = saved.stat().st_size if saved.exists() else 0
        t0 = time.monotonic()
        again = self.serve("mirror-big-again", store, "mirror",
                           **(self.checkpoint_env("big") | {"REVOKER_LOG_LEVEL": "INFO"}))
        servers.append(again)
        back = wait_host_ready(again, self.args.workers, t0, timeout_s=timeout)
        log = again.log.read_text(errors="replace") if again.log else ""
        return {"keeper_kill_to_in_sync_s": round(keeper_back_s, 2),
                "stop_with_checkpoint_s": round(stop_s, 2),
                "checkpoint_mib": round(size / 2 ** 20, 1),
                "restart_to_ready_s": round(back.ready_s or 0, 2),
                "first_200_s": round(back.first_200_s or 0, 2), "entries": back.entries,
                "resumed_from_checkpoint": "mirror resumed from the checkpoint" in log}

    def checks(self, small: Server, big: Server, stores: dict[str, RedisProcess],
               loads: dict[str, Load]) -> dict[str, Any]:
        """wrk on GET /v1/check/{jti} against both mirror serves, interleaved."""
        pairs = {"small": (small, stores["small"]), "big": (big, stores["big"])}

        def one(name: str, seconds: float) -> Measure:
            server, store = pairs[name]
            others = [p for other, _ in pairs.values() if other is not server
                      for p in other.pids()]
            return wrk(server.port, "check_jti", duration_s=seconds,
                       data=Path(loads[name].revoked_file), key=self.key, server=server,
                       redis_pid=store.proc.pid if store.proc else 0, others=others)

        for name in pairs:
            one(name, 1)  # warm-up
        taken: dict[str, list[Measure]] = {"small": [], "big": []}
        for rnd in range(self.args.rounds):
            for name in (("small", "big") if rnd % 2 == 0 else ("big", "small")):
                m = one(name, self.args.duration)
                taken[name].append(m)
                print(f"  r{rnd + 1} check {name:<5} {m.rps:>9.0f} req/s  p99 {m.p99_ms:6.2f}"
                      f" ms  {m.server_cpu_us:6.1f} µs CPU/req  non2xx {m.non2xx}", flush=True)
        per_round = ratios(taken["small"], taken["big"])
        return {"rounds": {name: [asdict(m) for m in ms] for name, ms in taken.items()},
                "median_rps": {name: round(statistics.median(m.rps for m in ms))
                               for name, ms in taken.items()},
                "median_cpu_us": {name: round(statistics.median(m.server_cpu_us for m in ms), 1)
                                  for name, ms in taken.items()},
                "non2xx": sum(m.non2xx + m.socket_errors for ms in taken.values() for m in ms),
                "ratio_rounds": [round(r, 3) for r in per_round],
                "ratio": round(statistics.median(per_round), 3)}

    # -- output ------------------------------------------------------------------------------

    def table(self) -> str:
        o, a = self.out, self.args
        big, small = o["load"]["big"], o["load"]["small"]
        rb, bare = o["redis_big"], o["bare_set_exat"]
        mb, ms = o["mirror_memory"]["big"], o["mirror_memory"]["small"]
        cb, cs = o["cold_load"]["big"], o["cold_load"]["small"]
        rs, ck = o["restart"], o["check"]
        loads = [cb["ready_s"], *(r["ready_s"] for r in o["cold_loads"])]
        workers = [p for p in mb["per_process"] if p["role"] == "worker"]
        rows = [
            ("records", f"{a.count:,} (small: {a.small:,})", ""),
            ("revoke rate, POST /v1/revocations/batch",
             f"{big['rate']:,}/s", f"{a.batch} items/request, {a.concurrency} in flight, "
             f"strict {a.workers}w; small: {small['rate']:,}/s; {big['seconds']} s"),
            ("  CPU per revocation", f"{big['server_cpu_us']} µs serve",
             f"Redis {big['redis_cpu_us']} µs, client {big['client_cpu_us']} µs"),
            ("Redis bytes per record", f"{rb['bytes_per_record']}",
             f"bare SET key 1 EXAT: {bare['bytes_per_key']} "
             f"(x{rb['bytes_per_record'] / bare['bytes_per_key']:.2f}); "
             f"with events: {rb['bytes_per_record_with_events']}"),
            ("audit stream bytes per event", f"{rb['stream_bytes_per_event']}",
             f"{rb['stream_events']:,} events kept (cap {rb['stream_cap']:,}): "
             f"{rb['stream_mib']} MiB"),
            ("Redis used_memory", f"{rb['used_memory_mib']:,} MiB", ""),
            ("mirror bytes per entry, host (PSS)", f"{mb['host_bytes_per_entry']}",
             f"{mb['host_pss_mib']:,} MiB vs {mb['baseline_host_pss_mib']} MiB empty; "
             f"small: {ms['host_bytes_per_entry']}"),
            ("mirror bytes per entry, per worker",
             ", ".join(str(p["bytes_per_entry"]) for p in workers),
             ", ".join(f"{p['pss_mib']:,} MiB PSS" for p in workers)),
            ("cold load to /readyz 200 (all workers)", f"{cb['ready_s']:.1f} s",
             f"first 200 {cb['first_200_s'] or 0:.1f} s; CPU: Redis {cb['redis_cpu_s']} s, "
             f"serve {cb['serve_cpu_s']} s; small {cs['ready_s']:.1f} s"),
            ("  ... every cold load of this run", f"{statistics.median(loads):.1f} s",
             f"median of {len(loads)}, {min(loads):.1f}-{max(loads):.1f} s; the ones "
             f"before it: " + ", ".join(
                 f"{r['ready_s']:.1f} s (Redis {r['redis_cpu_s']}, serve {r['serve_cpu_s']} "
                 "CPU s)" for r in o["cold_loads"])),
            ("  ... and every record's details read", f"{cb['filled_s']:.1f} s",
             f"small {cs['filled_s']:.1f} s (pending entries ask Redis until then)"),
            ("worker kill -9 -> host ready", f"{rs['fully_ready_s']:.1f} s",
             f"listening after {rs['new_worker_listening_s']:.1f} s; new worker "
             f"{rs['new_pss_mib']} MiB PSS vs killed {rs['killed_pss_mib']} MiB"),
            ("keeper kill -9 -> in sync again", f"{o['resume']['keeper_kill_to_in_sync_s']:.1f} s",
             "the new keeper adopts the table the dead one left"),
            ("restart with checkpoint -> ready", f"{o['resume']['restart_to_ready_s']:.1f} s",
             f"stop (saves it) {o['resume']['stop_with_checkpoint_s']:.1f} s; checkpoint "
             f"{o['resume']['checkpoint_mib']:,} MiB; restored from it: "
             f"{o['resume']['resumed_from_checkpoint']}"),
            ("check req/s at count / at small", f"{ck['ratio']:.3f}",
             f"median {ck['median_rps']['big']:,} vs {ck['median_rps']['small']:,} req/s; "
             f"rounds {ck['ratio_rounds']}; CPU/req {ck['median_cpu_us']['big']} vs "
             f"{ck['median_cpu_us']['small']} µs; non2xx {ck['non2xx']}"),
            ("peak PSS of the run (sampled 1 s)", f"{o['peak_pss_gib']} GiB",
             f"min available {o['min_available_gib']} GiB"),
        ]
        width = max(len(r[0]) for r in rows)
        value_w = max(len(r[1]) for r in rows)
        lines = [f"| {'measure':<{width}} | {'value':>{value_w}} | baseline / detail |",
                 f"|{'-' * (width + 2)}|{'-' * (value_w + 2)}|-------------------|"]
        lines += [f"| {n:<{width}} | {v:>{value_w}} | {d} |" for n, v, d in rows]
        verdict = "PASS" if ck["ratio"] >= 0.9 else "FAIL"
        lines.append(f"{verdict}  check throughput at {a.count:,} within 10% of {a.small:,}: "
                     f"{ck['ratio']:.3f}")
        return "\n".join(lines)

    def report(self, elapsed_s: float) -> None:
        table = self.table()
        print(table)
        a = self.args
        out = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "machine": {"cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg(),
                           "python": platform.python_version(), "platform": platform.platform()},
               "settings": {"count": a.count, "small": a.small, "workers": a.workers,
                            "batch": a.batch, "concurrency": a.concurrency, "ttl_s": TTL_S,
                            "duration_s": a.duration, "rounds": a.rounds,
                            "connections": CONNECTIONS, "wrk_threads": THREADS,
                            "revoked_share": 0.01, "probes": PROBES},
               "elapsed_s": round(elapsed_s, 1), **self.out, "table": table}
        write_results("scale", out, elapsed_s, Path(a.json).resolve() if a.json else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=positive_int, default=10_000_000,
                        help="revocations in the large store (default 10,000,000)")
    parser.add_argument("--small", type=positive_int, default=100_000,
                        help="revocations in the small store compared against (100,000)")
    parser.add_argument("--workers", type=positive_int, default=2)
    parser.add_argument("--batch", type=positive_int, default=10_000,
                        help="items per POST /v1/revocations/batch (at most 10,000)")
    parser.add_argument("--concurrency", type=positive_int, default=4,
                        help="batches in flight (default 4, as revoker import)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=positive_int, default=4,
                        help="wrk rounds, each measuring both stores (default 4)")
    parser.add_argument("--cold-loads", type=positive_int, default=3,
                        help="cold loads of the large store, each from spawn to fully ready "
                             "(default 3; the median is reported)")
    parser.add_argument("--ready-timeout", type=float, default=1800.0,
                        help="seconds a serve may take to be fully ready")
    parser.add_argument("--max-gib", type=float, default=11.0,
                        help="interrupt the run past this much PSS (default 11)")
    parser.add_argument("--json", help="where to write the JSON (default: bench/results/"
                                       "scale-<time>.json)")
    Scale(parser.parse_args()).run()


if __name__ == "__main__":
    main()
