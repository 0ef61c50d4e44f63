"""The hard-wallet family's books with earmarked purses (chain/families.py): the settlement must
hold its cards' reserves plus the purses' value, purse value funded == spent + expired + held, and
the reconciliation's totals by purse programme."""

from __future__ import annotations

from typing import Any

from chain.events import Event
from chain.families import FAMILIES
from services.operator.reconciliation import _totals


def holding() -> Any:
    (family,) = [f for f in FAMILIES if f.name == "hardwallet"]
    (h,) = family.holdings
    return h


def test_the_settlement_must_hold_reserves_and_purses_and_the_purse_identity_is_checked() -> None:
    h = holding()
    views = {"reserve": 700, "earmarked": 300, "earmarked_funded": 500, "earmarked_spent": 150}
    assert h.books({**views, "earmarked_expired": 50}) == 1_000
    name, check = h.identity
    assert "purses" in name
    assert check({**views, "earmarked_expired": 50})
    assert not check({**views, "earmarked_expired": 49})  # a fen unaccounted for


def ev(name: str, block: int, **args: Any) -> Event:
    return Event(
        "HardWalletSettlement",
        name,
        args,
        address="0x" + "00" * 20,
        block_number=block,
        log_index=0,
        tx_hash=str(block),
    )


def test_the_totals_count_purse_value_by_programme() -> None:
    events = [
        ev("PurseFunded", 1, card="0xc", programme=1, funder="0xf", amount=300, balance=300),
        ev("PurseFunded", 2, card="0xd", programme=2, funder="0xf", amount=50, balance=50),
        ev("PurseSpent", 3, card="0xc", programme=1, counter=1, merchant="0xm", amount=120, balance=180),
        ev("PurseExpired", 4, card="0xc", programme=1, to="0xf", amount=180),
    ]
    totals = _totals(events, 0)
    assert totals["earmarked_funded_by_programme_fen"] == {"1": 300, "2": 50}
    assert totals["earmarked_spent_by_programme_fen"] == {"1": 120}
    assert totals["earmarked_expired_by_programme_fen"] == {"1": 180}
