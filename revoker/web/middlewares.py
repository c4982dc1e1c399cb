"""The request pipeline: request ids, metrics and access log around errors -> problem+json.

Handlers raise domain errors (``InvalidInput``, ``StoreUnavailable``...) and never build
error responses themselves, so every error has the same shape. ``pipeline`` is the one
implementation; the application runs it as its only middleware (each aiohttp middleware
layer costs a few microseconds on every check) and the fast lane runs it around the
handlers it reaches without the router.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import time
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import istr

from revoker import metrics
from revoker.config import ACCESS_LOG_ALL, ACCESS_LOG_OFF
from revoker.errors import (
    Forbidden,
    InvalidInput,
    NotDurable,
    NotFound,
    StoreError,
    TokenError,
    TooLarge,
    Unauthenticated,
)
from revoker.logs import REQUEST_ID
from revoker.web.jsonio import UnsupportedMediaType
from revoker.web.problem import NOT_DURABLE, UNAVAILABLE, problem, unavailable
from revoker.web.spec import query_rule_for
from revoker.web.state import SETTINGS

log = logging.getLogger("revoker.access")
errlog = logging.getLogger(__name__)
_REQUEST_ID_RE: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: Folded once (``istr``): a plain ``str`` name is folded again on every lookup.
REQUEST_ID_HEADER: Final = istr("X-Request-Id")
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _RequestIds:
    """Unique ids without a syscall per request: a random per-process prefix and a counter
    (32 hex characters, like a uuid4 hex); a forked child draws a new prefix."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = secrets.token_hex(8)
        self.counter = itertools.count(1)

    def new(self) -> str:
        return f"{self.prefix}{next(self.counter):016x}"


_ids: Final = _RequestIds()
#: Metric children by label values: ``labels()`` costs more than the increment itself.
_request_counters: dict[tuple[str, str, int], Any] = {}
_request_timers: dict[str, Any] = {}


def _observe(route: str, method: str, status: int, elapsed: float) -> None:
    counter = _request_counters.get((route, method, status))
    if counter is None:
        counter = metrics.HTTP_REQUESTS.labels(route=route, method=method, status=status)
        if len(_request_counters) < 10_000:  # bounded: methods come from clients
            counter = _request_counters[(route, method, status)] = metrics.fast_counter(counter)
    timer = _request_timers.get(route)
    if timer is None:
        timer = _request_timers[route] = metrics.HTTP_DURATION.labels(route=route)
    counter.inc()
    timer.observe(elapsed)


def _method_label(method: str) -> str:
    """Clients choose the method (``/v1/authz`` takes any): an unusual one is counted as
    ``other`` so that it cannot create new metric series."""
    return method if method in _METHODS else "other"


#: Route label by resource object: resources live as long as the app's router.
_route_labels: dict[int, tuple[object, str]] = {}


def _route_label(request: web.Request) -> str:
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None or getattr(info, "http_exception", None) is not None:
        return "unmatched"
    cached = _route_labels.get(id(resource))
    if cached is not None and cached[0] is resource:
        return cached[1]
    label = str(resource.canonical)
    if len(_route_labels) < 10_000:  # bounded: tests build many apps in one process
        _route_labels[id(resource)] = (resource, label)
    return label


def request_id_of(request: web.BaseRequest) -> str:
    """The caller's ``X-Request-Id`` when it is sane, else a new one."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    return incoming if incoming and _REQUEST_ID_RE.match(incoming) else _ids.new()


#: The route labels of what a gateway asks on every request it lets through (a check by
#: jti or by claims, forward-auth): ``REVOKER_ACCESS_LOG=skip-hot-2xx`` (the default) logs
#: their 2xx answers no more, as a line costs about as much CPU as the answer. Their refusals
#: and errors, and every other route, are still logged; metrics count them all.
HOT_ROUTES: Final = frozenset({"/v1/check/{jti}", "/v1/check", "/v1/authz", "/v1/authz/{tail}"})


def access_logged(setting: str, route: str, status: int) -> bool:
    """Whether ``REVOKER_ACCESS_LOG`` (``setting``) wants a line for this answer."""
    if setting == ACCESS_LOG_ALL:
        return True
    if setting == ACCESS_LOG_OFF:
        return False
    return not (200 <= status < 300 and route in HOT_ROUTES)  # skip-hot-2xx


def account(request: web.BaseRequest, route: str, status: int, started: float, *,
            access_log: str) -> None:
    """Metrics and the access log line of one answered request."""
    elapsed = time.perf_counter() - started
    _observe(route, _method_label(request.method), status, elapsed)
    if access_logged(access_log, route, status):
        log.info("%s %s %d %.1fms", request.method, route, status, elapsed * 1000,
                 extra={"method": request.method, "route": route, "status": status,
                        "duration_ms": round(elapsed * 1000, 3), "remote": request.remote})


async def pipeline(request: web.Request, handler: Handler, route: str, *,
                   access_log: str) -> web.StreamResponse:
    """Everything around a handler: the request id (taken from ``X-Request-Id`` when sane),
    the route's query rule (``revoker.web.spec``: unknown or repeated parameters are a
    400 before the handler runs), errors -> problem+json, metrics and the access log under
    the route's label.

    The one implementation for both ways a request reaches a handler: through the router
    (``request_context``) and through the fast lane (``revoker.web.fastlane``), so that the
    two cannot drift apart.
    """
    request_id = request_id_of(request)
    token = REQUEST_ID.set(request_id)
    started = time.perf_counter()
    status = 500
    try:
        try:  # errors -> problem+json here, not in a nested coroutine: one frame less
            if request.query_string:  # most requests have none: no lookup for them
                _check_query(request, route)
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = _http_problem(exc)
        except Exception as exc:
            response = error_response(request, exc, route=route)
        status = response.status
        if not response.prepared:  # a stream has sent its headers already
            response.headers[REQUEST_ID_HEADER] = request_id
        return response
    except web.HTTPException as exc:  # below 400, re-raised above
        status = exc.status
        exc.headers[REQUEST_ID_HEADER] = request_id
        raise
    finally:
        account(request, route, status, started, access_log=access_log)
        REQUEST_ID.reset(token)


def _check_query(request: web.BaseRequest, route: str) -> None:
    """By the route's label, the one thing both ways into ``pipeline`` know of the route
    (the fast lane has no match info). Raises ``InvalidInput``."""
    rule = query_rule_for(route, request.method)
    if rule is not None:
        rule.check(request.query)


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``pipeline`` around every routed request, under the route template's label."""
    return await pipeline(request, handler, _route_label(request),
                          access_log=request.app[SETTINGS].access_log)


#: Revoker's own middlewares, in order: all the application has, and all the fast lane
#: does (through ``pipeline``); the lane refuses an application with any other.
MIDDLEWARES: Final = (request_context,)


def _http_problem(exc: web.HTTPException) -> web.Response:
    return problem(exc.status, _http_detail(exc), headers=_keep_headers(exc))


def error_response(request: web.BaseRequest, exc: Exception, *, route: str) -> web.Response:
    """The problem+json answer for a domain error; anything else is logged and is a 500.
    Order matters: ``UnsupportedMediaType`` is an ``InvalidInput``."""
    if isinstance(exc, UnsupportedMediaType):
        return problem(415, str(exc))
    if isinstance(exc, TooLarge):
        return problem(413, str(exc))
    if isinstance(exc, InvalidInput):
        return problem(400, str(exc))
    if isinstance(exc, TokenError):
        return problem(400, exc.reason)
    if isinstance(exc, NotFound):
        return problem(404, str(exc) or "no such record")
    if isinstance(exc, Unauthenticated):
        return problem(401, str(exc), headers={"WWW-Authenticate": 'Bearer realm="revoker"'})
    if isinstance(exc, Forbidden):
        challenge = f'Bearer realm="revoker", error="insufficient_scope", scope="{exc.scope}"'
        return problem(403, str(exc), headers={"WWW-Authenticate": challenge})
    if isinstance(exc, StoreError):
        return _store_failure(request, exc, route)
    errlog.error("unhandled error on %s %s", request.method, route, exc_info=exc)
    return problem(500, "internal error; the request id identifies it in the logs")


def _store_failure(request: web.BaseRequest, exc: StoreError, route: str) -> web.Response:
    """A 503 whose detail is generic: gateways (Caddy, Traefik) pass revoker's answer to the
    end user, who must not learn which store runs behind it or how it failed. The cause goes
    to the log, under the request id (store errors name no token: the store never sees one),
    and to ``revoker_store_errors_total``, counted by the store where it failed."""
    errlog.warning("answering 503 on %s %s: %s: %s", request.method, route,
                   type(exc).__name__, exc or "no detail")
    return unavailable(NOT_DURABLE if isinstance(exc, NotDurable) else UNAVAILABLE)


def _http_detail(exc: web.HTTPException) -> str:
    if exc.status == 413:
        return "the request body is too large"
    if exc.status == 405:
        return "method not allowed on this resource"
    if exc.status == 404:
        return "no such resource"
    return exc.text or exc.reason


def _keep_headers(exc: web.HTTPException) -> dict[str, str]:
    return {k: v for k, v in exc.headers.items() if k in ("Allow", "WWW-Authenticate",
                                                           "Retry-After")}
