"""The fast lane: ``GET /v1/check/{jti}`` and ``/v1/authz`` without the router and
middleware chain.

Gateways ask "is it revoked?" (or "is this token acceptable?") on every request they let
through, so these two shapes of request decide the service's throughput. Through the
application, each pays aiohttp's router, match-info objects and two middleware coroutines
(ours and aiohttp's own ``_fix_request_current_app``) before the handler runs: together a
large share of a check's CPU time (docs/performance.md has the figures). The lane sits in
front of the application as the server's request handler. It answers only a plain
``GET /v1/check/<jti>`` whose jti needs no decoding, and a plain ``/v1/authz[/path]``
(no escapes, no dot or empty segment, no ``Expect``); every other request, including a
percent-encoded jti, a query string on a check or ``HEAD``, goes to the application
unchanged.

The answer is the application's answer: the same authorisation (``auth.authorize``), the
same answers (``check.answer_jti``, ``authz.answer_authz``), the same errors
(``middlewares.error_response``), the same ``X-Request-Id``, metrics under the same route
labels and the same access log. The test suite runs through the lane, and
tests/web/test_fastlane.py checks that lane and route answer alike.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import hdrs, web

from revoker.logs import REQUEST_ID
from revoker.model import MAX_VALUE_BYTES
from revoker.web.auth import authorize
from revoker.web.authz import answer_authz
from revoker.web.check import answer_jti
from revoker.web.middlewares import account, error_response, request_id_of
from revoker.web.state import KEYRING, SERVICE, SETTINGS, VALIDATOR

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
#: What a lane route does once the caller is authorised: (request, its X-Request-Id
#: header, the part of the path it matched) -> the answer.
Answer = Callable[[web.BaseRequest, dict[str, str], str], Awaitable[web.Response]]

CHECK_PREFIX: Final = "/v1/check/"
CHECK_ROUTE: Final = "/v1/check/{jti}"
AUTHZ_PATH: Final = "/v1/authz"
AUTHZ_TAIL_ROUTE: Final = "/v1/authz/{tail}"
#: A jti the raw path carries as-is: unreserved characters only (nothing to decode, no
#: query, no dot segment since it starts with a letter or digit), within the value limit.
_PLAIN_JTI: Final = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._~-]{{0,{MAX_VALUE_BYTES - 1}}}")
#: An authz path (and query) that needs no decoding or normalising: no ``%``, no ``\``,
#: no dot segment, no empty segment. Anything else takes the application's route.
_CHARS: Final = r"-A-Za-z0-9_~!$&'()*+,;=:@"  # RFC 3986 pchar, less "." and "%"
_PLAIN_AUTHZ: Final = re.compile(rf"/v1/authz(/[{_CHARS}][{_CHARS}.]*)*/?(\?[{_CHARS}./?]*)?")


class FastLane:
    """The server's request handler: the lane for plain checks and authz, the application
    for everything else."""

    def __init__(self, app: web.Application, application: Handler) -> None:
        self.application = application
        settings = app[SETTINGS]
        self.check_auth = settings.check_auth
        self.access_log = settings.access_log
        self.claim_headers = settings.authz_claim_headers
        self.keyring = app[KEYRING]
        self.service = app[SERVICE]
        self.validator = app[VALIDATOR]

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.raw_path
        if path.startswith(CHECK_PREFIX):
            jti = path[len(CHECK_PREFIX):]
            if request.method == "GET" and _PLAIN_JTI.fullmatch(jti):
                return await self.serve(request, CHECK_ROUTE, self.check, jti, True)
        elif (path.startswith(AUTHZ_PATH) and _PLAIN_AUTHZ.fullmatch(path)
              and hdrs.EXPECT not in request.headers):  # the application answers 100-continue
            tail = path[len(AUTHZ_PATH):][:1] not in ("", "?")
            route = AUTHZ_TAIL_ROUTE if tail else AUTHZ_PATH
            return await self.serve(request, route, self.authz, path, False)
        return await self.application(request)

    async def check(self, request: web.BaseRequest, headers: dict[str, str],
                    jti: str) -> web.Response:
        return await answer_jti(self.service, jti, headers)

    async def authz(self, request: web.BaseRequest, headers: dict[str, str],
                    _path: str) -> web.Response:
        return await answer_authz(request, self.validator, self.service, self.claim_headers,
                                  headers)

    async def serve(self, request: web.BaseRequest, route: str, answer: Answer, matched: str,
                    allow_authorization: bool) -> web.StreamResponse:
        """What ``middlewares.request_context`` and ``auth.require`` do, for one route."""
        started = time.perf_counter()
        request_id = request_id_of(request)
        token = REQUEST_ID.set(request_id)
        status = 500
        try:
            try:
                authorize(request, "check", self.check_auth, self.keyring,
                          allow_authorization=allow_authorization)
                response = await answer(request, {"X-Request-Id": request_id}, matched)
            except Exception as exc:
                response = error_response(request, exc, route=route)
                response.headers["X-Request-Id"] = request_id
            status = response.status
            return response
        finally:
            account(request, route, status, started, access_log=self.access_log)
            REQUEST_ID.reset(token)


class LaneRunner(web.AppRunner):
    """An ``AppRunner`` whose server hands every request to the lane first."""

    async def setup(self) -> None:
        await super().setup()
        server = self.server
        assert server is not None  # set by setup()
        server.request_handler = FastLane(self.app, server.request_handler)
