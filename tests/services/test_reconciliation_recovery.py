"""The reconciliation replays a recovery's moves of family-held assets (issue 22): after
``WalletRetiredTo`` the retired wallet counts as frozen for good, and a card, package or mandate
moved by ``CardRecovered`` / ``PackageRecovered`` / ``MandateRecovered`` pays for its successor;
a payment still attributed to the retired wallet is a discrepancy."""

from __future__ import annotations

from typing import Any

from chain.events import Event
from services.operator.reconciliation import check_frozen_parties, holder_payments

LOST, SUCCESSOR, MERCHANT, CARD = (f"0x{c * 40}" for c in "abcd")


def ev(contract: str, name: str, tx: str, **args: Any) -> Event:
    return Event(
        contract, name, args, address="0x" + "00" * 20, block_number=int(tx), log_index=0, tx_hash=tx
    )


HELD = [
    ev("HardWalletSettlement", "CardRegistered", "1", card=CARD, holder=LOST),
    ev("PrepaidEscrow", "PackagePrepaid", "1", id=7, consumer=LOST, merchant=MERCHANT),
    ev("QuickPay", "MandateGranted", "1", id=3, holder=LOST, merchant=MERCHANT),
]
RETIRED = [ev("WalletRegistry", "WalletRetiredTo", "2", wallet=LOST, successor=SUCCESSOR)]
MOVED = [
    ev("HardWalletSettlement", "CardRecovered", "3", card=CARD, lost=LOST, successor=SUCCESSOR, reserve=5),
    ev("PrepaidEscrow", "PackageRecovered", "3", id=7, lost=LOST, successor=SUCCESSOR, held=6),
    ev("QuickPay", "MandateRecovered", "3", id=3, lost=LOST, successor=SUCCESSOR),
]
PAID = [
    ev("HardWalletSettlement", "PaymentSettled", "4", card=CARD, counter=1, merchant=MERCHANT, amount=5),
    ev("PrepaidEscrow", "SessionsConsumed", "4", id=7, sessions=1, amount=6, remaining=1, bySignature=False),
    ev("QuickPay", "MandatePulled", "4", id=3, merchant=MERCHANT, orderRef=b"x", amount=7, spentToday=7),
]


def test_moved_holdings_pay_for_the_successor() -> None:
    events = HELD + RETIRED + MOVED + PAID
    paid = holder_payments(events)
    assert sorted((p.source, p.owner) for p in paid) == [
        ("HardWalletSettlement.PaymentSettled", SUCCESSOR),
        ("PrepaidEscrow.SessionsConsumed", SUCCESSOR),
        ("QuickPay.MandatePulled", SUCCESSOR),
    ]
    assert check_frozen_parties(paid, events) == []


def test_a_payment_for_a_retired_wallet_is_a_discrepancy() -> None:
    for one in PAID:  # the moves never happened: the retired wallet would have paid, in each family
        events = [*HELD, *RETIRED, one]
        found = check_frozen_parties(holder_payments(events), events)
        assert [(d.kind, d.tx_hash) for d in found] == [("paid-for-frozen-owner", "4")], one.name
    # before its retirement, the same payments were the wallet's own, and fine
    early = HELD + [ev(e.contract, e.name, "1", **e.args) for e in PAID] + RETIRED
    assert check_frozen_parties(holder_payments(early), early) == []
