"""Route declarations: what each handler takes and answers, stated once, beside the handler.

A handler carries its ``Operation`` (``@declare``) or says why it is not part of the API
(``@exclude``). Two readers use the declarations, so neither can drift from the other:

- ``revoker.web.openapi`` walks the application's router and turns each route's
  declaration into the OpenAPI document, as Starlette's ``SchemaGenerator`` does;
- the request pipeline (``revoker.web.middlewares``) refuses query parameters that the
  route does not declare, and repeated ones, on every ``/v1/`` route that does not say it
  takes any query (``/v1/authz`` receives the original request's query from gateways).

Limits inside the schemas come from the constants the handlers and parsers use
(``revoker.web.schemas``), never from numbers written here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

from aiohttp import hdrs, web
from multidict import MultiMapping

from revoker.errors import InvalidInput

Schema = Mapping[str, Any]
ParamPlace = Literal["query", "path", "header"]
H = TypeVar("H", bound=Callable[..., Any])

#: The routes where unknown query parameters are a 400 (the contract's API routes).
STRICT_QUERY_PREFIX: Final = "/v1/"
#: Longest parameter name quoted back in an error: the name is the client's text.
_QUOTED_NAME_CHARS: Final = 40


@dataclass(frozen=True, slots=True)
class Param:
    """One query, path or header parameter; query parameters are single-valued."""

    name: str
    schema: Schema
    description: str = ""
    where: ParamPlace = "query"
    required: bool = False


@dataclass(frozen=True, slots=True)
class Body:
    """One accepted request body media type."""

    media_type: str
    schema: Schema


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer the handler (or the pipeline around it) gives: status, media type,
    schema and the headers that come with it. No media type means no body."""

    status: int
    description: str
    media_type: str | None = None
    schema: Schema | None = None
    headers: Mapping[str, Schema] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who may call: the OpenAPI security requirements (alternatives) and a sentence."""

    security: tuple[Mapping[str, tuple[str, ...]], ...]
    description: str


@dataclass(frozen=True, slots=True)
class Operation:
    """Everything the document says about one handler, and the query rule it implies."""

    summary: str
    tag: str
    caller: Caller
    replies: tuple[Reply, ...]
    query: tuple[Param, ...] = ()
    path: tuple[Param, ...] = ()
    headers: tuple[Param, ...] = ()
    bodies: tuple[Body, ...] = ()
    description: str = ""
    #: The route takes whatever query it is sent (forward-auth receives the original
    #: request's); unknown parameters are then not refused.
    any_query: bool = False

    def __post_init__(self) -> None:
        statuses = [reply.status for reply in self.replies]
        if len(statuses) != len(set(statuses)):
            raise ValueError(f"{self.summary!r}: a status is declared twice")
        if any(param.where != "query" for param in self.query):
            raise ValueError(f"{self.summary!r}: query holds a non-query parameter")


@dataclass(frozen=True, slots=True)
class Excluded:
    """A route that is deliberately not in the document (a page, not an API), and why."""

    reason: str


Declaration = Operation | Excluded
_DECLARATIONS: dict[Callable[..., Any], Declaration] = {}


def declare(operation: Operation) -> Callable[[H], H]:
    """Attach ``operation`` to the handler; put it under the route decorator."""

    def attach(handler: H) -> H:
        _DECLARATIONS[handler] = operation
        return handler

    return attach


def exclude(reason: str) -> Callable[[H], H]:
    """Leave the handler's routes out of the document, explicitly and with a reason."""

    def attach(handler: H) -> H:
        _DECLARATIONS[handler] = Excluded(reason)
        return handler

    return attach


def declaration_of(handler: Callable[..., Any]) -> Declaration | None:
    return _DECLARATIONS.get(handler)


@dataclass(frozen=True, slots=True)
class QueryRule:
    """The query parameters a route takes; anything else, or a repeat, is a 400."""

    names: frozenset[str]

    def check(self, query: MultiMapping[str]) -> None:
        for name in query:
            if name not in self.names:
                raise InvalidInput(f"unknown query parameter {name[:_QUOTED_NAME_CHARS]!r}"
                                   f"{self._takes()}", field="query")
            if len(query.getall(name)) > 1:
                raise InvalidInput(f"query parameter {name!r} is given more than once",
                                   field=name)

    def _takes(self) -> str:
        if not self.names:
            return "; this route takes none"
        return "; this route takes " + ", ".join(sorted(self.names))


def query_rule(route_label: str, operation: Operation) -> QueryRule | None:
    """The rule a declaration implies on a route, or None where any query is taken."""
    if operation.any_query or not route_label.startswith(STRICT_QUERY_PREFIX):
        return None
    return QueryRule(frozenset(param.name for param in operation.query))


#: (route label, method) -> rule, for every declared route of every started application.
#: Route labels are path templates and declarations are module constants, so one table
#: serves every application of the process. Keyed by label because the fast lane reaches
#: handlers without the router: the label is all the pipeline knows of the route there.
_RULES: dict[tuple[str, str], QueryRule | None] = {}


def index_query_rules(router: web.UrlDispatcher) -> None:
    """Record the query rule of every declared route (run when an application starts)."""
    for resource in router.resources():
        for route in resource:
            declaration = declaration_of(route.handler)
            if isinstance(declaration, Operation):
                _RULES[(resource.canonical, route.method)] = query_rule(resource.canonical,
                                                                        declaration)


def query_rule_for(route_label: str, method: str) -> QueryRule | None:
    """The route's rule; None for a route that takes any query or declares nothing."""
    rule = _RULES.get((route_label, method))
    if rule is None:
        rule = _RULES.get((route_label, hdrs.METH_ANY))
    return rule
