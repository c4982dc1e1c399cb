#!/usr/bin/env python
"""Where a serving process's time goes, by layer: revoker beside aiohttp's hello.

    .venv/bin/python bench/where.py                          # every row, 3 rounds (~5 min)
    .venv/bin/python bench/where.py --rows check --modes mirror --rounds 5

Needs ``wrk``, ``redis-server`` and ``py-spy`` (Debian: ``apt-get install -y wrk
redis-server``; PyPI: ``pip install py-spy``), and the right to trace a process (root,
or ``kernel.yama.ptrace_scope=0``). Not part of the test suite.

``bench/request_cost.py`` counts the instructions of a whole request; this script says
where the time of a loaded server goes, the kernel's share included (a socket write's
system call is time spent in the frame that makes it). Each server (the same as
``bench/request_cost.py``'s: hello, and ``revoker serve`` with one worker per mode and
row) answers ``wrk`` (one thread, ``--connections``, the same request again and again)
while ``py-spy`` samples its stack ``--rate`` times a second, pausing it for each sample
so that every stack is read whole; an idle process (waiting in the event loop) is not
sampled. Each sample goes to the layer of its innermost frame:

- ``event loop``: uvloop and asyncio's own code (reading sockets, running callbacks);
- ``aiohttp``: aiohttp, yarl and multidict (parsing, the request and response objects,
  writing answers: a socket write's system call counts here);
- ``transport guard``, ``pipeline`` (``fastlane``, ``middlewares``), ``handlers``
  (the route handlers, their authorization and JSON), ``service and store``, ``tokens``,
  ``keys, metrics, model`` (the rest of revoker), ``hello's handler`` (the baseline's own
  function) and ``other Python`` (the standard library and generated code).

A library's sample taken while a routed request's handler ran (revoker's ``FastLane``
answer, hello's handler function) goes to the library's line ``in the handler``: building
the answer's response object, say. ``handler, in all`` sums every sample taken there: what
answering costs once aiohttp has handed a request over. Each share is also given in
microseconds per request: the process's CPU time over the run divided by the requests
answered. ``req/s, handler free`` divides the measured rate by the share left without the
handler: the most that work on the handler alone can give, the process being the
bottleneck. Every server is measured ``--rounds`` times, in turn, one round after the
other (the machine drifts); each figure is the median over the rounds, and each round's
req/s over hello's in that round is printed too. Results go to
bench/results/where-*.json.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.request_cost import (  # noqa: E402
    REPEATED_ROWS,
    Server,
    add_choices,
    chosen,
    connect,
    free_port,
    running,
    servers,
)

#: (layer, the start of the innermost frame's path within the project), first match wins.
PROJECT_LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("transport guard", ("revoker/web/transport.py",)),
    ("pipeline", ("revoker/web/fastlane.py", "revoker/web/middlewares.py")),
    ("handlers", ("revoker/web/",)),
    ("service and store", ("revoker/service.py", "revoker/store/")),
    ("tokens", ("revoker/tokens/",)),
    ("keys, metrics, model", ("revoker/",)),
    ("hello's handler", ("bench/baselines.py",)),
)
#: (layer, a directory in the innermost frame's path), for code outside the project.
LIBRARY_LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("aiohttp", ("/aiohttp/", "/yarl/", "/multidict/")),
    ("event loop", ("/asyncio/", "/uvloop/")),
)
#: Where the project's own code lives, for ``parse_frame``'s project-relative paths.
PROJECT_PATHS = ("revoker/", "bench/")
OTHER = "other Python"
#: What a library does when a handler calls it (building the answer, say) is the handler's.
IN_HANDLER = ", in the handler"
LAYERS = (*(name for name, _ in PROJECT_LAYERS),
          *(name + where for name, _ in LIBRARY_LAYERS for where in ("", IN_HANDLER)),
          OTHER, OTHER + IN_HANDLER)
#: (function, project path) of the frames in which a routed request's handler runs.
HANDLER_FRAMES = frozenset({("FastLane.__call__", "revoker/web/fastlane.py"),
                            ("hello_app.<locals>.hello", "bench/baselines.py")})
#: py-spy's frame with ``--full-filenames``: ``function (/path/to/file.py:line)``.
_FRAME = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")


def parse_frame(frame: str, root: Path) -> tuple[str, str]:
    """(function, path): within the project, the path from its root (``revoker/...``);
    elsewhere (the standard library, the virtualenv's packages) the full path."""
    found = _FRAME.match(frame)
    if found is None:
        return frame, ""
    function, path = found.group(1), found.group(2)
    prefix = f"{root}/"
    if path.startswith(prefix) and not path.startswith(f"{root}/.venv/"):
        return function, path[len(prefix):]
    return function, path


def layer_of(path: str) -> str:
    """The layer of a frame's path (as ``parse_frame`` gives it)."""
    for layer, starts in PROJECT_LAYERS:
        if path.startswith(starts):
            return layer
    for layer, parts in LIBRARY_LAYERS:
        if any(part in path for part in parts):
            return layer
    return OTHER


def classify(lines: Iterable[str], root: Path) -> tuple[collections.Counter[str], int, int]:
    """Samples by layer, the samples taken inside a handler, and all samples, from
    py-spy's raw output (``frame;frame;...;innermost count`` per line)."""
    layers: collections.Counter[str] = collections.Counter()
    handler = total = 0
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [parse_frame(frame, root) for frame in stack.split(";")]
        total += count
        layer = layer_of(frames[-1][1])
        if any(frame in HANDLER_FRAMES for frame in frames):
            handler += count
            if not frames[-1][1].startswith(PROJECT_PATHS):
                layer += IN_HANDLER
        layers[layer] += count
    return layers, handler, total


def wrk_command(port: int, request: bytes, connections: int, seconds: int) -> list[str]:
    """wrk sending ``request`` (a raw HTTP/1.1 request without a body) again and again."""
    head = request.decode().split("\r\n")
    _method, path, _version = head[0].split(" ")
    headers = [h for h in head[1:] if h and not h.lower().startswith("host:")]
    return ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s",
            *(arg for h in headers for arg in ("-H", h)), f"http://127.0.0.1:{port}{path}"]


def measure(server: Server, spy: str, seconds: int, rate: int,
            connections: int) -> dict[str, Any]:
    from bench.run import cpu_s

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="revoker-where-") as tmp:
        raw = Path(tmp) / "samples.txt"
        with running(server, port, Path(tmp) / "server.log", stop_timeout_s=60) as proc:
            connect(port, proc, server.request).close()
            subprocess.run(wrk_command(port, server.request, connections, 2), check=True,
                           capture_output=True)  # warm-up
            before = cpu_s([proc.pid])
            load = subprocess.Popen(wrk_command(port, server.request, connections, seconds),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            subprocess.run([spy, "record", "--pid", str(proc.pid), "--rate", str(rate),
                            "--duration", str(seconds), "--format", "raw", "--full-filenames",
                            "--output", str(raw)], check=True, capture_output=True)
            out, err_text = load.communicate(timeout=seconds + 60)
            spent = cpu_s([proc.pid]) - before
            answered = re.search(r"(\d+) requests in", out)
            if load.returncode != 0 or answered is None or "Non-2xx" in out:
                raise RuntimeError(f"{server.name}: wrk failed: {out[-500:]} {err_text[-500:]}")
        layers, handler, total = classify(raw.read_text().splitlines(), ROOT)
    requests = int(answered.group(1))
    per_request_us = spent / requests * 1e6
    return {"row": server.name, "requests_per_s": requests / seconds,
            "cpu_us_per_request": per_request_us, "samples": total,
            "layers": {name: count / total for name, count in layers.items()},
            "in_handler": handler / total}


def report(results: list[dict[str, Any]]) -> None:
    names = LAYERS
    width = max(len(r["row"]) for r in results) + 2
    first = max(len(name) for name in LAYERS) + 2
    print(f"{'layer':<{first}}" + "".join(f"{r['row']:>{width + 8}}" for r in results))

    def line(label: str, shares: list[float]) -> None:
        cells = "".join(f"{share * r['cpu_us_per_request']:>{width}.1f} µs {share:4.0%}"
                        for r, share in zip(results, shares, strict=True))
        print(f"{label:<{first}}{cells}")

    for name in names:
        shares = [r["layers"].get(name, 0.0) for r in results]
        if any(shares):
            line(name, shares)
    line("handler, in all", [r["in_handler"] for r in results])
    print(f"{'CPU per request':<{first}}" + "".join(
        f"{r['cpu_us_per_request']:>{width}.1f} µs     " for r in results))
    print(f"{'req/s':<{first}}" + "".join(f"{r['requests_per_s']:>{width + 8},.0f}"
                                     for r in results))
    print(f"{'req/s, handler free':<{first}}" + "".join(
        f"{r['requests_per_s'] / max(1e-9, 1 - r['in_handler']):>{width + 8},.0f}"
        for r in results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_choices(parser, REPEATED_ROWS)
    parser.add_argument("--seconds", type=int, default=15, help="sampled seconds per server")
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3,
                        help="times every server is measured, in turn; medians are reported")
    args = parser.parse_args()
    modes, rows = chosen(parser, args, REPEATED_ROWS)
    beside = Path(sys.executable).with_name("py-spy")
    spy = str(beside) if beside.exists() else shutil.which("py-spy")
    for tool, where in (("wrk", "apt-get install -y wrk"),
                        ("redis-server", "apt-get install -y redis-server")):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (Debian: {where})")
    if spy is None:
        parser.error("py-spy is not installed (pip install py-spy)")
    from bench.run import write_results
    from tests.redis_proc import RedisProcess

    started = time.monotonic()
    redis = RedisProcess().start()
    rounds: list[list[dict[str, Any]]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="revoker-where-keys-") as tmp:
            measured = servers(modes, rows, redis.url, Path(tmp))
            for number in range(1, args.rounds + 1):
                rounds.append([])
                for server in measured:
                    rounds[-1].append(measure(server, spy, args.seconds, args.rate,
                                              args.connections))
                    print(f"r{number} {server.name}: "
                          f"{rounds[-1][-1]['requests_per_s']:,.0f} req/s, "
                          f"{rounds[-1][-1]['samples']} samples", flush=True)
    finally:
        redis.stop()
    medians = [median_of(list(same)) for same in zip(*rounds, strict=True)]
    report(medians)
    if args.rounds > 1:
        print(f"medians over {args.rounds} rounds; x hello (req/s) in each round: " + "; ".join(
            f"{row['row']} " + ", ".join(f"{r[i]['requests_per_s'] / r[0]['requests_per_s']:.2f}"
                                         for r in rounds)
            for i, row in enumerate(medians) if i))
    write_results("where", {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": args.seconds,
        "rate": args.rate, "connections": args.connections, "medians": medians,
        "rounds": rounds}, time.monotonic() - started)


def median_of(measures: list[dict[str, Any]]) -> dict[str, Any]:
    """One row's measures over the rounds (the servers run in the same order each round):
    the median of each figure, each layer's share apart."""
    names = {name for m in measures for name in m["layers"]}
    return {"row": measures[0]["row"],
            **{key: statistics.median(m[key] for m in measures)
               for key in ("requests_per_s", "cpu_us_per_request", "samples", "in_handler")},
            "layers": {name: statistics.median(m["layers"].get(name, 0.0) for m in measures)
                       for name in names}}


if __name__ == "__main__":
    main()
