"""The /proc parsing behind bench/scale.py's memory and readiness figures, on samples of
what the kernel writes (so a misread field cannot silently skew a per-entry figure)."""

from __future__ import annotations

import os

from bench import procfs

SMAPS_ROLLUP = """\
55886281d000-7ffc22f9c000 ---p 00000000 00:00 0                          [rollup]
Rss:              712340 kB
Pss:              655021 kB
Pss_Dirty:        640000 kB
Pss_Anon:         639812 kB
Pss_File:          15209 kB
Shared_Clean:      60000 kB
Private_Dirty:    640000 kB
Swap:                  0 kB
"""

TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:A8C1 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 4401 1
   1: 0100007F:A8C1 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 4402 1
   2: 0100007F:A8C1 0100007F:D3B0 01 00000000:00000000 00:00000000 00000000 0 0 4999 1
   3: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 5001 1
"""


def test_smaps_rollup_fields_in_bytes() -> None:
    fields = procfs.parse_kib_fields(SMAPS_ROLLUP)
    assert fields["Pss"] == 655021 * 1024
    assert fields["Rss"] == 712340 * 1024
    assert fields["Swap"] == 0
    assert not any("rollup" in name or "-" in name for name in fields)


def test_kib_parser_skips_lines_without_a_kib_figure() -> None:
    fields = procfs.parse_kib_fields("Name:\trevoker\nVmFlags: rd wr mr\nThreads:\t3\n"
                                     "VmRSS:\t  2048 kB\n")
    assert fields == {"VmRSS": 2048 * 1024}


def test_roles_of_a_serve_tree() -> None:
    assert procfs.role(["/venv/bin/python", "-m", "revoker", "serve"]) == "supervisor"
    assert procfs.role(["/venv/bin/python", "-c",
                        "from multiprocessing.spawn import spawn_main; "
                        "spawn_main(tracker_fd=5, pipe_handle=7)", "--multiprocessing-fork"]
                       ) == "worker"
    assert procfs.role(["/venv/bin/python", "-c",
                        "from multiprocessing.resource_tracker import main;main(4)"]
                       ) == "resource_tracker"
    assert procfs.role(["redis-server", "127.0.0.1:6400"]) == "other"
    spawned = ["/venv/bin/python", "-B", "-c",
               "from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=4)"]
    assert procfs.role(spawned, "revoker-keeper\n") == "keeper"
    assert procfs.role(spawned, "revoker-worker\n") == "worker"
    assert procfs.role(spawned, "python\n") == "worker"


def test_listening_inodes_only_listeners_on_the_port() -> None:
    # 0xA8C1 = 43201: two workers' SO_REUSEPORT listeners; the established connection and
    # the listener on another port (0x1F90 = 8080) are not counted
    assert procfs.listening_inodes(TCP, 43201) == {4401, 4402}
    assert procfs.listening_inodes(TCP, 8080) == {5001}
    assert procfs.listening_inodes(TCP, 9999) == set()


def test_socket_inode_of_fd_links() -> None:
    assert procfs.socket_inode("socket:[4401]") == 4401
    assert procfs.socket_inode("pipe:[4401]") is None
    assert procfs.socket_inode("/dev/null") is None


def test_memory_of_this_process_reads_the_real_rollup() -> None:
    mine = procfs.memory(os.getpid())
    assert mine is not None
    assert 0 < mine.pss <= mine.rss
