"""``GET /openapi.json``: the OpenAPI 3.1 document, generated from the routes' declarations.

The document is built by walking the application's router and reading the declaration
each handler carries (``revoker.web.spec``), as Starlette's ``SchemaGenerator`` does, so
it describes exactly the routes that are registered and what their code accepts and
answers. It is built once, when the application starts, which also records the query
rule of every route for the request pipeline. ``undeclared`` names every route that has
no declaration (``tests/web/test_openapi.py`` requires none); such a route is left out.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any, Final

from aiohttp import hdrs, web

from revoker import __version__
from revoker.web.jsonio import dumps
from revoker.web.schemas import PUBLIC, SECURITY_SCHEMES, component_schemas, json_reply
from revoker.web.spec import (
    Excluded,
    Operation,
    Param,
    Reply,
    declaration_of,
    declare,
    index_query_rules,
)

routes = web.RouteTableDef()
log = logging.getLogger(__name__)
#: What a route registered for every method (``*``) is documented under.
ANY_METHODS: Final = ("get", "post", "put", "patch", "delete", "head", "options")
_VARIABLE: Final = re.compile(r"\{([^}:]+)")
DOCUMENT = web.AppKey("openapi_document", bytes)


class DeclarationError(ValueError):
    """A declaration does not fit its route (a path variable it does not describe)."""


def setup(app: web.Application) -> None:
    app.on_startup.append(_publish)


async def _publish(app: web.Application) -> None:
    """Every route is registered by now: build the document and the query rules once."""
    index_query_rules(app.router)
    missing = undeclared(app.router)
    if missing:
        log.warning("routes without a declaration, left out of /openapi.json: %s",
                    ", ".join(missing))
    app[DOCUMENT] = dumps(build_document(app.router))


def _documented(router: web.UrlDispatcher) -> Iterator[tuple[str, str, Any]]:
    """(path template, lower-case method, declaration or None) of every route; a ``*``
    route once per method, and no HEAD that aiohttp added beside a GET."""
    for resource in router.resources():
        gets = {route.handler for route in resource if route.method == hdrs.METH_GET}
        for route in resource:
            if route.method == hdrs.METH_HEAD and route.handler in gets:
                continue
            methods = ANY_METHODS if route.method == hdrs.METH_ANY else (route.method.lower(),)
            for method in methods:
                yield resource.canonical, method, declaration_of(route.handler)


def undeclared(router: web.UrlDispatcher) -> list[str]:
    """``METHOD /path`` of every route whose handler declares nothing (not even exclusion)."""
    return sorted({f"{method.upper()} {path}" for path, method, found in _documented(router)
                   if found is None})


def build_document(router: web.UrlDispatcher) -> dict[str, Any]:
    """The whole document for ``router``; pure, so tests can build it without a server."""
    paths: dict[str, dict[str, Any]] = {}
    for path, method, found in _documented(router):
        if found is None or isinstance(found, Excluded):
            continue
        paths.setdefault(path, {})[method] = operation_object(path, found)
    return {
        "openapi": "3.1.0",
        "info": {"title": "revoker", "version": __version__,
                 "description": "Token revocation service: a shared, self-expiring JWT "
                                "denylist."},
        "paths": paths,
        "components": {"schemas": component_schemas(), "securitySchemes": SECURITY_SCHEMES},
    }


def operation_object(path: str, operation: Operation) -> dict[str, Any]:
    variables = _VARIABLE.findall(path)
    declared = {param.name for param in operation.path}
    if not set(variables) <= declared:
        raise DeclarationError(f"{path}: path variables {sorted(set(variables) - declared)} "
                               f"are not declared by {operation.summary!r}")
    parameters = [param for param in operation.path if param.name in variables]
    parameters += [*operation.query, *operation.headers]
    out: dict[str, Any] = {
        "summary": operation.summary, "tags": [operation.tag],
        "description": " ".join(filter(None, (operation.caller.description,
                                              operation.description))),
        "security": [{name: list(scopes) for name, scopes in alternative.items()}
                     for alternative in operation.caller.security],
        "responses": {str(reply.status): _response(reply) for reply in operation.replies},
    }
    if parameters:
        out["parameters"] = [_parameter(param) for param in parameters]
    if operation.bodies:
        out["requestBody"] = {"required": True, "content": {
            body.media_type: {"schema": dict(body.schema)} for body in operation.bodies}}
    return out


def _parameter(param: Param) -> dict[str, Any]:
    out: dict[str, Any] = {"name": param.name, "in": param.where,
                           "required": param.required or param.where == "path",
                           "schema": dict(param.schema)}
    if param.description:
        out["description"] = param.description
    return out


def _response(reply: Reply) -> dict[str, Any]:
    out: dict[str, Any] = {"description": reply.description}
    if reply.media_type is not None:
        out["content"] = {reply.media_type: {"schema": dict(reply.schema or {})}}
    if reply.headers:
        out["headers"] = {name: {"schema": dict(schema)}
                          for name, schema in reply.headers.items()}
    return out


@routes.get("/openapi.json")
@declare(Operation(
    "This document: OpenAPI 3.1, generated from the routes' declarations", "operations",
    PUBLIC, (json_reply(200, "the document", {"type": "object", "required": ["openapi"]}),)))
async def openapi(request: web.Request) -> web.Response:
    document = request.app.get(DOCUMENT)
    if document is None:  # an application served without its startup signals
        document = dumps(build_document(request.app.router))
    return web.Response(body=document, content_type="application/json")
