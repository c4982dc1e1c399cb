"""JSON for every layer: orjson when installed (the ``fast`` extra), else the stdlib.

The service runs with its four runtime dependencies alone; orjson only makes encoding
HTTP answers and decoding stored records (every mirrored event, every record read) faster.
Stored records are still *written* by ``Record.to_json`` with the stdlib, so the bytes
Redis holds do not depend on which is installed.
"""

from __future__ import annotations

import json
from typing import Any

#: The one writer of stored records' JSON (``Record.to_json``, ``codec.compact_json``):
#: compact, UTF-8 left as is. One encoder for every call: ``json.dumps`` with options
#: builds a new ``JSONEncoder`` each time, a quarter to a third of a record's cost.
encode_stored = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

try:
    import orjson

    def dumps(data: Any) -> bytes:
        return orjson.dumps(data)

    def loads(raw: str | bytes) -> Any:
        return orjson.loads(raw)

    DECODE_ERRORS: tuple[type[Exception], ...] = (orjson.JSONDecodeError, RecursionError)
except ImportError:  # pragma: no cover - exercised only without the fast extra
    def dumps(data: Any) -> bytes:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()

    def loads(raw: str | bytes) -> Any:
        return json.loads(raw)

    DECODE_ERRORS = (ValueError, RecursionError)
