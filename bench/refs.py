"""Another version of revoker beside this one, for benchmarks that compare in one run."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """``ref`` in a temporary git worktree of this repository, removed afterwards. Run
    ``python -m revoker`` with the worktree as the working directory (or on PYTHONPATH) and
    that version is the one imported."""
    where = Path(tempfile.mkdtemp(prefix="revoker-ref-")) / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(where),
                    ref], check=True)
    try:
        yield where
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)],
                       check=False)
        shutil.rmtree(where.parent, ignore_errors=True)
