"""Benchmark the gas of prepaid-fund supervision (PrepaidEscrow) against two in-run transfer baselines.

What it measures, in one run, on one fresh in-process chain (py-evm via eth-tester), as the
``gasUsed`` of each transaction's receipt (so every figure includes the 21,000 intrinsic gas and
the calldata):

1. **Baselines**: a warm ``PlainERC20`` transfer (OpenZeppelin ERC20 without permission checks,
   deployed on the same chain; receiver already holds a balance) and a warm ``DigitalCash``
   transfer (registered tier-1 personal wallets; receiver already holds, sender already spent today).
2. **One transaction of each escrow operation**, each sent through the project's own client
   (:class:`chain.clients.prepaid.PrepaidClient`):

   - ``prepay`` with a fully supervised merchant (10000 bps: everything stays in escrow) and with a
     60% supervised merchant (the other 40% goes to the merchant at once: one more token transfer);
     both after a large allowance was approved once, so neither pays for an ``approve``;
   - ``approve`` of the exact total plus ``prepay`` -- what the client does by default
     (``approve=True``): two transactions per package, from an allowance of zero;
   - ``consume``: the consumer confirms 1 session (the package stays open), and the last session
     (the package is closed as consumed);
   - ``claim``: the merchant claims 1 session with the consumer's EIP-712 ``Consume`` signature;
     this and the 1-session ``consume`` are each the first release of a fresh fully supervised
     package, so they differ only by the signature check (the first release or refund of a package
     writes its ``released``/``refunded`` storage slot from zero, which every package pays once);
   - ``cancel`` with a cancellation fee (the fee to the merchant, the rest back to the consumer);
   - ``refund`` of one package after the regulator closed its merchant.

3. **Batch refund**: ``--packages N`` packages of one merchant, created by six consumers (development
   accounts 3..8, tier-1 personal wallets, in turn), the merchant closed, then every package
   refunded with ``refundBatch`` in pages of ``MAX_BATCH`` (100) ids: total gas, gas per package
   and the number of transactions. With only six consumers, their balances and registry entries
   are warm after the first package of each in a batch; a merchant whose packages all belong to
   different consumers pays a few cold storage reads more per package.

Every figure is a steady-state one: each operation (and each baseline transfer) is run once first,
untimed, so the escrow's totals and the balances involved are non-zero already. Turning a zero
storage slot non-zero costs 17,100 gas more than rewriting one; for those shared slots that would be
an artefact of a fresh chain. A package's own slots are new for every package and are counted.

Why the figures must be read beside the baselines: absolute gas depends on the compiler, its
settings, the EVM version and the OpenZeppelin version, and the in-process chain is not the
production network. The ratios to the two transfers measured in the same run, on the same chain,
say what an escrow operation costs in units everyone knows -- "a prepayment costs about k token
transfers" -- and those are what to read and compare; an absolute figure from another run means
less.

    .venv/bin/python scripts/bench_prepaid.py [--packages N]

Prints a table and writes ``bench-results/bench_prepaid.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eth_account import Account  # noqa: E402
from eth_account.signers.local import LocalAccount  # noqa: E402
from web3 import Web3  # noqa: E402
from web3.contract import Contract  # noqa: E402

from chain.accounts import DEV_ACCOUNT_COUNT, dev_account  # noqa: E402
from chain.backends import in_process  # noqa: E402
from chain.clients.prepaid import PackageStatus, PrepaidClient  # noqa: E402
from chain.clients.token import CashClient, Kind  # noqa: E402
from chain.compiler import EVM_VERSION, OPTIMIZER_RUNS, SOLC_VERSION, CompileResult, compile_contracts  # noqa: E402
from chain.deploy import deploy_all  # noqa: E402
from chain.sender import TxResult  # noqa: E402
from scripts.benchlib import environment, table  # noqa: E402

OUT_FILE = ROOT / "bench-results" / "bench_prepaid.json"
TIER_UNLIMITED = 1
CONSUMER_INDICES = range(3, 9)  # development accounts 3..8
GYM_INDEX = 9  # the merchant that claims must pay gas: a funded development account
DAY = 86_400
YEAR = 365 * DAY
ALLOWANCE = 10**15  # large but finite: prepay still decrements it, as with any real allowance
CONSUMER_FUNDS = 10**13  # fen per consumer
MCC_GYM = 7997
MCC_SCHOOL = 8299

# The measured packages: (sessions, unit price in fen, cancellation fee in fen).
MAIN_PACKAGE = (10, 200_00, 50_00)
BULK_PACKAGE = (10, 1_00, 0)  # the batch-refund packages: small, all fully held


# -- one chain set up for the benchmark --------------------------------------------------------------


def _identity(label: str) -> bytes:
    return hashlib.sha256(f"bench-prepaid:{label}".encode()).digest()


def _merchant_address(label: str) -> str:
    """A deterministic merchant wallet that never sends a transaction (so needs no ether)."""
    return str(Account.from_key(Web3.keccak(text=f"bench-prepaid merchant {label}")).address)


@dataclass
class Bench:
    w3: Web3
    cash: CashClient
    prepaid: PrepaidClient
    plain: Contract
    operator: LocalAccount
    regulator: LocalAccount
    keeper: LocalAccount
    consumers: list[LocalAccount]
    gym: LocalAccount  # 10000 bps, claims with signatures
    school: str  # 6000 bps
    closed_shop: str  # 10000 bps, closed for the single refunds
    batch_shop: str  # 10000 bps, closed for the batch refund

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def prepay(
        self, consumer: LocalAccount, merchant: str, package: tuple[int, int, int]
    ) -> tuple[int, TxResult]:
        sessions, unit_price, fee = package
        return self.prepaid.prepay(
            consumer, merchant, sessions, unit_price, self.now() + YEAR, fee, approve=False
        )

    def claim(self, consumer: LocalAccount, package_id: int, sessions: int) -> TxResult:
        nonce = self.prepaid.package(package_id).nonce
        deadline = self.now() + DAY
        signature = self.prepaid.sign_consumption(consumer, package_id, sessions, nonce, deadline)
        return self.prepaid.claim(self.gym, package_id, sessions, deadline, signature)

    def cash_transfer(self) -> TxResult:
        return self.cash.transfer(self.consumers[0], self.consumers[1].address, 1)

    def plain_transfer(self) -> TxResult:
        fn = self.plain.functions.transfer(self.consumers[1].address, 1)
        return self.cash.tx.transact(self.consumers[0], fn)


def set_up(compiled: CompileResult) -> Bench:
    w3 = in_process()
    manifest = deploy_all(w3, compiled=compiled)
    cash = CashClient(w3, manifest)
    prepaid = PrepaidClient(w3, manifest, cash.tx)
    deployer, operator, regulator = dev_account(0), dev_account(1), dev_account(2)
    consumers = [dev_account(i) for i in CONSUMER_INDICES]
    gym = dev_account(GYM_INDEX)
    art = compiled["PlainERC20"]
    deployed = cash.tx.deploy(deployer, art.abi, art.bytecode)
    plain = w3.eth.contract(address=deployed.receipt["contractAddress"], abi=art.abi)
    bench = Bench(
        w3=w3,
        cash=cash,
        prepaid=prepaid,
        plain=plain,
        operator=operator,
        regulator=regulator,
        keeper=deployer,
        consumers=consumers,
        gym=gym,
        school=_merchant_address("school"),
        closed_shop=_merchant_address("closed-shop"),
        batch_shop=_merchant_address("batch-shop"),
    )
    for c in consumers:
        cash.register(operator, c.address, Kind.PERSONAL, TIER_UNLIMITED, 0, _identity(c.address))
    merchants = [
        (gym.address, MCC_GYM, 10_000),
        (bench.school, MCC_SCHOOL, 6_000),
        (bench.closed_shop, MCC_GYM, 10_000),
        (bench.batch_shop, MCC_GYM, 10_000),
    ]
    for address, mcc, bps in merchants:
        cash.register(operator, address, Kind.MERCHANT, TIER_UNLIMITED, mcc, _identity(address))
        prepaid.enrol(regulator, address, bps)
    for c in consumers:
        cash.mint(operator, c.address, CONSUMER_FUNDS)
        prepaid.approve(c, ALLOWANCE)
    cash.tx.transact(consumers[0], plain.functions.mint(consumers[0].address, CONSUMER_FUNDS))
    return bench


# -- measurements -------------------------------------------------------------------------------------


@dataclass
class Baselines:
    plain_erc20_transfer: int
    digital_cash_transfer: int


@dataclass
class GasCase:
    case: str
    gas: int
    transactions: int


@dataclass
class BatchRefund:
    packages: int
    max_batch: int
    transactions: int
    total_gas: int
    gas_per_package: float
    gas_per_transaction: list[int]
    single_refund_gas: int  # the single refund measured in the same run

    @property
    def one_by_one_gas(self) -> int:
        """What refunding every package with its own ``refund`` would cost (estimate)."""
        return self.packages * self.single_refund_gas

    @property
    def saving(self) -> float:
        return 1 - self.total_gas / self.one_by_one_gas


def warm_up(b: Bench) -> list[int]:
    """Run every operation once, untimed; returns the closed shop's still open package for later."""
    b.cash_transfer()
    b.plain_transfer()
    alice, bob = b.consumers[0], b.consumers[1]
    pid, _ = b.prepay(alice, b.gym.address, MAIN_PACKAGE)
    b.prepay(alice, b.school, MAIN_PACKAGE)
    b.prepaid.consume(alice, pid, 1)
    b.claim(alice, b.prepay(alice, b.gym.address, MAIN_PACKAGE)[0], 1)
    b.prepaid.cancel(alice, pid)
    last, _ = b.prepay(bob, b.gym.address, (2, 100_00, 0))
    b.prepaid.consume(bob, last, 1)
    b.prepaid.consume(bob, last, 1)
    shop = [b.prepay(c, b.closed_shop, MAIN_PACKAGE)[0] for c in (alice, bob)]
    b.prepaid.close_merchant(b.regulator, b.closed_shop)
    b.prepaid.refund(b.keeper, shop[0])
    return shop[1:]


def measure_baselines(b: Bench) -> Baselines:
    if int(b.plain.functions.balanceOf(b.consumers[1].address).call()) == 0:
        raise RuntimeError("the warm PlainERC20 transfer needs a receiver that already holds")
    if b.cash.spent_today(b.consumers[0].address) == 0 or b.cash.balance_of(b.consumers[1].address) == 0:
        raise RuntimeError("the warm DigitalCash transfer needs a spend today and a receiver that holds")
    return Baselines(b.plain_transfer().gas_used, b.cash_transfer().gas_used)


def measure_operations(b: Bench, refundable: int) -> list[GasCase]:
    alice, bob = b.consumers[0], b.consumers[1]
    cases: list[GasCase] = []

    pid, r = b.prepay(alice, b.gym.address, MAIN_PACKAGE)
    cases.append(GasCase("prepay, fully supervised merchant (10000 bps)", r.gas_used, 1))
    _, r = b.prepay(alice, b.school, MAIN_PACKAGE)
    if r.named("PackagePrepaid")[0]["immediate"] == 0:
        raise RuntimeError("the 60% supervised prepay should pay the merchant part at once")
    cases.append(GasCase("prepay, 60% supervised merchant (40% paid at once)", r.gas_used, 1))

    # The client's default path: approve the exact total, then prepay (allowance 0 -> total -> 0).
    sessions, unit_price, fee = MAIN_PACKAGE
    b.prepaid.approve(bob, 0)
    approved = b.prepaid.approve(bob, sessions * unit_price)
    bob_pid, r = b.prepay(bob, b.gym.address, MAIN_PACKAGE)
    cases.append(
        GasCase("approve exact total + prepay (client default, 10000 bps)", approved.gas_used + r.gas_used, 2)
    )
    b.prepaid.approve(bob, ALLOWANCE)

    # Both the first release of a fresh fully supervised package: comparable, they differ by the signature.
    r = b.prepaid.consume(alice, pid, 1)
    cases.append(GasCase("consume 1 session (consumer confirms; package stays open)", r.gas_used, 1))
    r = b.claim(bob, bob_pid, 1)
    cases.append(GasCase("claim 1 session with the consumer's EIP-712 signature", r.gas_used, 1))

    last, _ = b.prepay(bob, b.gym.address, (2, 100_00, 0))
    b.prepaid.consume(bob, last, 1)
    r = b.prepaid.consume(bob, last, 1)
    if b.prepaid.package(last).status != PackageStatus.CONSUMED:
        raise RuntimeError("the last session should close the package")
    cases.append(GasCase("consume the last session (package closed as consumed)", r.gas_used, 1))

    r = b.prepaid.cancel(alice, pid)
    event = r.named("PackageCancelled")[0]
    if event["fee"] != fee or event["refund"] == 0:
        raise RuntimeError("the cancel should pay a fee and refund the rest")
    cases.append(GasCase("cancel with a fee (fee to merchant, rest to consumer)", r.gas_used, 1))

    r = b.prepaid.refund(b.keeper, refundable)
    cases.append(GasCase("refund 1 package after its merchant was closed", r.gas_used, 1))
    return cases


def create_packages(b: Bench, n: int) -> list[int]:
    """``n`` identical packages with the batch merchant, the consumers in turn.

    Only the first is sent through :meth:`PrepaidClient.prepay` with a gas estimate; the others
    reuse that estimate (it already has the client's margin, and the first package, which starts
    the merchant's list of packages, is the dearest), which saves two of every three EVM runs on
    the in-process chain. Their gas is not measured: they only have to exist.
    """
    sessions, unit_price, fee = BULK_PACKAGE
    consumer = b.consumers[0]
    fn = b.prepaid.escrow.functions.prepay(b.batch_shop, sessions, unit_price, b.now() + YEAR, fee)
    gas = b.prepaid.tx.estimate(fn, consumer.address)
    ids = [b.prepay(consumer, b.batch_shop, BULK_PACKAGE)[0]]
    start = time.perf_counter()
    for i in range(1, n):
        consumer = b.consumers[i % len(b.consumers)]
        fn = b.prepaid.escrow.functions.prepay(b.batch_shop, sessions, unit_price, b.now() + YEAR, fee)
        ids.append(int(b.prepaid.tx.transact(consumer, fn, gas=gas).named("PackagePrepaid")[0]["id"]))
        if (i + 1) % 100 == 0 or i + 1 == n:
            rate = i / (time.perf_counter() - start)
            print(f"  {i + 1}/{n} packages created ({rate:.1f} tx/s)", file=sys.stderr, flush=True)
    return ids


def measure_batch_refund(b: Bench, n: int, single_refund_gas: int) -> BatchRefund:
    escrow = b.prepaid.escrow
    max_batch = int(escrow.functions.MAX_BATCH().call())
    created = create_packages(b, n)
    if b.prepaid.package_count_of(b.batch_shop) != n:
        raise RuntimeError("the batch merchant should hold exactly the packages created")
    b.prepaid.close_merchant(b.regulator, b.batch_shop)
    gas: list[int] = []
    refunded: list[int] = []
    for offset in range(0, n, max_batch):
        ids = b.prepaid.packages_of(b.batch_shop, offset, max_batch)
        result = b.prepaid.refund_batch(b.keeper, ids)
        gas.append(result.gas_used)
        refunded += [int(e["id"]) for e in result.named("PackageRefunded")]
    if sorted(refunded) != sorted(created):
        raise RuntimeError(f"{len(refunded)} of {n} packages refunded")
    total = sum(gas)
    return BatchRefund(n, max_batch, len(gas), total, total / n, gas, single_refund_gas)


def check_conservation(b: Bench) -> None:
    t = b.prepaid.totals()
    if t["deposited"] != t["released"] + t["refunded"] + t["held"]:
        raise RuntimeError(f"escrow totals do not balance: {t}")
    if b.cash.balance_of(b.prepaid.escrow.address) != t["held"]:
        raise RuntimeError("the escrow's token balance is not its total held")


def transactions_sent(w3: Web3) -> int:
    """Every transaction of the run: the chain is fresh and only development accounts send."""
    return sum(int(w3.eth.get_transaction_count(dev_account(i).address)) for i in range(DEV_ACCOUNT_COUNT))


# -- output -------------------------------------------------------------------------------------------


def _row(case: str, gas: float, txs: int, base: Baselines) -> list[str]:
    return [
        case,
        str(txs),
        f"{gas:,.0f}",
        f"{gas / base.plain_erc20_transfer:.2f}",
        f"{gas / base.digital_cash_transfer:.2f}",
    ]


def render(base: Baselines, cases: list[GasCase], batch: BatchRefund, total_txs: int, seconds: float) -> str:
    headers = [
        "operation (in-process chain, receipt gasUsed)",
        "tx",
        "gas",
        "x ERC20 transfer",
        "x DC transfer",
    ]
    rows = [
        _row("baseline: PlainERC20 transfer (warm)", base.plain_erc20_transfer, 1, base),
        _row("baseline: DigitalCash transfer (warm)", base.digital_cash_transfer, 1, base),
        *(_row(c.case, c.gas, c.transactions, base) for c in cases),
        _row(
            f"refund_batch, per package ({batch.packages} packages, batches of {batch.max_batch})",
            batch.gas_per_package,
            batch.transactions,
            base,
        ),
    ]
    full = max(batch.gas_per_transaction)
    batch_rows = [
        ["packages refunded", f"{batch.packages:,}"],
        ["transactions (refundBatch calls)", f"{batch.transactions:,}"],
        ["total gas", f"{batch.total_gas:,}"],
        ["gas per package", f"{batch.gas_per_package:,.0f}"],
        ["gas of the largest batch transaction", f"{full:,}"],
        ["refund one by one instead (N x single refund, estimate)", f"{batch.one_by_one_gas:,}"],
        ["saving of the batch over one by one", f"{batch.saving:.1%}"],
    ]
    return "\n".join(
        [
            "Gas per PrepaidEscrow operation, beside two transfers measured in this run on the same chain",
            "(steady state: every operation ran once before; read the ratios, not the absolute figures)",
            "",
            table(headers, rows),
            "",
            f"Batch refund of every package of a closed merchant ({len(CONSUMER_INDICES)} consumers)",
            "",
            table(["batch refund", "value"], batch_rows),
            "",
            f"transactions in the whole run: {total_txs:,} ({seconds:.0f} s)",
        ]
    )


# -- main ---------------------------------------------------------------------------------------------


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError("at least 1 package")
    return n


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--packages", type=_positive, default=1000, help="packages refunded by refund_batch (1000)"
    )
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, _interrupt)
    started = time.perf_counter()

    compiled = compile_contracts()
    print("setting up a fresh in-process chain...", file=sys.stderr, flush=True)
    bench = set_up(compiled)
    refundable = warm_up(bench)
    print("measuring single operations...", file=sys.stderr, flush=True)
    base = measure_baselines(bench)
    cases = measure_operations(bench, refundable[0])
    print(f"creating {args.packages} packages for the batch refund...", file=sys.stderr, flush=True)
    single = next(c.gas for c in cases if c.case.startswith("refund 1 package"))
    batch = measure_batch_refund(bench, args.packages, single)
    check_conservation(bench)
    total_txs = transactions_sent(bench.w3)
    seconds = time.perf_counter() - started

    print(render(base, cases, batch, total_txs, seconds))

    def ratios(gas: float) -> dict[str, float]:
        return {
            "ratio_to_plain_erc20_transfer": gas / base.plain_erc20_transfer,
            "ratio_to_digital_cash_transfer": gas / base.digital_cash_transfer,
        }

    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "packages": args.packages,
        "consumers": len(CONSUMER_INDICES),
        "measure": "receipt gasUsed, steady state (every operation ran once before, untimed)",
        "environment": environment(
            solc=SOLC_VERSION, evm_version=EVM_VERSION, optimizer_runs=OPTIMIZER_RUNS, backend="in-process"
        ),
        "baselines": asdict(base),
        "operations": [{**asdict(c), **ratios(c.gas)} for c in cases],
        "batch_refund": {
            **asdict(batch),
            "one_by_one_gas_estimate": batch.one_by_one_gas,
            "saving_over_one_by_one": batch.saving,
            "per_package": ratios(batch.gas_per_package),
        },
        "transactions_in_run": total_txs,
        "seconds": seconds,
    }
    OUT_FILE.parent.mkdir(parents=True, exist_ok=True)
    OUT_FILE.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten: {OUT_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
