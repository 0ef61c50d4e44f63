"""A merchant's offline payment terminal: collect card-signed payments, upload them in batches.

At the counter the terminal has no network: it asks the card to sign, presenting its merchant's
category (the card needs it to know which of its earmarked purses the settlement will draw, and
refuses to sign what its cash plus those purses cannot cover) and its clock, checks the signature
itself (right card, this merchant, this chain and settlement contract) and queues the payment.
When it gets a connection it uploads the queue in batches of at most ``MAX_BATCH``; each payment
comes back with one outcome (settled, duplicate, rejected with a reason, shortfall). Payments with
a final outcome leave the queue; a payment whose merchant could not receive at that moment
(``MERCHANT_REFUSED``) or whose holder is frozen (``HOLDER_REFUSED``) stays queued for the next
upload. Uploading is always safe to repeat: a
payment already settled comes back as a duplicate and nothing moves twice, so an upload cut off by
a network failure is simply uploaded again.

The uploader is a callable, so the same terminal can upload straight to the chain
(:meth:`Terminal.upload_to_chain`) or through the hard-wallet gateway service.
"""

from __future__ import annotations

import json
import secrets
import time as _time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from chain.clients.hardwallet import (
    MAX_BATCH,
    HardWalletClient,
    PaymentDomain,
    PaymentOutcome,
    SignedPayment,
    recover_card,
)
from wallets.hardwallet import HardWallet

Uploader = Callable[[Sequence[SignedPayment]], Sequence[PaymentOutcome]]


class TerminalError(Exception):
    """The terminal refused a payment offered to it (bad signature, other merchant or domain)."""


class Terminal:
    """Collects signed payments for one merchant offline and uploads them in batches."""

    def __init__(
        self,
        merchant: str,
        domain: PaymentDomain,
        *,
        terminal_id: str | None = None,
        batch_size: int = MAX_BATCH,
        clock: Callable[[], float] = _time.time,
        category: int | None = None,
    ) -> None:
        """``category``: the merchant's category code as registered on chain (what the settlement
        reads to choose purses); None only for a terminal that never meets a card with purses."""
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH} payments")
        if category is not None and not 0 <= category < 2**16:
            raise ValueError("a merchant category is a uint16")
        self.merchant = to_checksum_address(merchant)
        self.category = category
        self.domain = domain
        self.terminal_id = terminal_id or f"T-{secrets.token_hex(4).upper()}"
        self.batch_size = batch_size
        self._clock = clock
        self._queue: dict[tuple[str, int], SignedPayment] = {}
        #: The last outcome of every payment this terminal uploaded, by (card, counter).
        self.results: dict[tuple[str, int], PaymentOutcome] = {}

    # -- at the counter (offline) ----------------------------------------------------------

    def charge(self, card: HardWallet, amount: int) -> SignedPayment:
        """Have ``card`` sign a payment of ``amount`` fen to this merchant now (presenting the
        merchant's category and the terminal's clock), and queue it.

        The card's refusals (:class:`wallets.hardwallet.CardRefused`) pass through unchanged.
        """
        signed = card.sign_payment(self.merchant, amount, int(self._clock()), category=self.category)
        self.accept(signed)
        return signed

    def accept(self, signed: SignedPayment) -> bool:
        """Queue a signed payment after checking it offline; False if it is queued already."""
        p = signed.payment
        if to_checksum_address(p.merchant) != self.merchant:
            raise TerminalError(f"payment is for merchant {p.merchant}, not {self.merchant}")
        try:
            signer = recover_card(signed, self.domain)
        except Exception as exc:
            raise TerminalError(f"unreadable signature: {exc}") from None
        if signer != to_checksum_address(p.card):
            raise TerminalError("the signature is not the card's (forged, or for another chain or contract)")
        if signed.key in self._queue:
            return False
        self._queue[signed.key] = signed
        return True

    @property
    def pending(self) -> list[SignedPayment]:
        """Payments waiting for upload, in the order they were taken."""
        return list(self._queue.values())

    # -- upload (online) -------------------------------------------------------------------

    def upload(self, send: Uploader) -> list[PaymentOutcome]:
        """Upload the queue in batches through ``send``; returns every outcome, in order.

        A batch whose ``send`` raises stays queued (with the batches after it) and the error
        propagates: upload again later.
        """
        outcomes: list[PaymentOutcome] = []
        queued = self.pending
        for start in range(0, len(queued), self.batch_size):
            batch = queued[start : start + self.batch_size]
            results = list(send(batch))
            if len(results) != len(batch):
                raise TerminalError(
                    f"the uploader returned {len(results)} outcomes for {len(batch)} payments"
                )
            for signed, outcome in zip(batch, results, strict=True):
                self.results[signed.key] = outcome
                if outcome.final:
                    self._queue.pop(signed.key, None)
            outcomes.extend(results)
        return outcomes

    def upload_to_chain(self, client: HardWalletClient, submitter: LocalAccount) -> list[PaymentOutcome]:
        """Upload straight to the settlement contract, signed by ``submitter`` (who pays the gas)."""
        return self.upload(lambda batch: client.settle(submitter, batch).outcomes)

    # -- moving a queue between devices ----------------------------------------------------

    def export(self) -> str:
        """The queue as JSON lines (no secrets: signatures only)."""
        return "".join(s.dumps() + "\n" for s in self.pending)

    def import_lines(self, lines: Iterable[str]) -> int:
        """Queue payments from JSON lines (each checked as by :meth:`accept`); returns how many were new."""
        added = 0
        for line in lines:
            if line.strip():
                added += self.accept(SignedPayment.from_json(json.loads(line)))
        return added

    def save_queue(self, path: Path | str) -> None:
        Path(path).write_text(self.export(), encoding="utf-8")

    def load_queue(self, path: Path | str) -> int:
        return self.import_lines(Path(path).read_text(encoding="utf-8").splitlines())

    def __repr__(self) -> str:
        return f"Terminal({self.terminal_id}, merchant={self.merchant}, pending={len(self._queue)})"

    def describe(self) -> dict[str, Any]:
        return {
            "terminal": self.terminal_id,
            "merchant": self.merchant,
            "category": self.category,
            "pending": len(self._queue),
        }
