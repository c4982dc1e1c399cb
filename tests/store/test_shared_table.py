"""The shared table of the mirror (revoker.store.shared): its layout, probing, deletion by
backward shift, sweeping, the seqlock, and reading it from another process."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revoker.store.shared import (
    HEADER_BYTES,
    NO_CUTOFF,
    PENDING,
    SLOT_BYTES,
    U32_MAX,
    Control,
    ControlState,
    Table,
    decode_cutoff,
    encode_cutoff,
    encode_revoked,
    fingerprint,
    fingerprint_of,
)

# Small tables: many keys share a home slot, so probing, wrap-around and shifting are
# exercised on every example.
OPS = st.lists(st.tuples(st.sampled_from(["put", "kill", "sweep"]),
                         st.integers(0, 40), st.integers(1, 20)), max_size=200)


@given(OPS)
@settings(max_examples=200, deadline=None)
def test_the_table_behaves_like_a_dict(ops: list[tuple[str, int, int]]) -> None:
    table = Table.create(None, 64)
    model: dict[bytes, tuple[int, int, int]] = {}
    for op, key, expires in ops:
        fp = fingerprint("jti", str(key))
        if op == "put" and (len(model) < 44 or fp in model):
            values = (1, expires, NO_CUTOFF)
            table.put(fp, *values)
            model[fp] = values
        elif op == "kill":
            table.kill(fp)
            if fp in model:
                model[fp] = (0, 0, NO_CUTOFF)
        elif op == "sweep":  # everything that expires by ``expires`` goes
            start = 0
            while True:
                start, _ = table.sweep(start, 7, expires)
                if start == 0:
                    break
            model = {k: v for k, v in model.items() if v[1] > expires}
        assert table.used == len(model)
        for other in range(41):
            other_fp = fingerprint("jti", str(other))
            assert table.find(other_fp) == model.get(other_fp)


def test_cutoffs_round_trip() -> None:
    assert decode_cutoff(encode_cutoff(None)) is None
    assert decode_cutoff(encode_cutoff(1_764_000_000)) == 1_764_000_000
    assert decode_cutoff(encode_cutoff(-5)) == 0
    assert fingerprint("jti", "x") == fingerprint("jti", "x")


def test_a_file_segment_is_sized_by_its_capacity(tmp_path: Path) -> None:
    path = str(tmp_path / "segment")
    table = Table.create(path, 1000)
    assert os.path.getsize(path) == 64 + 1000 * SLOT_BYTES == table.nbytes
    table.put(fingerprint("jti", "a"), 5, 10, NO_CUTOFF)
    reader = Table.attach(path)
    assert reader.find(fingerprint("jti", "a")) == (5, 10, NO_CUTOFF)
    assert reader.capacity == 1000 and reader.used == 1


def _read_forever(path: str, rounds: int, out: multiprocessing.Queue[tuple[int, int]]) -> None:
    """Another process reading while the writer rewrites: every consistent reading must
    show both entries with the same value (they are always changed together)."""
    table = Table.attach(path)
    fps = [fingerprint("jti", "a"), fingerprint("jti", "b")]
    consistent = torn = 0
    for _ in range(rounds):
        seq = table.seq
        if seq & 1:
            continue
        found = [table.find(fp) for fp in fps]
        if table.seq != seq:
            continue
        consistent += 1
        a, b = found
        if a is None or b is None or a != b:
            torn += 1
    out.put((consistent, torn))


def test_the_seqlock_hides_half_made_changes_from_another_process(tmp_path: Path) -> None:
    path = str(tmp_path / "segment")
    table = Table.create(path, 64)
    fa, fb = fingerprint("jti", "a"), fingerprint("jti", "b")
    table.put(fa, 0, 100, NO_CUTOFF)
    table.put(fb, 0, 100, NO_CUTOFF)
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[tuple[int, int]] = context.Queue()
    reader = context.Process(target=_read_forever, args=(path, 200_000, out))
    reader.start()
    value = 0
    while reader.is_alive():
        value += 1
        table.begin()
        table.put(fa, value, 100, NO_CUTOFF)
        table.kill(fb)  # a moment where a and b differ, inside the section
        table.put(fb, value, 100, NO_CUTOFF)
        table.end()
        if value % 1000 == 0:
            reader.join(0)
    reader.join()
    consistent, torn = out.get(timeout=10)
    assert consistent > 0 and torn == 0


def test_the_control_segment_round_trips(tmp_path: Path) -> None:
    path = str(tmp_path / "control")
    control = Control.create(path)
    state = ControlState(generation=3, keeper_pid=42, in_sync=True, heard=12.5, entries=7,
                         capacity=64, resyncs=2, segment_bytes=1856)
    control.write(state, name="control.3", last_id="1-0", error="")
    reader = Control.attach(path)
    assert reader.read() == state
    assert reader.texts() == (3, "control.3", "1-0", "")


def test_usable_names_the_generation_only_while_in_sync_and_fresh(tmp_path: Path) -> None:
    control = Control.create(str(tmp_path / "control"))
    now = time.monotonic()
    fresh = ControlState(generation=5, keeper_pid=42, in_sync=True, heard=now, entries=1,
                         capacity=64, resyncs=1, segment_bytes=1856, added=9)
    control.write(fresh)
    assert control.read() == fresh
    assert control.usable(2.0) == 5
    control.write(dataclasses.replace(fresh, heard=now - 3.0))
    assert control.usable(2.0) is None  # not heard from the store within the bound
    control.write(dataclasses.replace(fresh, in_sync=False))
    assert control.usable(2.0) is None
    control.write(fresh)
    control.mm[8:16] = (int.from_bytes(control.mm[8:16], "little") + 1).to_bytes(8, "little")
    assert control.usable(2.0, spins=10) is None  # a writer that died mid-change


def test_a_sweep_changes_the_table_only_to_remove(tmp_path: Path) -> None:
    """The scan itself opens no write section (readers never wait on it): one short
    section per removal, so the counter is even whenever nothing is being removed."""
    table = Table.create(None, 64)
    table.begin()
    for i in range(20):
        table.put(fingerprint("jti", str(i)), 1, 100 if i % 4 == 0 else 1000, NO_CUTOFF)
    table.end()
    before = table.seq
    assert table.sweep(0, 64, 50) == (0, 0)
    assert table.seq == before
    assert table.sweep(0, 64, 500) == (0, 5)
    assert table.seq == before + 2 * 5
    assert table.used == 15


def test_a_table_with_no_empty_slot_fails_instead_of_spinning() -> None:
    table = Table.create(None, 4)
    table.begin()
    for i in range(4):  # past any load the keeper allows: only a damaged table looks so
        at = HEADER_BYTES + i * SLOT_BYTES
        table.mm[at:at + 16] = fingerprint("jti", str(i))
    table.end()
    assert table.find(fingerprint("jti", "absent")) is None
    with pytest.raises(ValueError, match="no empty slot"):
        table.put(fingerprint("jti", "absent"), 1, 2, 3)


# -- a first load by names: pending entries, filled later -----------------------------------


def test_names_load_as_pending_entries_and_fill_gives_them_their_details() -> None:
    table = Table.create(None, 64)
    table.filling = True
    table.load_names([b"jti:a", b"jti:b", b"sub:c", b"jti:a"])  # SCAN may repeat a key
    assert table.used == 3
    assert table.find(fingerprint("jti", "a")) == PENDING
    table.begin()
    filled = table.fill([(b"jti:a", 10, 500, None), (b"sub:c", 11, 600, 12),
                         (b"jti:unknown", 1, 2, None)])  # not in the table: not added
    table.end()
    assert filled == 2
    assert table.find(fingerprint("jti", "a")) == (10, 500, NO_CUTOFF)
    assert table.find(fingerprint("sub", "c")) == (11, 600, 12)
    assert table.find(fingerprint("jti", "b")) == PENDING
    assert table.find(fingerprint("jti", "unknown")) is None
    assert table.used == 3


@given(st.lists(st.integers(0, 30), max_size=40))
@settings(max_examples=200, deadline=None)
def test_a_names_load_holds_each_name_once_wherever_it_probes(keys: list[int]) -> None:
    """A table of 16 slots: homes collide and probes wrap around its end."""
    names = [f"jti:{key}".encode() for key in keys][:12]  # below 16: an empty slot is left
    table = Table.create(None, 16)
    table.load_names(names)
    assert table.used == len(set(names))
    for other in range(31):
        held = f"jti:{other}".encode() in names
        assert table.find(fingerprint("jti", str(other))) == (PENDING if held else None)


def test_a_names_load_wraps_past_the_last_slot() -> None:
    table = Table.create(None, 8)
    last = [name for name in (f"jti:{i}".encode() for i in range(500))
            if int.from_bytes(fingerprint_of(name)[:8], "little") % 8 == 7][:3]
    table.load_names(last)  # homes in the last slot: the second and third wrap to 0 and 1
    assert table.used == 3
    assert all(table.find(fingerprint_of(name)) == PENDING for name in last)


def test_fill_leaves_what_an_event_wrote_or_killed() -> None:
    """The fill's page may be older than an event applied before it: an entry that is
    not pending is never overwritten, whatever the page says."""
    table = Table.create(None, 64)
    table.load_names([b"jti:renewed", b"jti:unrevoked"])
    table.begin()
    table.put(fingerprint("jti", "renewed"), 20, 9000, NO_CUTOFF)  # the event: later
    table.kill(fingerprint("jti", "unrevoked"))
    assert table.fill([(b"jti:renewed", 10, 500, None), (b"jti:unrevoked", 10, 500, None)]) == 0
    table.end()
    assert table.find(fingerprint("jti", "renewed")) == (20, 9000, NO_CUTOFF)
    assert table.find(fingerprint("jti", "unrevoked")) == (0, 0, NO_CUTOFF)


def test_pending_entries_are_swept_only_once_the_fill_is_over() -> None:
    table = Table.create(None, 64)
    table.filling = True
    table.load_names([b"jti:gone", b"jti:kept"])
    table.begin()
    table.fill([(b"jti:kept", 10, 500, None)])
    table.end()
    assert table.sweep(0, 64, 100) == (0, 0)  # still filling: "gone" may yet be filled
    assert table.find(fingerprint("jti", "gone")) == PENDING
    table.filling = False  # the fill read every record: "gone" went away meanwhile
    assert table.sweep(0, 64, 100) == (0, 1)
    assert table.find(fingerprint("jti", "gone")) is None
    assert table.find(fingerprint("jti", "kept")) == (10, 500, NO_CUTOFF)


def test_no_record_reads_as_pending() -> None:
    """A record revoked at the largest time a slot holds must not look pending (which
    would make the sweep remove it once no fill runs)."""
    assert encode_revoked(2**40) == U32_MAX - 1
    assert encode_revoked(-1) == 0
    table = Table.create(None, 64)
    table.load([(b"jti:far", 2**40, 2**40, None)], 0)
    assert table.find(fingerprint_of(b"jti:far")) == (U32_MAX - 1, U32_MAX, NO_CUTOFF)
    assert table.find(fingerprint_of(b"jti:far")) != PENDING
    table.load_names([b"jti:far-too"])
    table.begin()
    table.fill([(b"jti:far-too", 2**40, 2**40, None)])
    table.end()
    assert table.find(fingerprint_of(b"jti:far-too")) == (U32_MAX - 1, U32_MAX, NO_CUTOFF)


def test_the_filling_flag_is_in_the_segment(tmp_path: Path) -> None:
    """A keeper that adopts a table (or restores a checkpoint, a copy of the segment)
    learns from the table itself that its fill was not finished."""
    path = str(tmp_path / "segment")
    table = Table.create(path, 64)
    assert not table.filling
    table.filling = True
    again = Table.attach(path)
    assert again.filling
    table.filling = False
    assert not again.filling
    again.close()
    table.close()
