"""Everything about JWTs, and the only package that imports ``jwt``.

Modelled on PyJWT's own split: key material (``keys``), JWKS fetching and caching
(``jwks``), claim readers shared by every format (``claims``: one NumericDate parser),
reading a token before verifying it (``unverified``), access-token validation
(``validate``) and, beside it, the claim rules of the signals identity providers send
(``signals``: logout tokens and Security Event Tokens). Only PyJWT's public API is used.
The names other modules import are re-exported here.
"""

from revoker.tokens.claims import audience_ok, cutoff_after, identifier, numeric_date
from revoker.tokens.jwks import MAX_JWKS_BYTES, JwksKeys, KeySets
from revoker.tokens.keys import (
    MIN_RSA_BITS,
    KeyChain,
    KeySource,
    PublicKey,
    StaticKeys,
    key_fits,
    load_public_key,
    parse_jwks,
    thumbprint,
)
from revoker.tokens.signals import (
    LogoutToken,
    SecurityEvent,
    SignalRules,
    logout_token,
    security_event,
)
from revoker.tokens.unverified import MAX_TOKEN_BYTES, check_size, peek, read_header
from revoker.tokens.validate import (
    ALWAYS_REQUIRED,
    LOOKUP_CLAIMS,
    REASONS,
    TokenValidator,
    Verified,
    key_sets_from_settings,
)

__all__ = [
    "ALWAYS_REQUIRED",
    "LOOKUP_CLAIMS",
    "MAX_JWKS_BYTES",
    "MAX_TOKEN_BYTES",
    "MIN_RSA_BITS",
    "REASONS",
    "JwksKeys",
    "KeyChain",
    "KeySets",
    "KeySource",
    "LogoutToken",
    "PublicKey",
    "SecurityEvent",
    "SignalRules",
    "StaticKeys",
    "TokenValidator",
    "Verified",
    "audience_ok",
    "check_size",
    "cutoff_after",
    "identifier",
    "key_fits",
    "key_sets_from_settings",
    "load_public_key",
    "logout_token",
    "numeric_date",
    "parse_jwks",
    "peek",
    "read_header",
    "security_event",
    "thumbprint",
]
