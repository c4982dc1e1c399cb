"""The host's mirror under a real 2-worker ``revoker serve`` on a real Redis: one table
for the host, written by a keeper process and read by both workers; a restarted worker
reads it at once; a killed keeper makes the workers strict (and not ready) within the
bound, and its replacement reloads."""

from __future__ import annotations

import glob
import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from revoker import apikeys
from tests.redis_proc import RedisProcess
from tests.serve_proc import ServeProcess

pytestmark = [pytest.mark.redis, pytest.mark.slow]

ADMIN = "rvk_mirror_host_admin_key_0123456789ab"
DEADLINE_S = 20.0
#: The mirror's hard bound (block 1 s + 1 s) and a margin for a busy machine.
BOUND_S = 2.0 + 3.0


def poll_until(condition: Callable[[], bool], *, what: str,
               timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def request(server: ServeProcess, path: str, method: str = "GET",
            body: Any = None) -> tuple[int, Any]:
    """One request on a fresh connection (so SO_REUSEPORT may pick either worker)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server.url + path, data=data, method=method, headers={
        "Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as err:
        raw, status = err.read(), err.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def children(pid: int) -> dict[int, str]:
    """Child pid -> its command name (``/proc/<pid>/comm``)."""
    found = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(entry)] = comm
    return found


def named(processes: dict[int, str], name: str) -> list[int]:
    """The pids of ``children``'s processes called ``name``, lowest first."""
    return sorted(pid for pid, comm in processes.items() if comm == name)


def mirror_states(server: ServeProcess, count: int = 6) -> list[tuple[int, dict[str, Any]]]:
    """``/readyz`` from several connections (either worker): (status, mirror detail)."""
    out = []
    for _ in range(count):
        status, body = request(server, "/readyz")
        out.append((status, body["checks"]["mirror"]))
    return out


def metric(server: ServeProcess, name: str) -> float:
    status, text = request(server, "/metrics")
    assert status == 200
    values = [sample.value for family in text_string_to_metric_families(text)
              for sample in family.samples if sample.name == name]
    assert len(values) == 1, f"{name}: {values}"
    return values[0]


@pytest.fixture
def serve(redis_server: RedisProcess, prefix: str) -> Iterator[ServeProcess]:
    server = ServeProcess({"REVOKER_STORE_URL": redis_server.url, "REVOKER_KEY_PREFIX": prefix,
                           "REVOKER_API_KEYS": apikeys.config_line("ops", ["admin"], ADMIN),
                           "REVOKER_WORKERS": "2", "REVOKER_CHECK_MODE": "mirror",
                           "REVOKER_ACCESS_LOG": "false"}, log_to_file=True)
    try:
        yield server
    finally:
        server.stop()
        server.remove_log()


def test_one_table_per_host_survives_worker_and_keeper_deaths(serve: ServeProcess) -> None:
    serve.start()
    for i in range(50):  # before the keeper loads and after: both reach the table
        status, _ = request(serve, "/v1/revocations", "POST",
                            {"kind": "jti", "value": f"early-{i}", "ttl": 600})
        assert status == 201
    poll_until(lambda: all(s == 200 for s, _ in mirror_states(serve)), what="in sync")
    assert serve.proc is not None
    supervisor = serve.proc.pid
    processes = children(supervisor)
    keepers = named(processes, "revoker-keeper")
    assert len(keepers) == 1, processes
    # By name: multiprocessing's resource tracker is a child of the supervisor too.
    workers = named(processes, "revoker-worker")
    assert len(workers) == 2, processes
    keeper = keepers[0]
    states = [state for _, state in mirror_states(serve)]
    assert {s["keeper_pid"] for s in states} == {keeper}
    assert {s["generation"] for s in states} == {states[0]["generation"]}
    loads = states[0]["resyncs"]

    # One table for the host, named after the supervisor; its size is a metric.
    control = f"/dev/shm/revoker-mirror-{supervisor}"
    tables = glob.glob(control + ".*")
    assert os.path.exists(control) and len(tables) == 1
    assert metric(serve, "revoker_mirror_bytes") == os.path.getsize(tables[0])
    assert metric(serve, "revoker_mirror_entries") == 50

    request(serve, "/v1/revocations", "POST", {"kind": "jti", "value": "late", "ttl": 600})
    poll_until(lambda: all(request(serve, "/v1/check/late")[1]["revoked"] for _ in range(6)),
               what="the revoke on both workers")

    # A worker dies: its replacement answers from the table at once; nothing reloads.
    worker = workers[0]
    os.kill(worker, signal.SIGKILL)
    poll_until(lambda: len(named(children(supervisor), "revoker-worker")) == 2 and
               worker not in children(supervisor), what="a replacement worker")
    # The replacement may answer /readyz (503, no table yet) an instant before it maps the
    # table; a sample that misses it proves nothing, so the poll asks, sample after sample,
    # for both workers ready on the same keeper with no load since (a reload would raise
    # ``resyncs`` for good and time the poll out).
    seen: list[tuple[int, dict[str, Any]]] = []

    def same_table_everywhere() -> bool:
        seen[:] = mirror_states(serve, 10)
        return all(status == 200 for status, _ in seen) and \
            {(s["keeper_pid"], s["resyncs"]) for _, s in seen} == {(keeper, loads)}

    try:
        poll_until(same_table_everywhere, timeout_s=BOUND_S,
                   what=f"both workers ready on keeper {keeper}'s table, {loads} load(s)")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the last answers: {seen}") from None
    assert glob.glob(control + ".*") == tables
    assert all(request(serve, f"/v1/check/early-{i}")[1]["revoked"] for i in range(10))

    # The keeper hangs: within the bound both workers read Redis (strict) and are not
    # ready; checks still answer, from the store, and see what the keeper cannot.
    os.kill(keeper, signal.SIGSTOP)
    poll_until(lambda: all(s == 503 for s, _ in mirror_states(serve)),
               what="workers out of sync", timeout_s=BOUND_S)
    request(serve, "/v1/revocations", "POST", {"kind": "jti", "value": "while-down",
                                               "ttl": 600})
    assert all(request(serve, "/v1/check/while-down")[1]["revoked"] for _ in range(6))
    assert not request(serve, "/v1/check/never")[1]["revoked"]
    # It dies: the supervisor starts another, which resumes from the table the dead one
    # left (no reload from Redis) and catches up with the events it missed.
    os.kill(keeper, signal.SIGKILL)
    poll_until(lambda: all(s == 200 for s, _ in mirror_states(serve)), what="recovery")
    states = [state for _, state in mirror_states(serve)]
    replacement = {s["keeper_pid"] for s in states}
    assert len(replacement) == 1 and keeper not in replacement
    assert children(supervisor).get(replacement.pop()) == "revoker-keeper"
    assert glob.glob(control + ".*") == tables, "the dead keeper's table is adopted"
    assert "mirror resumed from the host's table" in serve.log
    assert "mirror loaded" not in serve.log.split("mirror keeper (pid")[-1]
    assert all(request(serve, f"/v1/check/early-{i}")[1]["revoked"] for i in range(10))
    assert all(request(serve, "/v1/check/while-down")[1]["revoked"] for _ in range(6))
    assert "mirror keeper (pid" in serve.log

    serve.stop()
    assert not glob.glob(control + "*"), "segments are removed at exit"


def test_a_restarted_host_resumes_from_its_checkpoint(redis_server: RedisProcess, prefix: str,
                                                      tmp_path: Path) -> None:
    """``REVOKER_MIRROR_CHECKPOINT``: the keeper saves the table as the service stops; the
    next start restores it and reads only the events since, not every record."""
    saved = tmp_path / "mirror.ckpt"
    server = ServeProcess({"REVOKER_STORE_URL": redis_server.url, "REVOKER_KEY_PREFIX": prefix,
                           "REVOKER_API_KEYS": apikeys.config_line("ops", ["admin"], ADMIN),
                           "REVOKER_WORKERS": "2", "REVOKER_CHECK_MODE": "mirror",
                           "REVOKER_MIRROR_CHECKPOINT": str(saved)}, log_to_file=True)
    try:
        server.start()
        for i in range(20):
            request(server, "/v1/revocations", "POST", {"kind": "jti", "value": f"old-{i}",
                                                        "ttl": 600})
        poll_until(lambda: all(s == 200 for s, _ in mirror_states(server)), what="in sync")
        server.stop()
        assert "mirror checkpoint saved: 20 entries" in server.log
        assert saved.stat().st_mode & 0o777 == 0o600
        # While it is down: one more revoke and one unrevoke, only in the stream.
        writer = ServeProcess({"REVOKER_STORE_URL": redis_server.url,
                               "REVOKER_KEY_PREFIX": prefix,
                               "REVOKER_API_KEYS": apikeys.config_line("ops", ["admin"],
                                                                       ADMIN)})
        try:
            writer.start()
            request(writer, "/v1/revocations", "POST", {"kind": "jti", "value": "new",
                                                        "ttl": 600})
            assert request(writer, "/v1/revocations/jti/old-0", "DELETE")[0] == 204
        finally:
            writer.stop()

        server.start()
        poll_until(lambda: all(s == 200 for s, _ in mirror_states(server)), what="resumed")
        assert "mirror resumed from the checkpoint: 21 entries" in server.log
        assert "mirror loaded" not in server.log
        answers = [request(server, f"/v1/check/{v}")[1]["revoked"]
                   for v in ("old-0", "old-1", "new") for _ in range(3)]
        assert answers == [False] * 3 + [True] * 6
    finally:
        server.stop()
        server.remove_log()
