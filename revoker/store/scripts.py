"""The Lua scripts (``lua/*.lua``, shipped as package data) and their SHA1 digests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Final


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    source: str

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()


def _load(name: str) -> Script:
    source = resources.files("revoker.store").joinpath("lua", f"{name}.lua").read_text("utf-8")
    return Script(name, source)


UPSERT: Final = _load("upsert")
DELETE: Final = _load("delete")
LOOKUP: Final = _load("lookup")
SCRIPTS: Final = (UPSERT, DELETE, LOOKUP)
