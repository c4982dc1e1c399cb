#!/usr/bin/env python
"""What revoker costs behind a real gateway: nginx ``auth_request``, side by side, in one run.

    .venv/bin/python bench/gateway.py                        # 3 s per row, 3 rounds (~4 min)
    .venv/bin/python bench/gateway.py --duration 2 --rounds 2 --only gateway
    .venv/bin/python bench/gateway.py --against HEAD~1 --access-log default   # A/B, one run

Needs ``nginx``, ``wrk`` and ``redis-server`` (Debian: ``apt-get install -y nginx wrk
redis-server``). Starts its own Redis on a free port and, each on its own free port:

- ``app``: nginx answering ``return 200`` — the protected application, and the
  "nginx alone" row when wrk asks it directly;
- one nginx per gateway row, running the shipped ``deploy/nginx/revoker.conf`` with only its
  addresses and gateway key replaced (as ``tests/integration/test_nginx.py`` does): the
  forward-auth upstream with ``keepalive 32``, ``proxy_http_version 1.1``, the identity
  headers, and ``protected_app`` pointing at ``app`` over a Unix socket (no TIME_WAIT pile
  on loopback); nginx's ``worker_processes auto`` as Debian ships it;
- ``floor``: ``bench/baselines.py allow`` (the hello baseline — aiohttp on uvloop, 2
  processes on one port, SO_REUSEPORT — answering 200 with an empty body, as revoker does:
  nginx keeps an ``auth_request`` upstream connection only when the answer has no body) as
  the forward-auth: it answers 200 to everything, so it is the most any Python forward-auth
  on aiohttp can do on this machine;
- revoker (``revoker serve``, ``REVOKER_WORKERS=2``, uvloop) in strict and mirror mode, each
  with ``REVOKER_ACCESS_LOG`` at its default (``skip-hot-2xx``: no line for these rows' 2xx
  answers) and at ``all`` (a line per request; INFO, text, stderr to a file).

With ``--against REF``, each revoker row is measured a second time against that git ref's
revoker (checked out in a temporary worktree, its own key prefix in the same Redis), in the
same rounds: on a shared machine, a change is judged by the two rows of one run, not by two
runs.

Rows (wrk over loopback, 64 connections, 2 threads, ``bench/wrk/mix.lua``'s authz row: one
repeated valid RS256 token, ``GET /orders/7``):

- gateway: nginx alone; nginx proxying to the application without ``auth_request``; nginx
  with ``auth_request`` to the floor; to each revoker. Ratios against the floor row of the
  same round ("x floor").
- direct (no nginx), for the access log's cost: the floor server itself ("hello", empty
  body), and each
  revoker's ``GET /v1/check/{jti}`` and ``/v1/authz`` (same token). Ratios against hello.

Rounds are interleaved (every row once per round, the floor / hello measured first and last
and averaged), because the machine drifts: each row reports the median over rounds and the
median and min-max of its per-round ratio, plus the p99 difference to its baseline at the
same load. Per row also the CPU per request of nginx, of the forward-auth server and of
Redis. JSON goes to bench/results/gateway-*.json. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.refs import checkout  # noqa: E402
from bench.run import CONNECTIONS, THREADS, Server, run_wrk, spawn, write_results  # noqa: E402
from revoker import apikeys  # noqa: E402
from tests.nginx_conf import main_conf  # noqa: E402
from tests.redis_proc import RedisProcess, free_port  # noqa: E402

PY = sys.executable
DEPLOY_CONF = ROOT / "deploy" / "nginx" / "revoker.conf"
WORKERS = 2
PATH = "/orders/7"
#: The target: revoker behind nginx at least this share of the aiohttp floor's req/s.
GATEWAY_TARGET = 0.8
#: Revoked jtis loaded before the run, so that lookups are not of an empty denylist.
REVOKED = 200

APP_SITE = """
server {{
    listen 127.0.0.1:{port} reuseport;
    listen unix:{sock};
    location / {{ default_type application/json; return 200 '{{"ok":true}}'; }}
}}
"""


# -- servers -------------------------------------------------------------------------------

@dataclass
class Keys:
    key_dir: Path
    token_file: Path
    gateway_key: str
    admin_key: str

    @property
    def keys_line(self) -> str:
        return ",".join([apikeys.config_line("nginx", ["check"], self.gateway_key),
                         apikeys.config_line("bench-admin", ["admin"], self.admin_key)])


def make_keys(tmp: Path) -> Keys:
    """One RS256 key and one valid token, repeated on every request (the verified-token
    cache's case: what a gateway sees from a logged-in user)."""
    key_dir = tmp / "keys"
    key_dir.mkdir()
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (key_dir / "rs256.pem").write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    now = int(time.time())
    token = jwt.encode({"sub": "user-1", "jti": str(uuid.uuid4()), "iat": now,
                        "exp": now + 3 * 3600}, private, algorithm="RS256",
                       headers={"kid": "rs256"})
    token_file = tmp / "token.txt"
    token_file.write_text(token + "\n")
    return Keys(key_dir, token_file, apikeys.generate(), apikeys.generate())


def start_nginx(tmp: Path, name: str, site: str, port: int) -> Server:
    prefix = tmp / name
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    (prefix / "site.conf").write_text(site)
    (prefix / "nginx.conf").write_text(main_conf(prefix, include="site.conf",
                                                 workers="auto", connections=4096))
    command = ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
               "-e", str(prefix / "error.log"), "-g", "daemon off;"]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    if checked.returncode != 0:
        raise RuntimeError(f"nginx {name}: {checked.stderr}")
    log = prefix / "stderr.log"
    return Server(f"nginx-{name}", port, [spawn(command, log)], log)


def render_deploy(*, listen: int, authz_port: int, app_sock: Path, key: str,
                  auth: bool = True) -> str:
    """The shipped snippet with this run's addresses and key (nothing else changed), or
    without its ``auth_request`` line for the no-auth proxy row."""
    text = DEPLOY_CONF.read_text()
    replacements = {"127.0.0.1:8080": f"127.0.0.1:{authz_port}",
                    "127.0.0.1:3000": f"unix:{app_sock}",
                    "127.0.0.1:8000": f"127.0.0.1:{listen}",
                    "REPLACE-WITH-CHECK-KEY": key}
    if not auth:
        replacements["auth_request /_revoker_authz;"] = "# (no auth_request: proxy row)"
    for old, new in replacements.items():
        if old not in text:
            raise RuntimeError(f"{DEPLOY_CONF} no longer contains {old!r}")
        text = text.replace(old, new)
    return text


@dataclass(frozen=True)
class Variant:
    """A forward-auth server: the floor, or revoker in a mode with the access log on/off."""

    label: str
    mode: str | None = None
    access_log: str | None = None
    #: Another version's worktree (``--against``): that revoker is the one served.
    tree: Path | None = None


def start_variant(variant: Variant, tmp: Path, redis_url: str, keys: Keys,
                  log_format: str) -> Server:
    port = free_port()
    log = tmp / f"{variant.label.replace(' ', '-')}.log"
    if variant.mode is None:
        procs = [spawn([PY, str(HERE / "baselines.py"), "allow", str(port)], log)
                 for _ in range(WORKERS)]
        return Server(variant.label, port, procs, log)
    env = {"REVOKER_STORE_URL": redis_url, "REVOKER_PORT": str(port),
           "REVOKER_HOST": "127.0.0.1", "REVOKER_WORKERS": str(WORKERS),
           "REVOKER_API_KEYS": keys.keys_line, "REVOKER_CHECK_MODE": variant.mode,
           "REVOKER_LOG_LEVEL": "INFO", "REVOKER_LOG_FORMAT": log_format,
           "REVOKER_JWT_PUBLIC_KEYS": str(keys.key_dir), "REVOKER_JWT_ALGORITHMS": "RS256",
           "REVOKER_KEY_PREFIX": f"{variant.mode}:{'ref:' if variant.tree else ''}"}
    if variant.access_log is not None:
        env["REVOKER_ACCESS_LOG"] = variant.access_log
    command = [PY, "-m", "revoker", "serve"]
    if variant.tree is None:
        return Server(variant.label, port, [spawn(command, log, env)], log)
    # ``-m`` imports from the working directory first, the workers inherit its path
    env["PYTHONPATH"] = str(variant.tree)
    return Server(variant.label, port, [spawn(command, log, env, cwd=variant.tree)], log)


def revoke_some(server: Server, keys: Keys, count: int) -> Path:
    """``count`` jti revocations through the API (each mode has its own key prefix); their
    jtis go to a file that mix.lua's check row names in 1% of its requests."""
    jtis = [f"gw-{uuid.uuid4()}" for _ in range(count)]
    for jti in jtis:
        body = json.dumps({"kind": "jti", "value": jti, "ttl": 3600}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.port}/v1/revocations", data=body, method="POST",
            headers={"X-Revoker-Key": keys.admin_key, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as reply:
            if reply.status != 201:
                raise RuntimeError(f"revoke answered {reply.status}")
    path = server.log.with_suffix(".jtis") if server.log else Path(tempfile.mktemp())
    path.write_text("\n".join(jtis) + "\n")
    return path


# -- load ----------------------------------------------------------------------------------

@dataclass
class Job:
    """One row: where wrk sends what, and whose CPU counts."""

    group: str  # "gateway" or "direct"
    name: str
    port: int
    row: str  # mix.lua's BENCH_ROW
    path: str
    data: Path
    key: str
    nginx: list[Server]
    backend: Server | None
    baseline: bool = False


@dataclass
class Figure:
    rps: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    non2xx: int
    errors: int
    nginx_us: float
    backend_us: float
    redis_us: float
    wrk_us: float


def measure(job: Job, duration_s: float, redis_pid: int) -> Figure:
    env = {"BENCH_ROW": job.row, "BENCH_KEY": job.key, "BENCH_PATH": job.path,
           "BENCH_DATA": str(job.data)}
    nginx = [pid for server in job.nginx for pid in server.pids()]
    backend = job.backend.pids() if job.backend else []
    result, wrk_cpu, spent = run_wrk(job.port, env, duration_s, [nginx, backend, [redis_pid]])
    n = max(result["requests"], 1)
    per = [cpu / n * 1e6 for cpu in spent]
    return Figure(rps=result["requests"] / (result["duration_us"] / 1e6),
                  p50_ms=result["p50_us"] / 1000, p99_ms=result["p99_us"] / 1000,
                  p999_ms=result["p999_us"] / 1000, non2xx=result["non2xx"],
                  errors=result["socket_errors"], nginx_us=per[0], backend_us=per[1],
                  redis_us=per[2], wrk_us=wrk_cpu / n * 1e6)


@dataclass
class Row:
    group: str
    name: str
    rounds: list[Figure] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    p99_deltas: list[float] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return float(statistics.median(getattr(f, attr) for f in self.rounds))

    def as_dict(self) -> dict[str, Any]:
        return {"group": self.group, "row": self.name,
                **{k: self.median(k) for k in Figure.__dataclass_fields__},
                "non2xx_total": sum(f.non2xx for f in self.rounds),
                "errors_total": sum(f.errors for f in self.rounds),
                "ratio": statistics.median(self.ratios) if self.ratios else None,
                "ratio_rounds": self.ratios,
                "p99_delta_ms": statistics.median(self.p99_deltas) if self.p99_deltas else None,
                "p99_delta_rounds": self.p99_deltas,
                "rounds": [f.__dict__ for f in self.rounds]}


def mean_figure(figures: list[Figure]) -> Figure:
    values: dict[str, Any] = {k: statistics.fmean(getattr(f, k) for f in figures)
              for k in Figure.__dataclass_fields__}
    values["non2xx"] = sum(f.non2xx for f in figures)
    values["errors"] = sum(f.errors for f in figures)
    return Figure(**values)


# -- the run -------------------------------------------------------------------------------

class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="revoker-gateway-"))
        # nginx's workers run as an unprivileged user: they must reach app.sock in here
        self.tmp.chmod(0o711)
        self.rows: dict[tuple[str, str], Row] = {}
        self.ref_tree: Path | None = None  # --against's worktree, once checked out

    def wanted(self, group: str) -> bool:
        return not self.args.only or group in self.args.only.split(",")

    def variants(self) -> list[Variant]:
        out = [Variant("floor (aiohttp 200)")]
        for mode in self.args.modes.split(","):
            for setting in self.args.access_log.split(","):
                access_log = None if setting == "default" else setting
                out.append(Variant(f"revoker {mode} log={setting}", mode, access_log))
                if self.ref_tree is not None:
                    out.append(Variant(f"revoker {mode} log={setting} @{self.args.against}",
                                       mode, access_log, self.ref_tree))
        return out

    def jobs(self, stack: contextlib.ExitStack, redis: RedisProcess) -> list[Job]:
        keys = make_keys(self.tmp)
        started: list[Server] = []

        def keep(server: Server) -> Server:
            stack.callback(server.stop)
            started.append(server)
            return server

        variants = self.variants()
        backends = {v.label: keep(start_variant(v, self.tmp, redis.url, keys,
                                                self.args.log_format)) for v in variants}
        app_port, sock = free_port(), self.tmp / "app.sock"
        app = keep(start_nginx(self.tmp, "app", APP_SITE.format(port=app_port, sock=sock),
                               app_port))
        fronts: dict[str, Server] = {}
        if self.wanted("gateway"):
            port = free_port()
            fronts["proxy"] = keep(start_nginx(
                self.tmp, "proxy", render_deploy(listen=port, authz_port=1, app_sock=sock,
                                                 key=keys.gateway_key, auth=False), port))
            for i, v in enumerate(variants):
                port = free_port()
                fronts[v.label] = keep(start_nginx(
                    self.tmp, f"front{i}",
                    render_deploy(listen=port, authz_port=backends[v.label].port,
                                  app_sock=sock, key=keys.gateway_key), port))
        for server in started:
            server.wait_ready("/readyz" if server.name.startswith("revoker") else None)
        jtis = {v.label: revoke_some(backends[v.label], keys, REVOKED)
                for v in variants if v.mode is not None}
        jtis["floor (aiohttp 200)"] = next(iter(jtis.values()), keys.token_file)

        token, key = keys.token_file, keys.gateway_key
        jobs: list[Job] = []
        if self.wanted("gateway"):
            floor = variants[0].label
            jobs.append(Job("gateway", "nginx alone (return 200)", app_port, "authz", PATH,
                            token, key, [app], None))
            jobs.append(Job("gateway", "nginx proxy, no auth_request", fronts["proxy"].port,
                            "authz", PATH, token, key, [fronts["proxy"], app], None))
            jobs.append(Job("gateway", f"nginx + {floor}", fronts[floor].port, "authz", PATH,
                            token, key, [fronts[floor], app], backends[floor], baseline=True))
            jobs += [Job("gateway", f"nginx + {v.label}", fronts[v.label].port, "authz", PATH,
                         token, key, [fronts[v.label], app], backends[v.label])
                     for v in variants[1:]]
        if self.wanted("direct"):
            hello = backends[variants[0].label]
            jobs.append(Job("direct", "hello (aiohttp, empty 200)", hello.port, "check_jti", PATH,
                            jtis[variants[0].label], key, [], hello, baseline=True))
            for v in variants[1:]:
                server = backends[v.label]
                jobs.append(Job("direct", f"{v.label} GET /v1/check/{{jti}}", server.port,
                                "check_jti", PATH, jtis[v.label], key, [], server))
                jobs.append(Job("direct", f"{v.label} /v1/authz", server.port, "authz",
                                "/v1/authz", token, key, [], server))
        return jobs

    def run(self) -> None:
        redis = RedisProcess().start()
        started = time.monotonic()
        try:
            with contextlib.ExitStack() as stack:
                if self.args.against:
                    self.ref_tree = stack.enter_context(checkout(self.args.against))
                jobs = self.jobs(stack, redis)
                redis_pid = redis.proc.pid if redis.proc else 0
                for job in jobs:  # warm-up: caches, connections, JIT-free but page-faulted
                    measure(job, 1, redis_pid)
                for rnd in range(self.args.rounds):
                    self.round(rnd, jobs, redis_pid)
        finally:
            redis.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.report(time.monotonic() - started)

    def round(self, rnd: int, jobs: list[Job], redis_pid: int) -> None:
        """Every row once; each group's baseline first and last (its round figure is the
        mean of the two), the ratios against that."""
        for group in ("gateway", "direct"):
            members = [job for job in jobs if job.group == group]
            if not members:
                continue
            base = next(job for job in members if job.baseline)
            taken: dict[str, Figure] = {}
            ends = []
            for job in [base, *(j for j in members if j is not base)]:
                figure = measure(job, self.args.duration, redis_pid)
                if job is base:
                    ends.append(figure)
                else:
                    taken[job.name] = figure
                self.show(rnd, job, figure)
            ends.append(measure(base, self.args.duration, redis_pid))
            self.show(rnd, base, ends[-1])
            base_figure = mean_figure(ends)
            for name, figure in [(base.name, base_figure), *taken.items()]:
                row = self.rows.setdefault((group, name), Row(group, name))
                row.rounds.append(figure)
                row.ratios.append(figure.rps / base_figure.rps)
                row.p99_deltas.append(figure.p99_ms - base_figure.p99_ms)

    @staticmethod
    def show(rnd: int, job: Job, f: Figure) -> None:
        print(f"  r{rnd + 1} {job.group:<7} {job.name:<48} {f.rps:>8.0f} req/s  "
              f"p99 {f.p99_ms:6.2f} ms  non2xx {f.non2xx}", flush=True)

    def report(self, elapsed_s: float) -> None:
        rows = list(self.rows.values())
        table = render(rows)
        verdicts = targets(rows, self.args.access_log.split(",")[0])
        print(table)
        for line in verdicts:
            print(line)
        out = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "machine": {"cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg(),
                           "python": platform.python_version(),
                           "nginx": nginx_version()},
               "settings": {"duration_s": self.args.duration, "rounds": self.args.rounds,
                            "connections": CONNECTIONS, "wrk_threads": THREADS,
                            "workers": WORKERS, "log_format": self.args.log_format,
                            "path": PATH},
               "elapsed_s": round(elapsed_s, 1), "rows": [r.as_dict() for r in rows],
               "targets": verdicts, "table": table}
        write_results("gateway", out, elapsed_s)


def nginx_version() -> str:
    done = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False)
    return done.stderr.strip()


def render(rows: list[Row]) -> str:
    head = (f"| {'group':<7} | {'row':<48} | {'req/s':>7} | {'x base':>6} | "
            f"{'x range':>9} | {'p50 ms':>6} | {'p99 ms':>6} | {'Δp99 ms':>7} | "
            f"{'nginx µs':>8} | {'auth µs':>7} | {'redis µs':>8} | {'wrk µs':>6} | "
            f"{'non2xx':>6} |")
    lines = [head, "|" + "|".join("-" * len(c) for c in head.split("|")[1:-1]) + "|"]
    for r in rows:
        ratio, spread = statistics.median(r.ratios), f"{min(r.ratios):.2f}-{max(r.ratios):.2f}"
        delta = statistics.median(r.p99_deltas)
        lines.append(
            f"| {r.group:<7} | {r.name:<48} | {r.median('rps'):>7.0f} | {ratio:>6.2f} | "
            f"{spread:>9} | {r.median('p50_ms'):>6.2f} | {r.median('p99_ms'):>6.2f} | "
            f"{delta:>+7.2f} | {r.median('nginx_us'):>8.1f} | {r.median('backend_us'):>7.1f} | "
            f"{r.median('redis_us'):>8.1f} | {r.median('wrk_us'):>6.1f} | "
            f"{sum(f.non2xx + f.errors for f in r.rounds):>6} |")
    rounds = max((len(r.rounds) for r in rows), default=0)
    lines.append(f"medians over {rounds} round(s); x base: median (and min-max) of each "
                 "round's req/s ratio to the group's baseline (gateway: nginx + floor; "
                 "direct: hello); Δp99: row p99 minus the baseline's p99 in the same round; "
                 "CPU in µs per request; non2xx: non-2xx answers and socket errors, summed")
    return "\n".join(lines)


def targets(rows: list[Row], first_setting: str) -> list[str]:
    out = []
    for r in rows:
        if r.group == "gateway" and r.name.startswith("nginx + revoker"):
            ratio = statistics.median(r.ratios)
            out.append(f"{'PASS' if ratio >= GATEWAY_TARGET else 'FAIL'}  {r.name} >= "
                       f"{GATEWAY_TARGET}x nginx + floor: {ratio:.2f}x (rounds "
                       f"{min(r.ratios):.2f}-{max(r.ratios):.2f}); p99 "
                       f"{statistics.median(r.p99_deltas):+.2f} ms vs the floor's")
    by_name = {(r.group, r.name): r for r in rows}
    for r in rows:  # the access log's cost: each log=all row against its first setting's twin
        if "log=all" not in r.name or r.name.endswith(f"log={first_setting}"):
            continue
        twin = by_name.get((r.group, r.name.replace("log=all", f"log={first_setting}")))
        if twin is None:
            continue
        on, off = r.median("backend_us"), twin.median("backend_us")
        cost = [a.rps / b.rps for a, b in zip(r.rounds, twin.rounds, strict=True)]
        label = " ".join(r.name.replace("log=all", "").split())
        out.append(f"INFO  access log all vs {first_setting}, {r.group} {label}: req/s "
                   f"x{statistics.median(cost):.2f} (rounds {min(cost):.2f}-"
                   f"{max(cost):.2f}), revoker CPU {on:.1f} vs {off:.1f} µs/req "
                   f"({on - off:+.1f})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0,
                        help="seconds per row and round (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--modes", default="strict,mirror")
    parser.add_argument("--access-log", default="default,all",
                        help="REVOKER_ACCESS_LOG values to run each mode with, the first "
                             "being what 'all' is compared with; 'default' leaves it unset "
                             "(skip-hot-2xx: no line for these rows' 2xx answers) "
                             "(default: default,all)")
    parser.add_argument("--log-format", default="text", choices=("text", "json"))
    parser.add_argument("--only", default="", help="gateway, direct (default: both)")
    parser.add_argument("--against", default="",
                        help="a git ref whose revoker is measured beside this one")
    for tool in ("nginx", "wrk", "redis-server"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (Debian: apt-get install -y {tool})")
    Bench(parser.parse_args()).run()


if __name__ == "__main__":
    main()
