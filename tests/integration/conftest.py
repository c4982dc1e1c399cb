"""A real ``revoker serve`` on the suite's Redis, for the CLI and client tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from revoker import apikeys
from tests.redis_proc import RedisProcess
from tests.serve_proc import ServeProcess

ADMIN = "rvk_integration_admin_key_00000000000"
CHECKER = "rvk_integration_check_key_00000000000"
KEYS = ",".join([apikeys.config_line("ops", ["admin"], ADMIN),
                 apikeys.config_line("gw", ["check"], CHECKER)])


@pytest.fixture
def service(redis_server: RedisProcess, prefix: str) -> Iterator[ServeProcess]:
    server = ServeProcess({"REVOKER_STORE_URL": redis_server.url, "REVOKER_API_KEYS": KEYS,
                           "REVOKER_KEY_PREFIX": prefix, "REVOKER_ACCESS_LOG": "false"}).start()
    yield server
    server.stop()
