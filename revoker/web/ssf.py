"""Shared Signals: Security Event Tokens (RFC 8417) from a trusted transmitter, delivered
by push (RFC 8935, ``POST /ssf/events``) or poll (RFC 8936, ``revoker.web.ssf_poll``).

Both deliveries go through ``Receiver.apply``: the SET is signed by a trusted
transmitter (``REVOKER_OIDC_ISSUERS``) for one of our audiences
(``REVOKER_OIDC_AUDIENCE``), and each event is then acted on as
``REVOKER_SSF_EVENT_ACTIONS`` says, on top of these defaults (today's behaviour):

- CAEP ``session-revoked`` -> ``session``: the session's ``sid``; a subject naming only a
  user revokes that ``sub``.
- RISC ``account-disabled`` and ``credential-compromise`` -> ``subject``: the user's ``sub``.

Other actions: ``client`` (the ``client`` kind, from an ``application`` or ``opaque``
subject), ``key`` (a signing key's ``kid``, from an ``opaque`` subject) and ``ignore``.
Event types with no action are accepted and ignored, as RFC 8935 allows; every event is
counted in ``revoker_ssf_events_total`` by type and outcome.

A ``sub`` or ``client`` is revoked with cutoff = the SET's ``iat`` + 1 (every token issued
up to when the transmitter spoke, including earlier in that second), never "now":
applying the same SET twice (a retry after a lost response, a redelivery, a replay) then
changes nothing, and SETs applied out of order end with the same state, so no replay state
is needed. A SET older than the max token lifetime (plus leeway) is refused: nothing it
could revoke is still valid. A kid the transmitter's cached JWKS does not know makes the
delivery wait (bounded) for an immediate key read.

Subjects (RFC 9493), in the event's ``subject`` member or the SET's ``sub_id`` claim, are
read by ``revoker.subjects``, shared with Global Token Revocation. Errors are RFC 8935 /
8936 ``{"err", "description"}`` with their codes; a push answers them with a 400.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from revoker import metrics
from revoker.config import Settings
from revoker.errors import InvalidInput, TokenError
from revoker.model import RevokeRequest
from revoker.service import Revoker
from revoker.subjects import SubjectError, parse_subject, revocations
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
SSF: Final = "https://schemas.openid.net/secevent/ssf/event-type/"
#: Event type -> action when ``REVOKER_SSF_EVENT_ACTIONS`` does not say otherwise. The
#: Shared Signals stream events (verification, stream updated) revoke nothing; they are
#: listed so that they are counted under their own names.
DEFAULT_ACTIONS: Final = {SESSION_REVOKED: "session", ACCOUNT_EVENTS[0]: "subject",
                          ACCOUNT_EVENTS[1]: "subject", SSF + "verification": "ignore",
                          SSF + "stream-updated": "ignore"}
#: The metric's label for event types that have no action (unbounded otherwise).
OTHER_EVENT: Final = "other"
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


class SetError(Exception):
    """An RFC 8935 section 2.4 error: ``err`` code and a description."""

    def __init__(self, err: str, description: str) -> None:
        super().__init__(description)
        self.err = err
        self.description = description

    def as_json(self) -> dict[str, str]:
        return {"err": self.err, "description": self.description}


def event_actions(settings: Settings) -> dict[str, str]:
    """The defaults, overridden event type by event type by the configuration."""
    return {**DEFAULT_ACTIONS, **dict(settings.ssf_event_actions)}


@dataclass(frozen=True, slots=True)
class Planned:
    """One event of a SET: its metric label, what happens to it, what it revokes."""

    label: str
    outcome: str
    wanted: list[RevokeRequest]


@dataclass(frozen=True, slots=True)
class Receiver:
    """Everything applying a SET needs, built once per application; push and poll
    delivery both call ``apply``, so both validate and act identically."""

    service: Revoker
    trusted: TrustedIssuers
    actions: dict[str, str]
    jwt_issuer: str | None
    #: Shown every SET once it is applied: stream management watches for the
    #: verification and stream-updated events of its stream here.
    observers: list[Callable[[SecurityEvent], None]] = field(default_factory=list)

    async def apply(self, token: str, *, delivery: str) -> None:
        """Verify the SET and make its revocations; raises ``SetError`` when it is
        refused (nothing is revoked then) and ``StoreError`` when the store fails."""
        now = self.service.clock()
        signal = await verify_set(token, self.trusted, now=now)
        issuers = frozenset(i for i in (signal.issuer, self.jwt_issuer) if i)
        planned = self.plan(signal, now=now, issuers=issuers, delivery=delivery)
        wanted = [request for event in planned for request in event.wanted]
        if wanted:
            outcomes = await self.service.revoke_many(
                wanted, actor="ssf:" + signal.issuer[:200], source="ssf")
            bad = [o for o in outcomes if isinstance(o, InvalidInput)]
            if bad:
                raise SetError("invalid_request", str(bad[0]))
        for event in planned:
            metrics.SSF_EVENTS.labels(event_type=event.label, outcome=event.outcome,
                                      delivery=delivery).inc()
        for observe in self.observers:
            observe(signal)

    def plan(self, signal: SecurityEvent, *, now: float, issuers: frozenset[str],
             delivery: str) -> list[Planned]:
        """Every event's action, decided before anything is revoked: one unusable event
        refuses the whole SET (RFC 8935 answers for the SET, not per event)."""
        cutoff = cutoff_after(signal.iat, now=now)
        planned = []
        for event_type, event in signal.events.items():
            action = self.actions.get(event_type, "ignore")
            label = event_type if event_type in self.actions else OTHER_EVENT
            if action == "ignore":
                planned.append(Planned(label, "ignored", []))
                continue
            try:
                subject = parse_subject(_raw_subject(event, signal.payload), issuers=issuers)
                wanted = revocations(subject, action, cutoff=cutoff,
                                     reason=event_type.rsplit("/", 1)[-1])
            except SubjectError as exc:
                metrics.SSF_EVENTS.labels(event_type=label, outcome="refused",
                                          delivery=delivery).inc()
                raise SetError("invalid_request", exc.description) from None
            planned.append(Planned(label, "applied", wanted))
        return planned


def _raw_subject(event: Any, payload: dict[str, Any]) -> Any:
    """The event's ``subject`` (CAEP / RISC), else the SET's ``sub_id`` (SSF 1.0)."""
    subject = event.get("subject") if isinstance(event, dict) else None
    if subject is None:
        subject = payload.get("sub_id")
    if subject is None:
        raise SubjectError("malformed", "the event has no subject")
    return subject


async def verify_set(token: str, trusted: TrustedIssuers, *, now: float) -> SecurityEvent:
    """Signature, issuer, then the RFC 8417 claim rules (``revoker.tokens.signals``);
    each refusal becomes the RFC 8935 error code that names its cause."""
    try:
        verified = await trusted.verify(token)
        return security_event(verified.header, verified.payload, rules=trusted.rules,
                              now=now)
    except TokenError as exc:
        raise SetError(ERROR_CODES.get(exc.reason, "invalid_request"), exc.reason) from None


RECEIVER = web.AppKey("ssf_receiver", Receiver)


def setup(app: web.Application) -> None:
    ensure(app)
    settings = app[SETTINGS]
    app[RECEIVER] = Receiver(app[SERVICE], app[TRUSTED], event_actions(settings),
                             settings.jwt_issuer)


def refuse(exc: SetError) -> web.Response:
    return web.json_response(exc.as_json(), status=400)


@routes.post("/ssf/events")
@declare(PUSH)
async def receive(request: web.Request) -> web.Response:
    try:
        token = await _read_set(request)
        await request.app[RECEIVER].apply(token, delivery="push")
    except SetError as exc:
        return refuse(exc)
    return web.Response(status=202)


async def _read_set(request: web.Request) -> str:
    if request.content_type != SET_TYPE:
        raise SetError("invalid_request", f"the body must be {SET_TYPE}")
    raw = await request.read()
    try:
        return raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise SetError("invalid_request", "the body is not a compact JWS") from None
