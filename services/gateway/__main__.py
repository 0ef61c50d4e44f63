"""python -m services.gateway serve | migrate | finish-pending"""

from __future__ import annotations

import argparse
import json
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="migrate the database and serve the gateway (XCPAY_GATEWAY_PORT, 8001)")
    sub.add_parser("migrate", help="upgrade the database schema to the newest migration")
    sub.add_parser("finish-pending", help="finish pending operations once and print the counts")
    args = parser.parse_args(argv)
    from services.common import logs

    logs.configure(logging.WARNING)  # JSON lines, with the request id

    from services.gateway.app import GatewaySettings

    try:
        settings = GatewaySettings()
    except ValueError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2

    from services.common.db import upgrade

    upgrade(settings.database_url)
    if args.command == "migrate":
        return 0
    if args.command == "finish-pending":
        from services.common.context import ServiceContext
        from services.common.families import merged_builders
        from services.common.operations import Operations
        from services.gateway.families import MODULES

        ctx = ServiceContext.build(settings, signer="gateway")
        print(json.dumps(Operations(ctx, merged_builders(MODULES)).reconcile()))
        return 0

    from chain.exceptions import ChainError
    from services.common.context import ChainMismatch
    from services.common.serve import serve
    from services.gateway.app import create_app

    try:
        app = create_app(settings)
        app.state.ctx.bind_database_to_chain()
        serve(
            app, settings, settings.gateway_host, settings.gateway_port
        )  # h11 with bounded headers, see serve.py
    except (ChainMismatch, ChainError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
