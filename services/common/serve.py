"""How both services run under uvicorn: one place, so the real processes and the hostile-input
tests (tests/security/hostile_server.py) serve with the same HTTP-level limits.

- ``http="h11"``: uvicorn's httptools protocol bounds neither the size nor the number of headers
  (a 200 MB header grew the process to 500 MB before the guard could see the request). h11 keeps
  at most ``max_incomplete_event_size`` bytes of an unfinished request head; beyond that uvicorn
  answers 400 and closes the connection.
- forwarded headers only from ``trusted_proxies``: uvicorn by default believes X-Forwarded-For
  from 127.0.0.1, so any local client (or a proxy that passes the header through) could choose
  its own address for the per-address rate limit and the access log.
- idle connections kept ``keep_alive_s`` (75 s), longer than clients keep theirs, so that a client
  never sends on a connection the server is closing.
"""

from __future__ import annotations

from typing import Any

from services.common.settings import Settings


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments for ``uvicorn.run`` that carry the HTTP-level limits."""
    proxies = [p.strip() for p in settings.trusted_proxies.split(",") if p.strip()]
    return {
        "http": "h11",
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies or [],
        "timeout_keep_alive": settings.keep_alive_s,
        "log_level": "warning",
        "log_config": None,  # uvicorn's error log through the JSON handler (services/common/logs.py)
        "access_log": False,  # the guard writes one access line per request (xcpay.access)
    }


def serve(app: Any, settings: Settings, host: str, port: int) -> None:
    """Serve ``app`` on ``host``:``port`` until stopped."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, **uvicorn_options(settings))
