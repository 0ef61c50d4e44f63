"""The simulated core-banking ledger of the operator institutions (issue 24, migration 0020).

Each institution keeps its customers' deposit accounts and its own books in a double-entry journal:
an entry (``bank_entries``) has postings (``bank_postings``) on accounts, and the postings of every
entry sum to zero (a posting's amount is positive when it credits the account: a deposit grows).
An account's balance is the sum of its postings; nothing else stores it.

Accounts of an institution:
- ``customer``: a customer's deposit account (a liability of the bank: its balance is what the
  customer holds there); the number is the bank's own record and never leaves this table (answers
  and logs carry ``masked``);
- ``issuance``: the institution's e-CNY clearing account: a top-up debits the customer and credits
  it (the bank turned a deposit into digital cash, against its reserve at the central bank), a
  redemption the reverse. Its balance is what the bank's customers topped up less what they redeemed;
- ``vault``: where opening deposits come from (cash paid in at the counter), so that an opening
  balance is a balanced entry too.

``bank_transfers`` is the intent of a top-up or a redemption: it exists before either leg, records
each leg as it is done (the journal entry, the chain operation), and the reconciler finishes or
compensates it (``service.drive``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.common.models import Base, utcnow


class BankAccount(Base):
    __tablename__ = "bank_accounts"
    __table_args__ = (UniqueConstraint("institution", "number", name="uq_bank_account_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    institution: Mapped[int] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(16))  # customer | issuance | vault
    number: Mapped[str] = mapped_column(String(34))  # never answered nor logged: see ``masked``
    masked: Mapped[str] = mapped_column(String(40))
    holder: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BankEntry(Base):
    __tablename__ = "bank_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    institution: Mapped[int] = mapped_column(Integer, index=True)
    transfer_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    memo: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BankPosting(Base):
    __tablename__ = "bank_postings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("bank_entries.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("bank_accounts.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)  # + credits the account, - debits it


class WalletBankLink(Base):
    __tablename__ = "wallet_bank_links"
    __table_args__ = (UniqueConstraint("wallet", "account_id", name="uq_wallet_bank_link"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    wallet: Mapped[str] = mapped_column(String(42), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("bank_accounts.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BankTransfer(Base):
    """A top-up (bank leg, then chain leg) or a redemption (chain leg, then bank leg).

    ``status``: ``intent`` (nothing done) -> top-up: ``bank_done`` -> ``completed`` (minted) or
    ``compensated`` (the chain refused: the bank entry reversed); redemption: ``chain_done`` ->
    ``completed``; ``failed``: refused before anything moved."""

    __tablename__ = "bank_transfers"
    __table_args__ = (UniqueConstraint("api_key_id", "idempotency_key", name="uq_bank_transfer_idem"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # topup | redeem
    institution: Mapped[int] = mapped_column(Integer, index=True)
    wallet: Mapped[str] = mapped_column(String(42), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("bank_accounts.id"))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    bank_entry_id: Mapped[int | None] = mapped_column(ForeignKey("bank_entries.id"), nullable=True)
    reversal_entry_id: Mapped[int | None] = mapped_column(ForeignKey("bank_entries.id"), nullable=True)
    operation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    problem: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
