"""Running the web application: TLS, graceful shutdown and (later) several workers."""

from __future__ import annotations

import logging
import ssl

from aiohttp import web

from revoker.config import Settings
from revoker.web.app import create_app

log = logging.getLogger(__name__)


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """HTTPS when a certificate is configured; client certificates when a CA is."""
    if not settings.tls_cert or not settings.tls_key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    if settings.tls_client_ca:
        context.load_verify_locations(settings.tls_client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def run(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT, then stop accepting and let in-flight requests finish
    within ``REVOKER_SHUTDOWN_TIMEOUT`` before the store is closed."""
    app = create_app(settings)
    web.run_app(app, host=settings.host, port=settings.port,
                ssl_context=ssl_context(settings),
                shutdown_timeout=settings.shutdown_timeout_s,
                access_log=None, print=None, handle_signals=True)
