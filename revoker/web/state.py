"""Typed application state: every shared object of the web layer has one ``AppKey``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from revoker.apikeys import KeyRing
from revoker.config import Settings
from revoker.service import Revoker
from revoker.store import Store
from revoker.tokens import TokenValidator

#: A readiness probe: returns (ok, name, detail). Modules with local state add one.
ReadinessCheck = Callable[[], Awaitable[tuple[bool, str, Any]]]

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
SERVICE = web.AppKey("service", Revoker)
KEYRING = web.AppKey("keyring", KeyRing)
READINESS = web.AppKey("readiness", list[ReadinessCheck])
VALIDATOR = web.AppKey("validator", TokenValidator)
