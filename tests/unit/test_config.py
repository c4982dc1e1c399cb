from __future__ import annotations

from pathlib import Path

import pytest

from revoker import keys
from revoker.config import Settings
from revoker.errors import ConfigError

LINE = keys.config_line("ops", ["admin"], "k")


def test_defaults_match_the_contract() -> None:
    s = Settings.from_env({})
    assert (s.store_url, s.host, s.port, s.workers, s.key_prefix) == (
        "memory://", "127.0.0.1", 8080, 1, "revoker:")
    assert (s.max_token_lifetime_s, s.leeway_s, s.check_auth, s.fail_mode) == (
        86400, 30, "key", "closed")
    assert s.jwt_algorithms == ("RS256", "ES256", "EdDSA")
    assert (s.store_timeout_s, s.redis_wait_replicas, s.log_format, s.events_maxlen) == (
        0.25, 0, "text", 1_000_000)
    assert s.max_body_bytes == 1024 * 1024


@pytest.mark.parametrize(("variable", "value"), [
    ("REVOKER_PORT", "http"),
    ("REVOKER_PORT", "70000"),
    ("REVOKER_STORE_URL", "mysql://x"),
    ("REVOKER_FAIL_MODE", "maybe"),
    ("REVOKER_JWT_ALGORITHMS", "none"),
    ("REVOKER_JWT_ALGORITHMS", "RS256,HS256"),
    ("REVOKER_API_KEYS", "bad"),
    ("REVOKER_API_KEYS", "n:superuser:" + "0" * 64),
    ("REVOKER_API_KEYS", "n:check:xyz"),
    ("REVOKER_LEEWAY", "-1"),
    ("REVOKER_STORE_TIMEOUT", "0"),
    ("REVOKER_TLS_CERT", "/nonexistent/cert.pem"),
    ("REVOKER_CHECK_AUTH", "off"),
    ("REVOKER_LOG_FORMAT", "xml"),
])
def test_bad_values_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({variable: value})
    assert variable in str(err.value)


def test_api_keys_parse_and_imply_scopes() -> None:
    s = Settings.from_env({"REVOKER_API_KEYS": LINE})
    (key,) = s.api_keys
    assert key.name == "ops" and key.allows("check") and key.allows("revoke")


def test_keys_file_and_toml(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# comment\n{LINE}\n")
    toml = tmp_path / "revoker.toml"
    toml.write_text('store_url = "redis://x:1/0"\nleeway = 5\nport = 9000\n'
                    f'api_keys_file = "{keys_file}"\n')
    s = Settings.from_env({"REVOKER_PORT": "9100"}, config_file=str(toml))
    assert (s.store_url, s.leeway_s, s.port) == ("redis://x:1/0", 5, 9100)
    assert [k.name for k in s.api_keys] == ["ops"]


def test_toml_unknown_key(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("nonsense = 1\n")
    with pytest.raises(ConfigError, match="nonsense"):
        Settings.from_env({}, config_file=str(toml))


def test_hs_needs_secret_alone() -> None:
    s = Settings.from_env({"REVOKER_JWT_ALGORITHMS": "HS256", "REVOKER_JWT_SECRET": "s" * 32})
    assert s.jwt_algorithms == ("HS256",)
    with pytest.raises(ConfigError, match="REVOKER_JWT_SECRET"):
        Settings.from_env({"REVOKER_JWT_ALGORITHMS": "HS256"})
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        Settings.from_env({"REVOKER_JWT_ALGORITHMS": "HS256", "REVOKER_JWT_SECRET": "short"})


def test_memory_store_refuses_several_workers() -> None:
    with pytest.raises(ConfigError, match="REVOKER_WORKERS"):
        Settings.from_env({"REVOKER_WORKERS": "2"})
