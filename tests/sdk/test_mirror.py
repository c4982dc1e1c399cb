"""The mirror against real services on a real redis-server: restarts, cut streams, lost
and trimmed events, and the fail mode once the service is gone."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from revoker.sdk import Guard, SyncRevokerClient
from tests.jwt_factory import KeySet
from tests.redis_proc import RedisProcess
from tests.sdk.conftest import ADMIN, STALENESS_S, JwksHttp, eventually, service_env
from tests.serve_proc import ServeProcess

pytestmark = pytest.mark.redis


def revoke_jti(url: str, token_jti: str) -> None:
    with SyncRevokerClient(url, ADMIN) as rc:
        rc.revoke("jti", token_jti)


@pytest.fixture
def other(redis_server: RedisProcess, prefix: str, jwks: JwksHttp) -> Iterator[ServeProcess]:
    """A second instance on the same Redis: revokes keep flowing while the first is down."""
    server = ServeProcess(service_env(redis_server.url, prefix, jwks.url)).start()
    yield server
    server.stop()


def token_with_jti(keyset: KeySet) -> tuple[str, str]:
    jti = f"j-{uuid.uuid4().hex}"
    return keyset.token(jti=jti), jti


def test_restarted_service_resumes_and_nothing_is_missed(
        make_guard: Callable[..., Guard], keyset: KeySet, service: ServeProcess,
        other: ServeProcess) -> None:
    guard = make_guard()
    assert guard.mirror is not None
    before, jti_before = token_with_jti(keyset)
    during, jti_during = token_with_jti(keyset)
    revoke_jti(other.url, jti_before)
    assert eventually(lambda: not guard.authenticate(before).ok, within_s=STALENESS_S)
    resyncs = guard.mirror.resyncs
    service.stop()  # the stream is cut
    revoke_jti(other.url, jti_during)  # while the mirror cannot hear about it
    service.start()
    assert eventually(lambda: guard.authenticate(during).reason == "revoked",
                      within_s=STALENESS_S + 5)
    assert guard.authenticate(before).reason == "revoked"
    assert guard.mirror.resyncs == resyncs  # resumed from Last-Event-ID, no new snapshot


def test_events_trimmed_while_away_force_a_full_resync(
        make_guard: Callable[..., Guard], keyset: KeySet, service: ServeProcess,
        other: ServeProcess, redis_server: RedisProcess, prefix: str) -> None:
    guard = make_guard()
    assert guard.mirror is not None
    token, jti = token_with_jti(keyset)
    resyncs = guard.mirror.resyncs
    service.stop()
    revoke_jti(other.url, jti)
    revoke_jti(other.url, f"filler-{uuid.uuid4().hex}")
    redis_server.cli("XTRIM", f"{prefix}events", "MAXLEN", "1")  # our next event is gone
    service.start()
    assert eventually(lambda: guard.mirror is not None and guard.mirror.resyncs > resyncs,
                      within_s=STALENESS_S + 5)
    assert guard.authenticate(token).reason == "revoked"


def test_a_service_that_lost_its_events_is_loaded_again(
        make_guard: Callable[..., Guard], keyset: KeySet, service: ServeProcess,
        other: ServeProcess, redis_server: RedisProcess, prefix: str) -> None:
    """The events stream deleted (a new store, a restore): the newest event id is now
    older than ours, so the copy is replaced, dropping what the service no longer has."""
    guard = make_guard()
    assert guard.mirror is not None
    token, jti = token_with_jti(keyset)
    revoke_jti(other.url, jti)
    assert eventually(lambda: not guard.authenticate(token).ok, within_s=STALENESS_S)
    service.stop()
    redis_server.cli("DEL", f"{prefix}events", f"{prefix}jti:{jti}")
    service.start()
    assert eventually(lambda: guard.authenticate(token).ok, within_s=STALENESS_S + 5)


@pytest.mark.parametrize(("fail_mode", "status"), [("closed", "unavailable"), ("open", "ok")])
def test_service_down_applies_the_fail_mode_after_the_bound(
        make_guard: Callable[..., Guard], keyset: KeySet, service: ServeProcess,
        fail_mode: str, status: str) -> None:
    guard = make_guard(fail_mode=fail_mode)
    token, _ = token_with_jti(keyset)
    assert guard.authenticate(token).source == "mirror"
    service.stop()
    stopped = time.monotonic()
    # Within the bound the copy still answers; after it, nobody can, and the mode decides.
    assert eventually(lambda: guard.authenticate(token).source == "none",
                      within_s=STALENESS_S + 3)
    assert time.monotonic() - stopped >= STALENESS_S * 0.5
    outcome = guard.authenticate(token)
    assert outcome.status == status
    assert outcome.degraded is (fail_mode == "open")
    assert outcome.http_status == (200 if fail_mode == "open" else 503)
    service.start()
    assert eventually(lambda: guard.authenticate(token).source == "mirror",
                      within_s=STALENESS_S + 5)


def test_a_copy_out_of_sync_is_never_trusted(make_guard: Callable[..., Guard],
                                            keyset: KeySet, service: ServeProcess) -> None:
    """While the copy is not in sync, every check goes to ``POST /v1/check`` instead."""
    guard = make_guard()
    assert guard.mirror is not None
    guard.mirror.synced = False  # as while a snapshot is loading
    token, jti = token_with_jti(keyset)
    outcome = guard.authenticate(token)
    assert outcome.ok and outcome.source == "service"
    revoke_jti(service.url, jti)
    refused = guard.authenticate(token)
    assert refused.reason == "revoked" and refused.source == "service"
