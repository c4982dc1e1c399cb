"""Shared Signals: RFC 8935 push delivery of Security Event Tokens (RFC 8417).

The body is one SET (``application/secevent+jwt``) signed by a trusted transmitter
(``REVOKER_OIDC_ISSUERS``) for one of our audiences (``REVOKER_OIDC_AUDIENCE``). Events:

- CAEP ``session-revoked``: the session's ``sid`` is revoked; a subject naming only a
  user revokes that ``sub``.
- RISC ``account-disabled`` and ``credential-compromise``: the user's ``sub`` is revoked.

A ``sub`` is revoked with cutoff = the SET's ``iat`` + 1 (every token issued up to when
the transmitter spoke, at or after the event, including earlier in that second), never
"now": applying the same SET twice (a retry after a lost response, or a replay) then
changes nothing, so no replay state is needed. A SET older than the max token lifetime
(plus leeway) is refused: nothing it could revoke is still valid. A kid the transmitter's
cached JWKS does not know makes the request wait (bounded) for an immediate key read.

Subjects (RFC 9493), in the event's ``subject`` member or the SET's ``sub_id`` claim:
``iss_sub`` (sub; its iss must be the transmitter or ``REVOKER_JWT_ISSUER``), ``opaque``
(a session id for session-revoked, a user id otherwise), ``email`` (matches tokens whose
``sub`` is the address) and ``complex`` (``session`` -> sid, ``user`` -> sub).
Other event types are accepted and ignored, as RFC 8935 allows. Errors are 400
``{"err", "description"}`` with RFC 8935's codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from revoker.errors import InvalidInput, TokenError
from revoker.model import RevokeRequest, is_valid_value
from revoker.tokens import SecurityEvent, cutoff_after, security_event
from revoker.web.idp import TRUSTED, TrustedIssuers, ensure
from revoker.web.schemas import JSON, PUBLIC, problems
from revoker.web.spec import Body, Operation, Reply, declare
from revoker.web.state import SERVICE, SETTINGS

routes = web.RouteTableDef()
SET_TYPE: Final = "application/secevent+jwt"
CAEP: Final = "https://schemas.openid.net/secevent/caep/event-type/"
RISC: Final = "https://schemas.openid.net/secevent/risc/event-type/"
SESSION_REVOKED: Final = CAEP + "session-revoked"
ACCOUNT_EVENTS: Final = (RISC + "account-disabled", RISC + "credential-compromise")
#: TokenError reason -> RFC 8935 section 2.4 error code; any other is invalid_request.
PUSH: Final = Operation(
    "Shared Signals push delivery (RFC 8935) of a Security Event Token", "logout", PUBLIC,
    (Reply(202, "accepted"),
     Reply(400, "RFC 8935 error", JSON, {"type": "object", "required": ["err", "description"],
                                         "properties": {"err": {"type": "string"},
                                                        "description": {"type": "string"}}}),
     *problems(413, 503)),
    bodies=(Body(SET_TYPE, {"type": "string", "description": "a compact JWS"}),),
    description="From a trusted transmitter: CAEP session-revoked, RISC account-disabled "
                "and credential-compromise.")
ERROR_CODES: Final = {"untrusted issuer": "invalid_issuer", "unknown key": "invalid_key",
                      "bad signature": "invalid_key", "algorithm not allowed": "invalid_key",
                      "wrong audience": "invalid_audience"}


def setup(app: web.Application) -> None:
    ensure(app)


class SetError(Exception):
    """An RFC 8935 section 2.4 error: ``err`` code and a description."""

    def __init__(self, err: str, description: str) -> None:
        super().__init__(description)
        self.err = err
        self.description = description


@dataclass(frozen=True, slots=True)
class Subject:
    sub: str | None = None
    sid: str | None = None


def refuse(exc: SetError) -> web.Response:
    return web.json_response({"err": exc.err, "description": exc.description}, status=400)


async def verify_set(token: str, trusted: TrustedIssuers, *, now: float) -> SecurityEvent:
    """Signature, issuer, then the RFC 8417 claim rules (``revoker.tokens.signals``);
    each refusal becomes the RFC 8935 error code that names its cause."""
    try:
        verified = await trusted.verify(token)
        return security_event(verified.header, verified.payload, rules=trusted.rules,
                              now=now)
    except TokenError as exc:
        raise SetError(ERROR_CODES.get(exc.reason, "invalid_request"), exc.reason) from None


def subject_of(event: Any, payload: dict[str, Any], *, session_event: bool,
               issuers: frozenset[str]) -> Subject:
    subject = event.get("subject") if isinstance(event, dict) else None
    if subject is None:
        subject = payload.get("sub_id")
    if not isinstance(subject, dict):
        raise SetError("invalid_request", "the event has no subject")
    return _subject(subject, session_event=session_event, issuers=issuers)


def _subject(subject: dict[str, Any], *, session_event: bool,
             issuers: frozenset[str]) -> Subject:
    fmt = subject.get("format")
    if fmt == "iss_sub":
        if subject.get("iss") not in issuers:
            raise SetError("invalid_request", "the subject's iss issues no tokens checked here")
        return Subject(sub=_value(subject, "sub"))
    if fmt == "opaque":
        value = _value(subject, "id")
        return Subject(sid=value) if session_event else Subject(sub=value)
    if fmt == "email":
        return Subject(sub=_value(subject, "email"))
    if fmt == "complex":
        user, session = subject.get("user"), subject.get("session")
        if not isinstance(user, dict) and not isinstance(session, dict):
            raise SetError("invalid_request", "a complex subject needs user or session")
        found_user = _subject(user, session_event=False, issuers=issuers) \
            if isinstance(user, dict) else Subject()
        found_session = _subject(session, session_event=True, issuers=issuers) \
            if isinstance(session, dict) else Subject()
        return Subject(sub=found_user.sub, sid=found_session.sid or found_session.sub)
    raise SetError("invalid_request", f"unsupported subject format {str(fmt)[:40]!r}")


def _value(subject: dict[str, Any], name: str) -> str:
    value = subject.get(name)
    if not isinstance(value, str) or not is_valid_value(value):
        raise SetError("invalid_request", f"the subject's {name} is missing or invalid")
    return value


def revocations(signal: SecurityEvent, *, now: float, issuers: frozenset[str]
                ) -> list[RevokeRequest]:
    cutoff = cutoff_after(signal.iat, now=now)
    payload = signal.payload
    wanted: list[RevokeRequest] = []
    for event_type, event in signal.events.items():
        if event_type not in ACCOUNT_EVENTS and event_type != SESSION_REVOKED:
            continue
        session_event = event_type == SESSION_REVOKED
        subject = subject_of(event, payload, session_event=session_event, issuers=issuers)
        reason = event_type.rsplit("/", 1)[-1]
        if session_event and subject.sid is not None:
            wanted.append(RevokeRequest(kind="sid", value=subject.sid, reason=reason))
        elif subject.sub is not None:
            wanted.append(RevokeRequest(kind="sub", value=subject.sub, issued_before=cutoff,
                                        reason=reason))
        else:
            raise SetError("invalid_request", f"{reason} needs a user subject")
    return wanted


@routes.post("/ssf/events")
@declare(PUSH)
async def receive(request: web.Request) -> web.Response:
    try:
        return await _receive(request)
    except SetError as exc:
        return refuse(exc)


async def _receive(request: web.Request) -> web.Response:
    if request.content_type != SET_TYPE:
        raise SetError("invalid_request", f"the body must be {SET_TYPE}")
    raw = await request.read()
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise SetError("invalid_request", "the body is not a compact JWS") from None
    service, trusted = request.app[SERVICE], request.app[TRUSTED]
    now = service.clock()
    signal = await verify_set(token, trusted, now=now)
    issuer = signal.issuer
    settings = request.app[SETTINGS]
    issuers = frozenset(i for i in (issuer, settings.jwt_issuer) if i)
    wanted = revocations(signal, now=now, issuers=issuers)
    if wanted:
        outcomes = await service.revoke_many(wanted, actor="ssf:" + issuer[:200], source="ssf")
        bad = [o for o in outcomes if isinstance(o, InvalidInput)]
        if bad:
            raise SetError("invalid_request", str(bad[0]))
    return web.Response(status=202)
