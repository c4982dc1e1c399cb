"""The main nginx configuration wrapped around a site file (a shipped ``deploy/`` file in
the gateway tests, the benchmark's own sites): every temporary path under the caller's
directory, no access log."""

from __future__ import annotations

from pathlib import Path
from typing import Final

MAIN_CONF: Final = """
worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/{include};
}}
"""


def main_conf(tmp: Path, *, include: str = "revoker.conf", workers: str = "1",
              connections: int = 128) -> str:
    """``nginx.conf`` for a prefix directory ``tmp`` that holds the site file ``include``.
    The tests use one small worker; the benchmark as many as there are cores."""
    return MAIN_CONF.format(tmp=tmp, include=include, workers=workers,
                            connections=connections)
