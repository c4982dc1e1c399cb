from __future__ import annotations

from pathlib import Path

import pytest

from revoker import apikeys
from revoker.config import _PARSERS, CLIENT_VARIABLES, Settings, valid_key_name
from revoker.errors import ConfigError

KEY = "k"
LINE = apikeys.config_line("ops", ["admin"], KEY)


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
    principal = apikeys.KeyRing(s.api_keys).find(KEY)
    assert key.name == "ops" and principal is not None
    assert principal.allows("check") and principal.allows("revoke")


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


@pytest.mark.parametrize(("typo", "meant"), [
    ("REVOKER_STOREURL", "REVOKER_STORE_URL"),
    ("REVOKER_FAIL_MOD", "REVOKER_FAIL_MODE"),
    ("REVOKER_LOG_LEVLE", "REVOKER_LOG_LEVEL"),
    ("REVOKER_API_KEY_FILE", "REVOKER_API_KEYS_FILE"),
    ("REVOKER_store_url", "REVOKER_STORE_URL"),
])
def test_unknown_variable_stops_with_a_suggestion(typo: str, meant: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({typo: "redis://x:1/0"})
    assert err.value.variable == typo
    assert f"did you mean {meant}?" in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_variable_without_a_close_name_is_still_refused() -> None:
    with pytest.raises(ConfigError, match="REVOKER_BANANA: unknown variable") as err:
        Settings.from_env({"REVOKER_BANANA": "1"})
    assert "did you mean" not in str(err.value)


def test_the_typo_is_reported_before_any_bad_value() -> None:
    """The typo is the cause: reporting the bad port first would send the user elsewhere."""
    with pytest.raises(ConfigError, match="REVOKER_STOREURL"):
        Settings.from_env({"REVOKER_STOREURL": "redis://x", "REVOKER_PORT": "http"})


def test_client_variables_are_known_but_not_settings() -> None:
    """One environment may serve both the service and the admin commands."""
    s = Settings.from_env({"REVOKER_URL": "http://revoker:8080", "REVOKER_API_KEY": "rvk_x",
                           "REVOKER_STORE_URL": "redis://x:1/0"})
    assert s.store_url == "redis://x:1/0"
    assert {"REVOKER_URL", "REVOKER_API_KEY"} == CLIENT_VARIABLES
    assert not CLIENT_VARIABLES & set(_PARSERS)


def test_other_environment_variables_are_not_ours() -> None:
    s = Settings.from_env({"REVOKERX": "1", "PATH": "/bin", "REDIS_URL": "redis://y"})
    assert s.store_url == "memory://"


def test_toml_unknown_key_suggests_the_setting(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('storeurl = "redis://x:1/0"\n')
    with pytest.raises(ConfigError, match=r"'storeurl'.*did you mean store_url\?"):
        Settings.from_env({}, config_file=str(toml))


@pytest.mark.parametrize(("variable", "value", "attr", "expected"), [
    ("REVOKER_FAIL_MODE", "OPEN", "fail_mode", "open"),
    ("REVOKER_FAIL_MODE", "Closed", "fail_mode", "closed"),
    ("REVOKER_CHECK_AUTH", "None", "check_auth", "none"),
    ("REVOKER_LOG_FORMAT", "JSON", "log_format", "json"),
    ("REVOKER_LOG_LEVEL", "info", "log_level", "INFO"),
    ("REVOKER_LOG_LEVEL", "Debug", "log_level", "DEBUG"),
    ("REVOKER_LOG_LEVEL", "warn", "log_level", "WARNING"),
    ("REVOKER_ACCESS_LOG", "FALSE", "access_log", "off"),
    ("REVOKER_ACCESS_LOG", "Skip-Hot-2XX", "access_log", "skip-hot-2xx"),
    ("REVOKER_ALLOW_EVICTION", "Yes", "allow_eviction", True),
    ("REVOKER_JWT_ALGORITHMS", "rs256,eddsa", "jwt_algorithms", ("RS256", "EdDSA")),
])
def test_enumerated_values_are_case_insensitive_and_normalised(
        variable: str, value: str, attr: str, expected: object) -> None:
    assert getattr(Settings.from_env({variable: value}), attr) == expected


def test_check_mode_is_case_insensitive() -> None:
    s = Settings.from_env({"REVOKER_CHECK_MODE": "Mirror", "REVOKER_STORE_URL": "redis://x"})
    assert s.check_mode == "mirror"


def test_a_mirror_checkpoint_needs_the_mirror_and_a_directory(tmp_path: Path) -> None:
    mirror = {"REVOKER_CHECK_MODE": "mirror", "REVOKER_STORE_URL": "redis://x"}
    path = str(tmp_path / "mirror.ckpt")
    s = Settings.from_env({**mirror, "REVOKER_MIRROR_CHECKPOINT": path,
                           "REVOKER_MIRROR_CHECKPOINT_INTERVAL": "60"})
    assert (s.mirror_checkpoint, s.mirror_checkpoint_s) == (path, 60.0)
    with pytest.raises(ConfigError, match="REVOKER_MIRROR_CHECKPOINT: needs REVOKER_CHECK_MODE"):
        Settings.from_env({"REVOKER_MIRROR_CHECKPOINT": path})
    for bad in (str(tmp_path / "missing" / "mirror.ckpt"), str(tmp_path)):
        with pytest.raises(ConfigError, match="REVOKER_MIRROR_CHECKPOINT: not a file"):
            Settings.from_env({**mirror, "REVOKER_MIRROR_CHECKPOINT": bad})
    with pytest.raises(ConfigError, match="REVOKER_MIRROR_CHECKPOINT_INTERVAL"):
        Settings.from_env({**mirror, "REVOKER_MIRROR_CHECKPOINT_INTERVAL": "1"})


@pytest.mark.parametrize(("variable", "value"), [
    ("REVOKER_LOG_LEVEL", "loud"),
    ("REVOKER_FAIL_MODE", "opened"),
    ("REVOKER_JWT_ALGORITHMS", "NONE"),
])
def test_unknown_enumerated_values_still_fail(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: value})


@pytest.mark.parametrize(("name", "valid"), [
    ("ops", True), ("gw-1.eu@corp", True), ("a" * 64, True),
    ("bad:name", False), ("", False), ("a" * 65, False), ("sp ace", False),
])
def test_key_names(name: str, valid: bool) -> None:
    assert valid_key_name(name) is valid


def test_kubernetes_service_links_are_not_unknown_settings() -> None:
    """A Service named revoker gives every pod of its namespace these variables."""
    links = {"REVOKER_SERVICE_HOST": "10.0.0.7", "REVOKER_SERVICE_PORT": "8080",
             "REVOKER_SERVICE_PORT_HTTP": "8080", "REVOKER_PORT_8080_TCP": "tcp://10.0.0.7:8080",
             "REVOKER_PORT_8080_TCP_PROTO": "tcp", "REVOKER_PORT_8080_TCP_PORT": "8080",
             "REVOKER_PORT_8080_TCP_ADDR": "10.0.0.7"}
    s = Settings.from_env({**links, "REVOKER_PORT": "9000"})
    assert s.port == 9000
    with pytest.raises(ConfigError, match=r"REVOKER_PORT: .*Kubernetes.*enableServiceLinks"):
        Settings.from_env({**links, "REVOKER_PORT": "tcp://10.0.0.7:8080"})
    with pytest.raises(ConfigError, match="REVOKER_SERVICE_HOSTS: unknown variable"):
        Settings.from_env({"REVOKER_SERVICE_HOSTS": "x"})


def test_access_log_defaults_to_skipping_the_hot_routes_2xx() -> None:
    assert Settings.from_env({}).access_log == "skip-hot-2xx"


@pytest.mark.parametrize(("value", "expected"), [
    ("all", "all"), ("true", "all"), ("TRUE", "all"), ("1", "all"), ("yes", "all"),
    ("on", "all"),
    ("off", "off"), ("false", "off"), ("0", "off"), ("no", "off"), ("OFF", "off"),
    ("skip-hot-2xx", "skip-hot-2xx"),
])
def test_access_log_keeps_its_boolean_spellings(value: str, expected: str) -> None:
    assert Settings.from_env({"REVOKER_ACCESS_LOG": value}).access_log == expected


@pytest.mark.parametrize(("toml", "expected"), [
    ("access_log = true", "all"), ("access_log = false", "off"),
    ('access_log = "skip-hot-2xx"', "skip-hot-2xx")])
def test_access_log_from_toml(tmp_path: Path, toml: str, expected: str) -> None:
    path = tmp_path / "revoker.toml"
    path.write_text(toml + "\n")
    assert Settings.from_env({}, config_file=str(path)).access_log == expected


@pytest.mark.parametrize("value", ["sometimes", "hot", "2"])
def test_access_log_refuses_other_values(value: str) -> None:
    with pytest.raises(ConfigError, match=r"REVOKER_ACCESS_LOG.*skip-hot-2xx"):
        Settings.from_env({"REVOKER_ACCESS_LOG": value})
