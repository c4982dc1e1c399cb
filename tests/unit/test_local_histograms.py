"""The hot path's latency histograms (``revoker.metrics.LocalHistogram``): what they expose is
what a prometheus_client ``Histogram`` would, and with several workers every worker's
snapshot file is merged at scrape time, dead workers' included, damaged ones skipped.

Where several processes matter, the workers are real processes (``python -c``) writing into
a real directory; ``revoker serve`` with two workers is covered by
tests/integration/test_serve.py.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.registry import Collector

from revoker import metrics

BOUNDS = metrics.LATENCY_BUCKETS
ROUTE_HIST = "revoker_http_request_duration_seconds"
STORE_HIST = "revoker_store_operation_duration_seconds"

#: A worker: publishes its histograms in argv[1] after observing argv[2] (JSON list of
#: [route, seconds]), prints the snapshot's path, then waits for a line on stdin (so that
#: a test can kill it while it is alive) unless argv[3] is "exit".
WORKER = """
import json, sys
from revoker import metrics
collector = metrics.share_histograms(sys.argv[1])
for route, seconds in json.loads(sys.argv[2]):
    metrics.HTTP_DURATION.labels(route=route).observe(seconds)
metrics.STORE_DURATION.labels(operation="lookup").observe(0.0002)
metrics.flush()
print(collector.own, flush=True)
if sys.argv[3] != "exit":
    sys.stdin.readline()
"""

#: A worker that rewrites its snapshot as fast as it can, one more observation each time,
#: until ``argv[2]`` exists (or 60 s pass: it always stops by itself).
REWRITER = """
import os, sys, time
from revoker import metrics
metrics.share_histograms(sys.argv[1])
child = metrics.HTTP_DURATION.labels(route="/busy")
print("started", flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(sys.argv[2]) and time.monotonic() < deadline:
    for _ in range(50):  # a bigger file: more bytes for a reader to catch half-written
        metrics.STORE_DURATION.labels(operation=f"op{child.counts[-1] % 40}").observe(0.001)
    child.observe(9.0)
    metrics.flush()
"""


def fresh() -> list[metrics.LocalHistogram]:
    """Histograms like the service's, empty (this test process's own are shared)."""
    return [metrics.LocalHistogram(h.name, h.documentation, h.labelnames, BOUNDS)
            for h in metrics.HISTOGRAMS]


def families(collector: Collector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect() for s in family.samples}


def get(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
        **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def run_worker(directory: Path, observations: list[tuple[str, float]]) -> Path:
    """A worker process that publishes its observations and exits."""
    out = subprocess.run([sys.executable, "-c", WORKER, str(directory),
                          json.dumps(observations), "exit"],
                         capture_output=True, text=True, check=True, timeout=60)
    return Path(out.stdout.strip())


@pytest.fixture
def live_worker(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path),
                             json.dumps([["/v1/check/{jti}", 0.0003]] * 3), "wait"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=30)


# -- one process ------------------------------------------------------------------------------

def test_an_observation_lands_in_the_first_bucket_whose_bound_it_does_not_exceed() -> None:
    hist = metrics.LocalHistogram("t_seconds", "test", ["route"], BOUNDS)
    child = hist.labels(route="/a")
    for seconds in (0.00005, 0.0001, 0.00010001, 0.001, 2.5, 3.0):
        child.observe(seconds)
    per_bucket = dict(zip(hist.le, child.counts, strict=True))
    assert per_bucket["0.0001"] == 2  # 0.00005 and the bound itself (le is inclusive)
    assert per_bucket["0.00025"] == 1
    assert per_bucket["0.001"] == 1
    assert per_bucket["2.5"] == 1
    assert per_bucket["+Inf"] == 1  # only what exceeds every bound
    assert sum(child.counts) == 6

    samples = families(metrics.HistogramCollector([hist]))
    cumulative = [get(samples, "t_seconds_bucket", route="/a", le=le) for le in hist.le]
    assert cumulative == sorted(cumulative), "buckets are cumulative"
    assert get(samples, "t_seconds_bucket", route="/a", le="0.0005") == 3
    assert get(samples, "t_seconds_bucket", route="/a", le="+Inf") == 6
    assert get(samples, "t_seconds_count", route="/a") == 6
    assert math.isclose(get(samples, "t_seconds_sum", route="/a"),
                        0.00005 + 0.0001 + 0.00010001 + 0.001 + 2.5 + 3.0)


def test_the_exposition_is_byte_for_byte_a_prometheus_client_histogram() -> None:
    """Same names, HELP, TYPE, label sets, ``le`` spellings, counts and sums: dashboards
    and alerts cannot tell the two apart."""
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("t_seconds", "Time of something", ["route", "method"],
                          buckets=BOUNDS, registry=theirs)
    local = metrics.LocalHistogram("t_seconds", "Time of something", ["route", "method"],
                                   BOUNDS)
    ours.register(metrics.HistogramCollector([local]))
    assert generate_latest(ours) == generate_latest(theirs), "no series yet"
    for i, seconds in enumerate((0.00004, 0.0001, 0.0004, 0.0031, 0.05, 0.7, 1.0, 4.2)):
        for route, method in (("/a", "GET"), ("/b/{id}", "POST")):
            reference.labels(route, method).observe(seconds * (i + 1))
            local.labels(route, method).observe(seconds * (i + 1))
    reference.labels(route="/c", method="GET").observe(0.002)
    local.labels(route="/c", method="GET").observe(0.002)
    assert generate_latest(ours) == generate_latest(theirs)


def test_the_service_histograms_keep_their_names_labels_and_help() -> None:
    assert (metrics.HTTP_DURATION.name, metrics.HTTP_DURATION.labelnames) == (
        ROUTE_HIST, ("route",))
    assert metrics.HTTP_DURATION.documentation == "Time to answer an HTTP request"
    assert (metrics.STORE_DURATION.name, metrics.STORE_DURATION.labelnames) == (
        STORE_HIST, ("operation",))
    assert metrics.STORE_DURATION.documentation == "Time of one store operation"
    assert metrics.HTTP_DURATION.bounds == tuple(BOUNDS)


def test_wrong_labels_are_refused() -> None:
    hist = metrics.LocalHistogram("t_seconds", "test", ["route"], BOUNDS)
    with pytest.raises(ValueError, match="labels"):
        hist.labels(path="/a")
    with pytest.raises(ValueError, match="labels"):
        hist.labels("/a", "GET")
    with pytest.raises(ValueError, match="buckets"):
        metrics.LocalHistogram("t_seconds", "test", [], [0.5, 0.1])
    assert hist.labels("/a") is hist.labels(route="/a")


def test_a_registry_refuses_the_same_histograms_twice() -> None:
    registry = CollectorRegistry()
    registry.register(metrics.HistogramCollector(fresh()))
    with pytest.raises(ValueError, match="Duplicated"):
        registry.register(metrics.HistogramCollector(fresh()))


# -- several workers ----------------------------------------------------------------------------

def test_every_worker_file_is_added_to_the_live_state(tmp_path: Path) -> None:
    first = run_worker(tmp_path, [("/v1/check/{jti}", 0.0003), ("/v1/check/{jti}", 0.002)])
    second = run_worker(tmp_path, [("/v1/check/{jti}", 0.0003), ("/v1/authz", 0.04)])
    assert first != second and first.parent == second.parent == tmp_path
    mine = fresh()
    mine[0].labels(route="/v1/check/{jti}").observe(7.0)  # this (the scraping) process
    samples = families(metrics.HistogramCollector(mine, directory=tmp_path))
    check = {"route": "/v1/check/{jti}"}
    assert get(samples, f"{ROUTE_HIST}_count", **check) == 4
    assert get(samples, f"{ROUTE_HIST}_bucket", le="0.0005", **check) == 2
    assert get(samples, f"{ROUTE_HIST}_bucket", le="0.0025", **check) == 3
    assert get(samples, f"{ROUTE_HIST}_bucket", le="2.5", **check) == 3
    assert get(samples, f"{ROUTE_HIST}_bucket", le="+Inf", **check) == 4
    assert math.isclose(get(samples, f"{ROUTE_HIST}_sum", **check), 0.0006 + 0.002 + 7.0)
    assert get(samples, f"{ROUTE_HIST}_count", route="/v1/authz") == 1
    assert get(samples, f"{STORE_HIST}_count", operation="lookup") == 2


def test_the_own_file_is_superseded_by_the_live_state(tmp_path: Path) -> None:
    mine = fresh()
    writer = metrics.SnapshotWriter(tmp_path, mine)
    mine[0].labels(route="/x").observe(0.001)
    writer.write()
    mine[0].labels(route="/x").observe(0.001)  # not yet written
    samples = families(metrics.HistogramCollector(mine, directory=tmp_path, own=writer.path))
    assert get(samples, f"{ROUTE_HIST}_count", route="/x") == 2  # not 3, not 1


def test_a_killed_worker_still_counts(tmp_path: Path,
                                      live_worker: subprocess.Popen[str]) -> None:
    assert live_worker.stdout is not None
    path = Path(live_worker.stdout.readline().strip())
    run_worker(tmp_path, [("/v1/check/{jti}", 0.0003)])
    collector = metrics.HistogramCollector(fresh(), directory=tmp_path)
    alive = families(collector)
    assert get(alive, f"{ROUTE_HIST}_count", route="/v1/check/{jti}") == 4
    os.kill(live_worker.pid, signal.SIGKILL)
    assert live_worker.wait(timeout=30) == -signal.SIGKILL
    assert path.exists(), "a dead worker's file stays"
    assert families(collector) == alive, "histograms are cumulative across worker deaths"


@pytest.mark.parametrize("content", [
    b"",
    b'{"format": 1, "histograms": {"revoker_http_request_duration_seconds": {"label',
    b"\xff\xfe\x00 not json",
    b"[1, 2, 3]",
    b'{"format": 99, "histograms": {}}',
    # right shape, wrong buckets (another version of revoker)
    json.dumps({"format": 1, "histograms": {ROUTE_HIST: {
        "labelnames": ["route"], "bounds": [0.1, 1.0],
        "series": [[["/v1/check/{jti}"], [1, 2, 3], 0.5]]}}}).encode(),
    # negative and fractional counts, a wrong count of buckets, labels that are not strings
    json.dumps({"format": 1, "histograms": {ROUTE_HIST: {
        "labelnames": ["route"], "bounds": list(BOUNDS),
        "series": [[["/v1/check/{jti}"], [-1] * (len(BOUNDS) + 1), 0.5]]}}}).encode(),
    json.dumps({"format": 1, "histograms": {ROUTE_HIST: {
        "labelnames": ["route"], "bounds": list(BOUNDS),
        "series": [[["/v1/check/{jti}"], [0.5] * (len(BOUNDS) + 1), 0.5]]}}}).encode(),
    json.dumps({"format": 1, "histograms": {ROUTE_HIST: {
        "labelnames": ["route"], "bounds": list(BOUNDS),
        "series": [[["/v1/check/{jti}"], [1] * len(BOUNDS), 0.5]]}}}).encode(),
    json.dumps({"format": 1, "histograms": {ROUTE_HIST: {
        "labelnames": ["route"], "bounds": list(BOUNDS),
        "series": [[[7], [1] * (len(BOUNDS) + 1), 0.5]]}}}).encode(),
    json.dumps({"format": 1, "histograms": {ROUTE_HIST: {
        "labelnames": ["route"], "bounds": list(BOUNDS),
        "series": [[["/v1/check/{jti}"], [1] * (len(BOUNDS) + 1), "0.5"]]}}}).encode(),
], ids=["empty", "truncated", "binary", "not-an-object", "other-format", "other-buckets",
        "negative", "fractional", "short", "label-type", "sum-type"])
def test_a_damaged_file_is_skipped_and_logged(tmp_path: Path, content: bytes,
                                              caplog: pytest.LogCaptureFixture) -> None:
    run_worker(tmp_path, [("/v1/check/{jti}", 0.0003)])
    damaged = tmp_path / f"{metrics.SNAPSHOT_PREFIX}999999-deadbeef{metrics.SNAPSHOT_SUFFIX}"
    damaged.write_bytes(content)
    collector = metrics.HistogramCollector(fresh(), directory=tmp_path)
    with caplog.at_level(logging.ERROR, logger="revoker.metrics"):
        samples = families(collector)
        again = families(collector)
    assert get(samples, f"{ROUTE_HIST}_count", route="/v1/check/{jti}") == 1, \
        "the damaged file adds nothing, not even part of itself; the good one counts"
    assert again == samples
    skipped = [r for r in caplog.records if "skipping the histogram snapshot" in r.message]
    assert len(skipped) == 1, "logged once per version of the file, not on every scrape"
    assert damaged.name in skipped[0].message


def test_a_reader_never_sees_a_half_written_snapshot(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """A worker rewrites its snapshot continuously while this process reads it: every read
    parses (the file is replaced, never rewritten in place) and counts never go back."""
    stop = tmp_path / "stop"
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", REWRITER, str(snapshots), str(stop)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "started"
        collector = metrics.HistogramCollector(fresh(), directory=snapshots)
        seen: list[float] = []
        with caplog.at_level(logging.ERROR, logger="revoker.metrics"):
            for _ in range(300):
                samples = families(collector)
                seen.append(samples.get((f"{ROUTE_HIST}_count", (("route", "/busy"),)), 0))
        assert writer.poll() is None, "the writer was still writing after the last read"
        assert not caplog.records, [r.message for r in caplog.records]
        assert seen == sorted(seen), "a count went back"
        assert seen[-1] > seen[0], "the reads overlapped the writes"
    finally:
        stop.touch()
        writer.communicate(timeout=60)
    assert writer.returncode == 0


def test_a_failed_write_is_logged_and_the_next_one_recovers(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    mine = fresh()
    writer = metrics.SnapshotWriter(directory, mine)
    mine[0].labels(route="/x").observe(0.001)
    directory.rmdir()  # nowhere to write: like a full or vanished disk
    with caplog.at_level(logging.INFO, logger="revoker.metrics"):
        writer.write()  # does not raise: the flusher must go on
        mine[0].labels(route="/x").observe(0.001)
        writer.write()
        assert [r.levelname for r in caplog.records] == ["ERROR"], "logged once per spell"
        directory.mkdir()
        writer.write()
    assert "written again" in caplog.records[-1].message
    decoded = metrics.decode_snapshot(writer.path.read_bytes(), fresh())
    assert decoded[ROUTE_HIST] == [(("/x",), [0, 0, 0, 0, 1 + 1] + [0] * 12, 0.002)]
    assert not list(directory.glob(".*")), "no temporary file is left behind"


def test_an_unchanged_state_is_not_rewritten(tmp_path: Path) -> None:
    """Every write is a new file renamed over the old one (a new inode): an idle worker's
    flush every second leaves its file alone."""
    mine = fresh()
    writer = metrics.SnapshotWriter(tmp_path, mine)
    mine[1].labels(operation="lookup").observe(0.0002)
    writer.write()
    inode = writer.path.stat().st_ino
    writer.write()
    assert writer.path.stat().st_ino == inode
    mine[1].labels(operation="lookup").observe(0.0002)
    writer.write()
    assert writer.path.stat().st_ino != inode


def test_sharing_twice_in_one_process_keeps_one_file(tmp_path: Path) -> None:
    """A second ``share_histograms`` of the same directory (a second app in one worker)
    reuses the process's file: it must not be counted as another worker's."""
    script = """
import sys
from prometheus_client import CollectorRegistry
from revoker import metrics
first = metrics.share_histograms(sys.argv[1])
second = metrics.share_histograms(sys.argv[1])
metrics.HTTP_DURATION.labels(route="/twice").observe(0.001)
metrics.flush()
registry = CollectorRegistry()
registry.register(second)
print(first.own == second.own,
      registry.get_sample_value("revoker_http_request_duration_seconds_count",
                                {"route": "/twice"}))
"""
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                         text=True, check=True, timeout=60).stdout.split()
    assert out == ["True", "1.0"]
    assert len(list(tmp_path.glob(f"{metrics.SNAPSHOT_PREFIX}*"))) == 1
