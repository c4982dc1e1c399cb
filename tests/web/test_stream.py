"""GET /v1/events/stream: Server-Sent Events, resume with Last-Event-ID, heartbeats."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from aiohttp import ClientPayloadError, ClientResponse

from revoker.web.state import SERVICE
from revoker.web.stream import STREAM_OPTIONS
from tests.web.conftest import ADMIN_KEY, CHECK_KEY, auth


async def read_message(resp: ClientResponse, *, timeout_s: float = 5.0) -> dict[str, str]:
    """The next SSE block (fields up to a blank line); comments go under ``comment``."""
    message: dict[str, str] = {}
    async with asyncio.timeout(timeout_s):
        while True:
            line = (await resp.content.readline()).decode()
            if line in ("\n", ""):
                if message or line == "":
                    return message
                continue
            name, _, value = line.rstrip("\n").partition(":")
            message[name or "comment"] = value.removeprefix(" ")


async def next_event(resp: ClientResponse) -> dict[str, Any]:
    while True:
        message = await read_message(resp)
        if "data" in message:
            return {"id": message["id"], "event": message["event"],
                    "data": json.loads(message["data"])}


async def revoke(client: Any, value: str) -> None:
    resp = await client.post("/v1/revocations", json={"kind": "jti", "value": value,
                                                      "ttl": 600}, headers=auth(ADMIN_KEY))
    assert resp.status == 201, await resp.text()


async def test_stream_needs_a_check_key(client):
    resp = await client.get("/v1/events/stream")
    assert resp.status == 401
    assert resp.content_type == "application/problem+json"


async def test_bad_last_event_id_is_400(client):
    resp = await client.get("/v1/events/stream",
                            headers={**auth(CHECK_KEY), "Last-Event-ID": "not-an-id"})
    assert resp.status == 400


async def test_new_events_arrive_live(client):
    resp = await client.get("/v1/events/stream", headers=auth(CHECK_KEY))
    assert resp.status == 200
    assert resp.content_type == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-store"
    first = await read_message(resp)
    assert first == {"retry": "2000"}
    await revoke(client, "live-1")
    event = await next_event(resp)
    assert event["event"] == "revoked"
    assert event["data"]["record"]["value"] == "live-1"
    assert event["data"]["id"] == event["id"]
    resp.close()


async def test_without_start_only_new_events_are_sent(client):
    await revoke(client, "old")
    resp = await client.get("/v1/events/stream", headers=auth(CHECK_KEY))
    await read_message(resp)
    await revoke(client, "new")
    event = await next_event(resp)
    assert event["data"]["record"]["value"] == "new"
    resp.close()


async def test_after_zero_replays_history(client):
    for value in ("h1", "h2"):
        await revoke(client, value)
    resp = await client.get("/v1/events/stream?after=0", headers=auth(CHECK_KEY))
    values = [(await next_event(resp))["data"]["record"]["value"] for _ in range(2)]
    assert values == ["h1", "h2"]
    resp.close()


async def test_resume_after_disconnect_loses_nothing(client):
    resp = await client.get("/v1/events/stream", headers=auth(CHECK_KEY))
    await read_message(resp)
    await revoke(client, "before-drop")
    seen = await next_event(resp)
    resp.close()
    for value in ("missed-1", "missed-2", "missed-3"):
        await revoke(client, value)
    resp = await client.get("/v1/events/stream",
                            headers={**auth(CHECK_KEY), "Last-Event-ID": seen["id"]})
    got = [await next_event(resp) for _ in range(3)]
    assert [e["data"]["record"]["value"] for e in got] == ["missed-1", "missed-2", "missed-3"]
    ids = [seen["id"], *(e["id"] for e in got)]
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))
    assert len(set(ids)) == 4
    resp.close()


async def test_unrevoke_events_are_streamed(client):
    await revoke(client, "gone")
    resp = await client.get("/v1/events/stream", headers=auth(CHECK_KEY))
    await read_message(resp)
    deleted = await client.delete("/v1/revocations/jti/gone", headers=auth(ADMIN_KEY))
    assert deleted.status == 204
    event = await next_event(resp)
    assert event["event"] == "unrevoked"
    assert event["data"]["record"]["value"] == "gone"
    resp.close()


async def test_heartbeats_when_quiet(client):
    client.app[STREAM_OPTIONS].heartbeat_s = 0.1
    client.app[STREAM_OPTIONS].poll_s = 0.05
    resp = await client.get("/v1/events/stream", headers=auth(CHECK_KEY))
    await read_message(resp)
    started = time.monotonic()
    beats = [await read_message(resp) for _ in range(2)]
    assert beats == [{"comment": "heartbeat"}] * 2
    assert time.monotonic() - started < 3
    resp.close()


async def test_slow_consumer_is_cut_off_and_can_resume(make_client):
    """A consumer that stops reading is disconnected instead of buffering without bound."""
    client = await make_client("memory://")
    options = client.app[STREAM_OPTIONS]
    options.write_timeout_s = 0.3
    resp = await client.get("/v1/events/stream?after=0", headers=auth(CHECK_KEY))
    pad = "v" * 450
    for batch_no in range(16):  # ~13 MB of events: more than every socket buffer holds
        items = [{"kind": "jti", "value": f"bulk-{batch_no}-{i}-{pad}", "ttl": 600,
                  "reason": "r" * 250} for i in range(1000)]
        batch = await client.post("/v1/revocations/batch", json={"items": items},
                                  headers=auth(ADMIN_KEY))
        assert batch.status == 200
    await asyncio.sleep(1.0)  # not reading: the server's write times out meanwhile
    received = 0
    with contextlib.suppress(ClientPayloadError):  # the cut shows as a truncated body
        async with asyncio.timeout(10):
            while chunk := await resp.content.read(1 << 20):
                received += len(chunk)
    assert 0 < received < 13_000_000
    resp.close()
    again = await client.get("/v1/events/stream?after=0", headers=auth(CHECK_KEY))
    event = await next_event(again)
    assert event["data"]["record"]["value"].startswith("bulk-0-0-")
    again.close()


async def test_history_joins_the_live_feed_without_gap_or_duplicate(client):
    """Events written while a stream replays its history arrive once each, in order."""
    for i in range(30):
        await revoke(client, f"past-{i:02d}")
    live = await client.get("/v1/events/stream", headers=auth(CHECK_KEY))  # starts the feed
    await read_message(live)
    resp = await client.get("/v1/events/stream?after=0", headers=auth(CHECK_KEY))
    writer = asyncio.create_task(_revoke_all(client, [f"new-{i:02d}" for i in range(30)]))
    got = [(await next_event(resp))["data"]["record"]["value"] for _ in range(60)]
    await writer
    assert got == [f"past-{i:02d}" for i in range(30)] + [f"new-{i:02d}" for i in range(30)]
    resp.close()
    live.close()


async def _revoke_all(client: Any, values: list[str]) -> None:
    for value in values:
        await revoke(client, value)


async def test_streams_beyond_the_bound_get_503_with_retry_after(make_client):
    client = await make_client("memory://", REVOKER_MAX_STREAMS="1")
    first = await client.get("/v1/events/stream", headers=auth(CHECK_KEY))
    assert first.status == 200
    await read_message(first)
    second = await client.get("/v1/events/stream", headers=auth(CHECK_KEY))
    assert second.status == 503
    assert second.content_type == "application/problem+json"
    assert int(second.headers["Retry-After"]) > 0
    first.close()
    deadline = time.monotonic() + 5
    while True:  # the slot is freed once the server notices the client left
        again = await client.get("/v1/events/stream", headers=auth(CHECK_KEY))
        if again.status == 200:
            again.close()
            break
        assert time.monotonic() < deadline, "a closed stream kept its slot"
        await asyncio.sleep(0.05)


async def test_every_stream_of_a_worker_shares_one_feed(client):
    streams = [await client.get("/v1/events/stream", headers=auth(CHECK_KEY))
               for _ in range(5)]
    for resp in streams:
        await read_message(resp)
    feed = client.app[SERVICE].feed
    assert feed.subscribers == 5
    await revoke(client, "fanned-out")
    for resp in streams:
        assert (await next_event(resp))["data"]["record"]["value"] == "fanned-out"
        resp.close()
