"""Subject identifiers (RFC 9493) and what revoking them means: the one place where a
``sub_id`` becomes revocations, shared by Shared Signals (push and poll delivery) and
Global Token Revocation.

A subject is read into what it names: a user (``iss_sub``, ``email``, or the ``user``
member of a ``complex`` subject), a session (the ``session`` member), an application
(the ``application`` member) or an ``opaque`` id, whose meaning depends on what is asked
of it: the session for ``session``, the user for ``subject``, the client for ``client``
and the signing key for ``key``. An ``iss_sub`` counts only when its issuer's tokens are
checked here (a trusted transmitter or ``REVOKER_JWT_ISSUER``): its ``sub`` would
otherwise name a different person in another issuer's namespace.

Pure rules, no I/O: the routes turn ``SubjectError`` into their protocol's answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from revoker.config import SSF_ACTIONS
from revoker.model import RevokeRequest, is_valid_value

#: SubjectError.problem values.
MALFORMED: Final = "malformed"
UNSUPPORTED: Final = "unsupported"
UNKNOWN_ISSUER: Final = "unknown issuer"
UNUSABLE: Final = "unusable"
#: What ``revocations`` can be asked to do (validated in ``revoker.config``).
ACTIONS: Final = SSF_ACTIONS


class SubjectError(Exception):
    """A subject that cannot be acted on: ``problem`` is one of the constants above."""

    def __init__(self, problem: str, description: str) -> None:
        super().__init__(description)
        self.problem = problem
        self.description = description


@dataclass(frozen=True, slots=True)
class Subject:
    """What one subject identifier names; any member may be absent."""

    user: str | None = None
    session: str | None = None
    application: str | None = None
    opaque: str | None = None


def parse_subject(raw: Any, *, issuers: frozenset[str]) -> Subject:
    """Read an RFC 9493 subject identifier. ``issuers``: whose ``iss_sub`` we honour."""
    if not isinstance(raw, dict):
        raise SubjectError(MALFORMED, "the subject identifier must be a JSON object")
    fmt = raw.get("format")
    if fmt == "complex":
        return _complex(raw, issuers=issuers)
    if fmt == "opaque":
        return Subject(opaque=_value(raw, "id"))
    return Subject(user=_user(raw, issuers=issuers))


def _user(raw: Any, *, issuers: frozenset[str]) -> str:
    if not isinstance(raw, dict):
        raise SubjectError(MALFORMED, "a subject member must be a JSON object")
    fmt = raw.get("format")
    if fmt == "iss_sub":
        iss = raw.get("iss")
        if not isinstance(iss, str) or not iss:
            raise SubjectError(MALFORMED, "an iss_sub subject needs iss")
        subject = _value(raw, "sub")
        if iss not in issuers:
            raise SubjectError(UNKNOWN_ISSUER, "the subject's iss issues no tokens checked here")
        return subject
    if fmt == "email":
        return _value(raw, "email")
    if fmt == "opaque":
        return _value(raw, "id")
    if not isinstance(fmt, str) or not fmt:
        raise SubjectError(MALFORMED, "the subject identifier has no format")
    raise SubjectError(UNSUPPORTED, f"unsupported subject format {fmt[:40]!r}")


def _complex(raw: dict[str, Any], *, issuers: frozenset[str]) -> Subject:
    user, session, application = (raw.get(m) for m in ("user", "session", "application"))
    if user is None and session is None and application is None:
        raise SubjectError(UNUSABLE, "a complex subject needs user, session or application")
    return Subject(user=None if user is None else _user(user, issuers=issuers),
                   session=None if session is None else _opaque_member(session, "session"),
                   application=None if application is None
                   else _opaque_member(application, "application"))


def _opaque_member(raw: Any, name: str) -> str:
    if not isinstance(raw, dict) or raw.get("format") != "opaque":
        raise SubjectError(UNSUPPORTED, f"the {name} member must be an opaque identifier")
    return _value(raw, "id")


def _value(raw: dict[str, Any], name: str) -> str:
    value = raw.get(name)
    if not isinstance(value, str) or not is_valid_value(value):
        raise SubjectError(MALFORMED, f"the subject's {name} is missing or invalid")
    return value


def revocations(subject: Subject, action: str, *, cutoff: int | None,
                reason: str) -> list[RevokeRequest]:
    """What ``action`` revokes for ``subject``. ``cutoff`` is the ``issued_before`` of user
    and client revocations (None: the end of the current second)."""
    if action == "ignore":
        return []
    if action == "session":
        session = subject.session or subject.opaque
        if session is not None:
            return [RevokeRequest(kind="sid", value=session, reason=reason)]
        if subject.user is not None:
            return [_cut("sub", subject.user, cutoff, reason)]
        raise SubjectError(UNUSABLE, f"{reason} needs a session or user subject")
    if action == "subject":
        user = subject.user or subject.opaque
        if user is None:
            raise SubjectError(UNUSABLE, f"{reason} needs a user subject")
        return [_cut("sub", user, cutoff, reason)]
    if action == "client":
        client = subject.application or subject.opaque
        if client is None:
            raise SubjectError(UNUSABLE, f"{reason} needs an application or opaque subject")
        return [_cut("client", client, cutoff, reason)]
    if action == "key":
        if subject.opaque is None:
            raise SubjectError(UNUSABLE, f"{reason} needs an opaque subject naming a key id")
        return [RevokeRequest(kind="kid", value=subject.opaque, reason=reason)]
    raise ValueError(f"unknown action {action!r}")  # config.py refuses these at start


def _cut(kind: str, value: str, cutoff: int | None, reason: str) -> RevokeRequest:
    return RevokeRequest(kind=kind, value=value, issued_before=cutoff, reason=reason)
