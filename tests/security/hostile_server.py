"""One service as a real server process for the hostile-input tests (test_hostile_processes.py).

``python -m tests.security.hostile_server operator|gateway PORT DIR``: an in-process chain with
the contracts deployed, a SQLite database under DIR, the app served by uvicorn on PORT the way
``python -m services.<name> serve`` serves it (JSON logs on stderr, the guard's access log). The
admin and operator keys are ADMIN_KEY and OPERATOR_KEY; any other XCPAY_ setting comes from the
environment (the rate-limit tests set theirs there).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

ADMIN_KEY = "xcp_hostile_admin_key_0123456789abcdefgh"
OPERATOR_KEY = "xcp_hostile_operator_key_0123456789abcdef"


def main(argv: list[str]) -> int:
    service, port, where = argv[0], int(argv[1]), Path(argv[2])
    from services.common import logs

    logs.configure(logging.WARNING)

    from chain.backends import in_process
    from chain.compiler import compile_contracts
    from chain.deploy import deploy_all
    from services.common.db import Database, upgrade
    from services.common.keys import Role, create_key

    w3 = in_process()
    deploy_all(w3, compiled=compile_contracts()).save(where / "manifest.json")
    url = f"sqlite:///{where / 'xcpay.db'}"
    upgrade(url)
    db = Database(url)
    with db.session() as s:
        create_key(s, Role.ADMIN, "hostile admin", ADMIN_KEY)
        create_key(s, Role.OPERATOR, "hostile operator", OPERATOR_KEY)
        s.commit()
    db.dispose()
    common = {"database_url": url, "manifest": where / "manifest.json", "rpc_url": "in-process"}
    if service == "operator":
        from services.operator.app import create_app
        from services.operator.settings import OperatorSettings

        settings = OperatorSettings(**common, admin_api_key=ADMIN_KEY)  # type: ignore[arg-type]
        app = create_app(settings, w3=w3, background=False)
    else:
        from services.gateway.app import GatewaySettings
        from services.gateway.app import create_app as create_gateway

        settings = GatewaySettings(**common)  # type: ignore[arg-type]
        app = create_gateway(settings, w3=w3, background=False)
    from services.common.serve import serve

    serve(app, settings, "127.0.0.1", port)  # as the services serve: the same HTTP-level limits
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
