"""The cash family's tables (migration 0017): the court orders and recoveries proposed through
the service, each with the API key that proposed it (the maker), written when its proposal's
operation is confirmed (:func:`record_proposals`). They page the regulator's listings and tell
the checker from the maker without scanning every operation; the status is the chain's, read
when listed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from chain.events import Event
from services.common.models import Base, Operation, utcnow


class CourtOrder(Base):
    __tablename__ = "court_orders"

    order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    from_wallet: Mapped[str] = mapped_column(String(42), index=True)
    to_wallet: Mapped[str] = mapped_column(String(42))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    case_number: Mapped[str] = mapped_column(String(66))
    hold_id: Mapped[int] = mapped_column(BigInteger)
    maker_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    operation_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Recovery(Base):
    __tablename__ = "recoveries"

    recovery_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    lost: Mapped[str] = mapped_column(String(42), index=True)
    replacement: Mapped[str] = mapped_column(String(42))
    maker_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    operation_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def _text(raw: Any) -> str:
    data = bytes.fromhex(raw[2:]) if isinstance(raw, str) else bytes(raw)
    return data.rstrip(b"\0").decode(errors="replace")


def record_proposals(s: Session, op: Operation, events: list[Event]) -> None:
    """On the confirmation of operation ``op`` (in its transaction): a proposed court order or
    recovery gets its row, naming ``op``'s API key as the maker. Idempotent (a row once)."""
    for e in events:
        a = e.args
        if (e.contract, e.name) == ("WalletRegistry", "CourtOrderProposed") and s.get(
            CourtOrder, int(a["id"])
        ) is None:
            s.add(
                CourtOrder(
                    order_id=int(a["id"]),
                    from_wallet=a["from"],
                    to_wallet=a["to"],
                    amount_fen=int(a["amount"]),
                    case_number=_text(a["caseNumber"]),
                    hold_id=int(a["holdId"]),
                    maker_key_id=op.api_key_id,
                    operation_id=op.id,
                )
            )
        elif (e.contract, e.name) == ("WalletRegistry", "RecoveryProposed") and s.get(
            Recovery, int(a["id"])
        ) is None:
            s.add(
                Recovery(
                    recovery_id=int(a["id"]),
                    lost=a["lost"],
                    replacement=a["replacement"],
                    maker_key_id=op.api_key_id,
                    operation_id=op.id,
                )
            )
