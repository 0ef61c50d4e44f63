"""Daily merchant statements and settlement files (对账单): one merchant's Beijing day, per payment
code and per gateway terminal -- payments, what voucher programmes paid of them, refunds (and
their voucher part), net -- in fen and yuan, as JSON or CSV.

What counts is what the chain confirmed: confirmed code payments (a card payment of a code only if
settled), the settled (and the covered part of a shortfall) card payments of the merchant's
terminals' uploads, and confirmed refunds, each by the Beijing day the service recorded it. The
statement lists every transaction it counts, so a reader checks it against the chain: the
merchant's Transfer events in those transactions add up to ``totals.net_fen`` (a test does)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from services.common.context import ServiceContext
from services.common.models import CodePayment, GatewayTerminal, Operation, PaymentCode
from services.common.refunds import MerchantRefund
from services.gateway.families.hardwallet.models import OfflineUpload
from services.operator.families.paycodes import service as paycodes
from services.operator.families.refunds import service
from services.operator.families.refunds.schemas import Statement, StatementLine

CSV_COLUMNS = (
    "kind",
    "id",
    "payments",
    "paid_fen",
    "voucher_fen",
    "refunds",
    "refunded_fen",
    "refunded_voucher_fen",
    "net_fen",
    "paid_yuan",
    "refunded_yuan",
    "net_yuan",
)


def yuan(fen: int) -> str:
    return str((Decimal(fen) / 100).quantize(Decimal("0.01")))


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants a Beijing day starts and ends at (naive UTC: how the tables store time)."""
    start = datetime(day.year, day.month, day.day) - service.BEIJING
    return start, start + timedelta(days=1)


class _Line:
    def __init__(self, kind: str, ident: str) -> None:
        self.kind, self.id = kind, ident
        self.payments = self.paid = self.voucher = self.refunds = self.refunded = self.refunded_voucher = 0

    def out(self) -> StatementLine:
        net = self.paid - self.refunded
        return StatementLine(
            kind=self.kind,
            id=self.id,
            payments=self.payments,
            paid_fen=self.paid,
            voucher_fen=self.voucher,
            refunds=self.refunds,
            refunded_fen=self.refunded,
            refunded_voucher_fen=self.refunded_voucher,
            net_fen=net,
            paid_yuan=yuan(self.paid),
            refunded_yuan=yuan(self.refunded),
            net_yuan=yuan(net),
        )


def _in_day(moment: datetime, start: datetime, end: datetime) -> bool:
    naive = moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment
    return start <= naive < end


def statement(ctx: ServiceContext, merchant: str, day: date) -> Statement:
    """``merchant``'s statement of the Beijing ``day``."""
    start, end = day_bounds(day)
    lines: dict[tuple[str, str], _Line] = {}
    txs: list[str] = []

    def line(kind: str, ident: str) -> _Line:
        return lines.setdefault((kind, ident), _Line(kind, ident))

    service.sync(ctx)
    with ctx.db.session() as s:
        codes = {c.id: c for c in s.scalars(select(PaymentCode).where(PaymentCode.merchant == merchant))}
        for code_id in codes:  # payments brought up to date with their operations first
            paycodes.sync(ctx, code_id)
        if codes:
            payments = s.scalars(
                select(CodePayment)
                .where(CodePayment.code_id.in_(list(codes)), CodePayment.status == "confirmed")
                .order_by(CodePayment.id)
            ).all()
        else:
            payments = []
        for p in payments:
            if not _in_day(p.created_at, start, end):
                continue
            ln = line("code", p.code_id)
            ln.payments += 1
            ln.paid += p.amount_fen
            if p.form == "voucher":
                op = s.get(Operation, p.operation_id)
                for e in ((op.result if op else None) or {}).get("events", []):
                    if e.get("name") == "Spent" and e["args"].get("holder") == p.payer:
                        ln.voucher += int(e["args"]["voucher"])
            if p.tx_hash:
                txs.append(p.tx_hash)
        refunds = s.scalars(
            select(MerchantRefund)
            .where(MerchantRefund.merchant == merchant, MerchantRefund.status == "confirmed")
            .order_by(MerchantRefund.id)
        ).all()
        for r in refunds:
            if not _in_day(r.created_at, start, end):
                continue
            if r.payment_kind == "code":
                ln = line("code", r.code_id or r.payment_ref)
            else:
                ln = line("terminal", r.terminal_id or r.payment_ref)
            ln.refunds += 1
            ln.refunded += r.amount_fen
            ln.refunded_voucher += r.voucher_fen or 0
            if r.tx_hash:
                txs.append(r.tx_hash)
        terminals = s.scalars(select(GatewayTerminal).where(GatewayTerminal.merchant == merchant)).all()
        for t in terminals:
            uploads = s.scalars(
                select(OfflineUpload).where(
                    OfflineUpload.terminal_id == t.id, OfflineUpload.results.is_not(None)
                )
            ).all()
            for u in uploads:
                if not _in_day(u.created_at, start, end):
                    continue
                counted = False
                for r in (u.results or {}).get("results", []):
                    if r["merchant"] == merchant and r["paid_fen"] > 0:
                        ln = line("terminal", t.id)
                        ln.payments += 1
                        ln.paid += int(r["paid_fen"])
                        counted = True
                op = s.get(Operation, u.operation_id)
                if counted and op is not None and op.tx_hash:
                    txs.append(op.tx_hash)
    total = _Line("total", merchant)
    for ln in lines.values():
        for attr in ("payments", "paid", "voucher", "refunds", "refunded", "refunded_voucher"):
            setattr(total, attr, getattr(total, attr) + getattr(ln, attr))
    return Statement(
        merchant=merchant,
        day=day.isoformat(),
        lines=[lines[k].out() for k in sorted(lines)],
        totals=total.out(),
        transactions=sorted(set(txs)),
    )


def as_csv(st: Statement) -> str:
    """The settlement file: a header, one row per code and terminal, then the total row."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for ln in [*st.lines, st.totals]:
        row = ln.model_dump()
        w.writerow([row[c] for c in CSV_COLUMNS])
    return buf.getvalue()
