"""python -m services.operator serve | migrate | reconcile | finish-pending | login-link"""

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
    rec.add_argument("--lang", choices=("en", "zh"), default="en", help="the HTML report's language")
    rec.add_argument(
        "--full",
        action="store_true",
        help="replay every block from the node (the auditor's check), not only those after the checkpoint",
    )
    sub.add_parser("finish-pending", help="finish pending operations once and print the counts")
    link = sub.add_parser(
        "login-link", help="print a one-time sign-in link of the dashboard (single use, 15 minutes)"
    )
    link.add_argument("--base-url", help="where the operator API is reached (default: its host and port)")
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
    if args.command == "login-link":
        from services.common.db import Database
        from services.operator.signin import LINK_TTL, create_link_token

        base = args.base_url or f"http://{settings.api_host}:{settings.api_port}"
        with Database(settings.database_url).session() as s:
            token = create_link_token(s)
        minutes = int(LINK_TTL.total_seconds() // 60)
        print(f"{base.rstrip('/')}/dashboard/login?token={token}  (one use, {minutes} minutes)")
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
            from services.common.i18n import EN, ZH

            Path(args.html).write_text(render_html(report, ZH if args.lang == "zh" else EN), encoding="utf-8")
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
