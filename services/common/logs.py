"""Structured logs: one JSON object per line, with the id of the request being served.

The request id comes from the guard (services/common/guard.py), which takes it from a well-formed
``X-Request-ID`` header or makes one, returns it as a header and puts it in problem bodies; a
context variable carries it to every log line written while the request runs. Nothing here logs
headers, bodies or query strings: an API key never reaches a log line.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id: ContextVar[str | None] = ContextVar("xcpay_request_id", default=None)

# LogRecord attributes that are not ``extra=`` fields.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "request_id"?, ...extra, "exc"?}`` per record."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or request_id.get()
        if rid:
            doc["request_id"] = rid
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in doc:
                doc[name] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


def configure(level: int = logging.WARNING) -> None:
    """JSON lines on stderr for every logger; the services' own (``xcpay.*``, with the access log
    ``xcpay.access``) at INFO. uvicorn is then started with ``log_config=None`` so that its
    error log goes through the same handler, and ``access_log=False`` (the guard writes it)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("xcpay").setLevel(logging.INFO)
