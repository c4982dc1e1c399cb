"""The main nginx configuration the gateway tests wrap around a shipped ``deploy/`` file:
one worker, every temporary path under the test's own directory, no access log."""

from __future__ import annotations

from typing import Final

MAIN_CONF: Final = """
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 128; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/revoker.conf;
}}
"""
