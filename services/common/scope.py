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


def check_read_scope(ctx: ServiceContext, key: ApiKey, *wallets: str) -> None:
    """Reads by a key bound to an institution (``api_keys.institution`` set): only its customers'
    records (403 ``institution-scope``; red team 8: institution 2's key read institution 1's park
    reports, merchant statements and refunds). The platform's own keys (an operator key bound to
    no institution, the auditor, the regulator) read all, as before."""
    if key.institution is not None:
        check_scope(ctx, key, *wallets)


def check_platform_key(key: ApiKey, what: str) -> None:
    """Platform-wide work (the spot-check robot) is institution #1's, the platform operator's: a key
    bound to another institution gets 403 ``institution-scope``."""
    if key.institution is not None and key.institution != 1:
        raise Problem(
            403,
            "institution-scope",
            "This is the platform operator's (institution 1)",
            f"this key acts for institution {key.institution}; {what} is institution 1's",
        )
