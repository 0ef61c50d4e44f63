"""How people read the machine's values: money in yuan with the fen beside it, times in Beijing
time, states and roles by name, wallets by their display names (issue 21).

One place for every human-facing text (problem details, the reconciliation report, the dashboard's
server-side labels, the demo), so that ``¥1,234.50 (123450 fen)`` and ``2026-11-26T14:47:57+08:00``
read the same everywhere. Machine fields never change: amounts stay integers in fen and times
Unix seconds; only the words around them are rendered here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from eth_utils import keccak

from services.common.i18n import EN, STATES_ZH, ZH

BEIJING = timezone(timedelta(hours=8), "UTC+08:00")


def yuan(fen: int) -> str:
    """``¥1,234.50`` (``-¥0.05`` below zero): the amount as a person reads it."""
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


def money(fen: int, lang: str = EN) -> str:
    """``¥1,234.50 (123450 fen)`` / ``¥1,234.50（123450 分）``: yuan with the exact fen beside it,
    where precision matters (problem details, the reconciliation report)."""
    return f"{yuan(fen)}（{fen} 分）" if lang == ZH else f"{yuan(fen)} ({fen} fen)"


def beijing(ts: int | float | datetime) -> str:
    """ISO-8601 in Beijing time (UTC+8), seconds: ``2026-11-26T14:47:57+08:00``. A datetime
    without a zone is taken as UTC (the database stores UTC)."""
    if isinstance(ts, datetime):
        moment = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
    else:
        moment = datetime.fromtimestamp(int(ts), UTC)
    return moment.astimezone(BEIJING).replace(microsecond=0).isoformat()


# -- states and roles by name ---------------------------------------------------------------------

# The contracts' enums, value -> name, in declaration order (contracts/*/*.sol).
ENUMS: dict[str, tuple[str, ...]] = {
    "Disbursement.Status": ("None", "Draft", "Approved", "Closed", "Cancelled"),
    "Disbursement.Kind": ("None", "Explicit", "Merkle"),
    "HardWalletSettlement.Status": ("None", "Active", "Blocked", "Lost", "Closed"),
    "CollectiveFund.ProposalStatus": ("None", "Pending", "Executed", "Rejected", "Cancelled"),
    "CollectiveFund.OfficerRole": ("None", "Committee", "Treasurer"),
    "CollectiveFund.AssetKind": ("None", "Property", "Resource"),
    "VoucherProgrammes.Mode": ("None", "GrantList", "OpenEnrolment"),
    "PrepaidEscrow.Status": ("None", "Open", "Consumed", "Cancelled", "Refunded"),
    "WalletRegistry.Kind": ("None", "Personal", "Merchant", "Institution"),
    "DevicePayments.PreAuthStatus": ("None", "Open", "Completed", "Released"),
}

# Which argument of which custom error is an enum value.
ERROR_ENUMS: dict[tuple[str, str], str] = {
    ("DisburseWrongStatus", "expected"): "Disbursement.Status",
    ("DisburseWrongStatus", "actual"): "Disbursement.Status",
    ("DisburseWrongKind", "expected"): "Disbursement.Kind",
    ("HardWalletWrongStatus", "expected"): "HardWalletSettlement.Status",
    ("HardWalletWrongStatus", "actual"): "HardWalletSettlement.Status",
    ("CollectiveProposalNotPending", "status"): "CollectiveFund.ProposalStatus",
    ("CollectiveOfficerUnchanged", "role"): "CollectiveFund.OfficerRole",
    ("VoucherWrongMode", "expected"): "VoucherProgrammes.Mode",
    ("CollectiveInvalidAssetKind", "kind"): "CollectiveFund.AssetKind",
    ("InvalidCategory", "kind"): "WalletRegistry.Kind",
    ("DevicePreAuthNotOpen", "status"): "DevicePayments.PreAuthStatus",
}

# AccessControl roles by their hash (keccak256 of the name; the admin role is zero).
ROLE_NAMES: dict[str, str] = {
    "0x" + keccak(text=name).hex(): name
    for name in (
        "REGISTRAR_ROLE",
        "REGULATOR_ROLE",
        "CAP_EXEMPT_ROLE",
        "ISSUER_ROLE",
        "OPERATOR_ROLE",
        "TOWNSHIP_ROLE",
        "PAUSER_ROLE",
        "DEVICE_ROLE",
    )
}
ROLE_NAMES["0x" + "00" * 32] = "DEFAULT_ADMIN_ROLE"


def enum_name(enum: str, value: int, lang: str = EN) -> str:
    """The name of ``value`` of ``enum`` (``Approved``; zh-CN ``已复核``), the number if unknown."""
    names = ENUMS.get(enum, ())
    if not 0 <= value < len(names):
        return str(value)
    name = names[value]
    return STATES_ZH.get(name, name) if lang == ZH else name


# Argument names that carry fen and Unix seconds in the contracts' custom errors.
MONEY_ARGS = frozenset(
    {
        "amount",
        "balance",
        "balanceAfter",
        "budget",
        "cap",
        "ceiling",
        "available",
        "needed",
        "remaining",
        "spent",
        "spentAfter",
        "total",
        "rowsTotal",
        "reserveAfter",
        "offlineCap",
        "reserveCap",
        "fee",
        "bill",
        "minimum",
        "limit",
        "value",
        "allowance",
    }
)
_TIME_ARG = re.compile(r"(At|Ts)$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def arg_text(
    error: str, name: str, value: Any, lang: str = EN, names: Mapping[str, str] | None = None
) -> str:
    """One argument of a custom error as a person reads it."""
    if (error, name) in ERROR_ENUMS and isinstance(value, int):
        return enum_name(ERROR_ENUMS[(error, name)], value, lang)
    if name == "role" and isinstance(value, str) and value.lower() in ROLE_NAMES:
        return ROLE_NAMES[value.lower()]
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        if name in MONEY_ARGS and 0 <= value < 2**128:
            return money(value, lang)
        if _TIME_ARG.search(name) and 0 < value < 2**40:
            return beijing(value)
        return str(value)
    if isinstance(value, str) and _ADDRESS.match(value):
        shown = (names or {}).get(value.lower())
        return f"{value} ({shown})" if shown else value
    return str(value)


def contract_detail(
    error: str, args: Mapping[str, Any], lang: str = EN, names: Mapping[str, str] | None = None
) -> str:
    """A contract's refusal as a person reads it, its name kept for searching:
    ``DisburseWrongStatus(id=0x…, expected=Approved, actual=Draft)``,
    ``TierPaymentCapExceeded(wallet=0x… (alice), cap=¥2,000.00 (200000 fen), amount=…)``."""
    parts = [f"{k}={arg_text(error, k, v, lang, names)}" for k, v in args.items()]
    return f"{error}({', '.join(parts)})"


def is_address(value: Any) -> bool:
    return isinstance(value, str) and _ADDRESS.match(value) is not None


def addresses_in(value: Any) -> set[str]:
    """Every address among the (JSON-able) arguments, lower-cased, for one name lookup."""
    if isinstance(value, str):
        return {value.lower()} if _ADDRESS.match(value) else set()
    if isinstance(value, Mapping):
        return set().union(*(addresses_in(v) for v in value.values())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*(addresses_in(v) for v in value)) if value else set()
    return set()


def wallet_names(session: Any, addresses: set[str]) -> dict[str, str]:
    """Display names of the registered wallets among ``addresses`` (lower-cased keys): one query."""
    if not addresses:
        return {}
    from eth_utils import to_checksum_address
    from sqlalchemy import select

    from services.common.models import Wallet

    wanted = sorted({to_checksum_address(a) for a in addresses} | addresses)
    query = select(Wallet.address, Wallet.display_name).where(Wallet.address.in_(wanted))
    rows = session.execute(query).all()
    return {str(a).lower(): str(n) for a, n in rows if n}
