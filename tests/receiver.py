"""A real local HTTP receiver for the webhook tests, and the receiver's signature check exactly as
the README prints it (so the README stays true)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.processes import free_port


@dataclass
class Receiver:
    """A tiny HTTP server on a fixed port that records every POST; it can be down and come back."""

    port: int = field(default_factory=free_port)
    status: int = 200
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _readme_verify() -> Callable[..., bool]:
    """The receiver's check exactly as the README prints it (section Webhooks), so it stays true."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text.split("Verify a delivery", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    exec(block, scope)
    return scope["verify"]  # type: ignore[no-any-return]


verify = _readme_verify()
