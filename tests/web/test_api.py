"""The HTTP API of the core service, on every backend: statuses, bodies, and no state change
on bad input."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import jwt
import pytest

from tests.web.conftest import ADMIN_KEY, CHECK_KEY, REVOKE_KEY, auth

PROBLEM = "application/problem+json"


async def revoke(client: Any, body: dict[str, Any], key: str = ADMIN_KEY) -> Any:
    return await client.post("/v1/revocations", json=body, headers=auth(key))


async def assert_problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == PROBLEM
    body = await resp.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    return body


async def assert_empty(client: Any) -> None:
    resp = await client.get("/v1/revocations", headers=auth())
    assert (await resp.json())["items"] == []
    resp = await client.get("/v1/events", headers=auth())
    assert (await resp.json())["events"] == []


async def test_health_ready_and_metrics_need_no_key(client: Any) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200 and await resp.json() == {"status": "ok"}
    resp = await client.get("/readyz")
    assert resp.status == 200 and (await resp.json())["status"] == "ready"
    resp = await client.get("/metrics")
    assert resp.status == 200 and "revoker_http_requests_total" in await resp.text()


async def test_revoke_check_read_delete_round_trip(client: Any) -> None:
    exp = int(time.time()) + 900
    resp = await revoke(client, {"kind": "jti", "value": "tok-1", "expires_at": exp,
                                 "reason": "stolen laptop"}, REVOKE_KEY)
    assert resp.status == 201
    record = await resp.json()
    assert record == {"kind": "jti", "value": "tok-1", "revoked_at": record["revoked_at"],
                      "expires_at": exp + 30, "issued_before": None,
                      "reason": "stolen laptop", "actor": "logout-hook"}
    resp = await client.get("/v1/check/tok-1", headers=auth(CHECK_KEY))
    assert await resp.json() == {"jti": "tok-1", "revoked": True, "record": record}
    resp = await client.get("/v1/check/other", headers=auth(CHECK_KEY))
    assert await resp.json() == {"jti": "other", "revoked": False, "record": None}
    resp = await client.get("/v1/revocations/jti/tok-1", headers=auth(REVOKE_KEY))
    assert resp.status == 200 and await resp.json() == record
    resp = await client.delete("/v1/revocations/jti/tok-1", headers=auth(ADMIN_KEY))
    assert resp.status == 204
    await assert_problem(await client.get("/v1/revocations/jti/tok-1", headers=auth()), 404)
    await assert_problem(await client.delete("/v1/revocations/jti/tok-1", headers=auth()), 404)
    resp = await client.get("/v1/events", headers=auth())
    events = (await resp.json())["events"]
    assert [e["type"] for e in events] == ["revoked", "unrevoked"]
    assert all(set(e) == {"id", "type", "record", "at"} for e in events)


async def test_repeat_revoke_is_200_and_keeps_later_expiry(client: Any) -> None:
    now = int(time.time())
    assert (await revoke(client, {"kind": "jti", "value": "r", "expires_at": now + 500})).status \
        == 201
    resp = await revoke(client, {"kind": "jti", "value": "r", "expires_at": now + 100})
    assert resp.status == 200 and (await resp.json())["expires_at"] == now + 530


async def test_revoke_by_token(client: Any) -> None:
    exp = int(time.time()) + 300
    token = jwt.encode({"jti": "from-token", "exp": exp, "sub": "u"}, "k" * 32, "HS256")
    resp = await revoke(client, {"token": token, "reason": "logout"})
    assert resp.status == 201
    body = await resp.json()
    assert (body["kind"], body["value"], body["expires_at"]) == ("jti", "from-token", exp + 30)
    assert token not in str(body)


async def test_expired_token_is_200_stored_false(client: Any) -> None:
    token = jwt.encode({"jti": "old", "exp": int(time.time()) - 3600}, "k" * 32, "HS256")
    resp = await revoke(client, {"token": token})
    assert resp.status == 200
    body = await resp.json()
    assert body["stored"] is False and body["value"] == "old"
    await assert_empty(client)


async def test_check_by_claims_and_token_reports_all_matches(client: Any) -> None:
    iat = int(time.time()) - 60
    for kind, value in [("jti", "j"), ("sub", "alice"), ("sid", "s1"), ("kid", "key1"),
                        ("client", "web")]:
        assert (await revoke(client, {"kind": kind, "value": value})).status == 201
    claims = {"jti": "j", "sub": "alice", "sid": "s1", "kid": "key1", "azp": "web", "iat": iat}
    resp = await client.post("/v1/check", json={"claims": claims}, headers=auth(CHECK_KEY))
    body = await resp.json()
    assert body["revoked"] is True
    assert [m["kind"] for m in body["matches"]] == ["jti", "sub", "sid", "kid", "client"]
    token = jwt.encode({"jti": "j2", "sub": "bob", "iat": iat}, "k" * 32, "HS256",
                       headers={"kid": "key1"})
    resp = await client.post("/v1/check", json={"token": token}, headers=auth(CHECK_KEY))
    body = await resp.json()
    assert body["revoked"] is True and [m["kind"] for m in body["matches"]] == ["kid"]
    resp = await client.post("/v1/check", json={"claims": {"sub": "alice", "iat": time.time()
                                                           + 5}}, headers=auth(CHECK_KEY))
    assert await resp.json() == {"revoked": False, "matches": []}


async def test_check_batch_in_order_with_bad_items(client: Any) -> None:
    await revoke(client, {"kind": "jti", "value": "b1"})
    items = [{"claims": {"jti": "b1"}}, {"claims": {"jti": "nope"}}, {"bogus": 1},
             {"claims": {"jti": "b1"}}]
    resp = await client.post("/v1/check/batch", json={"items": items}, headers=auth(CHECK_KEY))
    results = (await resp.json())["results"]
    assert [r.get("revoked") for r in results] == [True, False, None, True]
    assert results[2]["status"] == 400
    resp = await client.post("/v1/check/batch", json={"items": [{"claims": {}}] * 1001},
                             headers=auth(CHECK_KEY))
    await assert_problem(resp, 400)


async def test_revoke_batch_one_bad_item_does_not_fail_the_rest(client: Any) -> None:
    now = int(time.time())
    items = [{"kind": "jti", "value": "ok1"}, {"kind": "nope", "value": "x"},
             {"kind": "sub", "value": "u", "issued_before": now + 100},
             {"kind": "jti", "value": "gone", "expires_at": now - 100},
             {"kind": "jti", "value": "ok1"}]
    resp = await client.post("/v1/revocations/batch", json={"items": items}, headers=auth())
    assert resp.status == 200
    results = (await resp.json())["results"]
    assert [r["status"] for r in results] == [201, 400, 400, 200, 200]
    assert [r.get("stored") for r in results] == [True, None, None, False, True]
    resp = await client.get("/v1/revocations", headers=auth())
    assert [i["value"] for i in (await resp.json())["items"]] == ["ok1"]


async def test_list_pages_with_cursor(client: Any) -> None:
    items = [{"kind": "sid", "value": f"s{i}"} for i in range(25)] + [{"kind": "jti",
                                                                       "value": "j"}]
    await client.post("/v1/revocations/batch", json={"items": items}, headers=auth())
    seen, cursor = [], None
    while True:
        params = {"kind": "sid", "limit": "10", **({"cursor": cursor} if cursor else {})}
        body = await (await client.get("/v1/revocations", params=params, headers=auth())).json()
        assert len(body["items"]) <= 10
        seen += [i["value"] for i in body["items"]]
        cursor = body["cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(f"s{i}" for i in range(25))


async def test_events_paging(client: Any) -> None:
    for i in range(5):
        await revoke(client, {"kind": "jti", "value": f"e{i}"})
    body = await (await client.get("/v1/events", params={"limit": "2"}, headers=auth())).json()
    assert [e["record"]["value"] for e in body["events"]] == ["e0", "e1"]
    body = await (await client.get("/v1/events", params={"after": body["next"]},
                                   headers=auth())).json()
    assert [e["record"]["value"] for e in body["events"]] == ["e2", "e3", "e4"]
    last = body["next"]
    body = await (await client.get("/v1/events", params={"after": last}, headers=auth())).json()
    assert body == {"events": [], "next": last}


async def test_percent_encoded_values(client: Any) -> None:
    value = "user/with spaces:ü?"
    await revoke(client, {"kind": "sub", "value": value})
    from urllib.parse import quote
    resp = await client.get(f"/v1/revocations/sub/{quote(value, safe='')}", headers=auth())
    assert resp.status == 200 and (await resp.json())["value"] == value


# -- credentials ---------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "scope"), [
    ("GET", "/v1/check/x", "check"),
    ("POST", "/v1/revocations", "revoke"),
    ("GET", "/v1/revocations/jti/x", "revoke"),
    ("DELETE", "/v1/revocations/jti/x", "admin"),
    ("GET", "/v1/revocations", "admin"),
    ("GET", "/v1/events", "admin"),
])
async def test_credentials(client: Any, method: str, path: str, scope: str) -> None:
    body = {"kind": "jti", "value": "x"} if method == "POST" else None
    resp = await client.request(method, path, json=body)
    problem = await assert_problem(resp, 401)
    assert "Bearer" in resp.headers["WWW-Authenticate"] and "key" in problem["detail"]
    resp = await client.request(method, path, json=body, headers=auth("rvk_wrong"))
    await assert_problem(resp, 401)
    weaker = {"check": None, "revoke": CHECK_KEY, "admin": REVOKE_KEY}[scope]
    if weaker:
        resp = await client.request(method, path, json=body, headers=auth(weaker))
        await assert_problem(resp, 403)
        assert "insufficient_scope" in resp.headers["WWW-Authenticate"]
    resp = await client.request(method, path, json=body, headers={"X-Revoker-Key": ADMIN_KEY})
    assert resp.status < 400 or resp.status == 404
    if method == "POST":
        await client.delete("/v1/revocations/jti/x", headers=auth())


async def test_check_auth_none_opens_only_checks(make_client: Any, store_url: str) -> None:
    client = await make_client(store_url, REVOKER_CHECK_AUTH="none")
    assert (await client.get("/v1/check/x")).status == 200
    assert (await client.post("/v1/check", json={"claims": {"jti": "x"}})).status == 200
    await assert_problem(await client.post("/v1/revocations", json={"kind": "jti",
                                                                    "value": "x"}), 401)


# -- bad input: the right 4xx, never a 500, no state change ---------------------------

BAD_REVOKE_BODIES = [
    {"kind": "jti"},
    {"value": "x"},
    {"kind": "user", "value": "x"},
    {"kind": "jti", "value": ""},
    {"kind": "jti", "value": "a\nb"},
    {"kind": "jti", "value": "x" * 513},
    {"kind": "jti", "value": 5},
    {"kind": "jti", "value": "x", "expires_at": "tomorrow"},
    {"kind": "jti", "value": "x", "expires_at": True},
    {"kind": "jti", "value": "x", "expires_at": 1.5},
    {"kind": "jti", "value": "x", "ttl": -1},
    {"kind": "jti", "value": "x", "ttl": 5, "expires_at": 5},
    {"kind": "sub", "value": "x", "issued_before": 99999999999},
    {"kind": "jti", "value": "x", "reason": "r" * 257},
    {"kind": "jti", "value": "x", "reason": 7},
    {"kind": "jti", "value": "x", "extra": 1},
    {"token": "not.a.jwt"},
    {"token": ""},
    {"token": 12},
    {"token": jwt.encode({"sub": "no-jti"}, "k" * 32, "HS256")},
    [],
    "string",
    None,
]


@pytest.mark.parametrize("body", BAD_REVOKE_BODIES)
async def test_bad_revoke_bodies_are_400_and_change_nothing(client: Any, body: Any) -> None:
    resp = await client.post("/v1/revocations", data=json.dumps(body),
                             headers={**auth(), "Content-Type": "application/json"})
    await assert_problem(resp, 400)
    await assert_empty(client)


@pytest.mark.parametrize("raw", [b"{", b"\xff\xfe", b"", b"[" * 100000, b'{"kind": NaN}'])
async def test_malformed_json_is_400(client: Any, raw: bytes) -> None:
    resp = await client.post("/v1/revocations", data=raw,
                             headers={**auth(), "Content-Type": "application/json"})
    await assert_problem(resp, 400)
    await assert_empty(client)


async def test_wrong_content_type_is_415(client: Any) -> None:
    resp = await client.post("/v1/revocations", data="kind=jti&value=x",
                             headers={**auth(), "Content-Type":
                                      "application/x-www-form-urlencoded"})
    await assert_problem(resp, 415)
    await assert_empty(client)


async def test_oversize_body_is_413(client: Any) -> None:
    body = b'{"kind":"jti","value":"' + b"x" * (1024 * 1024 + 10) + b'"}'
    resp = await client.post("/v1/revocations", data=io.BytesIO(body),
                             headers={**auth(), "Content-Type": "application/json"})
    await assert_problem(resp, 413)
    await assert_empty(client)


async def test_oversize_token_is_413(client: Any) -> None:
    token = "a" * (16 * 1024 + 1) + ".b.c"
    resp = await client.post("/v1/check", json={"token": token}, headers=auth())
    await assert_problem(resp, 413)
    resp = await client.post("/v1/revocations", json={"token": token}, headers=auth())
    await assert_problem(resp, 413)
    await assert_empty(client)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/check/" + "x" * 600),
    ("GET", "/v1/check/a%00b"),
    ("GET", "/v1/revocations/nope/x"),
    ("GET", "/v1/revocations?kind=nope"),
    ("GET", "/v1/revocations?limit=0"),
    ("GET", "/v1/revocations?limit=abc"),
    ("GET", "/v1/revocations?cursor=%25%25bad"),
    ("GET", "/v1/events?after=yesterday"),
    ("GET", "/v1/events?limit=100000"),
])
async def test_bad_paths_and_queries_are_400(client: Any, method: str, path: str) -> None:
    await assert_problem(await client.request(method, path, headers=auth()), 400)


@pytest.mark.parametrize("body", [{"claims": {"jti": 5}}, {"claims": {"iat": "x"}},
                                  {"claims": "x"}, {"token": "a.b"}, {}, {"token": "x",
                                                                         "claims": {}}])
async def test_bad_check_bodies_are_400(client: Any, body: Any) -> None:
    resp = await client.post("/v1/check", json=body, headers=auth(CHECK_KEY))
    await assert_problem(resp, 400)


async def test_unknown_route_404_and_wrong_method_405(client: Any) -> None:
    await assert_problem(await client.get("/v2/nothing"), 404)
    resp = await client.put("/v1/revocations", headers=auth())
    await assert_problem(resp, 405)
    assert "POST" in resp.headers["Allow"]


async def test_request_id_is_echoed_or_generated(client: Any) -> None:
    resp = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert resp.headers["X-Request-Id"] == "abc-123"
    resp = await client.get("/healthz", headers={"X-Request-Id": "bad id\u00e9"})
    generated = resp.headers["X-Request-Id"]
    assert generated != "bad id\u00e9" and len(generated) == 32
