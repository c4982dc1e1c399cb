"""A drop-in for djangorestframework-simplejwt's blacklist: revocations live in revoker,
shared by every service, instead of in this application's database.

    SIMPLE_JWT = {"AUTH_TOKEN_CLASSES": ("revoker.sdk.simplejwt.RevokerAccessToken",)}
    REVOKER = {"url": "http://revoker:8080", "key": env("REVOKER_KEY")}   # see .django

simplejwt still validates the token (its own signing key and rules); ``verify`` then
refuses a token that revoker has revoked (by jti, sub, sid, kid or client), as
``BlacklistMixin.check_blacklist`` did, with the same error. ``blacklist()`` revokes
the token's jti in revoker (the key needs the ``revoke`` scope).
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _  # type: ignore[import-untyped]
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import (
    AccessToken,
    RefreshToken,
)

from revoker.sdk.django import guard


class RevokerBlacklistMixin:
    payload: dict[str, Any]
    token: bytes | str | None

    def check_blacklist(self) -> None:
        if guard().is_revoked({}, self.payload):
            raise TokenError(_("Token is blacklisted"))

    def verify(self) -> None:
        super().verify()  # type: ignore[misc]
        self.check_blacklist()

    def blacklist(self) -> None:
        """Revoke this token's jti until its exp, for every service that asks revoker."""
        guard().sync.revoke("jti", str(self.payload["jti"]),
                            expires_at=int(self.payload["exp"]))


class RevokerAccessToken(RevokerBlacklistMixin, AccessToken):  # type: ignore[misc]
    pass


class RevokerRefreshToken(RevokerBlacklistMixin, RefreshToken):  # type: ignore[misc]
    pass
