"""The admin CLI as a user runs it: ``revoker revoke/check/unrevoke/import/export``
against a real ``revoker serve`` on a Redis store started by the suite."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from tests.integration.conftest import ADMIN, CHECKER, KEYS
from tests.redis_proc import RedisProcess, free_port
from tests.serve_proc import ServeProcess


def cli(*args: str, url: str | None = None, key: str | None = ADMIN,
        timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVOKER_")}
    if url:
        env["REVOKER_URL"] = url
    if key:
        env["REVOKER_API_KEY"] = key
    return subprocess.run([sys.executable, "-m", "revoker", *args], env=env, text=True,
                          capture_output=True, timeout=timeout_s, check=False)


def test_revoke_check_unrevoke_human_and_json(service: ServeProcess) -> None:
    done = cli("revoke", "jti", "abc", "--ttl", "600", "--reason", "lost phone", url=service.url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("revoked: jti 'abc' revoked until ")
    assert "reason: lost phone" in done.stdout and "by ops" in done.stdout
    checked = cli("check", "abc", "--json", url=service.url, key=CHECKER)
    assert checked.returncode == 3  # revoked
    assert json.loads(checked.stdout)["revoked"] is True
    sub = cli("revoke", "sub", "user-7", "--json", url=service.url)
    assert json.loads(sub.stdout)["record"]["issued_before"] is not None
    old_iat = str(int(time.time()) - 100)
    by_claims = cli("check", "--sub", "user-7", "--iat", old_iat, url=service.url)
    assert by_claims.stdout.startswith("revoked: sub 'user-7'")
    removed = cli("unrevoke", "jti", "abc", url=service.url)
    assert removed.returncode == 0 and "removed" in removed.stdout
    missing = cli("unrevoke", "jti", "abc", url=service.url)
    assert missing.returncode == 1
    assert missing.stderr == "revoker: no jti revocation for this value\n"
    not_revoked = cli("check", "abc", url=service.url)
    assert not_revoked.returncode == 0
    assert not_revoked.stdout.strip() == "not revoked"


def test_revoke_token_reads_stdin(service: ServeProcess) -> None:
    token = jwt.encode({"jti": "from-stdin", "exp": int(time.time()) + 300}, "k" * 32,
                       algorithm="HS256")
    env = {**os.environ, "REVOKER_URL": service.url, "REVOKER_API_KEY": ADMIN}
    done = subprocess.run([sys.executable, "-m", "revoker", "revoke", "token", "-", "--json"],
                          input=token, env=env, text=True, capture_output=True, timeout=30,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["record"]["value"] == "from-stdin"
    assert token not in done.stdout + done.stderr


def test_errors_are_one_line_with_documented_codes(service: ServeProcess) -> None:
    down = cli("check", "x", url=f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 1
    assert down.stderr.count("\n") == 1 and down.stderr.startswith("revoker: cannot reach ")
    rejected = cli("check", "x", url=service.url, key="rvk_not_a_key")
    assert rejected.returncode == 1
    assert rejected.stderr.count("\n") == 1 and "rejected the API key (401)" in rejected.stderr
    scoped = cli("revoke", "jti", "x", url=service.url, key=CHECKER)
    assert scoped.returncode == 1 and "lacks the scope" in scoped.stderr
    bad = cli("revoke", "jti", "bad\x01value", url=service.url)
    assert bad.returncode == 1 and bad.stderr.startswith("revoker: request refused (400)")
    nokey = cli("check", "x", url=service.url, key=None)
    assert nokey.returncode == 2 and "REVOKER_API_KEY" in nokey.stderr
    usage = cli("revoke", "nonsense", "x", url=service.url)
    assert usage.returncode == 2


def test_import_100k_lines_nothing_lost(service: ServeProcess, redis_server: RedisProcess,
                                        prefix: str, tmp_path: Path) -> None:
    source = tmp_path / "revocations.ndjson"
    expires = int(time.time()) + 3600
    with source.open("w") as fh:
        for i in range(100_000):
            fh.write(json.dumps({"kind": "jti", "value": f"bulk-{i:06d}",
                                 "expires_at": expires}) + "\n")
    started = time.monotonic()
    done = cli("import", str(source), "--json", url=service.url)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary == {"lines": 100_000, "revoked": 100_000, "new": 100_000, "existing": 0,
                       "expired": 0, "failed": 0, "report": None}
    final = "import: 100% 100000 lines, 100000 new, 0 already present"
    assert done.stderr.count(final) == 1  # progress shown, its final line once
    assert elapsed < 60
    stored = redis_server.cli("EVAL", "return #redis.call('KEYS', ARGV[1])", "0",
                              f"{prefix}jti:bulk-*")
    assert int(stored) == 100_000
    assert not (tmp_path / "revocations.ndjson.failed").exists()


def test_import_reports_failed_lines_and_resumes(service: ServeProcess, tmp_path: Path) -> None:
    source = tmp_path / "mixed.ndjson"
    lines = [json.dumps({"kind": "sid", "value": f"s{i}"}) for i in range(10)]
    lines[2] = "{not json"
    lines[5] = json.dumps({"kind": "planet", "value": "x"})
    lines[7] = json.dumps({"kind": "jti", "value": "late", "expires_at": 1})  # expired
    source.write_text("\n".join(lines) + "\n")
    done = cli("import", str(source), "--batch-size", "3", url=service.url)
    assert done.returncode == 1
    report = tmp_path / "mixed.ndjson.failed"
    assert report.read_text().splitlines() == [lines[2], lines[5]]
    reasons = (tmp_path / "mixed.ndjson.failed.errors").read_text().splitlines()
    assert reasons[0] == f"report line 1 (line 3 of {source}): not valid JSON"
    assert reasons[1].startswith(f"report line 2 (line 6 of {source}): ")
    assert "10 lines: 7 new revocations, 0 already present, 1 already expired, 2 failed" \
        in done.stdout
    report.write_text(json.dumps({"kind": "sid", "value": "fixed"}) + "\n")
    again = cli("import", str(report), "--report", str(tmp_path / "r2"), url=service.url)
    assert again.returncode == 0, again.stderr
    assert "1 lines: 1 new revocations" in again.stdout
    skipped = cli("import", str(source), "--skip-lines", "9", "--json", url=service.url)
    assert json.loads(skipped.stdout)["lines"] == 1


def test_import_stops_on_rejected_key_and_says_how_to_resume(service: ServeProcess,
                                                             tmp_path: Path) -> None:
    source = tmp_path / "x.ndjson"
    source.write_text(json.dumps({"kind": "sid", "value": "a"}) + "\n")
    done = cli("import", str(source), url=service.url, key=CHECKER)
    assert done.returncode == 1
    assert "--skip-lines 0" in done.stderr and "lacks the scope" in done.stderr


def test_export_round_trip(service: ServeProcess, redis_server: RedisProcess,
                           prefix: str, tmp_path: Path) -> None:
    for args in (("jti", "e-1", "--ttl", "900", "--reason", "r1"), ("sub", "u-1"),
                 ("client", "app-9"), ("kid", "k-old")):
        assert cli("revoke", *args, url=service.url).returncode == 0
    dump = tmp_path / "dump.ndjson"
    exported = cli("export", "-o", str(dump), url=service.url)
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in dump.read_text().splitlines()]
    assert sorted((r["kind"], r["value"]) for r in records) == [
        ("client", "app-9"), ("jti", "e-1"), ("kid", "k-old"), ("sub", "u-1")]
    for record in records:
        assert cli("unrevoke", record["kind"], record["value"], url=service.url).returncode == 0
    assert cli("import", str(dump), url=service.url).returncode == 0
    again = cli("export", url=service.url)
    restored = {(r["kind"], r["value"]): r for r in map(json.loads, again.stdout.splitlines())}
    for record in records:
        back = restored[(record["kind"], record["value"])]
        assert back["issued_before"] == record["issued_before"]
        assert back["reason"] == record["reason"]
        assert back["expires_at"] >= record["expires_at"]  # never shortened by a round trip


def test_import_rides_out_a_service_that_is_not_up_yet(redis_server: RedisProcess, prefix: str,
                                                       tmp_path: Path) -> None:
    """Batches lost to connection errors are retried with backoff, so nothing is lost."""
    source = tmp_path / "early.ndjson"
    source.write_text("".join(json.dumps({"kind": "sid", "value": f"e{i}"}) + "\n"
                              for i in range(50)))
    server = ServeProcess({"REVOKER_STORE_URL": redis_server.url, "REVOKER_API_KEYS": KEYS,
                           "REVOKER_KEY_PREFIX": prefix, "REVOKER_ACCESS_LOG": "false"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVOKER_")}
    env.update({"REVOKER_URL": server.url, "REVOKER_API_KEY": ADMIN})
    importer = subprocess.Popen([sys.executable, "-m", "revoker", "import", str(source),
                                 "--json", "--batch-size", "10"], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.5)  # the service stays down while the importer makes its first attempts
        assert importer.poll() is None
        server.start()
        out, err = importer.communicate(timeout=60)
        assert importer.returncode == 0, err
        assert json.loads(out)["revoked"] == 50
    finally:
        importer.kill()
        server.stop()


# -- first-hour mistakes ---------------------------------------------------------------------

def test_check_exit_status_and_jti_flag(service: ServeProcess) -> None:
    """Scripts branch on the status: 0 not revoked, 3 revoked; --jti equals the positional."""
    assert cli("check", "--jti", "flagged", url=service.url).returncode == 0
    assert cli("revoke", "jti", "flagged", url=service.url).returncode == 0
    by_flag = cli("check", "--jti", "flagged", url=service.url, key=CHECKER)
    by_arg = cli("check", "flagged", url=service.url, key=CHECKER)
    assert (by_flag.returncode, by_arg.returncode) == (3, 3)
    assert by_flag.stdout == by_arg.stdout and by_flag.stdout.startswith("revoked: jti")
    both = cli("check", "flagged", "--jti", "flagged", url=service.url)
    assert both.returncode == 2 and both.stderr.startswith("revoker: give the jti once")
    assert "0 not revoked; 3 revoked" in cli("check", "--help").stdout


@pytest.mark.parametrize("url", ["127.0.0.1:8080", "ftp://127.0.0.1", "http://", "http://h:x"])
def test_url_without_scheme_or_host_is_a_usage_error(url: str) -> None:
    done = cli("check", "x", url=url)
    assert done.returncode == 2
    assert done.stderr == (f"revoker: REVOKER_URL must be an http:// or https:// URL with a "
                           f"host, such as http://127.0.0.1:8080; got {url!r}\n")
    flag = cli("check", "x", "--url", url)
    assert flag.returncode == 2 and flag.stderr.startswith("revoker: --url must be ")


def test_keygen_blames_the_name() -> None:
    done = cli("keygen", "--name", "bad:name", "--scopes", "admin")
    assert done.returncode == 2
    assert done.stderr.startswith("revoker: --name 'bad:name' is not a valid key name")
    assert "REVOKER_API_KEYS" not in done.stderr and done.stdout == ""


def test_misspelt_variable_stops_serve_with_a_suggestion() -> None:
    server = ServeProcess({"REVOKER_STOREURL": "redis://127.0.0.1:1/0"})
    code, out, err = server.start(wait=False).wait_exit()
    assert code == 2 and out == ""
    assert err == ("revoker: configuration error: REVOKER_STOREURL: unknown variable; did you "
                   "mean REVOKER_STORE_URL? (revoker reads no such setting: fix or unset it)\n")


def test_reimport_tells_new_from_already_present(service: ServeProcess, tmp_path: Path) -> None:
    source = tmp_path / "again.ndjson"
    source.write_text("".join(json.dumps({"kind": "sid", "value": f"r{i}"}) + "\n"
                              for i in range(30)))
    first = json.loads(cli("import", str(source), "--json", url=service.url).stdout)
    assert (first["new"], first["existing"], first["revoked"]) == (30, 0, 30)
    assert cli("revoke", "sid", "r30", url=service.url).returncode == 0
    with source.open("a") as fh:
        fh.write(json.dumps({"kind": "sid", "value": "r30"}) + "\n")
        fh.write(json.dumps({"kind": "sid", "value": "r31"}) + "\n")
    again = cli("import", str(source), url=service.url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == ("32 lines: 1 new revocations, 31 already present, "
                                    "0 already expired, 0 failed")
    progress = [ln for ln in again.stderr.splitlines() if ln.startswith("import: ")]
    assert len(progress) == 1 and progress[0].startswith("import: 100% 32 lines, 1 new")


def test_every_failure_is_counted_and_the_report_files_agree(service: ServeProcess,
                                                             tmp_path: Path) -> None:
    source = tmp_path / "bad.ndjson"
    lines = [json.dumps({"kind": "sid", "value": f"ok{i}"}) for i in range(5)]
    lines += [f"{{broken {i}" for i in range(8)]
    lines.insert(2, "")  # a blank line still counts in the file's numbering
    source.write_text("\n".join(lines) + "\n")
    done = cli("import", str(source), "--batch-size", "4", url=service.url)
    assert done.returncode == 1
    assert all(ln.startswith("revoker: ") for ln in done.stderr.splitlines()
               if not ln.startswith("import: "))
    shown = [ln for ln in done.stderr.splitlines() if ln.startswith("revoker: line ")]
    assert shown == [f"revoker: line {n}: not valid JSON" for n in range(7, 12)]
    report = tmp_path / "bad.ndjson.failed"
    assert f"revoker: ... and 3 more failed lines; every reason is in {report}.errors" \
        in done.stderr
    failed = report.read_text().splitlines()
    reasons = Path(f"{report}.errors").read_text().splitlines()
    assert len(failed) == len(reasons) == 8
    for k, (line, reason) in enumerate(zip(failed, reasons, strict=True), start=1):
        number = lines.index(line) + 1
        assert reason == f"report line {k} (line {number} of {source}): not valid JSON"
    assert "14 lines: 5 new revocations" not in done.stdout  # blank lines are not lines
    assert done.stdout.startswith("13 lines: 5 new revocations, 0 already present")


# -- revoker dev and revoker token ------------------------------------------------------------

def _authz(url: str, key: str, token: str) -> int:
    request = urllib.request.Request(url + "/v1/authz", headers={
        "X-Revoker-Key": key, "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _wait_healthy(url: str, proc: subprocess.Popen[str], timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "revoker dev exited"
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("revoker dev did not answer /healthz")


@pytest.fixture
def dev_service(tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    """``revoker dev`` on a free port: (what its export lines set, everything it printed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVOKER_")}
    env["REVOKER_ACCESS_LOG"] = "false"
    with (tmp_path / "dev.stderr").open("w") as errors:
        proc = subprocess.Popen([sys.executable, "-m", "revoker", "dev", "--port",
                                 str(free_port())], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=errors)
        try:
            assert proc.stdout is not None
            printed: list[str] = []
            while not (printed and printed[-1].startswith("=" * 24 + "=")):
                line = proc.stdout.readline()
                assert line, f"revoker dev stopped: {(tmp_path / 'dev.stderr').read_text()}"
                printed.append(line.rstrip("\n"))
            exported: dict[str, str] = {}
            for line in printed:
                if line.startswith("export "):
                    words = shlex.split(line.removeprefix("export "))
                    exported.update(w.split("=", 1) for w in words)
            _wait_healthy(exported["REVOKER_URL"], proc)
            yield exported, "\n".join(printed)
        finally:
            proc.terminate()
            proc.communicate(timeout=15)
    stderr = (tmp_path / "dev.stderr").read_text()
    assert exported["ADMIN"] not in stderr and exported["SECRET"] not in stderr


def test_dev_prints_what_is_needed_and_it_works(dev_service: tuple[dict[str, str], str]) -> None:
    exported, printed = dev_service
    url, admin, token, secret = (exported[k] for k in ("REVOKER_URL", "ADMIN", "JWT", "SECRET"))
    assert "NOT FOR PRODUCTION" in printed.splitlines()[0]
    assert printed.count("NOT FOR PRODUCTION") == 1  # shown once, on stdout only
    assert f"admin key:     {admin}" in printed and f"HS256 secret:  {secret}" in printed
    claims = jwt.decode(token, secret, algorithms=["HS256"])
    assert claims["sub"] == "alice" and claims["jti"] and claims["sid"]
    assert claims["exp"] - claims["iat"] == 3600
    assert _authz(url, admin, token) == 200
    revoked = cli("revoke", "token", token, url=url, key=admin)
    assert revoked.returncode == 0, revoked.stderr
    assert _authz(url, admin, token) == 401
    assert cli("check", claims["jti"], url=url, key=admin).returncode == 3
    minted = cli("token", "--secret", secret, "--sub", "bob", key=None)
    assert minted.returncode == 0, minted.stderr
    assert _authz(url, admin, minted.stdout.strip()) == 200
    assert cli("revoke", "sub", "bob", url=url, key=admin).returncode == 0
    assert _authz(url, admin, minted.stdout.strip()) == 401


def test_token_mints_the_claims_asked_for() -> None:
    secret = "s" * 32
    done = cli("token", "--secret", secret, "--sub", "alice", "--jti", "j-1", "--sid", "s-1",
               "--ttl", "120", "--kid", "k-1", "--iss", "https://idp", "--aud", "api",
               key=None)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert jwt.get_unverified_header(token)["kid"] == "k-1"
    claims = jwt.decode(token, secret, algorithms=["HS256"], audience="api",
                        issuer="https://idp")
    assert {k: claims[k] for k in ("sub", "jti", "sid")} == {
        "sub": "alice", "jti": "j-1", "sid": "s-1"}
    assert claims["exp"] - claims["iat"] == 120
    short = cli("token", "--secret", "short", "--sub", "a", key=None)
    assert short.returncode == 2 and short.stderr.startswith("revoker: --secret must be ")


def test_command_modules_import_only_common() -> None:
    """The layout stays acyclic: main imports the command groups, they import common."""
    import ast

    import revoker.cli

    package = Path(revoker.cli.__file__).parent
    for module in package.glob("*.py"):
        tree = ast.parse(module.read_text())
        imported = {node.module for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                     for alias in node.names}
        siblings = {name for name in imported
                    if name == "revoker.cli" or name.startswith("revoker.cli.")}
        assert "importlib" not in imported, module.name
        if module.name == "main.py":
            assert siblings == {"revoker.cli", "revoker.cli.common"}
        elif module.name in ("common.py", "__init__.py"):
            assert siblings == set(), module.name
        else:
            assert siblings == {"revoker.cli.common"}, module.name


def test_list_and_events_find_what_was_revoked_for_a_user(service: ServeProcess) -> None:
    """Support's question: what was revoked for this user, and by whom?"""
    for kind, value in (("sub", "carol@example.com"), ("sid", "carol-laptop"),
                        ("sub", "dave@example.com")):
        assert cli("revoke", kind, value, "--reason", "ticket 7", url=service.url).returncode == 0
    assert cli("unrevoke", "sub", "dave@example.com", url=service.url).returncode == 0
    listed = cli("list", "--prefix", "carol", "--json", url=service.url)
    assert listed.returncode == 0
    assert sorted(r["value"] for r in json.loads(listed.stdout)) == ["carol-laptop",
                                                                   "carol@example.com"]
    assert all(r["actor"] == "ops" for r in json.loads(listed.stdout))
    human = cli("list", "--kind", "sid", "--actor", "ops", url=service.url)
    assert human.stdout.strip().startswith("sid 'carol-laptop' revoked until")
    history = cli("events", "--value", "dave@example.com", "--json", url=service.url)
    assert [e["type"] for e in json.loads(history.stdout)] == ["revoked", "unrevoked"]
    nothing = cli("events", "--kind", "kid", url=service.url)
    assert nothing.returncode == 0 and nothing.stdout.strip() == "no matching events"
    refused = cli("list", "--prefix", "carol", url=service.url, key=CHECKER)
    assert refused.returncode == 1 and "403" in refused.stderr
