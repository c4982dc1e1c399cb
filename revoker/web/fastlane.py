"""The fast lane: ``/v1/check/{jti}`` and ``/v1/authz[/{tail}]`` without the router.

Gateways ask "is it revoked?" (or "is this token acceptable?") on every request they let
through, so these two shapes of request decide the service's throughput. Through the
application, each pays aiohttp's router, match-info objects and two middleware coroutines
(ours and aiohttp's own ``_fix_request_current_app``) before the handler runs: together a
large share of a check's CPU time (docs/performance.md has the figures). The lane sits in
front of the application as the server's request handler and skips that routing, nothing
else.

It cannot disagree with the router, by construction:

- what it serves comes from the router itself, at start: the resources whose routes lead
  to ``check.check_jti`` and ``authz.authz``, each with the methods it is registered for
  (``GET``/``HEAD`` for a check; every method for authz) and its own path pattern, matched
  against the same URL the router resolves (so ``CONNECT /v1/authz``, whose target is an
  authority, is not a path the lane serves, as it is not one the router routes);
- it takes only paths that need no decoding (no ``%``), where the router's view of the path
  is the raw one, and leaves requests with ``Expect`` to the application, which answers
  ``100 Continue`` before any handler runs;
- it runs the same pipeline (``middlewares.pipeline``: request id, errors, metrics, access
  log) around the same handler code (``check.answer_jti``, ``authz.answer_authz``);
- whatever the application could add that the lane would skip is refused at start
  (``LaneConflict``): a middleware other than revoker's own, an ``on_response_prepare``
  receiver, or a resource that could claim a request before the lane's resource would.

tests/security/test_lane_differential.py sends the same raw requests to a server with the
lane and one without and requires identical answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Final, cast

from aiohttp import hdrs, web
from aiohttp.web import AbstractResource

from revoker.web import authz, check
from revoker.web.middlewares import MIDDLEWARES, pipeline
from revoker.web.state import SETTINGS

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
#: What the lane runs for a handler: (the path's variables, request) -> the answer.
Answer = Callable[[Mapping[str, str], web.Request], Awaitable[web.StreamResponse]]
Matcher = Callable[[str], Mapping[str, str] | None]
_NO_VARIABLES: Final[Mapping[str, str]] = {}


class LaneConflict(RuntimeError):
    """The application has something the fast lane would skip; serving it behind the lane
    would answer some requests differently from the router."""


def lane_answers(app: web.Application) -> dict[object, Answer]:
    """The route handlers the lane may reach without the router, and how: each handler's
    own work with the application and the path's variables passed in."""

    async def jti(found: Mapping[str, str], request: web.Request) -> web.StreamResponse:
        return await check.answer_jti(request, found["jti"], app)

    async def forward_auth(_found: Mapping[str, str], request: web.Request
                           ) -> web.StreamResponse:
        return await authz.answer_authz(request, app)

    return {check.check_jti: jti, authz.authz: forward_auth}


@dataclass(frozen=True, slots=True)
class Shape:
    """One resource the lane serves: its route label, the literal start of its paths, its
    path pattern, the methods it is registered for and the handler's work."""

    label: str
    prefix: str
    match: Matcher
    methods: frozenset[str]
    answer: Answer

    def takes(self, method: str) -> bool:
        return hdrs.METH_ANY in self.methods or method in self.methods


class FastLane:
    """The server's request handler: the lane for the shapes the router would send to a
    lane handler, the application for everything else."""

    def __init__(self, app: web.Application, application: Handler) -> None:
        refuse_foreign_work(app)
        self.application = application
        self.access_log = app[SETTINGS].access_log
        self.shapes = tuple(lane_shapes(app))
        self.prefixes = tuple(shape.prefix for shape in self.shapes)

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.rel_url.raw_path  # what the router resolves, in its raw form
        if path.startswith(self.prefixes) and "%" not in path \
                and not request.headers.get(hdrs.EXPECT):
            for shape in self.shapes:
                if not path.startswith(shape.prefix):
                    continue
                found = shape.match(path)
                if found is None:
                    continue
                if not shape.takes(request.method):
                    break  # the router answers: 405, or another resource's route
                # The server's request factory is the application's: a web.Request.
                routed = cast(web.Request, request)
                return await pipeline(routed, partial(shape.answer, found),
                                      shape.label, access_log=self.access_log)
        return await self.application(request)


def refuse_foreign_work(app: web.Application) -> None:
    """Middlewares and response-prepare receivers run only on routed requests (aiohttp
    finds them through the match info); the lane would skip them."""
    if tuple(app.middlewares) != MIDDLEWARES:
        foreign = [getattr(m, "__qualname__", repr(m)) for m in app.middlewares
                   if m not in MIDDLEWARES]
        raise LaneConflict(
            f"the fast lane cannot serve this application: its middlewares "
            f"{', '.join(foreign) or '(reordered)'} would be skipped on the lane's requests; "
            "do that work in revoker.web.middlewares.pipeline, or serve the application with "
            "aiohttp.web.AppRunner")
    if len(app.on_response_prepare):
        raise LaneConflict(
            "the fast lane cannot serve this application: on_response_prepare receivers "
            "would be skipped on the lane's requests; set those headers in "
            "revoker.web.middlewares.pipeline, or serve the application with "
            "aiohttp.web.AppRunner")


def lane_shapes(app: web.Application) -> list[Shape]:
    """The router's resources that lead to a lane handler, in the router's order, once it
    is sure that no other resource could claim one of their requests first."""
    answers = lane_answers(app)
    resources = list(app.router.resources())
    shapes: list[Shape] = []
    for resource in resources:
        routes = [route for route in resource if route.handler in answers]
        if not routes:
            continue
        handlers = {route.handler for route in routes}
        matcher = _matcher(resource)
        if matcher is None or len(handlers) != 1:
            raise LaneConflict(f"the fast lane cannot serve {resource.canonical}: "
                               "not a plain or variable path with one handler")
        shape = Shape(resource.canonical, _literal_prefix(resource), matcher,
                      frozenset(route.method for route in routes), answers[routes[0].handler])
        if any(shape.takes(route.method) or route.method == hdrs.METH_ANY
               for route in resource if route.handler not in answers):
            raise LaneConflict(f"the fast lane cannot serve {resource.canonical}: another "
                               "handler shares its methods there")
        shapes.append(shape)
    lane_resources = {id(r) for r in resources if any(route.handler in answers for route in r)}
    for shape in shapes:
        _refuse_rivals(shape, (r for r in resources if id(r) not in lane_resources))
    return shapes


def _matcher(resource: AbstractResource) -> Matcher | None:
    """The resource's own test of a decoded path (for a path without ``%`` the raw path)."""
    if isinstance(resource, web.PlainResource):
        path = str(resource.get_info()["path"])
        return lambda candidate: _NO_VARIABLES if candidate == path else None
    if isinstance(resource, web.DynamicResource):
        pattern = resource.get_info()["pattern"]

        def match(candidate: str) -> Mapping[str, str] | None:
            found = pattern.fullmatch(candidate)
            return None if found is None else found.groupdict()

        return match
    return None


def _literal_prefix(resource: AbstractResource) -> str:
    """The literal start of every path the resource matches."""
    return resource.canonical.partition("{")[0]


def _stem(template: str) -> str:
    """The deepest literal path segment under which the router looks the template up: any
    resource there or below may be tried before it."""
    if "{" in template:
        return template.partition("{")[0].rpartition("/")[0] or "/"
    return template.rstrip("/") or "/"


def _refuse_rivals(shape: Shape, others: Iterable[AbstractResource]) -> None:
    """Another resource could answer some of the shape's requests (same method, a path the
    shape matches) where the router would try it first: a plain path the shape matches, or
    any other kind of resource under the same literal path (conservatively, whatever the
    order of registration), or a domain-matched sub-application (tried before everything)."""
    stem = _stem(shape.label)
    for other in others:
        if not any(shape.takes(route.method) or route.method == hdrs.METH_ANY
                   for route in other):
            continue
        if isinstance(other, web.PlainResource):
            rival = shape.match(other.canonical) is not None
        else:
            # A sub-application matched by domain (``add_domain``) has no path: tried first.
            rival = not other.canonical or other.canonical == stem or \
                other.canonical.startswith(stem.rstrip("/") + "/")
        if rival:
            raise LaneConflict(
                f"the fast lane cannot serve {shape.label}: {other.canonical or other!r} could "
                "answer some of its requests first; register it elsewhere or serve the "
                "application with aiohttp.web.AppRunner")


class LaneRunner(web.AppRunner):
    """An ``AppRunner`` whose server hands every request to the lane first.

    ``setup`` raises ``LaneConflict`` (after releasing what the application opened) when the
    application has anything the lane would skip."""

    async def setup(self) -> None:
        await super().setup()  # the application is frozen from here on
        server = self.server
        assert server is not None  # set by setup()
        try:
            lane = FastLane(self.app, server.request_handler)
        except LaneConflict:
            await self.cleanup()
            raise
        server.request_handler = lane
