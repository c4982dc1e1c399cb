#!/usr/bin/env python
"""Instructions per request of the fast lane's own work, counted, not timed.

    .venv/bin/python bench/lane_cost.py                          # this tree (~15 min)
    .venv/bin/python bench/lane_cost.py --against HEAD~3         # and a git ref (~30 min)
    .venv/bin/python bench/lane_cost.py --rows authz --modes mirror

Needs ``valgrind`` and ``redis-server`` (Debian: ``apt-get install -y valgrind
redis-server``). On a shared machine wall-clock figures move by 10-20 % from one run to the
next, more than most changes to the hot path; an instruction count does not.

Each measurement is one process (``--child``) under ``valgrind --tool=callgrind`` with
instrumentation off. It starts its own Redis on a free port, builds the application as
``revoker serve`` does (``create_app`` behind ``LaneRunner``, one worker, the mirror's
keeper in-process), waits until the mirror is in sync and warms up. This script then turns
instrumentation on (``callgrind_control -i on``), lets the child hand N requests to the
lane (``FastLane.__call__`` through the answer: no socket, no HTTP parsing or writing, no
transport guard), and turns it off. The figure is the difference between N = 6,000 and
N = 2,000, over 4,000: what is fixed (the switch itself) cancels out. In mirror mode the
measured requests never yield to the event loop (the keeper and the metrics' flush, whose
work follows wall time, which valgrind stretches, do not run among them), so the count
repeats from run to run; in strict mode each lookup waits for Redis, the loop runs, and
the count moves by a few per cent.

Valgrind runs the code on the instruction set it emulates, without the SHA extensions:
OpenSSL's SHA-256 then counts about 29,000 instructions for an 800-byte token against
16,000 for ``hashlib.blake2b``, while on a CPU with them (``sha_ni``) it takes 1.4 against
2.1 µs. Counts of code that hashes are comparable with each other, not with the hardware.

Rows: ``authz``, one repeated RS256 token (a gateway's case); ``check``, one repeated jti;
``check-new``, a new jti on every request (nothing repeats). Every request is an object of
its own, as a server makes one per request: a reused one would keep what it parsed (its
URL's path, its query) and undercount the rows that repeat by about 4 %. Results go to
bench/results/lane-cost-*.json. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

ROWS = ("authz", "check", "check-new")
SHORT, LONG = 2000, 6000
#: Requests the lane answers before instrumentation: caches, the keeper's first reads.
WARM_UP = 50
#: Strict mode: how often the loop runs among requests that do not wait for Redis.
YIELD_EVERY = 20


# -- the child: one application, N requests --------------------------------------------

async def child(mode: str, row: str, count: int, sync: Path, key_file: Path) -> None:
    """Serve ``count`` lane requests of ``row`` between the parent's two switches."""
    import jwt
    from aiohttp.test_utils import make_mocked_request
    from cryptography.hazmat.primitives import serialization

    from revoker import apikeys
    from revoker.config import Settings
    from revoker.store.mirror import MirrorStore
    from revoker.web.app import create_app
    from revoker.web.fastlane import LaneRunner
    from revoker.web.state import STORE
    from tests.redis_proc import RedisProcess

    private = serialization.load_pem_private_key(key_file.read_bytes(), None)
    keys = sync / "keys"
    keys.mkdir()
    (keys / "rs256.pem").write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    now = int(time.time())
    token = jwt.encode({"sub": "user-1", "jti": str(uuid.UUID(int=7)), "iat": now,
                        "exp": now + 3600}, private, algorithm="RS256",  # type: ignore[arg-type]
                       headers={"kid": "rs256"})
    gateway_key = apikeys.generate()
    redis = RedisProcess().start()
    runner = None
    try:
        settings = Settings.from_env({
            "REVOKER_STORE_URL": redis.url, "REVOKER_CHECK_MODE": mode,
            "REVOKER_API_KEYS": apikeys.config_line("gateway", ["check"], gateway_key),
            "REVOKER_JWT_PUBLIC_KEYS": str(keys), "REVOKER_JWT_ALGORITHMS": "RS256"})
        app = create_app(settings)
        runner = LaneRunner(app)
        await runner.setup()
        assert runner.server is not None
        lane = runner.server.request_handler

        def request(path: str, **headers: str) -> Any:
            return make_mocked_request("GET", path, app=app,
                                       headers={"X-Revoker-Key": gateway_key, "Host": "x",
                                                **headers})

        # A request object per request, even when they are alike: a request (and its URL)
        # caches what it has parsed once, which a server's next request would parse again.
        total = WARM_UP + count
        if row == "authz":
            requests = [request("/v1/authz", Authorization=f"Bearer {token}",
                                **{"X-Original-URI": "/orders/7", "X-Original-Method": "GET"})
                        for _ in range(total)]
        elif row == "check":
            requests = [request(f"/v1/check/{uuid.UUID(int=8)}") for _ in range(total)]
        else:
            requests = [request(f"/v1/check/{uuid.UUID(int=i)}") for i in range(total)]
        store = app[STORE]
        deadline = time.monotonic() + 60
        while isinstance(store, MirrorStore) and not store.in_sync:
            if time.monotonic() > deadline:
                raise RuntimeError("the mirror did not get in sync")
            await asyncio.sleep(0.05)
        mirror = isinstance(store, MirrorStore)
        if isinstance(store, MirrorStore):
            # The measured requests never yield to the event loop, so neither the keeper
            # nor the metrics' flush runs among them: their work depends on wall time,
            # which valgrind stretches by as much as the machine is busy. The table stays
            # the one in use without the keeper heard from meanwhile.
            store.max_lag_s = 3600.0
        for i, each in enumerate(requests):
            if i == WARM_UP:
                (sync / "ready").write_text(str(os.getpid()))
                while not (sync / "go").exists():
                    time.sleep(0.01)  # blocking: nothing else runs meanwhile
            answer = await lane(each)
            if answer.status != 200:
                raise RuntimeError(f"{row}: answered {answer.status}")
            if not mirror and i % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        (sync / "done").write_text("")
        while not (sync / "off").exists():
            time.sleep(0.01)
        if isinstance(store, MirrorStore) and not store.in_sync:
            raise RuntimeError("the mirror fell out of sync: the count includes Redis reads")
    finally:
        if runner is not None:
            await runner.cleanup()
        redis.stop()


# -- the parent: switches and arithmetic -----------------------------------------------

def wait_for(path: Path, proc: subprocess.Popen[bytes], timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"the measured process ended early ({proc.returncode})")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {path.name} from the measured process")
        time.sleep(0.1)


def count_once(tree: Path, mode: str, row: str, count: int, key_file: Path) -> int:
    """Instructions of ``count`` requests (plus the switches), in one valgrind run."""
    from bench.callgrind import control

    with tempfile.TemporaryDirectory(prefix="revoker-lane-") as tmp:
        sync = Path(tmp)
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                   f"--callgrind-out-file={sync / 'callgrind.out'}", sys.executable,
                   str(Path(__file__).resolve()), "--child", mode, row, str(count), str(sync),
                   str(key_file)]
        env = {**os.environ, "PYTHONPATH": str(tree)}
        with (sync / "valgrind.log").open("wb") as err:
            proc = subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.DEVNULL,
                                    stderr=err)
        try:
            wait_for(sync / "ready", proc)
            pid = (sync / "ready").read_text()
            control(pid, "-i", "on")
            (sync / "go").write_text("")
            wait_for(sync / "done", proc)
            control(pid, "-i", "off")
            (sync / "off").write_text("")
            if proc.wait(timeout=300) != 0:
                raise RuntimeError((sync / "valgrind.log").read_text()[-2000:])
        finally:
            if proc.poll() is None:
                proc.kill()
        found = re.search(r"Collected : (\d+)", (sync / "valgrind.log").read_text())
        if found is None:
            raise RuntimeError("callgrind reported no count")
        return int(found.group(1))


def per_request(tree: Path, mode: str, row: str, key_file: Path) -> float:
    short = count_once(tree, mode, row, SHORT, key_file)
    long = count_once(tree, mode, row, LONG, key_file)
    return (long - short) / (LONG - SHORT)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        import uvloop
        mode, row, count = sys.argv[2:5]
        uvloop.run(child(mode, row, int(count), Path(sys.argv[5]), Path(sys.argv[6])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", default="mirror,strict")
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--against", default="", help="a git ref measured beside this tree")
    args = parser.parse_args()
    # Here, not at the top: the measured child must import revoker from its own tree.
    sys.path.insert(0, str(ROOT))
    from bench.callgrind import require_tools

    require_tools(parser)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from bench.refs import checkout
    from bench.run import write_results

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="revoker-lane-key-") as tmp, \
            contextlib.ExitStack() as stack:
        key_file = Path(tmp) / "rs256.key"  # one key for every process: same work each time
        key_file.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=2048)
                             .private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
        trees = {"this tree": ROOT}
        if args.against:
            trees[args.against] = stack.enter_context(checkout(args.against))
        results: list[dict[str, Any]] = []
        for mode in args.modes.split(","):
            for row in args.rows.split(","):
                if row not in ROWS:
                    parser.error(f"unknown row {row!r}; rows: {', '.join(ROWS)}")
                counts = {name: per_request(tree, mode, row, key_file)
                          for name, tree in trees.items()}
                results.append({"mode": mode, "row": row, "instructions": counts})
                shown = "  ".join(f"{name}: {value:,.0f}" for name, value in counts.items())
                change = ""
                if args.against:
                    base = counts[args.against]
                    change = f"  ({(counts['this tree'] - base) / base:+.1%})"
                print(f"{mode:<6} {row:<9} instructions per request  {shown}{change}",
                      flush=True)
    elapsed = time.monotonic() - started
    write_results("lane-cost", {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                "against": args.against or None, "short": SHORT,
                                "long": LONG, "results": results}, elapsed)


if __name__ == "__main__":
    main()
