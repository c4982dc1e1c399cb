#!/usr/bin/env python
"""The benchmark: revoker and its baselines, side by side, in one run.

    /work/venv/bin/python bench/run.py                 # full run, 10 s per row
    /work/venv/bin/python bench/run.py --duration 5 --only check,hello,naive

Starts its own redis-server on a free port, loads 100k revocations, then measures with wrk
over loopback (64 connections, 2 threads, ~1% of checks naming a revoked jti):
baselines (aiohttp hello on uvloop, naive aiohttp + ``redis.exists``, nginx ``return 200``
when installed, redis-benchmark) and revoker (strict and mirror; 1 and 2 workers) on
``GET /v1/check/{jti}``, ``POST /v1/check``, ``/v1/authz`` (RS256/ES256, one repeated
token and distinct tokens) and ``POST /v1/revocations``. Also: mirror propagation (2xx
revoke -> every worker refuses), Redis bytes per revoked jti, the mirror's bytes per entry,
a bare PyJWT decode loop. Prints a table; writes JSON to bench/results/.

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
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench import prep  # noqa: E402
from tests.redis_proc import RedisProcess, free_port, wait_port  # noqa: E402

PY = sys.executable
LUA = HERE / "wrk" / "mix.lua"
CONNECTIONS = 64
THREADS = 2
CHECK_ROW = "GET /v1/check/{jti}"
TICK = os.sysconf("SC_CLK_TCK")


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
    """N processes serving one port; stopped with SIGTERM."""

    name: str
    port: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

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


def spawn(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env={**os.environ, **(env or {})}, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_http(port: int, path: str, *, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    wait_port(port, timeout_s=timeout_s)
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} on port {port} never answered 200")
        time.sleep(0.1)


@contextlib.contextmanager
def running(server: Server, ready_path: str | None = None) -> Iterator[Server]:
    try:
        if ready_path:
            wait_http(server.port, ready_path)
        else:
            wait_port(server.port, timeout_s=30)
        yield server
    finally:
        server.stop()


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


def wrk(port: int, row: str, *, duration_s: float, data: Path | None, key: str,
        server: Server, redis_pid: int) -> Measure:
    env = {**os.environ, "BENCH_ROW": row, "BENCH_KEY": key, "BENCH_THREADS": str(THREADS)}
    if data is not None:
        env["BENCH_DATA"] = str(data)
    cmd = ["wrk", "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{max(1, round(duration_s))}s",
           "--timeout", "5s", "-s", str(LUA), f"http://127.0.0.1:{port}"]
    pids = server.pids()
    server_before, redis_before = cpu_s(pids), cpu_s([redis_pid])
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)  # reaped here: its rusage is wrk's own CPU
    proc.returncode = os.waitstatus_to_exitcode(status)
    server_cpu, redis_cpu = cpu_s(pids) - server_before, cpu_s([redis_pid]) - redis_before
    line = next((x for x in out.decode().splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {err.decode()[-500:]} {out.decode()[-500:]}")
    result = json.loads(line[6:])
    n = max(result["requests"], 1)
    wrk_cpu = usage.ru_utime + usage.ru_stime
    rps = result["requests"] / (result["duration_us"] / 1e6)
    return Measure(requests=result["requests"], rps=rps,
                   p50_ms=result["p50_us"] / 1000, p99_ms=result["p99_us"] / 1000,
                   p999_ms=result["p999_us"] / 1000, non2xx=result["non2xx"],
                   socket_errors=result["socket_errors"], server_cpu_us=server_cpu / n * 1e6,
                   redis_cpu_us=redis_cpu / n * 1e6, wrk_cpu_us=wrk_cpu / n * 1e6)


# -- the run -------------------------------------------------------------------------------

@dataclass
class Row:
    name: str
    target: str
    workers: int
    measure: Measure

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.name, "server": self.target, "workers": self.workers,
                **self.measure.__dict__}


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rows: list[Row] = []
        self.extra: dict[str, Any] = {}
        self.tmp = Path(tempfile.mkdtemp(prefix="revoker-bench-"))

    def wanted(self, name: str) -> bool:
        only = self.args.only
        return not only or any(part in name for part in only.split(","))

    def measure(self, name: str, server: Server, workers: int, row: str, data: Path | None,
                key: str = "") -> None:
        if not self.wanted(name):
            return
        result = wrk(server.port, row, duration_s=self.args.duration, data=data, key=key,
                     server=server, redis_pid=self.redis.proc.pid if self.redis.proc else 0)
        self.rows.append(Row(name, server.name, workers, result))
        print(f"  {name:<34} {workers}w {result.rps:>9.0f} req/s  p99 {result.p99_ms:6.2f} ms"
              f"  non2xx {result.non2xx}", flush=True)

    def warm(self, server: Server, row: str, data: Path | None, key: str = "") -> None:
        wrk(server.port, row, duration_s=1, data=data, key=key, server=server, redis_pid=0)

    # -- baselines ---------------------------------------------------------------------

    def baselines(self, workers: int) -> None:
        for mode in ("hello", "naive"):
            if not self.wanted(mode):
                continue
            port = free_port()
            extra = [self.redis.url, self.data.prefix] if mode == "naive" else []
            procs = [spawn([PY, str(HERE / "baselines.py"), mode, str(port), *extra])
                     for _ in range(workers)]
            with running(Server(mode, port, procs)) as server:
                self.warm(server, "check_jti", self.data.revoked_file)
                self.measure(mode, server, workers, "check_jti", self.data.revoked_file)
        if shutil.which("nginx") and self.wanted("nginx"):
            self.nginx(workers)

    def nginx(self, workers: int) -> None:
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
        proc = spawn(["nginx", "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"])
        with running(Server("nginx", port, [proc])) as server:
            self.warm(server, "check_jti", self.data.revoked_file)
            self.measure("nginx", server, workers, "check_jti", self.data.revoked_file)

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

    # -- revoker ----------------------------------------------------------------------

    def revoker_env(self, port: int, workers: int, mode: str) -> dict[str, str]:
        return {"REVOKER_STORE_URL": self.redis.url, "REVOKER_PORT": str(port),
                "REVOKER_HOST": "127.0.0.1", "REVOKER_WORKERS": str(workers),
                "REVOKER_API_KEYS": self.data.keys_line, "REVOKER_ACCESS_LOG": "false",
                "REVOKER_LOG_LEVEL": "WARNING", "REVOKER_CHECK_MODE": mode,
                "REVOKER_JWT_PUBLIC_KEYS": str(self.data.key_dir),
                "REVOKER_JWT_ALGORITHMS": "RS256,ES256",
                "REVOKER_TOKEN_CACHE_SIZE": str(prep.TOKEN_CACHE_SIZE)}

    def start_revoker(self, workers: int, mode: str) -> Server:
        port = free_port()
        proc = spawn([PY, "-m", "revoker", "serve"], self.revoker_env(port, workers, mode))
        return Server(f"revoker-{mode}", port, [proc])

    def revoker(self, workers: int, mode: str) -> None:
        names = [f"{mode} check {CHECK_ROW}", f"{mode} check POST /v1/check claims",
                 f"{mode} revoke POST /v1/revocations",
                 *[f"{mode} authz {alg} {kind}" for alg in ("RS256", "ES256")
                   for kind in ("repeated", "distinct")]]
        if not any(self.wanted(n) for n in names):
            return
        d, key = self.data, self.data.admin_key
        with running(self.start_revoker(workers, mode), "/readyz") as server:
            self.warm(server, "check_jti", d.revoked_file, key)
            self.measure(f"{mode} check {CHECK_ROW}", server, workers, "check_jti",
                         d.revoked_file, key)
            self.measure(f"{mode} check POST /v1/check claims", server, workers,
                         "check_claims", d.revoked_file, key)
            for alg in ("RS256", "ES256"):
                for kind in ("repeated", "distinct"):
                    self.measure(f"{mode} authz {alg} {kind}", server, workers, "authz",
                                 d.tokens[(alg, kind)], key)
            self.measure(f"{mode} revoke POST /v1/revocations", server, workers, "revoke",
                         None, key)

    async def propagation(self) -> None:
        if not self.wanted("propagation"):
            return
        servers = [self.start_revoker(1, "mirror") for _ in range(2)]
        try:
            for server in servers:
                wait_http(server.port, "/readyz")
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

    def run(self) -> None:
        self.redis = RedisProcess().start()
        try:
            print(f"redis on port {self.redis.port}; loading {self.args.records} revocations",
                  flush=True)
            self.data = asyncio.run(prep.prepare(self.redis, self.tmp, self.args.records,
                                                 self.extra))
            print(json.dumps({"memory": self.extra["memory"]}, indent=1), flush=True)
            self.redis_benchmark()
            workers_list = [int(w) for w in self.args.workers.split(",")]
            for workers in workers_list:
                self.baselines(workers)
            for mode in self.args.modes.split(","):
                for workers in workers_list:
                    self.revoker(workers, mode)
            if "mirror" in self.args.modes:
                asyncio.run(self.propagation())
            if self.wanted("pyjwt"):
                self.extra["pyjwt_decode_per_s"] = prep.pyjwt_loop(self.data)
        finally:
            self.redis.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.report()

    def report(self) -> None:
        from bench.report import render, targets

        table = render(self.rows, self.extra)
        print(table)
        verdicts = targets(self.rows, self.extra)
        for line in verdicts:
            print(line)
        out = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "machine": {"cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg(),
                           "python": platform.python_version(), "platform": platform.platform()},
               "settings": {"duration_s": self.args.duration, "connections": CONNECTIONS,
                            "wrk_threads": THREADS, "records": self.args.records,
                            "revoked_share": 0.01,
                            "token_cache_size": prep.TOKEN_CACHE_SIZE,
                            "distinct_tokens": prep.DISTINCT_TOKENS},
               "rows": [r.as_dict() for r in self.rows], **self.extra, "targets": verdicts,
               "table": table}
        results = HERE / "results"
        results.mkdir(exist_ok=True)
        path = results / f"bench-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}.json"
        path.write_text(json.dumps(out, indent=1))
        print(f"results written to {path.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per row")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--modes", default="strict,mirror")
    parser.add_argument("--only", default="",
                        help="comma separated substrings of row names (hello, naive, nginx, "
                             "redis-benchmark, check, authz, revoke, propagation, pyjwt)")
    Bench(parser.parse_args()).run()


if __name__ == "__main__":
    main()
