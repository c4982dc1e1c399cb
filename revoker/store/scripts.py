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


def _read_script(name: str) -> Script:
    source = resources.files("revoker.store").joinpath("lua", f"{name}.lua").read_text("utf-8")
    return Script(name, source)


UPSERT: Final = _read_script("upsert")
DELETE: Final = _read_script("delete")
LOOKUP: Final = _read_script("lookup")
EXPORT: Final = _read_script("export")
SCRIPTS: Final = (UPSERT, DELETE, LOOKUP, EXPORT)
