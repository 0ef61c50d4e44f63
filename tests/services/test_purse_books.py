"""The hard-wallet family's books with earmarked purses (chain/families.py): the settlement must
hold its cards' reserves plus the purses' value, purse value funded == spent + expired + held, and
the reconciliation's totals by purse programme."""

from __future__ import annotations

from typing import Any

from web3 import Web3

from chain.events import Event
from chain.families import FAMILIES
from services.operator.reconciliation import _totals

ZERO = "0x" + "00" * 20


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


def test_the_reconciliation_notices_a_purse_part_recorded_as_refundable_cash() -> None:
    """A purse-paid card payment recorded for refunds with the purse part as cash (the holder would
    get the funder's subsidy) is a discrepancy; with it as the funder's voucher part, none."""
    from chain.clients.refunds import payment_id
    from services.operator.reconciliation import check_purse_parts_not_refunded_as_cash

    card, funder, other = "0x" + "c1" * 20, "0x" + "f1" * 20, "0x" + "f2" * 20
    card_cs = Web3.to_checksum_address(card)
    pid = payment_id("card", 31337, f"{card_cs}:1")

    def recorded(voucher: int, payee: str, paid: int = 2_000) -> Event:
        args = {"paymentId": pid, "paid": paid, "voucherPart": voucher, "voucherPayee": payee}
        return Event("MerchantRefunds", "PaymentRecorded", args, "0x" + "00" * 20, 9, 0, "0x9")

    def spent(programme: int, amount: int) -> Event:
        return ev(
            "PurseSpent", 3, card=card_cs, programme=programme, counter=1, merchant="0xm", amount=amount
        )

    created = [
        ev("PurseProgrammeCreated", 1, programme=1, funder=funder),
        ev("PurseProgrammeCreated", 1, programme=2, funder=other),
        ev("PaymentSettled", 3, card=card_cs, counter=1, merchant="0xm", amount=2_000, time=0),
    ]
    one = [*created, spent(1, 2_000)]
    assert check_purse_parts_not_refunded_as_cash([*one, recorded(2_000, funder)], 31337, []) == []
    (found,) = check_purse_parts_not_refunded_as_cash([*one, recorded(0, ZERO)], 31337, [])
    assert found.kind == "purse-refundable-as-cash" and "purses paid 2000 fen" in found.detail
    assert check_purse_parts_not_refunded_as_cash([*one, recorded(2_000, other)], 31337, []) != []
    two = [*created, spent(1, 1_000), spent(2, 500)]  # 500 cash
    assert check_purse_parts_not_refunded_as_cash([*two, recorded(0, ZERO, 500)], 31337, []) == []
    assert check_purse_parts_not_refunded_as_cash([*two, recorded(0, ZERO, 501)], 31337, []) != []
