"""docs/api.md lists exactly the routes, methods and query parameters of the generated
OpenAPI document, so the written reference cannot drift from the service."""

from __future__ import annotations

import re
from pathlib import Path

from revoker.config import Settings
from revoker.web.app import create_app
from revoker.web.openapi import build_document

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
HEADING = re.compile(r"^### (.+)$", re.M)
ROUTE = re.compile(r"`([A-Z]+) (/[^`]*)`")
METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


def documented() -> dict[tuple[str, str], str]:
    """(METHOD, path) -> the text of its section; ``ANY`` stands for every method."""
    text = DOC.read_text()
    sections: dict[tuple[str, str], str] = {}
    parts = HEADING.split(text)
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        for method, path in ROUTE.findall(heading):
            sections[(method, path)] = body
    return sections


def generated() -> dict[tuple[str, str], list[str]]:
    """(METHOD, path) -> its query parameter names, from the served document."""
    document = build_document(create_app(Settings.from_env({})).router)
    out: dict[tuple[str, str], list[str]] = {}
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                out[(method.upper(), path)] = [p["name"] for p in item[method].get(
                    "parameters", []) if p["in"] == "query"]
    return out


def test_the_reference_lists_every_route_and_no_other() -> None:
    doc, api = documented(), generated()
    any_paths = {path for method, path in doc if method == "ANY"}
    expanded = {(m, p) for (m, p) in api if p in any_paths} | {
        key for key in doc if key[0] != "ANY"}
    assert expanded == set(api), (sorted(set(api) - expanded), sorted(expanded - set(api)))


def test_every_query_parameter_is_named_in_its_section() -> None:
    doc = documented()
    for (method, path), names in generated().items():
        body = doc.get((method, path)) or doc.get(("ANY", path), "")
        missing = [name for name in names if f"`{name}`" not in body]
        assert missing == [], f"{method} {path}: {missing}"
