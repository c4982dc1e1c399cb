"""``revoker import FILE`` and ``revoker export``: NDJSON in and out, in batches.

Import reads the file as a stream (memory stays flat for any size), sends batches of
revoke bodies through ``POST /v1/revocations/batch`` with a few in flight, retries a
batch when the service is briefly unavailable, and writes every line that could not be
revoked, verbatim, to a report file, so that ``revoker import REPORT`` finishes the job.
The reasons go to ``REPORT.errors``, one per line in the same order, so that line k of
one explains line k of the other. The summary tells new revocations from ones that were
already present (the API answers 201 and 200), so that a re-import reads as such.
If the import stops early (key rejected, service gone), it says which ``--skip-lines``
resumes it without sending anything twice. Lines of ``revoker export`` are accepted
as they are: the record-only fields ``revoked_at`` and ``actor`` are dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Final, TextIO

from revoker.cli.common import (
    EXIT_CODES,
    EXIT_FAILURE,
    EXIT_OK,
    Subcommands,
    UsageError,
    client_options,
    emit,
    fail,
    output_stream,
    runner,
)
from revoker.client import ApiError, AuthError, BatchItem, ClientError, RevokerClient

RECORD_ONLY_FIELDS: Final = ("revoked_at", "actor")
RETRY_DELAYS_S: Final = (0.5, 1.0, 2.0, 4.0)
SHOWN_FAILURES: Final = 5
#: Without a terminal (a log, CI), a progress line at most this often.
LOG_PROGRESS_EVERY_S: Final = 5.0
REPORT_HELP: Final = (
    "Lines that fail are copied verbatim to the report file (default: FILE.failed) and "
    "their reasons to REPORT.errors, one per line in the same order: line k of "
    "REPORT.errors, 'report line k (line N of FILE): reason', explains line k of REPORT, "
    "which was line N of FILE. Errors shown on stderr are numbered by FILE. Fix the lines, "
    "then run `revoker import REPORT`.")


def add_commands(sub: Subcommands) -> None:
    options = client_options()
    imp = sub.add_parser("import", parents=[options], epilog=f"{REPORT_HELP} {EXIT_CODES}",
                         help="revoke every line of an NDJSON file of revoke bodies")
    imp.add_argument("file", help="NDJSON file, or - for stdin")
    imp.add_argument("--batch-size", type=int, default=1000, help="items per request (1-10000)")
    imp.add_argument("--concurrency", type=int, default=4, help="requests in flight (1-16)")
    imp.add_argument("--report", help="where failed lines go (default: FILE.failed)")
    imp.add_argument("--skip-lines", type=int, default=0,
                     help="resume: skip this many lines (as told by an interrupted import)")
    imp.add_argument("--quiet", action="store_true", help="no progress on stderr")
    imp.set_defaults(func=runner(cmd_import))

    exp = sub.add_parser("export", parents=[options], epilog=EXIT_CODES,
                         help="write every current revocation as NDJSON (admin)")
    exp.add_argument("--kind", choices=("jti", "sub", "sid", "kid", "client"))
    exp.add_argument("--output", "-o", help="file to write (default: stdout)")
    exp.add_argument("--quiet", action="store_true", help="no progress on stderr")
    exp.set_defaults(func=runner(cmd_export))


class Progress:
    """One status line on stderr, redrawn in place on a terminal. Without a terminal a
    line every few seconds, and the final line once (not again when nothing changed)."""

    def __init__(self, label: str, *, total_bytes: int | None, enabled: bool,
                 stream: TextIO | None = None) -> None:
        self.label = label
        self.total_bytes = total_bytes
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = self.last = time.monotonic()
        self.shown = ""  # the last status written, without its elapsed time

    def update(self, text: str, *, done_bytes: int | None = None, final: bool = False) -> None:
        now = time.monotonic()
        every = 0.1 if self.tty else LOG_PROGRESS_EVERY_S
        if not self.enabled or (not final and now - self.last < every):
            return
        percent = ""
        if self.total_bytes and done_bytes is not None:
            percent = f"{min(100, 100 * done_bytes // self.total_bytes):3d}% "
        status = f"{self.label}: {percent}{text}"
        if final and not self.tty and status == self.shown:
            return  # already written as the last periodic line
        self.last, self.shown = now, status
        line = f"{status} ({now - self.started:.1f}s)"
        end = "\n" if final or not self.tty else ""
        self.stream.write(("\r\x1b[2K" if self.tty else "") + line + end)
        self.stream.flush()


@dataclass
class Line:
    number: int
    raw: bytes
    body: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class Tally:
    lines: int = 0
    new: int = 0  # 201: revoked by this import
    existing: int = 0  # 200: already revoked (its expiry kept at the later)
    expired: int = 0
    failed: int = 0
    settled: int = 0  # lines settled (revoked, expired or reported)
    done_through: int = 0  # every line of the file up to here is settled
    shown: list[str] = field(default_factory=list)

    @property
    def revoked(self) -> int:
        return self.new + self.existing

    def as_dict(self) -> dict[str, int]:
        return {"lines": self.lines, "revoked": self.revoked, "new": self.new,
                "existing": self.existing, "expired": self.expired, "failed": self.failed}

    def status(self) -> str:
        return (f"{self.settled} lines, {self.new} new, {self.existing} already present, "
                f"{self.expired} already expired, {self.failed} failed")


def parse_line(number: int, raw: bytes) -> Line:
    """A revoke body, or a line of ``revoker export`` (record-only fields dropped)."""
    line = Line(number, raw)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        line.error = "not valid JSON"
        return line
    if not isinstance(body, dict):
        line.error = "not a JSON object"
        return line
    for name in RECORD_ONLY_FIELDS:
        body.pop(name, None)
    line.body = body
    return line


class Importer:
    """Ordered batches, ``concurrency`` in flight, failures to the report as they come."""

    def __init__(self, client: RevokerClient, *, source_name: str, report_path: str,
                 progress: Progress, concurrency: int) -> None:
        self.client = client
        self.source_name = source_name
        self.report_path = report_path
        self.report: BinaryIO | None = None
        self.errors: TextIO | None = None
        self.progress = progress
        self.concurrency = concurrency
        self.tally = Tally()

    async def run(self, source: BinaryIO, *, batch_size: int, skip: int) -> None:
        pending: deque[tuple[list[Line], asyncio.Task[list[str | None]], int]] = deque()
        try:
            for batch, offset in _batches(source, batch_size=batch_size, skip=skip,
                                          tally=self.tally):
                bodies = [ln.body for ln in batch if ln.body is not None]  # {} too: it fails
                task = asyncio.ensure_future(self._send(bodies))
                pending.append((batch, task, offset))
                if len(pending) >= self.concurrency:
                    await self._settle(*pending.popleft())
            while pending:
                await self._settle(*pending.popleft())
        finally:
            for _, task, _ in pending:
                task.cancel()
            self.close()

    async def _send(self, bodies: list[dict[str, Any]]) -> list[str | None]:
        """Per-item error text (None = revoked or already expired); retries 503s."""
        if not bodies:
            return []
        for delay in (*RETRY_DELAYS_S, None):
            try:
                items = await self.client.revoke_batch(bodies)
                return [self._count(item) for item in items]
            except AuthError:
                raise
            except ClientError as exc:
                if delay is None or not _retryable(exc):
                    raise
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _count(self, item: BatchItem) -> str | None:
        if item.error is not None:
            return item.error
        if item.revocation is None or not item.revocation.stored:
            self.tally.expired += 1
        elif item.revocation.created:
            self.tally.new += 1
        else:
            self.tally.existing += 1
        return None

    async def _settle(self, batch: list[Line], task: asyncio.Task[list[str | None]],
                      offset: int) -> None:
        errors = iter(await task)
        for line in batch:
            error = line.error if line.body is None else next(errors)
            if error is not None:
                self._fail(line, error)
        self.tally.done_through = batch[-1].number
        self.tally.settled += len(batch)
        self.progress.update(self.tally.status(), done_bytes=offset)

    def _fail(self, line: Line, error: str) -> None:
        self.tally.failed += 1
        if self.report is None:
            self.report = open(self.report_path, "wb")  # noqa: SIM115 - closed in close()
            self.errors = open(self.report_path + ".errors", "w", encoding="utf-8")  # noqa: SIM115
        self.report.write(line.raw.rstrip(b"\r\n") + b"\n")
        assert self.errors is not None
        # Numbered by the report, so that line k here explains line k there.
        self.errors.write(f"report line {self.tally.failed} (line {line.number} of "
                          f"{self.source_name}): {error}\n")
        if len(self.tally.shown) < SHOWN_FAILURES:
            self.tally.shown.append(f"line {line.number}: {error}")

    def close(self) -> None:
        for handle in (self.report, self.errors):
            if handle is not None:
                handle.close()


def _retryable(exc: ClientError) -> bool:
    if isinstance(exc, ApiError):
        return exc.status in (429, 502, 503, 504)
    return True  # unreachable: the service may be restarting


def _batches(source: BinaryIO, *, batch_size: int, skip: int, tally: Tally
             ) -> Iterator[tuple[list[Line], int]]:
    """(lines, bytes read so far); blank lines are skipped but still counted."""
    batch: list[Line] = []
    offset = 0
    for number, raw in enumerate(source, start=1):
        offset += len(raw)
        if number <= skip:
            continue
        if not raw.strip():
            continue
        tally.lines += 1
        batch.append(parse_line(number, raw))
        if len(batch) >= batch_size:
            yield batch, offset
            batch = []
    if batch:
        yield batch, offset


async def cmd_import(args: argparse.Namespace, client: RevokerClient) -> int:
    if not 1 <= args.batch_size <= 10000 or not 1 <= args.concurrency <= 16:
        raise UsageError("--batch-size must be 1-10000 and --concurrency 1-16")
    source, total = _open_source(args.file)
    report = args.report or ("revoker-import.failed" if args.file == "-" else
                             args.file + ".failed")
    progress = Progress("import", total_bytes=total, enabled=not args.quiet)
    importer = Importer(client, source_name="stdin" if args.file == "-" else args.file,
                        report_path=report, progress=progress,
                        concurrency=args.concurrency)
    try:
        await importer.run(source, batch_size=args.batch_size, skip=args.skip_lines)
    except ClientError as exc:
        resume = importer.tally.done_through or args.skip_lines
        fail(f"import stopped after line {resume}; fix the cause, then resume with: "
             f"--skip-lines {resume}")
        raise exc from None
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    t = importer.tally
    progress.update(t.status(), done_bytes=total, final=True)
    _show_failures(t, report)
    summary = {**t.as_dict(), "report": report if t.failed else None}
    human = (f"{t.lines} lines: {t.new} new revocations, {t.existing} already present, "
             f"{t.expired} already expired, {t.failed} failed")
    if t.failed:
        human += (f"; the failed lines are in {report} (reasons in {report}.errors); "
                  f"run `revoker import {report}` after fixing them")
    emit(args, summary, human)
    return EXIT_FAILURE if t.failed else EXIT_OK


def _show_failures(tally: Tally, report: str) -> None:
    """The first few reasons on stderr (numbered by the input file), and how many more."""
    for shown in tally.shown:
        fail(shown)
    more = tally.failed - len(tally.shown)
    if more:
        fail(f"... and {more} more failed line{'s' if more > 1 else ''}; every reason is "
             f"in {report}.errors")


def _open_source(path: str) -> tuple[BinaryIO, int | None]:
    if path == "-":
        return sys.stdin.buffer, None
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    return handle, os.fstat(handle.fileno()).st_size


async def cmd_export(args: argparse.Namespace, client: RevokerClient) -> int:
    """One record per line, exactly as the API returns it."""
    out = output_stream(args.output)
    progress = Progress("export", total_bytes=None, enabled=not args.quiet and
                        bool(args.output or not sys.stdout.isatty()))
    count = 0
    try:
        async for record in client.iter_revocations(kind=args.kind):
            out.write(record.to_json() + "\n")
            count += 1
            progress.update(f"{count} records")
    finally:
        if out is not sys.stdout:
            out.close()
        else:
            out.flush()
    progress.update(f"{count} records", final=True)
    return EXIT_OK
