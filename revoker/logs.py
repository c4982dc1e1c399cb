"""Logging: readable text by default, one JSON object per line with REVOKER_LOG_FORMAT=json.

The request id travels in a context variable so that every line logged while serving a
request carries it, without passing it around. Only the CLI configures logging.

revoker never logs a token or a key, and its connection guard (``revoker.web.transport``)
keeps malformed requests away from aiohttp's parser, which would quote them. In case some
other path (a library's message, an exception's text) still carries one, ``RedactFilter``
on the handler masks whatever looks like a credential in every record, whichever logger
it comes from.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from typing import Any, Final

REQUEST_ID: Final = contextvars.ContextVar[str | None]("request_id", default=None)
_RESERVED: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}


class RequestIdFilter(logging.Filter):
    """Stamps every record with the id of the request being served (or None)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


#: What looks like a credential: a header that carries one (its value up to the end of the
#: line or quote), a bearer or basic credential, an ``rvk_`` API key, a JWT or any other
#: base64url JSON segment (``eyJ`` is ``{"``).
_CREDENTIAL: Final = re.compile(
    r"(?i:(?<![A-Za-z0-9-])((?:proxy-)?authorization|x-revoker-key|cookie|set-cookie)"
    r"(\s*[:=]\s*))[^\r\n'\"]+"
    r"|(?i:\b(bearer)(\s+))[^\s'\",;]+"
    r"|(?i:\b(basic)(\s+))[A-Za-z0-9+/=._~-]{8,}"
    r"|rvk_[A-Za-z0-9_-]+"
    r"|eyJ[A-Za-z0-9_-]{6,}(?:\.[A-Za-z0-9_-]*){0,2}")
REDACTED: Final = "[redacted]"


#: Lower-case words one of which every credential match contains: a cheap test first, since
#: the full pattern costs microseconds and most lines (the access log) hold none.
_HINTS: Final = ("authorization", "revoker-key", "cookie", "bearer", "basic", "rvk_", "eyj")


_USERINFO: Final = re.compile(r"//([^:@/]*)(?::[^@/]*)?@")


def redact_url(url: str) -> str:
    """A store URL fit for a log line: any password in it replaced."""
    return _USERINFO.sub(lambda m: f"//{m[1]}:***@" if m[1] else "//***@", url)


def redact(text: str) -> str:
    """``text`` with every credential-shaped part replaced by ``[redacted]``."""
    lowered = text.lower()
    for hint in _HINTS:
        if hint in lowered:
            return _CREDENTIAL.sub(_mask, text)
    return text


def _mask(match: re.Match[str]) -> str:
    if match.group(1):
        return f"{match.group(1)}{match.group(2)}{REDACTED}"
    for scheme in (3, 5):
        if match.group(scheme):
            return f"{match.group(scheme)}{match.group(scheme + 1)}{REDACTED}"
    return REDACTED


class RedactFilter(logging.Filter):
    """Masks credentials in a record's message, extra fields and exception text, before any
    formatter sees it. Installed on every handler revoker sets up, so it also covers
    aiohttp's loggers and anything an exception's text quotes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned is not message:
            record.msg, record.args = cleaned, None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = _EXC_FORMATTER.formatException(record.exc_info)
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in vars(record).items():
            if isinstance(value, str) and key not in _RESERVED:
                cleaned = redact(value)
                if cleaned is not value:
                    setattr(record, key, cleaned)
        return True


_EXC_FORMATTER: Final = logging.Formatter()


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra={...}`` fields become top-level members."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                  + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,  # tells the workers of REVOKER_WORKERS > 1 apart
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and value is not None and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{line} [request_id={rid}]" if rid else line


def configure(*, fmt: str = "text", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
