"""Starting the CLI must not import prometheus_client: a multi-worker ``revoker serve``
sets PROMETHEUS_MULTIPROC_DIR first, and a client imported earlier would count the
supervisor's metrics (worker restarts) in memory instead of in the shared files."""

from __future__ import annotations

import subprocess
import sys


def test_the_cli_starts_without_prometheus_client() -> None:
    code = ("import sys, revoker.cli.main; "
            "sys.exit('prometheus_client' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
