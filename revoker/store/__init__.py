"""Stores, chosen by URL scheme: ``open_store(settings)`` is the only constructor callers
need.

A plain dict maps each scheme to a factory, so the way a URL becomes a backend is
visible here rather than hidden in a registry. The read path is chosen here too, once:
a shared store gets per-turn batching of lookups and revokes (``BatchingStore``) and, with
``REVOKER_CHECK_MODE=mirror``, a local mirror in front (``MirrorStore``); a
single-process store (``memory://``) is used as it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from revoker.config import Settings
from revoker.store.base import Store, StoreHealth, Upserted
from revoker.store.checkpoint import Checkpointing, store_identity

__all__ = ["Store", "StoreHealth", "Upserted", "checkpointing", "open_backend", "open_store"]


def _memory(settings: Settings) -> Store:
    from revoker.store.memory import MemoryStore

    return MemoryStore(prefix=settings.key_prefix, timeout_s=settings.store_timeout_s,
                       events_maxlen=settings.events_maxlen)


def _redis(settings: Settings) -> Store:
    from revoker.store.redis import RedisStore

    return RedisStore(settings.store_url, prefix=settings.key_prefix,
                      timeout_s=settings.store_timeout_s, events_maxlen=settings.events_maxlen,
                      allow_eviction=settings.allow_eviction,
                      wait_replicas=settings.redis_wait_replicas,
                      wait_timeout_s=settings.redis_wait_timeout_s,
                      pool_size=settings.redis_pool_size)


def _sentinel(settings: Settings) -> Store:
    from revoker.store.sentinel import SentinelStore

    return SentinelStore(settings.store_url, **_redis_options(settings))


def _cluster(settings: Settings) -> Store:
    from revoker.store.cluster import ClusterStore

    return ClusterStore(settings.store_url, **_redis_options(settings))


def _redis_options(settings: Settings) -> dict[str, Any]:
    return {"prefix": settings.key_prefix, "timeout_s": settings.store_timeout_s,
            "events_maxlen": settings.events_maxlen, "allow_eviction": settings.allow_eviction,
            "wait_replicas": settings.redis_wait_replicas,
            "wait_timeout_s": settings.redis_wait_timeout_s,
            "pool_size": settings.redis_pool_size}


BACKENDS: dict[str, Callable[[Settings], Store]] = {
    "memory": _memory,
    "redis": _redis,
    "rediss": _redis,
    "redis+sentinel": _sentinel,
    "rediss+sentinel": _sentinel,
    "redis+cluster": _cluster,
    "rediss+cluster": _cluster,
}


def open_backend(settings: Settings) -> Store:
    """The bare backend named by ``settings.store_url``, without a read path (the mirror's
    keeper process reads the store through it)."""
    scheme = settings.store_url.partition("://")[0]
    try:
        factory = BACKENDS[scheme]
    except KeyError:
        from revoker.errors import ConfigError

        raise ConfigError("REVOKER_STORE_URL", f"no store backend for {scheme}://") from None
    return factory(settings)


def open_store(settings: Settings, *, clock: Callable[[], float] = time.time) -> Store:
    """Build (not yet connect) the store named by ``settings.store_url``, with its read
    path; ``clock`` is what the mirror expires records by."""
    store = open_backend(settings)
    if store.single_process:
        return store
    from revoker.store.batcher import BatchingStore

    store = BatchingStore(store)
    if settings.check_mode == "mirror":
        from revoker.store.mirror import MirrorStore

        store = MirrorStore(store, clock=clock, control_path=settings.mirror_control,
                            checkpointing=checkpointing(settings))
    return store


def checkpointing(settings: Settings) -> Checkpointing | None:
    """Where the mirror's keeper saves its table (``REVOKER_MIRROR_CHECKPOINT``)."""
    if not settings.mirror_checkpoint:
        return None
    return Checkpointing(path=settings.mirror_checkpoint,
                         identity=store_identity(settings.store_url, settings.key_prefix),
                         every_s=settings.mirror_checkpoint_s)
