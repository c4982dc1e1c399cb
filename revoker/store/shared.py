"""The mirror's memory: a fixed-layout hash table that one process writes and many read.

The table lives in a memory-mapped file (under ``/dev/shm`` on Linux, so it is RAM that
every process maps once: the host holds one copy, whatever the number of workers). It is
plain bytes with a layout of its own, so a process that did not write it can read it:

* a **data segment**: a 64-byte header (magic, capacity, sequence counter, used slots, and
  whether the table is being filled) then ``capacity`` slots of 28 bytes, each
  ``fingerprint (16) | revoked_at (u32) | expires_at (u32) | cutoff (u32)``. The
  fingerprint is BLAKE2b-128 of ``kind:value`` (the same in every process, unlike
  Python's ``hash``); an all-zero fingerprint marks an empty slot. ``cutoff`` is the
  record's ``issued_before`` (``NO_CUTOFF`` when it has none). Open addressing with
  linear probing; entries are removed by backward shifting, so there are no tombstones.
  An unrevoked record is first marked dead (``expires_at = 0``: readers already treat an
  expired entry as absent), and the sweep removes dead and expired entries later.
* a **pending** entry (``PENDING`` values) says only that the record exists: a first load
  reads the keys alone (a few times faster than reading every record's value and expiry
  too), and a reader that finds a pending entry asks the store about that record. While
  the header's ``filling`` flag is set, the writer reads the details and replaces pending
  entries with them; once it is clear, a pending entry left is a record that went away
  meanwhile (it expired), and the sweep removes it.
* a **control segment** (one page): which data segment is current (its generation and
  file name), whether the writer is in sync, when it last heard from the store, and
  what ``/readyz`` and the metrics show.

Torn reads: both segments carry a sequence counter (a seqlock). The writer makes it odd
before it changes anything and even again after; a reader reads the counter, reads what
it needs, reads the counter again, and uses what it read only when both readings are the
same even number. Within a change the writer also writes a new slot's values before its
fingerprint. This relies on the stores of one process being seen in order by another,
which x86-64 guarantees (total store order); each Python-level access is in any case a
separate C call that the interpreter cannot reorder.

Fingerprint collisions: two different ``kind:value`` with the same 128-bit fingerprint
would make the second look revoked (never accepted). With ``n`` records, the odds that a
given lookup collides are about ``n / 2**128`` (10 million records: 3e-32 per lookup).
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import struct
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

DATA_MAGIC: Final = b"RVKMIRD1"
CONTROL_MAGIC: Final = b"RVKMIRC1"
HEADER_BYTES: Final = 64
SLOT_BYTES: Final = 28
FP_BYTES: Final = 16
EMPTY: Final = bytes(FP_BYTES)
#: ``cutoff`` of a record without ``issued_before`` (jti, sid, kid): it matches any token.
NO_CUTOFF: Final = 0xFFFFFFFF
U32_MAX: Final = 0xFFFFFFFF
#: The values of a pending entry (see above). A real entry's ``revoked_at`` is at most
#: ``U32_MAX - 1``, so no record reads as pending.
PENDING: Final = (U32_MAX, U32_MAX, NO_CUTOFF)
CONTROL_BYTES: Final = 4096

_DATA_HEADER: Final = struct.Struct("<8sQQQ")  # magic, capacity, seq, used
_SEQ_AT: Final = 16
_USED_AT: Final = 24
_FILLING_AT: Final = 32
_U64: Final = struct.Struct("<Q")
_VALUES: Final = struct.Struct("<III")  # revoked_at, expires_at, cutoff
_SLOT: Final = struct.Struct("<16sIII")
_PENDING_VALUES: Final = _VALUES.pack(*PENDING)

#: Control fields after the magic: seq, generation, keeper pid, in sync, heard (monotonic
#: seconds), entries, capacity, resyncs, segment bytes, and how many events the stream had
#: received up to the last one applied (-1: unknown), which with the last event's id is
#: where a restarted keeper resumes.
_CONTROL: Final = struct.Struct("<QQQQdQQQQq")
_CONTROL_HEAD: Final = struct.Struct("<QQQQd")  # seq, generation, pid, in sync, heard
_NAME_AT: Final = 128
_NAME_BYTES: Final = 128
_LAST_ID_AT: Final = 256
_LAST_ID_BYTES: Final = 48
_ERROR_AT: Final = 320
_ERROR_BYTES: Final = 128


def fingerprint(kind: str, value: str) -> bytes:
    """BLAKE2b-128 of ``kind:value``; never the empty marker."""
    return fingerprint_of(f"{kind}:{value}".encode())


def fingerprint_of(name: bytes) -> bytes:
    digest = hashlib.blake2b(name, digest_size=FP_BYTES).digest()
    return digest if digest != EMPTY else b"\x01" + digest[1:]


def clamp_u32(value: int) -> int:
    """Times as unsigned 32-bit seconds (until 2106): later ones read as the maximum."""
    return 0 if value < 0 else min(value, U32_MAX)


def encode_revoked(revoked_at: int) -> int:
    """``revoked_at`` as stored: ``clamp_u32`` short of the pending marker."""
    return 0 if revoked_at < 0 else min(revoked_at, U32_MAX - 1)


def encode_cutoff(issued_before: int | None) -> int:
    return NO_CUTOFF if issued_before is None else min(clamp_u32(issued_before), U32_MAX - 1)


def decode_cutoff(cutoff: int) -> int | None:
    return None if cutoff == NO_CUTOFF else cutoff


def segment_directory() -> str:
    """Where segments live: RAM-backed ``/dev/shm`` when the system has it, else the
    temporary directory. Files are created exclusively (``O_EXCL``), mode 0600."""
    shm = "/dev/shm"  # noqa: S108 - created with O_EXCL and mode 0600, see _map
    return shm if os.path.isdir(shm) else tempfile.gettempdir()


def _map(path: str | None, size: int, *, create: bool, writable: bool) -> mmap.mmap:
    """A file mapping (``path``) or, without a path, anonymous memory of this process."""
    if path is None:
        return mmap.mmap(-1, size)
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL if create else \
        (os.O_RDWR if writable else os.O_RDONLY)
    fd = os.open(path, flags, 0o600)
    try:
        if create:
            # Reserved now, so that a full /dev/shm is an error here (ENOSPC), never a
            # SIGBUS on a later write to the mapping.
            os.posix_fallocate(fd, 0, size)
        else:
            size = os.fstat(fd).st_size
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable or create else 0)
        return mmap.mmap(fd, size, prot=prot)
    finally:
        os.close(fd)


def unlink(path: str | None) -> None:
    if path:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


class Table:
    """One data segment. Reads take no lock: callers wrap them in ``seq`` readings."""

    __slots__ = ("capacity", "mm", "path")

    def __init__(self, mm: mmap.mmap, path: str | None) -> None:
        self.mm = mm
        self.path = path
        magic, capacity, _, _ = _DATA_HEADER.unpack_from(mm, 0)
        self.capacity: int = capacity
        if magic != DATA_MAGIC or len(mm) < HEADER_BYTES + self.capacity * SLOT_BYTES:
            raise ValueError(f"not a mirror data segment: {path}")

    @classmethod
    def create(cls, path: str | None, capacity: int) -> Table:
        size = HEADER_BYTES + capacity * SLOT_BYTES
        mm = _map(path, size, create=True, writable=True)
        _DATA_HEADER.pack_into(mm, 0, DATA_MAGIC, capacity, 0, 0)
        return cls(mm, path)

    @classmethod
    def attach(cls, path: str, *, writable: bool = False) -> Table:
        return cls(_map(path, 0, create=False, writable=writable), path)

    def close(self) -> None:
        self.mm.close()

    @property
    def nbytes(self) -> int:
        return len(self.mm)

    @property
    def seq(self) -> int:
        seq: int = _U64.unpack_from(self.mm, _SEQ_AT)[0]
        return seq

    @property
    def used(self) -> int:
        """Occupied slots: live entries plus dead or expired ones not yet swept."""
        used: int = _U64.unpack_from(self.mm, _USED_AT)[0]
        return used

    @property
    def filling(self) -> bool:
        """Whether pending entries are being replaced by their details (see above)."""
        flag: int = _U64.unpack_from(self.mm, _FILLING_AT)[0]
        return flag != 0

    @filling.setter
    def filling(self, value: bool) -> None:
        _U64.pack_into(self.mm, _FILLING_AT, 1 if value else 0)

    def _home(self, fp: bytes) -> int:
        return int.from_bytes(fp[:8], "little") % self.capacity

    def find(self, fp: bytes) -> tuple[int, int, int] | None:
        """``(revoked_at, expires_at, cutoff)`` of ``fp``, or None. Bounded even when the
        writer changes the table meanwhile (the caller then discards the answer)."""
        mm, capacity = self.mm, self.capacity
        i = int.from_bytes(fp[:8], "little") % capacity
        for _ in range(capacity):
            at = HEADER_BYTES + i * SLOT_BYTES
            got = mm[at:at + FP_BYTES]
            if got == fp:
                values: tuple[int, int, int] = _VALUES.unpack_from(mm, at + FP_BYTES)
                return values
            if got == EMPTY:
                return None
            i = i + 1 if i + 1 < capacity else 0
        return None

    # -- the writer's side: only between begin() and end() ---------------------------------

    def begin(self) -> None:
        _U64.pack_into(self.mm, _SEQ_AT, self.seq + 1)

    def end(self) -> None:
        _U64.pack_into(self.mm, _SEQ_AT, self.seq + 1)

    def _set_used(self, used: int) -> None:
        _U64.pack_into(self.mm, _USED_AT, used)

    def _locate(self, fp: bytes) -> tuple[int, bool]:
        """The slot holding ``fp`` (True) or the empty slot where it would go (False)."""
        mm, capacity = self.mm, self.capacity
        i = self._home(fp)
        for _ in range(capacity):
            at = HEADER_BYTES + i * SLOT_BYTES
            got = mm[at:at + FP_BYTES]
            if got == fp:
                return i, True
            if got == EMPTY:
                return i, False
            i = i + 1 if i + 1 < capacity else 0
        # Never with the writer's own bookkeeping (it grows the table past MAX_LOAD); a
        # damaged table must fail loudly (the keeper then reloads), not spin forever.
        raise ValueError("mirror table has no empty slot")

    def put(self, fp: bytes, revoked_at: int, expires_at: int, cutoff: int) -> None:
        """Insert or overwrite (the caller keeps the load under 1: there is an empty slot)."""
        i, found = self._locate(fp)
        at = HEADER_BYTES + i * SLOT_BYTES
        _VALUES.pack_into(self.mm, at + FP_BYTES, revoked_at, expires_at, cutoff)
        if not found:
            self.mm[at:at + FP_BYTES] = fp
            self._set_used(self.used + 1)

    def load(self, rows: Iterable[tuple[bytes, int, int, int | None]], now: int) -> None:
        """Insert or overwrite exported rows (``kind:value``, revoked_at, expires_at,
        issued_before) that expire after ``now``: ``put`` with its calls inlined, since a
        cold load makes millions of them."""
        mm, capacity, pack, used = self.mm, self.capacity, _VALUES.pack_into, self.used
        blake2b, from_bytes = hashlib.blake2b, int.from_bytes
        for name, revoked_at, expires_at, issued_before in rows:
            if expires_at <= now:
                continue
            fp = blake2b(name, digest_size=FP_BYTES).digest()
            if fp == EMPTY:
                fp = b"\x01" + fp[1:]
            i = from_bytes(fp[:8], "little") % capacity
            while True:
                at = HEADER_BYTES + i * SLOT_BYTES
                got = mm[at:at + FP_BYTES]
                if got in (fp, EMPTY):
                    break
                i = i + 1 if i + 1 < capacity else 0
            cutoff = NO_CUTOFF if issued_before is None else \
                (issued_before if 0 <= issued_before < NO_CUTOFF else
                 encode_cutoff(issued_before))
            pack(mm, at + FP_BYTES,
                 revoked_at if 0 <= revoked_at < U32_MAX else encode_revoked(revoked_at),
                 expires_at if expires_at <= U32_MAX else U32_MAX, cutoff)
            if got == EMPTY:
                mm[at:at + FP_BYTES] = fp
                used += 1
        self._set_used(used)

    def load_names(self, names: Iterable[bytes]) -> None:
        """Insert a pending entry for each ``kind:value`` not already here: a first
        load's keys, before anyone reads the table (no write section)."""
        mm, capacity, used = self.mm, self.capacity, self.used
        blake2b, from_bytes, pending = hashlib.blake2b, int.from_bytes, _PENDING_VALUES
        end = HEADER_BYTES + capacity * SLOT_BYTES
        for name in names:  # the probe steps by byte offsets: no index arithmetic per slot
            fp = blake2b(name, digest_size=FP_BYTES).digest()
            if fp == EMPTY:
                fp = b"\x01" + fp[1:]
            at = HEADER_BYTES + from_bytes(fp[:8], "little") % capacity * SLOT_BYTES
            while True:
                got = mm[at:at + FP_BYTES]
                if got == EMPTY:
                    mm[at:at + SLOT_BYTES] = fp + pending
                    used += 1
                    break
                if got == fp:  # SCAN may return a key twice
                    break
                at += SLOT_BYTES
                if at == end:
                    at = HEADER_BYTES
        self._set_used(used)

    def fill(self, rows: Iterable[tuple[bytes, int, int, int | None]]) -> int:
        """Give pending entries their details from exported rows (as ``load`` takes
        them); an entry that is not pending was written by an event since, which is
        newer, and stays. Returns how many were filled. Inside a write section."""
        mm, pack, filled = self.mm, _VALUES.pack_into, 0
        for name, revoked_at, expires_at, issued_before in rows:
            i, found = self._locate(fingerprint_of(name))
            at = HEADER_BYTES + i * SLOT_BYTES + FP_BYTES
            if found and mm[at:at + _VALUES.size] == _PENDING_VALUES:
                pack(mm, at, encode_revoked(revoked_at), clamp_u32(expires_at),
                     encode_cutoff(issued_before))
                filled += 1
        return filled

    def put_new(self, fp: bytes, values: tuple[int, int, int]) -> None:
        """Insert unless ``fp`` is there already (copying into a newer table)."""
        i, found = self._locate(fp)
        if not found:
            at = HEADER_BYTES + i * SLOT_BYTES
            _VALUES.pack_into(self.mm, at + FP_BYTES, *values)
            self.mm[at:at + FP_BYTES] = fp
            self._set_used(self.used + 1)

    def kill(self, fp: bytes) -> None:
        """Mark dead (expired at 0): readers see no entry; the sweep frees the slot."""
        i, found = self._locate(fp)
        if found:
            at = HEADER_BYTES + i * SLOT_BYTES
            _VALUES.pack_into(self.mm, at + FP_BYTES, 0, 0, NO_CUTOFF)

    def _remove_at(self, i: int) -> None:
        """Free slot ``i`` by shifting back the entries of its cluster that may move
        (linear probing's deletion, which leaves no tombstone)."""
        mm, capacity = self.mm, self.capacity
        j = i
        for _ in range(capacity):
            j = j + 1 if j + 1 < capacity else 0
            at_j = HEADER_BYTES + j * SLOT_BYTES
            slot = mm[at_j:at_j + SLOT_BYTES]
            if slot[:FP_BYTES] == EMPTY:
                break
            home = int.from_bytes(slot[:8], "little") % capacity
            stays = (i < home <= j) if i <= j else (home > i or home <= j)
            if not stays:
                at_i = HEADER_BYTES + i * SLOT_BYTES
                mm[at_i:at_i + SLOT_BYTES] = slot
                i = j
        at_i = HEADER_BYTES + i * SLOT_BYTES
        mm[at_i:at_i + SLOT_BYTES] = bytes(SLOT_BYTES)
        self._set_used(self.used - 1)

    def sweep(self, start: int, count: int, now: int) -> tuple[int, int]:
        """Free the dead and expired entries among ``count`` slots from ``start`` (and the
        pending ones, once the table is no longer filling); returns the next start (0
        after the last slot) and how many were freed.

        The writer's own call, outside any write section: it looks at the slots without
        one (nothing else changes them) and opens a section for each removal only, so
        readers never wait on the scan, and a writer killed meanwhile almost always leaves
        the table consistent (adoptable by the next one)."""
        mm = self.mm
        end = min(start + count, self.capacity)
        freed = 0
        i = start
        left = b"" if self.filling else _PENDING_VALUES  # a pending entry nobody will fill
        while i < end:
            at = HEADER_BYTES + i * SLOT_BYTES
            if mm[at:at + FP_BYTES] != EMPTY and \
                    (_VALUES.unpack_from(mm, at + FP_BYTES)[1] <= now or
                     mm[at + FP_BYTES:at + SLOT_BYTES] == left):
                self.begin()
                try:
                    self._remove_at(i)
                finally:
                    self.end()
                freed += 1
                continue  # another entry may have moved into slot i
            i += 1
        return (0 if end >= self.capacity else end), freed

    def live(self, start: int, count: int, now: int) -> Iterator[tuple[bytes, tuple[int, int,
                                                                                     int]]]:
        """The unexpired entries among ``count`` slots from ``start``."""
        mm = self.mm
        for i in range(start, min(start + count, self.capacity)):
            at = HEADER_BYTES + i * SLOT_BYTES
            fp = mm[at:at + FP_BYTES]
            if fp != EMPTY:
                values: tuple[int, int, int] = _VALUES.unpack_from(mm, at + FP_BYTES)
                if values[1] > now:
                    yield fp, values


@dataclass(frozen=True, slots=True)
class ControlState:
    """One consistent reading of the control segment."""

    generation: int
    keeper_pid: int
    in_sync: bool
    heard: float
    entries: int
    capacity: int
    resyncs: int
    segment_bytes: int
    #: Events the stream had received up to the last one applied; None: unknown.
    added: int | None = None


class Control:
    """The control segment: one page that says which table is current and whether the
    writer is in sync. Made by whoever owns the mirror's lifetime (the supervisor of a
    multi-worker ``revoker serve``, or the one process), written by the keeper."""

    __slots__ = ("mm", "path")

    def __init__(self, mm: mmap.mmap, path: str | None) -> None:
        if mm[:8] != CONTROL_MAGIC:
            raise ValueError(f"not a mirror control segment: {path}")
        self.mm = mm
        self.path = path

    @classmethod
    def create(cls, path: str | None) -> Control:
        mm = _map(path, CONTROL_BYTES, create=True, writable=True)
        mm[:8] = CONTROL_MAGIC
        return cls(mm, path)

    @classmethod
    def attach(cls, path: str, *, writable: bool = False) -> Control:
        return cls(_map(path, 0, create=False, writable=writable), path)

    def close(self) -> None:
        self.mm.close()

    def read(self, *, spins: int = 1000) -> ControlState | None:
        """A consistent reading, or None if the writer kept changing it (or died in the
        middle of a change)."""
        mm = self.mm
        for _ in range(spins):
            fields = _CONTROL.unpack_from(mm, 8)
            seq = fields[0]
            if seq & 1 or _U64.unpack_from(mm, 8)[0] != seq:
                continue
            return ControlState(fields[1], fields[2], bool(fields[3]), fields[4], fields[5],
                                fields[6], fields[7], fields[8],
                                None if fields[9] < 0 else fields[9])
        return None

    def usable(self, max_lag_s: float, *, spins: int = 1000) -> int | None:
        """The current generation while the writer is in sync and heard from the store
        within ``max_lag_s``; else None. ``read`` without building a ``ControlState``:
        every lookup asks this."""
        mm = self.mm
        for _ in range(spins):
            seq, generation, _pid, in_sync, heard = _CONTROL_HEAD.unpack_from(mm, 8)
            if seq & 1 or _U64.unpack_from(mm, 8)[0] != seq:
                continue
            if not in_sync or time.monotonic() - heard > max_lag_s:
                return None
            return int(generation)
        return None

    def texts(self, *, spins: int = 1000) -> tuple[int, str, str, str] | None:
        """(generation, segment name, last event id, last error), consistent, or None."""
        mm = self.mm
        for _ in range(spins):
            seq, generation = struct.unpack_from("<QQ", mm, 8)
            if seq & 1:
                continue
            texts = (self._text(_NAME_AT, _NAME_BYTES), self._text(_LAST_ID_AT, _LAST_ID_BYTES),
                     self._text(_ERROR_AT, _ERROR_BYTES))
            if _U64.unpack_from(mm, 8)[0] == seq:
                return (generation, *texts)
        return None

    def _text(self, at: int, size: int) -> str:
        return bytes(self.mm[at:at + size]).rstrip(b"\0").decode("ascii", "replace")

    # -- the keeper's side ----------------------------------------------------------------

    def write(self, state: ControlState, *, name: str | None = None,
              last_id: str | None = None, error: str | None = None) -> None:
        mm = self.mm
        seq = _U64.unpack_from(mm, 8)[0]
        seq += 1 if seq % 2 == 0 else 2  # a keeper that died mid-write left it odd
        _U64.pack_into(mm, 8, seq)
        _CONTROL.pack_into(mm, 8, seq, state.generation, state.keeper_pid, int(state.in_sync),
                           state.heard, state.entries, state.capacity, state.resyncs,
                           state.segment_bytes, -1 if state.added is None else state.added)
        for text, at, size in ((name, _NAME_AT, _NAME_BYTES),
                               (last_id, _LAST_ID_AT, _LAST_ID_BYTES),
                               (error, _ERROR_AT, _ERROR_BYTES)):
            if text is not None:
                raw = text.encode("ascii", "replace")[:size]
                mm[at:at + size] = raw + bytes(size - len(raw))
        _U64.pack_into(mm, 8, seq + 1)
