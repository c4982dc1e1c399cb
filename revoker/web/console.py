"""``/console/`` (the admin console) and ``/docs`` (the API reference): static pages.

Both are plain files shipped inside the package (``revoker/console/``), read once at import
and served from memory: no build step, nothing fetched from elsewhere at run time, and no
path from the request ever reaches the file system (an asset is looked up by exact name in
a fixed table, so ``..`` or an encoded slash is simply an unknown name).

Every answer of these routes, errors and the redirect included, carries a strict
Content-Security-Policy: scripts, styles and connections only from this origin, no inline
code, no framing, no forms posting anywhere. The pages render every value with
``textContent``, so a record whose value or reason is markup shows as text; the policy is
the second wall should a rendering bug ever slip through. The API key the console signs in
with lives only in the page's memory and travels in an ``Authorization`` header, never in a
URL, so it cannot reach an access log, a Referer or the browser history.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Final

from aiohttp import web

from revoker.web.problem import problem

routes = web.RouteTableDef()

CSP: Final = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
              "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
#: Pages are small and change with every release: revalidate rather than serve a stale
#: script against a newer API.
CACHE: Final = {"Cache-Control": "no-cache"}
MEDIA_TYPES: Final = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
}


def _load_assets() -> dict[str, tuple[bytes, str]]:
    """Every shipped file by name with its media type; other suffixes are not served."""
    folder = resources.files("revoker") / "console"
    assets: dict[str, tuple[bytes, str]] = {}
    for entry in folder.iterdir():
        suffix = entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in MEDIA_TYPES:
            assets[entry.name] = (entry.read_bytes(), MEDIA_TYPES[suffix])
    return assets


ASSETS: Final = _load_assets()


def _page(summary: str, responses: dict[str, Any],
          parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "tags": ["console"], "security": [],
                                 "responses": responses}
    if parameters:
        operation["parameters"] = parameters
    return {"get": operation}


_HTML: Final = {"200": {"description": "the page", "content": {"text/html": {
    "schema": {"type": "string"}}}}}
#: How ``/openapi.json`` describes these routes, for ``revoker.web.openapi`` to merge into
#: its paths: the pages need no key (the console asks for one in the page).
OPENAPI_PATHS: Final[dict[str, dict[str, Any]]] = {
    "/console": _page("Redirects to /console/", {"308": {"description": "to /console/"}}),
    "/console/": _page("The admin console (static page; signs in with an API key)", _HTML),
    "/console/{asset}": _page(
        "A script, stylesheet or icon of the console or the API reference",
        {"200": {"description": "the file"},
         "404": {"description": "no such file", "content": {"application/problem+json": {
             "schema": {"$ref": "#/components/schemas/Problem"}}}}},
        [{"name": "asset", "in": "path", "required": True, "schema": {"type": "string"}}]),
    "/docs": _page("This API reference, rendered in the browser from /openapi.json", _HTML),
}


def _asset(name: str) -> web.Response:
    found = ASSETS.get(name)
    if found is None:
        return problem(404, "no such console file", headers=dict(SECURITY_HEADERS))
    body, media_type = found
    return web.Response(body=body, headers={"Content-Type": media_type, **CACHE,
                                            **SECURITY_HEADERS})


@routes.get("/console")
async def console_redirect(request: web.Request) -> web.Response:
    """Relative asset links need the trailing slash; the query is dropped on purpose."""
    return web.Response(status=308, headers={"Location": "/console/", **SECURITY_HEADERS})


@routes.get("/console/")
async def console_page(request: web.Request) -> web.Response:
    return _asset("index.html")


@routes.get("/console/{asset}")
async def console_asset(request: web.Request) -> web.Response:
    return _asset(request.match_info["asset"])


@routes.get("/docs")
async def docs_page(request: web.Request) -> web.Response:
    return _asset("docs.html")
