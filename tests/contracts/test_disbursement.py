"""Disbursement: maker-checker batches, explicit chunks, Merkle claims, exceptions, reclaim."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from chain import devtools
from chain.accounts import dev_account
from chain.clients.disburse import (
    MAX_CHUNKS_PER_CALL,
    MAX_ROWS,
    BatchKind,
    BatchStatus,
    DisbursementClient,
    Officer,
    Row,
    batch_id,
    batch_ref,
    leaf_hash,
    merkle_tree,
    purpose_tag,
)
from chain.clients.token import CashClient, Kind, Registration, bytes32_text
from chain.merkle import verify
from tests.conftest import Actors, identity
from tests.helpers import assert_reverts

DAY = 86_400
SALARY = purpose_tag("salary")
SUBSIDY = purpose_tag("subsidy")
ZERO = b"\0" * 32


def now(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


def selector(w3: Web3, signature: str) -> bytes:
    return bytes(Web3.keccak(text=signature)[:4])


@dataclass(frozen=True)
class Payroll:
    """An employer (institution wallet, 1,000,000 yuan) with a checker; registered workers."""

    employer: LocalAccount
    checker: LocalAccount
    operator: LocalAccount
    outsider: LocalAccount
    workers: list[str]
    unregistered: str


@pytest.fixture
def payroll(registered: Actors, cash: CashClient, disburse: DisbursementClient) -> Payroll:
    a = registered
    employer, checker = dev_account(8), dev_account(9)
    cash.register(a.operator, employer.address, Kind.INSTITUTION, 1, 0, identity("employer"))
    cash.mint(a.operator, employer.address, 1_000_000_00)
    disburse.set_officer(employer, checker.address, Officer.CHECKER)
    workers = [Account.create().address for _ in range(6)]
    for i, w in enumerate(workers):
        cash.register(a.operator, w, Kind.PERSONAL, 2, 0, identity(f"worker{i}"))
    return Payroll(employer, checker, a.operator, a.outsider, workers, Account.create().address)


def rows_for(workers: list[str], amount: int = 100_00) -> list[Row]:
    return [Row(w, amount + i) for i, w in enumerate(workers)]


def draft_explicit(
    w3: Web3, disburse: DisbursementClient, p: Payroll, ref: str, rows: list[Row], *, days: int = 30
) -> bytes:
    bid = batch_id(p.employer.address, ref)
    disburse.create_explicit(
        p.employer, ref, p.employer.address, SALARY, now(w3) + days * DAY, sum(r.amount for r in rows)
    )
    for start in range(0, len(rows), MAX_ROWS):
        disburse.add_rows(p.employer, bid, rows[start : start + MAX_ROWS])
    return bid


def approved_explicit(
    w3: Web3, disburse: DisbursementClient, cash: CashClient, p: Payroll, ref: str, rows: list[Row]
) -> bytes:
    bid = draft_explicit(w3, disburse, p, ref, rows)
    cash.approve(p.employer, disburse.contract.address, sum(r.amount for r in rows))
    disburse.approve(p.checker, bid)
    return bid


def approved_merkle(
    w3: Web3,
    disburse: DisbursementClient,
    cash: CashClient,
    p: Payroll,
    ref: str,
    rows: list[Row],
    *,
    total: int | None = None,
):
    bid = batch_id(p.employer.address, ref)
    tree = merkle_tree(bid, rows)
    total = sum(r.amount for r in rows) if total is None else total
    disburse.create_merkle(
        p.employer, ref, p.employer.address, SUBSIDY, now(w3) + 30 * DAY, total, tree.root, len(rows)
    )
    cash.approve(p.employer, disburse.contract.address, total)
    disburse.approve(p.checker, bid)
    return bid, tree


def assert_conserved(disburse: DisbursementClient, cash: CashClient, *bids: bytes) -> None:
    """funded == paid + reclaimed + outstanding per batch; the contract holds exactly the outstanding."""
    held = 0
    for bid in bids:
        b = disburse.batch(bid)
        assert b.funded == b.paid + b.reclaimed + b.outstanding and b.outstanding >= b.exceptions >= 0, b
        held += b.outstanding
    c = disburse.contract.functions
    total_outstanding = c.totalFunded().call() - c.totalPaid().call() - c.totalReclaimed().call()
    assert cash.balance_of(disburse.contract.address) == total_outstanding == held


class TestCreateBatch:
    def test_payer_drafts_an_explicit_batch(
        self, w3: Web3, payroll: Payroll, disburse: DisbursementClient
    ) -> None:
        bid = batch_id(payroll.employer.address, "b1")
        ends = now(w3) + DAY
        event = disburse.create_explicit(
            payroll.employer, "b1", payroll.employer.address, SALARY, ends, 500_00
        ).named("BatchCreated")[0]
        assert event.args["kind"] == BatchKind.EXPLICIT and event.args["purpose"] == SALARY
        b = disburse.batch(bid)
        assert (b.status, b.total, b.funded, b.creator) == (
            BatchStatus.DRAFT,
            500_00,
            0,
            payroll.employer.address,
        )

    def test_a_maker_of_the_payer_may_draft(
        self, w3: Web3, payroll: Payroll, disburse: DisbursementClient
    ) -> None:
        maker = payroll.outsider
        disburse.set_officer(payroll.employer, maker.address, Officer.MAKER)
        disburse.create_explicit(maker, "b", payroll.employer.address, SALARY, now(w3) + DAY, 1)
        assert disburse.batch(batch_id(payroll.employer.address, "b")).creator == maker.address

    def test_reverts_when_caller_is_neither_payer_nor_maker(
        self, w3: Web3, payroll: Payroll, disburse: DisbursementClient
    ) -> None:
        p = payroll
        assert_reverts(
            lambda: disburse.create_explicit(p.checker, "b", p.employer.address, SALARY, now(w3) + DAY, 1),
            "DisburseNotMaker",
            p.employer.address,
            p.checker.address,
        )

    def test_reverts_when_payer_is_a_personal_wallet(
        self, w3: Web3, registered: Actors, disburse: DisbursementClient
    ) -> None:
        alice = registered.alice
        assert_reverts(
            lambda: disburse.create_explicit(alice, "b", alice.address, SALARY, now(w3) + DAY, 1),
            "DisburseInvalidPayer",
            alice.address,
        )

    def test_reverts_when_batch_id_was_used(
        self, w3: Web3, payroll: Payroll, disburse: DisbursementClient
    ) -> None:
        p, bid = payroll, batch_id(payroll.employer.address, "b")
        disburse.create_explicit(p.employer, "b", p.employer.address, SALARY, now(w3) + DAY, 1)
        assert_reverts(
            lambda: disburse.create_explicit(p.employer, "b", p.employer.address, SALARY, now(w3) + DAY, 1),
            "DisburseBatchExists",
            bid,
        )

    def test_reverts_on_zero_id_zero_total_past_end_and_empty_tree(
        self, w3: Web3, payroll: Payroll, disburse: DisbursementClient
    ) -> None:
        p, payer, t = payroll, payroll.employer.address, now(w3)
        assert_reverts(
            lambda: disburse.tx.transact(
                p.employer, disburse.contract.functions.createBatch(ZERO, payer, SALARY, t + DAY, 1, ZERO, 0)
            ),
            "DisburseZeroReference",
        )
        assert_reverts(
            lambda: disburse.create_explicit(p.employer, "z", payer, SALARY, t + DAY, 0),
            "DisburseZeroTotal",
        )
        assert_reverts(
            lambda: disburse.create_explicit(p.employer, "z", payer, SALARY, t - 1, 1),
            "DisburseEndInPast",
        )
        assert_reverts(
            lambda: disburse.create_merkle(p.employer, "z", payer, SALARY, t + DAY, 1, b"\1" * 32, 0),
            "DisburseNoLeaves",
        )


class TestAddRows:
    def test_rows_are_added_in_numbered_chunks(
        self, w3: Web3, payroll: Payroll, disburse: DisbursementClient
    ) -> None:
        rows = rows_for(payroll.workers)
        bid = batch_id(payroll.employer.address, "b")
        disburse.create_explicit(
            payroll.employer,
            "b",
            payroll.employer.address,
            SALARY,
            now(w3) + DAY,
            sum(r.amount for r in rows),
        )
        first = disburse.add_rows(payroll.employer, bid, rows[:4]).named("RowsAdded")[0].args
        second = disburse.add_rows(payroll.employer, bid, rows[4:]).named("RowsAdded")[0].args
        assert (first["chunk"], first["firstIndex"], first["count"]) == (0, 0, 4)
        assert (second["chunk"], second["firstIndex"], second["count"]) == (1, 4, 2)
        b = disburse.batch(bid)
        assert (b.chunk_count, b.row_count, b.rows_total) == (2, 6, b.total)

    def test_reverts_when_rows_exceed_the_total(
        self, w3: Web3, payroll: Payroll, disburse: DisbursementClient
    ) -> None:
        p, bid = payroll, batch_id(payroll.employer.address, "b")
        disburse.create_explicit(p.employer, "b", p.employer.address, SALARY, now(w3) + DAY, 150_00)
        disburse.add_rows(p.employer, bid, [Row(p.workers[0], 100_00)])
        assert_reverts(
            lambda: disburse.add_rows(p.employer, bid, [Row(p.workers[1], 50_01)]),
            "DisburseOverTotal",
            bid,
            150_00,
            150_01,
        )

    def test_reverts_on_empty_oversized_or_invalid_chunks(
        self, w3: Web3, payroll: Payroll, disburse: DisbursementClient
    ) -> None:
        p, bid = payroll, batch_id(payroll.employer.address, "b")
        disburse.create_explicit(p.employer, "b", p.employer.address, SALARY, now(w3) + DAY, 10**12)
        assert_reverts(lambda: disburse.add_rows(p.employer, bid, []), "DisburseChunkSize", 0, MAX_ROWS)
        too_many = [Row(p.workers[0], 1)] * (MAX_ROWS + 1)
        assert_reverts(
            lambda: disburse.add_rows(p.employer, bid, too_many), "DisburseChunkSize", MAX_ROWS + 1, MAX_ROWS
        )
        assert_reverts(
            lambda: disburse.add_rows(p.employer, bid, [Row(p.workers[0], 1), Row(p.workers[1], 0)]),
            "DisburseInvalidRow",
            1,
        )
        zero = "0x" + "00" * 20
        assert_reverts(lambda: disburse.add_rows(p.employer, bid, [Row(zero, 5)]), "DisburseInvalidRow", 0)

    def test_reverts_when_caller_did_not_draft_it(
        self, w3: Web3, payroll: Payroll, disburse: DisbursementClient
    ) -> None:
        p, bid = payroll, batch_id(payroll.employer.address, "b")
        disburse.create_explicit(p.employer, "b", p.employer.address, SALARY, now(w3) + DAY, 100)
        assert_reverts(
            lambda: disburse.add_rows(p.checker, bid, [Row(p.workers[0], 100)]),
            "DisburseNotCreator",
            bid,
            p.checker.address,
        )

    def test_reverts_on_a_merkle_batch(
        self, w3: Web3, payroll: Payroll, disburse: DisbursementClient
    ) -> None:
        p, bid = payroll, batch_id(payroll.employer.address, "b")
        disburse.create_merkle(
            p.employer, "b", p.employer.address, SUBSIDY, now(w3) + DAY, 100, b"\1" * 32, 1
        )
        assert_reverts(
            lambda: disburse.add_rows(p.employer, bid, [Row(p.workers[0], 100)]),
            "DisburseWrongKind",
            bid,
            BatchKind.EXPLICIT,
        )


class TestAddChunks:
    def test_chunks_are_numbered_as_add_rows_numbers_them_and_pay_one_by_one(
        self, w3: Web3, payroll: Payroll, disburse: DisbursementClient, cash: CashClient
    ) -> None:
        p = payroll
        rows = rows_for(p.workers)
        bid = batch_id(p.employer.address, "c")
        total = sum(r.amount for r in rows)
        disburse.create_explicit(p.employer, "c", p.employer.address, SALARY, now(w3) + DAY, total)
        disburse.add_rows(p.employer, bid, rows[:1])
        added = disburse.add_chunks(p.employer, bid, [rows[1:3], rows[3:4], rows[4:]]).named("RowsAdded")
        assert [(e.args["chunk"], e.args["firstIndex"], e.args["count"]) for e in added] == [
            (1, 1, 2),
            (2, 3, 1),
            (3, 4, 2),
        ]
        b = disburse.batch(bid)
        assert (b.chunk_count, b.row_count, b.rows_total) == (4, 6, total)
        cash.approve(p.employer, disburse.contract.address, total)
        disburse.approve(p.checker, bid)
        for chunk, part in enumerate([rows[:1], rows[1:3], rows[3:4], rows[4:]]):
            assert len(disburse.pay_chunk(p.operator, bid, chunk, part).named("Paid")) == len(part)
        assert [cash.balance_of(r.recipient) for r in rows] == [r.amount for r in rows]

    def test_reverts_on_no_chunks_too_many_chunks_or_a_bad_chunk_and_adds_none(
        self, w3: Web3, payroll: Payroll, disburse: DisbursementClient
    ) -> None:
        p, bid = payroll, batch_id(payroll.employer.address, "c")
        disburse.create_explicit(p.employer, "c", p.employer.address, SALARY, now(w3) + DAY, 10**12)
        one = [Row(p.workers[0], 1)]
        assert_reverts(
            lambda: disburse.add_chunks(p.employer, bid, []), "DisburseChunkCount", 0, MAX_CHUNKS_PER_CALL
        )
        too_many = [one] * (MAX_CHUNKS_PER_CALL + 1)
        assert_reverts(
            lambda: disburse.add_chunks(p.employer, bid, too_many),
            "DisburseChunkCount",
            MAX_CHUNKS_PER_CALL + 1,
            MAX_CHUNKS_PER_CALL,
        )
        assert_reverts(
            lambda: disburse.add_chunks(p.employer, bid, [one, []]), "DisburseChunkSize", 0, MAX_ROWS
        )
        oversized = [Row(p.workers[0], 1)] * (MAX_ROWS + 1)
        assert_reverts(
            lambda: disburse.add_chunks(p.employer, bid, [one, oversized]),
            "DisburseChunkSize",
            MAX_ROWS + 1,
            MAX_ROWS,
        )
        assert_reverts(
            lambda: disburse.add_chunks(p.employer, bid, [one, [Row(p.workers[1], 0)]]),
            "DisburseInvalidRow",
            0,
        )
        assert disburse.batch(bid).chunk_count == 0

    def test_reverts_over_the_total_for_another_caller_and_on_a_merkle_batch(
        self, w3: Web3, payroll: Payroll, disburse: DisbursementClient
    ) -> None:
        p, bid = payroll, batch_id(payroll.employer.address, "c")
        disburse.create_explicit(p.employer, "c", p.employer.address, SALARY, now(w3) + DAY, 150_00)
        chunks = [[Row(p.workers[0], 100_00)], [Row(p.workers[1], 50_01)]]
        assert_reverts(
            lambda: disburse.add_chunks(p.employer, bid, chunks), "DisburseOverTotal", bid, 150_00, 150_01
        )
        assert_reverts(
            lambda: disburse.add_chunks(p.checker, bid, chunks[:1]),
            "DisburseNotCreator",
            bid,
            p.checker.address,
        )
        mid = batch_id(p.employer.address, "m")
        disburse.create_merkle(
            p.employer, "m", p.employer.address, SUBSIDY, now(w3) + DAY, 100, b"\1" * 32, 1
        )
        assert_reverts(
            lambda: disburse.add_chunks(p.employer, mid, chunks[:1]),
            "DisburseWrongKind",
            mid,
            BatchKind.EXPLICIT,
        )


class TestApprove:
    def test_checker_approval_takes_the_total_from_the_payer(
        self, w3: Web3, payroll: Payroll, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        rows = rows_for(payroll.workers)
        total = sum(r.amount for r in rows)
        before = cash.balance_of(payroll.employer.address)
        bid = approved_explicit(w3, disburse, cash, payroll, "b", rows)
        b = disburse.batch(bid)
        assert (b.status, b.funded, b.approver) == (BatchStatus.APPROVED, total, payroll.checker.address)
        assert cash.balance_of(payroll.employer.address) == before - total
        assert_conserved(disburse, cash, bid)

    def test_reverts_when_the_creator_approves_its_own_batch(
        self, w3: Web3, payroll: Payroll, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p = payroll
        disburse.set_officer(p.employer, p.employer.address, Officer.CHECKER)  # even as a checker
        bid = draft_explicit(w3, disburse, p, "b", rows_for(p.workers))
        assert_reverts(
            lambda: disburse.approve(p.employer, bid), "DisburseSelfApproval", bid, p.employer.address
        )

    def test_reverts_when_approver_is_not_a_checker_of_the_payer(
        self, w3: Web3, payroll: Payroll, disburse: DisbursementClient
    ) -> None:
        p = payroll
        bid = draft_explicit(w3, disburse, p, "b", rows_for(p.workers))
        assert_reverts(
            lambda: disburse.approve(p.outsider, bid),
            "DisburseNotChecker",
            p.employer.address,
            p.outsider.address,
        )
        disburse.set_officer(p.employer, p.outsider.address, Officer.MAKER)  # a maker is not a checker
        assert_reverts(
            lambda: disburse.approve(p.outsider, bid),
            "DisburseNotChecker",
            p.employer.address,
            p.outsider.address,
        )

    def test_a_removed_checker_cannot_approve(
        self, w3: Web3, payroll: Payroll, disburse: DisbursementClient
    ) -> None:
        p = payroll
        bid = draft_explicit(w3, disburse, p, "b", rows_for(p.workers))
        disburse.set_officer(p.employer, p.checker.address, Officer.NONE)
        assert_reverts(
            lambda: disburse.approve(p.checker, bid),
            "DisburseNotChecker",
            p.employer.address,
            p.checker.address,
        )

    def test_a_frozen_checker_cannot_approve_and_the_draft_waits(
        self,
        w3: Web3,
        registered: Actors,
        payroll: Payroll,
        cash: CashClient,
        disburse: DisbursementClient,
    ) -> None:
        """The red team's finding: a checker whose own wallet is frozen approved and the batch paid."""
        p = payroll
        cash.register(p.operator, p.checker.address, Kind.PERSONAL, 2, 0, identity("checker"))
        rows = rows_for(p.workers)
        bid = draft_explicit(w3, disburse, p, "b", rows)
        cash.approve(p.employer, disburse.contract.address, sum(r.amount for r in rows))
        before = cash.balance_of(p.employer.address)
        cash.freeze(registered.regulator, p.checker.address)
        assert_reverts(
            lambda: disburse.approve(p.checker, bid), "DisburseCheckerFrozen", bid, p.checker.address
        )
        assert disburse.batch(bid).status == BatchStatus.DRAFT
        assert cash.balance_of(p.employer.address) == before
        cash.unfreeze(registered.regulator, p.checker.address)
        disburse.approve(p.checker, bid)
        assert disburse.batch(bid).status == BatchStatus.APPROVED

    def test_reverts_when_rows_are_incomplete(
        self, w3: Web3, payroll: Payroll, disburse: DisbursementClient
    ) -> None:
        p, bid = payroll, batch_id(payroll.employer.address, "b")
        disburse.create_explicit(p.employer, "b", p.employer.address, SALARY, now(w3) + DAY, 300_00)
        disburse.add_rows(p.employer, bid, [Row(p.workers[0], 100_00)])
        assert_reverts(
            lambda: disburse.approve(p.checker, bid), "DisburseRowsIncomplete", bid, 300_00, 100_00
        )

    def test_reverts_when_payer_is_underfunded(
        self, w3: Web3, payroll: Payroll, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p = payroll
        rows = [Row(p.workers[0], 2_000_000_00)]  # more than the employer holds
        bid = draft_explicit(w3, disburse, p, "b", rows)
        assert_reverts(lambda: disburse.approve(p.checker, bid), "ERC20InsufficientAllowance")
        cash.approve(p.employer, disburse.contract.address, rows[0].amount)
        assert_reverts(lambda: disburse.approve(p.checker, bid), "ERC20InsufficientBalance")
        assert disburse.batch(bid).status == BatchStatus.DRAFT

    def test_reverts_when_approved_twice_or_cancelled(
        self, w3: Web3, payroll: Payroll, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p = payroll
        bid = approved_explicit(w3, disburse, cash, p, "b", rows_for(p.workers))
        assert_reverts(
            lambda: disburse.approve(p.checker, bid),
            "DisburseWrongStatus",
            bid,
            BatchStatus.DRAFT,
            BatchStatus.APPROVED,
        )
        other = draft_explicit(w3, disburse, p, "c", rows_for(p.workers))
        disburse.cancel(p.employer, other)
        assert_reverts(
            lambda: disburse.approve(p.checker, other),
            "DisburseWrongStatus",
            other,
            BatchStatus.DRAFT,
            BatchStatus.CANCELLED,
        )


class TestPayChunk:
    def test_pays_every_row_of_the_chunk(
        self, w3: Web3, payroll: Payroll, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p, rows = payroll, rows_for(payroll.workers)
        bid = approved_explicit(w3, disburse, cash, p, "b", rows)
        result = disburse.pay_chunk(p.operator, bid, 0, rows)
        assert [e.args["recipient"] for e in result.named("Paid")] == [r.recipient for r in rows]
        assert all(e.args["purpose"] == SALARY for e in result.named("Paid"))
        assert [cash.balance_of(r.recipient) for r in rows] == [r.amount for r in rows]
        b = disburse.batch(bid)
        assert (b.paid, b.outstanding) == (b.funded, 0)
        assert_conserved(disburse, cash, bid)

    def test_reverts_when_chunk_is_paid_twice(
        self, w3: Web3, payroll: Payroll, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p, rows = payroll, rows_for(payroll.workers)
        bid = approved_explicit(w3, disburse, cash, p, "b", rows)
        disburse.pay_chunk(p.operator, bid, 0, rows)
        assert_reverts(lambda: disburse.pay_chunk(p.operator, bid, 0, rows), "DisburseChunkPaid", bid, 0)
        assert sum(cash.balance_of(r.recipient) for r in rows) == disburse.batch(bid).funded

    def test_reverts_when_rows_differ_from_the_approved_ones(
        self, w3: Web3, payroll: Payroll, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p, rows = payroll, rows_for(payroll.workers)
        bid = approved_explicit(w3, disburse, cash, p, "b", rows)
        tampered = [Row(p.outsider.address, rows[0].amount), *rows[1:]]
        assert_reverts(
            lambda: disburse.pay_chunk(p.operator, bid, 0, tampered), "DisburseChunkMismatch", bid, 0
        )
        assert_reverts(lambda: disburse.pay_chunk(p.operator, bid, 1, rows), "DisburseUnknownChunk", bid, 1)

    def test_reverts_before_approval(self, w3: Web3, payroll: Payroll, disburse: DisbursementClient) -> None:
        p, rows = payroll, rows_for(payroll.workers)
        bid = draft_explicit(w3, disburse, p, "b", rows)
        assert_reverts(
            lambda: disburse.pay_chunk(p.operator, bid, 0, rows),
            "DisburseWrongStatus",
            bid,
            BatchStatus.APPROVED,
            BatchStatus.DRAFT,
        )

    def test_frozen_and_unregistered_recipients_become_exceptions(
        self, w3: Web3, payroll: Payroll, registered: Actors, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p = payroll
        rows = [
            Row(p.workers[0], 100_00),
            Row(p.workers[1], 200_00),
            Row(p.unregistered, 300_00),
            Row(p.workers[2], 400_00),
        ]
        bid = approved_explicit(w3, disburse, cash, p, "b", rows)
        cash.freeze(registered.regulator, p.workers[1])  # frozen between approval and payout
        result = disburse.pay_chunk(p.operator, bid, 0, rows)
        reasons = {e.args["index"]: bytes(e.args["reason"]) for e in result.named("PayoutException")}
        assert reasons == {
            1: selector(w3, "WalletFrozen(address)"),
            2: selector(w3, "WalletNotRegistered(address)"),
        }
        assert result.named("ChunkPaid")[0].args == {
            "id": bid,
            "chunk": 0,
            "paid": 500_00,
            "exceptions": 500_00,
        }
        b = disburse.batch(bid)
        assert (b.paid, b.exceptions, b.outstanding) == (500_00, 500_00, 500_00)
        assert disburse.exception(bid, 1) == Row(p.workers[1], 200_00)
        assert_conserved(disburse, cash, bid)

    def test_an_exception_is_paid_once_its_cause_is_resolved(
        self, w3: Web3, payroll: Payroll, registered: Actors, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p = payroll
        rows = [Row(p.workers[0], 100_00), Row(p.workers[1], 200_00)]
        bid = approved_explicit(w3, disburse, cash, p, "b", rows)
        cash.freeze(registered.regulator, p.workers[1])
        disburse.pay_chunk(p.operator, bid, 0, rows)
        assert_reverts(lambda: disburse.retry_exception(p.operator, bid, 1), "WalletFrozen", p.workers[1])
        cash.unfreeze(registered.regulator, p.workers[1])
        disburse.retry_exception(p.operator, bid, 1)
        assert cash.balance_of(p.workers[1]) == 200_00
        assert_reverts(lambda: disburse.retry_exception(p.operator, bid, 1), "DisburseNoException", bid, 1)
        assert_reverts(lambda: disburse.retry_exception(p.operator, bid, 0), "DisburseNoException", bid, 0)
        b = disburse.batch(bid)
        assert (b.paid, b.exceptions, b.outstanding) == (300_00, 0, 0)

    def test_a_held_payers_escrowed_payouts_wait_for_the_hold(
        self, w3: Web3, payroll: Payroll, registered: Actors, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        """The funded batch is the payer's money: while the payer's own wallet does not cover its
        holds, every payout is an exception (AmountFrozenInFamily), paid once the hold is lifted."""
        p = payroll
        rows = [Row(p.workers[0], 100_00), Row(p.workers[1], 200_00)]
        bid = approved_explicit(w3, disburse, cash, p, "b", rows)
        assert cash.balance_of(p.employer.address) == 999_700_00
        placed = cash.tx.transact(
            registered.regulator,
            cash.place_hold_call(
                p.employer.address, 1_000_000_00, bytes32_text("AML"), bytes32_text("(2026)苏0507执7号")
            ),
        )
        hold_id = int(placed.named("HoldPlaced")[0]["holdId"])
        result = disburse.pay_chunk(p.operator, bid, 0, rows)
        frozen_in_family = selector(w3, "AmountFrozenInFamily(address,uint256,uint256,uint256)")
        reasons = {e.args["index"]: bytes(e.args["reason"]) for e in result.named("PayoutException")}
        assert reasons == {0: frozen_in_family, 1: frozen_in_family}
        assert cash.balance_of(p.workers[0]) == 0
        assert_reverts(
            lambda: disburse.retry_exception(p.operator, bid, 1),
            "AmountFrozenInFamily",
            p.employer.address,
            1_000_000_00,
            999_700_00,
            200_00,
        )
        cash.tx.transact(registered.regulator, cash.lift_hold_call(p.employer.address, hold_id))
        disburse.retry_exception(p.operator, bid, 1)
        assert cash.balance_of(p.workers[1]) == 200_00
        assert_conserved(disburse, cash, bid)

    def test_reverts_after_the_end_date(
        self, w3: Web3, payroll: Payroll, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p, rows = payroll, rows_for(payroll.workers)
        bid = approved_explicit(w3, disburse, cash, p, "b", rows)
        devtools.increase_time(w3, 31 * DAY)
        ends = disburse.batch(bid).ends_at
        assert_reverts(lambda: disburse.pay_chunk(p.operator, bid, 0, rows), "DisburseBatchEnded", bid, ends)

    def test_a_maximum_chunk_pays_in_one_transaction(
        self, w3: Web3, payroll: Payroll, registered: Actors, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p = payroll
        people = [Account.create().address for _ in range(MAX_ROWS)]
        # registered in one batch (MAX_ROWS is also the batch's maximum), not MAX_ROWS transactions
        cash.register_batch(
            registered.operator,
            [Registration(w, Kind.PERSONAL, 2, 0, identity(f"max{i}")) for i, w in enumerate(people)],
        )
        rows = [Row(w, 1_00) for w in people]
        bid = approved_explicit(w3, disburse, cash, p, "max", rows)
        result = disburse.pay_chunk(p.operator, bid, 0, rows)
        assert len(result.named("Paid")) == MAX_ROWS
        assert result.gas_used < 30_000_000 // 2  # fits half a default block with room to spare
        assert_conserved(disburse, cash, bid)


class TestMerkleClaims:
    def test_recipient_claims_its_leaf_once(
        self, w3: Web3, payroll: Payroll, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p, rows = payroll, rows_for(payroll.workers)
        bid, tree = approved_merkle(w3, disburse, cash, p, "m", rows)
        event = disburse.claim(p.operator, bid, 3, rows[3], tree.proof(3)).named("Paid")[0]
        assert event.args["purpose"] == SUBSIDY and event.args["recipient"] == rows[3].recipient
        assert cash.balance_of(rows[3].recipient) == rows[3].amount
        assert disburse.is_claimed(bid, 3) and not disburse.is_claimed(bid, 2)
        assert_reverts(
            lambda: disburse.claim(p.operator, bid, 3, rows[3], tree.proof(3)),
            "DisburseAlreadyClaimed",
            bid,
            3,
        )
        assert_conserved(disburse, cash, bid)

    def test_reverts_on_a_forged_proof(
        self, w3: Web3, payroll: Payroll, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p, rows = payroll, rows_for(payroll.workers)
        bid, tree = approved_merkle(w3, disburse, cash, p, "m", rows)
        inflated = Row(rows[0].recipient, rows[0].amount * 10)
        assert_reverts(
            lambda: disburse.claim(p.operator, bid, 0, inflated, tree.proof(0)),
            "DisburseInvalidProof",
            bid,
            0,
        )
        stolen = Row(p.outsider.address, rows[0].amount)
        assert_reverts(
            lambda: disburse.claim(p.operator, bid, 0, stolen, tree.proof(0)), "DisburseInvalidProof", bid, 0
        )
        assert_reverts(
            lambda: disburse.claim(p.operator, bid, 1, rows[0], tree.proof(0)), "DisburseInvalidProof", bid, 1
        )
        assert_reverts(
            lambda: disburse.claim(p.operator, bid, 6, rows[0], tree.proof(0)), "DisburseUnknownLeaf", bid, 6
        )

    def test_reverts_on_a_leaf_of_another_batch(
        self, w3: Web3, payroll: Payroll, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p, rows = payroll, rows_for(payroll.workers)
        first, first_tree = approved_merkle(w3, disburse, cash, p, "m1", rows)
        second, _ = approved_merkle(w3, disburse, cash, p, "m2", rows)  # same people, same amounts
        disburse.claim(p.operator, first, 0, rows[0], first_tree.proof(0))
        assert_reverts(
            lambda: disburse.claim(p.operator, second, 0, rows[0], first_tree.proof(0)),
            "DisburseInvalidProof",
            second,
            0,
        )

    def test_a_tree_worth_more_than_the_funding_cannot_drain_other_batches(
        self, w3: Web3, payroll: Payroll, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p, rows = payroll, rows_for(payroll.workers[:3])
        other = approved_explicit(w3, disburse, cash, p, "other", rows_for(payroll.workers))
        bid, tree = approved_merkle(w3, disburse, cash, p, "m", rows, total=rows[0].amount + rows[1].amount)
        disburse.claim(p.operator, bid, 0, rows[0], tree.proof(0))
        disburse.claim(p.operator, bid, 1, rows[1], tree.proof(1))
        assert_reverts(
            lambda: disburse.claim(p.operator, bid, 2, rows[2], tree.proof(2)),
            "DisburseExceedsFunding",
            bid,
            0,
            rows[2].amount,
        )
        assert_conserved(disburse, cash, bid, other)

    def test_a_frozen_recipients_claim_reverts_and_stays_claimable(
        self, w3: Web3, payroll: Payroll, registered: Actors, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p, rows = payroll, rows_for(payroll.workers)
        bid, tree = approved_merkle(w3, disburse, cash, p, "m", rows)
        cash.freeze(registered.regulator, rows[0].recipient)
        assert_reverts(
            lambda: disburse.claim(p.operator, bid, 0, rows[0], tree.proof(0)),
            "WalletFrozen",
            rows[0].recipient,
        )
        assert not disburse.is_claimed(bid, 0)
        cash.unfreeze(registered.regulator, rows[0].recipient)
        disburse.claim(p.operator, bid, 0, rows[0], tree.proof(0))
        assert cash.balance_of(rows[0].recipient) == rows[0].amount

    def test_pushed_claims_skip_paid_leaves_and_hold_exceptions(
        self, w3: Web3, payroll: Payroll, registered: Actors, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p, rows = payroll, rows_for(payroll.workers)
        bid, tree = approved_merkle(w3, disburse, cash, p, "m", rows)
        disburse.claim(p.operator, bid, 0, rows[0], tree.proof(0))
        cash.freeze(registered.regulator, rows[2].recipient)
        claims = [(i, r, tree.proof(i)) for i, r in enumerate(rows)]
        result = disburse.push_claims(p.operator, bid, claims)
        assert sorted(e.args["index"] for e in result.named("Paid")) == [1, 3, 4, 5]
        assert [e.args["index"] for e in result.named("PayoutException")] == [2]
        again = disburse.push_claims(p.operator, bid, claims)  # a retried push changes nothing
        assert again.named("Paid") == [] and again.named("PayoutException") == []
        b = disburse.batch(bid)
        assert (b.exceptions, b.outstanding) == (rows[2].amount, rows[2].amount)
        assert_conserved(disburse, cash, bid)

    def test_pushed_claims_revert_on_a_forged_proof(
        self, w3: Web3, payroll: Payroll, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p, rows = payroll, rows_for(payroll.workers)
        bid, tree = approved_merkle(w3, disburse, cash, p, "m", rows)
        claims = [(0, rows[0], tree.proof(0)), (1, Row(p.outsider.address, rows[1].amount), tree.proof(1))]
        assert_reverts(lambda: disburse.push_claims(p.operator, bid, claims), "DisburseInvalidProof", bid, 1)
        assert not disburse.is_claimed(bid, 0)

    def test_a_100000_person_subsidy_is_created_in_one_transaction(
        self, w3: Web3, payroll: Payroll, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p = payroll
        n = 100_000
        rows = [Row(p.workers[i % len(p.workers)], 1_00 + i % 7) for i in range(n)]
        bid = batch_id(p.employer.address, "big")
        tree = merkle_tree(bid, rows)
        total = sum(r.amount for r in rows)
        created = disburse.create_merkle(
            p.employer, "big", p.employer.address, SUBSIDY, now(w3) + DAY, total, tree.root, n
        )
        cash.approve(p.employer, disburse.contract.address, total)
        disburse.approve(p.checker, bid)
        last = n - 1
        assert verify(
            tree.proof(last), tree.root, leaf_hash(bid, last, rows[last].recipient, rows[last].amount)
        )
        disburse.claim(p.operator, bid, last, rows[last], tree.proof(last))
        assert disburse.is_claimed(bid, last) and created.gas_used < 200_000


class TestReclaim:
    def test_reverts_before_the_end_date(
        self, w3: Web3, payroll: Payroll, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p = payroll
        bid = approved_explicit(w3, disburse, cash, p, "b", rows_for(p.workers))
        ends = disburse.batch(bid).ends_at
        assert_reverts(lambda: disburse.reclaim(p.employer, bid), "DisburseNotEnded", bid, ends)

    def test_returns_unpaid_rows_and_exceptions_to_the_payer_once(
        self, w3: Web3, payroll: Payroll, registered: Actors, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p, rows = payroll, rows_for(payroll.workers)
        bid, tree = approved_merkle(w3, disburse, cash, p, "m", rows)
        cash.freeze(registered.regulator, rows[1].recipient)
        disburse.push_claims(p.operator, bid, [(i, rows[i], tree.proof(i)) for i in (0, 1)])
        before = cash.balance_of(p.employer.address)
        devtools.increase_time(w3, 31 * DAY)
        ends = disburse.batch(bid).ends_at
        assert_reverts(
            lambda: disburse.claim(p.operator, bid, 2, rows[2], tree.proof(2)),
            "DisburseBatchEnded",
            bid,
            ends,
        )
        assert_reverts(lambda: disburse.retry_exception(p.operator, bid, 1), "DisburseBatchEnded", bid, ends)
        event = disburse.reclaim(p.outsider, bid).named("Reclaimed")[0]  # anyone may call; the payer is paid
        unpaid = sum(r.amount for r in rows[1:])
        assert event.args["amount"] == unpaid and event.args["exceptionsReturned"] == rows[1].amount
        assert cash.balance_of(p.employer.address) == before + unpaid
        b = disburse.batch(bid)
        assert (b.status, b.paid, b.reclaimed, b.exceptions, b.outstanding) == (
            BatchStatus.CLOSED,
            rows[0].amount,
            unpaid,
            0,
            0,
        )
        assert_reverts(
            lambda: disburse.reclaim(p.employer, bid),
            "DisburseWrongStatus",
            bid,
            BatchStatus.APPROVED,
            BatchStatus.CLOSED,
        )
        assert_conserved(disburse, cash, bid)

    def test_a_draft_cannot_be_reclaimed_and_a_cancelled_one_moves_nothing(
        self, w3: Web3, payroll: Payroll, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p = payroll
        bid = draft_explicit(w3, disburse, p, "b", rows_for(p.workers))
        assert_reverts(
            lambda: disburse.reclaim(p.employer, bid),
            "DisburseWrongStatus",
            bid,
            BatchStatus.APPROVED,
            BatchStatus.DRAFT,
        )
        assert_reverts(lambda: disburse.cancel(p.checker, bid), "DisburseNotCreator", bid, p.checker.address)
        disburse.cancel(p.employer, bid)
        assert disburse.batch(bid).status == BatchStatus.CANCELLED
        assert cash.balance_of(disburse.contract.address) == 0


class TestBatchIds:
    def test_a_stranger_cannot_squat_the_payers_next_batch_id(
        self, w3: Web3, payroll: Payroll, registered: Actors, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        """Ids are scoped by payer: a stranger's batch with the employer's next reference takes
        nothing from the employer (before: one global id per reference, DisburseBatchExists)."""
        p = payroll
        stranger = dev_account(7)
        cash.register(p.operator, stranger.address, Kind.INSTITUTION, 1, 0, identity("stranger"))
        squat = disburse.contract.functions.createBatch(
            batch_ref("payroll-2026-12"), stranger.address, SALARY, now(w3) + DAY, 1, ZERO, 0
        )
        disburse.tx.transact(stranger, squat)
        disburse.create_explicit(p.employer, "payroll-2026-12", p.employer.address, SALARY, now(w3) + DAY, 5)
        mine = disburse.batch(batch_id(p.employer.address, "payroll-2026-12"))
        theirs = disburse.batch(batch_id(stranger.address, "payroll-2026-12"))
        assert (mine.payer, mine.total, theirs.payer) == (p.employer.address, 5, stranger.address)
        assert mine.id != theirs.id
        assert disburse.contract.functions.batchIdOf(
            p.employer.address, batch_ref("payroll-2026-12")
        ).call() == (mine.id)

    def test_a_reference_is_used_once_per_payer(
        self, w3: Web3, payroll: Payroll, disburse: DisbursementClient
    ) -> None:
        p = payroll
        disburse.create_explicit(p.employer, "r", p.employer.address, SALARY, now(w3) + DAY, 1)
        assert_reverts(
            lambda: disburse.create_explicit(p.employer, "r", p.employer.address, SALARY, now(w3) + DAY, 2),
            "DisburseBatchExists",
            batch_id(p.employer.address, "r"),
        )


class TestWholePageStops:
    """A pause or a payer freeze stops a payout call whole; one recipient never does."""

    def test_a_paused_token_reverts_pay_chunk_instead_of_making_exceptions(
        self, w3: Web3, payroll: Payroll, registered: Actors, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p, rows = payroll, rows_for(payroll.workers)
        bid = approved_explicit(w3, disburse, cash, p, "b", rows)
        cash.pause(registered.regulator)
        assert_reverts(lambda: disburse.pay_chunk(p.outsider, bid, 0, rows), "EnforcedPause")
        b = disburse.batch(bid)
        assert (b.paid, b.exceptions) == (0, 0) and not disburse.contract.functions.chunkOf(bid, 0).call()[3]
        cash.unpause(registered.regulator)
        result = disburse.pay_chunk(p.outsider, bid, 0, rows)
        assert len(result.named("Paid")) == len(rows) and result.named("PayoutException") == []
        assert_conserved(disburse, cash, bid)

    def test_a_paused_token_reverts_pushed_claims_retries_and_reclaim(
        self, w3: Web3, payroll: Payroll, registered: Actors, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p, rows = payroll, rows_for(payroll.workers)
        bid, tree = approved_merkle(w3, disburse, cash, p, "m", rows)
        cash.freeze(registered.regulator, rows[0].recipient)
        disburse.push_claims(p.operator, bid, [(0, rows[0], tree.proof(0))])  # exception at leaf 0
        cash.unfreeze(registered.regulator, rows[0].recipient)
        cash.pause(registered.regulator)
        claims = [(i, r, tree.proof(i)) for i, r in enumerate(rows)]
        assert_reverts(lambda: disburse.push_claims(p.outsider, bid, claims), "EnforcedPause")
        assert not any(disburse.is_claimed(bid, i) for i in range(1, len(rows)))
        assert_reverts(lambda: disburse.retry_exception(p.outsider, bid, 0), "EnforcedPause")
        devtools.increase_time(w3, 31 * DAY)
        assert_reverts(lambda: disburse.reclaim(p.outsider, bid), "EnforcedPause")
        cash.unpause(registered.regulator)
        disburse.reclaim(p.outsider, bid)
        assert_conserved(disburse, cash, bid)

    def test_a_frozen_payers_batch_waits_whole_and_pays_once_unfrozen(
        self, w3: Web3, payroll: Payroll, registered: Actors, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        """The payer owns every payout (payFor(payer, ...)): frozen, its chunk would be all exceptions."""
        p, rows = payroll, rows_for(payroll.workers)
        bid = approved_explicit(w3, disburse, cash, p, "b", rows)
        m_bid, tree = approved_merkle(w3, disburse, cash, p, "m", rows)
        cash.freeze(registered.regulator, p.employer.address)
        who = p.employer.address
        assert_reverts(
            lambda: disburse.pay_chunk(p.outsider, bid, 0, rows), "DisbursePayerNotAdmitted", bid, who
        )
        claims = [(i, r, tree.proof(i)) for i, r in enumerate(rows)]
        assert_reverts(
            lambda: disburse.push_claims(p.outsider, m_bid, claims), "DisbursePayerNotAdmitted", m_bid, who
        )
        assert_reverts(
            lambda: disburse.claim(p.outsider, m_bid, 0, rows[0], tree.proof(0)),
            "DisbursePayerNotAdmitted",
            m_bid,
            who,
        )
        assert disburse.batch(bid).exceptions == 0 and not disburse.is_claimed(m_bid, 0)
        cash.unfreeze(registered.regulator, who)
        assert len(disburse.pay_chunk(p.outsider, bid, 0, rows).named("Paid")) == len(rows)
        assert disburse.push_claims(p.outsider, m_bid, claims).named("PayoutException") == []
        assert_conserved(disburse, cash, bid, m_bid)

    def test_a_frozen_payer_cannot_fund_and_its_reclaim_waits(
        self, w3: Web3, payroll: Payroll, registered: Actors, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p, rows = payroll, rows_for(payroll.workers)
        paid = approved_explicit(w3, disburse, cash, p, "paid", rows)
        draft = draft_explicit(w3, disburse, p, "draft", rows)  # drafting moves no money
        cash.approve(p.employer, disburse.contract.address, sum(r.amount for r in rows))
        cash.freeze(registered.regulator, p.employer.address)
        assert_reverts(lambda: disburse.approve(p.checker, draft), "WalletFrozen", p.employer.address)
        devtools.increase_time(w3, 31 * DAY)
        assert_reverts(
            lambda: disburse.reclaim(p.outsider, paid), "DisbursePayerNotAdmitted", paid, p.employer.address
        )
        cash.unfreeze(registered.regulator, p.employer.address)
        before = cash.balance_of(p.employer.address)
        disburse.reclaim(p.outsider, paid)
        assert cash.balance_of(p.employer.address) == before + sum(r.amount for r in rows)

    def test_a_recipient_at_its_balance_cap_becomes_an_exception_and_the_rest_are_paid(
        self, w3: Web3, payroll: Payroll, registered: Actors, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        p = payroll
        capped = registered.bob.address  # tier 4: balance cap 10,000 yuan
        cash.mint(registered.operator, capped, 9_950_00)
        rows = [Row(p.workers[0], 100_00), Row(capped, 100_00), Row(p.workers[1], 100_00)]
        bid = approved_explicit(w3, disburse, cash, p, "cap", rows)
        result = disburse.pay_chunk(p.outsider, bid, 0, rows)
        assert [e.args["index"] for e in result.named("Paid")] == [0, 2]
        (exc,) = result.named("PayoutException")
        assert (exc.args["index"], bytes(exc.args["reason"])) == (
            1,
            selector(w3, "TierBalanceCapExceeded(address,uint256,uint256)"),
        )
        cash.transfer(registered.bob, registered.alice.address, 100_00)  # room under the cap again
        disburse.retry_exception(p.outsider, bid, 1)
        assert cash.balance_of(capped) == 9_950_00
        assert_conserved(disburse, cash, bid)
