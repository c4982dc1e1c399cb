"""revoker.client (and its synchronous twin) against a real ``revoker serve`` on a Redis
store started by the suite."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from revoker.client import ApiError, AuthError, RevokerClient, Unreachable
from revoker.sdk import SyncRevokerClient
from tests.integration.conftest import ADMIN, CHECKER, KEYS
from tests.jwt_factory import HS_SECRET, claims, sign
from tests.redis_proc import RedisProcess, free_port
from tests.serve_proc import ServeProcess


async def test_revoke_get_check_unrevoke(service: ServeProcess) -> None:
    exp = int(time.time()) + 600
    async with RevokerClient(service.url, ADMIN) as rc:
        first = await rc.revoke("jti", "j-1", expires_at=exp, reason="stolen laptop")
        assert first.created and first.record is not None
        assert first.record.expires_at == exp + 30
        assert first.record.actor == "ops"
        again = await rc.revoke("jti", "j-1", expires_at=exp)
        assert not again.created
        record = await rc.get("jti", "j-1")
        assert record is not None and record.reason == "stolen laptop"
        assert (await rc.check_jti("j-1")).revoked
        cutoff = await rc.revoke("sub", "user/42")
        assert cutoff.record is not None and cutoff.record.issued_before is not None
        found = await rc.check(claims={"sub": "user/42", "iat": time.time() - 60})
        assert found.revoked and found.matches[0].kind == "sub"
        newer = await rc.check(claims={"sub": "user/42", "iat": time.time() + 5})
        assert not newer.revoked
        assert await rc.unrevoke("jti", "j-1") is True
        assert await rc.unrevoke("jti", "j-1") is False
        assert await rc.get("jti", "j-1") is None


async def test_expired_token_stores_nothing(service: ServeProcess) -> None:
    async with RevokerClient(service.url, ADMIN) as rc:
        outcome = await rc.revoke("jti", "old", expires_at=int(time.time()) - 3600)
        assert not outcome.stored
        assert await rc.get("jti", "old") is None


async def test_batch_list_and_events(service: ServeProcess) -> None:
    async with RevokerClient(service.url, ADMIN) as rc:
        items = [{"kind": "sid", "value": f"s-{i}"} for i in range(25)]
        items.insert(3, {"kind": "nope", "value": "x"})
        results = await rc.revoke_batch(items)
        assert len(results) == 26
        assert results[3].error is not None and "kind" in results[3].error
        assert all(r.revocation and r.revocation.created for i, r in enumerate(results)
                   if i != 3)
        seen = [r.value async for r in rc.iter_revocations(kind="sid", page_size=7)]
        assert sorted(seen) == sorted(f"s-{i}" for i in range(25))
        page = await rc.events(limit=10)
        assert len(page.events) == 10 and page.next == page.events[-1].id
        rest = await rc.events(after=page.next, limit=100)
        assert len(rest.events) == 15


async def test_stream_events_follows_new_revocations(service: ServeProcess) -> None:
    async with RevokerClient(service.url, CHECKER) as watcher, \
            RevokerClient(service.url, ADMIN) as admin:
        await admin.revoke("kid", "old-key")
        start = (await admin.events()).next
        stream = watcher.stream_events(after=start)
        await admin.revoke("kid", "rotated-key")
        event = await asyncio.wait_for(anext(stream), 5)
        assert event.type == "revoked" and event.record.value == "rotated-key"
        await stream.aclose()


async def test_errors_are_typed(service: ServeProcess) -> None:
    async with RevokerClient(service.url, "rvk_wrong") as rc:
        with pytest.raises(AuthError) as rejected:
            await rc.get("jti", "x")
        assert rejected.value.status == 401
    async with RevokerClient(service.url, CHECKER) as rc:
        with pytest.raises(AuthError) as scoped:
            await rc.revoke("jti", "x")
        assert scoped.value.status == 403
    async with RevokerClient(service.url, ADMIN) as rc:
        with pytest.raises(ApiError) as bad:
            await rc.revoke("jti", "\x00")
        assert bad.value.status == 400 and not isinstance(bad.value, AuthError)
    async with RevokerClient(f"http://127.0.0.1:{free_port()}", ADMIN, timeout_s=2) as rc:
        with pytest.raises(Unreachable):
            await rc.check_jti("x")


@pytest.fixture
def jwt_service(redis_server: RedisProcess, prefix: str) -> Iterator[ServeProcess]:
    """The service validating HS256 tokens, for ``authz`` and ``introspect``."""
    server = ServeProcess({"REVOKER_STORE_URL": redis_server.url, "REVOKER_API_KEYS": KEYS,
                           "REVOKER_KEY_PREFIX": prefix, "REVOKER_ACCESS_LOG": "false",
                           "REVOKER_JWT_SECRET": HS_SECRET,
                           "REVOKER_JWT_ALGORITHMS": "HS256"}).start()
    yield server
    server.stop()


def hs_token(**overrides: Any) -> str:
    return sign(HS_SECRET, "HS256", claims(**overrides))


async def test_authz_and_introspect_answer_for_valid_revoked_and_invalid_tokens(
        jwt_service: ServeProcess) -> None:
    token = hs_token(sub="alice")
    async with RevokerClient(jwt_service.url, CHECKER) as rc, \
            RevokerClient(jwt_service.url, ADMIN) as admin:
        answer = await rc.authz(token)
        assert answer.ok and answer.subject == "alice" and not answer.degraded
        assert answer.jti is not None
        active = await rc.introspect(token)
        assert active["active"] is True and active["sub"] == "alice"
        bad = await rc.authz(token + "x")
        assert not bad.ok and bad.reason == "bad signature"
        assert await rc.introspect(token + "x") == {"active": False}
        await admin.revoke_token(token)
        revoked = await rc.authz(token)
        assert not revoked.ok and revoked.reason == "revoked"
        assert await rc.introspect(token) == {"active": False}


async def test_authz_with_a_refused_key_is_an_auth_error(jwt_service: ServeProcess) -> None:
    async with RevokerClient(jwt_service.url, "rvk_wrong") as rc:
        with pytest.raises(AuthError) as refused:
            await rc.authz(hs_token())
        assert refused.value.status == 401
        with pytest.raises(AuthError):
            await rc.introspect(hs_token())


def test_sync_client_gives_the_same_answers_as_the_async_one(
        jwt_service: ServeProcess) -> None:
    token = hs_token(sub="bob")
    with SyncRevokerClient(jwt_service.url, CHECKER) as rc, \
            SyncRevokerClient(jwt_service.url, ADMIN) as admin:
        assert rc.authz(token).subject == "bob"
        assert rc.introspect(token)["active"] is True
        assert not rc.check(token=token).revoked
        revocation = admin.revoke_token(token, reason="stolen laptop")
        assert revocation.created and revocation.record is not None
        assert rc.check(token=token).revoked
        assert rc.check_jti(revocation.record.value).revoked
        assert rc.authz(token).reason == "revoked"
        assert admin.get("jti", revocation.record.value) is not None
        assert admin.unrevoke("jti", revocation.record.value) is True
        assert admin.unrevoke("jti", revocation.record.value) is False
        with pytest.raises(AuthError) as scoped:
            rc.revoke("jti", "x")
        assert scoped.value.status == 403
        with pytest.raises(ApiError) as bad:
            admin.revoke("jti", "\x00")
        assert bad.value.status == 400
        assert rc.ready()[0] is True
    with SyncRevokerClient(f"http://127.0.0.1:{free_port()}", ADMIN, timeout_s=2) as gone, \
            pytest.raises(Unreachable):
        gone.check_jti("x")


def test_sync_client_reconnects_after_the_service_closed_its_connection(
        jwt_service: ServeProcess) -> None:
    """A kept-alive connection that the server dropped (a restart) is opened again."""
    with SyncRevokerClient(jwt_service.url, CHECKER) as rc:
        assert not rc.check_jti("a").revoked
        jwt_service.stop()
        jwt_service.start()
        assert not rc.check_jti("a").revoked
