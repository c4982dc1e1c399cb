"""The admin CLI as a user runs it: ``revoker revoke/check/unrevoke/import/export``
against a real ``revoker serve`` on a Redis store started by the suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

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
    assert checked.returncode == 0
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
    assert cli("check", "abc", url=service.url).stdout.strip() == "not revoked"


def test_revoke_token_reads_stdin(service: ServeProcess) -> None:
    import jwt

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
    assert summary == {"lines": 100_000, "revoked": 100_000, "expired": 0, "failed": 0,
                       "report": None}
    assert "import: 100% 100000 lines, 100000 revoked" in done.stderr  # progress shown
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
    reasons = (tmp_path / "mixed.ndjson.failed.errors").read_text()
    assert "line 3: not valid JSON" in reasons and "line 6: " in reasons
    assert "7 revocations (1 already expired); 2 lines failed" in done.stdout
    report.write_text(json.dumps({"kind": "sid", "value": "fixed"}) + "\n")
    again = cli("import", str(report), "--report", str(tmp_path / "r2"), url=service.url)
    assert again.returncode == 0, again.stderr
    assert "imported 1 revocations" in again.stdout
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
