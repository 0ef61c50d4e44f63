"""The utilities family's tables: billers with their account-number scheme, their bills (one per
biller, account and period: the idempotency of every way to pay one) and residents' auto-debits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.common.models import Base, utcnow


class Biller(Base):
    """A water, power or gas company: its custodial merchant wallet (MCC 4900), the rule its account
    numbers follow, the cap of a resident's auto-debit mandate and the day of the month it debits."""

    __tablename__ = "utility_billers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(8))  # water, power, gas
    wallet: Mapped[str] = mapped_column(String(42), index=True)
    account_pattern: Mapped[str] = mapped_column(String(128))
    mandate_cap_fen: Mapped[int] = mapped_column(BigInteger)
    debit_day: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UtilityBill(Base):
    """One bill: (biller, account, period) is unique, and a bill is paid at most once whichever way
    (a direct payment, a payment code, an auto-debit): each claims it ``open`` -> ``paying`` first."""

    __tablename__ = "utility_bills"
    __table_args__ = (UniqueConstraint("biller_id", "account", "period", name="uq_utility_bill"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    biller_id: Mapped[str] = mapped_column(ForeignKey("utility_billers.id"), index=True)
    account: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(8), default="open")  # open, paying, paid
    channel: Mapped[str | None] = mapped_column(String(16), nullable=True)  # direct, code, autodebit
    operation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    code_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # failed auto-debit attempts
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    paid_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # the block's time
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AutoDebit(Base):
    """A resident's auto-debit of one account: a QuickPay mandate from their custodial wallet to the
    biller, run by the operator's background worker under the key that set it up."""

    __tablename__ = "utility_autodebits"
    __table_args__ = (UniqueConstraint("biller_id", "account", name="uq_utility_autodebit"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    biller_id: Mapped[str] = mapped_column(ForeignKey("utility_billers.id"), index=True)
    account: Mapped[str] = mapped_column(String(64))
    holder: Mapped[str] = mapped_column(String(42))
    mandate_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    operation_id: Mapped[str] = mapped_column(String(36))
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    revoked: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
