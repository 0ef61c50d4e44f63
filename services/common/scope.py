"""Two tiers: whose customers a key may act for. An operator key acts for institution #1 unless it
is bound to another (``api_keys.institution``); it may act only on the customer wallets its
institution serves (the institutions' book on chain says which). Both services use these checks;
``Operations`` applies the same rule to every custodial signature (services/common/operations.py).
Reads: a key bound to an institution reads only its customers' records (``check_read_scope``,
``check_read_any``, ``read_filter`` for listings, the operations of its institution's keys) and no
platform-wide figures (``check_platform_read``); the route table is in the README ("Two-tier
operation")."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import ColumnElement, select

from services.common.context import ServiceContext
from services.common.keys import Role
from services.common.models import ApiKey, Operation
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


def reads_scoped(key: ApiKey) -> bool:
    """Whether ``key``'s reads are limited to one institution's customers: a key bound to an
    institution. The platform's own keys (an operator key bound to no institution, the auditor,
    the regulator) read all."""
    return key.institution is not None


def read_filter(ctx: ServiceContext, key: ApiKey) -> Callable[..., bool] | None:
    """For listings: None when ``key`` reads all; otherwise a predicate, true when the key's
    institution serves one of the wallets given (each looked up on chain once per request)."""
    if key.institution is None:
        return None
    mine = key.institution
    serving: dict[str, int] = {}

    def serves(*wallets: str | None) -> bool:
        for wallet in wallets:
            if not wallet:
                continue
            if wallet not in serving:
                serving[wallet] = ctx.institutions.served_by(wallet)
            if serving[wallet] == mine:
                return True
        return False

    return serves


def check_read_any(ctx: ServiceContext, key: ApiKey, *wallets: str | None) -> None:
    """A record with several parties (a package's merchant and consumer, a programme's issuer and
    a holder, a collective's officers): a key bound to an institution reads it when its institution
    serves one of them (403 ``institution-scope`` otherwise, naming the first)."""
    serves = read_filter(ctx, key)
    named = [w for w in wallets if w]
    if serves is None or not named or serves(*named):
        return
    raise out_of_scope(key.institution or 1, named[0], ctx.institutions.served_by(named[0]))


def check_platform_read(key: ApiKey, what: str) -> None:
    """Platform-wide figures (the dashboard: every institution's customers at once) are for the
    platform's own keys: a key bound to an institution, #1 included, gets 403 ``institution-scope``."""
    if key.institution is not None:
        raise Problem(
            403,
            "institution-scope",
            "This is platform-wide data",
            f"this key acts for institution {key.institution}; {what} covers every institution's customers",
        )


def operations_clause(key: ApiKey) -> ColumnElement[bool] | None:
    """The operations a key bound to an institution reads: those its institution's keys requested
    (None: the key reads all). An operation acts for the institution of the key that requested it."""
    if key.institution is None:
        return None
    return Operation.api_key_id.in_(select(ApiKey.id).where(ApiKey.institution == key.institution))


def check_operation_scope(ctx: ServiceContext, key: ApiKey, op: Operation) -> None:
    """One operation: a key bound to an institution reads its institution's keys' requests only
    (403 ``institution-scope``)."""
    if key.institution is None or op.api_key_id == key.id:
        return
    with ctx.db.session() as s:
        requester = s.get(ApiKey, op.api_key_id)
        theirs = requester.institution if requester is not None else None
    if theirs != key.institution:
        raise Problem(
            403,
            "institution-scope",
            "The operation is another institution's",
            f"this key acts for institution {key.institution}; operation {op.id} was requested "
            f"{'for institution ' + str(theirs) if theirs is not None else 'by a platform key'}",
        )
