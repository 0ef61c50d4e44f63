"""Stateful property test of disbursement (Solmate-style invariants with ghost state).

Random explicit and Merkle batches (some Merkle trees worth more or less than their funding),
approvals (by the checker, or by the creator), chunk payments (again and again), claims (valid,
forged, repeated), pushed claims, exception retries, freezes and unfreezes of recipients, an
unregistered recipient, tier-4 recipients whose balance cap bites, freezes of the payer and pauses
of the token (which stop a payout call whole, never turn rows into exceptions), a stranger drafting
with the payer's next reference for itself (ids are scoped by payer), clock jumps across end dates
and reclaims run against the chain and against a Python model. Every outcome is predicted before
the call: success, or the exact custom error and arguments. After every step: each batch on chain
equals the model and funded == paid + reclaimed + outstanding; the contract holds exactly the sum
of the outstanding amounts; every recipient and the payer hold exactly what the model says; while
the payer is frozen or the token paused, nothing of the payer's moves.
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
from chain.clients.disburse import (
    BatchKind,
    BatchStatus,
    DisbursementClient,
    Officer,
    Row,
    batch_id,
    merkle_tree,
    purpose_tag,
)
from chain.clients.token import CashClient, Kind
from chain.deploy import deploy_all
from chain.exceptions import ContractError
from chain.sender import TxResult
from tests.conftest import identity
from tests.helpers import fast_profile_sizes
from tests.properties.models.disburse import Batch

DAY = 86_400
OPERATOR, REGULATOR = dev_account(1), dev_account(2)
PAYER, CHECKER, KEEPER = dev_account(8), dev_account(9), dev_account(3)
SQUATTER = dev_account(7)  # another registered institution
OPENING = 50_000_000_00
# (address, tier): two tier-2 people, two tier-4 people (balance cap 10,000 yuan), one never registered.
PEOPLE = [(Account.from_key(bytes([i + 1]) * 32).address, tier) for i, tier in enumerate((2, 2, 4, 4))]
STRANGER = Account.from_key(b"\x77" * 32).address
RECIPIENTS = [a for a, _ in PEOPLE] + [STRANGER]

Outcome = tuple[str, tuple[Any, ...]] | None

_base: dict[str, Any] = {}


def base_chain() -> tuple[DisbursementClient, CashClient, Any]:
    if not _base:
        w3 = in_process()
        vars(w3.provider.ethereum_tester.backend.chain).pop("gas_estimator", None)  # see the prepaid test
        manifest = deploy_all(w3)
        cash = CashClient(w3, manifest)
        disburse = DisbursementClient(w3, manifest, cash.tx)
        cash.register(OPERATOR, PAYER.address, Kind.INSTITUTION, 1, 0, identity("payer"))
        cash.mint(OPERATOR, PAYER.address, OPENING)
        cash.approve(PAYER, disburse.contract.address, 2**255)
        cash.register(OPERATOR, SQUATTER.address, Kind.INSTITUTION, 1, 0, identity("squatter"))
        disburse.set_officer(PAYER, CHECKER.address, Officer.CHECKER)
        for address, tier in PEOPLE:
            cash.register(OPERATOR, address, Kind.PERSONAL, tier, 0, identity(address))
        _base["caps"] = {a: cash.tier_limits(t).balance_cap for a, t in PEOPLE}
        _base["clients"] = disburse, cash
        _base["snap"] = devtools.snapshot(w3)
    return *_base["clients"], _base["snap"]


rows_strategy = st.lists(
    st.tuples(st.integers(0, len(RECIPIENTS) - 1), st.integers(1, 3_000_00)), min_size=1, max_size=6
)


class DisbursementMachine(RuleBasedStateMachine):
    @initialize(
        opening=st.lists(st.tuples(rows_strategy, st.booleans(), st.booleans()), min_size=2, max_size=3)
    )
    def start(self, opening: list[tuple[list[tuple[int, int]], bool, bool]]) -> None:
        """Revert to the base chain; draft a few batches and have the checker approve some."""
        self.disburse, self.cash, snap = base_chain()
        self.w3 = self.cash.w3
        devtools.revert(self.w3, snap)
        _base["snap"] = devtools.snapshot(self.w3)  # eth-tester snapshots are single-use
        self.cash.tx.nonces.reset()
        self.caps: dict[str, int] = _base["caps"]
        self.batches: list[Batch] = []
        self.frozen: set[str] = set()
        self.payer_frozen = False
        self.paused = False
        self.squatted: set[str] = set()
        self.balances = {a: 0 for a in RECIPIENTS}
        self.payer_balance = OPENING
        for rows, merkle, approved in opening:
            b = self._create(rows, merkle, 0, 2, 10)
            if approved:
                self.disburse.approve(CHECKER, b.bid)
                b.status, b.funded = BatchStatus.APPROVED, b.total
                self.payer_balance -= b.total

    # -- helpers ---------------------------------------------------------------------------

    def _now(self) -> int:
        """The block.timestamp the next transaction will see."""
        return int(self.w3.provider.ethereum_tester.get_block_by_number("pending")["timestamp"])

    def _run(self, what: str, call: Callable[[], TxResult], expected: Outcome) -> TxResult | None:
        event(f"{what}: {expected[0] if expected else 'ok'}")
        try:
            result = call()
        except ContractError as exc:
            assert (exc.name, exc.args_tuple) == expected, f"{what}: expected {expected}, got {exc.signature}"
            return None
        assert expected is None, f"{what}: expected {expected}, but the call succeeded"
        return result

    def _refusal(self, recipient: str, amount: int, balances: dict[str, int] | None = None) -> Outcome:
        """What DigitalCash says to a payment of ``amount`` to ``recipient`` (None: accepted)."""
        balances = self.balances if balances is None else balances
        if recipient == STRANGER:
            return ("WalletNotRegistered", (recipient,))
        if recipient in self.frozen:
            return ("WalletFrozen", (recipient,))
        after = balances[recipient] + amount
        if after > self.caps[recipient]:
            return ("TierBalanceCapExceeded", (recipient, self.caps[recipient], after))
        return None

    def _pick(self, data: st.DataObject, kind: BatchKind) -> Batch:
        """A batch of ``kind``: five times in six an approved one, when there is one."""
        of_kind = [b for b in self.batches if b.kind == kind]
        approved = [b for b in of_kind if b.status == BatchStatus.APPROVED]
        if approved and data.draw(st.integers(0, 5), label="any status") != 0:
            return data.draw(st.sampled_from(approved), label="batch")
        return data.draw(st.sampled_from(of_kind), label="batch")

    def _payable(self, b: Batch, kind: BatchKind) -> Outcome:
        if b.kind != kind:
            return ("DisburseWrongKind", (b.bid, kind))
        if b.status != BatchStatus.APPROVED:
            return ("DisburseWrongStatus", (b.bid, BatchStatus.APPROVED, b.status))
        if self._now() > b.ends_at:
            return ("DisburseBatchEnded", (b.bid, b.ends_at))
        return self._whole_call(b)

    def _whole_call(self, b: Batch) -> Outcome:
        """What stops a payout call whole: the token paused, the payer frozen."""
        if self.paused:
            return ("EnforcedPause", ())
        if self.payer_frozen:
            return ("DisbursePayerNotAdmitted", (b.bid, PAYER.address))
        return None

    def _pay(self, b: Batch, index: int, row: Row) -> None:
        b.paid += row.amount
        self.balances[row.recipient] += row.amount

    # -- rules -----------------------------------------------------------------------------

    @rule(
        rows=rows_strategy,
        merkle=st.booleans(),
        skew=st.sampled_from([0, 0, 0, -1, 1]),
        chunk=st.integers(1, 3),
        days=st.integers(1, 10),
    )
    def create(self, rows: list[tuple[int, int]], merkle: bool, skew: int, chunk: int, days: int) -> None:
        """A new batch; Merkle trees are sometimes worth a bit more or less than the funding."""
        self._create(rows, merkle, skew, chunk, days)

    def _create(self, rows: list[tuple[int, int]], merkle: bool, skew: int, chunk: int, days: int) -> Batch:
        reference = f"prop-{len(self.batches)}"
        bid = batch_id(PAYER.address, reference)
        table = [Row(RECIPIENTS[r], amount) for r, amount in rows]
        total = sum(r.amount for r in table)
        ends_at = self._now() + days * DAY
        purpose = purpose_tag("subsidy" if merkle else "salary")
        if merkle:
            total = max(1, total + skew * table[0].amount // 2)
            tree = merkle_tree(bid, table)
            self.disburse.create_merkle(
                PAYER, reference, PAYER.address, purpose, ends_at, total, tree.root, len(table)
            )
            batch = Batch(bid, BatchKind.MERKLE, table, [], total, ends_at, tree)
        else:
            self.disburse.create_explicit(PAYER, reference, PAYER.address, purpose, ends_at, total)
            chunks = [(i, min(chunk, len(table) - i)) for i in range(0, len(table), chunk)]
            for first, count in chunks:
                self.disburse.add_rows(PAYER, bid, table[first : first + count])
            batch = Batch(bid, BatchKind.EXPLICIT, table, chunks, total, ends_at)
        self.batches.append(batch)
        return batch

    @precondition(lambda self: self.batches)
    @rule(data=st.data(), by_creator=st.integers(0, 5))
    def approve(self, data: st.DataObject, by_creator: int) -> None:
        b = data.draw(st.sampled_from(self.batches), label="batch")
        signer = PAYER if by_creator == 0 else CHECKER
        expected: Outcome = None
        if b.status != BatchStatus.DRAFT:
            expected = ("DisburseWrongStatus", (b.bid, BatchStatus.DRAFT, b.status))
        elif signer == PAYER:
            expected = ("DisburseSelfApproval", (b.bid, PAYER.address))
        elif self._now() > b.ends_at:
            expected = ("DisburseBatchEnded", (b.bid, b.ends_at))
        elif self.paused:
            expected = ("EnforcedPause", ())
        elif self.payer_frozen:  # the token refuses to pull the funding
            expected = ("WalletFrozen", (PAYER.address,))
        if self._run("approve", lambda: self.disburse.approve(signer, b.bid), expected):
            b.status, b.funded = BatchStatus.APPROVED, b.total
            self.payer_balance -= b.total

    @precondition(lambda self: any(b.kind == BatchKind.EXPLICIT for b in self.batches))
    @rule(data=st.data())
    def pay_chunk(self, data: st.DataObject) -> None:
        b = data.draw(
            st.sampled_from([b for b in self.batches if b.kind == BatchKind.EXPLICIT]), label="batch"
        )
        c = data.draw(st.integers(0, len(b.chunks)), label="chunk")  # one past the end: unknown
        expected = self._payable(b, BatchKind.EXPLICIT)
        if expected is None and c >= len(b.chunks):
            expected = ("DisburseUnknownChunk", (b.bid, c))
        elif expected is None and c in b.chunks_paid:
            expected = ("DisburseChunkPaid", (b.bid, c))
        first, count = b.chunks[min(c, len(b.chunks) - 1)]
        rows = b.rows[first : first + count]
        result = self._run("pay_chunk", lambda: self.disburse.pay_chunk(KEEPER, b.bid, c, rows), expected)
        if result is None:
            return
        b.chunks_paid.add(c)
        held = {}
        for i, row in enumerate(rows, start=first):
            if self._refusal(row.recipient, row.amount) is None:
                self._pay(b, i, row)
            else:
                b.exceptions[i] = held[i] = row.amount
        assert {e.args["index"]: e.args["amount"] for e in result.named("PayoutException")} == held

    @precondition(lambda self: any(b.kind == BatchKind.MERKLE for b in self.batches))
    @rule(data=st.data(), honest=st.integers(0, 5))
    def claim(self, data: st.DataObject, honest: int) -> None:
        """Mostly the leaf as it is; one time in six with its amount raised by one fen (forged)."""
        b = self._pick(data, BatchKind.MERKLE)
        assert b.tree is not None
        i = data.draw(st.integers(0, len(b.rows) - 1), label="leaf")
        row = b.rows[i] if honest else Row(b.rows[i].recipient, b.rows[i].amount + 1)
        expected = self._payable(b, BatchKind.MERKLE)
        available = b.outstanding - sum(b.exceptions.values())
        if expected is None:
            if i in b.claimed:
                expected = ("DisburseAlreadyClaimed", (b.bid, i))
            elif not honest:
                expected = ("DisburseInvalidProof", (b.bid, i))
            elif row.amount > available:
                expected = ("DisburseExceedsFunding", (b.bid, available, row.amount))
            else:
                expected = self._refusal(row.recipient, row.amount)
        proof = b.tree.proof(i)
        if self._run("claim", lambda: self.disburse.claim(KEEPER, b.bid, i, row, proof), expected):
            b.claimed.add(i)
            self._pay(b, i, row)

    @precondition(lambda self: any(b.kind == BatchKind.MERKLE for b in self.batches))
    @rule(data=st.data())
    def push_claims(self, data: st.DataObject) -> None:
        b = self._pick(data, BatchKind.MERKLE)
        assert b.tree is not None
        picked = data.draw(st.lists(st.integers(0, len(b.rows) - 1), min_size=1, max_size=6, unique=True))
        expected = self._payable(b, BatchKind.MERKLE)
        plan: list[tuple[int, bool]] = []  # (index, paid) in order; a funding shortfall reverts all
        if expected is None:
            available = b.outstanding - sum(b.exceptions.values())
            balances = dict(self.balances)
            for i in picked:
                if i in b.claimed:
                    continue
                row = b.rows[i]
                if row.amount > available:
                    expected = ("DisburseExceedsFunding", (b.bid, available, row.amount))
                    break
                ok = self._refusal(row.recipient, row.amount, balances) is None
                if ok:
                    balances[row.recipient] += row.amount
                available -= row.amount
                plan.append((i, ok))
        claims = [(i, b.rows[i], b.tree.proof(i)) for i in picked]
        if self._run("push_claims", lambda: self.disburse.push_claims(KEEPER, b.bid, claims), expected):
            for i, ok in plan:
                b.claimed.add(i)
                if ok:
                    self._pay(b, i, b.rows[i])
                else:
                    b.exceptions[i] = b.rows[i].amount

    @precondition(lambda self: any(b.exceptions for b in self.batches))
    @rule(data=st.data())
    def retry_exception(self, data: st.DataObject) -> None:
        b = data.draw(st.sampled_from([b for b in self.batches if b.exceptions]), label="batch")
        i = data.draw(st.sampled_from(sorted(b.exceptions)), label="index")
        row = Row(b.rows[i].recipient, b.exceptions[i])
        expected: Outcome = None
        if b.status != BatchStatus.APPROVED:  # pragma: no cover - a reclaim clears exceptions
            expected = ("DisburseWrongStatus", (b.bid, BatchStatus.APPROVED, b.status))
        elif self._now() > b.ends_at:
            expected = ("DisburseBatchEnded", (b.bid, b.ends_at))
        else:
            expected = self._whole_call(b) or self._refusal(row.recipient, row.amount)
        if self._run("retry", lambda: self.disburse.retry_exception(KEEPER, b.bid, i), expected):
            del b.exceptions[i]
            self._pay(b, i, row)

    @rule(who=st.integers(0, len(PEOPLE) - 1))
    def toggle_freeze(self, who: int) -> None:
        address = PEOPLE[who][0]
        if address in self.frozen:
            self.cash.unfreeze(REGULATOR, address)
            self.frozen.discard(address)
        else:
            self.cash.freeze(REGULATOR, address)
            self.frozen.add(address)

    @rule()
    def toggle_payer_freeze(self) -> None:
        if self.payer_frozen:
            self.cash.unfreeze(REGULATOR, PAYER.address)
        else:
            self.cash.freeze(REGULATOR, PAYER.address)
        self.payer_frozen = not self.payer_frozen

    @rule()
    def toggle_pause(self) -> None:
        if self.paused:
            self.cash.unpause(REGULATOR)
        else:
            self.cash.pause(REGULATOR)
        self.paused = not self.paused

    @rule()
    def squat_the_next_reference(self) -> None:
        """A stranger drafts, for itself, the reference the payer will use next: the payer's id is
        untouched (scoped by payer), and the stranger's own reference is used once."""
        reference = f"prop-{len(self.batches)}"
        expected: Outcome = None
        if reference in self.squatted:
            expected = ("DisburseBatchExists", (batch_id(SQUATTER.address, reference),))
        call = lambda: self.disburse.create_explicit(  # noqa: E731
            SQUATTER, reference, SQUATTER.address, purpose_tag("x"), self._now() + DAY, 1
        )
        if self._run("squat", call, expected):
            self.squatted.add(reference)

    @rule(days=st.sampled_from([1, 3, 11]))
    def warp(self, days: int) -> None:
        devtools.increase_time(self.w3, days * DAY)

    @precondition(lambda self: self.batches)
    @rule(data=st.data())
    def reclaim(self, data: st.DataObject) -> None:
        b = data.draw(st.sampled_from(self.batches), label="batch")
        expected: Outcome = None
        if b.status != BatchStatus.APPROVED:
            expected = ("DisburseWrongStatus", (b.bid, BatchStatus.APPROVED, b.status))
        elif self._now() <= b.ends_at:
            expected = ("DisburseNotEnded", (b.bid, b.ends_at))
        else:
            expected = self._whole_call(b)
        if self._run("reclaim", lambda: self.disburse.reclaim(KEEPER, b.bid), expected):
            amount = b.outstanding
            b.reclaimed += amount
            b.exceptions.clear()
            b.status = BatchStatus.CLOSED
            self.payer_balance += amount

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def batches_match_the_model_and_conserve(self) -> None:
        for b in getattr(self, "batches", []):
            on_chain = self.disburse.batch(b.bid)
            assert (on_chain.status, on_chain.funded, on_chain.paid, on_chain.reclaimed) == (
                b.status,
                b.funded,
                b.paid,
                b.reclaimed,
            )
            assert on_chain.exceptions == sum(b.exceptions.values())
            assert on_chain.funded == on_chain.paid + on_chain.reclaimed + on_chain.outstanding
            assert on_chain.outstanding >= on_chain.exceptions

    @invariant()
    def balances_match_and_the_contract_holds_exactly_the_outstanding(self) -> None:
        if not hasattr(self, "batches"):
            return
        held = sum(b.outstanding for b in self.batches)
        assert self.cash.balance_of(self.disburse.contract.address) == held
        assert {a: self.cash.balance_of(a) for a in RECIPIENTS} == self.balances
        assert self.cash.balance_of(PAYER.address) == self.payer_balance
        assert self.cash.total_supply() == OPENING


TestDisbursementInvariants = DisbursementMachine.TestCase
# Deeper than the fast profile's default (the machine has many rules, and hypothesis enables a random
# subset of them per sequence). Even so, XCPAY_RULE_REACH shows retry_exception (it needs a batch
# with exceptions first) reached by none of the first 8 sequences of 30 steps: `make audit` runs it.
fast_profile_sizes(TestDisbursementInvariants, 10, 30)
