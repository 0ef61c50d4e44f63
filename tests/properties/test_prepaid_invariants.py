"""Stateful property test of prepaid-fund supervision (Solmate-style invariants with ghost state).

Random sequences of prepayments, consumption (by the consumer, or claimed by the merchant with
the consumer's EIP-712 signature: valid, replayed, forged, tampered or expired), cancellations,
keeper refunds (one by one and batched), time jumps across package end dates, merchant closures
and freezes run against the chain and against a Python model of PrepaidEscrow and of the token
rules it depends on (frozen wallets, tier payment/daily/balance caps). Every outcome is predicted
before the call: success (with the amounts of its event), or the exact custom error and its
arguments. After every step: each package on chain equals the model; per package and in total
deposited == released + refunded + held; the escrow holds exactly the total held; every balance
equals the model, merchants hold exactly what was released to them, consumers their opening
balance minus what they deposited plus what came back; total supply equals the sum of balances.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eth_account.signers.local import LocalAccount
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from web3 import Web3

from chain import devtools
from chain.accounts import dev_account
from chain.backends import in_process
from chain.clients.prepaid import MerchantEnrolment, PackageStatus, PrepaidClient
from chain.clients.token import CashClient, Kind
from chain.deploy import deploy_all
from chain.exceptions import ContractError
from chain.sender import TxResult
from tests.conftest import identity
from tests.properties.models.common import BPS, DAY, HOUR, Move, Outcome, day, spread, weighted
from tests.properties.models.prepaid import Model, Pkg

MAX_BATCH = 100
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

OPERATOR = dev_account(1)
REGULATOR = dev_account(2)
# (account, tier, opening balance in fen). Two tier-2 consumers far from every cap (a package is
# at most 20 x 500 yuan); one tier-4 consumer opened at its balance cap, whose payment cap
# (2,000 yuan), daily cap (5,000 yuan) and balance do bite.
CONSUMERS = [
    (dev_account(3), 2, 20_000_000),
    (dev_account(4), 2, 20_000_000),
    (dev_account(5), 4, 1_000_000),
]
# (account, supervised share in bps, per-package ceiling in fen or 0, merchant category); tier 1
# (no caps). The school holds 60% back, with a ceiling of 6,000 yuan; the gym is fully supervised.
MERCHANTS = [(dev_account(6), 6_000, 600_000, 8299), (dev_account(7), 10_000, 0, 7997)]
KEEPER = dev_account(8)  # never registered: anyone may push refunds

CONSUMER_ACCOUNTS = [a for a, _, _ in CONSUMERS]
MERCHANT_ACCOUNTS = [a for a, _, _, _ in MERCHANTS]
ACCOUNTS = {a.address: a for a in [*CONSUMER_ACCOUNTS, *MERCHANT_ACCOUNTS]}
OPENING = {a.address: opening for a, _, opening in CONSUMERS}
TERMS = {a.address: (bps, ceiling) for a, bps, ceiling, _ in MERCHANTS}

# How the merchant's claim is signed ("at_deadline": the deadline is the block's own timestamp).
# "expired" carries a valid signature whose deadline passed.
VALID_MODES = ("valid", "at_deadline")
BAD_MODES = (
    "replayed",
    "expired",
    "stale_nonce",
    "by_merchant",
    "other_sessions",
    "other_package",
    "other_chain",
    "high_s",
    "garbage",
)
VALID_SIGNATURE = {*VALID_MODES, "expired"}
# How sessions are used: a third confirmed by the consumer, a third claimed by the merchant with a
# valid signature, a third with a bad one.
uses = st.one_of(st.just("consume"), st.sampled_from(VALID_MODES), st.sampled_from(BAD_MODES))


_base: dict[str, Any] = {}


def base_chain() -> tuple[PrepaidClient, CashClient, Any]:
    """One chain for the module: consumers funded, merchants enrolled; examples revert to it."""
    if not _base:
        w3 = in_process()
        # chain.backends installs a one-run gas estimator on the chain class, but py-evm's Chain
        # __init__ has already set the default binary search (14 executions) on the instance,
        # which shadows it. Drop the instance attribute so the intended estimator runs.
        vars(w3.provider.ethereum_tester.backend.chain).pop("gas_estimator", None)
        manifest = deploy_all(w3)
        cash = CashClient(w3, manifest)
        prepaid = PrepaidClient(w3, manifest, cash.tx)
        for account, tier, opening in CONSUMERS:
            cash.register(OPERATOR, account.address, Kind.PERSONAL, tier, 0, identity(account.address))
            cash.mint(OPERATOR, account.address, opening)
        for account, bps, ceiling, mcc in MERCHANTS:
            cash.register(OPERATOR, account.address, Kind.MERCHANT, 1, mcc, identity(account.address))
            prepaid.enrol(REGULATOR, account.address, bps, ceiling)
        _base["limits"] = {
            **{a.address: cash.tier_limits(t) for a, t, _ in CONSUMERS},
            **{a.address: cash.tier_limits(1) for a in MERCHANT_ACCOUNTS},
        }
        _base["prepaid"], _base["cash"] = prepaid, cash
        _base["snap"] = devtools.snapshot(w3)
    return _base["prepaid"], _base["cash"], _base["snap"]


# The errors a batch refund defers a row with, by selector (RefundDeferred's reason).
ERROR_SELECTORS = {
    name: bytes(Web3.keccak(text=f"{name}({types})")[:4])
    for name, types in [
        ("PrepaidConsumerFrozen", "uint256,address"),
        ("WalletFrozen", "address"),
        ("WalletNotRegistered", "address"),
        ("TierBalanceCapExceeded", "address,uint256,uint256"),
    ]
}


def high_s(signature: bytes) -> bytes:
    """The other (malleable) signature of the same message: s -> n - s, v flipped."""
    s = int.from_bytes(signature[32:64], "big")
    return signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - signature[64]])


# Hypothesis draws the simplest value of a strategy (the first option, the smallest integer) about
# half of the time: the strategies below make that a useful one.
# End date, seconds from now: most often in 20 days, about one in nine in the past (or now).
end_dates = weighted(
    (4, spread(2 * DAY, 30 * DAY, 20 * DAY)), (4, st.integers(1, 2 * DAY)), (1, st.integers(-HOUR, 0))
)
# Cancellation fee in bps of the held part: often none, one in nine all of it, one in nine a fen too
# many (BPS + 1).
fees = weighted((7, st.integers(0, BPS)), (1, st.just(BPS)), (1, st.just(BPS + 1)))
# Consumer and merchant by index, unfrozen (and open) ones first: see PrepaidMachine._prepay. Most
# often ten sessions at 3.33 yuan, whose held share at the school does not divide evenly.
prepay_args = st.tuples(
    st.integers(0, len(CONSUMERS) - 1),
    st.integers(0, len(MERCHANTS) - 1),
    spread(1, 20, 10),  # sessions
    spread(1, 50_000, 333),  # unit price, fen
    end_dates,
    fees,
)


def has_open_packages(machine: PrepaidMachine) -> bool:
    """Rules on packages wait for one (they still pick closed and unknown ids, now and then)."""
    return bool(machine.model.open_ids())


class PrepaidMachine(RuleBasedStateMachine):
    @initialize(
        opening=st.lists(st.tuples(prepay_args, spread(0, 4, 1), st.booleans()), min_size=2, max_size=4)
    )
    def start(self, opening: list[tuple[tuple[Any, ...], int, bool]]) -> None:
        """Revert to the base chain; open a few packages, some of them partly used already."""
        self.prepaid, self.cash, snap = base_chain()
        devtools.revert(self.cash.w3, snap)
        self.snap = devtools.snapshot(self.cash.w3)  # eth-tester snapshots are single-use
        _base["snap"] = self.snap
        self.cash.tx.nonces.reset()
        self.escrow = self.prepaid.escrow.address
        # Every wallet that may hold cash (the keeper is not registered: it may not). Their sum
        # equal to the total supply also shows that no other wallet holds any.
        self.wallets = [*ACCOUNTS, self.escrow]
        balances = {w: 0 for w in self.wallets}
        balances.update(OPENING)
        self.model = Model(escrow=self.escrow, limits=_base["limits"], balances=balances)
        self.signed: dict[int, tuple[int, int, bytes]] = {}  # package -> last claim (sessions, deadline, sig)
        for args, used, by_claim in opening:
            pid = self._prepay(*args)
            if pid is not None and used:  # some sessions used already
                pkg = self.model.packages[pid]
                if by_claim:
                    self._claim_as(ACCOUNTS[pkg.merchant], pid, used, "valid")
                else:
                    self._consume_as(ACCOUNTS[pkg.consumer], pid, used)

    # -- helpers ---------------------------------------------------------------------------

    def _pending(self) -> int:
        """The block.timestamp the next transaction will see."""
        return int(self.cash.w3.provider.ethereum_tester.get_block_by_number("pending")["timestamp"])

    def _run(self, what: str, call: Callable[[], TxResult], expected: Outcome) -> TxResult | None:
        event(f"{what}: {expected[0] if expected else 'ok'}")  # --hypothesis-show-statistics
        try:
            result = call()
        except ContractError as exc:
            assert (exc.name, exc.args_tuple) == expected, f"expected {expected}, got {exc.signature}"
            return None
        assert expected is None, f"expected {expected}, but the call succeeded"
        return result

    def _pick(self, data: st.DataObject) -> int:
        """Mostly an open package; else any package so far, or the next (unknown) id."""
        any_id = st.integers(1, len(self.model.packages) + 1)
        open_ids = self.model.open_ids()
        if not open_ids:
            return data.draw(any_id, label="package")
        return data.draw(weighted((3, st.sampled_from(open_ids)), (1, any_id)), label="package")

    def _caller(self, data: st.DataObject, owner: str | None, pool: list[LocalAccount]) -> LocalAccount:
        """Usually ``owner``; sometimes (or when there is none) another account of ``pool``."""
        if owner is not None and data.draw(st.integers(0, 9), label="stranger") != 9:
            return ACCOUNTS[owner]
        return data.draw(st.sampled_from([a for a in pool if a.address != owner]), label="caller")

    def _to_an_end_date(self, data: st.DataObject, pkg: Pkg | None) -> None:
        """Sometimes move the clock so that the next transaction runs at (most often), one second
        after or one second before the end date of ``pkg``, when that is still ahead."""
        if pkg is None or data.draw(st.integers(0, 5), label="at_end_date") != 5:
            return
        target = pkg.expires_at + data.draw(st.sampled_from([0, 1, -1]), label="delta")
        self._advance(target - 1 - self._pending())

    def _advance(self, seconds: int) -> None:
        if seconds >= 1:  # increase_time mines one block at the new time
            target = self._pending() + 1 + seconds
            devtools.increase_time(self.cash.w3, seconds)
            assert self._pending() == target

    def _sessions(self, data: st.DataObject, pkg: Pkg | None) -> int:
        remaining = max(pkg.remaining, 1) if pkg else 1
        return data.draw(weighted((2, st.integers(1, remaining)), (1, st.integers(0, 21))), label="sessions")

    def _commit_release(self, pid: int, sessions: int, amount: int, state: Any) -> None:
        p = self.model.packages[pid]
        p.used += sessions
        p.held -= amount
        p.released += amount
        if p.used == p.sessions:
            p.status = PackageStatus.CONSUMED
        self.model.balances, self.model.spent = state

    # -- rules -----------------------------------------------------------------------------

    def _prepay(
        self,
        consumer_index: int,
        merchant_index: int,
        sessions: int,
        unit_price: int,
        end_in: int,
        fee_bps: int,
    ) -> int | None:
        """Prepay; the new package's id, or None when refused.

        Frozen consumers and closed or frozen merchants are sorted last: the simplest draws
        (index 0, the most frequent) pick a party who can take part."""
        consumer = sorted(CONSUMER_ACCOUNTS, key=lambda a: a.address in self.model.frozen)[consumer_index]
        merchant = sorted(
            MERCHANT_ACCOUNTS, key=lambda a: a.address in self.model.closed | self.model.frozen
        )[merchant_index]
        c, m = consumer.address, merchant.address
        bps, ceiling = TERMS[m]
        total = sessions * unit_price
        held = total * bps // BPS
        immediate = total - held
        fee = held * fee_bps // BPS if fee_bps <= BPS else held + 1
        self.prepaid.approve(consumer, total)  # a transaction of its own: read the clock after it
        ts = self._pending()
        expires = ts + end_in
        state: Any = None
        expected: Outcome
        if m in self.model.closed:
            expected = ("PrepaidMerchantClosed", (m,))
        elif m in self.model.frozen:
            expected = ("PrepaidMerchantFrozen", (m,))
        elif expires <= ts:
            expected = ("PrepaidExpiryInPast", (expires, ts))
        elif ceiling and total > ceiling:
            expected = ("PrepaidCeilingExceeded", (m, ceiling, total))
        elif fee > held:
            expected = ("PrepaidFeeTooHigh", (fee, held))
        else:
            moves: list[Move] = [(c, self.escrow, total)]
            moves += [(self.escrow, m, immediate, c, True)] if immediate else []
            expected, *state = self.model.simulate(moves, day(ts))
        result = self._run(
            "prepay",
            lambda: self.prepaid.prepay(consumer, m, sessions, unit_price, expires, fee, approve=False)[1],
            expected,
        )
        if result is None:
            return None
        pid = len(self.model.packages) + 1
        emitted = result.named("PackagePrepaid")[0]
        assert (emitted["id"], emitted["total"], emitted["immediate"], emitted["held"]) == (
            pid,
            total,
            immediate,
            held,
        )
        self.model.packages[pid] = Pkg(c, m, expires, sessions, unit_price, fee, total, immediate, held)
        ids = [i for i, p in self.model.packages.items() if p.merchant == m]
        assert self.prepaid.packages_of(m, 0, len(ids) + 1) == ids
        self.model.balances, self.model.spent = state
        return pid

    @rule(args=prepay_args)
    def prepay(self, args: tuple[Any, ...]) -> None:
        self._prepay(*args)

    @precondition(has_open_packages)
    @rule(data=st.data(), how=uses)
    def use_sessions(self, data: st.DataObject, how: str) -> None:
        """The consumer confirms sessions, or the merchant claims them with a signature."""
        if how == "consume":
            self._consume(data)
        else:
            self._claim(data, how)

    def _consume(self, data: st.DataObject) -> None:
        pid = self._pick(data)
        pkg = self.model.packages.get(pid)
        self._to_an_end_date(data, pkg)
        caller = self._caller(data, pkg.consumer if pkg else None, CONSUMER_ACCOUNTS)
        self._consume_as(caller, pid, self._sessions(data, pkg))

    def _consume_as(self, caller: LocalAccount, pid: int, sessions: int) -> None:
        pkg = self.model.packages.get(pid)
        ts = self._pending()
        amount, state = 0, None
        expected = self.model.expect_open(pid)
        if expected is None and caller.address != pkg.consumer:  # type: ignore[union-attr]
            expected = ("PrepaidNotConsumer", (pid, caller.address))
        if expected is None:
            expected, amount, state = self.model.release(pid, sessions, ts)
        result = self._run("consume", lambda: self.prepaid.consume(caller, pid, sessions), expected)
        if result is None:
            return
        assert pkg is not None
        remaining = pkg.remaining - sessions
        assert result.named("SessionsConsumed")[0].args == {
            "id": pid,
            "sessions": sessions,
            "amount": amount,
            "remaining": remaining,
            "bySignature": False,
        }
        self._commit_release(pid, sessions, amount, state)

    def _claim(self, data: st.DataObject, mode: str) -> None:
        if mode == "replayed" and self.signed:
            pid = data.draw(st.sampled_from(sorted(self.signed)), label="package")
        else:
            pid = self._pick(data)
        pkg = self.model.packages.get(pid)
        self._to_an_end_date(data, pkg)
        caller = self._caller(data, pkg.merchant if pkg else None, MERCHANT_ACCOUNTS)
        self._claim_as(caller, pid, self._sessions(data, pkg), mode)

    def _claim_as(self, caller: LocalAccount, pid: int, sessions: int, mode: str) -> None:
        pkg = self.model.packages.get(pid)
        ts = self._pending()
        deadline = {"expired": ts - 1, "at_deadline": ts}.get(mode, ts + HOUR)
        consumer = ACCOUNTS[pkg.consumer] if pkg else CONSUMER_ACCOUNTS[0]
        nonce = pkg.nonce if pkg else 0
        sign = self.prepaid.sign_consumption
        if mode == "replayed" and pid in self.signed:  # exactly what the merchant sent last time
            sessions, deadline, signature = self.signed[pid]
        elif mode in ("replayed", "stale_nonce"):  # nothing to replay: a nonce not (yet) current
            signature = sign(consumer, pid, sessions, nonce + 1, deadline)
        elif mode == "by_merchant":
            signature = sign(caller, pid, sessions, nonce, deadline)
        elif mode == "other_sessions":
            signature = sign(consumer, pid, sessions + 1, nonce, deadline)
        elif mode == "other_package":
            signature = sign(consumer, pid + 1, sessions, nonce, deadline)
        elif mode == "other_chain":
            signature = sign(consumer, pid, sessions, nonce, deadline, chain_id=1)
        elif mode == "high_s":
            signature = high_s(sign(consumer, pid, sessions, nonce, deadline))
        elif mode == "garbage":
            signature = bytes([1]) * 65
        else:
            signature = sign(consumer, pid, sessions, nonce, deadline)
        amount, state = 0, None
        expected = self.model.expect_open(pid)
        if expected is None and caller.address != pkg.merchant:  # type: ignore[union-attr]
            expected = ("PrepaidNotMerchant", (pid, caller.address))
        if expected is None and ts > deadline:
            expected = ("PrepaidSignatureExpired", (deadline,))
        if expected is None and mode not in VALID_SIGNATURE:
            expected = ("PrepaidInvalidSignature", (pid,))
        if expected is None:
            expected, amount, state = self.model.release(pid, sessions, ts)
        result = self._run(
            "claim", lambda: self.prepaid.claim(caller, pid, sessions, deadline, signature), expected
        )
        if result is None:
            return
        assert pkg is not None
        emitted = result.named("SessionsConsumed")[0]
        assert (emitted["sessions"], emitted["amount"], emitted["bySignature"]) == (sessions, amount, True)
        self._commit_release(pid, sessions, amount, state)
        pkg.nonce += 1
        self.signed[pid] = (sessions, deadline, signature)

    @precondition(has_open_packages)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        pid = self._pick(data)
        pkg = self.model.packages.get(pid)
        self._to_an_end_date(data, pkg)
        caller = self._caller(data, pkg.consumer if pkg else None, CONSUMER_ACCOUNTS)
        ts = self._pending()
        fee = refund = 0
        state: Any = None
        expected = self.model.expect_open(pid)
        if expected is None and caller.address != pkg.consumer:  # type: ignore[union-attr]
            expected = ("PrepaidNotConsumer", (pid, caller.address))
        if expected is None and pkg.consumer in self.model.frozen:  # type: ignore[union-attr]
            expected = ("PrepaidConsumerFrozen", (pid, pkg.consumer))  # type: ignore[union-attr]
        if expected is None:
            assert pkg is not None
            # As the contract stands: allowed after the end date and after closure too, and the
            # fee still goes to the merchant then (see the report on this test).
            fee = min(pkg.cancellation_fee, pkg.held)
            refund = pkg.held - fee
            moves: list[Move] = [(self.escrow, pkg.merchant, fee, pkg.consumer, True)] if fee else []
            moves += [(self.escrow, pkg.consumer, refund, pkg.consumer, False)] if refund else []
            expected, *state = self.model.simulate(moves, day(ts))
        result = self._run("cancel", lambda: self.prepaid.cancel(caller, pid), expected)
        if result is None:
            return
        assert pkg is not None
        assert result.named("PackageCancelled")[0].args == {"id": pid, "refund": refund, "fee": fee}
        pkg.status = PackageStatus.CANCELLED
        pkg.held = 0
        pkg.released += fee
        pkg.refunded += refund
        self.model.balances, self.model.spent = state

    @precondition(has_open_packages)
    @rule(data=st.data(), batch=st.booleans())
    def refund(self, data: st.DataObject, batch: bool) -> None:
        """A keeper refunds one package, or pushes a batch."""
        if batch:
            self._refund_batch(data)
        else:
            self._refund_one(data)

    def _refund_one(self, data: st.DataObject) -> None:
        pid = self._pick(data)
        pkg = self.model.packages.get(pid)
        self._to_an_end_date(data, pkg)
        ts = self._pending()
        state: Any = None
        expected = self.model.expect_open(pid)
        if expected is None:
            assert pkg is not None
            if not self.model.refundable(pkg, ts):
                expected = ("PrepaidNotRefundable", (pid,))
            elif pkg.consumer in self.model.frozen:
                expected = ("PrepaidConsumerFrozen", (pid, pkg.consumer))
            else:
                moves = [(self.escrow, pkg.consumer, pkg.held, pkg.consumer, False)] if pkg.held else []
                expected, *state = self.model.simulate(moves, day(ts))
        result = self._run("refund", lambda: self.prepaid.refund(KEEPER, pid), expected)
        if result is None:
            return
        assert pkg is not None
        closed = pkg.merchant in self.model.closed
        assert result.named("PackageRefunded")[0].args == {
            "id": pid,
            "amount": pkg.held,
            "merchantClosed": closed,
        }
        pkg.refunded += pkg.held
        pkg.held = 0
        pkg.status = PackageStatus.REFUNDED
        self.model.balances, self.model.spent = state

    def _refund_batch(self, data: st.DataObject) -> None:
        n = len(self.model.packages)
        if data.draw(st.integers(0, 19), label="oversize") == 19:
            ids = list(range(1, MAX_BATCH + 2))
        else:  # known ids, duplicates and the next (unknown) id
            ids = data.draw(st.lists(st.integers(1, n + 1), max_size=2 * n + 2), label="ids")
        ts = self._pending()
        refunded: list[tuple[int, int, bool]] = []
        deferred: list[tuple[int, str]] = []  # (package, the reason's error name)
        state: Any = (self.model.balances, self.model.spent)
        expected: Outcome = None
        if len(ids) > MAX_BATCH:
            expected = ("PrepaidBatchTooLarge", (len(ids), MAX_BATCH))
        else:
            done: set[int] = set()
            for pid in ids:
                p = self.model.packages.get(pid)
                if p is None or p.status != PackageStatus.OPEN or pid in done:
                    continue
                if not self.model.refundable(p, ts):
                    continue
                if p.consumer in self.model.frozen:
                    deferred.append((pid, "PrepaidConsumerFrozen"))
                    continue
                if p.held:  # each row on its own: the token's refusal defers it, the page goes on
                    saved = (self.model.balances, self.model.spent)
                    self.model.balances, self.model.spent = state
                    refused, *after = self.model.simulate(
                        [(self.escrow, p.consumer, p.held, p.consumer, False)], day(ts)
                    )
                    self.model.balances, self.model.spent = saved
                    if refused is not None:
                        deferred.append((pid, refused[0]))
                        continue
                    state = tuple(after)
                done.add(pid)
                refunded.append((pid, p.held, p.merchant in self.model.closed))
        result = self._run("refund_batch", lambda: self.prepaid.refund_batch(KEEPER, ids), expected)
        if result is None:
            return
        events = result.named("PackageRefunded")
        assert [(e["id"], e["amount"], e["merchantClosed"]) for e in events] == refunded
        assert [(e["id"], e["reason"]) for e in result.named("RefundDeferred")] == [
            (pid, ERROR_SELECTORS[name]) for pid, name in deferred
        ]
        for pid, amount, _ in refunded:
            p = self.model.packages[pid]
            p.refunded += amount
            p.held = 0
            p.status = PackageStatus.REFUNDED
        self.model.balances, self.model.spent = state

    @rule(seconds=st.one_of(st.integers(HOUR, 12 * HOUR), st.integers(12 * HOUR, 10 * DAY)))
    def time_passes(self, seconds: int) -> None:
        self._advance(seconds)

    @precondition(
        lambda self: (
            len(self.model.closed) < len(MERCHANTS)
            and len(self.model.packages) >= 4 * (len(self.model.closed) + 1)
        )
    )
    @rule(data=st.data())
    def close_merchant(self, data: st.DataObject) -> None:
        """Once per merchant, after 4 packages, then after 8; closing again is refused."""
        m = data.draw(st.sampled_from([a for a in TERMS if a not in self.model.closed]), label="merchant")
        self._run("close_merchant", lambda: self.prepaid.close_merchant(REGULATOR, m), None)
        self.model.closed.add(m)
        assert self.prepaid.merchant(m) == MerchantEnrolment(True, True, *TERMS[m])
        self._run(
            "close_merchant",
            lambda: self.prepaid.close_merchant(REGULATOR, m),
            ("PrepaidMerchantClosed", (m,)),
        )

    @rule(account=st.sampled_from([*CONSUMER_ACCOUNTS, *MERCHANT_ACCOUNTS]))
    def toggle_freeze(self, account: LocalAccount) -> None:
        if account.address in self.model.frozen:
            self.cash.unfreeze(REGULATOR, account.address)
            self.model.frozen.discard(account.address)
        else:
            self.cash.freeze(REGULATOR, account.address)
            self.model.frozen.add(account.address)

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def packages_match_model(self) -> None:
        m = self.model
        assert int(self.prepaid.tx.call(self.prepaid.escrow.functions.packageCount())) == len(m.packages)
        for pid, pkg in m.packages.items():
            on_chain = self.prepaid.package(pid)
            assert on_chain == pkg.as_package(pid)
            assert on_chain.deposited == on_chain.released + on_chain.refunded + on_chain.held

    @invariant()
    def money_is_conserved_and_backed(self) -> None:
        m = self.model
        totals = self.prepaid.totals()
        assert totals == {
            k: sum(getattr(p, k) for p in m.packages.values())
            for k in ("deposited", "released", "refunded", "held")
        }
        assert totals["deposited"] == totals["released"] + totals["refunded"] + totals["held"]
        balances = {w: self.cash.balance_of(w) for w in self.wallets}
        assert balances[self.escrow] == totals["held"]
        assert balances == m.balances
        assert self.cash.total_supply() == sum(balances.values()) == sum(OPENING.values())
        for merchant in MERCHANT_ACCOUNTS:
            released = sum(p.released for p in m.packages.values() if p.merchant == merchant.address)
            assert balances[merchant.address] == released
        for consumer in CONSUMER_ACCOUNTS:
            mine = [p for p in m.packages.values() if p.consumer == consumer.address]
            back = sum(p.refunded - p.deposited for p in mine)
            assert balances[consumer.address] == OPENING[consumer.address] + back


TestPrepaidInvariants = PrepaidMachine.TestCase
