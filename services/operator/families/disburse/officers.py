"""Who may read a payer's records besides the reader roles: a checker key whose wallet is one of
the payer's officers on the disbursement contract (used by the disburse routes and by the cash
family's reads of a wallet). A module of its own so that it imports no other family."""

from __future__ import annotations

from chain.clients.disburse import Officer
from services.common.context import ServiceContext
from services.common.keys import Role
from services.common.models import ApiKey


def officer_of_payer(ctx: ServiceContext, key: ApiKey, payer: str) -> bool:
    """Whether a checker key's wallet is one of ``payer``'s officers (checker or maker) on chain."""
    if key.role != Role.CHECKER or key.wallet is None:
        return False
    return ctx.disburse.officer(payer, key.wallet) != Officer.NONE
