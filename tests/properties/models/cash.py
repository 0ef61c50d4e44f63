"""The cash family's model: balances, tiers, freezes and daily spending (``DigitalCash``)."""

from __future__ import annotations

from dataclasses import dataclass, field

# Tier -> (balance cap, payment cap, daily cap) in fen, as deployed (the registry's defaults).
TIERS = {
    3: (20_000_00, 5_000_00, 10_000_00),
    4: (10_000_00, 2_000_00, 5_000_00),
    2: (500_000_00, 50_000_00, 100_000_00),
}


@dataclass
class Model:
    balances: dict[str, int] = field(default_factory=dict)
    tiers: dict[str, int] = field(default_factory=dict)
    frozen: set[str] = field(default_factory=set)
    spent: dict[str, tuple[int, int]] = field(default_factory=dict)  # wallet -> (day, spent)

    def spent_on(self, wallet: str, day: int) -> int:
        d, s = self.spent.get(wallet, (day, 0))
        return s if d == day else 0

    def admitted(self, wallet: str) -> str | None:
        if wallet not in self.tiers:
            return "WalletNotRegistered"
        if wallet in self.frozen:
            return "WalletFrozen"
        return None

    def expect_mint(self, to: str, amount: int) -> str | None:
        if amount == 0:
            return "ZeroAmount"
        if err := self.admitted(to):
            return err
        if self.balances.get(to, 0) + amount > TIERS[self.tiers[to]][0]:
            return "TierBalanceCapExceeded"
        return None

    def expect_transfer(self, frm: str, to: str, amount: int, day: int) -> str | None:
        if err := self.admitted(frm):
            return err
        _, payment_cap, daily_cap = TIERS[self.tiers[frm]]
        if amount > payment_cap:
            return "TierPaymentCapExceeded"
        if self.spent_on(frm, day) + amount > daily_cap:
            return "TierDailyCapExceeded"
        if err := self.admitted(to):
            return err
        if self.balances.get(frm, 0) < amount:
            return "ERC20InsufficientBalance"
        after = self.balances.get(to, 0) + (0 if to == frm else amount)
        if after > TIERS[self.tiers[to]][0]:
            return "TierBalanceCapExceeded"
        return None
