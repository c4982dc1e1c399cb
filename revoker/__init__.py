"""revoker: a shared, self-expiring denylist for JWTs, stored in Redis."""

__version__ = "0.1.0"
