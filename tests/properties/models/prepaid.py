"""The prepaid family's model: packages and the escrow's token movements (``PrepaidEscrow``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chain.clients.prepaid import Package, PackageStatus
from chain.clients.token import TierLimits
from tests.properties.models.common import Move, Outcome, day


@dataclass
class Pkg:
    consumer: str
    merchant: str
    expires_at: int
    sessions: int
    unit_price: int
    cancellation_fee: int
    deposited: int
    released: int
    held: int
    refunded: int = 0
    used: int = 0
    nonce: int = 0
    status: PackageStatus = PackageStatus.OPEN
    supervised: int = -1  # the held part at prepayment (the release schedule's base)

    def __post_init__(self) -> None:
        if self.supervised < 0:
            self.supervised = self.held

    @property
    def remaining(self) -> int:
        return self.sessions - self.used

    def as_package(self, pid: int) -> Package:
        return Package(
            pid,
            self.consumer,
            self.merchant,
            self.status,
            self.expires_at,
            self.sessions,
            self.used,
            self.nonce,
            self.unit_price,
            self.cancellation_fee,
            self.deposited,
            self.released,
            self.refunded,
            self.held,
        )


@dataclass
class Model:
    escrow: str
    limits: dict[str, TierLimits]  # wallets absent here (the escrow) are cap-exempt
    balances: dict[str, int]
    frozen: set[str] = field(default_factory=set)
    closed: set[str] = field(default_factory=set)
    spent: dict[str, tuple[int, int]] = field(default_factory=dict)  # wallet -> (day, spent)
    packages: dict[int, Pkg] = field(default_factory=dict)

    def open_ids(self) -> list[int]:
        return [i for i, p in self.packages.items() if p.status == PackageStatus.OPEN]

    def simulate(self, moves: list[Move], day: int) -> tuple[Outcome, dict[str, int], dict[str, Any]]:
        """DigitalCash._update for each transfer in turn: the first refusal reverts them all."""
        balances, spent = dict(self.balances), dict(self.spent)
        for frm, to, amount, *pay_for in moves:
            if pay_for and pay_for[0] in self.frozen:  # payFor judges the owner first
                return ("WalletFrozen", (pay_for[0],)), balances, spent
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
            if to in self.frozen:
                return ("WalletFrozen", (to,)), balances, spent
            if balances[frm] < amount:
                return ("ERC20InsufficientBalance", (frm, balances[frm], amount)), balances, spent
            balances[frm] -= amount
            balances[to] += amount
            cap = self.limits[to].balance_cap if to in self.limits else None
            if cap is not None and balances[to] > cap:
                return ("TierBalanceCapExceeded", (to, cap, balances[to])), balances, spent
        return None, balances, spent

    def expect_open(self, pid: int) -> Outcome:
        if pid not in self.packages:
            return ("PrepaidUnknownPackage", (pid,))
        if self.packages[pid].status != PackageStatus.OPEN:
            return ("PrepaidPackageClosed", (pid,))
        return None

    def release(self, pid: int, sessions: int, ts: int) -> tuple[Outcome, int, Any]:
        """PrepaidEscrow._release: (outcome, amount released, token state after)."""
        p = self.packages[pid]
        if p.merchant in self.closed:
            return ("PrepaidMerchantClosed", (p.merchant,)), 0, None
        if ts > p.expires_at:
            return ("PrepaidPackageExpired", (pid, p.expires_at)), 0, None
        if p.consumer in self.frozen:
            return ("PrepaidConsumerFrozen", (pid, p.consumer)), 0, None
        if sessions == 0 or sessions > p.remaining:
            return ("PrepaidTooManySessions", (pid, sessions, p.remaining)), 0, None
        # Cumulative: what is due after all sessions used so far, minus what was released already.
        used = p.used + sessions
        due = p.supervised if used == p.sessions else p.supervised * used // p.sessions
        amount = due - (p.supervised - p.held)
        outcome, balances, spent = self.simulate(
            [(self.escrow, p.merchant, amount, p.consumer, True)] if amount else [], day(ts)
        )
        return outcome, amount, (balances, spent)

    def refundable(self, p: Pkg, ts: int) -> bool:
        return p.merchant in self.closed or ts > p.expires_at
