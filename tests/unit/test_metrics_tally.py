"""Hot-path counts kept locally and flushed in bulk expose exactly what direct increments
would."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, Counter

from revoker import metrics


def samples(registry: CollectorRegistry, name: str, **labels: str) -> dict[str, float]:
    return {f"{s.name}{sorted(s.labels.items())}": s.value
            for family in registry.collect() for s in family.samples
            if s.name.startswith(name) and labels.items() <= s.labels.items()}


def test_flushed_counter_equals_incremented_one() -> None:
    registry = CollectorRegistry()
    counter = Counter("t_events", "test", ["way"], registry=registry)
    fast = metrics.FastCounter(counter.labels(way="fast"))
    for _ in range(7):
        fast.inc()
        counter.labels(way="direct").inc()
    fast.inc(2.5)
    counter.labels(way="direct").inc(2.5)
    fast.flush()
    fast.flush()
    assert samples(registry, "t_events_total", way="fast") == {
        "t_events_total[('way', 'fast')]": 9.5}
    assert samples(registry, "t_events_total", way="direct") == {
        "t_events_total[('way', 'direct')]": 9.5}


async def test_the_flusher_runs_every_interval_and_once_at_the_end(
        monkeypatch: pytest.MonkeyPatch) -> None:
    registry = CollectorRegistry()
    counter = Counter("t_flushed", "test", registry=registry)
    fast = metrics.fast_counter(counter)
    flushed = asyncio.Event()
    real_flush = metrics.flush

    def spy() -> None:
        real_flush()
        flushed.set()

    monkeypatch.setattr(metrics, "FLUSH_INTERVAL_S", 0.01)
    monkeypatch.setattr(metrics, "flush", spy)
    context = metrics.flushing(None)
    await context.__anext__()
    fast.inc()
    await asyncio.wait_for(flushed.wait(), timeout=5)
    assert registry.get_sample_value("t_flushed_total") == 1
    fast.inc(2)
    await context.aclose()
    assert registry.get_sample_value("t_flushed_total") == 3
