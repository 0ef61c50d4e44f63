"""python -m services.operator serve | migrate | reconcile | finish-pending"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from services.common.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.operator")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="migrate the database and serve the operator API")
    sub.add_parser("migrate", help="upgrade the database schema to the newest migration")
    rec = sub.add_parser(
        "reconcile",
        help="the auditor's reconciliation: the chain against the records; exit 1 on a discrepancy",
    )
    rec.add_argument("--html", metavar="FILE", help="also write the self-contained HTML report here")
    rec.add_argument(
        "--full",
        action="store_true",
        help="replay every block from the node (the auditor's check), not only those after the checkpoint",
    )
    sub.add_parser("finish-pending", help="finish pending operations once and print the counts")
    args = parser.parse_args(argv)
    from services.common import logs

    logs.configure(logging.WARNING)  # JSON lines, with the request id

    try:
        settings = Settings()
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
        from services.operator.families import MODULES

        ctx = ServiceContext.build(settings)
        print(json.dumps(Operations(ctx, merged_builders(MODULES)).reconcile()))
        return 0
    if args.command == "reconcile":
        from pathlib import Path

        from services.common.context import ServiceContext
        from services.common.indexer import Indexer
        from services.operator.reconciliation import reconcile, render_html

        ctx = ServiceContext.build(settings)
        Indexer(ctx).run_once()
        report = reconcile(ctx, full=args.full)
        print(json.dumps(report.as_dict(), indent=2))
        if args.html:
            Path(args.html).write_text(render_html(report))
        return 0 if report.verdict == "clean" else 1

    from chain.exceptions import ChainError
    from services.common.context import ChainMismatch
    from services.common.serve import serve
    from services.operator.app import create_app

    try:
        app = create_app(settings)
        app.state.ctx.bind_database_to_chain()  # a clear error here rather than a failed startup
        serve(app, settings, settings.api_host, settings.api_port)  # h11 with bounded headers, see serve.py
    except (ChainMismatch, ChainError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
