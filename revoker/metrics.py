"""Every Prometheus object of the service, in one place, with conventional names.

Labels never carry a jti, sub, token or key: only bounded sets (route templates, kinds,
sources, reasons).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import platform
import secrets
from bisect import bisect_left
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from prometheus_client import REGISTRY, Counter, Gauge, disable_created_metrics
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from revoker import __version__

log = logging.getLogger(__name__)

# ``*_created`` series double the scrape size and no dashboard here uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.0075,
                          0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

HTTP_REQUESTS = Counter("revoker_http_requests", "HTTP requests answered",
                        ["route", "method", "status"])
CHECKS = Counter("revoker_checks", "Revocation checks by result (ok, revoked, error)",
                 ["result"])
REVOCATIONS = Counter("revoker_revocations", "Revocations stored, by kind and source",
                      ["kind", "source"])
UNREVOCATIONS = Counter("revoker_unrevocations", "Revocations removed by an admin", ["kind"])
STORE_ERRORS = Counter("revoker_store_errors", "Store operations that failed", ["operation"])
FAIL_OPEN = Counter("revoker_fail_open", "Requests accepted without revocation state "
                    "because the store failed and REVOKER_FAIL_MODE=open")
TOKEN_REJECTIONS = Counter("revoker_token_rejections", "Tokens refused, by reason", ["reason"])
# Sampled in the background by one process (revoker.active), never computed per scrape.
REVOCATIONS_ACTIVE = Gauge("revoker_revocations_active",
                           "Revocations currently stored, by kind, as of the last sample "
                           "(see revoker_revocations_active_sampled_timestamp_seconds)",
                           ["kind"], multiprocess_mode="livemax")
ACTIVE_SAMPLED = Gauge("revoker_revocations_active_sampled_timestamp_seconds",
                       "Unix time at which revoker_revocations_active was last counted",
                       multiprocess_mode="livemax")
# Set by the mirror's keeper (REVOKER_CHECK_MODE=mirror): one table per host.
MIRROR_ENTRIES = Gauge("revoker_mirror_entries", "Entries in the host's denylist mirror "
                       "(live ones and expired ones not yet swept)",
                       multiprocess_mode="livemax")
MIRROR_BYTES = Gauge("revoker_mirror_bytes", "Bytes of the host's denylist mirror table "
                     "(shared by every worker)", multiprocess_mode="livemax")
MIRROR_CHECKPOINT_SAVED = Gauge(
    "revoker_mirror_checkpoint_saved_timestamp_seconds",
    "When the mirror's keeper last saved a checkpoint (REVOKER_MIRROR_CHECKPOINT)",
    multiprocess_mode="max")
WORKER_RESTARTS = Counter("revoker_worker_restarts", "Worker processes restarted by the "
                          "supervisor after they died (REVOKER_WORKERS > 1)")
# An Info metric is not aggregated in multiprocess mode; a constant gauge is.
BUILD_INFO = Gauge("revoker_build_info", "Version of the running revoker (always 1)",
                   ["version", "python"], multiprocess_mode="max")
BUILD_INFO.labels(version=__version__, python=platform.python_version()).set(1)


# -- the hot path's counts and latencies, kept locally ----------------------------------------
#
# With several workers, every prometheus_client increment or observation takes a lock,
# makes a getpid() system call and writes an mmap'ed file: about 5.4 µs per histogram
# observation with several workers, 2.0 µs with one (one or two per request). The hot path
# therefore counts in plain Python, through public prometheus_client APIs only (revoker
# touches no private attribute of a dependency):
#
# - Counters (``FastCounter``): ``flush`` adds the local counts to the real metrics with the
#   public ``Counter.inc(amount)`` every FLUSH_INTERVAL_S and before ``/metrics`` answers.
# - Histograms (``LocalHistogram``): prometheus_client has no public way to add many
#   observations at once, so the two latency histograms are not prometheus_client objects
#   at all. Each keeps, per label set, one count per bucket and a sum (an observation is a
#   ``bisect`` on the bounds and two additions, about 0.1 µs), and ``HistogramCollector``
#   (the public collector protocol, ``HistogramMetricFamily``) exposes them with the same
#   names, labels, buckets and ``_bucket``/``_count``/``_sum`` series as a ``Histogram``.
#   With several workers, ``flush`` also writes this worker's cumulative histograms to a
#   snapshot file of its own in the multiprocess directory (a temporary file renamed over
#   the old one, so that a reader sees a whole snapshot or the previous one, never a torn
#   write), and the collector of the worker that answers a scrape adds every other worker's
#   file to its own live state. Files of dead workers stay in the directory, so their
#   observations keep counting (histograms are cumulative, as in prometheus_client's
#   multiprocess mode); a file that cannot be read or parsed is skipped and logged.
#
# A scrape sees its own worker exactly and the others at most one interval late; a worker
# killed with SIGKILL loses at most its last interval.

FLUSH_INTERVAL_S: Final = 1.0


class FastCounter:
    """A labelled counter child, counted locally."""

    __slots__ = ("child", "pending")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.pending = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.pending += amount

    def flush(self) -> None:
        if self.pending:
            amount, self.pending = self.pending, 0.0
            self.child.inc(amount)


_TALLIES: list[FastCounter] = []


def fast_counter(child: Any) -> FastCounter:
    tally = FastCounter(child)
    _TALLIES.append(tally)
    return tally


class HistogramChild:
    """One label set of a ``LocalHistogram``: a count per bucket (not cumulative; the last
    one is ``+Inf``'s own) and the sum of the observations."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        # ``le`` is inclusive: the first bound >= amount, or the +Inf slot past the last.
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.sum += amount


#: (label values, per-bucket counts, sum): one label set's state, as merged and exposed.
Series = tuple[tuple[str, ...], list[int], float]


class LocalHistogram:
    """A labelled histogram kept in plain Python; exposed by ``HistogramCollector``."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 buckets: Sequence[float]) -> None:
        bounds = tuple(float(b) for b in buckets if not math.isinf(b))
        if not bounds or list(bounds) != sorted(set(bounds)):
            raise ValueError(f"{name}: buckets must be distinct and ascending")
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = bounds
        self.le = (*(floatToGoString(b) for b in bounds), "+Inf")  # type: ignore[no-untyped-call]
        self.children: dict[tuple[str, ...], HistogramChild] = {}

    def labels(self, *values: object, **by_name: object) -> HistogramChild:
        """The child of one label set (resolve it once and keep it: this is a dict lookup
        and a tuple, more than an observation costs)."""
        if by_name:
            if values or set(by_name) != set(self.labelnames):
                raise ValueError(f"{self.name}: labels are {self.labelnames}")
            values = tuple(by_name[n] for n in self.labelnames)
        elif len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: labels are {self.labelnames}")
        key = tuple(str(v) for v in values)
        child = self.children.get(key)
        if child is None:
            child = self.children[key] = HistogramChild(self.bounds)
        return child

    def series(self) -> list[Series]:
        """This process's state, copied (a scrape never sees a list being added to)."""
        return [(key, list(child.counts), child.sum) for key, child in self.children.items()]

    def family(self, series: Iterable[Series]) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for key, counts, total in sorted(series, key=lambda s: s[0]):
            cumulative, running = [], 0
            for le, count in zip(self.le, counts, strict=True):
                running += count
                cumulative.append((le, float(running)))
            family.add_metric(list(key), cumulative, total)
        return family


HTTP_DURATION = LocalHistogram("revoker_http_request_duration_seconds",
                               "Time to answer an HTTP request", ["route"], LATENCY_BUCKETS)
STORE_DURATION = LocalHistogram("revoker_store_operation_duration_seconds",
                                "Time of one store operation", ["operation"], LATENCY_BUCKETS)
HISTOGRAMS: Final = (HTTP_DURATION, STORE_DURATION)

#: Snapshot files in the multiprocess directory: ``revoker-histograms-<pid>-<random>.json``
#: (random: a later worker that gets a dead one's pid must not overwrite its counts).
SNAPSHOT_PREFIX: Final = "revoker-histograms-"
SNAPSHOT_SUFFIX: Final = ".json"
SNAPSHOT_FORMAT: Final = 1


def _merge(into: dict[str, dict[tuple[str, ...], tuple[list[int], float]]], name: str,
           series: Iterable[Series]) -> None:
    merged = into[name]
    for key, counts, total in series:
        known = merged.get(key)
        if known is None:
            merged[key] = (list(counts), total)
        else:
            merged[key] = ([a + b for a, b in zip(known[0], counts, strict=True)],
                           known[1] + total)


def encode_snapshot(histograms: Iterable[LocalHistogram]) -> bytes:
    """One process's cumulative histograms, as its snapshot file holds them."""
    return json.dumps({"format": SNAPSHOT_FORMAT, "pid": os.getpid(), "histograms": {
        h.name: {"labelnames": h.labelnames, "bounds": h.bounds,
                 "series": [[key, counts, total] for key, counts, total in h.series()]}
        for h in histograms}}, separators=(",", ":")).encode()


def decode_snapshot(data: bytes, histograms: Iterable[LocalHistogram]) -> dict[str, list[Series]]:
    """The series of a snapshot file by histogram name; ValueError unless every part of it
    fits the histograms of this process (names, labels, bounds, counts), so that a damaged
    file is refused whole rather than merged in part."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != SNAPSHOT_FORMAT:
        raise ValueError("not a histogram snapshot of this format")
    stored = document.get("histograms")
    if not isinstance(stored, dict):
        raise ValueError("no histograms")
    decoded: dict[str, list[Series]] = {}
    for h in histograms:
        entry = stored.get(h.name)
        if entry is None:
            continue  # that process observed nothing of it
        if not isinstance(entry, dict) or tuple(entry.get("labelnames", ())) != h.labelnames \
                or entry.get("bounds") != list(h.bounds) \
                or not isinstance(entry.get("series"), list):
            raise ValueError(f"{h.name}: labels or buckets differ")
        series: list[Series] = []
        for item in entry["series"]:
            if not (isinstance(item, list) and len(item) == 3):
                raise ValueError(f"{h.name}: malformed series")
            key, counts, total = item
            if not (isinstance(key, list) and len(key) == len(h.labelnames)
                    and all(isinstance(v, str) for v in key)):
                raise ValueError(f"{h.name}: malformed labels")
            if not (isinstance(counts, list) and len(counts) == len(h.bounds) + 1
                    and all(type(c) is int and c >= 0 for c in counts)):
                raise ValueError(f"{h.name}: malformed bucket counts")
            if type(total) not in (int, float):
                raise ValueError(f"{h.name}: malformed sum")
            series.append((tuple(key), counts, float(total)))
        decoded[h.name] = series
    return decoded


class SnapshotWriter:
    """Publishes this worker's cumulative histograms to its own file in ``directory``."""

    def __init__(self, directory: str | os.PathLike[str],
                 histograms: Sequence[LocalHistogram] = HISTOGRAMS) -> None:
        self.directory = Path(directory)
        self.histograms = histograms
        self.path = self.directory / (
            f"{SNAPSHOT_PREFIX}{os.getpid()}-{secrets.token_hex(4)}{SNAPSHOT_SUFFIX}")
        self.written: bytes | None = None
        self.failing = False

    def write(self) -> None:
        """Replace the file atomically (when anything changed): a reader opens either the
        old file or the new one, never a half-written one. Failing to write (a full disk)
        is logged, once per failing spell, and never raised: the flusher must go on."""
        data = encode_snapshot(self.histograms)
        if data == self.written:
            return
        temporary = self.path.with_name(f".{self.path.name}.tmp")  # not a snapshot name
        try:
            temporary.write_bytes(data)
            os.replace(temporary, self.path)
        except OSError as exc:
            if not self.failing:
                log.error("cannot write the histogram snapshot %s: %s", self.path, exc)
            self.failing = True
            with contextlib.suppress(OSError):
                temporary.unlink()
            return
        if self.failing:
            log.info("histogram snapshot %s written again", self.path)
        self.failing = False
        self.written = data


class HistogramCollector:
    """Exposes local histograms (public ``prometheus_client.registry.Collector`` protocol).

    Without a ``directory``: this process's own state. With one (several workers): this
    process's live state plus every other snapshot file in the directory, dead workers'
    included; ``own`` names this process's file, which its live state supersedes."""

    def __init__(self, histograms: Sequence[LocalHistogram] = HISTOGRAMS, *,
                 directory: str | os.PathLike[str] | None = None,
                 own: Path | None = None) -> None:
        self.histograms = histograms
        self.directory = Path(directory) if directory is not None else None
        self.own = own
        self.reported: set[tuple[str, int, int]] = set()

    def describe(self) -> list[Metric]:
        """The names, so that a registry refuses a second collector of the same ones."""
        return [HistogramMetricFamily(h.name, h.documentation, labels=h.labelnames)
                for h in self.histograms]

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, dict[tuple[str, ...], tuple[list[int], float]]] = {
            h.name: {} for h in self.histograms}
        for h in self.histograms:
            _merge(merged, h.name, h.series())
        if self.directory is not None:
            for path in sorted(self.directory.glob(f"{SNAPSHOT_PREFIX}*{SNAPSHOT_SUFFIX}")):
                if path == self.own:
                    continue
                snapshot = self._read(path)
                for name, series in (snapshot or {}).items():
                    _merge(merged, name, series)
        for h in self.histograms:
            yield h.family((key, counts, total) for key, (counts, total) in merged[h.name].items())

    def _read(self, path: Path) -> dict[str, list[Series]] | None:
        try:
            data = path.read_bytes()
            return decode_snapshot(data, self.histograms)
        except FileNotFoundError:
            return None  # the directory is being removed: the service is stopping
        except (OSError, ValueError) as exc:
            self._report(path, exc)
            return None

    def _report(self, path: Path, exc: Exception) -> None:
        """Log a bad file once per version of it, not on every scrape."""
        try:
            stat = path.stat()
            version = (path.name, stat.st_mtime_ns, stat.st_size)
        except OSError:
            version = (path.name, 0, 0)
        if version not in self.reported and len(self.reported) < 1000:
            self.reported.add(version)
            log.error("skipping the histogram snapshot %s: %s", path, exc)


#: This process's own histograms, on the default registry (one process, or any program
#: that imports revoker's metrics); a multi-worker server adds its own (``share``).
REGISTRY.register(HistogramCollector())
_writer: SnapshotWriter | None = None


def share_histograms(directory: str | os.PathLike[str]) -> HistogramCollector:
    """Several workers: from now on ``flush`` also publishes this worker's histograms in
    ``directory``; returns the collector that merges every worker's there."""
    global _writer
    if _writer is None or _writer.directory != Path(directory):
        # One file per process and directory: a second file of the same process would be
        # counted as another worker's.
        _writer = SnapshotWriter(directory)
    _writer.write()
    return HistogramCollector(directory=directory, own=_writer.path)


def flush() -> None:
    """Add every local count to the Prometheus metrics (cheap when nothing is pending) and,
    with several workers, publish this worker's histograms."""
    for tally in _TALLIES:
        tally.flush()
    if _writer is not None:
        _writer.write()


async def flushing(_app: object) -> AsyncIterator[None]:
    """A cleanup context: flush every interval while the app runs, and once at the end."""
    task = asyncio.create_task(_flush_forever())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        flush()


async def _flush_forever() -> None:
    while True:
        await asyncio.sleep(FLUSH_INTERVAL_S)
        flush()

# -- store lanes and event streams -------------------------------------------------------
STORE_BUSY = Counter("revoker_store_busy", "Store calls refused because every connection "
                     "of their pool stayed in use for the whole wait", ["lane"])
STREAMS_OPEN = Gauge("revoker_streams_open", "Open GET /v1/events/stream connections",
                     multiprocess_mode="livesum")
STREAMS_REFUSED = Counter("revoker_streams_refused", "Event streams refused because the "
                          "worker already served REVOKER_MAX_STREAMS")
STREAMS_LAGGING = Counter("revoker_streams_lagging", "Event streams disconnected because "
                          "their consumer fell too far behind (they resume by Last-Event-ID)")

# -- Shared Signals and Global Token Revocation ------------------------------------------
SSF_EVENTS = Counter("revoker_ssf_events", "Shared Signals events received, by event type "
                     "(the configured and default types; 'other' for the rest), outcome "
                     "(applied, ignored, refused) and delivery (push, poll)",
                     ["event_type", "outcome", "delivery"])
SSF_POLLS = Counter("revoker_ssf_polls", "Poll requests (RFC 8936) to the Shared Signals "
                    "transmitter, by result (ok, error)", ["result"])
