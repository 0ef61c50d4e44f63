"""Two tiers: whose customers a key may act for. An operator key acts for institution #1 unless it
is bound to another (``api_keys.institution``); it may act only on the customer wallets its
institution serves (the institutions' book on chain says which). Both services use these checks;
``Operations`` applies the same rule to every custodial signature (services/common/operations.py)."""

from __future__ import annotations

from services.common.context import ServiceContext
from services.common.keys import Role
from services.common.models import ApiKey
from services.common.problems import Problem


def institution_of(key: ApiKey) -> int:
    """The institution an operator key acts for (institution #1 unless it names another)."""
    return key.institution or 1


def out_of_scope(mine: int, wallet: str, serving: int) -> Problem:
    return Problem(
        403,
        "institution-scope",
        "The wallet is another institution's customer",
        f"this key acts for institution {mine}; {wallet} is served by institution {serving}",
    )


def check_scope(ctx: ServiceContext, key: ApiKey, *wallets: str) -> int:
    """The key's institution, which must serve each of ``wallets`` (403 ``institution-scope``)."""
    mine = institution_of(key)
    for wallet in wallets:
        serving = ctx.institutions.served_by(wallet)
        if serving != mine:
            raise out_of_scope(mine, wallet, serving)
    return mine


def acts_for_institution(key: ApiKey) -> bool:
    """An operator key, or any key bound to an institution. Keys that speak for a wallet of their
    own (merchant, officer, terminal, holder) are bound to that wallet instead."""
    return key.role == Role.OPERATOR or key.institution is not None


def check_operator_scope(ctx: ServiceContext, key: ApiKey, *wallets: str) -> None:
    """Institution scope on the families' routes: see :func:`acts_for_institution`."""
    if acts_for_institution(key):
        check_scope(ctx, key, *wallets)
