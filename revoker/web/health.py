"""Liveness, readiness and the Prometheus scrape: no credentials needed."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from revoker.metrics import flush as flush_tallies
from revoker.web.jsonio import respond
from revoker.web.problem import RETRY_AFTER_S, problem
from revoker.web.schemas import PUBLIC, TEXT, json_reply, problem_reply
from revoker.web.spec import Operation, Reply, declare
from revoker.web.state import READINESS, SERVICE, SETTINGS

routes = web.RouteTableDef()
_CHECKS = {"type": "object", "description": "each piece of state and its detail"}
_WARNINGS = {"type": "array", "items": {"type": "string"}}
HEALTHZ = Operation("Liveness: the process runs", "operations", PUBLIC, (json_reply(
    200, "the process runs", {"type": "object", "required": ["status"],
                              "properties": {"status": {"const": "ok"}}}),))
READYZ = Operation(
    "Readiness: the store answers and local state is in sync", "operations", PUBLIC,
    (json_reply(200, "ready", {"type": "object", "required": ["status", "checks", "warnings"],
                               "properties": {"status": {"const": "ready"},
                                              "checks": _CHECKS, "warnings": _WARNINGS}}),
     problem_reply(503, "not ready, with the failing check's detail")))


@routes.get("/healthz")
@declare(HEALTHZ)
async def healthz(request: web.Request) -> web.Response:
    return respond({"status": "ok"})


@routes.get("/readyz")
@declare(READYZ)
async def readyz(request: web.Request) -> web.Response:
    """Ready when the store answers and every piece of local state is in sync."""
    health = await request.app[SERVICE].health()
    settings = request.app[SETTINGS]
    checks: dict[str, Any] = {"store": health.detail, **health.local,
                              "service": {"fail_mode": settings.fail_mode,
                                          "check_mode": settings.check_mode}}
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
@declare(Operation("Prometheus metrics (text exposition format 0.0.4)", "operations", PUBLIC,
                   (Reply(200, "this process's (or every worker's) metrics", TEXT,
                          {"type": "string"}),)))
async def metrics(request: web.Request) -> web.Response:
    """This process's metrics or, with several workers, every worker's merged: the
    server sets ``METRICS_REGISTRY`` to a multiprocess collector. Costs no store call."""
    registry = request.app.get(METRICS_REGISTRY) or REGISTRY
    flush_tallies()  # this worker's hot-path counts (revoker.metrics.flush)
    body = generate_latest(registry)
    return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})


#: Set by the server in multi-process mode to a registry that merges every worker.
METRICS_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
