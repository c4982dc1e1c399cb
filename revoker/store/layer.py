"""A store that wraps another: what a read path adds (batching, a local mirror) without
the backend knowing. Every call goes to the inner store's public methods, so bounds,
lanes, metrics and error translation happen there, once."""

from __future__ import annotations

from collections.abc import Sequence

from revoker.model import Event, Record
from revoker.store.base import (
    EventPage,
    EventTail,
    ExportRow,
    RecordFilter,
    Store,
    StoreHealth,
    StreamState,
    Upserted,
)


class StoreLayer(Store):
    """Delegates everything; subclasses override what they change."""

    def __init__(self, inner: Store) -> None:
        super().__init__(prefix=inner.prefix, timeout_s=inner.timeout_s,
                         events_maxlen=inner.events_maxlen)
        self.inner = inner
        self.single_process = inner.single_process
        self.hot, self.cold = inner.hot, inner.cold

    @property
    def backend(self) -> Store:
        """The store at the bottom of the layers."""
        inner = self.inner
        return inner.backend if isinstance(inner, StoreLayer) else inner

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def upsert_many(self, records: Sequence[Record], *, at: int) -> list[Upserted]:
        return await self.inner.upsert_many(records, at=at)

    async def get_many(self, pairs: Sequence[tuple[str, str]]) -> list[Record | None]:
        return await self.inner.get_many(pairs)

    async def get(self, kind: str, value: str) -> Record | None:
        """One record read by an admin: from the store that holds it whole, not from a
        read path's summary or batch."""
        return await self.inner.get(kind, value)

    async def complete(self, records: list[Record]) -> list[Record]:
        return await self.inner.complete(records)

    async def delete(self, kind: str, value: str, *, at: int) -> Record | None:
        return await self.inner.delete(kind, value, at=at)

    async def scan(self, *, kind: str | None = None, prefix: str | None = None,
                   actor: str | None = None, cursor: str | None = None,
                   limit: int) -> tuple[list[Record], str | None]:
        return await self.inner.scan(kind=kind, prefix=prefix, actor=actor, cursor=cursor,
                                     limit=limit)

    async def events(self, *, after: str | None, limit: int) -> list[Event]:
        return await self.inner.events(after=after, limit=limit)

    async def export_page(self, *, cursor: str | None,
                          count: int) -> tuple[list[ExportRow], str | None]:
        return await self.inner.export_page(cursor=cursor, count=count)

    @property
    def names_cheap(self) -> bool:
        return self.inner.names_cheap

    async def export_names(self, *, cursor: str | None,
                           count: int) -> tuple[list[bytes], str | None]:
        return await self.inner.export_names(cursor=cursor, count=count)

    async def size_hint(self) -> int | None:
        return await self.inner.size_hint()

    async def search_events(self, *, after: str | None, limit: int, kind: str | None = None,
                            value: str | None = None,
                            actor: str | None = None) -> EventPage:
        return await self.inner.search_events(after=after, limit=limit, kind=kind,
                                              value=value, actor=actor)

    async def last_event_id(self) -> str | None:
        return await self.inner.last_event_id()

    async def stream_state(self) -> StreamState | None:
        return await self.inner.stream_state()

    def open_tail(self) -> EventTail:
        return self.inner.open_tail()

    async def remember_once(self, key_suffix: str, expires_at: int) -> bool:
        return await self.inner.remember_once(key_suffix, expires_at)

    async def health(self) -> StoreHealth:
        return await self.inner.health()

    # The primitives are never reached: every public method above delegates.

    async def _upsert_many(self, records: Sequence[Record], at: int) -> list[Upserted]:
        return await self.inner.upsert_many(records, at=at)

    async def _get_many(self, pairs: Sequence[tuple[str, str]]) -> list[Record | None]:
        return await self.inner.get_many(pairs)

    async def _delete(self, kind: str, value: str, at: int) -> Record | None:
        return await self.inner.delete(kind, value, at=at)

    def _check_cursor(self, cursor: str) -> None:
        self.inner._check_cursor(cursor)

    async def _scan(self, wanted: RecordFilter, cursor: str | None,
                    limit: int) -> tuple[list[Record], str | None]:
        return await self.inner.scan(kind=wanted.kind, prefix=wanted.prefix,
                                     actor=wanted.actor, cursor=cursor, limit=limit)

    async def _events(self, after: str | None, limit: int, block_ms: int) -> list[Event]:
        return await self.inner.events(after=after, limit=limit)

    async def _last_event_id(self) -> str | None:
        return await self.inner.last_event_id()

    async def _stream_state(self) -> StreamState | None:
        return await self.inner.stream_state()

    async def _health(self) -> StoreHealth:
        return await self.inner.health()
