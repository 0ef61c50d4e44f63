"""python -m services.operator serve | migrate | reconcile | finish-pending (also ``xcpay-operator``)"""

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
    parser.add_argument(
        "--full",
        action="store_true",
        help="replay every block from the node (the auditor's check), not only those after the checkpoint",
    )


def _reconcile(settings: Any, args: argparse.Namespace) -> int:
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


COMMAND = shell.Cli(
    prog="python -m services.operator",
    serve_help="migrate the database and serve the operator API",
    settings=_settings,
    spec=_spec,
    app=_app,
    address=lambda s: (s.api_host, s.api_port),
    reconcile=_reconcile,
    reconcile_help="the auditor's reconciliation: the chain against the records; exit 1 on a discrepancy",
    reconcile_args=_reconcile_args,
)


def main(argv: list[str] | None = None) -> int:
    return shell.cli(COMMAND, argv)


if __name__ == "__main__":
    sys.exit(main())
