"""What the kernel says about a process tree: proportional memory, roles, listening sockets.

Memory is read as PSS (``/proc/PID/smaps_rollup``): a page shared by N processes counts
1/N in each, so summing PSS over a process tree counts shared memory once. That is the
honest figure whatever a server's design: one private copy of a table per worker, or one
copy in shared memory mapped by every worker, both sum to what the host really holds.

Pure parsing is kept apart from the reading, so the parsing can be unit-tested on samples.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from revoker.server import KEEPER_NAME, WORKER_NAME

PROC = Path("/proc")
#: ``/proc/net/tcp`` state of a listening socket.
TCP_LISTEN = "0A"


def parse_kib_fields(text: str) -> dict[str, int]:
    """The ``Name:  123 kB`` lines of ``smaps_rollup`` (or ``status``), in bytes; lines
    without a kB figure (the address range header, ``VmFlags``...) are skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        parts = rest.split()
        if not sep or len(parts) != 2 or parts[1] != "kB" or not parts[0].isdigit():
            continue
        out[name.strip()] = int(parts[0]) * 1024
    return out


def role(cmdline: list[str], comm: str = "") -> str:
    """What a process of a ``revoker serve`` tree is, from its name and command line:
    the mirror's keeper (named ``revoker-keeper``) or a worker (``revoker-worker``; a
    version that did not name its workers is told by its multiprocessing spawn command
    line), the supervisor, multiprocessing's resource tracker, or something else."""
    if comm.strip() == KEEPER_NAME:
        return "keeper"
    if comm.strip() == WORKER_NAME:
        return "worker"
    text = " ".join(cmdline)
    if "multiprocessing.resource_tracker" in text:
        return "resource_tracker"
    if "multiprocessing.spawn" in text or "spawn_main" in text:
        return "worker"
    if "revoker" in text and "serve" in cmdline:
        return "supervisor"
    return "other"


def listening_inodes(tcp_table: str, port: int) -> set[int]:
    """Socket inodes in LISTEN state on ``port``, from the text of ``/proc/net/tcp``
    (or ``tcp6``): columns ``sl local_address rem_address st ... inode``."""
    found: set[int] = set()
    for line in tcp_table.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 10 or cols[3] != TCP_LISTEN:
            continue
        _, _, hex_port = cols[1].rpartition(":")
        if int(hex_port, 16) == port:
            found.add(int(cols[9]))
    return found


def socket_inode(link: str) -> int | None:
    """The inode of a ``socket:[12345]`` fd link; None for any other file."""
    if link.startswith("socket:[") and link.endswith("]"):
        return int(link[8:-1])
    return None


# -- reading /proc ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ProcMemory:
    pid: int
    role: str
    pss: int
    rss: int


def cmdline(pid: int) -> list[str]:
    raw = (PROC / str(pid) / "cmdline").read_bytes()
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def comm(pid: int) -> str:
    return (PROC / str(pid) / "comm").read_text()


def process_role(pid: int) -> str:
    return role(cmdline(pid), comm(pid))


def memory(pid: int) -> ProcMemory | None:
    """PSS and RSS of one process; None when it is gone."""
    try:
        fields = parse_kib_fields((PROC / str(pid) / "smaps_rollup").read_text())
        return ProcMemory(pid, process_role(pid), fields.get("Pss", 0), fields.get("Rss", 0))
    except (OSError, ValueError):
        return None


def memories(pids: list[int]) -> list[ProcMemory]:
    return [m for m in (memory(pid) for pid in pids) if m is not None]


def listening(pid: int, port: int) -> bool:
    """Whether ``pid`` holds a socket listening on ``port`` (IPv4 or IPv6)."""
    inodes: set[int] = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            inodes |= listening_inodes((PROC / "net" / table).read_text(), port)
    if not inodes:
        return False
    with contextlib.suppress(OSError):
        for fd in (PROC / str(pid) / "fd").iterdir():
            with contextlib.suppress(OSError):
                if socket_inode(str(fd.readlink())) in inodes:
                    return True
    return False


def mem_available() -> int:
    """The kernel's estimate of memory available for new work, in bytes."""
    return parse_kib_fields((PROC / "meminfo").read_text()).get("MemAvailable", 0)
