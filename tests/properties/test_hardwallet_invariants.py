"""Stateful property test of hard-wallet settlement (Solmate-style invariants with ghost state).

Two cards (a plastic card and a wearable) held by two people; two merchants. Random loads, honest
payments signed by the simulated secure element, payments signed by a clone of the card (fresh or
reused counters, amounts above the offline cap or the reserve), forged signatures, uploads of
random batches (with repeats, in any order), loss reports, clock moves across the grace period,
reserve returns and freezes of merchants and holders run against the chain and a Python model.
Every outcome is predicted before the call: the outcome of each payment of a batch, or the exact
custom error.

After every step, per card: loaded == settled + refunded + reserve, the reserve is never negative
and every field equals the model; the contract holds exactly the sum of the reserves; merchants
hold exactly what the model paid them, so nothing was paid twice.

Earmarked purses (CardPurses): a funder tops up each card's elderly-care purse, spendable at the
care merchant (MERCHANTS[1], MCC 8050) only, before cash; a blocked card spends no purse. The
model predicts the split; the contract holds reserves + purses, and each purse equals the model.
The genuine card is not credited with its purse (it does not know the earmarks), so it never signs
beyond its cash: purse value only leaves more reserve than it counts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eth_account import Account
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from chain import devtools
from chain.accounts import dev_account
from chain.backends import in_process
from chain.clients.hardwallet import (
    CardForm,
    CardStatus,
    HardWalletClient,
    Outcome,
    Payment,
    RejectReason,
    SignedPayment,
    sign_payment,
)
from chain.clients.token import CashClient, Kind
from chain.deploy import deploy_all
from chain.exceptions import ContractError
from chain.sender import TxResult
from tests.conftest import identity
from tests.helpers import fast_profile_sizes
from tests.properties.models.hardwallet import CardModel, Uploaded, time_or_status_refusal
from wallets.hardwallet import CardRefused, HardWallet

HOUR, DAY = 3_600, 86_400
OPERATOR, REGULATOR, KEEPER = dev_account(1), dev_account(2), dev_account(3)
HOLDERS = [dev_account(4), dev_account(5)]
MERCHANTS = [dev_account(6), dev_account(7)]
CARD_KEYS = [bytes([0xC1]) * 32, bytes([0xC2]) * 32]
FORMS = [CardForm.CARD, CardForm.WEARABLE]
OFFLINE_CAP, RESERVE_CAP, GRACE = 300_00, 1_000_00, DAY
UPLOAD_WINDOW = 12 * HOUR  # shorter than the clock moves below, so back-dated payments meet it
OPENING = 50_000_00
FUNDER, PURSE, PURSE_CAP, CARE_MCC = dev_account(8), 1, 500_00, 8050
STRANGER_KEY = b"\x5a" * 32

Expected = tuple[str, tuple[Any, ...]] | None
_base: dict[str, Any] = {}


def base_chain() -> tuple[HardWalletClient, CashClient, Any]:
    if not _base:
        w3 = in_process()
        vars(w3.provider.ethereum_tester.backend.chain).pop("gas_estimator", None)  # see the prepaid test
        manifest = deploy_all(w3)
        cash = CashClient(w3, manifest)
        hw = HardWalletClient(w3, manifest, cash.tx)
        hw.set_limits(OPERATOR, OFFLINE_CAP, RESERVE_CAP, GRACE)
        hw.set_upload_window(OPERATOR, UPLOAD_WINDOW)
        for i, holder in enumerate(HOLDERS):
            cash.register(OPERATOR, holder.address, Kind.PERSONAL, 2, 0, identity(f"holder{i}"))
            cash.mint(OPERATOR, holder.address, OPENING)
            hw.approve(holder, 2**255)
            card = Account.from_key(CARD_KEYS[i]).address
            hw.register_card(OPERATOR, card, holder.address, FORMS[i])
        for i, merchant in enumerate(MERCHANTS):
            mcc = CARE_MCC if i == 1 else 5411
            cash.register(OPERATOR, merchant.address, Kind.MERCHANT, 2, mcc, identity(f"merchant{i}"))
        cash.register(OPERATOR, FUNDER.address, Kind.INSTITUTION, 1, 0, identity("funder"))
        cash.mint(OPERATOR, FUNDER.address, OPENING)
        hw.approve(FUNDER, 2**255)
        far = int(w3.eth.get_block("latest")["timestamp"]) + 3_650 * DAY
        hw.create_purse_programme(OPERATOR, PURSE, FUNDER.address, PURSE_CAP, far, False, [CARE_MCC])
        _base["clients"] = hw, cash
        _base["snap"] = devtools.snapshot(w3)
    return *_base["clients"], _base["snap"]


class HardWalletMachine(RuleBasedStateMachine):
    @initialize(opening=st.tuples(st.integers(100_00, RESERVE_CAP), st.integers(100_00, RESERVE_CAP)))
    def start(self, opening: tuple[int, int]) -> None:
        """Revert to the base chain; both holders load their card."""
        self.hw, self.cash, snap = base_chain()
        self.w3 = self.cash.w3
        devtools.revert(self.w3, snap)
        _base["snap"] = devtools.snapshot(self.w3)  # eth-tester snapshots are single-use
        self.cash.tx.nonces.reset()
        domain = self.hw.domain
        self.cards = [
            CardModel(
                HOLDERS[i].address, HardWallet(CARD_KEYS[i], domain, form=FORMS[i], offline_cap=OFFLINE_CAP)
            )
            for i in range(2)
        ]
        self.by_address = {c.se.address: c for c in self.cards}
        for c in self.cards:
            c.registered_at = self.hw.card(c.se.address).registered_at
        self.merchant_balance = {m.address: 0 for m in MERCHANTS}
        self.frozen: set[str] = set()
        self.pool: list[Uploaded] = []
        for i, amount in enumerate(opening):
            c = self.cards[i]
            self.hw.load(HOLDERS[i], c.se.address, amount, approve=False)
            c.loaded = c.reserve = amount
            c.se.credit(amount)

    # -- helpers ---------------------------------------------------------------------------

    def _now(self) -> int:
        """The block.timestamp the next transaction will see."""
        return int(self.w3.provider.ethereum_tester.get_block_by_number("pending")["timestamp"])

    def _run(self, what: str, call: Callable[[], TxResult], expected: Expected) -> TxResult | None:
        event(f"{what}: {expected[0] if expected else 'ok'}")
        try:
            result = call()
        except ContractError as exc:
            assert (exc.name, exc.args_tuple) == expected, f"{what}: expected {expected}, got {exc.signature}"
            return None
        assert expected is None, f"{what}: expected {expected}, but the call succeeded"
        return result

    def _predict(self, up: Uploaded, now: int) -> tuple[Outcome, RejectReason, int]:
        """Outcome, reason and amount paid for one payment; applies it to the model."""
        p = up.signed.payment
        c = self.by_address.get(p.card)
        if c is None:
            return Outcome.REJECTED, RejectReason.UNKNOWN_CARD, 0
        if not up.valid:
            return Outcome.REJECTED, RejectReason.INVALID_SIGNATURE, 0
        if p.counter in c.used:
            return Outcome.DUPLICATE, RejectReason.NONE, 0
        if p.amount == 0:
            return Outcome.REJECTED, RejectReason.ZERO_AMOUNT, 0
        if p.amount > OFFLINE_CAP:
            return Outcome.REJECTED, RejectReason.OVER_OFFLINE_CAP, 0
        refusal = time_or_status_refusal(c, p.time, now)
        if refusal is not None:
            return Outcome.REJECTED, refusal, 0
        earmarked = 0
        if c.status is not CardStatus.BLOCKED and p.merchant == MERCHANTS[1].address:
            earmarked = min(p.amount, c.purse)  # the purse pays first at the care merchant
        cash_part = min(p.amount - earmarked, c.reserve)
        covered = earmarked + cash_part
        if covered > 0 and c.holder in self.frozen:  # payFor judges the owner (the holder) first
            return Outcome.REJECTED, RejectReason.HOLDER_REFUSED, 0
        if covered > 0 and p.merchant in self.frozen:
            return Outcome.REJECTED, RejectReason.MERCHANT_REFUSED, 0
        c.used.add(p.counter)
        c.purse -= earmarked
        c.purse_spent += earmarked
        c.reserve -= cash_part
        c.settled += cash_part
        self.merchant_balance[p.merchant] += covered
        if covered == p.amount:
            return Outcome.SETTLED, RejectReason.NONE, covered
        c.shortfall += p.amount - covered
        if c.status is CardStatus.ACTIVE:
            c.status = CardStatus.BLOCKED
        return Outcome.SHORTFALL, RejectReason.NONE, covered

    # -- holders ---------------------------------------------------------------------------

    @rule(i=st.integers(0, 1), amount=st.integers(1, 1_200_00))
    def load(self, i: int, amount: int) -> None:
        c = self.cards[i]
        expected: Expected = None
        if c.status is not CardStatus.ACTIVE:
            expected = ("HardWalletWrongStatus", (c.se.address, CardStatus.ACTIVE, c.status))
        elif c.reserve + amount > RESERVE_CAP:
            expected = ("HardWalletReserveCapExceeded", (c.se.address, RESERVE_CAP, c.reserve + amount))
        elif c.holder in self.frozen:
            expected = ("WalletFrozen", (c.holder,))
        holder = HOLDERS[i]
        if self._run("load", lambda: self.hw.load(holder, c.se.address, amount, approve=False), expected):
            c.loaded += amount
            c.reserve += amount
            c.se.credit(amount)

    @rule(i=st.integers(0, 1), amount=st.integers(1, 300_00))
    def fund_purse(self, i: int, amount: int) -> None:
        c = self.cards[i]
        expected: Expected = None
        if c.status is not CardStatus.ACTIVE:
            expected = ("HardWalletWrongStatus", (c.se.address, CardStatus.ACTIVE, c.status))
        elif c.purse + amount > PURSE_CAP:
            expected = ("PurseCapExceeded", (c.se.address, PURSE, PURSE_CAP, c.purse + amount))
        call = lambda: self.hw.fund_purse(FUNDER, c.se.address, PURSE, amount, approve=False)  # noqa: E731
        if self._run("fund purse", call, expected):
            c.purse += amount
            c.purse_funded += amount

    @precondition(lambda self: len(self.pool) >= 3)  # lose cards later rather than sooner
    @rule(i=st.integers(0, 1), by_operator=st.booleans())
    def report_lost(self, i: int, by_operator: bool) -> None:
        c = self.cards[i]
        expected: Expected = None
        if c.status not in (CardStatus.ACTIVE, CardStatus.BLOCKED):
            expected = ("HardWalletWrongStatus", (c.se.address, CardStatus.ACTIVE, c.status))
        who = OPERATOR if by_operator else HOLDERS[i]
        result = self._run("report lost", lambda: self.hw.report_lost(who, c.se.address), expected)
        if result:
            e = result.named("CardReportedLost")[0]
            c.status, c.lost_at, c.grace_ends_at = CardStatus.LOST, e["lostAt"], e["graceEndsAt"]
            c.signed_from = e["signedFrom"]
            assert c.grace_ends_at == c.lost_at + GRACE
            assert c.signed_from == c.lost_at - UPLOAD_WINDOW

    @rule(i=st.integers(0, 1))
    def return_reserve(self, i: int) -> None:
        c = self.cards[i]
        expected: Expected = None
        if c.status is not CardStatus.LOST:
            expected = ("HardWalletWrongStatus", (c.se.address, CardStatus.LOST, c.status))
        elif self._now() <= c.grace_ends_at:
            expected = ("HardWalletGraceNotOver", (c.se.address, c.grace_ends_at))
        elif c.reserve > 0 and c.holder in self.frozen:  # the reserve waits for the unfreeze
            expected = ("WalletFrozen", (c.holder,))
        if self._run("return reserve", lambda: self.hw.return_reserve(KEEPER, c.se.address), expected):
            c.refunded += c.reserve
            c.reserve = 0
            c.status = CardStatus.CLOSED

    # -- at the counter --------------------------------------------------------------------

    @rule(i=st.integers(0, 1), m=st.integers(0, 1), amount=st.integers(1, 350_00))
    def honest_payment(self, i: int, m: int, amount: int) -> None:
        try:
            signed = self.cards[i].se.sign_payment(MERCHANTS[m].address, amount, self._now())
        except CardRefused as exc:
            event(f"card refused: {type(exc).__name__}")
            return
        self.pool.append(Uploaded(signed, True))

    @rule(
        i=st.integers(0, 1),
        m=st.integers(0, 1),
        amount=st.integers(0, 400_00),
        reuse=st.booleans(),
        back=st.sampled_from([0, 0, HOUR, 2 * DAY, UPLOAD_WINDOW + 1, 60 * DAY, -HOUR, -HOUR - 1, -DAY]),
    )
    def clone_payment(self, i: int, m: int, amount: int, reuse: bool, back: int) -> None:
        """A clone of card i: no balance, no cap; reuses a genuine counter or counts on its own. The
        forged terminal dates it ``back`` seconds before now (negative: ahead), before the card's
        registration at 60 days, ahead of the chain beyond MAX_CLOCK_SKEW (an hour) when uploaded
        at once."""
        c = self.cards[i]
        if reuse and c.se.counter:
            counter = 1 + amount % c.se.counter
        else:
            c.clone_counter += 1
            counter = c.clone_counter
        payment = Payment(c.se.address, MERCHANTS[m].address, amount, counter, max(self._now() - back, 0))
        self.pool.append(Uploaded(sign_payment(CARD_KEYS[i], payment, self.hw.domain), True))

    @precondition(lambda self: self.pool)
    @rule(data=st.data(), stranger=st.booleans())
    def forged_payment(self, data: st.DataObject, stranger: bool) -> None:
        """Alter a collected payment (same signature), or sign as an unregistered card."""
        if stranger:
            card = Account.from_key(STRANGER_KEY).address
            p = Payment(card, MERCHANTS[0].address, 1_00, 1, self._now())
            self.pool.append(Uploaded(sign_payment(STRANGER_KEY, p, self.hw.domain), True))
            return
        base = data.draw(st.sampled_from(self.pool)).signed
        p = base.payment
        altered = Payment(p.card, p.merchant, p.amount + 1, p.counter, p.time)
        self.pool.append(Uploaded(SignedPayment(altered, base.signature), False))

    # -- terminals -------------------------------------------------------------------------

    @precondition(lambda self: self.pool)
    @rule(data=st.data())
    def upload(self, data: st.DataObject) -> None:
        """A batch of collected payments, in any order, repeats allowed (several terminals)."""
        indices = data.draw(st.lists(st.integers(0, len(self.pool) - 1), min_size=1, max_size=6))
        batch = [self.pool[k] for k in indices]
        now = self._now()
        predicted = [self._predict(up, now) for up in batch]
        result = self.hw.settle(OPERATOR, [up.signed for up in batch])
        got = [(o.outcome, o.reason, o.paid) for o in result.outcomes]
        assert got == predicted, f"batch {indices}: predicted {predicted}, got {got}"
        for outcome, reason, _ in predicted:
            event(f"payment: {outcome.value} {reason.name if reason else ''}".strip())

    @precondition(lambda self: self.pool)
    @rule(k=st.integers(1, 4))
    def upload_recent(self, k: int) -> None:
        """The usual terminal: upload what it collected last."""
        batch = self.pool[-k:]
        now = self._now()
        predicted = [self._predict(up, now) for up in batch]
        result = self.hw.settle(OPERATOR, [up.signed for up in batch])
        got = [(o.outcome, o.reason, o.paid) for o in result.outcomes]
        assert got == predicted, f"last {k}: predicted {predicted}, got {got}"
        for outcome, reason, _ in predicted:
            event(f"payment: {outcome.value} {reason.name if reason else ''}".strip())

    # -- regulator and the clock -----------------------------------------------------------

    @rule(m=st.integers(0, 1))
    def toggle_merchant_freeze(self, m: int) -> None:
        merchant = MERCHANTS[m].address
        if merchant in self.frozen:
            self.cash.unfreeze(REGULATOR, merchant)
            self.frozen.discard(merchant)
        else:
            self.cash.freeze(REGULATOR, merchant)
            self.frozen.add(merchant)

    @rule(i=st.integers(0, 1))
    def toggle_holder_freeze(self, i: int) -> None:
        """A frozen holder's card payments are refused (HolderRefused) until the unfreeze."""
        holder = HOLDERS[i].address
        if holder in self.frozen:
            self.cash.unfreeze(REGULATOR, holder)
            self.frozen.discard(holder)
        else:
            self.cash.freeze(REGULATOR, holder)
            self.frozen.add(holder)

    @rule(seconds=st.sampled_from([60, 6 * HOUR, GRACE - 30, GRACE + 1]))
    def advance_time(self, seconds: int) -> None:
        devtools.increase_time(self.w3, seconds)

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def per_card_conservation(self) -> None:
        reserves = 0
        for c in self.cards:
            info = self.hw.card(c.se.address)
            assert info.loaded == info.settled + info.refunded + info.reserve, info
            assert info.reserve >= 0 and info.reserve <= RESERVE_CAP
            assert (info.status, info.loaded, info.settled, info.refunded, info.reserve, info.shortfall) == (
                c.status,
                c.loaded,
                c.settled,
                c.refunded,
                c.reserve,
                c.shortfall,
            )
            assert (info.registered_at, info.lost_at, info.signed_from) == (
                c.registered_at,
                c.lost_at,
                c.signed_from,
            )
            reserves += info.reserve
            purses = [(p.programme, p.balance, p.funded, p.spent) for p in self.hw.purses(c.se.address)]
            assert purses == ([(PURSE, c.purse, c.purse_funded, c.purse_spent)] if c.purse_funded else [])
        totals = self.hw.totals()
        assert totals["reserve"] == reserves
        assert totals["earmarked"] == sum(c.purse for c in self.cards)
        assert self.cash.balance_of(self.hw.contract.address) == totals["reserve"] + totals["earmarked"]
        assert totals["shortfall"] == sum(c.shortfall for c in self.cards)

    @invariant()
    def nothing_paid_twice(self) -> None:
        for merchant, paid in self.merchant_balance.items():
            assert self.cash.balance_of(merchant) == paid
        assert sum(self.merchant_balance.values()) == sum(c.settled + c.purse_spent for c in self.cards)


TestHardWalletInvariants = HardWalletMachine.TestCase
# Deeper than the fast profile's default, which rarely reaches a loss report followed by the grace
# period's end (4 x 20 never froze a merchant); 8 x 30 reaches every rule (XCPAY_RULE_REACH).
fast_profile_sizes(TestHardWalletInvariants, 8, 30)
