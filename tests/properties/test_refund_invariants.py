"""Stateful property test of merchants' refunds (MerchantRefunds) with ghost state.

Random sequences of payments (a payer pays a merchant, the operator records it, part of it
sometimes paid by a voucher programme), refunds of random amounts (within what is left, exactly
what is left, beyond it, by the wrong merchant, with a used reference), and a payer frozen at the time run
against the chain and a Python model. Every outcome is predicted: success with the exact split, or
the exact custom error. After every step: per payment refunded <= paid and voucher refunded <=
voucher part, each as the model says; every balance equals the model (payers got back exactly the
cash parts, the issuer exactly the voucher parts, merchants lost exactly what they refunded); the
supply is unchanged; the contract holds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from chain import devtools
from chain.accounts import dev_account
from chain.backends import in_process
from chain.clients.refunds import RefundsClient, payment_id, refund_ref
from chain.clients.token import CashClient, Kind
from chain.deploy import deploy_all
from chain.exceptions import ContractError
from tests.conftest import identity
from tests.helpers import fast_profile_sizes

OPERATOR, REGULATOR = dev_account(1), dev_account(2)
PAYERS = [dev_account(3), dev_account(4)]
MERCHANTS = [dev_account(5), dev_account(6)]
ISSUER = dev_account(7)
OPENING = 10_000_000
WALLETS = [a.address for a in (*PAYERS, *MERCHANTS, ISSUER)]

_base: dict[str, Any] = {}


def base_chain() -> tuple[RefundsClient, CashClient, Any]:
    if not _base:
        w3 = in_process()
        manifest = deploy_all(w3)
        cash = CashClient(w3, manifest)
        refunds = RefundsClient(w3, manifest, cash.tx)
        for a in PAYERS:
            cash.register(OPERATOR, a.address, Kind.PERSONAL, 1, 0, identity(a.address))
        for a in MERCHANTS:
            cash.register(OPERATOR, a.address, Kind.MERCHANT, 1, 5812, identity(a.address))
            cash.mint(OPERATOR, a.address, OPENING)
            refunds.approve(a, 2**255)
        cash.register(OPERATOR, ISSUER.address, Kind.INSTITUTION, 1, 0, identity(ISSUER.address))
        _base.update(refunds=refunds, cash=cash, snap=devtools.snapshot(w3))
    return _base["refunds"], _base["cash"], _base["snap"]


@dataclass
class Pay:
    pid: bytes
    merchant: int
    payer: int
    paid: int
    voucher: int
    refunded: int = 0
    voucher_refunded: int = 0


class RefundMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.refunds, self.cash, snap = base_chain()
        devtools.revert(self.refunds.w3, snap)
        _base["snap"] = devtools.snapshot(self.refunds.w3)
        self.cash.tx.nonces.reset()
        self.payments: list[Pay] = []
        self.frozen: set[int] = set()
        self.balances = {w: self.cash.balance_of(w) for w in WALLETS}
        self.supply = self.cash.total_supply()
        self.refs = 0

    def _ref(self) -> bytes:
        self.refs += 1
        return refund_ref(99, self.refs)

    @rule(
        merchant=st.integers(0, 1),
        payer=st.integers(0, 1),
        paid=st.integers(1, 50_000),
        share=st.integers(0, 4),
    )
    def record_a_payment(self, merchant: int, payer: int, paid: int, share: int) -> None:
        voucher = paid * share // 4 if share < 4 else 0
        pid = payment_id("code", 99, f"p{len(self.payments)}")
        self.refunds.record(
            OPERATOR, pid, MERCHANTS[merchant].address, PAYERS[payer].address, paid, voucher, ISSUER.address
        )
        self.payments.append(Pay(pid, merchant, payer, paid, voucher))

    @precondition(lambda self: self.payments)
    @rule(
        index=st.integers(0, 30),
        how=st.sampled_from(["part", "rest", "beyond", "wrong-merchant", "used-reference", "payer-frozen"]),
        frac=st.integers(1, 100),
    )
    def refund(self, index: int, how: str, frac: int) -> None:
        p = self.payments[index % len(self.payments)]
        left = p.paid - p.refunded
        amount = {"rest": left, "beyond": left + 1}.get(how, max(1, left * frac // 100))
        merchant = MERCHANTS[1 - p.merchant if how == "wrong-merchant" else p.merchant]
        ref = self._ref()
        if how == "used-reference":
            ref = refund_ref(99, self.refs - 1) if self.refs > 1 else ref
        used = (
            how == "used-reference"
            and self.refs > 1
            and self.refunds.tx.call(self.refunds.contract.functions.isReferenceUsed(ref))
        )
        expected: tuple[str, tuple[Any, ...]] | None = None
        if how == "wrong-merchant":
            expected = ("RefundNotMerchant", (p.pid, merchant.address))
        elif used:
            expected = ("RefundDuplicateReference", (ref,))
        elif amount > left:
            expected = ("RefundExceedsPayment", (p.pid, p.paid, p.refunded, amount))
        after = p.refunded + amount
        voucher = after * p.voucher // p.paid - p.voucher_refunded if expected is None else 0
        cash_part = amount - voucher
        if how == "payer-frozen":  # the regulator froze the payer: the token refuses the cash part
            self.cash.freeze(REGULATOR, PAYERS[p.payer].address)
            self.frozen.add(p.payer)
            if expected is None and cash_part > 0:
                expected = ("WalletFrozen", (PAYERS[p.payer].address,))
        try:
            try:
                result = self.refunds.refund(merchant, p.pid, amount, ref)
            finally:
                if how == "payer-frozen":
                    self.cash.unfreeze(REGULATOR, PAYERS[p.payer].address)
                    self.frozen.discard(p.payer)
        except ContractError as err:
            assert expected is not None, f"unexpected {err.signature}"
            assert (err.name, err.args_tuple) == expected
            event(f"refund: {err.name}")
            return
        assert expected is None, f"expected {expected}"
        (e,) = result.named("Refunded")
        assert (e["amount"], e["cash"], e["voucher"], e["refundedTotal"]) == (
            amount,
            cash_part,
            voucher,
            after,
        )
        p.refunded, p.voucher_refunded = after, p.voucher_refunded + voucher
        m = MERCHANTS[p.merchant].address
        self.balances[m] -= amount
        self.balances[PAYERS[p.payer].address] += cash_part
        self.balances[ISSUER.address] += voucher
        event(f"refund: {how} ok")

    @invariant()
    def refunds_never_exceed_payments_and_match_the_model(self) -> None:
        for p in getattr(self, "payments", []):
            on_chain = self.refunds.payment(p.pid)
            assert (on_chain.refunded, on_chain.voucher_refunded) == (p.refunded, p.voucher_refunded)
            assert on_chain.refunded <= on_chain.paid and on_chain.voucher_refunded <= on_chain.voucher_part
            assert on_chain.refunded - on_chain.voucher_refunded <= on_chain.paid - on_chain.voucher_part

    @invariant()
    def money_is_conserved(self) -> None:
        if not hasattr(self, "balances"):
            return
        assert {w: self.cash.balance_of(w) for w in WALLETS} == self.balances
        assert self.cash.balance_of(self.refunds.address) == 0
        assert self.cash.total_supply() == self.supply


TestRefundInvariants = RefundMachine.TestCase
fast_profile_sizes(TestRefundInvariants, 6, 12)
