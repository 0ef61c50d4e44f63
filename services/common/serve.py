"""How both services run under uvicorn: one place, so the real processes and the hostile-input
tests (tests/security/hostile_server.py) serve with the same HTTP-level limits.

- the HTTP parser is httptools (C, llhttp), bounded: uvicorn's own httptools protocol bounds
  neither the size nor the number of headers (a 200 MB header grew the process to 500 MB before
  the guard could see the request), so :class:`BoundedHttpTools` counts the bytes of each request
  head as they arrive and answers 400 and closes past ``max_header_bytes``, as h11's
  ``max_incomplete_event_size`` did. h11 (pure Python) was about a tenth of the service's CPU per
  request; without httptools installed, h11 with that bound is used as before.
- forwarded headers only from ``trusted_proxies``: uvicorn by default believes X-Forwarded-For
  from 127.0.0.1, so any local client (or a proxy that passes the header through) could choose
  its own address for the per-address rate limit and the access log.
"""

from __future__ import annotations

from typing import Any

from services.common.settings import Settings


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments for ``uvicorn.run`` that carry the HTTP-level limits."""
    proxies = [p.strip() for p in settings.trusted_proxies.split(",") if p.strip()]
    bounded = bounded_httptools(settings.max_header_bytes)
    return {
        "http": bounded if bounded is not None else "h11",
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies or [],
        "log_level": "warning",
        "log_config": None,  # uvicorn's error log through the JSON handler (services/common/logs.py)
        "access_log": False,  # the guard writes one access line per request (xcpay.access)
    }


def bounded_httptools(limit: int) -> type[Any] | None:
    """uvicorn's httptools protocol with the request head bounded to ``limit`` bytes (None when
    httptools is not installed). Bytes are counted from the end of the previous request (or the
    connection's start) to the end of this request's headers; the body is the guard's to bound."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools is in the lock file
        return None

    class BoundedHttpTools(HttpToolsProtocol):
        head_limit = limit
        _head_bytes = 0
        _in_head = True
        _refused = False

        def data_received(self, data: bytes) -> None:
            # One read at a time (at most the event loop's read size) is parsed; a head still
            # unfinished past the limit after it is refused. A chunk that ends the head and holds
            # the body too is not a long head (the body is counted by the guard).
            if self._refused:
                return
            if self._in_head:
                self._head_bytes += len(data)
            super().data_received(data)
            if self._in_head and self._head_bytes > self.head_limit and not self.transport.is_closing():
                self._refused = True
                self.send_400_response("Request head too large")  # answers and closes

        def on_headers_complete(self) -> None:
            self._in_head, self._head_bytes = False, 0
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_head, self._head_bytes = True, 0
            super().on_message_complete()

    return BoundedHttpTools


def serve(app: Any, settings: Settings, host: str, port: int) -> None:
    """Serve ``app`` on ``host``:``port`` until stopped."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, **uvicorn_options(settings))
