#!/usr/bin/env python
"""The benchmark: revoker and its baselines, side by side, in one run.

    .venv/bin/python bench/run.py                 # full run: 5 s per row, 3 rounds (~13 min)
    .venv/bin/python bench/run.py --duration 2 --rounds 2 --only hello,naive,check

Starts its own redis-server on a free port and loads 100k revocations under each revoker
mode's own key prefix (``REVOKER_KEY_PREFIX``: "revoker:" for mirror, "strict:" for strict;
the same jtis under each, so one mode's revokes never reach the other mode's server; the
memory figures come from the first load only; naive reads the first prefix), then measures
with wrk over loopback (64 connections, 2 threads, ~1% of checks naming a revoked jti):
baselines (aiohttp hello on uvloop, naive aiohttp + ``redis.exists``, nginx ``return 200``
when installed, redis-benchmark) and revoker (strict and mirror; 1 and 2 workers) on
``GET /v1/check/{jti}``, ``POST /v1/check``, ``/v1/authz`` (RS256/ES256, one repeated
token and distinct tokens) and ``POST /v1/revocations``. Also: mirror propagation (2xx
revoke -> every worker refuses), Redis bytes per revoked jti, the mirror's bytes per entry,
a bare PyJWT decode loop. Prints a table; writes JSON to bench/results/.

Rounds, because a shared machine drifts (±15% within minutes): for each worker count, every
selected server (hello, naive, nginx, revoker strict, revoker mirror) is started at once, on
its own port (revoker ready when /readyz answers 200, i.e. with its mirror loaded), and
warmed once (1 s of checks); then ``--rounds`` rounds each measure every selected row once,
in a fixed order: hello first, then naive, nginx, strict's rows, mirror's rows, and hello
again at the end (the round's hello is the mean of the two runs). Servers not being measured
sit idle; their CPU during each row is recorded (``others_cpu_us``) and noted under the table
when it matters (it should not: with separate prefixes, no idle mirror follows the revokes
of the row being measured).
Per row the table shows the median over rounds of req/s, p50/p99/p99.9 and CPU µs per
request (server, Redis, wrk), non-2xx answers summed over rounds, and "x hello" / "x naive"
as the median of the per-round ratios (row req/s / that baseline's req/s in the same round),
plus the min-max of the per-round x-hello ratio. The PASS/FAIL targets use the medians. The
JSON keeps every round's raw measurements ("rounds") besides the medians ("rows").

Latency is compared at one load: after each round's rows, hello and every mode's ``GET
/v1/check`` row run again "paced" (mix.lua's BENCH_DELAY_MS: each connection waits a random
time after an answer), all at the same request rate, half the slowest of those check rows'
rate in that round. The p99 target is the paced check's p99 minus the paced hello's.
Measured as fast as each server answers, a p99 is the queue behind each answer's CPU time
(64 connections wait on a server that answers half as fast twice as long), which the
throughput ratios already judge; that difference is printed for information.

Duration: the default (5 s per row, 3 rounds, 1 and 2 workers) is 126 wrk runs of 5 s, i.e.
10.5 minutes of load plus about 2 minutes of loading, warm-ups and propagation: ~13 minutes.

Not part of the test suite. Numbers are only meaningful on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench import prep  # noqa: E402
from bench.report import PACED  # noqa: E402
from tests.redis_proc import RedisProcess, free_port, wait_port  # noqa: E402

PY = sys.executable
LUA = HERE / "wrk" / "mix.lua"
CONNECTIONS = 64
THREADS = 2
#: The paced rows' request rate, as a share of the slowest revoker check row's in the round.
PACE_SHARE = 0.5
CHECK_ROW = "GET /v1/check/{jti}"
TICK = os.sysconf("SC_CLK_TCK")
BASELINES = ("hello", "naive", "nginx")


# -- processes and their CPU ---------------------------------------------------------------

def tree(pid: int) -> list[int]:
    """A process and all its descendants (revoker's supervisor spawns its workers)."""
    out = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                out += tree(int(child))
    return out


def cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])
    return total / TICK


@dataclass
class Server:
    """N processes serving one port; stopped with SIGTERM. Their stderr goes to ``log``."""

    name: str
    port: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    log: Path | None = None

    def pids(self) -> list[int]:
        return [pid for proc in self.procs for pid in tree(proc.pid)]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:] if self.log else ""
                raise RuntimeError(f"{self.name} (pid {proc.pid}) exited with "
                                   f"{proc.returncode}: {tail}")

    def wait_ready(self, path: str | None, *, timeout_s: float = 60.0) -> None:
        """Until the port accepts connections or, with ``path``, answers it with a 200
        (revoker's /readyz, which in mirror mode waits for the mirror to be loaded)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive()
            try:
                if path is None:
                    wait_port(self.port, timeout_s=0.5)
                    return
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}",
                                            timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (OSError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: {path or 'port'} on port {self.port} "
                                   f"not ready after {timeout_s:.0f} s")
            time.sleep(0.1)


def spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None, *,
          cwd: Path = ROOT) -> subprocess.Popen[bytes]:
    # stderr to a file, not a pipe nobody reads: servers now live through every round
    with log.open("ab") as err:
        return subprocess.Popen(cmd, env={**os.environ, **(env or {})}, cwd=cwd,
                                stdout=subprocess.DEVNULL, stderr=err)


# -- load generation -----------------------------------------------------------------------

@dataclass
class Measure:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    non2xx: int
    socket_errors: int
    server_cpu_us: float
    redis_cpu_us: float
    wrk_cpu_us: float
    #: CPU of the other bench servers (idle, not under load) per request during the row.
    others_cpu_us: float = 0.0


#: Counts are summed when Measures are combined; every other field is a rate or a latency.
COUNTS = ("requests", "non2xx", "socket_errors")


def combine(measures: list[Measure], how: Any) -> Measure:
    """One Measure from several: counts summed, other fields reduced with ``how``."""
    values: dict[str, Any] = {}
    for f in fields(Measure):
        column = [getattr(m, f.name) for m in measures]
        values[f.name] = sum(column) if f.name in COUNTS else float(how(column))
    return Measure(**values)


def run_wrk(port: int, env: dict[str, str], duration_s: float,
            watched: list[list[int]]) -> tuple[dict[str, Any], float, list[float]]:
    """wrk with mix.lua against ``port``: its BENCH result, wrk's own CPU seconds, and the
    CPU seconds each group of ``watched`` pids spent meanwhile (bench/gateway.py uses it
    too)."""
    cmd = ["wrk", "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{max(1, round(duration_s))}s",
           "--timeout", "5s", "-s", str(LUA), f"http://127.0.0.1:{port}"]
    before = [cpu_s(pids) for pids in watched]
    proc = subprocess.Popen(cmd, env={**os.environ, "BENCH_THREADS": str(THREADS), **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)  # reaped here: its rusage is wrk's own CPU
    proc.returncode = os.waitstatus_to_exitcode(status)
    spent = [cpu_s(pids) - b for pids, b in zip(watched, before, strict=True)]
    line = next((x for x in out.decode().splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {err.decode()[-500:]} {out.decode()[-500:]}")
    return json.loads(line[6:]), usage.ru_utime + usage.ru_stime, spent


def wrk(port: int, row: str, *, duration_s: float, data: Path | None, key: str,
        server: Server, redis_pid: int, others: list[int] | None = None,
        delay_ms: int | None = None) -> Measure:
    """``delay_ms``: paced (mix.lua's BENCH_DELAY_MS) instead of as fast as answered."""
    env = {"BENCH_ROW": row, "BENCH_KEY": key}
    if data is not None:
        env["BENCH_DATA"] = str(data)
    if delay_ms is not None:
        env["BENCH_DELAY_MS"] = str(delay_ms)
    result, wrk_cpu, (server_cpu, redis_cpu, others_cpu) = run_wrk(
        port, env, duration_s, [server.pids(), [redis_pid], others or []])
    n = max(result["requests"], 1)
    rps = result["requests"] / (result["duration_us"] / 1e6)
    return Measure(requests=result["requests"], rps=rps,
                   p50_ms=result["p50_us"] / 1000, p99_ms=result["p99_us"] / 1000,
                   p999_ms=result["p999_us"] / 1000, non2xx=result["non2xx"],
                   socket_errors=result["socket_errors"], server_cpu_us=server_cpu / n * 1e6,
                   redis_cpu_us=redis_cpu / n * 1e6, wrk_cpu_us=wrk_cpu / n * 1e6,
                   others_cpu_us=others_cpu / n * 1e6)


# -- what is measured ----------------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    """One row: its name in the table and what wrk sends (mix.lua's BENCH_ROW, data)."""

    name: str
    row: str
    data: Path | None


@dataclass
class Target:
    """A running server and the rows measured on it, in table order."""

    server: Server
    ready_path: str | None
    key: str
    jobs: list[Job]


@dataclass
class Sample:
    """One wrk measurement, as taken (hello twice a round: ``run`` 1 and 2)."""

    name: str
    target: str
    workers: int
    round: int
    run: int
    measure: Measure

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.name, "server": self.target, "workers": self.workers,
                "round": self.round, "run": self.run, **self.measure.__dict__}


@dataclass
class Row:
    """One table row: medians over rounds (``measure``), ratios to the same round's
    baselines (median, min, max), and each round's figure (``per_round``)."""

    name: str
    target: str
    workers: int
    measure: Measure
    per_round: list[Measure]
    x_hello_rounds: list[float]
    x_naive_rounds: list[float]

    @property
    def x_hello(self) -> float | None:
        return statistics.median(self.x_hello_rounds) if self.x_hello_rounds else None

    @property
    def x_naive(self) -> float | None:
        return statistics.median(self.x_naive_rounds) if self.x_naive_rounds else None

    @property
    def x_hello_range(self) -> tuple[float, float] | None:
        r = self.x_hello_rounds
        return (min(r), max(r)) if r else None

    def as_dict(self) -> dict[str, Any]:
        rng = self.x_hello_range
        return {"row": self.name, "server": self.target, "workers": self.workers,
                "rounds": len(self.per_round), **self.measure.__dict__,
                "x_hello": self.x_hello, "x_naive": self.x_naive,
                "x_hello_min": rng[0] if rng else None, "x_hello_max": rng[1] if rng else None,
                "x_hello_rounds": self.x_hello_rounds, "x_naive_rounds": self.x_naive_rounds}


def summarize(samples: list[Sample], modes: list[str]) -> list[Row]:
    """Medians over rounds; a round's hello is the mean of its two runs."""
    taken: dict[tuple[str, str, int], dict[int, list[Measure]]] = {}
    for s in samples:
        taken.setdefault((s.name, s.target, s.workers), {}).setdefault(s.round, []) \
            .append(s.measure)
    figures = {key: {r: combine(ms, statistics.fmean) for r, ms in by_round.items()}
               for key, by_round in taken.items()}

    def baseline(name: str, workers: int) -> dict[int, Measure]:
        return figures.get((name, name, workers), {})

    rows = []
    for (name, target, workers), by_round in figures.items():
        hello, naive = baseline("hello", workers), baseline("naive", workers)
        if name.endswith(PACED):  # a paced row's rate is set, not measured: no ratios
            hello = naive = {}
        rounds = sorted(by_round)
        rows.append(Row(
            name, target, workers, combine([by_round[r] for r in rounds], statistics.median),
            [by_round[r] for r in rounds],
            [by_round[r].rps / hello[r].rps for r in rounds if r in hello],
            [by_round[r].rps / naive[r].rps for r in rounds if r in naive]))

    def order(row: Row) -> tuple[int, int]:
        # as the table always read: baselines, then each mode; worker counts within each
        mode = row.target.removeprefix("revoker-")
        group = 0 if row.target in BASELINES else 1 + (modes.index(mode) if mode in modes
                                                        else len(modes))
        return group, row.workers

    return sorted(rows, key=order)  # stable: measuring order within a group


# -- the run -------------------------------------------------------------------------------

class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.modes = [m for m in args.modes.split(",") if m]
        self.samples: list[Sample] = []
        self.rows: list[Row] = []
        self.extra: dict[str, Any] = {}
        self.tmp = Path(tempfile.mkdtemp(prefix="revoker-bench-"))

    def wanted(self, name: str) -> bool:
        only = self.args.only
        return not only or any(part in name for part in only.split(","))

    def redis_pid(self) -> int:
        return self.redis.proc.pid if self.redis.proc else 0

    def measure(self, target: Target, job: Job, workers: int, rnd: int, others: list[int],
                run: int = 1, delay_ms: int | None = None) -> None:
        server = target.server
        result = wrk(server.port, job.row, duration_s=self.args.duration, data=job.data,
                     key=target.key, server=server, redis_pid=self.redis_pid(), others=others,
                     delay_ms=delay_ms)
        self.samples.append(Sample(job.name, server.name, workers, rnd, run, result))
        print(f"  r{rnd + 1} {job.name:<34} {workers}w {result.rps:>9.0f} req/s  "
              f"p99 {result.p99_ms:6.2f} ms  non2xx {result.non2xx}", flush=True)

    def warm(self, target: Target) -> None:
        wrk(target.server.port, "check_jti", duration_s=1, data=self.data.revoked_file,
            key=target.key, server=target.server, redis_pid=0)

    # -- servers -----------------------------------------------------------------------

    def log(self, name: str) -> Path:
        return self.tmp / f"{name}-{uuid.uuid4().hex[:6]}.log"

    def baseline(self, mode: str, workers: int) -> Server:
        port, log = free_port(), self.log(f"{mode}{workers}")
        extra = [self.redis.url, self.data.prefix] if mode == "naive" else []
        procs = [spawn([PY, str(HERE / "baselines.py"), mode, str(port), *extra], log)
                 for _ in range(workers)]
        return Server(mode, port, procs, log)

    def nginx(self, workers: int) -> Server:
        port = free_port()
        prefix = self.tmp / f"nginx{workers}"
        (prefix / "logs").mkdir(parents=True, exist_ok=True)
        conf = prefix / "nginx.conf"
        conf.write_text(f"""
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {prefix}; proxy_temp_path {prefix}; fastcgi_temp_path {prefix};
  uwsgi_temp_path {prefix}; scgi_temp_path {prefix};
  server {{
    listen 127.0.0.1:{port} reuseport;
    location / {{ default_type application/json; return 200 '{{"revoked":false}}'; }}
  }}
}}
""")
        log = self.log(f"nginx{workers}")
        proc = spawn(["nginx", "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"], log)
        return Server("nginx", port, [proc], log)

    def revoker_env(self, port: int, workers: int, mode: str) -> dict[str, str]:
        return {"REVOKER_STORE_URL": self.redis.url, "REVOKER_PORT": str(port),
                "REVOKER_HOST": "127.0.0.1", "REVOKER_WORKERS": str(workers),
                "REVOKER_API_KEYS": self.data.keys_line, "REVOKER_ACCESS_LOG": "false",
                "REVOKER_LOG_LEVEL": "WARNING", "REVOKER_CHECK_MODE": mode,
                "REVOKER_JWT_PUBLIC_KEYS": str(self.data.key_dir),
                "REVOKER_JWT_ALGORITHMS": "RS256,ES256",
                "REVOKER_TOKEN_CACHE_SIZE": str(prep.TOKEN_CACHE_SIZE),
                "REVOKER_KEY_PREFIX": prep.prefix_for(mode)}

    def start_revoker(self, workers: int, mode: str) -> Server:
        port, log = free_port(), self.log(f"revoker-{mode}{workers}")
        proc = spawn([PY, "-m", "revoker", "serve"], log, self.revoker_env(port, workers, mode))
        return Server(f"revoker-{mode}", port, [proc], log)

    def revoker_jobs(self, mode: str) -> list[Job]:
        d = self.data
        jobs = [Job(f"{mode} check {CHECK_ROW}", "check_jti", d.revoked_file),
                Job(f"{mode} check POST /v1/check claims", "check_claims", d.revoked_file)]
        jobs += [Job(f"{mode} authz {alg} {kind}", "authz", d.tokens[(alg, kind)])
                 for alg in ("RS256", "ES256") for kind in ("repeated", "distinct")]
        jobs.append(Job(f"{mode} revoke POST /v1/revocations", "revoke", None))
        return [job for job in jobs if self.wanted(job.name)]

    def start_all(self, workers: int, stack: contextlib.ExitStack) -> list[Target]:
        """Every selected server for this worker count, started at once (each stopped by
        ``stack``), in the order their rows are measured in a round."""
        check = self.data.revoked_file
        targets: list[Target] = []

        def add(server: Server, ready_path: str | None, key: str, jobs: list[Job]) -> None:
            stack.callback(server.stop)
            targets.append(Target(server, ready_path, key, jobs))

        for mode in ("hello", "naive"):
            if self.wanted(mode):
                add(self.baseline(mode, workers), None, "", [Job(mode, "check_jti", check)])
        if shutil.which("nginx") and self.wanted("nginx"):
            add(self.nginx(workers), None, "", [Job("nginx", "check_jti", check)])
        for mode in self.modes:
            jobs = self.revoker_jobs(mode)
            if jobs:
                add(self.start_revoker(workers, mode), "/readyz", self.data.admin_key, jobs)
        return targets

    # -- rounds ------------------------------------------------------------------------

    def session(self, workers: int) -> None:
        with contextlib.ExitStack() as stack:
            targets = self.start_all(workers, stack)
            if not targets:
                return
            print(f"{workers} worker(s): started {', '.join(t.server.name for t in targets)}",
                  flush=True)
            for target in targets:
                target.server.wait_ready(target.ready_path)
            for target in targets:
                self.warm(target)
            hello = next((t for t in targets if t.server.name == "hello"), None)
            for rnd in range(self.args.rounds):
                for target in targets:
                    others = [pid for t in targets if t is not target for pid in t.server.pids()]
                    for job in target.jobs:
                        self.measure(target, job, workers, rnd, others)
                if hello is not None and len(targets) > 1:
                    others = [pid for t in targets if t is not hello for pid in t.server.pids()]
                    self.measure(hello, hello.jobs[0], workers, rnd, others, run=2)
                    self.paced(targets, hello, workers, rnd)
                for target in targets:
                    target.server.check_alive()

    def paced(self, targets: list[Target], hello: Target, workers: int, rnd: int) -> None:
        """The latency target's load: hello and each mode's ``GET /v1/check`` row again, at
        one request rate for all of them, ``PACE_SHARE`` of the slowest of those rows' rate
        in this round (so every server has room; at saturation a p99 is the queue behind
        each answer's CPU time, which the throughput ratios already measure)."""
        checks = [(target, job) for target in targets if target is not hello
                  for job in target.jobs if job.row == "check_jti" and
                  target.server.name.startswith("revoker-")]
        names = {job.name for _, job in checks}
        taken = [s.measure.rps for s in self.samples
                 if s.round == rnd and s.workers == workers and s.name in names]
        if not taken:
            return
        rate = PACE_SHARE * min(taken)
        delay_ms = max(1, round(CONNECTIONS * 1000 / rate))
        self.extra.setdefault("paced", []).append(
            {"workers": workers, "round": rnd, "delay_ms": delay_ms,
             "rate": round(CONNECTIONS * 1000 / delay_ms)})
        for target, job in [(hello, hello.jobs[0]), *checks]:
            others = [pid for t in targets if t is not target for pid in t.server.pids()]
            self.measure(target, Job(job.name + PACED, job.row, job.data), workers, rnd,
                         others, delay_ms=delay_ms)

    def redis_benchmark(self) -> None:
        if not self.wanted("redis-benchmark"):
            return
        for command in (["GET", "bench:absent"], ["EXISTS", "bench:absent"]):
            cmd = ["redis-benchmark", "-p", str(self.redis.port), "-c", str(CONNECTIONS),
                   "-n", str(int(40_000 * self.args.duration)), "--csv", *command]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            values = out.strip().splitlines()[-1].replace('"', "").split(",")
            rps, p50, p99 = float(values[1]), float(values[4]), float(values[6])
            self.extra.setdefault("redis_benchmark", {})[command[0]] = {
                "rps": rps, "p50_ms": p50, "p99_ms": p99}
            print(f"  redis-benchmark {command[0]:<18} {rps:>9.0f} req/s  p99 {p99:6.2f} ms")

    async def propagation(self) -> None:
        if not self.wanted("propagation"):
            return
        servers = [self.start_revoker(1, "mirror") for _ in range(2)]
        try:
            for server in servers:
                server.wait_ready("/readyz")
            ports = [s.port for s in servers]
            idle = await prep.propagation(ports, self.data.admin_key, count=200)
            load = subprocess.Popen(
                ["wrk", "-t", "1", "-c", str(CONNECTIONS), "-d", "60s", "-s", str(LUA),
                 f"http://127.0.0.1:{ports[0]}"],
                env={**os.environ, "BENCH_ROW": "check_jti", "BENCH_KEY": self.data.admin_key,
                     "BENCH_DATA": str(self.data.revoked_file)},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                time.sleep(1)
                loaded = await prep.propagation(ports, self.data.admin_key, count=200)
            finally:
                load.send_signal(signal.SIGINT)
                load.wait()
            self.extra["propagation_ms"] = {"idle": idle, "under_check_load": loaded}
            print(f"  mirror propagation idle   p50 {idle['p50']:.2f} ms p99 {idle['p99']:.2f}"
                  f" ms max {idle['max']:.2f} ms")
            print(f"  mirror propagation loaded p50 {loaded['p50']:.2f} ms p99 "
                  f"{loaded['p99']:.2f} ms max {loaded['max']:.2f} ms")
        finally:
            for server in servers:
                server.stop()

    # -- everything ------------------------------------------------------------------

    def prefixes(self) -> list[str]:
        """The key prefixes to load: the mirror's first (memory figures are taken on the first
        load, as when every mode shared it), then the other modes'."""
        order = sorted(self.modes, key=lambda mode: mode != "mirror")
        return [prep.prefix_for(mode) for mode in order] or [prep.PREFIX]

    def run(self) -> None:
        self.redis = RedisProcess().start()
        started = time.monotonic()
        try:
            print(f"redis on port {self.redis.port}; loading {self.args.records} revocations "
                  f"under {', '.join(self.prefixes())}", flush=True)
            self.data = asyncio.run(prep.prepare(self.redis, self.tmp, self.args.records,
                                                 self.extra, self.prefixes()))
            print(json.dumps({"memory": self.extra["memory"]}, indent=1), flush=True)
            self.redis_benchmark()
            for workers in [int(w) for w in self.args.workers.split(",")]:
                self.session(workers)
            if "mirror" in self.modes:
                asyncio.run(self.propagation())
            if self.wanted("pyjwt"):
                self.extra["pyjwt_decode_per_s"] = prep.pyjwt_loop(self.data)
        finally:
            self.redis.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.rows = summarize(self.samples, self.modes)
        self.report(time.monotonic() - started)

    def report(self, elapsed_s: float) -> None:
        from bench.report import render, targets

        table = render(self.rows, self.extra)
        print(table)
        verdicts = targets(self.rows, self.extra)
        for line in verdicts:
            print(line)
        rounds = [[s.as_dict() for s in self.samples if s.round == r]
                  for r in range(self.args.rounds)]
        out = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "machine": {"cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg(),
                           "python": platform.python_version(), "platform": platform.platform()},
               "settings": {"duration_s": self.args.duration, "rounds": self.args.rounds,
                            "connections": CONNECTIONS, "wrk_threads": THREADS,
                            "records": self.args.records, "revoked_share": 0.01,
                            "key_prefixes": {m: prep.prefix_for(m) for m in self.modes},
                            "naive_prefix": self.data.prefix,
                            "token_cache_size": prep.TOKEN_CACHE_SIZE,
                            "distinct_tokens": prep.DISTINCT_TOKENS,
                            "aggregation": "rows: median over rounds (requests, non2xx, "
                                           "socket_errors summed); a round's hello is the "
                                           "mean of its first and last run; x_hello/x_naive: "
                                           "median of per-round ratios"},
               "elapsed_s": round(elapsed_s, 1),
               "rows": [r.as_dict() for r in self.rows], "rounds": rounds, **self.extra,
               "targets": verdicts, "table": table}
        write_results("bench", out, elapsed_s)


def write_results(kind: str, out: dict[str, Any], elapsed_s: float,
                  path: Path | None = None) -> None:
    """A benchmark's JSON, by default as bench/results/<kind>-<time>-<random>.json."""
    if path is None:
        path = HERE / "results" / (f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-"
                                   f"{uuid.uuid4().hex[:4]}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    print(f"results written to {shown} ({elapsed_s / 60:.1f} min)")


def positive_int(text: str) -> int:
    """A count on the command line; 10_000_000 and 10,000,000 read as 10000000."""
    value = int(text.replace("_", "").replace(",", ""))
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds per row and round (default 5)")
    parser.add_argument("--rounds", type=positive_int, default=3,
                        help="times every row is measured; medians are reported (default 3)")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--modes", default="strict,mirror")
    parser.add_argument("--only", default="",
                        help="comma separated substrings of row names (hello, naive, nginx, "
                             "redis-benchmark, check, authz, revoke, propagation, pyjwt)")
    Bench(parser.parse_args()).run()


if __name__ == "__main__":
    main()
