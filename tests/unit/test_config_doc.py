"""The configuration table of the README lists exactly the variables the code reads,
each with the default the code really uses."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from revoker.config import _PARSERS, CLIENT_VARIABLES, Settings

DOC = Path(__file__).resolve().parents[2] / "README.md"
ROW_RE = re.compile(r"^\|\s*`(REVOKER_[A-Z0-9_]+)`\s*\|\s*([^|]*?)\s*\|\s*([^|]*?)\s*\|\s*$")
UNSET = "—"


def documented() -> dict[str, tuple[str, str]]:
    """variable -> (default cell, meaning cell), from the configuration section only."""
    text = DOC.read_text()
    section = text.split("### Configuration", 1)[1].split("\n### ", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        match = ROW_RE.match(line)
        if match:
            name, default, meaning = match.groups()
            assert name not in rows, f"{name} is listed twice"
            rows[name] = (default.strip("`"), meaning)
    return rows


def as_doc(value: Any) -> str:
    """How a default is written in the table."""
    if value is None or value == ():
        return UNSET
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def test_the_table_lists_exactly_the_known_variables() -> None:
    rows = documented()
    assert set(rows) - set(_PARSERS) == set(), "documented but unknown to config.py"
    assert set(_PARSERS) - set(rows) == set(), "known to config.py but not documented"


def test_every_default_is_the_one_the_code_uses() -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    for name, (default, meaning) in documented().items():
        attr = _PARSERS[name][0]
        assert meaning, f"{name} has no meaning"
        expected = as_doc(defaults.get(attr))  # REVOKER_API_KEYS_FILE has no field: unset
        assert default == expected, f"{name}: documented {default!r}, code {expected!r}"



def test_the_client_variables_are_documented() -> None:
    """They are not settings (not in the table), but the unknown-variable check allows
    them, so a user must be able to find what they mean."""
    text = DOC.read_text()
    for name in CLIENT_VARIABLES:
        assert f"`{name}`" in text, f"{name} is not mentioned in the README"
