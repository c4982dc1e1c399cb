"""What applications import to enforce revocations in their own process.

- ``RevokerClient`` / ``SyncRevokerClient``: the HTTP API, async and synchronous;
- ``Mirror``: a copy of the denylist fed over HTTP, with bounded staleness;
- ``Guard``: one decision per bearer token (validate here and check the copy, or
  delegate both to ``/v1/authz``), used by the integrations: ``revoker.sdk.asgi``
  (Starlette, FastAPI), ``revoker.sdk.aiohttp``, ``revoker.sdk.wsgi`` (Flask, Django),
  ``revoker.sdk.django`` (Django REST framework), ``revoker.sdk.flask_jwt``
  (flask-jwt-extended) and ``revoker.sdk.simplejwt``.

Nothing here imports the service's modules that need Redis or Prometheus; a framework
is imported only by its own integration module.
"""

from revoker.sdk.client import (
    ApiError,
    AuthError,
    Authz,
    Check,
    ClientError,
    RevokerClient,
    Unreachable,
)
from revoker.sdk.guard import DEGRADED_HEADER, Guard, Outcome, bearer
from revoker.sdk.mirror import Mirror
from revoker.sdk.sync import SyncRevokerClient
from revoker.sdk.verify import VerifierSettings

__all__ = [
    "DEGRADED_HEADER",
    "ApiError",
    "AuthError",
    "Authz",
    "Check",
    "ClientError",
    "Guard",
    "Mirror",
    "Outcome",
    "RevokerClient",
    "SyncRevokerClient",
    "Unreachable",
    "VerifierSettings",
    "bearer",
]
