"""The refusal every integration sends: RFC 9457 problem JSON, with RFC 6750's challenge
on a 401 and ``Retry-After`` on a 503. Framework-free, so each integration only adapts
it to its own response type."""

from __future__ import annotations

import json
from typing import Final

from revoker.sdk.guard import Outcome

PROBLEM: Final = "application/problem+json"
TITLES: Final = {401: "Unauthorized", 503: "Service Unavailable"}
#: Seconds a client is told to wait when nobody can tell whether its token is revoked.
RETRY_AFTER_S: Final = "1"


def refusal(outcome: Outcome) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of the answer to a request that is not let through."""
    status = outcome.http_status
    detail = outcome.reason or TITLES[status].lower()
    body = json.dumps({"type": "about:blank", "title": TITLES[status], "status": status,
                       "detail": detail}).encode()
    headers = [("Content-Type", PROBLEM), ("Cache-Control", "no-store")]
    if status == 401:
        headers.append(("WWW-Authenticate", outcome.challenge()))
    else:
        headers.append(("Retry-After", RETRY_AFTER_S))
    return status, headers, body
