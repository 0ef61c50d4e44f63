"""An institution's statement (互联互通): its side of every movement of digital cash that touches
a wallet it serves, from the indexed Transfer events, and its bank journal (masked accounts).

A payment from a wallet institution A serves to a merchant institution B serves is one Transfer on
the one chain; A's statement shows it ``out`` (to institution B), B's shows it ``in`` (from A)."""

from __future__ import annotations

from sqlalchemy import select

from services.common.context import ServiceContext
from services.common.models import ChainEvent
from services.operator.families.banking.models import BankAccount, BankEntry, BankPosting
from services.operator.families.banking.schemas import JournalLine, StatementLine, StatementOut

ZERO = "0x0000000000000000000000000000000000000000"
LIMIT = 500


def statement(ctx: ServiceContext, institution: int) -> StatementOut:
    lines: list[StatementLine] = []
    totals = {"issued_fen": 0, "redeemed_fen": 0, "paid_out_fen": 0, "paid_in_fen": 0, "internal_fen": 0}
    with ctx.db.session() as s:
        # Who serves whom, from the book's indexed WalletServed events (one query, no chain call
        # per address): a wallet no other institution registered is institution #1's.
        serving = {
            str(e.args["wallet"]): int(e.args["institution"])
            for e in s.scalars(
                select(ChainEvent).where(
                    ChainEvent.contract == "OperatorInstitutions", ChainEvent.name == "WalletServed"
                )
            )
        }

        def of(address: str) -> int:
            return serving.get(address, 1)

        events = s.scalars(
            select(ChainEvent)
            .where(ChainEvent.contract == "DigitalCash", ChainEvent.name == "Transfer")
            .order_by(ChainEvent.block_number, ChainEvent.log_index)
        ).all()
        for e in events:
            src, dst, value = e.args["from"], e.args["to"], int(e.args["value"])
            if src == ZERO:
                if of(dst) == institution:
                    lines.append(_line(e, "issued", dst, ZERO, institution, value))
                    totals["issued_fen"] += value
                continue
            if dst == ZERO:
                if of(src) == institution:
                    lines.append(_line(e, "redeemed", src, ZERO, institution, value))
                    totals["redeemed_fen"] += value
                continue
            a, b = of(src), of(dst)
            if a == institution and b == institution:
                lines.append(_line(e, "internal", src, dst, b, value))
                totals["internal_fen"] += value
            elif a == institution:
                lines.append(_line(e, "out", src, dst, b, value))
                totals["paid_out_fen"] += value
            elif b == institution:
                lines.append(_line(e, "in", dst, src, a, value))
                totals["paid_in_fen"] += value
        rows = s.execute(
            select(
                BankEntry.id, BankEntry.memo, BankEntry.created_at, BankAccount.masked, BankPosting.amount_fen
            )
            .join(BankPosting, BankPosting.entry_id == BankEntry.id)
            .join(BankAccount, BankAccount.id == BankPosting.account_id)
            .where(BankEntry.institution == institution)
            .order_by(BankEntry.id, BankPosting.id)
            .limit(LIMIT)
        ).all()
    journal = [
        JournalLine(entry=i, memo=m, account=acct, amount_fen=amt, at=at) for i, m, at, acct, amt in rows
    ]
    return StatementOut(institution=institution, chain=lines[-LIMIT:], journal=journal, totals=totals)


def _line(
    e: ChainEvent, side: str, wallet: str, other: str, other_institution: int, value: int
) -> StatementLine:
    return StatementLine(
        tx_hash=e.tx_hash,
        side=side,
        wallet=wallet,
        counterparty=other,
        counterparty_institution=0 if other == ZERO else other_institution,
        amount_fen=value,
    )
