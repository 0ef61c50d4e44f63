"""python -m services.gateway serve | migrate | finish-pending (also ``xcpay-gateway``)"""

from __future__ import annotations

import sys
from typing import Any

from services.common import shell


def _settings() -> Any:
    from services.gateway.settings import GatewaySettings

    return GatewaySettings()


def _spec() -> shell.AppSpec:
    from services.gateway.app import spec

    return spec()


def _app(settings: Any) -> Any:
    from services.gateway.app import create_app

    return create_app(settings)


COMMAND = shell.Cli(
    prog="python -m services.gateway",
    serve_help="migrate the database and serve the gateway (XCPAY_GATEWAY_PORT, 8001)",
    settings=_settings,
    spec=_spec,
    app=_app,
    address=lambda s: (s.gateway_host, s.gateway_port),
)


def main(argv: list[str] | None = None) -> int:
    return shell.cli(COMMAND, argv)


if __name__ == "__main__":
    sys.exit(main())
