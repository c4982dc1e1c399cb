"""A local mirror of the denylist, so that checks are answered from memory.

``REVOKER_CHECK_MODE=mirror``: one **keeper** per host loads a snapshot of every record
(the store's export) into a shared table (``revoker.store.shared``) and then follows the
events stream (the store's blocking tail) from the position read *before* the snapshot,
so nothing written during the load is lost (replaying an event the snapshot already
holds is harmless: events carry the whole record). Where the store can list record
names for much less than it reads records (Redis, Sentinel), the snapshot is of the names
alone, as *pending* entries that send a lookup that finds one to the store; the keeper is
in sync as soon as the names are loaded, and then reads the records' details in the
background, a page at a time between reads of the events (the *fill*).

Every worker wraps its store in a ``MirrorStore`` that *reads* that table: the host holds
one copy of the denylist however many workers it runs, and a restarted worker answers from
it at once, without a reload.
With several workers the keeper is a process of its own, started and restarted by the
supervisor of ``revoker serve`` (``revoker.server``); with one, it is a task of that one
process (the same code, on memory of its own). It uses only the store's public methods,
so it follows any backend: Redis, Sentinel or Cluster.

Consistency contract (see docs/performance.md):
- in sync, a revoke acknowledged 2xx reaches every worker as soon as the store hands the
  event to the keeper's blocked tail (milliseconds);
- a worker answers from the table only while the keeper is in sync and has heard from
  the store within ``max_lag_s``; past that, after an error, while (re)loading, or while
  the keeper is down, lookups go to the wrapped store (strict mode), which raises
  ``StoreUnavailable`` when it cannot answer, so the fail mode applies; readiness fails
  while the mirror is not in sync;
- a gap (the stream trimmed past our position, deleted or recreated) triggers a full
  resync.

The table keeps what matching a token needs (expiry, cutoff, revocation time), not the
record's details: a lookup is answered from the table alone. Only a revoked answer that
shows its records (``/v1/check``, not ``/v1/authz``) reads them in full from the store
(``complete``); if the store cannot answer, the table's summary is shown (without reason
and actor): a token the mirror knows to be revoked is never accepted because the store is
down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

from revoker import metrics
from revoker.errors import StoreChanged, StoreError
from revoker.model import KINDS, Event, Record, parse_stream_id
from revoker.store import checkpoint
from revoker.store.base import EventTail, Store, StoreHealth, StreamState
from revoker.store.checkpoint import Checkpointing
from revoker.store.layer import StoreLayer
from revoker.store.shared import (
    PENDING,
    Control,
    ControlState,
    Table,
    clamp_u32,
    decode_cutoff,
    encode_cutoff,
    encode_revoked,
    fingerprint,
    unlink,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Records per export page while loading.
EXPORT_PAGE: Final = 5000
#: Records per page of the fill, and the share of the keeper's time the fill takes (it
#: pauses after each page as long as the page took): readers answer from the table
#: meanwhile, and only a lookup that finds a pending entry asks the store. New events
#: wait for the page under way and the pause after it, so a page is kept short: at 100k
#: records, pages of 250 gave a revocation's propagation a median of 7.4-7.7 ms during
#: the fill against 17.7-21.2 ms with pages of 1,000, for a fill of 3.0-3.2 s, not 2.3-2.8.
FILL_PAGE: Final = 250
FILL_SHARE: Final = 0.5
#: The longest pause after a page (one slow page must not hold back the events), and
#: the wait before a page that failed is asked for again.
FILL_PAUSE_MAX_S: Final = 0.05
FILL_RETRY_S: Final = 1.0
READ_COUNT: Final = 1000
#: After a read that returned events, the tail waits this long before reading again, so
#: that under a stream of revokes each read carries a batch. The first event after a
#: quiet spell is read at once; under load this adds at most this much to propagation.
TAIL_PAUSE_S: Final = 0.005
#: How often the tail also asks whether events were trimmed past its position.
GAP_CHECK_S: Final = 0.1
RETRY_S: Final = (0.05, 0.1, 0.25, 0.5, 1.0)
#: The table is sized for this load (used slots / capacity) and grows past ``MAX_LOAD``:
#: 28-byte slots at a load between 0.5 and 0.7 cost 40-56 bytes per record.
TARGET_LOAD: Final = 0.5
MAX_LOAD: Final = 0.7
MIN_CAPACITY: Final = 1024
#: Events applied per write section: readers retry while a section is open, so it stays
#: short.
WRITE_SECTION: Final = 64
#: Slots examined per step of the background work (sweeping expired entries, copying into
#: a grown table), between two reads of the tail.
STEP_SLOTS: Final = 16384
#: How long the keeper works on a step before it reads the tail again.
STEP_BUDGET_S: Final = 0.05
#: How often a full sweep of expired entries starts over, at most.
SWEEP_EVERY_S: Final = 60.0
#: The share of one core sweeping may take on average: a full sweep of a large table
#: waits longer before the next (20 million slots take ~4 s in Python: one every ~7
#: minutes rather than every minute). Expired entries are absent to lookups meanwhile;
#: they only hold slots, and growing the table copies the live ones alone.
SWEEP_SHARE: Final = 0.01
#: Readings of a table a lookup tries before it asks the store instead (the keeper was
#: writing every time).
READ_SPINS: Final = 100
#: Fingerprints a worker remembers, by (kind, value): the same kid, client and subject recur
#: across tokens. With values of the longest kind (512 bytes) about 10 MiB at most, about
#: 2 MiB for UUID-length ones. Emptied when full.
FP_MEMO_SIZE: Final = 16_384
#: Lookups a worker remembers as having found nothing in one state of the table (up to five
#: values each: about 12 MiB at most with 512-byte values). Emptied when full or when the
#: table changes.
ABSENT_SIZE: Final = 4096
#: The longest lookup remembered: one token's, a pair per kind. A batch check's lookup (up to
#: thousands of pairs) is not a gateway's repeat, and would make the memory unbounded.
ABSENT_PAIRS: Final = len(KINDS)


@dataclass(frozen=True, slots=True)
class Position:
    """Where the mirror is in the stream: the last id applied and how many entries the
    stream had ever received up to it (``None`` where the store cannot count)."""

    last_id: str
    added: int | None


class Gap(Exception):
    """Events were lost between our position and the stream: resync from a snapshot."""


def _values(record: Record) -> tuple[int, int, int]:
    return (encode_revoked(record.revoked_at), clamp_u32(record.expires_at),
            encode_cutoff(record.issued_before))


class Keeper:
    """The one writer of a host's table: loads it, follows the events, sweeps, grows it,
    and says in the control segment whether it is in sync."""

    def __init__(self, store: Store, control: Control, *, directory: str | None = None,
                 clock: Callable[[], float] = time.time, block_ms: int = 1000,
                 checkpointing: Checkpointing | None = None,
                 names_first: bool | None = None) -> None:
        self.store = store
        #: Whether a load from the store reads names first (see the module's docstring);
        #: by default where the store lists names cheaply.
        self.names_first = store.names_cheap if names_first is None else names_first
        #: While the fill runs: where it is in the store's export (None: at the start),
        #: when its next page is due, and when it began.
        self.filling = False
        self.fill_cursor: str | None = None
        self.fill_due = 0.0
        self.fill_started = 0.0
        self.control = control
        self.checkpointing = checkpointing
        self.checkpoint_due = time.monotonic() + (checkpointing.every_s if checkpointing
                                                  else 0.0)
        self._saving: asyncio.Future[bool] | None = None
        #: Whether a load may still start from what the host holds (``warm_start``).
        self.warm = True
        self.directory = directory
        self.clock = clock
        self.block_ms = block_ms
        self.table: Table | None = None
        self.position = Position("0-0", 0)
        self.synced = False
        state = control.read()
        self.generation = state.generation if state is not None else 0
        self.resyncs = 0
        self.last_error: str | None = None
        self.heard = 0.0
        #: A larger table being filled from ``table`` (growth), and how far the copy got.
        self.grown: Table | None = None
        self.grown_generation = 0
        self.copied = 0
        #: The last generation number given to a table (published or not): never one that
        #: a table file of this host already has, even when a keeper died in the middle of
        #: writing the control page (a worker that cached a number re-attaches only when
        #: the number changes).
        self.minted = max(self.generation, self._highest_file())
        self.sweep_at = 0
        self.sweep_due = time.monotonic() + SWEEP_EVERY_S
        #: Time the current full sweep has taken so far.
        self.sweep_spent = 0.0
        self._tail: EventTail | None = None
        self.stopping = False
        self._previous = self._current_name()
        #: What a previous keeper left in the control segment: its table and the position
        #: that table reflects, read before this keeper writes anything there. Until this
        #: keeper installs a table of its own, the control page keeps naming that table
        #: with that position (a keeper that dies meanwhile leaves the same to the next).
        self._left = self._read_left()
        if self._left is not None:
            self.position = self._left[2]
        self._shown = (-1, -1)

    # -- the control segment ----------------------------------------------------------

    def _current_name(self) -> str:
        texts = self.control.texts()
        return texts[1] if texts is not None else ""

    def publish(self, *, name: str | None = None) -> None:
        table = self.table
        self.control.write(
            ControlState(generation=self.generation, keeper_pid=os.getpid(),
                         in_sync=self.synced, heard=self.heard,
                         entries=table.used if table else 0,
                         capacity=table.capacity if table else 0, resyncs=self.resyncs,
                         segment_bytes=table.nbytes if table else 0,
                         added=self.position.added),
            name=name, last_id=self.position.last_id, error=self.last_error or "")
        self._set_gauges()

    def _highest_file(self) -> int:
        """The highest generation among this host's table files (``<control>.<n>``)."""
        path = self.control.path
        if path is None or self.directory is None:
            return 0
        base = os.path.basename(path) + "."
        try:
            names = os.listdir(os.path.dirname(path))
        except OSError:
            return 0
        numbers = [int(n[len(base):]) for n in names
                   if n.startswith(base) and n[len(base):].isdecimal()]
        return max(numbers, default=0)

    def _path(self, generation: int) -> str | None:
        if self.directory is None or self.control.path is None:
            return None
        return f"{self.control.path}.{generation}"

    def _new_table(self, capacity: int) -> tuple[Table, int]:
        self.minted = generation = max(self.minted, self.generation) + 1
        path = self._path(generation)
        unlink(path)  # left by a keeper that died before publishing it
        return Table.create(path, capacity), generation

    def _install(self, table: Table, generation: int) -> None:
        """Make ``table`` the one readers use; free the one it replaces. A table just
        loaded or grown holds no expired entry: the next sweep can wait its full period."""
        self.sweep_at, self.sweep_spent = 0, 0.0
        self.sweep_due = time.monotonic() + SWEEP_EVERY_S
        if table.filling and not self.filling:  # loaded by names, or left mid-fill
            self.filling, self.fill_cursor, self.fill_due = True, None, 0.0
            self.fill_started = time.monotonic()
        old, self.table, self.generation = self.table, table, generation
        self.publish(name=os.path.basename(table.path) if table.path else "")
        self._set_gauges()
        if old is not None and old is not table:
            unlink(old.path)
            if old.path is not None:
                old.close()  # anonymous memory stays mapped: an in-process reader may hold it
        if self._previous and self.control.path is not None:  # a previous keeper's table
            if self._previous != os.path.basename(table.path or ""):  # unless adopted
                unlink(os.path.join(os.path.dirname(self.control.path), self._previous))
            self._previous = ""

    def _set_gauges(self) -> None:
        """Only on a change: in multi-process mode a gauge write is a file write."""
        table = self.table
        shown = (table.used, table.nbytes) if table else (0, 0)
        if shown != self._shown:
            self._shown = shown
            metrics.MIRROR_ENTRIES.set(shown[0])
            metrics.MIRROR_BYTES.set(shown[1])

    # -- lifecycle --------------------------------------------------------------------

    async def run(self) -> None:
        """Load, tail until something breaks, then reload or reconnect; until stopped."""
        failures = 0
        need_snapshot = not self.synced
        while not self.stopping:
            try:
                if need_snapshot:
                    if not (self.warm and await self.warm_start()):
                        await self.resync()
                    self.warm = False
                    need_snapshot = False
                await self._follow()
            except Gap as exc:
                self._lose(f"gap: {exc}")
                need_snapshot = True
                failures = 0
            except (StoreError, OSError, TimeoutError) as exc:
                self._lose(f"store: {type(exc).__name__}")
                await asyncio.sleep(RETRY_S[min(failures, len(RETRY_S) - 1)])
                failures += 1
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not silently freeze the mirror in sync
                log.exception("mirror sync failed")
                self._lose("internal error")
                need_snapshot = True
                self.warm = False  # nor keep resuming from what made it fail
                await asyncio.sleep(RETRY_S[-1])

    async def stop(self) -> None:
        self.stopping = True
        if self._tail is not None:
            await self._tail.close()
            self._tail = None

    def _lose(self, reason: str) -> None:
        if self.synced:
            log.warning("mirror out of sync (%s); checks read the store until it recovers",
                        reason)
        self.synced = False
        self.last_error = reason
        self.publish()

    def _heard(self) -> None:
        self.heard = time.monotonic()
        self.synced = True
        self.last_error = None

    # -- loading ----------------------------------------------------------------------

    async def warm_start(self) -> bool:
        """Resume from what the host already holds, if the events stream still has every
        event since: the table a previous keeper published (it died; the supervisor
        started this one), else the checkpoint on disk. False when neither can be used;
        then everything is loaded from the store (``resync``)."""
        self.synced = False
        self.publish()
        for source, find in (("the host's table", self._adopt),
                             ("the checkpoint", self._restore)):
            started = time.monotonic()
            found = find()
            if found is None:
                continue
            table, generation, position = found
            try:
                await self._same_stream(position)
                table, generation, caught = await self._catch_up(table, generation, position)
                # What the table now reflects must be where the stream is, before anyone
                # reads it (the stream may have moved on, or be another one).
                self._check_gap(await self.store.stream_state(), caught)
            except Gap as exc:
                log.info("mirror: %s is out of date (%s); loading from the store", source, exc)
                self._left = None  # (the checkpoint is only tried once it is None)
                self._discard(table)
                continue
            except BaseException:
                self._discard(table)
                raise
            self._left = None
            self.position = caught
            self.resyncs += 1
            self._heard()
            self._install(table, generation)
            log.info("mirror resumed from %s: %d entries up to event %s, in %.2f s",
                     source, table.used, caught.last_id, time.monotonic() - started)
            return True
        return False

    def _read_left(self) -> tuple[str, int, Position] | None:
        """The table a previous keeper published (file name, generation) and its
        position, if any."""
        control = self.control
        if control.path is None:
            return None
        state, texts = control.read(), control.texts()
        if state is None or texts is None or texts[0] != state.generation or \
                not texts[1] or not texts[2]:
            return None
        return texts[1], state.generation, Position(texts[2], state.added)

    def _adopt(self) -> tuple[Table, int, Position] | None:
        """The table a previous keeper left, with the position it reflects, unless that
        keeper died in the middle of changing it. Kept for another try when the store
        fails meanwhile; dropped once it is used or found out of date."""
        left = self._left
        if left is None or self.control.path is None:
            return None
        name, generation, position = left
        try:
            table = Table.attach(os.path.join(os.path.dirname(self.control.path), name),
                                 writable=True)
        except (OSError, ValueError):
            self._left = None
            return None
        if table.seq & 1:
            table.close()
            self._left = None
            return None
        return table, generation, position

    async def _same_stream(self, position: Position) -> None:
        """Raise ``Gap`` unless the stream still holds every event after ``position``
        and, where it should still hold the event at ``position`` itself, does: counters
        alone could match on a stream recreated since (a Redis flushed and refilled),
        its events' ids could not."""
        theirs = await self.store.stream_state()
        self._check_gap(theirs, position)
        if theirs is None or theirs.first_id is None or position.last_id == "0-0":
            return
        ours = parse_stream_id(position.last_id)
        if parse_stream_id(theirs.first_id) > ours:
            return  # trimmed up to it: _check_gap decided from the counters
        ms, seq = ours
        before = f"{ms}-{seq - 1}" if seq else f"{ms - 1}-{2**64 - 1}"
        found = await self.store.events(after=before, limit=1)
        if not found or found[0].id != position.last_id:
            raise Gap("the event the table stopped at is not in the stream")

    def _restore(self) -> tuple[Table, int, Position] | None:
        if self.checkpointing is None:
            return None
        try:
            table, meta = checkpoint.restore(self.checkpointing.path,
                                             self.checkpointing.identity,
                                             lambda capacity: self._new_table(capacity)[0])
        except checkpoint.Unusable as exc:
            log.info("mirror checkpoint not used: %s", exc)
            return None
        except OSError as exc:
            log.warning("mirror checkpoint not used: %s", exc)
            return None
        return table, self.minted, Position(meta.last_id, meta.added)

    def _discard(self, table: Table) -> None:
        """Drop a table that ``warm_start`` did not use; the published one stays on disk
        until a new one replaces it (``_install`` then removes it)."""
        name = os.path.basename(table.path) if table.path else ""
        if name and name == self._previous:
            table.close()
            return
        unlink(table.path)
        table.close()

    # -- checkpoints ------------------------------------------------------------------

    def _checkpoint_step(self) -> None:
        """Start saving a checkpoint when one is due, while the keeper goes on."""
        plan, table = self.checkpointing, self.table
        if plan is None or table is None or self._saving is not None or \
                self.grown is not None or time.monotonic() < self.checkpoint_due:
            return
        self._saving = asyncio.ensure_future(self._save(plan, table))

    async def _save(self, plan: Checkpointing, table: Table) -> bool:
        """Copy the table and its position now (between two changes: consistent), write
        the copy in a thread; log and count the outcome. True if saved."""
        data = checkpoint.image(table)
        meta = checkpoint.Meta(store=plan.identity, last_id=self.position.last_id,
                               added=self.position.added, capacity=table.capacity,
                               entries=table.used, saved_at=time.time())
        try:
            await asyncio.to_thread(checkpoint.save, plan.path, data, meta)
        except OSError as exc:
            log.warning("mirror checkpoint not saved: %s", exc)
            return False
        except Exception:  # a bug: loud, but the mirror goes on without a checkpoint
            log.exception("mirror checkpoint not saved")
            return False
        finally:
            self._saving = None
            self.checkpoint_due = time.monotonic() + plan.every_s
        metrics.MIRROR_CHECKPOINT_SAVED.set(time.time())
        log.info("mirror checkpoint saved: %d entries up to event %s", meta.entries,
                 meta.last_id)
        return True

    async def save_checkpoint(self) -> bool:
        """Save a checkpoint now if the table is in sync (on the way out); True if saved."""
        if self._saving is not None:
            await self._saving
        plan, table = self.checkpointing, self.table
        if plan is None or table is None or not self.synced:
            return False
        return await self._save(plan, table)

    async def resync(self) -> None:
        """Export every record (or, with ``names_first``, every record's name, as a
        pending entry) into a new table, replay what happened meanwhile, then publish it
        (the fill then starts, see ``_install``). Readers ask the store meanwhile."""
        self.synced = False
        self.filling = False
        self.publish()
        self._drop_grown()
        state = await self.store.stream_state()
        position = Position("0-0", 0) if state is None else Position(state.last_id,
                                                                        state.added)
        hint = await self.store.size_hint() or 0
        table, generation = self._new_table(_capacity_for(hint))
        table.filling = self.names_first
        try:
            now = int(self.clock())
            if self.names_first:
                async with contextlib.aclosing(_prefetched(self.store.export_names)) as pages:
                    async for names in pages:
                        table, generation = self._room(table, generation, len(names), now)
                        table.load_names(names)
            else:
                async with contextlib.aclosing(_prefetched(self.store.export_page)) as pages:
                    async for rows in pages:
                        table, generation = self._room(table, generation, len(rows), now)
                        table.load(rows, now)
            table, generation, position = await self._catch_up(table, generation, position)
        except BaseException:
            unlink(table.path)
            table.close()
            raise
        self.position = position
        self.resyncs += 1
        self._heard()
        self._install(table, generation)
        log.info("mirror loaded %d %s up to event %s", table.used,
                 "record names (their details follow in the background)"
                 if table.filling else "records", position.last_id)

    def _room(self, table: Table, generation: int, more: int,
              now: int) -> tuple[Table, int]:
        """While loading: the table, or a bigger copy if ``more`` entries would fill it
        past ``MAX_LOAD``."""
        if table.used + more > MAX_LOAD * table.capacity:
            return self._regrow(table, generation, table.used + more, now)
        return table, generation

    def _regrow(self, table: Table, generation: int, needed: int,
                now: int) -> tuple[Table, int]:
        """While loading (nobody reads it yet): copy into a table sized for ``needed``."""
        bigger, new_generation = self._new_table(_capacity_for(needed))
        bigger.filling = table.filling
        for fp, values in table.live(0, table.capacity, now):
            bigger.put_new(fp, values)
        unlink(table.path)
        table.close()
        return bigger, new_generation

    async def _catch_up(self, table: Table, generation: int,
                        position: Position) -> tuple[Table, int, Position]:
        while True:
            events = await self.store.events(after=position.last_id, limit=READ_COUNT)
            if table.used + len(events) > MAX_LOAD * table.capacity:
                table, generation = self._regrow(table, generation, table.used + len(events),
                                                 int(self.clock()))
            position = _apply([table], events, position)
            if len(events) < READ_COUNT:
                return table, generation, position

    # -- following --------------------------------------------------------------------

    async def _follow(self) -> None:
        """Blocking reads of new events, with a check for a gap at most every
        ``GAP_CHECK_S``; between reads, a bounded step of sweeping or growing."""
        if self._tail is None:
            self._tail = self.store.open_tail()
        checked = 0.0
        while not self.stopping:
            if time.monotonic() - checked >= GAP_CHECK_S:
                self._check_gap(await self.store.stream_state(), self.position)
                checked = time.monotonic()
            wait = self.fill_due - time.monotonic()
            if self.filling and wait <= FILL_PAUSE_MAX_S:
                # Paced by sleeping here, not by a blocking read: Redis times a short
                # BLOCK out only on its next timer tick (up to 100 ms at its default hz).
                await asyncio.sleep(max(0.0, wait))
                events = await self.store.events(after=self.position.last_id,
                                                 limit=READ_COUNT)
            else:  # (a fill waiting to retry a failed page follows the stream meanwhile)
                block_ms = 1 if self._background_pending() else self.block_ms
                if self.filling:
                    block_ms = max(1, min(block_ms, int(wait * 1000)))
                events = await self._tail.read(after=self.position.last_id, limit=READ_COUNT,
                                               block_ms=block_ms)
            self._apply_live(events)
            self._heard()
            self._background_step()
            if self.filling and len(events) < READ_COUNT and \
                    time.monotonic() >= self.fill_due:  # events come first
                await self._fill_step()
            self.publish()
            self._checkpoint_step()
            if events:  # a busy stream: let events gather rather than read them one by one
                await asyncio.sleep(TAIL_PAUSE_S)

    def _apply_live(self, events: list[Event]) -> None:
        """Apply in short write sections; grow first if the table would get too full."""
        table = self.table
        assert table is not None
        if self.grown is None and table.used + len(events) > MAX_LOAD * table.capacity:
            self._start_growing(table.used + len(events))
        targets = [table] if self.grown is None else [table, self.grown]
        for start in range(0, len(events), WRITE_SECTION):
            self.position = _apply(targets, events[start:start + WRITE_SECTION],
                                   self.position)

    def _background_pending(self) -> bool:
        return self.grown is not None or self.sweep_at > 0 or \
            time.monotonic() >= self.sweep_due

    def _background_step(self) -> None:
        """A bounded amount of growing or sweeping, so that the tail is read again soon."""
        if self.grown is not None:
            self._copy_step()
        elif self._background_pending():
            self._sweep_step()

    async def _fill_step(self) -> None:
        """Read a page of records and give their pending entries the details, in short
        write sections; the page was read after every event applied so far and before
        the ones still to come, and an entry an event wrote is not pending (``fill``
        leaves it): whatever the order, the table ends as the store is."""
        started = time.monotonic()
        try:
            rows, cursor = await self.store.export_page(cursor=self.fill_cursor,
                                                        count=FILL_PAGE)
        except StoreChanged:  # the cursor means nothing to this server: start over
            log.info("mirror fill starts over: the store's server changed")
            self.fill_cursor, self.fill_due = None, time.monotonic() + FILL_RETRY_S
            return
        except StoreError as exc:
            # The same page again later. The table and the position are intact, so the
            # mirror stays in sync; whether the store is down is the events read's call.
            log.info("mirror fill page failed (%s); trying it again", type(exc).__name__)
            self.fill_due = time.monotonic() + FILL_RETRY_S
            return
        table = self.table
        assert table is not None
        targets = [table] if self.grown is None else [table, self.grown]
        for start in range(0, len(rows), WRITE_SECTION):
            chunk = rows[start:start + WRITE_SECTION]
            for target in targets:
                target.begin()
                try:
                    target.fill(chunk)
                finally:
                    target.end()
        self.fill_cursor = cursor
        if cursor is None:
            # Every record the store held throughout is filled: a pending entry left is
            # one that went away (expired) meanwhile, and the next sweep frees it.
            self.filling = False
            for target in targets:
                target.filling = False
            log.info("mirror filled: the details of every record loaded, in %.1f s",
                     time.monotonic() - self.fill_started)
        spent = time.monotonic() - started
        self.fill_due = time.monotonic() + min(spent * (1 / FILL_SHARE - 1), FILL_PAUSE_MAX_S)

    def _start_growing(self, needed: int) -> None:
        """A larger table, filled step by step from the current one while readers keep
        using the current one; every event meanwhile goes to both."""
        assert self.table is not None
        grown, self.grown_generation = self._new_table(_capacity_for(needed))
        grown.filling = self.table.filling
        self.grown, self.copied = grown, 0
        log.info("mirror growing from %d to %d slots", self.table.capacity, grown.capacity)

    def _copy_step(self) -> None:
        """Copy the next slots into the grown table; entries already there (written by an
        event since growth began) are newer and stay. Unrevokes during the copy mark the
        entry dead in the current table, so a dead entry is never copied."""
        table, grown = self.table, self.grown
        assert table is not None
        assert grown is not None
        deadline = time.monotonic() + STEP_BUDGET_S
        now = int(self.clock())
        while self.copied < table.capacity and time.monotonic() < deadline:
            grown.begin()
            for fp, values in table.live(self.copied, STEP_SLOTS, now):
                grown.put_new(fp, values)
            grown.end()
            self.copied += STEP_SLOTS
        if self.copied >= table.capacity:
            self.grown = None
            self._install(grown, self.grown_generation)

    def _drop_grown(self) -> None:
        if self.grown is not None:
            unlink(self.grown.path)
            self.grown.close()
            self.grown = None

    def _sweep_step(self) -> None:
        """Free the slots of expired and dead entries, a bounded number at a time."""
        table = self.table
        assert table is not None
        deadline = time.monotonic() + STEP_BUDGET_S
        now = int(self.clock())
        started = time.monotonic()
        while time.monotonic() < deadline:
            self.sweep_at, _ = table.sweep(self.sweep_at, STEP_SLOTS, now)
            if self.sweep_at == 0:
                break
        self.sweep_spent += time.monotonic() - started
        if self.sweep_at == 0:
            self.sweep_due = time.monotonic() + max(SWEEP_EVERY_S,
                                                    self.sweep_spent / SWEEP_SHARE)
            self.sweep_spent = 0.0
        self._set_gauges()

    async def fill_now(self) -> None:
        """The rest of the fill at once (benchmarks, tests)."""
        while self.filling:
            await self._fill_step()

    def sweep_now(self) -> None:
        """A whole sweep at once (tests, and an operator's clock)."""
        self.sweep_at = 0
        self.sweep_due = 0.0
        while True:
            self._sweep_step()
            if self.sweep_at == 0:
                return

    @staticmethod
    def _check_gap(theirs: StreamState | None, ours: Position) -> None:
        """Raise ``Gap`` when the stream no longer holds every event after ``ours``."""
        if theirs is None:
            if ours.last_id != "0-0":
                raise Gap("the events stream was deleted")
            return
        if parse_stream_id(theirs.last_id) < parse_stream_id(ours.last_id):
            raise Gap("the events stream was reset")
        if theirs.added is None or ours.added is None:
            return
        if theirs.added < ours.added:
            raise Gap("the events stream was recreated")
        if theirs.last_id == ours.last_id and theirs.added != ours.added:
            raise Gap("events were missed")
        first = None if theirs.first_id is None else parse_stream_id(theirs.first_id)
        if (first is None or first > parse_stream_id(ours.last_id)) and \
                theirs.added - ours.added > theirs.length:
            raise Gap("the events stream was trimmed past our position")


class _Pager(Protocol[T]):
    def __call__(self, *, cursor: str | None,
                 count: int) -> Awaitable[tuple[list[T], str | None]]: ...


async def _prefetched(page: _Pager[T]) -> AsyncGenerator[list[T], None]:
    """Every page of an export, the next one asked for before this one is handed over:
    the store reads while this process writes the table."""
    following = asyncio.ensure_future(page(cursor=None, count=EXPORT_PAGE))
    try:
        while True:
            rows, cursor = await following
            if cursor is None:
                yield rows
                return
            following = asyncio.ensure_future(page(cursor=cursor, count=EXPORT_PAGE))
            await asyncio.sleep(0)  # let it send its request
            yield rows
    finally:
        following.cancel()


def _capacity_for(entries: int) -> int:
    return max(MIN_CAPACITY, math.ceil(entries / TARGET_LOAD))


def _apply(tables: list[Table], events: list[Event], position: Position) -> Position:
    """One write section per table: the events' records, as they now are in the store."""
    if not events:
        return position
    for table in tables:
        table.begin()
        try:
            for event in events:
                record = event.record
                fp = fingerprint(record.kind, record.value)
                if event.type == "unrevoked":
                    table.kill(fp)
                else:
                    table.put(fp, *_values(record))
        finally:
            table.end()
    added = None if position.added is None else position.added + len(events)
    return Position(events[-1].id, added)


class Absences:
    """Lookups that found nothing in one state of one table: a gateway repeats each token,
    and between two writes the answer cannot change.

    A state is the table's write sequence: every write moves it (``Table.begin``/``end``),
    so a remembered absence is used only while the sequence reads what it read when the
    probe found nothing. Any revocation, expiry sweep or fill forgets them all; a new table
    (another generation) is another object. Freshness is not this class's concern: the
    caller asks the control page first, on every lookup, as without it.

    Only one token's lookup is kept (``ABSENT_PAIRS``), so the memory stays bounded; a
    batch's is neither kept nor looked for."""

    __slots__ = ("keys", "seq", "table")

    def __init__(self) -> None:
        self.table: Table | None = None
        self.seq = -1
        self.keys: set[tuple[tuple[str, str], ...]] = set()

    def known(self, table: Table, key: tuple[tuple[str, str], ...]) -> bool:
        return table is self.table and len(key) <= ABSENT_PAIRS and key in self.keys \
            and table.seq == self.seq

    def remember(self, table: Table, seq: int, key: tuple[tuple[str, str], ...]) -> None:
        if len(key) > ABSENT_PAIRS:
            return
        if table is not self.table or seq != self.seq or len(self.keys) >= ABSENT_SIZE:
            self.table, self.seq, self.keys = table, seq, set()
        self.keys.add(key)


class MirrorStore(StoreLayer):
    """The wrapped store, with lookups answered from the host's table while it is in sync.

    With ``control_path`` it reads the table of a keeper process (a multi-worker
    ``revoker serve``); without, it runs its own keeper, in this process, on memory of its
    own."""

    def __init__(self, inner: Store, *, clock: Callable[[], float] = time.time,
                 block_ms: int = 1000, max_lag_s: float | None = None,
                 control_path: str | None = None,
                 checkpointing: Checkpointing | None = None,
                 names_first: bool | None = None) -> None:
        super().__init__(inner)
        self.clock = clock
        self.max_lag_s = max_lag_s if max_lag_s is not None else block_ms / 1000 + 1.0
        self.control_path = control_path
        self.keeper: Keeper | None = None
        if control_path is None:
            self.keeper = Keeper(inner, Control.create(None), clock=clock, block_ms=block_ms,
                                 checkpointing=checkpointing, names_first=names_first)
        self._control: Control | None = None
        self._table: Table | None = None
        self._generation = -1
        self._task: asyncio.Task[None] | None = None
        self._fps: dict[tuple[str, str], bytes] = {}
        self._absent = Absences()

    @property
    def control(self) -> Control | None:
        if self.keeper is not None:
            return self.keeper.control
        if self._control is None and self.control_path is not None:
            try:
                self._control = Control.attach(self.control_path)
            except (OSError, ValueError):  # not made yet: read the store
                return None
        return self._control

    # -- the hot path -----------------------------------------------------------------

    def _view(self) -> Table | None:
        """The current table, while the keeper is in sync and fresh; else None."""
        control = self.control
        generation = control.usable(self.max_lag_s) if control is not None else None
        if generation is None:
            return None
        if generation != self._generation:
            self._attach(generation)
        return self._table

    def _attach(self, generation: int) -> None:
        if self.keeper is not None:
            table = self.keeper.table
            self._table, self._generation = table, self.keeper.generation
            return
        control = self.control
        texts = control.texts() if control is not None else None
        if control is None or texts is None or texts[0] != generation or not texts[1] or \
                control.path is None:
            self._table = None
            return
        path = os.path.join(os.path.dirname(control.path), texts[1])
        try:
            table = Table.attach(path)
        except (OSError, ValueError):  # replaced meanwhile: try again next lookup
            self._table = None
            return
        old, self._table, self._generation = self._table, table, generation
        if old is not None:
            old.close()

    def _fingerprints(self, pairs: Sequence[tuple[str, str]]) -> list[bytes]:
        """A BLAKE2b per pair costs more than the probe itself: remembered (it never
        changes), in a dict emptied when full so that distinct values cannot grow it. Not
        for a jti, which is one token's: a repeated token is ``Absences``' case, and
        distinct jtis would only churn the dict."""
        memo = self._fps
        fps = []
        for pair in pairs:
            if pair[0] == "jti":
                fps.append(fingerprint(*pair))
                continue
            fp = memo.get(pair)
            if fp is None:
                if len(memo) >= FP_MEMO_SIZE:
                    memo.clear()
                fp = memo[pair] = fingerprint(*pair)
            fps.append(fp)
        return fps

    def _probe(self, table: Table, pairs: Sequence[tuple[str, str]]
               ) -> tuple[list[tuple[int, int, int] | None], int] | None:
        """What the table holds for ``pairs``, read consistently, and the write sequence
        it was read at; None when the keeper was writing every time."""
        fps = self._fingerprints(pairs)
        find = table.find
        for _ in range(READ_SPINS):
            seq = table.seq
            if seq & 1:
                continue
            found = [find(fp) for fp in fps]
            if table.seq == seq:
                return found, seq
        return None

    async def get_many(self, pairs: Sequence[tuple[str, str]]) -> list[Record | None]:
        """Answer from the table while in sync; otherwise ask the store (which may fail).

        A hit is rebuilt from the table: it holds what matching a token needs, so a token
        issued after a subject's cutoff is accepted without a store read. ``complete``
        fetches the details of the records that did decide a check."""
        table = self._view()
        if table is None:
            return await self.inner.get_many(pairs)
        key = tuple(pairs)
        if self._absent.known(table, key):
            return [None] * len(key)
        read = self._probe(table, key)
        if read is None:
            return await self.inner.get_many(pairs)
        found, seq = read
        if not any(found):
            self._absent.remember(table, seq, key)
            return [None] * len(key)
        now = self.clock()
        out: list[Record | None] = [None] * len(pairs)
        pending: list[int] = []
        for i, slot in enumerate(found):
            if slot == PENDING:
                pending.append(i)
            elif slot is not None and slot[1] > now:
                revoked_at, expires_at, cutoff = slot
                kind, value = pairs[i]
                out[i] = Record(kind=kind, value=value, revoked_at=revoked_at,
                                expires_at=expires_at, issued_before=decode_cutoff(cutoff))
        if pending:  # known to exist, details not loaded yet: the store has them
            stored = await self.inner.get_many([pairs[i] for i in pending])
            for i, record in zip(pending, stored, strict=True):
                out[i] = record
        return out

    async def complete(self, records: list[Record]) -> list[Record]:
        """Read the full records from the store (reason, actor). When the store cannot
        answer, or the record went away since the lookup, the table's summary is shown:
        the token was revoked when it was checked, and a store failure never turns a
        revoked answer into an accepted one."""
        if not records:
            return records
        try:
            full = await self.inner.get_many([(r.kind, r.value) for r in records])
        except StoreError:
            return records
        return [whole if whole is not None else summary
                for summary, whole in zip(records, full, strict=True)]

    @property
    def in_sync(self) -> bool:
        return self._view() is not None

    def state(self) -> dict[str, Any]:
        control = self.control
        reading = control.read() if control is not None else None
        texts = control.texts() if control is not None else None
        detail: dict[str, Any] = {"in_sync": self.in_sync}
        if reading is not None:
            detail.update(entries=reading.entries, capacity=reading.capacity,
                          bytes=reading.segment_bytes, resyncs=reading.resyncs,
                          generation=reading.generation, keeper_pid=reading.keeper_pid)
        else:
            detail.update(entries=0, resyncs=0)
        table = self._view()
        if table is not None:  # details still being read: pending entries ask the store
            detail["filling"] = table.filling
        if texts is not None:
            detail["last_event_id"] = texts[2] or "0-0"
            if texts[3] and not detail["in_sync"]:
                detail["error"] = texts[3]
        elif not detail["in_sync"]:
            detail["error"] = "no keeper yet"
        return detail

    async def health(self) -> StoreHealth:
        health = await self.inner.health()
        health.local["mirror"] = self.state()
        health.local_ok = health.local_ok and self.in_sync
        return health

    # -- lifecycle --------------------------------------------------------------------

    async def open(self) -> None:
        """Open the store; an in-process keeper then loads in the background (lookups
        read the store until it is done)."""
        await self.inner.open()
        await self.start()

    async def close(self) -> None:
        await self.stop()
        await self.inner.close()

    async def start(self) -> None:
        if self.keeper is not None:
            self.keeper.stopping = False
            self._task = asyncio.create_task(self.keeper.run(), name="revoker-mirror")

    async def stop(self) -> None:
        """Cancel the keeper's task. Its flag matters too: a cancellation that lands while
        a client is inside its own read timeout can come out as an error, which the loop
        would otherwise treat as an outage and retry."""
        if self.keeper is not None:
            self.keeper.stopping = True
        task, self._task = self._task, None
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        if task is not None and not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it at exit
        if self.keeper is not None:
            await self.keeper.save_checkpoint()
            await self.keeper.stop()


# -- the keeper process ---------------------------------------------------------------------

def run_keeper(store: Store, control_path: str,
               checkpointing: Checkpointing | None = None) -> None:
    """The body of the keeper process of a multi-worker ``revoker serve``: keep the
    host's table until SIGTERM."""
    asyncio.run(_keep(store, control_path, checkpointing))


async def _keep(store: Store, control_path: str,
                checkpointing: Checkpointing | None) -> None:
    control = Control.attach(control_path, writable=True)
    keeper = Keeper(store, control, directory=os.path.dirname(control_path),
                    checkpointing=checkpointing)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    failures = 0
    while not stop.is_set():  # a store down at start: retry, as the sync loop would
        try:
            await store.open()
            break
        except StoreError as exc:
            keeper.last_error = f"store: {type(exc).__name__}"
            keeper.publish()
            await asyncio.sleep(RETRY_S[min(failures, len(RETRY_S) - 1)])
            failures += 1
    task = asyncio.create_task(keeper.run(), name="revoker-keeper")
    try:
        await stop.wait()
    finally:
        keeper.stopping = True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await keeper.save_checkpoint()
        await keeper.stop()
        keeper.synced = False
        keeper.publish()
        await store.close()
