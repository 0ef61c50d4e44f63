"""python -m services.operator serve | migrate | reconcile | finish-pending | login-link
(also ``xcpay-operator``)"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from services.common import shell


def _settings() -> Any:
    from services.operator.settings import OperatorSettings

    return OperatorSettings()


def _spec() -> shell.AppSpec:
    from services.operator.app import spec

    return spec()


def _app(settings: Any) -> Any:
    from services.operator.app import create_app

    return create_app(settings)


def _reconcile_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--html", metavar="FILE", help="also write the self-contained HTML report here")
    parser.add_argument("--lang", choices=("en", "zh"), default="en", help="the HTML report's language")
    parser.add_argument(
        "--full",
        action="store_true",
        help="replay every block from the node (the auditor's check), not only those after the checkpoint",
    )


def _reconcile(settings: Any, args: argparse.Namespace) -> int:
    from services.common.context import ServiceContext
    from services.common.i18n import EN, ZH
    from services.common.indexer import Indexer
    from services.operator.reconciliation import reconcile, render_html

    ctx = ServiceContext.build(settings)
    Indexer(ctx).run_once()
    report = reconcile(ctx, full=args.full)
    print(json.dumps(report.as_dict(), indent=2))
    if args.html:
        Path(args.html).write_text(render_html(report, ZH if args.lang == "zh" else EN), encoding="utf-8")
    return 0 if report.verdict == "clean" else 1


def _login_link_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", help="where the operator API is reached (default: its host and port)")


def _login_link(settings: Any, args: argparse.Namespace) -> int:
    from services.common.db import Database
    from services.operator.signin import LINK_TTL, create_link_token

    base = args.base_url or f"http://{settings.api_host}:{settings.api_port}"
    with Database(settings.database_url).session() as s:
        token = create_link_token(s)
    minutes = int(LINK_TTL.total_seconds() // 60)
    print(f"{base.rstrip('/')}/dashboard/login?token={token}  (one use, {minutes} minutes)")
    return 0


COMMAND = shell.Cli(
    prog="python -m services.operator",
    serve_help="migrate the database and serve the operator API",
    settings=_settings,
    spec=_spec,
    app=_app,
    address=lambda s: (s.api_host, s.api_port),
    verbs=(
        shell.Verb(
            "reconcile",
            "the auditor's reconciliation: the chain against the records; exit 1 on a discrepancy",
            _reconcile,
            _reconcile_args,
        ),
        shell.Verb(
            "login-link",
            "print a one-time sign-in link of the dashboard (single use, 15 minutes)",
            _login_link,
            _login_link_args,
        ),
    ),
)


def main(argv: list[str] | None = None) -> int:
    return shell.cli(COMMAND, argv)


if __name__ == "__main__":
    sys.exit(main())
