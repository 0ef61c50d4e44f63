"""HardWalletSettlement: cards, loads, offline payments settled in batches, clones, lost cards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from chain import devtools, gas
from chain.accounts import dev_account
from chain.clients.hardwallet import (
    MAX_BATCH,
    MAX_CLOCK_SKEW,
    CardForm,
    CardStatus,
    HardWalletClient,
    Outcome,
    Payment,
    PaymentDomain,
    RejectReason,
    SignedPayment,
    sign_payment,
)
from chain.clients.token import CashClient, Kind
from chain.manifest import Manifest
from tests.conftest import Actors
from tests.helpers import assert_reverts
from wallets.hardwallet import HardWallet
from wallets.terminal import Terminal

DAY = 86_400
KEY = bytes.fromhex("a1" * 32)  # alice's card; tests keep it to play a cloned or tampered card
LOADED = 1_000_00


def now(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


def pending(w3: Web3) -> int:
    """The block.timestamp the next transaction sees (eth-tester's pending block)."""
    return int(w3.provider.ethereum_tester.get_block_by_number("pending")["timestamp"])  # type: ignore[attr-defined]


def selector(signature: str) -> bytes:
    return bytes(Web3.keccak(text=signature)[:4])


@dataclass
class Setup:
    """alice holds a card (1,000 yuan loaded); gym is the merchant; a terminal at the gym."""

    a: Actors
    card: HardWallet
    terminal: Terminal
    domain: PaymentDomain
    w3: Web3


@pytest.fixture
def setup(registered: Actors, cash: CashClient, hardwallet: HardWalletClient) -> Setup:
    a = registered
    cash.mint(a.operator, a.alice.address, 5_000_00)
    card = HardWallet(KEY, hardwallet.domain, form=CardForm.CARD)
    hardwallet.register_card(a.operator, card.address, a.alice.address, CardForm.CARD)
    hardwallet.load(a.alice, card.address, LOADED)
    card.credit(LOADED)
    clock = lambda: now(hardwallet.w3)  # noqa: E731
    return Setup(
        a, card, Terminal(a.gym.address, hardwallet.domain, clock=clock), hardwallet.domain, hardwallet.w3
    )


def clone_pay(
    s: Setup, amount: int, counter: int, *, merchant: str | None = None, time: int | None = None
) -> SignedPayment:
    """What a cloned card (same key, its own counter and balance) signs; at the chain's time unless
    ``time`` says otherwise."""
    when = now(s.w3) if time is None else time
    payment = Payment(s.card.address, merchant or s.a.gym.address, amount, counter, when)
    return sign_payment(KEY, payment, s.domain)


def assert_card_conserved(hardwallet: HardWalletClient, cash: CashClient, *cards: str) -> None:
    """Per card loaded == settled + refunded + reserve; the contract holds exactly the reserves."""
    reserves = 0
    for c in cards:
        info = hardwallet.card(c)
        assert info.loaded == info.settled + info.refunded + info.reserve and info.reserve >= 0, info
        reserves += info.reserve
    totals = hardwallet.totals()
    assert totals["loaded"] == totals["settled"] + totals["refunded"] + totals["reserve"]
    assert cash.balance_of(hardwallet.contract.address) == totals["reserve"] == reserves


class TestRegisterCard:
    def test_operator_registers_a_card_to_a_holder(
        self, registered: Actors, hardwallet: HardWalletClient
    ) -> None:
        a, card = registered, Account.create().address
        tx = hardwallet.register_card(a.operator, card, a.bob.address, CardForm.WEARABLE)
        event = tx.named("CardRegistered")[0]
        assert (event["card"], event["holder"], event["form"]) == (card, a.bob.address, CardForm.WEARABLE)
        info = hardwallet.card(card)
        registered_at = int(hardwallet.w3.eth.get_block(tx.block_number)["timestamp"])
        assert (info.holder, info.form, info.status, info.reserve, info.registered_at, info.signed_from) == (
            a.bob.address,
            CardForm.WEARABLE,
            CardStatus.ACTIVE,
            0,
            registered_at,
            0,
        )

    def test_reverts_when_caller_is_not_the_operator(
        self, registered: Actors, hardwallet: HardWalletClient
    ) -> None:
        role = hardwallet.contract.functions.OPERATOR_ROLE().call()
        assert_reverts(
            lambda: hardwallet.register_card(
                registered.alice, Account.create().address, registered.alice.address, CardForm.CARD
            ),
            "AccessControlUnauthorizedAccount",
            registered.alice.address,
            role,
        )

    def test_reverts_for_a_merchant_or_unregistered_holder(
        self, registered: Actors, hardwallet: HardWalletClient
    ) -> None:
        a, stranger = registered, Account.create().address
        for holder in (a.gym.address, stranger):
            assert_reverts(
                lambda holder=holder: hardwallet.register_card(
                    a.operator, Account.create().address, holder, CardForm.SIM
                ),
                "HardWalletInvalidHolder",
                holder,
            )

    def test_reverts_on_a_known_or_zero_card(self, setup: Setup, hardwallet: HardWalletClient) -> None:
        a = setup.a
        assert_reverts(
            lambda: hardwallet.register_card(a.operator, setup.card.address, a.bob.address, CardForm.CARD),
            "HardWalletCardExists",
            setup.card.address,
        )
        zero = "0x" + "00" * 20
        assert_reverts(
            lambda: hardwallet.register_card(a.operator, zero, a.bob.address, CardForm.CARD),
            "HardWalletZeroCard",
        )

    def test_unknown_card_has_no_record(self, registered: Actors, hardwallet: HardWalletClient) -> None:
        card = Account.create().address
        assert_reverts(lambda: hardwallet.card(card), "HardWalletUnknownCard", card)


class TestLoad:
    def test_holder_loads_the_reserve_from_their_wallet(
        self, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        a = setup.a
        event = hardwallet.load(a.alice, setup.card.address, 250_00).named("CardLoaded")[0]
        assert (event["amount"], event["reserve"]) == (250_00, LOADED + 250_00)
        assert cash.balance_of(a.alice.address) == 5_000_00 - LOADED - 250_00
        assert_card_conserved(hardwallet, cash, setup.card.address)

    def test_reverts_when_caller_is_not_the_holder(self, setup: Setup, hardwallet: HardWalletClient) -> None:
        bob = setup.a.bob
        assert_reverts(
            lambda: hardwallet.load(bob, setup.card.address, 1_00),
            "HardWalletNotHolder",
            setup.card.address,
            bob.address,
        )

    def test_reverts_above_the_reserve_cap(self, setup: Setup, hardwallet: HardWalletClient) -> None:
        cap = hardwallet.limits().reserve_cap
        amount = cap - LOADED + 1
        assert_reverts(
            lambda: hardwallet.load(setup.a.alice, setup.card.address, amount),
            "HardWalletReserveCapExceeded",
            setup.card.address,
            cap,
            cap + 1,
        )

    def test_holder_tier_caps_apply(
        self, registered: Actors, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        """bob is tier 4: at most 2,000 yuan in one payment, loads included."""
        a, card = registered, Account.create().address
        hardwallet.register_card(a.operator, card, a.bob.address, CardForm.SIM)
        cash.mint(a.operator, a.bob.address, 3_000_00)
        cap = cash.tier_limits(4).payment_cap
        assert_reverts(
            lambda: hardwallet.load(a.bob, card, cap + 1),
            "TierPaymentCapExceeded",
            a.bob.address,
            cap,
            cap + 1,
        )

    def test_reverts_on_zero_amount(self, setup: Setup, hardwallet: HardWalletClient) -> None:
        assert_reverts(lambda: hardwallet.load(setup.a.alice, setup.card.address, 0), "HardWalletZeroAmount")


class TestSettle:
    def test_settles_and_pays_the_merchant(
        self, w3: Web3, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = setup
        signed = [s.terminal.charge(s.card, amount) for amount in (12_50, 30_00, 7_25)]
        result = hardwallet.settle(s.a.operator, signed)
        assert [o.outcome for o in result.outcomes] == [Outcome.SETTLED] * 3
        assert [o.counter for o in result.outcomes] == [1, 2, 3]
        batch = result.tx.named("BatchProcessed")[0]
        assert (batch["size"], batch["settled"], batch["duplicates"]) == (3, 3, 0)
        assert cash.balance_of(s.a.gym.address) == 49_75
        info = hardwallet.card(s.card.address)
        assert (info.reserve, info.settled) == (LOADED - 49_75, 49_75)
        assert all(hardwallet.is_counter_used(s.card.address, c) for c in (1, 2, 3))
        assert_card_conserved(hardwallet, cash, s.card.address)

    def test_python_digest_and_domain_match_the_contract(
        self, w3: Web3, setup: Setup, hardwallet: HardWalletClient
    ) -> None:
        p = Payment(setup.card.address, setup.a.gym.address, 1_23, 42, 1_700_000_000)
        assert hardwallet.digest_on_chain(p) == p.digest(setup.domain)
        sep = bytes(hardwallet.contract.functions.domainSeparator().call())
        assert sep == setup.domain.separator() and setup.domain.chain_id == w3.eth.chain_id

    def test_the_same_batch_twice_changes_nothing(
        self, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = setup
        signed = [s.terminal.charge(s.card, 10_00) for _ in range(3)]
        hardwallet.settle(s.a.operator, signed)
        before = (hardwallet.card(s.card.address), cash.balance_of(s.a.gym.address))
        again = hardwallet.settle(s.a.operator, signed)
        assert [o.outcome for o in again.outcomes] == [Outcome.DUPLICATE] * 3
        assert (hardwallet.card(s.card.address), cash.balance_of(s.a.gym.address)) == before
        assert again.tx.named("BatchProcessed")[0]["duplicates"] == 3

    def test_a_payment_repeated_in_one_batch_pays_once(
        self, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = setup
        p = s.terminal.charge(s.card, 10_00)
        result = hardwallet.settle(s.a.operator, [p, p, p])
        assert [o.outcome for o in result.outcomes] == [Outcome.SETTLED, Outcome.DUPLICATE, Outcome.DUPLICATE]
        assert cash.balance_of(s.a.gym.address) == 10_00

    def test_the_same_payment_from_two_terminals_pays_once(
        self, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = setup
        second = Terminal(s.a.gym.address, s.domain)
        p = s.terminal.charge(s.card, 20_00)
        second.accept(p)  # the queue was copied to the other terminal
        first_outcomes = s.terminal.upload_to_chain(hardwallet, s.a.operator)
        second_outcomes = second.upload_to_chain(hardwallet, s.a.operator)
        assert [o.outcome for o in first_outcomes + second_outcomes] == [Outcome.SETTLED, Outcome.DUPLICATE]
        assert cash.balance_of(s.a.gym.address) == 20_00 and s.terminal.pending == second.pending == []

    def test_out_of_order_counters_from_several_terminals_all_settle(
        self, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = setup
        other = Terminal(s.a.gym.address, s.domain, clock=lambda: now(s.w3))
        p1 = s.terminal.charge(s.card, 1_00)
        p2 = other.charge(s.card, 2_00)
        p3 = s.terminal.charge(s.card, 3_00)
        p4 = other.charge(s.card, 4_00)
        late = hardwallet.settle(s.a.operator, [p4, p3])
        early = hardwallet.settle(s.a.operator, [p2, p1])
        assert [o.outcome for o in late.outcomes + early.outcomes] == [Outcome.SETTLED] * 4
        assert cash.balance_of(s.a.gym.address) == 10_00
        # a huge counter from another bitmap word does not disturb the others
        far = clone_pay(s, 5_00, 2**63)
        assert hardwallet.settle(s.a.operator, [far, p1]).outcomes[1].outcome is Outcome.DUPLICATE

    def test_counter_reuse_with_other_content_is_a_duplicate(
        self, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        """A cloned card replays counter 1 to another merchant and amount: nothing moves."""
        s = setup
        hardwallet.settle(s.a.operator, [s.terminal.charge(s.card, 10_00)])
        reuse = clone_pay(s, 99_00, 1, merchant=s.a.gym.address)
        result = hardwallet.settle(s.a.operator, [reuse])
        assert result.outcomes[0].outcome is Outcome.DUPLICATE
        assert cash.balance_of(s.a.gym.address) == 10_00

    def test_forged_signatures_are_rejected(
        self, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = setup
        good = s.card.sign_payment(s.a.gym.address, 10_00, now(s.w3))
        p = good.payment
        inflated = SignedPayment(Payment(p.card, p.merchant, 900_00, p.counter, p.time), good.signature)
        redirected = SignedPayment(
            Payment(p.card, s.a.carol.address, p.amount, p.counter, p.time), good.signature
        )
        impostor = sign_payment(b"\x0b" * 32, Payment(p.card, p.merchant, 10_00, 7, 1), s.domain)
        garbage = SignedPayment(p, b"\x01" * 65)
        short = SignedPayment(p, good.signature[:64])
        high_s = SignedPayment(p, _malleate(good.signature))
        result = hardwallet.settle(s.a.operator, [inflated, redirected, impostor, garbage, short, high_s])
        assert [(o.outcome, o.reason) for o in result.outcomes] == [
            (Outcome.REJECTED, RejectReason.INVALID_SIGNATURE)
        ] * 6
        assert cash.balance_of(s.a.gym.address) == 0
        assert not hardwallet.is_counter_used(p.card, p.counter)
        assert hardwallet.settle(s.a.operator, [good]).outcomes[0].outcome is Outcome.SETTLED

    def test_a_signature_for_another_chain_or_contract_is_rejected(
        self, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = setup
        payment = Payment(s.card.address, s.a.gym.address, 10_00, 1, 1)
        other_chain = sign_payment(
            KEY, payment, PaymentDomain(s.domain.chain_id + 1, s.domain.verifying_contract)
        )
        other_contract = sign_payment(
            KEY, payment, PaymentDomain(s.domain.chain_id, hardwallet.contract.functions.cash().call())
        )
        result = hardwallet.settle(s.a.operator, [other_chain, other_contract])
        assert [o.reason for o in result.outcomes] == [RejectReason.INVALID_SIGNATURE] * 2
        assert cash.balance_of(s.a.gym.address) == 0

    def test_over_the_offline_cap_is_rejected(
        self, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        """A genuine card refuses to sign above its cap; a tampered one is refused at settlement."""
        s = setup
        cap = hardwallet.limits().offline_cap
        over, at = clone_pay(s, cap + 1, 1), clone_pay(s, cap, 2)
        result = hardwallet.settle(s.a.operator, [over, at])
        assert [(o.outcome, o.reason) for o in result.outcomes] == [
            (Outcome.REJECTED, RejectReason.OVER_OFFLINE_CAP),
            (Outcome.SETTLED, RejectReason.NONE),
        ]
        assert not hardwallet.is_counter_used(s.card.address, 1)
        assert cash.balance_of(s.a.gym.address) == cap

    def test_unknown_card_and_zero_amount_are_rejected(
        self, setup: Setup, hardwallet: HardWalletClient
    ) -> None:
        s = setup
        stranger = b"\x0c" * 32
        unknown = sign_payment(
            stranger, Payment(Account.from_key(stranger).address, s.a.gym.address, 1_00, 1, 1), s.domain
        )
        zero = clone_pay(s, 0, 1)
        result = hardwallet.settle(s.a.operator, [unknown, zero])
        assert [o.reason for o in result.outcomes] == [RejectReason.UNKNOWN_CARD, RejectReason.ZERO_AMOUNT]
        assert result.tx.named("BatchProcessed")[0]["rejected"] == 2

    def test_a_merchant_that_cannot_receive_leaves_the_payment_for_later(
        self, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = setup
        p = s.terminal.charge(s.card, 10_00)
        cash.freeze(s.a.regulator, s.a.gym.address)
        refused = s.terminal.upload_to_chain(hardwallet, s.a.operator)[0]
        assert (refused.reason, refused.detail, refused.final) == (
            RejectReason.MERCHANT_REFUSED,
            selector("WalletFrozen(address)"),
            False,
        )
        assert not hardwallet.is_counter_used(s.card.address, 1) and s.terminal.pending == [p]
        assert hardwallet.card(s.card.address).reserve == LOADED
        cash.unfreeze(s.a.regulator, s.a.gym.address)
        assert s.terminal.upload_to_chain(hardwallet, s.a.operator)[0].outcome is Outcome.SETTLED
        assert s.terminal.pending == []
        assert_card_conserved(hardwallet, cash, s.card.address)

    def test_a_frozen_holders_payment_is_refused_and_settles_once_unfrozen(
        self, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = setup
        p = s.terminal.charge(s.card, 10_00)
        cash.freeze(s.a.regulator, s.a.alice.address)
        refused = s.terminal.upload_to_chain(hardwallet, s.a.operator)[0]
        assert (refused.outcome, refused.reason, refused.detail, refused.final) == (
            Outcome.REJECTED,
            RejectReason.HOLDER_REFUSED,
            selector("WalletFrozen(address)"),
            False,
        )
        assert not hardwallet.is_counter_used(s.card.address, 1) and s.terminal.pending == [p]
        assert hardwallet.card(s.card.address).reserve == LOADED and cash.balance_of(s.a.gym.address) == 0
        cash.unfreeze(s.a.regulator, s.a.alice.address)
        assert s.terminal.upload_to_chain(hardwallet, s.a.operator)[0].outcome is Outcome.SETTLED
        assert cash.balance_of(s.a.gym.address) == 10_00
        assert_card_conserved(hardwallet, cash, s.card.address)

    def test_a_payment_to_a_personal_wallet_is_rejected_and_the_batch_settles_the_rest(
        self, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = setup
        to_bob = clone_pay(s, 10_00, 1, merchant=s.a.bob.address)
        to_gym = clone_pay(s, 5_00, 2)
        result = hardwallet.settle(s.a.operator, [to_bob, to_gym])
        refused, settled = result.outcomes
        assert (refused.outcome, refused.reason, refused.detail, refused.final) == (
            Outcome.REJECTED,
            RejectReason.PAYEE_NOT_MERCHANT,
            selector("PayeeNotMerchant(address)"),
            True,
        )
        assert settled.outcome is Outcome.SETTLED
        assert not hardwallet.is_counter_used(s.card.address, 1) and hardwallet.is_counter_used(
            s.card.address, 2
        )
        assert (cash.balance_of(s.a.bob.address), cash.balance_of(s.a.gym.address)) == (0, 5_00)
        assert_card_conserved(hardwallet, cash, s.card.address)

    def test_a_frozen_holder_cannot_load_and_the_lost_cards_reserve_waits(
        self, w3: Web3, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = setup
        cash.freeze(s.a.regulator, s.a.alice.address)
        assert_reverts(
            lambda: hardwallet.load(s.a.alice, s.card.address, 1_00), "WalletFrozen", s.a.alice.address
        )
        hardwallet.report_lost(s.a.alice, s.card.address)  # reporting moves nothing: still allowed
        devtools.increase_time(w3, hardwallet.card(s.card.address).grace_ends_at - now(w3) + 1)
        assert_reverts(
            lambda: hardwallet.return_reserve(s.a.outsider, s.card.address), "WalletFrozen", s.a.alice.address
        )
        assert hardwallet.card(s.card.address).reserve == LOADED
        cash.unfreeze(s.a.regulator, s.a.alice.address)
        hardwallet.return_reserve(s.a.outsider, s.card.address)
        assert hardwallet.card(s.card.address).refunded == LOADED
        assert_card_conserved(hardwallet, cash, s.card.address)

    def test_only_a_settler_settles(self, setup: Setup, hardwallet: HardWalletClient) -> None:
        """An outsider relaying a captured card payment is refused: a payment the services never
        recorded could never be refunded (and outsiders could flood the outcome events)."""
        s = setup
        role = hardwallet.contract.functions.SETTLER_ROLE().call()
        p = s.terminal.charge(s.card, 10_00)
        for who in (s.a.outsider, s.a.gym):  # the payee merchant itself neither
            assert_reverts(
                lambda who=who: hardwallet.settle(who, [p]),
                "AccessControlUnauthorizedAccount",
                who.address,
                role,
            )
        assert not hardwallet.is_counter_used(s.card.address, p.payment.counter)
        assert hardwallet.settle(s.a.operator, [p]).outcomes[0].outcome is Outcome.SETTLED

    def test_reverts_on_an_empty_or_oversized_batch(self, setup: Setup, hardwallet: HardWalletClient) -> None:
        s = setup
        assert_reverts(lambda: hardwallet.settle(s.a.operator, []), "HardWalletBatchSize", 0, MAX_BATCH)
        many = [clone_pay(s, 1, i + 1) for i in range(MAX_BATCH + 1)]
        assert_reverts(
            lambda: hardwallet.settle(s.a.operator, many), "HardWalletBatchSize", MAX_BATCH + 1, MAX_BATCH
        )

    def test_a_full_batch_fits_in_a_block(
        self, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = setup
        result = hardwallet.settle(s.a.operator, [clone_pay(s, 1_00, i + 1) for i in range(MAX_BATCH)])
        assert result.count(Outcome.SETTLED) == MAX_BATCH
        assert result.tx.gas_used < 8_000_000, result.tx.gas_used
        assert cash.balance_of(s.a.gym.address) == MAX_BATCH * 1_00

    def test_a_full_batch_at_its_costliest_path_fits_its_gas_bound_without_an_estimate(
        self, setup: Setup, hardwallet: HardWalletClient, cash: CashClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The merchant is frozen: every payment's writes are done, the token refuses, all undone.
        s = setup
        asked: list[object] = []
        original = cash.tx.estimate_call

        def counting(call: Any) -> int:
            asked.append(call.get("to"))
            return original(call)

        monkeypatch.setattr(cash.tx, "estimate_call", counting)
        cash.freeze(s.a.regulator, s.a.gym.address)
        payments = [clone_pay(s, 1_00, i + 1) for i in range(MAX_BATCH)]
        refused = hardwallet.settle(s.a.operator, payments)
        assert [o.reason for o in refused.outcomes] == [RejectReason.MERCHANT_REFUSED] * MAX_BATCH
        assert refused.tx.gas_used < gas.bound(hardwallet.settle_call(payments))  # type: ignore[operator]
        cash.unfreeze(s.a.regulator, s.a.gym.address)
        settled = hardwallet.settle(s.a.operator, payments)
        assert settled.count(Outcome.SETTLED) == MAX_BATCH
        assert settled.tx.gas_used < gas.bound(hardwallet.settle_call(payments))  # type: ignore[operator]
        assert hardwallet.contract.address not in asked  # the freezes were estimated, never a settle


def _malleate(signature: bytes) -> bytes:
    """The other valid-looking (high-s) form of a signature, which ECDSA.tryRecover refuses."""
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + (n - s).to_bytes(32, "big") + bytes([55 - v])


class TestClonedCard:
    def test_over_spending_settles_what_is_covered_and_blocks_the_card(
        self, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = setup
        honest = s.terminal.charge(s.card, 600_00)  # counter 1
        clone = [clone_pay(s, 300_00, 1_000), clone_pay(s, 300_00, 1_001), clone_pay(s, 50_00, 1_002)]
        result = hardwallet.settle(s.a.operator, [honest, *clone])
        assert [(o.outcome, o.paid) for o in result.outcomes] == [
            (Outcome.SETTLED, 600_00),
            (Outcome.SETTLED, 300_00),
            (Outcome.SHORTFALL, 100_00),
            (Outcome.SHORTFALL, 0),
        ]
        blocked = result.tx.named("CardBlocked")
        assert len(blocked) == 1 and blocked[0]["shortfall"] == 200_00
        info = hardwallet.card(s.card.address)
        assert (info.status, info.reserve, info.settled, info.shortfall) == (
            CardStatus.BLOCKED,
            0,
            LOADED,
            250_00,
        )
        assert cash.balance_of(s.a.gym.address) == LOADED
        assert hardwallet.totals()["shortfall"] == 250_00
        assert_card_conserved(hardwallet, cash, s.card.address)

    def test_a_blocked_card_pays_nothing_more_and_cannot_be_loaded(
        self, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = setup
        hardwallet.settle(s.a.operator, [clone_pay(s, 1_000_00, 1), clone_pay(s, 1_00, 2)])
        again = hardwallet.settle(s.a.operator, [clone_pay(s, 1_00, 2), clone_pay(s, 5_00, 3)])
        assert [(o.outcome, o.paid) for o in again.outcomes] == [
            (Outcome.DUPLICATE, 0),
            (Outcome.SHORTFALL, 0),
        ]
        assert hardwallet.card(s.card.address).shortfall == 6_00
        assert_reverts(
            lambda: hardwallet.load(s.a.alice, s.card.address, 1_00),
            "HardWalletWrongStatus",
            s.card.address,
            CardStatus.ACTIVE,
            CardStatus.BLOCKED,
        )
        assert_card_conserved(hardwallet, cash, s.card.address)


class TestLostCard:
    def test_payments_signed_before_the_report_settle_within_the_grace_period(
        self, w3: Web3, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = setup
        before = s.terminal.charge(s.card, 40_00)
        event = hardwallet.report_lost(s.a.alice, s.card.address).named("CardReportedLost")[0]
        grace = hardwallet.limits().grace_period
        assert event["graceEndsAt"] == event["lostAt"] + grace
        after = clone_pay(s, 10_00, 50, time=event["lostAt"] + 1)  # the thief, after the report
        devtools.increase_time(w3, grace - 60)
        result = hardwallet.settle(s.a.operator, [before, after])
        assert [(o.outcome, o.reason) for o in result.outcomes] == [
            (Outcome.SETTLED, RejectReason.NONE),
            (Outcome.REJECTED, RejectReason.CARD_LOST),
        ]
        assert cash.balance_of(s.a.gym.address) == 40_00

    def test_after_the_grace_period_the_reserve_returns_to_the_holder(
        self, w3: Web3, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = setup
        late = s.terminal.charge(s.card, 40_00)
        lost = hardwallet.report_lost(s.a.alice, s.card.address).named("CardReportedLost")[0]
        assert_reverts(
            lambda: hardwallet.return_reserve(s.a.outsider, s.card.address),
            "HardWalletGraceNotOver",
            s.card.address,
            lost["graceEndsAt"],
        )
        devtools.increase_time(w3, hardwallet.limits().grace_period + 1)
        rejected = hardwallet.settle(s.a.operator, [late]).outcomes[0]
        assert rejected.reason is RejectReason.GRACE_EXPIRED
        alice_before = cash.balance_of(s.a.alice.address)
        returned = hardwallet.return_reserve(s.a.outsider, s.card.address).named("ReserveReturned")[0]
        assert (returned["holder"], returned["amount"]) == (s.a.alice.address, LOADED)
        assert cash.balance_of(s.a.alice.address) == alice_before + LOADED
        info = hardwallet.card(s.card.address)
        assert (info.status, info.reserve, info.refunded) == (CardStatus.CLOSED, 0, LOADED)
        assert hardwallet.settle(s.a.operator, [late]).outcomes[0].reason is RejectReason.CARD_CLOSED
        assert_reverts(
            lambda: hardwallet.return_reserve(s.a.outsider, s.card.address),
            "HardWalletWrongStatus",
            s.card.address,
            CardStatus.LOST,
            CardStatus.CLOSED,
        )
        assert_card_conserved(hardwallet, cash, s.card.address)

    def test_settled_before_and_after_report_then_refund_conserve(
        self, w3: Web3, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = setup
        first, second = s.terminal.charge(s.card, 100_00), s.terminal.charge(s.card, 50_00)
        hardwallet.settle(s.a.operator, [first])
        hardwallet.report_lost(s.a.alice, s.card.address)
        hardwallet.settle(s.a.operator, [second])
        devtools.increase_time(w3, hardwallet.limits().grace_period + 1)
        hardwallet.return_reserve(s.a.alice, s.card.address)
        info = hardwallet.card(s.card.address)
        assert (info.settled, info.refunded) == (150_00, LOADED - 150_00)
        assert_card_conserved(hardwallet, cash, s.card.address)

    def test_the_operator_may_report_for_the_holder_but_nobody_else(
        self, setup: Setup, hardwallet: HardWalletClient
    ) -> None:
        s = setup
        assert_reverts(
            lambda: hardwallet.report_lost(s.a.bob, s.card.address),
            "HardWalletNotHolder",
            s.card.address,
            s.a.bob.address,
        )
        hardwallet.report_lost(s.a.operator, s.card.address)
        assert hardwallet.card(s.card.address).status is CardStatus.LOST
        assert_reverts(
            lambda: hardwallet.report_lost(s.a.alice, s.card.address),
            "HardWalletWrongStatus",
            s.card.address,
            CardStatus.ACTIVE,
            CardStatus.LOST,
        )

    def test_a_lost_card_cannot_be_loaded(self, setup: Setup, hardwallet: HardWalletClient) -> None:
        s = setup
        hardwallet.report_lost(s.a.alice, s.card.address)
        assert_reverts(
            lambda: hardwallet.load(s.a.alice, s.card.address, 1_00),
            "HardWalletWrongStatus",
            s.card.address,
            CardStatus.ACTIVE,
            CardStatus.LOST,
        )

    def test_a_refund_to_a_frozen_holder_waits(
        self, w3: Web3, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = setup
        hardwallet.report_lost(s.a.alice, s.card.address)
        devtools.increase_time(w3, hardwallet.limits().grace_period + 1)
        cash.freeze(s.a.regulator, s.a.alice.address)
        assert_reverts(
            lambda: hardwallet.return_reserve(s.a.outsider, s.card.address), "WalletFrozen", s.a.alice.address
        )
        assert hardwallet.card(s.card.address).status is CardStatus.LOST
        cash.unfreeze(s.a.regulator, s.a.alice.address)
        hardwallet.return_reserve(s.a.outsider, s.card.address)
        assert hardwallet.card(s.card.address).refunded == LOADED


def assert_refused_time(
    s: Setup,
    hardwallet: HardWalletClient,
    cash: CashClient,
    payment: SignedPayment,
    reason: RejectReason,
    *,
    reserve: int = LOADED,
) -> None:
    """``payment`` (alone in its batch) gets exactly PaymentRejected(reason, no detail), final; its
    counter stays unused, nothing reaches the merchant and the reserve stays ``reserve``."""
    gym_before = cash.balance_of(s.a.gym.address)
    result = hardwallet.settle(s.a.operator, [payment])
    assert [e.name for e in result.tx.events if e.name.startswith("Payment")] == ["PaymentRejected"]
    p = payment.payment
    assert result.tx.named("PaymentRejected")[0].args == {
        "card": p.card,
        "counter": p.counter,
        "merchant": p.merchant,
        "amount": p.amount,
        "reason": reason,
        "detail": b"\0\0\0\0",
    }
    assert result.outcomes[0].final and result.tx.named("BatchProcessed")[0]["rejected"] == 1
    assert not hardwallet.is_counter_used(p.card, p.counter)
    assert cash.balance_of(s.a.gym.address) == gym_before
    assert hardwallet.card(p.card).reserve == reserve
    assert_card_conserved(hardwallet, cash, p.card)


class TestSignedTime:
    """The signed time is the terminal's clock: times that cannot be true are refused (red team,
    MEDIUM: back-dating past the lost-card check)."""

    def test_a_time_beyond_the_clock_skew_is_refused_and_its_counter_stays_free(
        self, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = setup
        assert hardwallet.contract.functions.MAX_CLOCK_SKEW().call() == MAX_CLOCK_SKEW == 3_600
        t = pending(s.w3)
        over = clone_pay(s, 20_00, 2, time=t + MAX_CLOCK_SKEW + 1)
        assert_refused_time(s, hardwallet, cash, over, RejectReason.TIME_IN_FUTURE)
        far = clone_pay(s, 20_00, 3, time=2**64 - 1)  # no overflow: compared in 256 bits
        assert_refused_time(s, hardwallet, cash, far, RejectReason.TIME_IN_FUTURE)
        # At the bound, in the same block as a refused one: the bound settles, the other moves nothing.
        t = pending(s.w3)
        at, beyond = clone_pay(s, 10_00, 4, time=t + MAX_CLOCK_SKEW), clone_pay(s, 5_00, 5, time=t + 3_601)
        result = hardwallet.settle(s.a.operator, [beyond, at])
        assert [(o.outcome, o.reason) for o in result.outcomes] == [
            (Outcome.REJECTED, RejectReason.TIME_IN_FUTURE),
            (Outcome.SETTLED, RejectReason.NONE),
        ]
        assert cash.balance_of(s.a.gym.address) == 10_00
        # The signature covers the time: the refused counters are free for a payment with a true one.
        again = [clone_pay(s, 1_00, c) for c in (2, 3, 5)]
        assert hardwallet.settle(s.a.operator, again).count(Outcome.SETTLED) == 3
        assert hardwallet.card(s.card.address).reserve == LOADED - 13_00
        assert_card_conserved(hardwallet, cash, s.card.address)

    def test_a_time_before_the_cards_registration_is_refused(
        self, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = setup
        registered_at = hardwallet.card(s.card.address).registered_at
        assert 0 < registered_at <= now(s.w3)
        for counter, time in ((1, registered_at - 1), (2, 0)):
            early = clone_pay(s, 10_00, counter, time=time)
            assert_refused_time(s, hardwallet, cash, early, RejectReason.TIME_BEFORE_REGISTRATION)
        at = hardwallet.settle(s.a.operator, [clone_pay(s, 10_00, 1, time=registered_at)])
        assert at.outcomes[0].outcome is Outcome.SETTLED
        assert cash.balance_of(s.a.gym.address) == 10_00

    def test_a_lost_cards_payment_signed_before_the_upload_window_is_refused(
        self, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        """A thief back-dates to before the report: only the upload window before it is open."""
        s = setup
        window = hardwallet.upload_window()
        assert window == 3 * DAY
        devtools.increase_time(s.w3, window + 2 * DAY)  # the card was used for a while
        lost = hardwallet.report_lost(s.a.alice, s.card.address).named("CardReportedLost")[0]
        lost_at, signed_from = lost["lostAt"], lost["signedFrom"]
        assert signed_from == lost_at - window == hardwallet.card(s.card.address).signed_from
        assert signed_from > hardwallet.card(s.card.address).registered_at
        early = clone_pay(s, 10_00, 1, time=signed_from - 1)
        assert_refused_time(s, hardwallet, cash, early, RejectReason.TIME_BEFORE_UPLOAD_WINDOW)
        older = clone_pay(s, 10_00, 2, time=signed_from - 2 * DAY)  # days before: still this reason
        assert_refused_time(s, hardwallet, cash, older, RejectReason.TIME_BEFORE_UPLOAD_WINDOW)
        result = hardwallet.settle(
            s.a.operator,
            [
                clone_pay(s, 10_00, 1, time=signed_from),
                clone_pay(s, 20_00, 3, time=lost_at),
                clone_pay(s, 40_00, 4, time=lost_at + 1),
            ],
        )
        assert [(o.outcome, o.reason) for o in result.outcomes] == [
            (Outcome.SETTLED, RejectReason.NONE),
            (Outcome.SETTLED, RejectReason.NONE),
            (Outcome.REJECTED, RejectReason.CARD_LOST),
        ]
        assert not hardwallet.is_counter_used(s.card.address, 2)
        assert cash.balance_of(s.a.gym.address) == 30_00
        assert_card_conserved(hardwallet, cash, s.card.address)

    def test_a_card_lost_soon_after_registration_refuses_what_precedes_it(
        self, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        """The window reaches back before the registration: the registration is the floor."""
        s = setup
        lost = hardwallet.report_lost(s.a.alice, s.card.address).named("CardReportedLost")[0]
        info = hardwallet.card(s.card.address)
        assert lost["signedFrom"] == lost["lostAt"] - 3 * DAY < info.registered_at
        early = clone_pay(s, 10_00, 1, time=info.registered_at - 1)
        assert_refused_time(s, hardwallet, cash, early, RejectReason.TIME_BEFORE_REGISTRATION)

    def test_the_window_is_fixed_per_card_at_the_report(
        self, setup: Setup, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = setup
        devtools.increase_time(s.w3, 10 * DAY)
        lost = hardwallet.report_lost(s.a.alice, s.card.address).named("CardReportedLost")[0]
        hardwallet.set_upload_window(s.a.operator, 3_600)
        assert hardwallet.card(s.card.address).signed_from == lost["signedFrom"] == lost["lostAt"] - 3 * DAY
        kept = hardwallet.settle(s.a.operator, [clone_pay(s, 10_00, 1, time=lost["signedFrom"])])
        assert kept.outcomes[0].outcome is Outcome.SETTLED
        # A card reported after the change gets the new window.
        other = HardWallet(b"\x0d" * 32, hardwallet.domain)
        hardwallet.register_card(s.a.operator, other.address, s.a.bob.address, CardForm.SIM)
        devtools.increase_time(s.w3, DAY)
        later = hardwallet.report_lost(s.a.operator, other.address).named("CardReportedLost")[0]
        assert later["signedFrom"] == later["lostAt"] - 3_600


class TestLimits:
    def test_operator_sets_limits_with_an_event(self, setup: Setup, hardwallet: HardWalletClient) -> None:
        event = hardwallet.set_limits(setup.a.operator, 200_00, 2_000_00, 2 * DAY).named("LimitsChanged")[0]
        assert (event["offlineCap"], event["reserveCap"], event["gracePeriod"]) == (200_00, 2_000_00, 2 * DAY)
        limits = hardwallet.limits()
        assert (limits.offline_cap, limits.reserve_cap, limits.grace_period) == (200_00, 2_000_00, 2 * DAY)

    def test_a_reported_card_keeps_its_grace_period(
        self, w3: Web3, setup: Setup, hardwallet: HardWalletClient
    ) -> None:
        s = setup
        lost = hardwallet.report_lost(s.a.alice, s.card.address).named("CardReportedLost")[0]
        hardwallet.set_limits(s.a.operator, 1_000_00, 10_000_00, 30 * DAY)
        assert hardwallet.card(s.card.address).grace_ends_at == lost["graceEndsAt"]

    def test_reverts_on_limits_out_of_range(self, setup: Setup, hardwallet: HardWalletClient) -> None:
        op = setup.a.operator
        for offline, reserve, grace in (
            (0, 1, DAY),
            (10, 9, DAY),
            (10, 2**128, DAY),
            (10, 10, 60),
            (10, 10, 31 * DAY),
        ):
            assert_reverts(
                lambda o=offline, r=reserve, g=grace: hardwallet.set_limits(op, o, r, g),
                "HardWalletInvalidLimits",
                offline,
                reserve,
                grace,
            )

    def test_reverts_when_caller_is_not_the_operator(
        self, setup: Setup, hardwallet: HardWalletClient
    ) -> None:
        role = hardwallet.contract.functions.OPERATOR_ROLE().call()
        assert_reverts(
            lambda: hardwallet.set_limits(setup.a.alice, 1, 1, DAY),
            "AccessControlUnauthorizedAccount",
            setup.a.alice.address,
            role,
        )
        assert_reverts(
            lambda: hardwallet.set_upload_window(setup.a.alice, DAY),
            "AccessControlUnauthorizedAccount",
            setup.a.alice.address,
            role,
        )

    def test_operator_sets_the_upload_window_with_an_event(
        self, setup: Setup, hardwallet: HardWalletClient
    ) -> None:
        for seconds in (3_600, 30 * DAY, DAY):
            event = hardwallet.set_upload_window(setup.a.operator, seconds).named("UploadWindowChanged")[0]
            assert event["uploadWindow"] == seconds == hardwallet.upload_window()

    def test_reverts_on_an_upload_window_out_of_range(
        self, setup: Setup, hardwallet: HardWalletClient
    ) -> None:
        for seconds in (0, 3_599, 30 * DAY + 1):
            assert_reverts(
                lambda seconds=seconds: hardwallet.set_upload_window(setup.a.operator, seconds),
                "HardWalletInvalidUploadWindow",
                seconds,
                3_600,
                30 * DAY,
            )
        assert hardwallet.upload_window() == 3 * DAY


class TestDeployment:
    def test_settlement_is_a_cap_exempt_wallet_and_quickpay_holds_nothing(
        self, manifest: Manifest, cash: CashClient, hardwallet: HardWalletClient
    ) -> None:
        info = cash.wallet(hardwallet.contract.address)
        assert info.kind == Kind.INSTITUTION and info.cap_exempt
        # QuickPay holds nothing (no cap exemption) but pulls, and the token admits only
        # registered spenders: it is a registered institution wallet.
        quickpay = cash.wallet(manifest.address("QuickPay"))
        assert quickpay.kind == Kind.INSTITUTION and not quickpay.cap_exempt
        role = hardwallet.contract.functions.OPERATOR_ROLE().call()
        assert hardwallet.contract.functions.hasRole(role, dev_account(1).address).call()
