"""Liveness, readiness and the Prometheus scrape: no credentials needed."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from revoker.metrics import flush as flush_tallies
from revoker.web.jsonio import respond
from revoker.web.problem import RETRY_AFTER_S, problem
from revoker.web.state import READINESS, SERVICE

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return respond({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready when the store answers and every piece of local state is in sync."""
    health = await request.app[SERVICE].health()
    checks: dict[str, Any] = {"store": health.detail, **health.local}
    ok = health.ok and health.local_ok
    for probe in request.app[READINESS]:
        probe_ok, name, detail = await probe()
        checks[name] = detail
        ok = ok and probe_ok
    if not ok:
        failing = ", ".join(name for name in checks if name == "store" and not health.ok) or \
            "local state"
        return problem(503, f"not ready: {failing}", headers={"Retry-After": RETRY_AFTER_S},
                       checks=checks, warnings=health.warnings)
    return respond({"status": "ready", "checks": checks, "warnings": health.warnings})


#: The classic text format every Prometheus (2.x and 3.x) and agent parses; newer
#: prometheus-client releases default to announcing version 1.0.0 for the same bytes.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """This process's metrics or, with several workers, every worker's merged: the
    server sets ``METRICS_REGISTRY`` to a multiprocess collector. Costs no store call."""
    registry = request.app.get(METRICS_REGISTRY) or REGISTRY
    flush_tallies()  # this worker's hot-path counts (revoker.metrics.flush)
    body = generate_latest(registry)
    return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})


#: Set by the server in multi-process mode to a registry that merges every worker.
METRICS_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
