"""Per-turn batching of the hot path: the lookups of every check, and the writes of every
single revoke, that arrive in one turn of the event loop go to the store together (one
lookup call, one pipelined script call) instead of one round trip per request.

Nothing is cached: each caller still waits for a read or write that starts after it
arrived, and gets exactly its own share of the answer (a name that several callers of one
batch ask for is read once, for all of them). A failure fails every caller of
that batch alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from revoker.model import Record
from revoker.store.base import Store, Upserted
from revoker.store.layer import StoreLayer

In = TypeVar("In")
Out = TypeVar("Out")

_BACKGROUND: set[asyncio.Task[None]] = set()


class Coalescer(Generic[In, Out]):
    """Collects the items of every call made in one loop turn; ``run`` gets them all,
    in order, and must answer one result per item."""

    def __init__(self, run: Callable[[list[In]], Awaitable[list[Out]]]) -> None:
        self.run = run
        self._pending: list[tuple[Sequence[In], asyncio.Future[list[Out]]]] = []

    async def submit(self, items: Sequence[In]) -> list[Out]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Out]] = loop.create_future()
        self._pending.append((items, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._execute(batch))
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)

    async def _execute(self, batch: list[tuple[Sequence[In], asyncio.Future[list[Out]]]]
                       ) -> None:
        try:
            results = await self.run([item for items, _ in batch for item in items])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        offset = 0
        for items, future in batch:
            if not future.done():
                future.set_result(results[offset:offset + len(items)])
            offset += len(items)


class BatchingStore(StoreLayer):
    """Lookups and upserts of one loop turn share one store call each. Upserts are
    grouped by their event time ``at`` (whole seconds: almost always one group)."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.lookups: Coalescer[tuple[str, str], Record | None] = Coalescer(self._read)
        self.writes: Coalescer[tuple[Record, int], Upserted] = Coalescer(self._write)

    async def get_many(self, pairs: Sequence[tuple[str, str]]) -> list[Record | None]:
        if not pairs:
            return []
        return await self.lookups.submit(pairs)

    async def upsert_many(self, records: Sequence[Record], *, at: int) -> list[Upserted]:
        if not records:
            return []
        return await self.writes.submit([(record, at) for record in records])

    async def _read(self, pairs: list[tuple[str, str]]) -> list[Record | None]:
        """Each distinct name once: the checks of one turn often share names (every token
        signed with one key asks for the same ``kid``; one client's tokens for the same
        ``client``; a busy user's for the same ``sub``), and one read answers them all alike.
        Records are immutable, so the callers may share them."""
        distinct = dict.fromkeys(pairs)
        if len(distinct) == len(pairs):  # nothing repeats: no list to build
            return await self.inner.get_many(pairs)
        found = dict(zip(distinct, await self.inner.get_many(list(distinct)), strict=True))
        return [found[pair] for pair in pairs]

    async def _write(self, items: list[tuple[Record, int]]) -> list[Upserted]:
        by_at: dict[int, list[int]] = {}
        for position, (_, at) in enumerate(items):
            by_at.setdefault(at, []).append(position)
        results: list[Upserted | None] = [None] * len(items)
        for at, positions in by_at.items():
            done = await self.inner.upsert_many([items[i][0] for i in positions], at=at)
            for position, outcome in zip(positions, done, strict=True):
                results[position] = outcome
        return [outcome for outcome in results if outcome is not None]
