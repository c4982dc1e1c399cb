"""docs/security.md names, for each attack, the test that keeps it fixed: every test it
names exists, so the page cannot point at a test that was renamed or removed."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "security.md"
REF = re.compile(r"::(test_\w+)")


def defined_tests() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        names.update(re.findall(r"^(?:async )?def (test_\w+)", path.read_text(), re.M))
    return names


def test_every_named_test_exists() -> None:
    named = set(REF.findall(DOC.read_text()))
    assert len(named) >= 20
    assert named <= defined_tests(), sorted(named - defined_tests())


def test_every_security_test_module_is_cited() -> None:
    text = DOC.read_text()
    modules = sorted(p.name for p in (ROOT / "tests" / "security").glob("test_*.py"))
    assert modules
    assert [m for m in modules if m not in text] == []
