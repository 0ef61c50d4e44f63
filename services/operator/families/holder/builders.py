"""The holder family's operation builders: pure data-to-call (``services/common/operations.py``).

A mandate's revocation must be signed by the mandate's holder (``QuickPay.revoke`` checks
``msg.sender``): for a custodial wallet the service signs with the holder's custodial key. The
kind string is stored in the operations table: it never changes."""

from __future__ import annotations

from typing import Any

from services.common.context import ServiceContext
from services.common.operations import Builder, Call


def revoke_mandate(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The custodial holder revokes their own mandate (the route checked that it is theirs)."""
    return Call(ctx.custodial(req["holder"]), ctx.quickpay.revoke_call(req["mandate"]))


BUILDERS: dict[str, Builder] = {"holder.mandate.revoke": revoke_mandate}
