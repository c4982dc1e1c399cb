"""aiohttp's TestServer, running the app as ``revoker serve`` does: behind the fast lane."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestServer

from revoker.web.fastlane import LaneRunner


class LaneTestServer(TestServer):
    """Requests reach ``revoker.web.fastlane.FastLane`` first, as in production."""

    async def _make_runner(self, **kwargs: Any) -> LaneRunner:
        return LaneRunner(self.app, **kwargs)
