"""Row-bounded gas limits (chain/gas.py): no estimate for these calls, every bound above the
costliest path of its rows, and a bound too low never passes for a refusal or a success."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account
from web3 import Web3

from chain import gas
from chain.accounts import dev_account
from chain.clients.disburse import (
    MAX_CHUNKS_PER_CALL,
    MAX_ROWS,
    DisbursementClient,
    Officer,
    Row,
    batch_id,
    merkle_tree,
    purpose_tag,
)
from chain.clients.token import MAX_REGISTRATIONS, CashClient, Kind, Registration
from chain.exceptions import OutOfGas
from tests.helpers import assert_reverts

OPERATOR, PAYER, CHECKER = dev_account(1), dev_account(8), dev_account(9)


def people(n: int, tier: int = 2) -> list[Registration]:
    return [
        Registration(Account.create().address, Kind.PERSONAL, tier, 0, Web3.keccak(text=f"p{i}"))
        for i in range(n)
    ]


@pytest.fixture
def payer(fresh: None, w3: Web3, cash: CashClient, disburse: DisbursementClient) -> Iterator[int]:
    """A funded payer with a checker; yields a batch end date."""
    cash.register_batch(
        OPERATOR,
        [
            Registration(a.address, Kind.INSTITUTION, 1, 0, Web3.keccak(text=a.address))
            for a in (PAYER, CHECKER)
        ],
    )
    cash.mint(OPERATOR, PAYER.address, 10**14)
    cash.approve(PAYER, disburse.contract.address, 2**255)
    disburse.set_officer(PAYER, CHECKER.address, Officer.CHECKER)
    yield int(w3.eth.get_block("latest")["timestamp"]) + 86_400


def approved(disburse: DisbursementClient, ref: str, rows: list[Row], ends_at: int) -> bytes:
    bid = batch_id(PAYER.address, ref)
    total = sum(r.amount for r in rows)
    disburse.create_explicit(PAYER, ref, PAYER.address, purpose_tag("salary"), ends_at, total)
    disburse.add_rows(PAYER, bid, rows)
    disburse.approve(CHECKER, bid)
    return bid


@pytest.fixture
def no_estimates(cash: CashClient, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every estimate the transactor asks for."""
    asked: list[str] = []
    original = cash.tx.estimate_call

    def counting(call: object) -> int:
        asked.append(str(call))
        return original(call)  # type: ignore[arg-type]

    monkeypatch.setattr(cash.tx, "estimate_call", counting)
    return asked


def test_a_full_pay_chunk_at_its_costliest_rows_fits_its_bound_without_an_estimate(
    payer: int, cash: CashClient, disburse: DisbursementClient, no_estimates: list[str]
) -> None:
    # Tier-4 recipients over their balance cap: every row an exception with revert data.
    wallets = people(MAX_ROWS, tier=4)
    cash.register_batch(OPERATOR, wallets)
    rows = [Row(w.wallet, 10**9) for w in wallets]
    bid = approved(disburse, "costly", rows, payer)
    no_estimates.clear()
    fn = disburse.contract.functions.payChunk(bid, 0, [r.abi() for r in rows])
    result = disburse.pay_chunk(OPERATOR, bid, 0, rows)
    assert len(result.named("PayoutException")) == MAX_ROWS
    assert no_estimates == []
    assert result.gas_used < gas.bound(fn)  # type: ignore[operator]


def test_a_full_add_chunks_fits_its_bound_without_an_estimate(
    payer: int, disburse: DisbursementClient, no_estimates: list[str]
) -> None:
    chunks = [
        [Row(Account.create().address, 10**9) for _ in range(MAX_ROWS)] for _ in range(MAX_CHUNKS_PER_CALL)
    ]
    bid = batch_id(PAYER.address, "chunks")
    total = sum(r.amount for c in chunks for r in c)
    disburse.create_explicit(PAYER, "chunks", PAYER.address, purpose_tag("salary"), payer, total)
    no_estimates.clear()
    result = disburse.add_chunks(PAYER, bid, chunks)
    assert len(result.named("RowsAdded")) == MAX_CHUNKS_PER_CALL
    assert no_estimates == []
    assert result.gas_used < gas.bound(disburse.add_chunks_call(bid, chunks))  # type: ignore[operator]


def test_a_full_register_batch_fits_its_bound(fresh: None, cash: CashClient, no_estimates: list[str]) -> None:
    rows = people(MAX_REGISTRATIONS)
    result = cash.register_batch(OPERATOR, rows)
    assert no_estimates == []
    assert result.gas_used < gas.bound(cash.register_batch_call(rows))  # type: ignore[operator]


def test_a_full_push_of_long_proofs_fits_its_bound(
    payer: int, cash: CashClient, disburse: DisbursementClient
) -> None:
    wallets = people(MAX_ROWS)
    cash.register_batch(OPERATOR, wallets)
    filler = Account.create().address
    leaves = [Row(w.wallet, 100) for w in wallets] + [Row(filler, 100)] * (2**17 - MAX_ROWS)
    bid = batch_id(PAYER.address, "push")
    tree = merkle_tree(bid, leaves)
    disburse.create_merkle(
        PAYER, "push", PAYER.address, purpose_tag("subsidy"), payer, 100 * len(leaves), tree.root, len(leaves)
    )
    disburse.approve(CHECKER, bid)
    claims = [(i, leaves[i], tree.proof(i)) for i in range(MAX_ROWS)]
    result = disburse.push_claims(OPERATOR, bid, claims)
    args = [(i, r.recipient, r.amount, list(p)) for i, r, p in claims]
    assert len(tree.proof(0)) == 17
    assert result.gas_used < gas.bound(disburse.contract.functions.pushClaims(bid, args))  # type: ignore[operator]


def test_a_refused_bounded_call_reverts_with_the_contracts_error(
    payer: int, cash: CashClient, disburse: DisbursementClient
) -> None:
    wallets = people(3)
    cash.register_batch(OPERATOR, wallets)
    rows = [Row(w.wallet, 100) for w in wallets]
    bid = approved(disburse, "twice", rows, payer)
    disburse.pay_chunk(OPERATOR, bid, 0, rows)
    err = assert_reverts(lambda: disburse.pay_chunk(OPERATOR, bid, 0, rows), "DisburseChunkPaid", bid, 0)
    assert err.tx_hash is not None  # sent and mined as a revert: no estimate was asked


def test_a_bound_too_low_is_out_of_gas_never_a_refusal_and_the_next_send_estimates(
    payer: int, cash: CashClient, disburse: DisbursementClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    wallets = people(20)
    cash.register_batch(OPERATOR, wallets)
    rows = [Row(w.wallet, 100) for w in wallets]
    bid = approved(disburse, "starved", rows, payer)
    signature = "payChunk(bytes32,uint256,(address,uint96)[])"
    monkeypatch.setitem(gas.BOUNDS, signature, gas.RowBound(150_000, 30_000, 2))
    monkeypatch.setattr(cash.tx, "_unbounded", set())
    with pytest.raises(OutOfGas) as info:
        disburse.pay_chunk(OPERATOR, bid, 0, rows)  # a starved payout: "DisburseTransferFailed" on chain
    assert info.value.name == "OutOfGas" and info.value.tx_hash is not None
    assert disburse.batch(bid).paid == 0
    paid = disburse.pay_chunk(OPERATOR, bid, 0, rows)  # estimated this time
    assert len(paid.named("Paid")) == 20
