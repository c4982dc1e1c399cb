"""revoker.client against a real ``revoker serve`` on a Redis store started by the suite."""

from __future__ import annotations

import asyncio
import time

import pytest

from revoker.client import ApiError, AuthError, RevokerClient, Unreachable
from tests.integration.conftest import ADMIN, CHECKER
from tests.redis_proc import free_port
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
