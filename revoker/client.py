"""The HTTP client, kept importable here for the admin CLI and existing applications.

It lives in ``revoker.sdk.client`` with the rest of what applications import.
"""

from revoker.sdk.client import (
    DEFAULT_URL,
    ApiError,
    AuthError,
    Authz,
    BatchItem,
    Check,
    ClientError,
    EventPage,
    Page,
    Revocation,
    RevokerClient,
    Unreachable,
    event_from,
    record_from,
)

__all__ = [
    "DEFAULT_URL",
    "ApiError",
    "AuthError",
    "Authz",
    "BatchItem",
    "Check",
    "ClientError",
    "EventPage",
    "Page",
    "Revocation",
    "RevokerClient",
    "Unreachable",
    "event_from",
    "record_from",
]
