"""One stateful property test of every contract family together, on one chain.

The per-family machines (tests/properties/test_*_invariants.py) each run their contract against a
token that nothing else touches. Here one hypothesis state machine drives them all at once, so
that their interactions are exercised: the same people are prepaid consumers, voucher holders,
card holders, mandate givers, collective officers and disbursement recipients; the same merchants
are paid by every family and refund what people paid them (MerchantRefunds: transfers, voucher
spends and card payments, recorded as the services record them, refunded in part, in full, beyond
what is left, under a used reference, to a frozen payer); the office and the gym fund earmarked
purses on the cards (CardPurses: purse programmes of either funder, expiring to the funder or the
holder), which pay card payments at the merchants they allow before cash, are put back when the
payment is refused, and return what is left at expiry; freezes (the regulator freezes and
unfreezes random people and merchants, owners and payees alike, and the district office: a frozen
payer's payouts and reclaims stop whole, a frozen issuer grants nothing; the supervisor the
collective), tier caps (balance, payment, daily) and day changes bite across families; and the
clock jumps across package end dates, batch and programme ends, proposal expiries and time locks,
card grace periods, purse expiries and mandate expiries.

Every outcome is predicted before the call from one Python model (the token rules of
``DigitalCash._update`` for every movement and of ``payFor`` for every family payout: owner
registered and unfrozen, payee a merchant where required; and each family's own rules as the family machines
model them, reusing their dataclasses): success, or the exact custom error with its arguments.
Random actors also try each family's privileged actions without the role (mint, freeze, pause,
close or enrol a prepaid merchant, consume someone else's package, approve a disbursement, approve
or execute a collective proposal, freeze a collective, grant vouchers of someone else's programme,
register a card, load someone else's card, pull on someone else's mandate, create a purse programme,
fund another funder's purses, record a payment for refunds, refund another merchant's payment, ...):
each must revert with the exact custom error.

After every step: total supply == the sum of the balances of every address that ever held cash
(people, merchants, the institution, every family contract, an unregistered wallet) == the model's;
every balance equals the model; each family conserves its money (prepaid deposited == released +
refunded + held and the escrow holds exactly the held; per batch funded == paid + reclaimed +
outstanding and the contract holds exactly the outstanding; per programme budget == spent +
returned + outstanding + ungranted and the contract holds exactly outstanding + ungranted; per
collective balance == income - paid and the fund holds exactly the balances; per card loaded ==
settled + refunded + reserve, per purse programme and in total funded == spent + expired + held,
each card's purses as the model says (every purse draw predicted exactly, reported by ``PurseSpent``
for settled payments only), and the contract holds exactly the reserves plus the purses; per
payment recorded for refunds refunded <= paid, its voucher part's refunds <= the voucher part, each
refund split exactly as the model says (the voucher part, a purse-paid card bill's purse part
included, back to its funder on the running total, the rest to the payer; never a purse part to the
holder as cash), moved by exactly those transfers; QuickPay and MerchantRefunds hold nothing);
no wallet is above its tier's balance cap or daily cap; a wallet frozen before and after the step
kept what the README's freeze table protects (ghost state read from the chain: its balance, its
prepaid packages, its cards, what its mandates pulled, what it spent of vouchers); every bill (a card
payment, a mandate's order, a disbursement row) was paid at most once, by exactly one movement of its
own (a ``PaidFor`` or ``Transfer`` log counted for no other bill). (Each object's own record is compared
after the steps that act on it in the short profile, after every step in the long one: see DEEP.)

Every example starts from the same opening (built once through the rules, then restored from a
chain snapshot and a copy of the model): packages, an approved batch, a programme with grants,
income and approved proposals, loaded cards with payments waiting and purses funded, a mandate,
payments to refund (a transfer, a voucher spend, a card payment the meal purse and cash paid, one
two funders' purses and cash paid), some recorded and refunded in part or in full, and two trial
purses expired (one to its funder, one to the holder): so that the short profile starts from every
kind of purse and refund state, whatever rules its few sequences draw.

Profiles: ``make test`` runs a short derandomized profile (8 sequences of up to 30 steps, about a
minute and a half); ``XCPAY_FUZZ=long`` (``make audit``) runs random sequences, 40 of up to 60
steps by default (some 2,200 steps; ``XCPAY_FUZZ_EXAMPLES`` and ``XCPAY_FUZZ_STEPS`` change that).
The test prints how many examples and steps ran, past pytest's capture.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from web3 import Web3

from chain import devtools
from chain.accounts import dev_account
from chain.backends import in_process
from chain.clients.collective import CollectiveClient, OfficerRole, ProposalStatus, Tier
from chain.clients.disburse import (
    BatchKind,
    BatchStatus,
    DisbursementClient,
    Officer,
    Row,
    batch_id,
    purpose_tag,
)
from chain.clients.hardwallet import (
    CardForm,
    CardStatus,
    HardWalletClient,
    Outcome,
    QuickPayClient,
    RejectReason,
    order_ref,
)
from chain.clients.prepaid import PackageStatus, PrepaidClient
from chain.clients.refunds import RefundsClient, payment_id, refund_ref
from chain.clients.token import CashClient, Kind, TierLimits
from chain.clients.vouchers import MCC_RESTAURANT, Grant, Mode, Terms, VoucherClient, programme_name
from chain.deploy import deploy_all
from chain.exceptions import ContractError
from chain.sender import TxResult
from services.common.refunds import Paid, with_purses
from tests.conftest import identity
from tests.helpers import assert_reverts
from tests.properties.models.collective import Coll, Prop
from tests.properties.models.common import BPS, Move, day, weighted
from tests.properties.models.disburse import Batch
from tests.properties.models.hardwallet import CardModel, Uploaded, time_or_status_refusal
from tests.properties.models.prepaid import Model as PrepaidModel
from tests.properties.models.prepaid import Pkg
from tests.properties.models.purses import PurseBook, PurseProgrammeModel
from tests.properties.models.refunds import ZERO, Bill
from tests.properties.models.vouchers import Programme
from wallets.hardwallet import CardRefused, HardWallet

HOUR = 3_600
DAY = 24 * HOUR
YUAN = 100

# -- who is who ------------------------------------------------------------------------------
ADMIN, OPERATOR, REGULATOR = dev_account(0), dev_account(1), dev_account(2)  # REGULATOR: also township
# People of three tiers (2: large caps; 3: 20,000 / 5,000 / 10,000 yuan; 4: 10,000 / 2,000 / 5,000).
ALICE, BOB, CAROL = dev_account(3), dev_account(4), dev_account(5)
PEOPLE = [ALICE, BOB, CAROL]
PEOPLE_TIERS = {ALICE.address: 2, BOB.address: 3, CAROL.address: 4}
# Merchants (tier 2): a gym (no voucher programme pays it) and a canteen.
GYM, CANTEEN = dev_account(6), dev_account(7)
MERCHANTS = [GYM, CANTEEN]
MERCHANT_WALLETS = {a.address for a in MERCHANTS}
MCC: dict[str, int] = {GYM.address: 7997, CANTEEN.address: MCC_RESTAURANT}
# The district office (an institution, tier 1): disbursement payer, voucher issuer, collective payer.
OFFICE = dev_account(8)
# Never registered: the disbursement checker, the collective's supervisor, and the keeper that pushes
# refunds, payouts, settlements and closes.
OFFICIAL = dev_account(9)
CHECKER = SUPERVISOR = KEEPER = OFFICIAL
STRANGER = Account.from_key(b"\x77" * 32).address  # never registered, holds no key we use
EVERYONE = [dev_account(i) for i in range(10)]
BY_ADDRESS: dict[str, LocalAccount] = {a.address: a for a in EVERYONE}

OPENING = {ALICE.address: 50_000 * YUAN, BOB.address: 15_000 * YUAN, CAROL.address: 8_000 * YUAN}
OFFICE_OPENING = 10_000_000 * YUAN
# Prepaid merchant terms: (supervised bps, ceiling). The canteen holds 60% back up to 6,000 yuan.
TERMS = {GYM.address: (BPS, 0), CANTEEN.address: (6_000, 600_000)}
# Hard wallets: alice's card, bob's wearable.
CARD_KEYS = [bytes([0xC1]) * 32, bytes([0xC2]) * 32]
CARD_HOLDERS = [ALICE, BOB]
FORMS = [CardForm.CARD, CardForm.WEARABLE]
OFFLINE_CAP, RESERVE_CAP, GRACE = 300 * YUAN, 1_000 * YUAN, DAY
# Earmarked card purses (CardPurses): the office's canteen meal allowance, back to the office at
# expiry, and the gym's own purse, spendable at the gym and the canteen, the holder's at expiry; the
# machine creates more (either funder, either choice at expiry, any of these sets of categories).
MEALS, GYM_PURSE = 1, 2
PURSE_FUNDERS = [OFFICE, GYM]
PURSE_CATEGORIES = [(MCC_RESTAURANT,), (MCC[GYM.address],), (MCC[GYM.address], MCC_RESTAURANT)]
# The collective: alice and bob on the committee, carol treasurer; up to 2,000 yuan a committee
# approval, up to 20,000 the supervisor's too, with an hour's time lock; proposals live two days.
CID = 1
OFFICERS = [(ALICE, OfficerRole.COMMITTEE), (BOB, OfficerRole.COMMITTEE), (CAROL, OfficerRole.TREASURER)]
TIERS = [Tier(2_000 * YUAN, 1), Tier(20_000 * YUAN, 1, True, HOUR)]
LIFETIME = 2 * DAY
BUDGETS = [30_000 * YUAN, 5_000 * YUAN]
COLLECTIVE_PAYEES = [GYM.address, CANTEEN.address, ALICE.address, STRANGER]
# Payments to a payee executed in this many Beijing days (today included) count toward the tier of a
# new proposal to it (CollectiveFund's default split window; the machine never moves it).
SPLIT_WINDOW_DAYS = 30
BEIJING = 8 * HOUR  # split-window days are Beijing calendar days

Expected = tuple[str, tuple[Any, ...]] | None  # None: success; else (custom error, its arguments)

# -- profiles --------------------------------------------------------------------------------
# Short (make test): derandomized, a fixed set of sequences, about a minute on a quiet machine.
# Long (XCPAY_FUZZ=long, make audit): random sequences, thousands of steps in all.
PROFILES = {
    "short": settings(
        max_examples=8,
        stateful_step_count=30,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    ),
    "long": settings(
        max_examples=int(os.environ.get("XCPAY_FUZZ_EXAMPLES", "40")),
        stateful_step_count=int(os.environ.get("XCPAY_FUZZ_STEPS", "60")),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    ),
}
PROFILE = os.environ.get("XCPAY_FUZZ", "short")
# The aggregate checks (every balance, the supply, each family's totals against what its contract
# holds, every card and the collective) run after every step in both profiles. Each object's own
# record (a package, a batch, a programme, a proposal, a mandate) is compared after every step
# in the long profile, and in the short one after each step that acted on it: a step acts on one
# object at most, so that keeps every change checked at a fraction of the calls.
DEEP = PROFILE == "long"

STATS = {"examples": 0, "steps": 0, "wrong_role": 0, "reverted": 0, "succeeded": 0}

_base: dict[str, Any] = {}
# The machine's model, copied as it stands after the opening and restored at each example's start.
MODEL_STATE = (
    "escrow", "contracts", "model", "batches", "programmes", "coll", "props", "cards", "by_card", "pool",
    "mandates", "refs", "touched", "bills", "purses", "receipts", "refund_refs",
)  # fmt: skip


@dataclass
class Clients:
    w3: Web3
    cash: CashClient
    prepaid: PrepaidClient
    disburse: DisbursementClient
    vouchers: VoucherClient
    fund: CollectiveClient
    hw: HardWalletClient
    quickpay: QuickPayClient
    refunds: RefundsClient


def role(contract: Any, name: str) -> bytes:
    return bytes(contract.functions[name]().call())


def base_chain() -> tuple[Clients, Any]:
    """One chain for the module, every family deployed and set up; examples revert to it."""
    if not _base:
        w3 = in_process()
        # As in the family machines: let the one-run gas estimator installed on the class work.
        vars(w3.provider.ethereum_tester.backend.chain).pop("gas_estimator", None)
        # Read-only calls carry a sender, so that eth-tester's middleware does not look up the node's
        # accounts (three requests) for every one of the many calls of the invariants.
        w3.eth.default_account = ADMIN.address
        manifest = deploy_all(w3)
        cash = CashClient(w3, manifest)
        c = Clients(
            w3,
            cash,
            PrepaidClient(w3, manifest, cash.tx),
            DisbursementClient(w3, manifest, cash.tx),
            VoucherClient(w3, manifest, cash.tx),
            CollectiveClient(w3, manifest, cash.tx),
            HardWalletClient(w3, manifest, cash.tx),
            QuickPayClient(w3, manifest, cash.tx),
            RefundsClient(w3, manifest, cash.tx),
        )
        # Wallets and opening balances.
        for person in PEOPLE:
            tier = PEOPLE_TIERS[person.address]
            cash.register(OPERATOR, person.address, Kind.PERSONAL, tier, 0, identity(person.address))
            cash.mint(OPERATOR, person.address, OPENING[person.address])
        for merchant in MERCHANTS:
            cash.register(
                OPERATOR,
                merchant.address,
                Kind.MERCHANT,
                2,
                MCC[merchant.address],
                identity(merchant.address),
            )
        cash.register(OPERATOR, OFFICE.address, Kind.INSTITUTION, 1, 0, identity("office"))
        cash.mint(OPERATOR, OFFICE.address, OFFICE_OPENING)
        # Allowances: everyone who pays a family contract lets it take what the rules allow.
        for spender in (c.disburse.contract.address, c.vouchers.address, c.fund.address):
            cash.approve(OFFICE, spender, 2**255)
        for person in PEOPLE:
            cash.approve(person, c.prepaid.escrow.address, 2**255)
            c.vouchers.approve_cash(person, 2**255)
            c.hw.approve(person, 2**255)
            c.quickpay.approve(person, 2**255)
        for funder in PURSE_FUNDERS:  # purse funders let the settlement pull what they put on purses
            c.hw.approve(funder, 2**255)
        for merchant in MERCHANTS:  # merchants let the refunds contract pull what they refund
            c.refunds.approve(merchant, 2**255)
        # Prepaid: both merchants enrolled.
        for merchant in MERCHANTS:
            c.prepaid.enrol(REGULATOR, merchant.address, *TERMS[merchant.address])
        # Disbursement: the office's checker.
        c.disburse.set_officer(OFFICE, CHECKER.address, Officer.CHECKER)
        # Collective: created by the township, the year opened by its supervisor.
        cid, _ = c.fund.create(
            REGULATOR, SUPERVISOR.address, b"\1" * 32, [(a.address, r) for a, r in OFFICERS], TIERS, LIFETIME
        )
        assert cid == CID
        lines = [(f"line {i}".encode().ljust(32, b"\0"), b) for i, b in enumerate(BUDGETS)]
        c.fund.open_year(SUPERVISOR, CID, 2025, lines)
        # Hard wallets.
        c.hw.set_limits(OPERATOR, OFFLINE_CAP, RESERVE_CAP, GRACE)
        for key, holder, form in zip(CARD_KEYS, CARD_HOLDERS, FORMS, strict=True):
            c.hw.register_card(OPERATOR, Account.from_key(key).address, holder.address, form)
        _base["clients"] = c
        _base["limits"] = {
            a: info.limits
            for a in [*(p.address for p in PEOPLE), *(m.address for m in MERCHANTS), OFFICE.address]
            if (info := cash.wallet(a)).limits is not None and not info.cap_exempt
        }
        _base["roles"] = {
            "issuer": role(cash.cash, "ISSUER_ROLE"),
            "regulator": role(cash.registry, "REGULATOR_ROLE"),
            "cash_regulator": role(cash.cash, "REGULATOR_ROLE"),
            "registrar": role(cash.registry, "REGISTRAR_ROLE"),
            "prepaid_regulator": role(c.prepaid.escrow, "REGULATOR_ROLE"),
            "township": role(c.fund.fund, "TOWNSHIP_ROLE"),
            "hw_operator": role(c.hw.contract, "OPERATOR_ROLE"),
            "recorder": role(c.refunds.contract, "RECORDER_ROLE"),
        }
        _base["snap"] = devtools.snapshot(w3)
    return _base["clients"], _base["snap"]


@dataclass
class AllModel(PrepaidModel):
    """The prepaid model (packages, closed merchants) extended to the whole token.

    ``simulate`` is DigitalCash._update for each movement in turn, as in the prepaid model, plus the
    registration check; wallets absent from ``limits`` (the family contracts) are cap-exempt. A move
    with an owner is a family's ``payFor``: the owner registered and unfrozen, the payee a merchant
    where the scene requires one, then the transfer.
    """

    registered: set[str] = field(default_factory=set)
    supply: int = 0

    def simulate(
        self, moves: list[Move], day: int
    ) -> tuple[Expected, dict[str, int], dict[str, tuple[int, int]]]:
        balances, spent = dict(self.balances), dict(self.spent)
        for frm, to, amount, *pay_for in moves:
            if pay_for:  # DigitalCash.payFor: the owner first, then the payee's kind, then the transfer
                owner, merchant_only = pay_for
                if (refused := self.admitted(owner)) is not None:
                    return refused, balances, spent
                if merchant_only and to not in MERCHANT_WALLETS:
                    return ("PayeeNotMerchant", (to,)), balances, spent
            if frm not in self.registered:
                return ("WalletNotRegistered", (frm,)), balances, spent
            if frm in self.frozen:
                return ("WalletFrozen", (frm,)), balances, spent
            limits = self.limits.get(frm)
            if limits is not None:
                if amount > limits.payment_cap:
                    return ("TierPaymentCapExceeded", (frm, limits.payment_cap, amount)), balances, spent
                d, s = spent.get(frm, (day, 0))
                after = (s if d == day else 0) + amount
                if after > limits.daily_cap:
                    return ("TierDailyCapExceeded", (frm, limits.daily_cap, after)), balances, spent
                spent[frm] = (day, after)
            refused = self.admitted(to)
            if refused is not None:
                return refused, balances, spent
            if balances[frm] < amount:
                return ("ERC20InsufficientBalance", (frm, balances[frm], amount)), balances, spent
            balances[frm] -= amount
            balances[to] += amount
            if (refused := self.over_cap(to, balances)) is not None:
                return refused, balances, spent
        return None, balances, spent

    def admitted(self, wallet: str) -> Expected:
        if wallet not in self.registered:
            return ("WalletNotRegistered", (wallet,))
        if wallet in self.frozen:
            return ("WalletFrozen", (wallet,))
        return None

    def over_cap(self, wallet: str, balances: dict[str, int]) -> Expected:
        limits = self.limits.get(wallet)
        if limits is not None and balances[wallet] > limits.balance_cap:
            return ("TierBalanceCapExceeded", (wallet, limits.balance_cap, balances[wallet]))
        return None

    def apply(self, state: tuple[dict[str, int], dict[str, tuple[int, int]]]) -> None:
        self.balances, self.spent = state


@dataclass
class MandateModel:
    holder: str
    merchant: str
    per_payment_cap: int
    daily_cap: int
    expires_at: int
    revoked: bool = False
    day: int = 0
    spent_today: int = 0
    total_pulled: int = 0
    refs: set[bytes] = field(default_factory=set)


def copy_model(state: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of the machine's model. Simulated secure elements refuse to be copied (a card's
    key must not be): each is personalised again with its key, counter and offline balance."""
    memo = {
        id(card.se): HardWallet(
            key,
            card.se.domain,
            form=card.se.form,
            offline_cap=card.se.offline_cap,
            counter=card.se.counter,
            offline_balance=card.se.offline_balance,
        )
        for key, card in zip(CARD_KEYS, state["cards"], strict=True)
    }
    return copy.deepcopy(state, memo)


def counted(method: Callable[..., Any]) -> Callable[..., Any]:
    """Count a rule's runs (for the step figure printed at the end)."""

    @functools.wraps(method)
    def wrapper(self: AllFamiliesMachine, *args: Any, **kwargs: Any) -> Any:
        STATS["steps"] += 1
        self.touched.clear()
        return method(self, *args, **kwargs)

    return wrapper


def has(attribute: str) -> Callable[[AllFamiliesMachine], bool]:
    return lambda machine: bool(getattr(machine, attribute))


# Amounts: often small; often exactly a payment cap (tier 4: 2,000 yuan, tier 3: 5,000), so that
# a few payments in a day reach a daily cap; sometimes above every cap but tier 2's; now and then 0.
amounts = weighted(
    (4, st.integers(1, 3_000 * YUAN)),
    (2, st.sampled_from([2_000 * YUAN, 5_000 * YUAN])),
    (1, st.integers(3_000 * YUAN, 60_000 * YUAN)),
    (1, st.just(0)),
)
people = st.sampled_from(PEOPLE)
merchants = st.sampled_from(MERCHANTS)
wallets = st.sampled_from([*(a.address for a in PEOPLE + MERCHANTS), OFFICE.address, STRANGER])


class AllFamiliesMachine(RuleBasedStateMachine):
    # -- setup -----------------------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        """Revert to the opening: every family with live objects (see ``_open``)."""
        c, snap = base_chain()
        self.c = c
        self.w3 = c.w3
        self.cash = c.cash
        devtools.revert(self.w3, snap)
        self.cash.tx.nonces.reset()
        STATS["examples"] += 1
        if "opening" in _base:
            vars(self).update(copy_model(_base["opening"]))
        else:  # the first example builds the opening, through the rules and the model
            self._fresh_model()
            steps = STATS["steps"]
            self._open()
            STATS["steps"] = steps
            _base["opening"] = copy_model({k: getattr(self, k) for k in MODEL_STATE})
        _base["snap"] = devtools.snapshot(self.w3)  # eth-tester snapshots are single-use
        self.ghost: dict[str, tuple[Any, ...]] = {}  # frozen wallet -> what it owned at the last check
        self.touched.clear()

    def _open(self) -> None:
        """Packages, an approved batch, a programme with grants, income and approved proposals,
        loaded cards with payments waiting, a mandate: so that every example starts with something
        to consume, pay, spend, execute, settle and pull."""
        self.prepay(ALICE, GYM, 10, 333, 5 * DAY, 0)
        self.prepay(BOB, CANTEEN, 8, 500 * YUAN, 3 * DAY, 2_000)
        self.prepay(CAROL, GYM, 4, 150 * YUAN, 2 * DAY, BPS)
        self.create_batch(
            [
                (ALICE.address, 1_000 * YUAN),
                (STRANGER, 50 * YUAN),
                (CAROL.address, 3_000 * YUAN),
                (BOB.address, 700 * YUAN),
            ],
            2,
            4,
        )
        self._approve_batch(self.batches[0], CHECKER)
        self.create_batch([(BOB.address, 2_500 * YUAN), (GYM.address, 900 * YUAN)], 1, 2)
        self.create_programme(2_000, 4, 5)
        self._grant_vouchers(self.programmes[0], [(ALICE.address, 300 * YUAN), (CAROL.address, 500 * YUAN)])
        self.record_income(25_000 * YUAN)
        self.propose(ALICE, CANTEEN.address, 1_500 * YUAN, 0)
        self.propose(CAROL, GYM.address, 8_000 * YUAN, 0)
        self._approve_proposal(BOB, 1)
        self._approve_proposal(ALICE, 2)
        self.load_card(0, 500 * YUAN)
        self.load_card(1, 800 * YUAN)
        self.tap_card(0, CANTEEN, 120 * YUAN)
        self.tap_card(1, GYM, 90 * YUAN)
        self.grant_mandate(CAROL, CANTEEN, 200 * YUAN, 3, 5)
        # Purses: the meal allowance and the gym's purse; two card payments at the canteen settled
        # already, one paid by the meal purse and cash (refundable: the purse part to the office),
        # one by both funders' purses and cash (only its cash part refundable); then purses topped
        # up. And two code payments to refund: a transfer (which also gives the gym what it puts on
        # purses) and a voucher spend.
        self.transfer(ALICE, GYM.address, 300 * YUAN)
        self._create_purse_programme(MEALS, OFFICE, 300 * YUAN, 4 * DAY, False, PURSE_CATEGORIES[0])
        self._create_purse_programme(GYM_PURSE, GYM, 150 * YUAN, 8 * DAY, True, PURSE_CATEGORIES[2])
        self.fund_purse(0, MEALS, 60 * YUAN)
        self.fund_purse(1, GYM_PURSE, 100 * YUAN)
        self.fund_purse(1, MEALS, 100 * YUAN)
        self.tap_card(0, CANTEEN, 100 * YUAN)
        self.tap_card(1, CANTEEN, 250 * YUAN)
        self._settle([2, 3])
        self.fund_purse(0, MEALS, 200 * YUAN)
        self.fund_purse(1, GYM_PURSE, 120 * YUAN)
        self._spend_voucher(self.programmes[0], CAROL, CANTEEN, 200 * YUAN)
        # The canteen refunds 40 yuan of the card payment the meal purse paid 60 of 100: 24 back to
        # the office (the purse's share), 16 to alice; the gym's transfer is recorded.
        transfer, purse_paid = self.receipts[:2]
        assert self._record(purse_paid) and self._record(transfer)
        self._refund(purse_paid, 40 * YUAN, None)
        assert (purse_paid.refunded, purse_paid.voucher_refunded) == (40 * YUAN, 24 * YUAN)
        # The voucher spend is refunded in full: all of it back to the office, nothing to carol.
        voucher_paid = self.receipts[3]
        assert self._record(voucher_paid)
        self._refund(voucher_paid, voucher_paid.paid, None)
        assert voucher_paid.voucher_refunded == 200 * YUAN
        # Two one-hour trial purses, the gym's (the holder's at expiry) on alice's card and the
        # office's (back to it) on bob's, part spent, expire and are closed: what is left goes each
        # way.
        self._create_purse_programme(3, GYM, 50 * YUAN, HOUR, True, PURSE_CATEGORIES[2])
        self._create_purse_programme(4, OFFICE, 50 * YUAN, HOUR, False, PURSE_CATEGORIES[1])
        self.fund_purse(0, 3, 30 * YUAN)
        self.fund_purse(1, 4, 40 * YUAN)
        self.tap_card(0, GYM, 20 * YUAN)  # MEALS does not pay at the gym: the trial purse does
        self._settle([len(self.pool) - 1])
        devtools.increase_time(self.w3, HOUR)
        self._expire_purse(0, 3)
        self._expire_purse(1, 4)
        assert [p.expired for p in self.purses.programmes.values()] == [0, 0, 10 * YUAN, 40 * YUAN]
        assert len(self.props) == 2 and self.props[1].approved and len(self.pool) == 5
        assert [(b.paid, b.voucher) for b in self.receipts[:4]] == [
            (300 * YUAN, 0),
            (100 * YUAN, 60 * YUAN),
            (50 * YUAN, 0),
            (200 * YUAN, 200 * YUAN),
        ]
        assert self.purses.held == 320 * YUAN and len(self.receipts) == 5

    def _fresh_model(self) -> None:
        c = self.c
        self.escrow = c.prepaid.escrow.address
        self.contracts = {
            "prepaid": self.escrow,
            "disburse": c.disburse.contract.address,
            "vouchers": c.vouchers.address,
            "collective": c.fund.address,
            "hardwallet": c.hw.contract.address,
            "quickpay": c.quickpay.contract.address,
            "refunds": c.refunds.address,
        }
        holders = [*(a.address for a in PEOPLE + MERCHANTS), OFFICE.address, STRANGER]
        balances = {a: 0 for a in [*holders, *self.contracts.values()]}
        balances.update(OPENING)
        balances[OFFICE.address] = OFFICE_OPENING
        registered: set[str] = {*(a.address for a in PEOPLE + MERCHANTS), OFFICE.address}
        # Family contracts are registered wallets, cap-exempt but QuickPay and MerchantRefunds (they
        # hold nothing: pulls go holder -> merchant, refunds merchant -> payer and voucher payee).
        registered |= set(self.contracts.values())
        self.model = AllModel(
            escrow=self.escrow,
            limits=_base["limits"],
            balances=balances,
            registered=registered,
            supply=sum(balances.values()),
        )
        self.batches: list[Batch] = []
        self.programmes: list[Programme] = []
        self.coll = Coll(
            SUPERVISOR.address,
            {a.address: (r, slot) for slot, (a, r) in enumerate(OFFICERS)},
            list(TIERS),
            LIFETIME,
            list(BUDGETS),
            [0] * len(BUDGETS),
            year=2025,
        )
        self.coll.epoch = self.c.fund.collective(CID).epoch
        self.props: dict[int, Prop] = {}
        domain = c.hw.domain
        self.cards = [
            CardModel(h.address, HardWallet(k, domain, form=f, offline_cap=OFFLINE_CAP))
            for k, h, f in zip(CARD_KEYS, CARD_HOLDERS, FORMS, strict=True)
        ]
        self.by_card = {card.se.address: card for card in self.cards}
        for card in self.cards:
            card.registered_at = c.hw.card(card.se.address).registered_at
        self.pool: list[Uploaded] = []
        self.mandates: dict[int, MandateModel] = {}
        self.refs = 0
        self.touched: set[tuple[str, Any]] = set()  # (kind, key) of the objects the step acted on
        # Ghost ledger: every bill paid so far (a card payment, a mandate's order, a disbursement
        # row) -> the transaction and log of its one movement (see ``_paid``).
        self.bills: dict[tuple[Any, ...], tuple[str, int]] = {}
        self.purses = PurseBook()
        # Confirmed payments of people to merchants that a merchant may refund (code payments: a
        # transfer, a voucher spend; card payments), as the services record them; the refund
        # references used so far.
        self.receipts: list[Bill] = []
        self.refund_refs: list[bytes] = []

    # -- helpers ---------------------------------------------------------------------------

    def _touch(self, kind: str, key: Any) -> Any:
        self.touched.add((kind, key))
        return key

    def _due(self, kind: str, key: Any) -> bool:
        """Compare this object's record with the model now? (See DEEP.)"""
        return DEEP or (kind, key) in self.touched

    def _now(self) -> int:
        """The block.timestamp the next transaction will see."""
        return int(self.w3.provider.ethereum_tester.get_block_by_number("pending")["timestamp"])

    def _run(self, what: str, call: Callable[[], Any], expected: Expected) -> Any:
        event(f"{what}: {expected[0] if expected else 'ok'}")
        try:
            result = call()
        except ContractError as exc:
            assert (exc.name, exc.args_tuple) == expected, f"{what}: expected {expected}, got {exc.signature}"
            STATS["reverted"] += 1
            return None
        assert expected is None, f"{what}: expected {expected}, but the call succeeded"
        STATS["succeeded"] += 1
        return result

    def _moves(self, moves: list[Move]) -> tuple[Expected, Any]:
        """What the token says to ``moves`` in the next transaction, and the token state after."""
        expected, *state = self.model.simulate([m for m in moves if m[2] > 0], day(self._now()))
        return expected, state

    def _paid(
        self, result: TxResult, bills: list[tuple[tuple[Any, ...], str, str, int]], log: str = "PaidFor"
    ) -> None:
        """Ghost ledger: each of ``bills`` (key, owner, payee, amount; paid by ``result``) was never
        paid before, and is paid by exactly one movement of its own: one ``PaidFor`` (one
        ``Transfer`` for a pull) log of that owner, payee and amount, counted for no other bill.
        (A bill with nothing covered, a clone's shortfall, moves nothing and takes no log.)"""
        logs = [
            (
                e.log_index,
                (e["owner"], e["to"], e["amount"]) if log == "PaidFor" else (e["from"], e["to"], e["value"]),
            )
            for e in result.named(log)
        ]
        for key, owner, payee, amount in bills:
            assert key not in self.bills, f"{key} paid twice: {self.bills[key]} and {result.tx_hash}"
            index = None
            if amount > 0:
                index = next((i for i, (_, what) in enumerate(logs) if what == (owner, payee, amount)), None)
                assert index is not None, f"{key}: no {log}({owner}, {payee}, {amount}) in {result.tx_hash}"
                index = logs.pop(index)[0]
            self.bills[key] = (result.tx_hash, -1 if index is None else index)
        assert not logs or log == "Transfer", f"movements paying no bill: {logs}"

    def _owned(self, wallet: str) -> tuple[Any, ...]:
        """What the freeze table protects of ``wallet``, read from the chain: its balance; each of
        its prepaid packages (status, used, held, released, refunded); each of its cards (loaded,
        settled, refunded, reserve); what its mandates pulled; what it spent of vouchers."""
        c = self.c
        packages = []
        for pid, pkg in sorted(self.model.packages.items()):
            if pkg.consumer == wallet:
                p = c.prepaid.package(pid)
                packages.append((pid, p.status, p.used, p.held, p.released, p.refunded))
        cards = []
        for card in self.cards:
            if card.holder == wallet:
                info = c.hw.card(card.se.address)
                cards.append((info.card, info.loaded, info.settled, info.refunded, info.reserve))
        pulled = sum(
            c.quickpay.mandate(mid).total_pulled for mid, m in self.mandates.items() if m.holder == wallet
        )
        spent = sum(c.vouchers.holding(p.pid, wallet).spent for p in self.programmes)
        return (self.cash.balance_of(wallet), tuple(packages), tuple(cards), pulled, spent)

    def _code_receipt(
        self, result: TxResult, payer: str, merchant: str, paid: int, voucher: int = 0, payee: str = ZERO
    ) -> None:
        """A payment code's payment (a person's transfer to a merchant, or a voucher spend: its
        voucher share back to the programme's issuer on a refund), refundable once recorded."""
        if paid == 0 or payer not in PEOPLE_TIERS or merchant not in MERCHANT_WALLETS:
            return
        ref = f"{len(self.receipts)}:{result.tx_hash}"
        pid = payment_id("code", self.cash.tx.chain_id, ref)
        self.receipts.append(
            Bill("code", ref, pid, merchant, payer, paid, voucher, payee if voucher else ZERO)
        )

    def _toggle_freeze(self, wallet: str) -> None:
        if wallet in self.model.frozen:
            self._run("unfreeze", lambda: self.cash.unfreeze(REGULATOR, wallet), None)
            self.model.frozen.discard(wallet)
        else:
            self._run("freeze", lambda: self.cash.freeze(REGULATOR, wallet), None)
            self.model.frozen.add(wallet)

    # == cash ==============================================================================

    @rule(to=wallets, amount=amounts)
    @counted
    def mint(self, to: str, amount: int) -> None:
        expected = ("ZeroAmount", ()) if amount == 0 else self.model.admitted(to)
        balances = dict(self.model.balances)
        balances[to] += amount
        if expected is None:
            expected = self.model.over_cap(to, balances)
        if self._run("mint", lambda: self.cash.mint(OPERATOR, to, amount), expected):
            self.model.balances = balances
            self.model.supply += amount

    @rule(sender=st.sampled_from(PEOPLE + MERCHANTS), to=wallets, amount=amounts)
    @counted
    def transfer(self, sender: LocalAccount, to: str, amount: int) -> None:
        expected, *state = self.model.simulate([(sender.address, to, amount)], day(self._now()))
        if result := self._run("transfer", lambda: self.cash.transfer(sender, to, amount), expected):
            self.model.apply(state)
            self._code_receipt(result, sender.address, to, amount)

    @rule(sender=st.sampled_from([BOB, CAROL]), merchant=merchants, delta=st.sampled_from([0, 1, -1]))
    @counted
    def pay_up_to_the_daily_cap(self, sender: LocalAccount, merchant: LocalAccount, delta: int) -> None:
        """A resident pays, again and again, what is left of the day's allowance (the payment cap at
        most), a fen more or a fen less, until a payment is refused: the daily cap is reached
        exactly, then passed (or the balance, a freeze or the merchant's cap stops it first)."""
        limits = self.model.limits[sender.address]
        for _ in range(4):
            today = day(self._now())
            d, spent = self.model.spent.get(sender.address, (today, 0))
            left = limits.daily_cap - (spent if d == today else 0)
            amount = max(1, min(limits.payment_cap, left + delta))
            expected, *state = self.model.simulate([(sender.address, merchant.address, amount)], today)
            pay = functools.partial(self.cash.transfer, sender, merchant.address, amount)
            if not (result := self._run("pay to the cap", pay, expected)):
                return
            self.model.apply(state)  # type: ignore[arg-type]
            self._code_receipt(result, sender.address, merchant.address, amount)

    @rule(holder=st.sampled_from(PEOPLE + MERCHANTS), amount=st.integers(1, 5_000 * YUAN))
    @counted
    def redeem(self, holder: LocalAccount, amount: int) -> None:
        wallet = holder.address
        self.cash.approve(holder, OPERATOR.address, amount)  # approving is not a movement
        expected = self.model.admitted(wallet)
        if expected is None and self.model.balances[wallet] < amount:
            expected = ("ERC20InsufficientBalance", (wallet, self.model.balances[wallet], amount))
        if self._run("redeem", lambda: self.cash.redeem(OPERATOR, wallet, amount), expected):
            self.model.balances[wallet] -= amount
            self.model.supply -= amount

    @rule(wallet=st.sampled_from([*(a.address for a in PEOPLE + MERCHANTS), OFFICE.address, "collective"]))
    @counted
    def toggle_freeze(self, wallet: str) -> None:
        """The regulator freezes a wallet or unfreezes it (or the supervisor the collective). The
        office too: a frozen payer's payouts and reclaims wait whole, a frozen issuer grants nothing."""
        if wallet == "collective":
            self._toggle_collective_freeze()
        else:
            self._toggle_freeze(wallet)

    @rule(person=people, merchant=merchants, amount=st.integers(1, 300 * YUAN))
    @counted
    def a_frozen_owner_tries_every_family(
        self, person: LocalAccount, merchant: LocalAccount, amount: int
    ) -> None:
        """The regulator freezes a person (unless frozen already), whose money then is asked to move
        through every family at once: a session of each open package of theirs, the upload of their
        card's collected payments, a pull on each of their mandates, a voucher spend, a transfer.
        Each outcome is predicted as usual (the model knows the freeze); and, as the freeze table
        says, nothing the person owns moved (the ghost check of the invariant, within this step)."""
        wallet = person.address
        if wallet not in self.model.frozen:
            self._toggle_freeze(wallet)
        before = self._owned(wallet)
        for pid, pkg in sorted(self.model.packages.items()):
            if pkg.consumer == wallet and pkg.status == PackageStatus.OPEN:
                self._consume(self._touch("package", pid), 1)
        cards = {card.se.address for card in self.cards if card.holder == wallet}
        if mine := [k for k, up in enumerate(self.pool) if up.signed.payment.card in cards]:
            self._settle(mine[-5:])
        for mid, m in sorted(self.mandates.items()):
            if m.holder == wallet:
                self.refs += 1
                self._pull(self._touch("mandate", mid), amount, order_ref(f"order {self.refs}"))
        if holding := [p for p in self.programmes if p.balance(wallet)]:
            self._spend_voucher(holding[0], person, CANTEEN, amount)
        owed = [b for b in self.receipts if b.payer == wallet and b.left > 0]
        if owed and self._record(owed[0]):  # recorded at its first refund, as the services do
            self._refund(owed[0], min(owed[0].left, amount), None)  # its cash part waits
        expected, *state = self.model.simulate([(wallet, merchant.address, amount)], day(self._now()))
        if self._run("transfer", lambda: self.cash.transfer(person, merchant.address, amount), expected):
            self.model.apply(state)  # type: ignore[arg-type]
        assert self._owned(wallet) == before, f"frozen {wallet} moved: {before} -> {self._owned(wallet)}"

    @rule(seconds=st.sampled_from([HOUR, 6 * HOUR, DAY, 2 * DAY + 1, 5 * DAY, 11 * DAY]), sweep=st.booleans())
    @counted
    def time_passes(self, seconds: int, sweep: bool) -> None:
        """The clock jumps; with ``sweep``, the keeper then closes every card purse whose programme
        has expired (what is left to the funder or the holder, or it waits if they are frozen)."""
        target = self._now() + 1 + seconds
        devtools.increase_time(self.w3, seconds)
        assert self._now() == target
        if not sweep:
            return
        now = self._now()
        for i, card in enumerate(self.cards):
            for pid, _ in list(self.purses.card(card.se.address).slots):
                if now > self.purses.programmes[pid].expires_at:
                    self._expire_purse(i, pid)

    # == prepaid ===========================================================================

    @rule(
        consumer=people,
        merchant=merchants,
        sessions=st.integers(1, 12),
        unit_price=weighted((3, st.integers(1, 500 * YUAN)), (1, st.integers(500 * YUAN, 3_000 * YUAN))),
        end_in=st.integers(HOUR, 10 * DAY),
        fee_bps=st.integers(0, BPS),
    )
    @counted
    def prepay(
        self,
        consumer: LocalAccount,
        merchant: LocalAccount,
        sessions: int,
        unit_price: int,
        end_in: int,
        fee_bps: int,
    ) -> None:
        c, m = consumer.address, merchant.address
        bps, ceiling = TERMS[m]
        total = sessions * unit_price
        held = total * bps // BPS
        immediate = total - held
        fee = held * fee_bps // BPS
        ts = self._now()
        expires = ts + end_in
        state: Any = None
        expected: Expected
        if m in self.model.closed:
            expected = ("PrepaidMerchantClosed", (m,))
        elif m in self.model.frozen:
            expected = ("PrepaidMerchantFrozen", (m,))
        elif ceiling and total > ceiling:
            expected = ("PrepaidCeilingExceeded", (m, ceiling, total))
        else:
            expected, state = self._moves([(c, self.escrow, total), (self.escrow, m, immediate, c, True)])
        result = self._run(
            "prepay",
            lambda: self.c.prepaid.prepay(consumer, m, sessions, unit_price, expires, fee, approve=False)[1],
            expected,
        )
        if result is None:
            return
        pid = self._touch("package", len(self.model.packages) + 1)
        assert result.named("PackagePrepaid")[0]["id"] == pid
        self.model.packages[pid] = Pkg(c, m, expires, sessions, unit_price, fee, total, immediate, held)
        self.model.apply(state)

    def _package(self, data: st.DataObject) -> int:
        open_ids = self.model.open_ids()
        any_id = st.integers(1, len(self.model.packages) + 1)
        pid = data.draw(weighted((3, st.sampled_from(open_ids)), (1, any_id)) if open_ids else any_id)
        return self._touch("package", pid)

    def _consume_expected(self, caller: str, pid: int, sessions: int) -> tuple[Expected, int, Any]:
        expected = self.model.expect_open(pid)
        if expected is None and caller != self.model.packages[pid].consumer:
            expected = ("PrepaidNotConsumer", (pid, caller))
        if expected is not None:
            return expected, 0, None
        outcome, amount, state = self.model.release(pid, sessions, self._now())
        if outcome is None and amount == 0:
            state = (self.model.balances, self.model.spent)
        return outcome, amount, state

    @precondition(lambda self: self.model.packages)
    @rule(data=st.data(), sessions=st.integers(1, 6))
    @counted
    def consume(self, data: st.DataObject, sessions: int) -> None:
        self._consume(self._package(data), sessions)

    def _consume(self, pid: int, sessions: int) -> None:
        pkg = self.model.packages.get(pid)
        consumer = BY_ADDRESS[pkg.consumer] if pkg else ALICE
        expected, amount, state = self._consume_expected(consumer.address, pid, sessions)
        if self._run("consume", lambda: self.c.prepaid.consume(consumer, pid, sessions), expected) is None:
            return
        assert pkg is not None
        pkg.used += sessions
        pkg.held -= amount
        pkg.released += amount
        if pkg.used == pkg.sessions:
            pkg.status = PackageStatus.CONSUMED
        self.model.apply(state)

    @precondition(
        lambda self: any(self.model.refundable(p, self._now()) for p in self.model.packages.values())
    )
    @rule(data=st.data())
    @counted
    def refund(self, data: st.DataObject) -> None:
        """A keeper refunds a package after its end date or its merchant's closure."""
        pid = self._package(data)
        pkg = self.model.packages.get(pid)
        state: Any = None
        expected = self.model.expect_open(pid)
        if expected is None:
            assert pkg is not None
            if not self.model.refundable(pkg, self._now()):
                expected = ("PrepaidNotRefundable", (pid,))
            elif pkg.consumer in self.model.frozen:
                expected = ("PrepaidConsumerFrozen", (pid, pkg.consumer))
            else:
                expected, state = self._moves([(self.escrow, pkg.consumer, pkg.held, pkg.consumer, False)])
        if self._run("refund", lambda: self.c.prepaid.refund(KEEPER, pid), expected) is None:
            return
        assert pkg is not None
        pkg.refunded += pkg.held
        pkg.held = 0
        pkg.status = PackageStatus.REFUNDED
        self.model.apply(state)

    @precondition(lambda self: len(self.model.packages) >= 5)
    @rule(data=st.data())
    @counted
    def close_merchant(self, data: st.DataObject) -> None:
        m = data.draw(st.sampled_from([a.address for a in MERCHANTS]), label="merchant")
        expected: Expected = ("PrepaidMerchantClosed", (m,)) if m in self.model.closed else None
        if self._run("close merchant", lambda: self.c.prepaid.close_merchant(REGULATOR, m), expected):
            self.model.closed.add(m)

    # == disbursement ======================================================================

    @rule(
        rows=st.lists(
            st.tuples(
                st.sampled_from([*(a.address for a in PEOPLE + MERCHANTS), STRANGER]),
                st.integers(1, 4_000 * YUAN),
            ),
            min_size=1,
            max_size=5,
        ),
        chunk=st.integers(1, 3),
        days=st.integers(1, 6),
    )
    @counted
    def create_batch(self, rows: list[tuple[str, int]], chunk: int, days: int) -> None:
        ref = f"all-{len(self.batches)}"
        bid = batch_id(OFFICE.address, ref)  # ids are scoped by payer
        table = [Row(r, amount) for r, amount in rows]
        total = sum(r.amount for r in table)
        ends_at = self._now() + days * DAY
        self._run(
            "create batch",
            lambda: self.c.disburse.create_explicit(
                OFFICE, ref, OFFICE.address, purpose_tag("salary"), ends_at, total
            ),
            None,
        )
        chunks = [(i, min(chunk, len(table) - i)) for i in range(0, len(table), chunk)]
        for first, count in chunks:
            part = table[first : first + count]
            self._run("add rows", lambda part=part: self.c.disburse.add_rows(OFFICE, bid, part), None)
        self.batches.append(Batch(bid, BatchKind.EXPLICIT, table, chunks, total, ends_at))
        self._touch("batch", bid)

    def _approve_batch_expected(self, b: Batch, signer: str) -> tuple[Expected, Any]:
        if b.status != BatchStatus.DRAFT:
            return ("DisburseWrongStatus", (b.bid, BatchStatus.DRAFT, b.status)), None
        if signer == OFFICE.address:
            return ("DisburseSelfApproval", (b.bid, signer)), None
        if signer != CHECKER.address:
            return ("DisburseNotChecker", (OFFICE.address, signer)), None
        if self._now() > b.ends_at:
            return ("DisburseBatchEnded", (b.bid, b.ends_at)), None
        return self._moves([(OFFICE.address, self.contracts["disburse"], b.total)])

    @precondition(has("batches"))
    @rule(data=st.data(), by_creator=st.integers(0, 5))
    @counted
    def approve_batch(self, data: st.DataObject, by_creator: int) -> None:
        b = data.draw(st.sampled_from(self.batches), label="batch")
        self._approve_batch(b, OFFICE if by_creator == 0 else CHECKER)

    def _approve_batch(self, b: Batch, signer: LocalAccount) -> None:
        self._touch("batch", b.bid)
        expected, state = self._approve_batch_expected(b, signer.address)
        if self._run("approve batch", lambda: self.c.disburse.approve(signer, b.bid), expected):
            b.status, b.funded = BatchStatus.APPROVED, b.total
            self.model.apply(state)

    @precondition(
        lambda self: any(
            b.status == BatchStatus.APPROVED and len(b.chunks_paid) < len(b.chunks) for b in self.batches
        )
    )
    @rule(data=st.data())
    @counted
    def pay_chunk(self, data: st.DataObject) -> None:
        every = [(b, c) for b in self.batches for c in range(len(b.chunks))]
        todo = [(b, c) for b, c in every if b.status == BatchStatus.APPROVED and c not in b.chunks_paid]
        pick = (
            weighted((3, st.sampled_from(todo)), (1, st.sampled_from(every)))
            if todo
            else st.sampled_from(every)
        )
        b, c = data.draw(pick, label="batch and chunk")  # mostly a chunk still to pay
        self._touch("batch", b.bid)
        expected: Expected = None
        if b.status != BatchStatus.APPROVED:
            expected = ("DisburseWrongStatus", (b.bid, BatchStatus.APPROVED, b.status))
        elif self._now() > b.ends_at:
            expected = ("DisburseBatchEnded", (b.bid, b.ends_at))
        elif self.model.admitted(OFFICE.address) is not None:  # the page stops whole, no exceptions
            expected = ("DisbursePayerNotAdmitted", (b.bid, OFFICE.address))
        elif c in b.chunks_paid:
            expected = ("DisburseChunkPaid", (b.bid, c))
        first, count = b.chunks[c]
        rows = b.rows[first : first + count]
        now = self._now()
        result = self._run("pay chunk", lambda: self.c.disburse.pay_chunk(KEEPER, b.bid, c, rows), expected)
        if result is None:
            return
        b.chunks_paid.add(c)
        held = {}
        # Each row on its own: a refusal of the recipient holds it (the payer was admitted above).
        for i, row in enumerate(rows, start=first):
            refused, *state = self.model.simulate(
                [(self.contracts["disburse"], row.recipient, row.amount, OFFICE.address, False)], day(now)
            )
            if refused is None:
                b.paid += row.amount
                self.model.apply(state)  # type: ignore[arg-type]
            else:
                b.exceptions[i] = held[i] = row.amount
        assert {e.args["index"]: e.args["amount"] for e in result.named("PayoutException")} == held
        self._paid(
            result,
            [
                (("row", b.bid, e["index"]), OFFICE.address, e["recipient"], e["amount"])
                for e in result.named("Paid")
            ],
        )

    @precondition(lambda self: any(b.status == BatchStatus.APPROVED for b in self.batches))
    @rule(data=st.data())
    @counted
    def reclaim(self, data: st.DataObject) -> None:
        b = data.draw(st.sampled_from(self.batches), label="batch")
        self._touch("batch", b.bid)
        expected: Expected = None
        state: Any = None
        if b.status != BatchStatus.APPROVED:
            expected = ("DisburseWrongStatus", (b.bid, BatchStatus.APPROVED, b.status))
        elif self._now() <= b.ends_at:
            expected = ("DisburseNotEnded", (b.bid, b.ends_at))
        elif self.model.admitted(OFFICE.address) is not None:  # waits until the payer is unfrozen
            expected = ("DisbursePayerNotAdmitted", (b.bid, OFFICE.address))
        else:
            expected, state = self._moves(
                [(self.contracts["disburse"], OFFICE.address, b.outstanding, OFFICE.address, False)]
            )
        if self._run("reclaim", lambda: self.c.disburse.reclaim(KEEPER, b.bid), expected):
            b.reclaimed += b.outstanding
            b.exceptions.clear()
            b.status = BatchStatus.CLOSED
            self.model.apply(state)

    # == vouchers ==========================================================================

    @rule(budget=st.integers(100, 3_000), cap=st.sampled_from([2, 4, 1]), days=st.integers(2, 8))
    @counted
    def create_programme(self, budget: int, cap: int, days: int) -> None:
        budget *= YUAN
        now = self._now()
        terms = Terms(
            programme_name(f"all {len(self.programmes)}"),
            Mode.GRANT_LIST,
            now,
            now + days * DAY,
            budget,
            budget // cap,
            0,
            0,
        )
        expected, state = self._moves([(OFFICE.address, self.c.vouchers.address, budget)])
        result = self._run(
            "create programme",
            lambda: self.c.vouchers.create(OFFICE, terms, [MCC_RESTAURANT], [], approve=False),
            expected,
        )
        if result is None:
            return
        pid = result[0]
        assert pid == len(self.programmes) + 1
        self.programmes.append(Programme(pid, terms, [MCC_RESTAURANT], set(), False))
        self._touch("programme", pid)
        self.model.apply(state)

    def _grant_refusal(self, p: Programme, holder: str, amount: int, pending: dict[str, int]) -> Expected:
        if holder not in {a.address for a in PEOPLE}:
            return ("VoucherNotPersonal", (holder,))
        after = p.holdings.get(holder, [0, 0, 0])[0] + pending.get(holder, 0) + amount
        if after > p.terms.per_person_cap:
            return ("VoucherOverPersonCap", (p.pid, holder, p.terms.per_person_cap, after))
        ungranted = p.terms.budget - p.granted - sum(pending.values())
        if amount > ungranted:
            return ("VoucherOverBudget", (p.pid, ungranted, amount))
        return None

    @precondition(has("programmes"))
    @rule(
        data=st.data(),
        rows=st.lists(
            st.tuples(
                weighted((6, st.sampled_from([a.address for a in PEOPLE])), (1, st.just(GYM.address))),
                st.integers(1, 800 * YUAN),
            ),
            min_size=1,
            max_size=4,
        ),
    )
    @counted
    def grant_vouchers(self, data: st.DataObject, rows: list[tuple[str, int]]) -> None:
        self._grant_vouchers(data.draw(st.sampled_from(self.programmes), label="programme"), rows)

    def _grant_vouchers(self, p: Programme, rows: list[tuple[str, int]]) -> None:
        self._touch("programme", p.pid)
        grants = [Grant(h, amount) for h, amount in rows]
        expected: Expected = None
        if self._now() > p.terms.expires_at:
            expected = ("VoucherExpired", (p.pid, p.terms.expires_at))
        elif OFFICE.address in self.model.frozen:  # no new grants out of a frozen issuer's budget
            expected = ("VoucherIssuerFrozen", (p.pid, OFFICE.address))
        pending: dict[str, int] = {}
        if expected is None:
            for g in grants:
                if (expected := self._grant_refusal(p, g.holder, g.amount, pending)) is not None:
                    break
                pending[g.holder] = pending.get(g.holder, 0) + g.amount
        if self._run("grant vouchers", lambda: self.c.vouchers.grant(OFFICE, p.pid, grants), expected):
            for g in grants:
                p.holdings.setdefault(g.holder, [0, 0, 0])[0] += g.amount
                p.granted += g.amount

    @precondition(has("programmes"))
    @rule(data=st.data(), holder=people, merchant=merchants, bill=st.integers(1, 600 * YUAN))
    @counted
    def spend_voucher(
        self, data: st.DataObject, holder: LocalAccount, merchant: LocalAccount, bill: int
    ) -> None:
        holding = [p for p in self.programmes if p.balance(holder.address)]
        p = data.draw(st.sampled_from(holding or self.programmes), label="programme")
        self._spend_voucher(p, holder, merchant, bill)

    def _spend_voucher(self, p: Programme, holder: LocalAccount, merchant: LocalAccount, bill: int) -> None:
        self._touch("programme", p.pid)
        m = merchant.address
        now, t = self._now(), p.terms
        expected: Expected = None
        state: Any = None
        share = 0
        if now > t.expires_at:
            expected = ("VoucherExpired", (p.pid, t.expires_at))
        elif MCC[m] not in p.categories:
            expected = ("VoucherCategoryNotAllowed", (p.pid, m, MCC[m]))
        elif holder.address in self.model.frozen:
            expected = ("VoucherHolderFrozen", (holder.address,))
        elif m in self.model.frozen:
            expected = ("VoucherMerchantFrozen", (m,))
        elif p.balance(holder.address) == 0:
            expected = ("VoucherNoBalance", (p.pid, holder.address))
        else:
            share = t.share(bill, p.balance(holder.address))
            expected, state = self._moves(
                [(self.c.vouchers.address, m, share, holder.address, True), (holder.address, m, bill - share)]
            )
        result = self._run("spend voucher", lambda: self.c.vouchers.spend(holder, p.pid, m, bill), expected)
        if result is None:
            return
        spent = result.named("Spent")[0]
        assert (spent["voucher"], spent["cash"]) == (share, bill - share)
        self._code_receipt(result, holder.address, m, bill, share, OFFICE.address)  # the issuer funded it
        p.holdings[holder.address][1] += share
        p.spent += share
        p.by_category[MCC[m]] = p.by_category.get(MCC[m], 0) + share
        self.model.apply(state)

    @precondition(lambda self: any(self._now() > p.terms.expires_at for p in self.programmes))
    @rule(data=st.data())
    @counted
    def close_programme(self, data: st.DataObject) -> None:
        p = data.draw(st.sampled_from(self.programmes), label="programme")
        self._touch("programme", p.pid)
        holders = [a.address for a in PEOPLE]
        expected: Expected = None
        state: Any = None
        plan = {h: p.balance(h) for h in holders if p.balance(h) > 0}
        if self._now() <= p.terms.expires_at:
            expected = ("VoucherNotExpired", (p.pid, p.terms.expires_at))
        elif p.budget_returned and not plan:
            expected = ("VoucherNothingToReturn", (p.pid,))
        else:
            amount = sum(plan.values()) + (0 if p.budget_returned else p.terms.budget - p.granted)
            expected, state = self._moves(
                [(self.c.vouchers.address, OFFICE.address, amount, OFFICE.address, False)]
            )
        if (
            self._run("close programme", lambda: self.c.vouchers.close(KEEPER, p.pid, holders), expected)
            is None
        ):
            return
        if not p.budget_returned:
            p.returned_budget = p.terms.budget - p.granted
            p.budget_returned = True
        for h, left in plan.items():
            p.holdings[h][2] += left
        p.returned_grants += sum(plan.values())
        self.model.apply(state)

    # == collective ========================================================================

    @rule(amount=st.integers(1, 20_000 * YUAN))
    @counted
    def record_income(self, amount: int) -> None:
        expected, state = self._moves([(OFFICE.address, self.c.fund.address, amount)])
        if self._run(
            "income", lambda: self.c.fund.record_income(OFFICE, CID, amount, 0, approve=False), expected
        ):
            self.coll.balance += amount
            self.coll.income += amount
            self.model.apply(state)

    @rule(
        proposer=weighted((4, people), (1, st.sampled_from(EVERYONE))),
        payee=st.sampled_from(COLLECTIVE_PAYEES),
        amount=weighted(
            (3, st.integers(1, 2_000 * YUAN)), (2, st.integers(2_000 * YUAN, 21_000 * YUAN)), (1, st.just(0))
        ),
        line=weighted((5, st.just(0)), (2, st.just(1)), (1, st.just(2))),
    )
    @counted
    def propose(self, proposer: LocalAccount, payee: str, amount: int, line: int) -> None:
        c = self.coll
        remaining = c.budgets[line] - c.spent[line] if line < len(c.budgets) else 0
        ts = self._now()
        expected: Expected = None
        tier: Tier | None = None
        recent = 0
        if c.frozen:
            expected = ("CollectiveFrozen", (CID,))
        elif c.role(proposer.address) == OfficerRole.NONE:
            expected = ("CollectiveNotOfficer", (CID, proposer.address))
        elif proposer.address in self.model.frozen:
            expected = ("CollectiveOfficerFrozen", (CID, proposer.address))
        elif payee not in self.model.registered:
            expected = ("CollectivePayeeNotRegistered", (payee,))
        elif payee in self.model.frozen:
            expected = ("CollectivePayeeFrozen", (payee,))
        elif amount == 0:
            expected = ("CollectiveZeroAmount", ())
        elif line >= len(c.budgets):
            expected = ("CollectiveUnknownLine", (CID, line))
        elif amount > remaining:
            expected = ("CollectiveBudgetExceeded", (CID, line, remaining, amount))
        else:
            tier = next((t for t in c.tiers if amount <= t.max_amount), None)
            if tier is None:
                expected = ("CollectiveAmountAboveTiers", (CID, amount, c.tiers[-1].max_amount))
            else:  # split payments: the basis picks the tier, the highest one above them all
                recent = self._recent_to(payee, ts)
                tier = next((t for t in c.tiers if amount + recent <= t.max_amount), c.tiers[-1])
        result = self._run(
            "propose", lambda: self.c.fund.propose(proposer, CID, payee, amount, line)[1], expected
        )
        if result is None:
            return
        assert tier is not None
        pid = self._touch("proposal", len(self.props) + 1)
        assert result.named("ProposalCreated")[0]["proposalId"] == pid
        basis = result.named("ProposalTierBasis")[0]
        assert (basis["proposalId"], basis["payee"], basis["recent"], basis["basis"]) == (
            pid,
            payee,
            recent,
            recent + amount,
        )
        self.props[pid] = Prop(
            CID, proposer.address, payee, amount, line, tier.committee, tier.township, tier.delay,
            ts + c.lifetime, c.epoch, c.year,
        )  # fmt: skip

    def _recent_to(self, payee: str, ts: int) -> int:
        """CollectiveFund.recentTo at block time ``ts``: the collective's pending proposals to
        ``payee`` (any age, stale or expired included; not rejected, cancelled or executed) plus its
        payments to it executed in the split window (today's Beijing day and the days before it)."""
        today = (ts + BEIJING) // DAY
        return sum(
            q.amount
            for q in self.props.values()
            if q.payee == payee
            and (
                q.status == ProposalStatus.PENDING
                or (q.executed_day is not None and today - q.executed_day < SPLIT_WINDOW_DAYS)
            )
        )

    def _proposal(self, data: st.DataObject) -> int:
        pending = [i for i, p in self.props.items() if p.status == ProposalStatus.PENDING]
        any_id = st.integers(1, len(self.props) + 1)
        pid = data.draw(weighted((4, st.sampled_from(pending)), (1, any_id)) if pending else any_id)
        return self._touch("proposal", pid)

    def _pending_check(self, pid: int) -> Expected:
        if pid not in self.props:
            return ("CollectiveUnknownProposal", (pid,))
        if self.props[pid].status != ProposalStatus.PENDING:
            return ("CollectiveProposalNotPending", (pid, self.props[pid].status))
        return None

    def _live(self, pid: int, p: Prop, ts: int) -> Expected:
        if p.epoch != self.coll.epoch:
            return ("CollectiveProposalStale", (pid, p.epoch, self.coll.epoch))
        if ts > p.expires_at:
            return ("CollectiveProposalExpired", (pid, p.expires_at))
        return None

    def _approve_proposal(self, caller: LocalAccount, pid: int) -> TxResult | None:
        p = self.props.get(pid)
        c = self.coll
        ts = self._now()
        expected = self._pending_check(pid)
        township = caller.address == c.supervisor
        role_, slot = c.officers.get(caller.address, (OfficerRole.NONE, 0))
        bit = 1 << slot
        if expected is None:
            assert p is not None
            if c.frozen:
                expected = ("CollectiveFrozen", (CID,))
            elif (live := self._live(pid, p, ts)) is not None:
                expected = live
            elif township:
                if p.township_approved:
                    expected = ("CollectiveAlreadyApproved", (pid, caller.address))
            elif role_ == OfficerRole.NONE:
                expected = ("CollectiveNotOfficer", (CID, caller.address))
            elif role_ != OfficerRole.COMMITTEE:
                expected = ("CollectiveNotApprover", (CID, caller.address))
            elif caller.address == p.proposer:
                expected = ("CollectiveSelfApproval", (pid, caller.address))
            elif p.approvals & bit:
                expected = ("CollectiveAlreadyApproved", (pid, caller.address))
            if expected is None and caller.address in self.model.frozen:
                expected = ("CollectiveOfficerFrozen", (CID, caller.address))
        result = self._run("approve proposal", lambda: self.c.fund.approve(caller, pid), expected)
        if result is None:
            return None
        assert p is not None
        if township:
            p.township_approved = True
        else:
            p.approvals |= bit
            p.approvers.append(caller.address)
        if not p.ready_at and p.approved:
            p.ready_at = ts
        return result

    @precondition(has("props"))
    @rule(
        data=st.data(),
        caller=weighted((5, st.sampled_from([ALICE, BOB, SUPERVISOR])), (1, st.sampled_from(EVERYONE))),
    )
    @counted
    def approve_proposal(self, data: st.DataObject, caller: LocalAccount) -> None:
        self._approve_proposal(caller, self._proposal(data))

    def _execute_expected(self, caller: str, pid: int) -> tuple[Expected, Any]:
        ts = self._now()
        expected = self._pending_check(pid)
        if expected is not None:
            return expected, None
        p, c = self.props[pid], self.coll
        remaining = c.budgets[p.line] - c.spent[p.line]
        if c.frozen:
            return ("CollectiveFrozen", (CID,)), None
        if c.role(caller) == OfficerRole.NONE:
            return ("CollectiveNotOfficer", (CID, caller)), None
        if caller in self.model.frozen:
            return ("CollectiveOfficerFrozen", (CID, caller)), None
        if (live := self._live(pid, p, ts)) is not None:
            return live, None
        if not p.approved:
            return (
                "CollectiveNotApproved",
                (pid, p.committee, p.committee_required, p.township_approved, p.township_required),
            ), None
        if ts < p.ready_at + p.delay:
            return ("CollectiveTimelocked", (pid, p.ready_at + p.delay)), None
        if p.amount > remaining:
            return ("CollectiveBudgetExceeded", (CID, p.line, remaining, p.amount)), None
        if p.amount > c.balance:
            return ("CollectiveInsufficientFunds", (CID, c.balance, p.amount)), None
        return self._moves([(self.c.fund.address, p.payee, p.amount, self.c.fund.address, False)])

    @precondition(has("props"))
    @rule(data=st.data(), caller=weighted((5, people), (1, st.sampled_from(EVERYONE))))
    @counted
    def execute_proposal(self, data: st.DataObject, caller: LocalAccount) -> None:
        pid = self._proposal(data)
        ts = self._now()
        expected, state = self._execute_expected(caller.address, pid)
        if self._run("execute proposal", lambda: self.c.fund.execute(caller, pid), expected) is None:
            return
        p = self.props[pid]
        p.status = ProposalStatus.EXECUTED
        p.executed_day = (ts + BEIJING) // DAY  # Beijing day of the block it ran in
        self.coll.spent[p.line] += p.amount
        self.coll.balance -= p.amount
        self.coll.paid += p.amount
        self.model.apply(state)

    def _toggle_collective_freeze(self) -> None:
        """The supervisor freezes the collective's account, or unfreezes it."""
        if self.coll.frozen:
            self._run("unfreeze collective", lambda: self.c.fund.unfreeze(SUPERVISOR, CID), None)
        else:
            self._run("freeze collective", lambda: self.c.fund.freeze(SUPERVISOR, CID), None)
        self.coll.frozen = not self.coll.frozen

    # == hard wallets ======================================================================

    @rule(i=st.integers(0, 1), amount=st.integers(1, 1_200 * YUAN))
    @counted
    def load_card(self, i: int, amount: int) -> None:
        card = self.cards[i]
        state: Any = None
        expected: Expected = None
        if card.status is not CardStatus.ACTIVE:
            expected = ("HardWalletWrongStatus", (card.se.address, CardStatus.ACTIVE, card.status))
        elif card.reserve + amount > RESERVE_CAP:
            expected = ("HardWalletReserveCapExceeded", (card.se.address, RESERVE_CAP, card.reserve + amount))
        else:
            expected, state = self._moves([(card.holder, self.contracts["hardwallet"], amount)])
        holder = CARD_HOLDERS[i]
        if self._run(
            "load card", lambda: self.c.hw.load(holder, card.se.address, amount, approve=False), expected
        ):
            card.loaded += amount
            card.reserve += amount
            card.se.credit(amount)
            self.model.apply(state)

    @rule(
        i=st.integers(0, 1), merchant=weighted((5, merchants), (1, people)), amount=st.integers(1, 350 * YUAN)
    )
    @counted
    def tap_card(self, i: int, merchant: LocalAccount, amount: int) -> None:
        """An offline payment: the card signs (or refuses: over its cap or its own balance); now and
        then to a person's wallet, which the settlement refuses (cards pay merchants only)."""
        try:
            signed = self.cards[i].se.sign_payment(merchant.address, amount, self._now())
        except CardRefused as exc:
            event(f"card refused: {type(exc).__name__}")
            return
        event("card signed")
        self.pool.append(Uploaded(signed, True))

    def _predict(self, up: Uploaded, now: int) -> tuple[Outcome, RejectReason, int]:
        """As the hard-wallet machine, with the token's refusal of the merchant from the model and
        the card's purses: those allowed at the merchant pay first (not a blocked card's), in slot
        order, then cash; a refusal undoes the draw. What each purse paid is kept in ``draws``."""
        p = up.signed.payment
        c = self.by_card[p.card]
        if p.counter in c.used:
            return Outcome.DUPLICATE, RejectReason.NONE, 0
        refusal = time_or_status_refusal(c, p.time, now)
        if refusal is not None:  # the cards sign at the chain's time: only the lost card's window
            return Outcome.REJECTED, refusal, 0
        takes = [0]
        if c.status is not CardStatus.BLOCKED:
            takes = self.purses.draw(p.card, MCC.get(p.merchant, 0), p.amount, now)
        earmarked = sum(takes)
        cash = min(p.amount - earmarked, c.reserve)
        covered = earmarked + cash
        if covered > 0:
            refused, *state = self.model.simulate(
                [(self.contracts["hardwallet"], p.merchant, covered, c.holder, True)], day(now)
            )
            if refused is not None:
                self.purses.undraw(p.card, takes)
                if earmarked:
                    event("card payment refused: purse draw undone")
                if refused[0] == "PayeeNotMerchant":
                    return Outcome.REJECTED, RejectReason.PAYEE_NOT_MERCHANT, 0
                if refused[0] in ("WalletFrozen", "WalletNotRegistered") and refused[1] == (c.holder,):
                    return Outcome.REJECTED, RejectReason.HOLDER_REFUSED, 0
                return Outcome.REJECTED, RejectReason.MERCHANT_REFUSED, 0
            self.model.apply(state)  # type: ignore[arg-type]
        self.draws[(p.card, p.counter)] = self.purses.spent_by(p.card, takes)
        if earmarked:
            event(f"card payment: purses paid {'all' if earmarked == p.amount else 'part'}")
        c.used.add(p.counter)
        c.reserve -= cash
        c.settled += cash
        if covered == p.amount:
            return Outcome.SETTLED, RejectReason.NONE, covered
        c.shortfall += p.amount - covered
        if c.status is CardStatus.ACTIVE:
            c.status = CardStatus.BLOCKED
        return Outcome.SHORTFALL, RejectReason.NONE, covered

    @precondition(has("pool"))
    @rule(data=st.data())
    @counted
    def settle(self, data: st.DataObject) -> None:
        """A terminal uploads collected payments, in any order, repeats allowed."""
        indices = data.draw(st.lists(st.integers(0, len(self.pool) - 1), min_size=1, max_size=5))
        self._settle(indices)

    def _settle(self, indices: list[int]) -> None:
        batch = [self.pool[k] for k in indices]
        now = self._now()
        self.draws: dict[tuple[str, int], dict[int, int]] = {}
        predicted = [self._predict(up, now) for up in batch]
        for up in batch:
            self._touch("purses", up.signed.payment.card)
        result = self.c.hw.settle(OPERATOR, [up.signed for up in batch])
        got = [(o.outcome, o.reason, o.paid) for o in result.outcomes]
        assert got == predicted, f"batch {indices}: predicted {predicted}, got {got}"
        for outcome, reason, _ in predicted:
            event(f"payment: {outcome.value} {reason.name}")
        payments = [
            (up.signed.payment, paid, outcome)
            for up, (outcome, _, paid) in zip(batch, predicted, strict=True)
        ]
        bills = [
            (("card", p.card, p.counter), self.by_card[p.card].holder, p.merchant, paid)
            for p, paid, outcome in payments
            if outcome in (Outcome.SETTLED, Outcome.SHORTFALL)
        ]
        self._paid(result.tx, bills)
        # Each purse draw of a settled payment, and no other, is reported (PurseSpent).
        spent = sorted(
            (e["card"], e["counter"], e["programme"], e["amount"]) for e in result.tx.named("PurseSpent")
        )
        assert spent == sorted(
            (card, counter, pid, amount)
            for (card, counter), by_programme in self.draws.items()
            for pid, amount in by_programme.items()
        ), f"purse draws: {spent}, predicted {self.draws}"
        for p, paid, _ in payments:
            if paid > 0 and (p.card, p.counter) in self.draws:
                self._card_receipt(p.card, p.counter, p.merchant, paid, self.draws[(p.card, p.counter)])

    def _card_receipt(self, card: str, counter: int, merchant: str, paid: int, drawn: dict[int, int]) -> None:
        """A settled card payment, refundable as the gateway records it: the cash to the holder,
        what purses paid to their funder (one funder: as the voucher part; several: not at all)."""
        parts: dict[str, int] = {}
        for pid, amount in drawn.items():
            funder = self.purses.programmes[pid].funder
            parts[funder] = parts.get(funder, 0) + amount
        ref = f"{card}:{counter}"
        holder = self.by_card[card].holder
        bill = Paid("card", ref, payment_id("card", self.c.cash.tx.chain_id, ref), merchant, holder, paid)
        bill = with_purses(bill, parts)
        # What may go back to the holder as cash is what the card's cash paid, never a purse part.
        assert bill.paid_fen - bill.voucher_fen == paid - sum(parts.values())
        if bill.paid_fen == 0:  # all of it paid by purses of several funders: nothing to refund
            return
        self.receipts.append(
            Bill(
                "card",
                ref,
                bill.payment_id,
                merchant,
                holder,
                bill.paid_fen,
                bill.voucher_fen,
                bill.voucher_payee,
            )
        )

    @precondition(lambda self: len(self.pool) >= 2)
    @rule(i=st.integers(0, 1), by_operator=st.booleans())
    @counted
    def report_lost(self, i: int, by_operator: bool) -> None:
        card = self.cards[i]
        expected: Expected = None
        if card.status not in (CardStatus.ACTIVE, CardStatus.BLOCKED):
            expected = ("HardWalletWrongStatus", (card.se.address, CardStatus.ACTIVE, card.status))
        who = OPERATOR if by_operator else CARD_HOLDERS[i]
        result = self._run("report lost", lambda: self.c.hw.report_lost(who, card.se.address), expected)
        if result:
            e = result.named("CardReportedLost")[0]
            card.status, card.lost_at, card.grace_ends_at = CardStatus.LOST, e["lostAt"], e["graceEndsAt"]
            card.signed_from = e["signedFrom"]
            assert card.grace_ends_at == card.lost_at + GRACE

    @precondition(lambda self: any(card.status is CardStatus.LOST for card in self.cards))
    @rule(i=st.integers(0, 1))
    @counted
    def return_reserve(self, i: int) -> None:
        card = self.cards[i]
        expected: Expected = None
        state: Any = None
        if card.status is not CardStatus.LOST:
            expected = ("HardWalletWrongStatus", (card.se.address, CardStatus.LOST, card.status))
        elif self._now() <= card.grace_ends_at:
            expected = ("HardWalletGraceNotOver", (card.se.address, card.grace_ends_at))
        else:
            expected, state = self._moves(
                [(self.contracts["hardwallet"], card.holder, card.reserve, card.holder, False)]
            )
        if self._run("return reserve", lambda: self.c.hw.return_reserve(KEEPER, card.se.address), expected):
            card.refunded += card.reserve
            card.reserve = 0
            card.status = CardStatus.CLOSED
            self.model.apply(state)

    # -- earmarked purses (CardPurses) -------------------------------------------------------

    @precondition(lambda self: len(self.purses.programmes) < 8)
    @rule(
        funder=st.sampled_from(PURSE_FUNDERS),
        cap=st.integers(50, 400),
        days=st.integers(1, 8),
        to_holder=st.booleans(),
        categories=st.sampled_from(PURSE_CATEGORIES),
        again=st.integers(0, 5),
    )
    @counted
    def create_purse_programme(
        self,
        funder: LocalAccount,
        cap: int,
        days: int,
        to_holder: bool,
        categories: tuple[int, ...],
        again: int,
    ) -> None:
        """The operator creates a purse programme (now and then under an id taken already)."""
        pid = 1 if again == 0 else len(self.purses.programmes) + 1
        self._create_purse_programme(pid, funder, cap * YUAN, days * DAY, to_holder, categories)

    def _create_purse_programme(
        self,
        pid: int,
        funder: LocalAccount,
        cap: int,
        runs: int,
        to_holder: bool,
        categories: tuple[int, ...],
    ) -> None:
        expires = self._now() + runs
        expected: Expected = ("PurseProgrammeExists", (pid,)) if pid in self.purses.programmes else None
        call = functools.partial(
            self.c.hw.create_purse_programme,
            OPERATOR,
            pid,
            funder.address,
            cap,
            expires,
            to_holder,
            categories,
        )
        if self._run("create purse programme", call, expected):
            self.purses.programmes[pid] = PurseProgrammeModel(
                pid, funder.address, cap, expires, to_holder, categories
            )
            self._touch("purse_programme", pid)

    @precondition(lambda self: self.purses.programmes)
    @rule(
        i=st.integers(0, 1),
        data=st.data(),
        amount=weighted((6, st.integers(1, 200 * YUAN)), (1, st.just(0))),
    )
    @counted
    def fund_purse_of_a_card(self, i: int, data: st.DataObject, amount: int) -> None:
        pid = data.draw(st.sampled_from(sorted(self.purses.programmes)), label="purse programme")
        self.fund_purse(i, pid, amount)

    def fund_purse(self, i: int, pid: int, amount: int) -> None:
        """The programme's funder puts ``amount`` on card ``i``'s purse (pulled from its wallet)."""
        card = self.cards[i]
        address = self._touch("purses", card.se.address)
        self._touch("purse_programme", pid)
        p = self.purses.programmes[pid]
        funder = BY_ADDRESS[p.funder]
        not_active: Expected = None
        if card.status is not CardStatus.ACTIVE:
            not_active = ("HardWalletWrongStatus", (address, CardStatus.ACTIVE, card.status))
        expected = self.purses.fund_refusal(address, pid, amount, funder.address, self._now(), not_active)
        state: Any = None
        if expected is None:
            expected, state = self._moves([(funder.address, self.contracts["hardwallet"], amount)])
        call = functools.partial(self.c.hw.fund_purse, funder, address, pid, amount, approve=False)
        if self._run("fund purse", call, expected):
            self.purses.fund(address, pid, amount)
            self.model.apply(state)

    @precondition(lambda self: self.purses.programmes)
    @rule(i=st.integers(0, 1), data=st.data())
    @counted
    def expire_purse(self, i: int, data: st.DataObject) -> None:
        """Anyone closes a card's purse after its programme's expiry: what is left goes to the
        funder, or to the holder, as the programme says (mostly an expired programme's purse)."""
        now = self._now()
        every = sorted(self.purses.programmes)
        over = [pid for pid in every if now > self.purses.programmes[pid].expires_at]
        pick = (
            weighted((3, st.sampled_from(over)), (1, st.sampled_from(every)))
            if over
            else st.sampled_from(every)
        )
        self._expire_purse(i, data.draw(pick, label="purse programme"))

    def _expire_purse(self, i: int, pid: int) -> None:
        card = self.cards[i]
        address = self._touch("purses", card.se.address)
        self._touch("purse_programme", pid)
        now = self._now()
        p = self.purses.programmes[pid]
        to = card.holder if p.to_holder else p.funder
        amount = self.purses.card(address).balance(pid)
        expected = self.purses.expire_refusal(address, pid, now)
        state: Any = None
        if expected is None and amount > 0:
            expected, state = self._moves([(self.contracts["hardwallet"], to, amount, to, False)])
        result = self._run("expire purse", lambda: self.c.hw.expire_purse(KEEPER, address, pid), expected)
        if result is None:
            return
        (e,) = result.named("PurseExpired")
        assert (e["card"], e["programme"], e["to"], e["amount"]) == (address, pid, to, amount)
        assert self.purses.expire(address, pid) == amount
        if state is not None:
            self.model.apply(state)
        to_whom = "holder" if p.to_holder else "funder"
        event(f"purse expired: to the {to_whom}, {'some' if amount else 'nothing'} left")

    @rule(i=st.integers(0, 1), amount=st.integers(1, 200 * YUAN))
    @counted
    def a_refused_card_payment_undoes_its_draw(self, i: int, amount: int) -> None:
        """The canteen is frozen (unless it is already) when card ``i``'s payment there is uploaded:
        rejected MerchantRefused, its purse draw undone (the invariants compare every purse with
        the model after the step); then the canteen is unfrozen again if it was not before."""
        canteen = CANTEEN.address
        frozen_before = canteen in self.model.frozen
        if not frozen_before:
            self._toggle_freeze(canteen)
        try:
            signed = self.cards[i].se.sign_payment(canteen, amount, self._now())
        except CardRefused as exc:
            event(f"card refused: {type(exc).__name__}")
        else:
            self.pool.append(Uploaded(signed, True))
            self._settle([len(self.pool) - 1])
        if not frozen_before:
            self._toggle_freeze(canteen)

    # == quick pay =========================================================================

    @rule(
        holder=people,
        merchant=merchants,
        per_payment=st.integers(1, 500 * YUAN),
        times=st.integers(1, 4),
        days=st.integers(1, 6),
    )
    @counted
    def grant_mandate(
        self, holder: LocalAccount, merchant: LocalAccount, per_payment: int, times: int, days: int
    ) -> None:
        expires = self._now() + days * DAY
        result = self._run(
            "grant mandate",
            lambda: self.c.quickpay.grant(
                holder, merchant.address, per_payment, per_payment * times, expires
            ),
            None,
        )
        mid = self._touch("mandate", result[0])
        assert mid == len(self.mandates) + 1
        self.mandates[mid] = MandateModel(
            holder.address, merchant.address, per_payment, per_payment * times, expires
        )

    @precondition(has("mandates"))
    @rule(data=st.data(), amount=st.integers(1, 600 * YUAN), reuse=st.integers(0, 7))
    @counted
    def pull(self, data: st.DataObject, amount: int, reuse: int) -> None:
        mid = self._touch("mandate", data.draw(st.sampled_from(sorted(self.mandates)), label="mandate"))
        m = self.mandates[mid]
        if reuse == 0 and m.refs:
            ref = data.draw(st.sampled_from(sorted(m.refs)), label="reference")
        else:
            self.refs += 1
            ref = order_ref(f"order {self.refs}")
        self._pull(mid, amount, ref)

    def _pull(self, mid: int, amount: int, ref: bytes) -> None:
        m = self.mandates[mid]
        now = self._now()
        today = day(now)
        spent_after = (m.spent_today if m.day == today else 0) + amount
        expected: Expected = None
        state: Any = None
        if m.revoked:
            expected = ("QuickPayRevoked", (mid,))
        elif now > m.expires_at:
            expected = ("QuickPayExpired", (mid, m.expires_at))
        elif amount > m.per_payment_cap:
            expected = ("QuickPayOverPaymentCap", (mid, m.per_payment_cap, amount))
        elif ref in m.refs:
            expected = ("QuickPayDuplicateReference", (mid, ref))
        elif spent_after > m.daily_cap:
            expected = ("QuickPayOverDailyCap", (mid, m.daily_cap, spent_after))
        else:
            expected, state = self._moves([(m.holder, m.merchant, amount)])
        merchant = BY_ADDRESS[m.merchant]
        if result := self._run("pull", lambda: self.c.quickpay.pull(merchant, mid, amount, ref), expected):
            self._paid(result, [(("mandate", mid, ref), m.holder, m.merchant, amount)], log="Transfer")
            m.refs.add(ref)
            m.day, m.spent_today = today, spent_after
            m.total_pulled += amount
            self.model.apply(state)

    @precondition(has("mandates"))
    @rule(data=st.data())
    @counted
    def revoke_mandate(self, data: st.DataObject) -> None:
        mid = self._touch("mandate", data.draw(st.sampled_from(sorted(self.mandates)), label="mandate"))
        m = self.mandates[mid]
        expected: Expected = ("QuickPayRevoked", (mid,)) if m.revoked else None
        if self._run("revoke", lambda: self.c.quickpay.revoke(BY_ADDRESS[m.holder], mid), expected):
            m.revoked = True

    # == refunds (MerchantRefunds) =========================================================

    @precondition(has("receipts"))
    @rule(
        data=st.data(),
        how=st.sampled_from(["part", "rest", "beyond", "used-reference", "payer-frozen"]),
        frac=st.integers(1, 100),
    )
    @counted
    def refund_payment(self, data: st.DataObject, how: str, frac: int) -> None:
        """A merchant refunds part of a confirmed payment, or the rest, or more than is left, or
        under a reference used already, or while the payer is frozen (frozen by the regulator for
        the step, unless frozen already). The payment is recorded first if it is not yet, as the
        services do at its first refund (and recording it again is refused)."""
        open_ = [b for b in self.receipts if b.left > 0]
        every = st.sampled_from(self.receipts)
        bill = data.draw(
            weighted((3, st.sampled_from(open_)), (1, every)) if open_ else every, label="payment"
        )
        if not self._record(bill):
            return
        amount = {"rest": bill.left, "beyond": bill.left + 1}.get(how, max(1, bill.left * frac // 100))
        ref = None
        if how == "used-reference" and self.refund_refs:
            ref = data.draw(st.sampled_from(self.refund_refs), label="reference")
        payer_frozen = bill.payer in self.model.frozen
        if how == "payer-frozen" and not payer_frozen:
            self._toggle_freeze(bill.payer)
        self._refund(bill, amount, ref)
        if how == "payer-frozen" and not payer_frozen:
            self._toggle_freeze(bill.payer)

    def _record(self, bill: Bill) -> bool:
        """The operator records ``bill`` for refunds unless it is recorded; once it is, recording it
        again is refused. Whether it is recorded now."""
        self._touch("receipt", bill.pid)
        expected = bill.record_refusal(bill.merchant in MERCHANT_WALLETS)
        call = functools.partial(
            self.c.refunds.record,
            OPERATOR,
            bill.pid,
            bill.merchant,
            bill.payer,
            bill.paid,
            bill.voucher,
            bill.voucher_payee,
        )
        if self._run("record payment", call, expected):
            bill.recorded = True
        return bill.recorded

    def _refund(self, bill: Bill, amount: int, ref: bytes | None) -> None:
        """``bill``'s merchant refunds ``amount`` under ``ref`` (a new reference when None): the
        split predicted from the model (voucher part on the running total, to its payee; the rest
        to the payer), moved straight from the merchant's wallet."""
        self._touch("receipt", bill.pid)
        used = ref is not None
        if ref is None:
            ref = refund_ref(self.cash.tx.chain_id, len(self.refund_refs) + 1)
        expected = bill.refund_refusal(bill.merchant, amount, ref, used)
        state: Any = None
        cash, voucher = bill.split(amount) if expected is None else (0, 0)
        if expected is None:
            expected, state = self._moves(
                [(bill.merchant, bill.payer, cash), (bill.merchant, bill.voucher_payee, voucher)]
            )
        merchant = BY_ADDRESS[bill.merchant]
        result = self._run("refund", lambda: self.c.refunds.refund(merchant, bill.pid, amount, ref), expected)
        if result is None:
            return
        (e,) = result.named("Refunded")
        assert (e["amount"], e["cash"], e["voucher"], e["refundedTotal"]) == (
            amount,
            cash,
            voucher,
            bill.refunded + amount,
        )
        moved = [(t["from"], t["to"], t["value"]) for t in result.named("Transfer")]
        expected_moves = [(bill.merchant, bill.payer, cash), (bill.merchant, bill.voucher_payee, voucher)]
        assert moved == [m for m in expected_moves if m[2] > 0], f"refund moved {moved}"
        assert bill.refund(amount) == (cash, voucher)
        self.refund_refs.append(ref)
        self.model.apply(state)
        kind = "purse" if bill.kind == "card" and voucher else bill.kind
        event(f"refund of a {kind} payment: {'full' if bill.left == 0 else 'partial'}")

    # == the wrong role ====================================================================

    # One rule per family (so that each is drawn as often as any other rule), one dispatcher.

    @rule(data=st.data(), action=st.sampled_from(["mint", "freeze", "pause", "register_wallet"]))
    @counted
    def wrong_role_cash(self, data: st.DataObject, action: str) -> None:
        self._wrong_role(data, action)

    @rule(data=st.data(), action=st.sampled_from(["enrol_merchant", "close_merchant", "consume_other"]))
    @counted
    def wrong_role_prepaid(self, data: st.DataObject, action: str) -> None:
        self._wrong_role(data, action)

    @rule(data=st.data(), action=st.just("approve_batch"))
    @counted
    def wrong_role_disbursement(self, data: st.DataObject, action: str) -> None:
        self._wrong_role(data, action)

    @rule(data=st.data(), action=st.sampled_from(["grant_vouchers", "list_merchants"]))
    @counted
    def wrong_role_vouchers(self, data: st.DataObject, action: str) -> None:
        self._wrong_role(data, action)

    @rule(
        data=st.data(),
        action=st.sampled_from(
            ["approve_proposal", "execute_proposal", "freeze_collective", "amend_budget", "create_collective"]
        ),
    )
    @counted
    def wrong_role_collective(self, data: st.DataObject, action: str) -> None:
        self._wrong_role(data, action)

    @rule(
        data=st.data(),
        action=st.sampled_from(
            [
                "register_card",
                "set_card_limits",
                "set_upload_window",
                "load_other_card",
                "report_other_card",
                "pull_other_mandate",
                "revoke_other_mandate",
                "create_purse_programme",
                "fund_other_purse",
            ]
        ),
    )
    @counted
    def wrong_role_hardwallet(self, data: st.DataObject, action: str) -> None:
        self._wrong_role(data, action)

    @rule(data=st.data(), action=st.sampled_from(["record_payment", "refund_other_payment"]))
    @counted
    def wrong_role_refunds(self, data: st.DataObject, action: str) -> None:
        self._wrong_role(data, action)

    def _wrong_role(self, data: st.DataObject, action: str) -> None:
        """Someone without the role tries a privileged action (a row of :data:`WRONG_ROLE`): the
        exact error, and nothing changes (the invariants after this step compare every balance and
        every family's state)."""
        STATS["wrong_role"] += 1
        event(f"wrong role: {action}")
        attempt = WRONG_ROLE[action]
        target = attempt.pick(self, data) if attempt.pick else None
        if target is NOTHING:
            return
        allowed = set(attempt.allowed(self, target))
        who = data.draw(st.sampled_from([a for a in EVERYONE if a.address not in allowed]), label="actor")
        attempt.check(self, who, target)

    # == invariants ========================================================================

    def _chain_balances(self) -> dict[str, int]:
        """Every holder's balance on chain, read once per block (both invariants below use them)."""
        block = self.w3.eth.block_number
        if getattr(self, "_balances_at", (None,))[0] != block:
            self._balances_at = (block, {a: self.cash.balance_of(a) for a in self.model.balances})
        return dict(self._balances_at[1])

    @invariant()
    def a_frozen_owners_value_moves_only_as_the_freeze_table_allows(self) -> None:
        """Ghost state across steps: for a wallet frozen before and after the step, nothing of what
        it owns moved (README freeze table): not its balance (nothing leaves, nothing arrives), not
        its prepaid packages (no use, cancel or refund), not its cards (no load, settlement or
        return), not its mandates (no pull), not its voucher spending. What may still change: the
        vouchers granted to it, a clone's shortfall (nothing moves)."""
        now = {w: self._owned(w) for w in sorted(self.model.frozen)}
        for wallet in now.keys() & self.ghost.keys():
            assert now[wallet] == self.ghost[wallet], (
                f"frozen {wallet} moved: before {self.ghost[wallet]}, after {now[wallet]}"
            )
        self.ghost = now

    @invariant()
    def supply_equals_the_sum_of_every_balance(self) -> None:
        balances = self._chain_balances()
        assert balances == self.model.balances
        assert self.cash.total_supply() == sum(balances.values()) == self.model.supply

    @invariant()
    def no_wallet_above_its_tier_caps(self) -> None:
        limits: dict[str, TierLimits] = self.model.limits
        balances = self._chain_balances()
        for wallet, lim in limits.items():
            assert balances[wallet] <= lim.balance_cap
            assert self.cash.spent_today(wallet) <= lim.daily_cap

    @invariant()
    def prepaid_conserves(self) -> None:
        m = self.model
        for pid, pkg in m.packages.items():
            if not self._due("package", pid):
                continue
            on_chain = self.c.prepaid.package(pid)
            assert on_chain == pkg.as_package(pid)
            assert on_chain.deposited == on_chain.released + on_chain.refunded + on_chain.held
        totals = self.c.prepaid.totals()
        assert totals["deposited"] == totals["released"] + totals["refunded"] + totals["held"]
        assert totals["held"] == sum(p.held for p in m.packages.values()) == m.balances[self.escrow]

    @invariant()
    def disbursement_conserves(self) -> None:
        for b in self.batches:
            if not self._due("batch", b.bid):
                continue
            on_chain = self.c.disburse.batch(b.bid)
            assert (on_chain.status, on_chain.funded, on_chain.paid, on_chain.reclaimed) == (
                b.status,
                b.funded,
                b.paid,
                b.reclaimed,
            )
            assert on_chain.exceptions == sum(b.exceptions.values())
            assert on_chain.funded == on_chain.paid + on_chain.reclaimed + on_chain.outstanding
        assert sum(b.outstanding for b in self.batches) == self.model.balances[self.contracts["disburse"]]

    @invariant()
    def vouchers_conserve(self) -> None:
        for p in self.programmes:
            if not self._due("programme", p.pid):
                continue
            on_chain = self.c.vouchers.programme(p.pid)
            assert (on_chain.granted, on_chain.spent, on_chain.returned_grants, on_chain.returned_budget) == (
                p.granted,
                p.spent,
                p.returned_grants,
                p.returned_budget,
            )
            assert (
                on_chain.budget
                == on_chain.spent + on_chain.returned + on_chain.outstanding + on_chain.ungranted
            )
        held = sum(p.outstanding + p.ungranted for p in self.programmes)
        assert self.c.vouchers.total_held() == held == self.model.balances[self.contracts["vouchers"]]

    @invariant()
    def collective_conserves(self) -> None:
        c = self.coll
        on_chain = self.c.fund.collective(CID)
        assert (on_chain.frozen, on_chain.epoch) == (c.frozen, c.epoch)
        assert (on_chain.balance, on_chain.total_income, on_chain.total_paid) == (c.balance, c.income, c.paid)
        assert on_chain.balance == on_chain.total_income - on_chain.total_paid
        assert self.c.fund.total_balance() == c.balance == self.model.balances[self.contracts["collective"]]
        lines = self.c.fund.lines(CID)
        assert [(ln.budget, ln.spent) for ln in lines] == list(zip(c.budgets, c.spent, strict=True))
        assert all(ln.spent <= ln.budget for ln in lines)
        assert self.c.fund.counts()["proposals"] == len(self.props)
        for pid, p in self.props.items():
            if not self._due("proposal", pid):
                continue
            q = self.c.fund.proposal(pid)
            assert (q.status, q.approvals, q.township_approved, q.ready_at) == (
                p.status,
                p.approvals,
                p.township_approved,
                p.ready_at,
            )

    @invariant()
    def hard_wallets_conserve(self) -> None:
        for card in self.cards:
            info = self.c.hw.card(card.se.address)
            assert info.loaded == info.settled + info.refunded + info.reserve
            assert (info.status, info.loaded, info.settled, info.refunded, info.reserve, info.shortfall) == (
                card.status,
                card.loaded,
                card.settled,
                card.refunded,
                card.reserve,
                card.shortfall,
            )
        totals = self.c.hw.totals()
        reserves = sum(card.reserve for card in self.cards)
        assert totals["reserve"] == reserves
        # Earmarked purses: the settlement holds the reserves and the purses; per programme and in
        # total funded == spent + expired + held, each as the model says; each card's purses too.
        purses = self.purses
        assert totals["earmarked"] == purses.held
        assert self.model.balances[self.contracts["hardwallet"]] == reserves + purses.held
        programmes = purses.programmes.values()
        assert (totals["earmarked_funded"], totals["earmarked_spent"], totals["earmarked_expired"]) == (
            sum(p.funded for p in programmes),
            sum(p.spent for p in programmes),
            sum(p.expired for p in programmes),
        )
        assert totals["earmarked_funded"] == (
            totals["earmarked_spent"] + totals["earmarked_expired"] + totals["earmarked"]
        )
        for pid, p in purses.programmes.items():
            if not self._due("purse_programme", pid):
                continue
            book = self.c.hw.purse_programme(pid)
            assert (book.funder, book.funded, book.spent, book.expired, book.held) == (
                p.funder,
                p.funded,
                p.spent,
                p.expired,
                p.held,
            )
            assert book.funded == book.spent + book.expired + book.held
        for card in self.cards:
            if self._due("purses", card.se.address):
                on_card = [
                    (q.programme, q.balance, q.funded, q.expired, q.spent)
                    for q in self.c.hw.purses(card.se.address)
                ]
                assert on_card == purses.card(card.se.address).as_chain()
        for mid, m in self.mandates.items():
            if not self._due("mandate", mid):
                continue
            on_chain = self.c.quickpay.mandate(mid)
            assert (on_chain.revoked, on_chain.total_pulled) == (m.revoked, m.total_pulled)
        assert self.model.balances[self.contracts["quickpay"]] == 0  # pulls go holder -> merchant

    @invariant()
    def refunds_never_exceed_payments(self) -> None:
        """Per recorded payment: refunded <= paid, the voucher part's refunds <= the voucher part and
        the cash refunds <= the cash part, each as the model says; the contract's total is the sum
        of every refund; it holds nothing (refunds go merchant -> payer and voucher payee)."""
        recorded = [b for b in self.receipts if b.recorded]
        assert self.c.refunds.total_refunded() == sum(b.refunded for b in recorded)
        for b in recorded:
            if not self._due("receipt", b.pid):
                continue
            on_chain = self.c.refunds.payment(b.pid)
            assert (on_chain.merchant, on_chain.payer, on_chain.voucher_payee) == (
                b.merchant,
                b.payer,
                b.voucher_payee,
            )
            assert (on_chain.paid, on_chain.voucher_part, on_chain.refunded, on_chain.voucher_refunded) == (
                b.paid,
                b.voucher,
                b.refunded,
                b.voucher_refunded,
            )
            assert on_chain.refunded <= on_chain.paid and on_chain.voucher_refunded <= on_chain.voucher_part
            assert on_chain.refunded - on_chain.voucher_refunded <= on_chain.paid - on_chain.voucher_part
        assert self.model.balances[self.contracts["refunds"]] == 0


# -- the wrong role, as a table ----------------------------------------------------------------

NOTHING = object()  # a picker's answer when there is nothing of its kind to act on yet
Machine = AllFamiliesMachine


@dataclass(frozen=True)
class WrongRole:
    """A privileged action tried without the role: what it acts on (``pick``, drawn first, or
    :data:`NOTHING`), who holds the role (``allowed``: the actor is drawn from everyone else) and
    ``check``, which makes the call and asserts its exact custom error."""

    allowed: Callable[[Machine, Any], Iterable[str]]
    check: Callable[[Machine, LocalAccount, Any], None]
    pick: Callable[[Machine, st.DataObject], Any] | None = None


def reverts(
    call: Callable[[Machine, LocalAccount, Any], Callable[[], Any]],
    error: Callable[[Machine, LocalAccount, Any], tuple[str, tuple[Any, ...]]],
) -> Callable[[Machine, LocalAccount, Any], None]:
    """A check: the error is predicted first (from the model, before the call), then asserted."""

    def check(m: Machine, who: LocalAccount, target: Any) -> None:
        name, args = error(m, who, target)
        assert_reverts(call(m, who, target), name, *args)

    return check


def unauthorized(role_key: str) -> Callable[[Machine, LocalAccount, Any], tuple[str, tuple[Any, ...]]]:
    """OpenZeppelin's AccessControl refusal of ``who`` for the role ``_base["roles"][role_key]``."""
    return lambda m, who, _: ("AccessControlUnauthorizedAccount", (who.address, _base["roles"][role_key]))


def only(*holders: LocalAccount) -> Callable[[Machine, Any], tuple[str, ...]]:
    return lambda m, _: tuple(a.address for a in holders)


def _pick_package(m: Machine, data: st.DataObject) -> Any:
    if not m.model.packages:
        return NOTHING
    return m._touch("package", data.draw(st.sampled_from(sorted(m.model.packages)), label="package"))


def _pick_batch(m: Machine, data: st.DataObject) -> Any:
    if not m.batches:
        return NOTHING
    b = data.draw(st.sampled_from(m.batches), label="batch")
    m._touch("batch", b.bid)
    return b


def _pick_proposal(m: Machine, data: st.DataObject) -> Any:
    if not m.props:
        return NOTHING
    return m._touch("proposal", data.draw(st.sampled_from(sorted(m.props)), label="proposal"))


def _pick_programme(m: Machine, data: st.DataObject) -> Any:
    if not m.programmes:
        return NOTHING
    p = data.draw(st.sampled_from(m.programmes), label="programme")
    m._touch("programme", p.pid)
    return p


def _pick_card(m: Machine, data: st.DataObject) -> Any:
    return data.draw(st.integers(0, 1), label="card")


def _pick_mandate(m: Machine, data: st.DataObject) -> Any:
    if not m.mandates:
        return NOTHING
    return m._touch("mandate", data.draw(st.sampled_from(sorted(m.mandates)), label="mandate"))


def _pick_purse_programme(m: Machine, data: st.DataObject) -> Any:
    if not m.purses.programmes:
        return NOTHING
    pid = data.draw(st.sampled_from(sorted(m.purses.programmes)), label="purse programme")
    return m._touch("purse_programme", pid)


def _pick_recorded(m: Machine, data: st.DataObject) -> Any:
    recorded = [b for b in m.receipts if b.recorded]
    if not recorded:
        return NOTHING
    bill = data.draw(st.sampled_from(recorded), label="payment")
    m._touch("receipt", bill.pid)
    return bill


def _predicted(
    expect: Callable[[Machine, LocalAccount, Any], tuple[Expected, Any]],
) -> Callable[[Machine, LocalAccount, Any], tuple[str, tuple[Any, ...]]]:
    """The model's prediction, which must be a refusal."""

    def error(m: Machine, who: LocalAccount, target: Any) -> tuple[str, tuple[Any, ...]]:
        expected, _ = expect(m, who, target)
        assert expected is not None
        return expected

    return error


def _approve_proposal_refused(m: Machine, who: LocalAccount, pid: int) -> None:
    assert m._approve_proposal(who, pid) is None


def _committee_but_proposer(m: Machine, pid: int) -> list[str]:
    """Who may approve: the committee other than the proposer, and the supervisor."""
    committee = [a for a, (r, _) in m.coll.officers.items() if r == OfficerRole.COMMITTEE]
    return [SUPERVISOR.address, *(a for a in committee if a != m.props[pid].proposer)]


WRONG_ROLE: dict[str, WrongRole] = {
    # cash
    "mint": WrongRole(
        only(OPERATOR),
        reverts(lambda m, who, _: lambda: m.cash.mint(who, ALICE.address, 1), unauthorized("issuer")),
    ),
    "freeze": WrongRole(
        only(REGULATOR),
        reverts(lambda m, who, _: lambda: m.cash.freeze(who, BOB.address), unauthorized("regulator")),
    ),
    "pause": WrongRole(
        only(REGULATOR), reverts(lambda m, who, _: lambda: m.cash.pause(who), unauthorized("cash_regulator"))
    ),
    "register_wallet": WrongRole(
        only(OPERATOR),
        reverts(
            lambda m, who, _: (
                lambda: m.cash.register(who, STRANGER, Kind.PERSONAL, 2, 0, identity("stranger"))
            ),
            unauthorized("registrar"),
        ),
    ),
    # prepaid
    "enrol_merchant": WrongRole(
        only(REGULATOR),
        reverts(
            lambda m, who, _: lambda: m.c.prepaid.enrol(who, GYM.address, BPS, 0),
            unauthorized("prepaid_regulator"),
        ),
    ),
    "close_merchant": WrongRole(
        only(REGULATOR),
        reverts(
            lambda m, who, _: lambda: m.c.prepaid.close_merchant(who, CANTEEN.address),
            unauthorized("prepaid_regulator"),
        ),
    ),
    "consume_other": WrongRole(
        lambda m, pid: (m.model.packages[pid].consumer,),
        reverts(
            lambda m, who, pid: lambda: m.c.prepaid.consume(who, pid, 1),
            lambda m, who, pid: m.model.expect_open(pid) or ("PrepaidNotConsumer", (pid, who.address)),
        ),
        _pick_package,
    ),
    # disburse
    "approve_batch": WrongRole(
        only(CHECKER),
        reverts(
            lambda m, who, b: lambda: m.c.disburse.approve(who, b.bid),
            _predicted(lambda m, who, b: m._approve_batch_expected(b, who.address)),
        ),
        _pick_batch,
    ),
    # collective
    "approve_proposal": WrongRole(_committee_but_proposer, _approve_proposal_refused, _pick_proposal),
    "execute_proposal": WrongRole(
        lambda m, _: tuple(m.coll.officers),
        reverts(
            lambda m, who, pid: lambda: m.c.fund.execute(who, pid),
            _predicted(lambda m, who, pid: m._execute_expected(who.address, pid)),
        ),
        _pick_proposal,
    ),
    "freeze_collective": WrongRole(
        only(SUPERVISOR),
        reverts(
            lambda m, who, _: lambda: m.c.fund.freeze(who, CID),
            lambda m, who, _: ("CollectiveNotSupervisor", (CID, who.address)),
        ),
    ),
    "create_collective": WrongRole(
        only(REGULATOR),
        reverts(
            lambda m, who, _: (
                lambda: m.c.fund.create(who, CAROL.address, b"\2" * 32, [(ALICE.address, 1)], TIERS, DAY)
            ),
            unauthorized("township"),
        ),
    ),
    "amend_budget": WrongRole(
        only(SUPERVISOR),
        reverts(
            lambda m, who, _: lambda: m.c.fund.amend_budget(who, CID, 0, 10**12),
            lambda m, who, _: ("CollectiveNotSupervisor", (CID, who.address)),
        ),
    ),
    # vouchers
    "grant_vouchers": WrongRole(
        only(OFFICE),
        reverts(
            lambda m, who, p: lambda: m.c.vouchers.grant(who, p.pid, [Grant(who.address, 1)]),
            lambda m, who, p: ("VoucherNotIssuer", (p.pid, who.address)),
        ),
        _pick_programme,
    ),
    "list_merchants": WrongRole(
        only(OFFICE),
        reverts(
            lambda m, who, p: lambda: m.c.vouchers.list_merchants(who, p.pid, [GYM.address], True),
            lambda m, who, p: ("VoucherNotIssuer", (p.pid, who.address)),
        ),
        _pick_programme,
    ),
    # hardwallet
    "register_card": WrongRole(
        only(OPERATOR),
        reverts(
            lambda m, who, _: (
                lambda: m.c.hw.register_card(
                    who, Account.from_key(b"\xc3" * 32).address, who.address, CardForm.CARD
                )
            ),
            unauthorized("hw_operator"),
        ),
    ),
    "set_card_limits": WrongRole(
        only(OPERATOR),
        reverts(
            lambda m, who, _: lambda: m.c.hw.set_limits(who, 10**9, 10**9, 1), unauthorized("hw_operator")
        ),
    ),
    "set_upload_window": WrongRole(
        only(OPERATOR),
        reverts(lambda m, who, _: lambda: m.c.hw.set_upload_window(who, 86_400), unauthorized("hw_operator")),
    ),
    "load_other_card": WrongRole(
        lambda m, i: (CARD_HOLDERS[i].address,),
        reverts(
            lambda m, who, i: lambda: m.c.hw.load(who, m.cards[i].se.address, 1, approve=False),
            lambda m, who, i: ("HardWalletNotHolder", (m.cards[i].se.address, who.address)),
        ),
        _pick_card,
    ),
    "report_other_card": WrongRole(
        lambda m, i: (CARD_HOLDERS[i].address, OPERATOR.address),
        reverts(
            lambda m, who, i: lambda: m.c.hw.report_lost(who, m.cards[i].se.address),
            lambda m, who, i: ("HardWalletNotHolder", (m.cards[i].se.address, who.address)),
        ),
        _pick_card,
    ),
    "pull_other_mandate": WrongRole(
        lambda m, mid: (m.mandates[mid].merchant,),
        reverts(
            lambda m, who, mid: lambda: m.c.quickpay.pull(who, mid, 1, order_ref("stolen")),
            lambda m, who, mid: ("QuickPayNotMerchant", (mid, who.address)),
        ),
        _pick_mandate,
    ),
    "revoke_other_mandate": WrongRole(
        lambda m, mid: (m.mandates[mid].holder,),
        reverts(
            lambda m, who, mid: lambda: m.c.quickpay.revoke(who, mid),
            lambda m, who, mid: ("QuickPayNotHolder", (mid, who.address)),
        ),
        _pick_mandate,
    ),
    "create_purse_programme": WrongRole(
        only(OPERATOR),
        reverts(
            lambda m, who, _: (
                lambda: m.c.hw.create_purse_programme(
                    who, 99, OFFICE.address, 1, m._now() + DAY, False, [MCC_RESTAURANT]
                )
            ),
            unauthorized("hw_operator"),
        ),
    ),
    "fund_other_purse": WrongRole(
        lambda m, pid: (m.purses.programmes[pid].funder,),
        reverts(
            lambda m, who, pid: lambda: m.c.hw.fund_purse(who, m.cards[0].se.address, pid, 1, approve=False),
            lambda m, who, pid: ("PurseNotFunder", (pid, who.address)),
        ),
        _pick_purse_programme,
    ),
    # refunds
    "record_payment": WrongRole(
        only(OPERATOR),
        reverts(
            lambda m, who, _: lambda: m.c.refunds.record(who, b"\1" * 32, GYM.address, ALICE.address, 1),
            unauthorized("recorder"),
        ),
    ),
    "refund_other_payment": WrongRole(
        lambda m, bill: (bill.merchant,),
        reverts(
            lambda m, who, bill: lambda: m.c.refunds.refund(who, bill.pid, 1, refund_ref(0, 0)),
            lambda m, who, bill: ("RefundNotMerchant", (bill.pid, who.address)),
        ),
        _pick_recorded,
    ),
}


def test_all_families_together(capsys: pytest.CaptureFixture[str], record_property: Any) -> None:
    """Run the machine under the selected profile (XCPAY_FUZZ) and say how much it ran: on the
    terminal (past pytest's capture, so that `make audit` shows it) and in the JUnit properties."""
    before = dict(STATS)
    run_state_machine_as_test(AllFamiliesMachine, settings=PROFILES[PROFILE])
    ran = {k: STATS[k] - before[k] for k in STATS}
    for key, value in ran.items():
        record_property(key, value)
    with capsys.disabled():
        print(
            f"\nall-families machine ({PROFILE} profile): {ran['examples']} examples, {ran['steps']} steps; "
            f"{ran['succeeded']} calls succeeded and {ran['reverted']} reverted as predicted; "
            f"{ran['wrong_role']} wrong-role attempts refused"
        )
    assert ran["steps"] > 0
