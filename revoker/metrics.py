"""Every Prometheus object of the service, in one place, with conventional names.

Labels never carry a jti, sub, token or key: only bounded sets (route templates, kinds,
sources, reasons).
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
from collections.abc import AsyncIterator
from typing import Any, Final

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from revoker import __version__

# ``*_created`` series double the scrape size and no dashboard here uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.0075,
                          0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

HTTP_REQUESTS = Counter("revoker_http_requests", "HTTP requests answered",
                        ["route", "method", "status"])
HTTP_DURATION = Histogram("revoker_http_request_duration_seconds",
                          "Time to answer an HTTP request", ["route"], buckets=LATENCY_BUCKETS)
CHECKS = Counter("revoker_checks", "Revocation checks by result (ok, revoked, error)",
                 ["result"])
REVOCATIONS = Counter("revoker_revocations", "Revocations stored, by kind and source",
                      ["kind", "source"])
UNREVOCATIONS = Counter("revoker_unrevocations", "Revocations removed by an admin", ["kind"])
STORE_DURATION = Histogram("revoker_store_operation_duration_seconds",
                           "Time of one store operation", ["operation"],
                           buckets=LATENCY_BUCKETS)
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
WORKER_RESTARTS = Counter("revoker_worker_restarts", "Worker processes restarted by the "
                          "supervisor after they died (REVOKER_WORKERS > 1)")
# An Info metric is not aggregated in multiprocess mode; a constant gauge is.
BUILD_INFO = Gauge("revoker_build_info", "Version of the running revoker (always 1)",
                   ["version", "python"], multiprocess_mode="max")
BUILD_INFO.labels(version=__version__, python=platform.python_version()).set(1)


# -- the hot path's counts, added to Prometheus in bulk -------------------------------------
#
# With several workers, every prometheus_client increment takes a lock, makes a getpid()
# system call and writes an mmap'ed file. The hot path's counters count in plain Python
# instead; ``flush`` adds the counts to the real metrics every FLUSH_INTERVAL_S and before
# ``/metrics`` answers (``Counter.inc(amount)`` is public), so a scrape sees its own worker
# exactly and the others at most one interval late. Histograms are observed directly:
# prometheus_client has no public way to add many observations at once, and revoker touches
# no private attribute of a dependency. That costs about 5.4 µs per observation with
# several workers and 2.0 µs with one (measured; docs/performance.md), one or two per
# request.

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


def flush() -> None:
    """Add every local count to the Prometheus metrics (cheap when nothing is pending)."""
    for tally in _TALLIES:
        tally.flush()


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
