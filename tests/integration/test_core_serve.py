"""The whole program: ``revoker serve`` and ``revoker keygen`` as subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest

from revoker import apikeys
from tests.redis_proc import RedisProcess
from tests.serve_proc import ServeProcess

ADMIN = "rvk_core_serve_admin_key_000000000000"
KEYS = apikeys.config_line("ops", ["admin"], ADMIN)


def call(url: str, method: str = "GET", body: object = None, key: str = ADMIN) -> tuple[int,
                                                                                       object]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Authorization": f"Bearer {key}",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def test_redis_key_carries_exp_plus_leeway(redis_server: RedisProcess, prefix: str) -> None:
    server = ServeProcess({"REVOKER_STORE_URL": redis_server.url, "REVOKER_API_KEYS": KEYS,
                           "REVOKER_KEY_PREFIX": prefix, "REVOKER_LEEWAY": "45"}).start()
    try:
        exp = int(time.time()) + 1234
        status, record = call(server.url + "/v1/revocations", "POST",
                              {"kind": "jti", "value": "done-criterion", "expires_at": exp})
        assert status == 201 and isinstance(record, dict)
        assert record["expires_at"] == exp + 45
        key = f"{prefix}jti:done-criterion"
        assert int(redis_server.cli("EXPIRETIME", key)) == exp + 45
        stored = json.loads(redis_server.cli("GET", key))
        # compact: only what the key and its expiry do not already say
        assert stored == {"revoked_at": record["revoked_at"], "actor": record["actor"]}
        status, body = call(server.url + "/v1/check/done-criterion")
        assert status == 200 and isinstance(body, dict) and body["revoked"] is True
    finally:
        _, err = server.stop()
    assert ADMIN not in err


def test_refuses_an_evicting_redis(prefix: str) -> None:
    lru = RedisProcess(["--maxmemory-policy", "allkeys-lru"]).start()
    try:
        server = ServeProcess({"REVOKER_STORE_URL": lru.url, "REVOKER_API_KEYS": KEYS})
        code, _, err = server.start(wait=False).wait_exit()
        assert code == 2
        assert "REVOKER_ALLOW_EVICTION" in err and "allkeys-lru" in err
        assert len(err.strip().splitlines()) == 1
        ok = ServeProcess({"REVOKER_STORE_URL": lru.url, "REVOKER_API_KEYS": KEYS,
                           "REVOKER_ALLOW_EVICTION": "true"}).start()
        ok.stop()
    finally:
        lru.stop()


def test_persistence_off_is_reported(redis_server: RedisProcess) -> None:
    server = ServeProcess({"REVOKER_STORE_URL": redis_server.url,
                           "REVOKER_API_KEYS": KEYS}).start()
    try:
        with urllib.request.urlopen(server.url + "/readyz", timeout=5) as resp:
            body = json.loads(resp.read())
        assert any("persistence is off" in w for w in body["warnings"])
        assert body["checks"]["store"]["aof_enabled"] is False
    finally:
        _, err = server.stop()
    assert "persistence is off" in err


def test_bad_config_exits_2_with_one_line() -> None:
    server = ServeProcess({"REVOKER_FAIL_MODE": "sometimes"})
    code, _, err = server.start(wait=False).wait_exit()
    assert code == 2
    assert err.strip().splitlines() == [
        "revoker: configuration error: REVOKER_FAIL_MODE: must be one of closed, open, "
        "got 'sometimes'"]


def test_bootstrap_key_is_printed_once_and_works() -> None:
    server = ServeProcess({"REVOKER_API_KEYS": ""}).start()
    _, err = server.stop()
    assert "memory://" in err and "LOST on restart" in err
    generated = [w for w in err.split() if w.startswith("rvk_")]
    assert len(generated) == 1


def test_bootstrap_key_grants_admin() -> None:
    server = ServeProcess({"REVOKER_API_KEYS": ""})
    server.start(wait=False)
    assert server.proc is not None and server.proc.stderr is not None
    key = ""
    deadline = time.monotonic() + 15
    while not key and time.monotonic() < deadline:
        line = server.proc.stderr.readline()
        key = next((w for w in line.split() if w.startswith("rvk_")), "")
    try:
        server.wait_ready()
        status, _ = call(server.url + "/v1/revocations", "POST", {"kind": "sub", "value": "u"},
                         key=key)
        assert status == 201
        status, _ = call(server.url + "/v1/revocations", key="rvk_other")
        assert status == 401
    finally:
        server.stop()


def test_keygen_prints_key_and_config_line() -> None:
    out = subprocess.run([sys.executable, "-m", "revoker", "keygen", "--name", "gw",
                          "--scopes", "check"], capture_output=True, text=True, check=True)
    lines = dict(line.split(":", 1) for line in out.stdout.strip().splitlines())
    key, config = lines["key"].strip(), lines["config"].strip()
    assert config == apikeys.config_line("gw", ["check"], key)
    bad = subprocess.run([sys.executable, "-m", "revoker", "keygen", "--name", "gw",
                          "--scopes", "root"], capture_output=True, text=True)
    assert bad.returncode == 2


@pytest.mark.parametrize("argv", [["--version"], ["serve", "--help"]])
def test_cli_basics(argv: list[str]) -> None:
    out = subprocess.run([sys.executable, "-m", "revoker", *argv], capture_output=True,
                         text=True)
    assert out.returncode == 0 and out.stdout


def test_large_bearer_header_reaches_revoker() -> None:
    """aiohttp's default 8 KiB header limit would answer a bare 400 before revoker sees a
    token between 8 and 16 KiB; the server raises it so authz answers in its own words."""
    server = ServeProcess({"REVOKER_API_KEYS": KEYS, "REVOKER_CHECK_AUTH": "none"}).start()
    try:
        for size, told in [(12 * 1024, "malformed token"), (17 * 1024, "token too large")]:
            req = urllib.request.Request(server.url + "/v1/authz",
                                         headers={"Authorization": "Bearer " + "a" * size})
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(req, timeout=5)
            err.value.close()
            assert err.value.code == 401
            assert told in err.value.headers["WWW-Authenticate"]
    finally:
        server.stop()
