"""The mirror's table saved to a file, so that a restarted host is ready in seconds.

Loading the denylist from the store reads every record: for Redis a SCAN, a GET and an
EXPIRETIME per key, about 5 µs of Redis's one thread each, so ten million records take
well over a minute however fast the loader is. A checkpoint is the table's bytes and the
position in the events stream that they reflect. Restored, the table needs only the
events written since it was saved, and the stream says whether it still holds all of
them: when it does not (trimmed past the position, recreated, another store), the
checkpoint is ignored and the keeper loads from the store as before. A checkpoint can
make a host ready sooner, never answer differently.

File layout: ``MAGIC``, a little-endian u32 length and a JSON header (``Meta``), then the
table segment as it is in memory (``revoker.store.shared``). The header's BLAKE2b digest,
of the header's other fields and the segment, catches a torn or damaged file. It is not a
signature: whoever can write
the file can change the denylist, so the file is written mode 0600 and refused unless it
belongs to this user and no one else can write it, the rule ssh applies to its keys.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import mmap
import os
import stat
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Final

from revoker.errors import InvalidInput
from revoker.logs import redact_url
from revoker.model import parse_stream_id
from revoker.store.shared import HEADER_BYTES, SLOT_BYTES, Table, unlink

log = logging.getLogger(__name__)

MAGIC: Final = b"RVKMIRK1"
#: Version 2 tables may hold pending entries (a checkpoint saved during a fill), which
#: version 1 would misread as records revoked until 2106: it refuses them. Version 1 holds
#: none, and is read as it is.
VERSION: Final = 2
READABLE: Final = (1, 2)
_PREFIX: Final = struct.Struct("<8sI")
#: A header is a few hundred bytes; anything larger is not ours.
MAX_HEADER_BYTES: Final = 64 * 1024
_CHUNK: Final = 8 * 1024 * 1024


def store_identity(url: str, prefix: str) -> str:
    """Which denylist a checkpoint holds: the store's URL without its password, and the
    key prefix. A checkpoint of another store is never restored."""
    return f"{redact_url(url)} {prefix}"


@dataclass(frozen=True, slots=True)
class Meta:
    """What a checkpoint's header says about the table after it."""

    store: str
    #: The last event the table reflects, and how many events the stream had received up
    #: to it (None where the store cannot count).
    last_id: str
    added: int | None
    capacity: int
    entries: int
    saved_at: float
    digest: str = ""
    version: int = VERSION


def image(table: Table) -> bytes:
    """A copy of the table's bytes. Taken by its one writer between two changes, so it
    is consistent; the copy (a memcpy: tens of milliseconds per hundred megabytes) is what
    the keeper pauses for, and the slow part, writing it, happens elsewhere."""
    return bytes(table.mm)


def save(path: str, data: bytes, meta: Meta) -> None:
    """Write ``data`` (an ``image``) and its header to ``path``, atomically: a temporary
    file next to it, fsync, then rename. Blocking: run it in a thread."""
    header = json.dumps(asdict(meta) | {"digest": _digest(meta, data)},
                        separators=(",", ":")).encode()
    tmp = f"{path}.tmp"
    unlink(tmp)  # left by a save that died
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb", closefd=False) as out:
            out.write(_PREFIX.pack(MAGIC, len(header)))
            out.write(header)
            out.write(data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # the rename itself survives a crash too
        directory = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _digest(meta: Meta, data: bytes | mmap.mmap) -> str:
    """BLAKE2b of the header's fields (but the digest) and of the segment."""
    digest = hashlib.blake2b(json.dumps(asdict(meta) | {"digest": ""},
                                        sort_keys=True).encode())
    digest.update(data)
    return digest.hexdigest()


class Unusable(Exception):
    """A checkpoint that is not restored (the reason is the message)."""


def restore(path: str, identity: str,
            new_table: Callable[[int], Table]) -> tuple[Table, Meta]:
    """The table saved at ``path`` for the store ``identity``, in a table made by
    ``new_table(capacity)``, and its header. Raises ``Unusable`` (and leaves nothing
    behind) when there is no checkpoint or it cannot be trusted: the caller then loads
    from the store."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise Unusable("no checkpoint") from None
    except OSError as exc:
        raise Unusable(f"cannot open it: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or \
            info.st_mode & 0o022:
        os.close(fd)
        raise Unusable("not a regular file of this user that only it can write: "
                       "refusing to trust it")
    with os.fdopen(fd, "rb") as source:
        meta = _read_header(source, identity)
        expected = HEADER_BYTES + meta.capacity * SLOT_BYTES
        if info.st_size - source.tell() != expected:
            raise Unusable("truncated or too long")
        table = new_table(meta.capacity)
        try:
            _fill(source, table, meta)
        except BaseException:
            unlink(table.path)
            table.close()
            raise
    return table, meta


def _read_header(source: io.BufferedReader, identity: str) -> Meta:
    prefix = source.read(_PREFIX.size)
    if len(prefix) != _PREFIX.size:
        raise Unusable("truncated")
    magic, size = _PREFIX.unpack(prefix)
    if magic != MAGIC or size > MAX_HEADER_BYTES:
        raise Unusable("not a mirror checkpoint")
    try:
        fields = json.loads(source.read(size))
        meta = Meta(**fields)
    except (ValueError, TypeError):
        raise Unusable("damaged header") from None
    if meta.version not in READABLE:
        raise Unusable(f"version {meta.version}, not {VERSION}")
    if not (isinstance(meta.capacity, int) and isinstance(meta.entries, int) and
            isinstance(meta.last_id, str) and isinstance(meta.digest, str) and
            (meta.added is None or isinstance(meta.added, int)) and
            0 < meta.capacity < 2**40 and 0 <= meta.entries < meta.capacity):
        raise Unusable("damaged header")
    try:
        parse_stream_id(meta.last_id)
    except InvalidInput:
        raise Unusable("damaged header") from None
    if meta.store != identity:
        raise Unusable("saved for another store")
    return meta


def _fill(source: io.BufferedReader, table: Table, meta: Meta) -> None:
    """Read the segment into ``table``'s memory and check it whole before anyone uses it."""
    view = memoryview(table.mm)
    try:
        done = 0
        while done < len(view):
            got = source.readinto(view[done:done + _CHUNK])
            if not got:
                raise Unusable("truncated")
            done += got
    finally:
        view.release()
    if _digest(meta, table.mm) != meta.digest:
        raise Unusable("damaged: its digest does not match")
    try:
        saved = Table(table.mm, table.path)
    except ValueError:
        raise Unusable("damaged segment") from None
    if saved.capacity != meta.capacity or saved.seq & 1 or saved.used != meta.entries:
        raise Unusable("damaged segment")


@dataclass(frozen=True, slots=True)
class Checkpointing:
    """Where a keeper keeps its checkpoint, for which store, and how often it saves one
    (it also saves one when it stops)."""

    path: str
    identity: str
    every_s: float
