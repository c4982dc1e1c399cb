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
from typing import Final

from aiohttp import web

from revoker.web.problem import problem
from revoker.web.schemas import PUBLIC, problem_reply
from revoker.web.spec import Operation, Param, Reply, declare

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


_HTML: Final = Reply(200, "the page", "text/html", {"type": "string"})
_PAGE_CALLER: Final = PUBLIC  # the page itself needs no key; it asks for one
CONSOLE_REDIRECT = Operation("Redirects to /console/", "console", _PAGE_CALLER,
                             (Reply(308, "to /console/", headers={
                                 "Location": {"type": "string"}}),), any_query=True)
CONSOLE_PAGE = Operation("The admin console (a static page; signs in with an API key)",
                         "console", _PAGE_CALLER, (_HTML,), any_query=True)
CONSOLE_ASSET = Operation(
    "A script, stylesheet or icon of the console or the API reference", "console",
    _PAGE_CALLER, (Reply(200, "the file"), problem_reply(404, "no such file")),
    path=(Param("asset", {"type": "string"}, "file name", where="path", required=True),),
    any_query=True)
DOCS_PAGE = Operation("This API reference, rendered in the browser from /openapi.json",
                      "console", _PAGE_CALLER, (_HTML,), any_query=True)


def _asset(name: str) -> web.Response:
    found = ASSETS.get(name)
    if found is None:
        return problem(404, "no such console file", headers=dict(SECURITY_HEADERS))
    body, media_type = found
    return web.Response(body=body, headers={"Content-Type": media_type, **CACHE,
                                            **SECURITY_HEADERS})


@routes.get("/console")
@declare(CONSOLE_REDIRECT)
async def console_redirect(request: web.Request) -> web.Response:
    """Relative asset links need the trailing slash; the query is dropped on purpose."""
    return web.Response(status=308, headers={"Location": "/console/", **SECURITY_HEADERS})


@routes.get("/console/")
@declare(CONSOLE_PAGE)
async def console_page(request: web.Request) -> web.Response:
    return _asset("index.html")


@routes.get("/console/{asset}")
@declare(CONSOLE_ASSET)
async def console_asset(request: web.Request) -> web.Response:
    return _asset(request.match_info["asset"])


@routes.get("/docs")
@declare(DOCS_PAGE)
async def docs_page(request: web.Request) -> web.Response:
    return _asset("docs.html")
