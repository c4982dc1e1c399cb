"""The README's tour runs as written and answers what it says it answers.

The shell block under "A short tour with curl" is taken from the README itself, so the
README cannot drift from the product: every ``# =>`` line states the output of the command
before it (``...`` stands for anything), and the block runs in bash against the real CLI
on a free port.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.redis_proc import free_port

README = Path(__file__).resolve().parents[2] / "README.md"
MARK = "@@tour-command "

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")]


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)


def tour_block() -> str:
    text = README.read_text()
    section = text.split("## A short tour with curl", 1)[1]
    return section.split("```sh\n", 1)[1].split("\n```", 1)[0]


def steps(block: str) -> list[Step]:
    """Commands (continuation lines joined) and the ``# =>`` lines that follow each."""
    out: list[Step] = []
    pending = ""
    for line in block.splitlines():
        if line.startswith("# =>"):
            assert out, "an expectation before any command"
            out[-1].expected.append(line[len("# =>"):].strip())
            continue
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            out.append(Step(pending))
            pending = ""
    return out


def pattern(expected: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in expected.split("...")), re.DOTALL)


def test_the_tour_has_commands_and_expectations() -> None:
    found = steps(tour_block())
    assert len(found) >= 15
    assert sum(1 for step in found if step.expected) >= 10


def test_the_tour_runs_as_written(tmp_path: Path) -> None:
    port = free_port()
    bin_dir = Path(sys.executable).parent
    found = steps(tour_block())
    script = ["set -u"]
    for index, step in enumerate(found):
        command = step.command.replace("localhost:8080", f"localhost:{port}")
        command = command.replace(".venv/bin/revoker", str(bin_dir / "revoker"))
        script += [f"echo '{MARK}{index}'", command]
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path),
           "REVOKER_PORT": str(port), "REVOKER_ACCESS_LOG": "false"}
    proc = subprocess.Popen(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        with contextlib.suppress(ProcessLookupError):  # the tour's `kill $DEV` should have
            os.killpg(proc.pid, signal.SIGTERM)
    assert proc.returncode == 0, output
    outputs: dict[int, str] = {}
    for chunk in output.split(MARK)[1:]:
        number, _, rest = chunk.partition("\n")
        outputs[int(number)] = rest.strip()
    for index, step in enumerate(found):
        if not step.expected:
            continue
        got = outputs.get(index, "")
        want = "\n".join(step.expected)
        assert pattern(want).fullmatch(got), f"{step.command}\nexpected: {want}\ngot: {got}"
    assert "NOT FOR PRODUCTION" in (tmp_path / "revoker-dev.txt").read_text()
