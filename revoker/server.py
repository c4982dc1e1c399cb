"""Running the web application: one process, or a supervisor of N workers on one port.

With ``REVOKER_WORKERS=1`` the service is one plain process. With more, this process
becomes a small supervisor: it makes a fresh Prometheus multiprocess directory, starts N
*spawned* worker processes that each bind the same port with ``SO_REUSEPORT`` (the
kernel spreads connections among them), restarts a worker that dies, forwards SIGTERM,
and removes the directory at exit. Workers are spawned, not forked, so that each imports
prometheus_client only after ``PROMETHEUS_MULTIPROC_DIR`` is set, whatever the parent
imported before.

Shutdown, in every worker: on SIGTERM/SIGINT stop listening, let in-flight requests finish
within ``REVOKER_SHUTDOWN_TIMEOUT``, then close the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import glob
import logging
import multiprocessing
import os
import shutil
import signal
import ssl
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import TYPE_CHECKING, Final

from aiohttp import web

from revoker import logs
from revoker.cli.common import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from revoker.config import Settings
from revoker.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
#: A worker that dies sooner than this after its start counts as a crash loop.
STARTUP_GRACE_S: Final = 5.0
MAX_FAST_CRASHES: Final = 5
#: How often a worker checks that its supervisor is still alive.
SUPERVISOR_POLL_S: Final = 0.5
#: Extra time the supervisor allows workers beyond REVOKER_SHUTDOWN_TIMEOUT.
STOP_MARGIN_S: Final = 5.0
#: More time a stopping keeper gets when it saves a checkpoint on its way out.
CHECKPOINT_MARGIN_S: Final = 60.0
#: aiohttp's own line limits (its default, 8190 bytes, is under a 16 KiB bearer token, the
#: contract's limit). They sit above revoker.web.transport's, so that the guard, not
#: aiohttp's parser, refuses an over-long line.
MAX_HEADER_BYTES: Final = 20 * 1024


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """HTTPS when a certificate is configured; client certificates when a CA is."""
    if not settings.tls_cert or not settings.tls_key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError("REVOKER_TLS_KEY", f"cannot load the certificate/key: {exc}") from exc
    if settings.tls_client_ca:
        try:
            context.load_verify_locations(settings.tls_client_ca)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError("REVOKER_TLS_CLIENT_CA", f"cannot load: {exc}") from exc
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def run(settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT; returns the process exit code."""
    if settings.workers == 1:
        ssl_context(settings)  # a bad certificate is a configuration error, before binding
        try:
            serve_process(settings, index=0, multiprocess=False)
        except StoreError as exc:
            log.error("cannot start: the store is unreachable: %s", exc)
            return EXIT_FAILURE
        return EXIT_OK
    return Supervisor(settings).run()


# -- one serving process -------------------------------------------------------------------

def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed: the same code, a faster event loop."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def serve_process(settings: Settings, *, index: int, multiprocess: bool) -> None:
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_serve(settings, index=index, multiprocess=multiprocess))


async def _serve(settings: Settings, *, index: int, multiprocess: bool) -> None:
    # Imported here: in a worker, only now may prometheus_client be imported.
    from revoker import active
    from revoker.web import fastlane, ssf_poll, ssf_stream, transport
    from revoker.web.app import create_app
    from revoker.web.health import METRICS_REGISTRY

    app = create_app(settings)
    if multiprocess:
        app[METRICS_REGISTRY] = _multiprocess_registry()
    if index == 0:
        active.install(app)  # one sampler for the whole service
        ssf_poll.install(app)  # one Shared Signals poller (when configured)
        ssf_stream.install(app)  # one Shared Signals stream manager (when configured)
    runner = fastlane.LaneRunner(app, handle_signals=False,
                                 access_log=logging.getLogger(transport.__name__),
                                 access_log_class=transport.AnswerTracker,
                                 shutdown_timeout=settings.shutdown_timeout_s,
                                 keepalive_timeout=settings.keepalive_timeout_s,
                                 max_line_size=MAX_HEADER_BYTES, max_field_size=MAX_HEADER_BYTES)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runner.setup()
    watchdog = asyncio.create_task(_watch_supervisor(os.getppid(), stop)) if multiprocess \
        else None
    listener: asyncio.Server | None = None
    try:
        if stop.is_set():  # told to stop while the store was opening
            return
        settle_heap()  # before the first connection: the collection it starts with is long
        listener = await _listen(runner, settings, reuse_port=multiprocess)
        scheme = "https" if settings.tls_cert else "http"
        log.info("listening on %s://%s:%d (worker %d, pid %d)", scheme, settings.host,
                 settings.port, index, os.getpid())
        await stop.wait()
        log.info("stopping: no new connections; in-flight requests have %.1fs",
                 settings.shutdown_timeout_s)
    finally:
        if watchdog is not None:
            watchdog.cancel()
        if listener is not None:
            listener.close()  # no new connections
        await runner.cleanup()  # drains requests, closes connections, then the store
    log.info("stopped (worker %d)", index)


def settle_heap() -> None:
    """Collect once, then put every object alive after start-up (modules, routes, the app,
    the store's clients: most of a worker's 55,000-71,000 tracked objects) out of the cycle
    collector's reach with ``gc.freeze()``. They live as long as the process, yet each full
    collection walked them all again: a 25-45 ms pause in a worker under load, every few
    seconds in a worker whose background work promotes objects (as worker 0's gauge walk
    did while it read full records)."""
    gc.collect()
    gc.freeze()


async def _listen(runner: web.AppRunner, settings: Settings, *,
                  reuse_port: bool) -> asyncio.Server:
    """Listen with every connection behind a ``transport.Guard``: aiohttp's handler (made
    by the runner's server, so that ``runner.cleanup()`` still drains it) sees only request
    heads that passed the guard, and stalled clients are disconnected."""
    from revoker.web import transport

    server = runner.server
    assert server is not None  # set by runner.setup()
    limits = transport.Limits.of(settings)
    loop = asyncio.get_running_loop()
    context = ssl_context(settings)
    # A TLS handshake that stalls is a stalled header too (the guard starts after it).
    handshake_s = settings.header_timeout_s if context is not None else None
    try:
        return await loop.create_server(lambda: transport.Guard(server(), limits),
                                        settings.host, settings.port, ssl=context,
                                        ssl_handshake_timeout=handshake_s, backlog=1024,
                                        reuse_port=reuse_port or None)
    except OSError as exc:
        raise ConfigError("REVOKER_PORT", f"cannot listen on {settings.host}:{settings.port}: "
                          f"{exc.strerror or exc}") from exc


async def _watch_supervisor(parent: int, stop: asyncio.Event) -> None:
    """A worker whose supervisor died (SIGKILL, the OOM killer) stops too: nobody would
    ever stop or replace it, and a restarted service would share the port with it."""
    while os.getppid() == parent:  # noqa: ASYNC110 - no event tells us; poll the pid
        await asyncio.sleep(SUPERVISOR_POLL_S)
    log.error("the supervisor (pid %d) is gone; stopping", parent)
    stop.set()


def _multiprocess_registry() -> CollectorRegistry:
    """A registry that merges every worker's files at scrape time: prometheus_client's for
    counters and gauges, revoker's histogram snapshots (``revoker.metrics``) for the
    latency histograms, which every worker then publishes in the same directory."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    from revoker import metrics

    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(metrics.share_histograms(os.environ[MULTIPROC_ENV]))
    return registry


#: What a serve's processes show in ``ps``, ``top`` and ``/proc/<pid>/comm`` (at most 15
#: bytes): spawned by multiprocessing, both would otherwise read ``python``, like the
#: multiprocessing resource tracker beside them.
KEEPER_NAME: Final = "revoker-keeper"
WORKER_NAME: Final = "revoker-worker"


def name_this_process(name: str) -> None:
    """Name this process as the kernel shows it (Linux; elsewhere nothing happens)."""
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as comm:
        comm.write(name)


def _keeper_main(settings: Settings) -> None:
    """Entry point of the spawned mirror keeper: keeps the host's denylist table that
    every worker reads (``revoker.store.mirror``)."""
    from revoker.store import checkpointing, open_backend
    from revoker.store.mirror import run_keeper

    name_this_process(KEEPER_NAME)
    logs.configure(fmt=settings.log_format, level=settings.log_level)
    assert settings.mirror_control is not None
    try:
        run_keeper(open_backend(settings), settings.mirror_control, checkpointing(settings))
    except ConfigError as exc:
        print(f"revoker: configuration error: {exc}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)


def _worker_main(settings: Settings, index: int) -> None:
    """Entry point of a spawned worker (a fresh interpreter: configure logging again)."""
    name_this_process(WORKER_NAME)
    logs.configure(fmt=settings.log_format, level=settings.log_level)
    try:
        serve_process(settings, index=index, multiprocess=True)
    except ConfigError as exc:
        print(f"revoker: configuration error: {exc}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    except StoreError as exc:
        log.error("worker %d cannot start: the store is unreachable: %s", index, exc)
        sys.exit(EXIT_FAILURE)


# -- the supervisor --------------------------------------------------------------------------

class Supervisor:
    """Keeps N workers running until told to stop; owns the metrics directory."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.context = multiprocessing.get_context("spawn")
        self.workers: dict[int, tuple[BaseProcess, float]] = {}
        self.stopping = False
        self.fast_crashes = 0
        #: The mirror's keeper (``REVOKER_CHECK_MODE=mirror``) and its start time.
        self.keeper: tuple[BaseProcess, float] | None = None
        self.keeper_crashes = 0

    def run(self) -> int:
        ssl_context(self.settings)  # fail here, once, rather than in N workers
        directory = tempfile.mkdtemp(prefix="revoker-metrics-")
        os.environ[MULTIPROC_ENV] = directory
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGTERM, signal.SIGINT)}
        control = self._make_control() if self.settings.check_mode == "mirror" else None
        try:
            if control is not None:
                self._start_keeper()
            for index in range(self.settings.workers):
                self._start(index)
            log.info("supervising %d workers (pid %d)", self.settings.workers, os.getpid())
            return self._supervise()
        finally:
            self._stop_all()
            if control is not None:
                _remove_segments(control)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(directory, ignore_errors=True)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _start(self, index: int) -> None:
        process = self.context.Process(target=_worker_main, args=(self.settings, index),
                                       name=f"revoker-worker-{index}")
        process.start()
        self.workers[index] = (process, time.monotonic())

    def _make_control(self) -> str:
        """The control segment of the host's mirror: made here, so that it outlives any
        keeper; workers and keeper find it through their settings."""
        from revoker.store.shared import Control, segment_directory

        path = os.path.join(segment_directory(), f"revoker-mirror-{os.getpid()}")
        _remove_segments(path)  # left by an earlier process of the same pid
        Control.create(path).close()
        self.settings = dataclasses.replace(self.settings, mirror_control=path)
        log.info("mirror control segment %s", path)
        return path

    def _start_keeper(self) -> None:
        process = self.context.Process(target=_keeper_main, args=(self.settings,),
                                       name="revoker-keeper")
        process.start()
        self.keeper = (process, time.monotonic())
        log.info("mirror keeper started (pid %s)", process.pid)

    def _reap_keeper(self) -> int | None:
        """Restart a dead keeper; workers read the store meanwhile (strict)."""
        from prometheus_client import multiprocess

        assert self.keeper is not None
        process, started = self.keeper
        if process.pid is not None:
            multiprocess.mark_process_dead(process.pid)  # type: ignore[no-untyped-call]
        if process.exitcode == EXIT_CONFIG:
            log.error("the mirror keeper stopped on a configuration error; stopping")
            return EXIT_CONFIG
        fast = time.monotonic() - started < STARTUP_GRACE_S
        self.keeper_crashes = self.keeper_crashes + 1 if fast else 0
        log.warning("mirror keeper (pid %s) died with exit code %s; restarting (workers "
                    "read the store until it is in sync again)", process.pid,
                    process.exitcode)
        if fast:
            time.sleep(min(0.25 * 2 ** min(self.keeper_crashes, 5), 5.0))
        self._start_keeper()
        return None

    def _supervise(self) -> int:
        while not self.stopping:
            sentinels = [process.sentinel for process, _ in self.workers.values()]
            if self.keeper is not None:
                sentinels.append(self.keeper[0].sentinel)
            wait(sentinels, timeout=0.2)
            if self.keeper is not None and not self.keeper[0].is_alive() and \
                    not self.stopping:
                code = self._reap_keeper()
                if code is not None:
                    return code
            for index, (process, started) in list(self.workers.items()):
                if process.is_alive() or self.stopping:
                    continue
                code = self._reap(index, process, started)
                if code is not None:
                    return code
        return EXIT_OK

    def _reap(self, index: int, process: BaseProcess, started: float) -> int | None:
        """Replace a dead worker; returns an exit code when the service must give up."""
        from prometheus_client import multiprocess

        from revoker import metrics

        if process.pid is not None:
            multiprocess.mark_process_dead(process.pid)  # type: ignore[no-untyped-call]
        code = process.exitcode
        if code == EXIT_CONFIG:
            log.error("worker %d stopped on a configuration error; stopping", index)
            return EXIT_CONFIG
        fast = time.monotonic() - started < STARTUP_GRACE_S
        self.fast_crashes = self.fast_crashes + 1 if fast else 0
        if self.fast_crashes > MAX_FAST_CRASHES:
            log.error("workers keep dying right after start (last exit code %s); stopping", code)
            return EXIT_FAILURE
        log.warning("worker %d (pid %s) died with exit code %s; restarting", index,
                    process.pid, code)
        metrics.WORKER_RESTARTS.inc()
        if fast:
            time.sleep(min(0.25 * 2 ** self.fast_crashes, 5.0))
        self._start(index)
        return None

    def _stop_all(self) -> None:
        """SIGTERM every worker, wait for their graceful shutdown, SIGKILL stragglers."""
        for process, _ in self.workers.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_timeout_s + STOP_MARGIN_S
        for process, _ in self.workers.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error("worker pid %s did not stop in time; killing it", process.pid)
                process.kill()
                process.join()
        log.info("all workers stopped")
        if self.keeper is not None:  # after the workers: they read its table to the end
            keeper = self.keeper[0]
            if keeper.is_alive() and keeper.pid is not None:
                os.kill(keeper.pid, signal.SIGTERM)
            # Its last checkpoint is written as it stops: a few seconds for millions.
            keeper.join(STOP_MARGIN_S + (CHECKPOINT_MARGIN_S if self.settings.mirror_checkpoint
                                         else 0.0))
            if keeper.is_alive():
                keeper.kill()
                keeper.join()


def _remove_segments(control: str) -> None:
    """The control segment and every table of its keepers (``<control>.<generation>``)."""
    from revoker.store.shared import unlink

    for path in [control, *glob.glob(glob.escape(control) + ".*")]:
        unlink(path)
