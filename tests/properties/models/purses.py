"""The earmarked purses' model (``CardPurses``, inherited by ``HardWalletSettlement``): purse
programmes, each card's purse slots and books, and the settlement's draw, undo and expiry.

The rules mirror the contract's, in its order: a card holds up to :data:`MAX_PURSES` purses in
contiguous slots (a new programme takes the first empty slot; an expired purse's slot is taken by
the last used one); a payment at a merchant whose category a purse allows draws those purses in
slot order (an expired programme's purse is skipped), before cash; a refused payment undoes its
draw; after expiry a purse's balance goes to the funder or the holder, as the programme says.
Token movements (the funder's pull, the expiry's payout) are left to the caller's token model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.properties.models.common import Outcome

MAX_PURSES = 4


@dataclass
class PurseProgrammeModel:
    pid: int
    funder: str
    per_card_cap: int
    expires_at: int
    to_holder: bool
    categories: tuple[int, ...]
    funded: int = 0
    spent: int = 0
    expired: int = 0

    @property
    def held(self) -> int:
        return self.funded - self.spent - self.expired


@dataclass
class CardPursesModel:
    """One card's purse slots (``[programme, balance]``, contiguous) and its books per programme
    (``[funded, expired]``; spent is funded - expired - balance, as the contract's view says)."""

    slots: list[list[int]] = field(default_factory=list)
    books: dict[int, list[int]] = field(default_factory=dict)

    def balance(self, pid: int) -> int:
        return next((b for p, b in self.slots if p == pid), 0)

    def as_chain(self) -> list[tuple[int, int, int, int, int]]:
        """What ``HardWalletClient.purses`` reads: (programme, balance, funded, expired, spent)."""
        out = []
        for pid, balance in self.slots:
            funded, expired = self.books[pid]
            out.append((pid, balance, funded, expired, funded - expired - balance))
        return out


@dataclass
class PurseBook:
    programmes: dict[int, PurseProgrammeModel] = field(default_factory=dict)
    cards: dict[str, CardPursesModel] = field(default_factory=dict)

    @property
    def held(self) -> int:
        """Earmarked value on every card (the settlement's ``totalEarmarked``)."""
        return sum(b for c in self.cards.values() for _, b in c.slots)

    def card(self, card: str) -> CardPursesModel:
        return self.cards.setdefault(card, CardPursesModel())

    def programme_refusal(self, pid: int) -> Outcome:
        return ("PurseUnknownProgramme", (pid,)) if pid not in self.programmes else None

    def fund_refusal(
        self, card: str, pid: int, amount: int, caller: str, now: int, card_refusal: Outcome
    ) -> Outcome:
        """``fundPurse``'s own refusals, in its order (``card_refusal``: the settlement's refusal of
        the card, unknown or not active)."""
        if (refused := self.programme_refusal(pid)) is not None:
            return refused
        p = self.programmes[pid]
        if caller != p.funder:
            return ("PurseNotFunder", (pid, caller))
        if now > p.expires_at:
            return ("PurseProgrammeExpired", (pid, p.expires_at))
        if card_refusal is not None:
            return card_refusal
        if amount == 0:
            return ("PurseZeroAmount", ())
        slots = self.card(card).slots
        if all(p != pid for p, _ in slots) and len(slots) == MAX_PURSES:
            return ("PurseSlotsFull", (card, MAX_PURSES))
        after = self.card(card).balance(pid) + amount
        if after > p.per_card_cap:
            return ("PurseCapExceeded", (card, pid, p.per_card_cap, after))
        return None

    def fund(self, card: str, pid: int, amount: int) -> None:
        c = self.card(card)
        slot = next((s for s in c.slots if s[0] == pid), None)
        if slot is None:
            slot = [pid, 0]
            c.slots.append(slot)
        slot[1] += amount
        c.books.setdefault(pid, [0, 0])[0] += amount
        self.programmes[pid].funded += amount

    def draw(self, card: str, category: int, amount: int, now: int) -> list[int]:
        """Draw up to ``amount`` from ``card``'s purses allowed at ``category``, in slot order;
        returns what each slot gave (applied: :meth:`undraw` takes it back)."""
        takes = [0] * MAX_PURSES
        taken = 0
        for i, slot in enumerate(self.card(card).slots):
            if taken >= amount:
                break
            pid, balance = slot
            p = self.programmes[pid]
            if balance == 0 or now > p.expires_at or category not in p.categories:
                continue
            take = min(amount - taken, balance)
            slot[1] -= take
            p.spent += take
            takes[i] = take
            taken += take
        return takes

    def undraw(self, card: str, takes: list[int]) -> None:
        for slot, take in zip(self.card(card).slots, takes, strict=False):
            slot[1] += take
            self.programmes[slot[0]].spent -= take

    def spent_by(self, card: str, takes: list[int]) -> dict[int, int]:
        """Programme -> what a draw's ``takes`` spent of it (the ``PurseSpent`` events)."""
        return {s[0]: t for s, t in zip(self.card(card).slots, takes, strict=False) if t}

    def expire_refusal(self, card: str, pid: int, now: int) -> Outcome:
        if (refused := self.programme_refusal(pid)) is not None:
            return refused
        p = self.programmes[pid]
        if now <= p.expires_at:
            return ("PurseNotExpired", (pid, p.expires_at))
        if all(q != pid for q, _ in self.card(card).slots):
            return ("PurseNotHeld", (card, pid))
        return None

    def expire(self, card: str, pid: int) -> int:
        """Close ``card``'s purse of ``pid`` (the last used slot moves into its place); returns
        what was left on it."""
        c = self.card(card)
        at = next(i for i, s in enumerate(c.slots) if s[0] == pid)
        amount = c.slots[at][1]
        last = c.slots.pop()
        if at < len(c.slots):
            c.slots[at] = last
        c.books[pid][1] += amount
        self.programmes[pid].expired += amount
        return amount
