"""One exception root so callers can catch everything revoker raises on purpose.

The web layer maps each leaf to one HTTP status; nothing else in the package needs
to know about HTTP.
"""

from __future__ import annotations


class RevokerError(Exception):
    """Base class of every error revoker raises deliberately."""


class ConfigError(RevokerError):
    """A configuration value is invalid; ``variable`` names it for the operator."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable
        self.message = message


class InvalidInput(RevokerError):
    """Client input breaks a rule of the contract (maps to 400)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class TooLarge(InvalidInput):
    """An input is over its size limit (maps to 413)."""


class NotFound(RevokerError):
    """The record asked for does not exist (maps to 404)."""


class TokenError(RevokerError):
    """A JWT was refused; ``reason`` is a short, stable, token-free description."""

    def __init__(self, reason: str, *, code: str = "invalid_token") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class StoreError(RevokerError):
    """The store failed in a way that is not the caller's fault."""


class StoreUnavailable(StoreError):
    """The store could not answer in time (connection refused, timeout, failover)."""


class StoreChanged(StoreError):
    """The store's server changed (a failover, a restart) in the middle of a multi-page
    read whose cursor only that server understands: the read must start over."""


class NotDurable(StoreError):
    """A write was applied but not acknowledged by enough replicas in time."""


class Unauthenticated(RevokerError):
    """No credential, or one that is not configured (maps to 401)."""


class Forbidden(RevokerError):
    """The credential is valid but lacks ``scope`` (maps to 403)."""

    def __init__(self, message: str, *, scope: str) -> None:
        super().__init__(message)
        self.scope = scope


class StoreBusy(StoreError):
    """Every connection of a local pool was in use for the whole wait: this process is
    overloaded, Redis is not known to be down, so this never fails open (maps to 503)."""
