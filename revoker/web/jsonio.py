"""JSON in and out of HTTP: strict content types, bounded bodies, fast encoding
(``revoker.jsoncodec``: orjson when installed)."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from revoker.errors import InvalidInput
from revoker.jsoncodec import DECODE_ERRORS as _DECODE_ERRORS
from revoker.jsoncodec import dumps, loads

__all__ = ["dumps", "loads", "read_json", "respond"]


def respond(data: Any, *, status: int = 200, headers: dict[str, str] | None = None
            ) -> web.Response:
    # The header is given as-is: aiohttp's ``content_type=`` parses it again (slower).
    # ``web.Response`` copies the headers it is given, and copies a CIMultiDict faster than
    # it builds one from a dict.
    if headers:
        return web.Response(body=dumps(data), status=status,
                            headers={"Content-Type": "application/json", **headers})
    return web.Response(body=dumps(data), status=status, headers=_JSON_ONLY)


_JSON_ONLY: Final = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))


class UnsupportedMediaType(InvalidInput):
    """The body is not in a content type this route accepts (maps to 415)."""


def is_json_type(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json"))


async def read_json(request: web.Request) -> Any:
    """Read a JSON body: 415 for another content type, 413 past the size limit (raised by
    aiohttp from ``client_max_size``), 400 for anything that is not JSON."""
    if not is_json_type(request.content_type):
        raise UnsupportedMediaType("the body must be application/json")
    raw = await request.read()
    if not raw:
        raise InvalidInput("the body is empty; a JSON object is expected")
    try:
        return loads(raw)
    except _DECODE_ERRORS:
        raise InvalidInput("the body is not valid JSON") from None
    except UnicodeDecodeError:
        raise InvalidInput("the body is not valid UTF-8") from None
