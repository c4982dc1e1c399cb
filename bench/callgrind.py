"""Counting instructions under valgrind's callgrind: what ``bench/lane_cost.py`` and
``bench/request_cost.py`` share. A count repeats where a timing on a shared machine moves by
10-20 %, so small changes to the hot path can be judged by it."""

from __future__ import annotations

import argparse
import shutil
import subprocess

TOOLS = ("valgrind", "callgrind_control", "redis-server")


def require_tools(parser: argparse.ArgumentParser) -> None:
    """Stop with a clear message when a tool the counting needs is missing."""
    for tool in TOOLS:
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (Debian: apt-get install -y valgrind "
                         "redis-server)")


def control(pid: int | str, *args: str) -> None:
    """``callgrind_control`` on a process counted with ``--instr-atstart=no``: ``-i on``,
    ``-i off``, ``-z`` (zero), ``-d`` (dump the counts so far as a new part)."""
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)
