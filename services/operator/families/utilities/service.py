"""Utility bills: billers and their account-number rule, bills, paying one (directly, by a
payment code, by auto-debit), the scheduled auto-debit run and the daily settlement file.

One payment per bill: (biller, account, period) is unique, and every channel claims the bill
``open`` -> ``paying`` in one conditional UPDATE before it sends anything; a channel whose payment
failed (or whose code expired unpaid) gives the bill back (``_sync``). The chain backs it: a code's
bill reference pays once, and an auto-debit's QuickPay order reference is the bill's own
(``biller/account/period``), so even a second pull could not pay it twice.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from chain.clients.token import Kind
from services.common.context import ServiceContext
from services.common.keys import Role
from services.common.models import ApiKey, Operation
from services.common.operations import Operations, perform
from services.common.problems import Problem
from services.operator.families.paycodes import service as paycodes
from services.operator.families.paycodes.schemas import CodeIn
from services.operator.families.utilities.models import AutoDebit, Biller, UtilityBill
from services.operator.families.utilities.schemas import (
    AutoDebitIn,
    AutoDebitOut,
    BillerIn,
    BillerOut,
    BillIn,
    BillOut,
    RunOut,
)

BEIJING = timedelta(hours=8)
#: Failed auto-debits of one bill before the worker stops trying (the resident pays it another way).
MAX_ATTEMPTS = 3
SETTLEMENT_COLUMNS = (
    "biller",
    "account",
    "period",
    "amount_fen",
    "channel",
    "tx_hash",
    "block_number",
    "paid_at",
)


# -- billers -----------------------------------------------------------------------------------


def biller_out(b: Biller) -> BillerOut:
    return BillerOut(
        id=b.id,
        name=b.name,
        kind=b.kind,
        wallet=b.wallet,
        account_pattern=b.account_pattern,
        mandate_cap_fen=b.mandate_cap_fen,
        debit_day=b.debit_day,
    )


def register_biller(ctx: ServiceContext, body: BillerIn) -> Biller:
    """A biller with a valid account rule and a registered, custodial merchant wallet (the service
    signs its auto-debit pulls)."""
    try:
        re.compile(body.account_pattern)
    except re.error as exc:
        raise Problem(
            422, "invalid-account-pattern", "The account pattern is not a regular expression", str(exc)
        ) from None
    if ctx.cash.wallet(body.wallet).kind != Kind.MERCHANT:
        raise Problem(
            422, "not-a-merchant-wallet", "A biller's wallet is a registered merchant wallet", body.wallet
        )
    ctx.custodial(body.wallet)
    row = Biller(**body.model_dump())
    with ctx.db.session() as s:
        s.add(row)
        try:
            s.commit()
        except IntegrityError:
            raise Problem(409, "biller-exists", "A biller with this id exists", body.id) from None
        s.refresh(row)
    return row


def biller(ctx: ServiceContext, biller_id: str) -> Biller:
    with ctx.db.session() as s:
        row = s.get(Biller, biller_id)
    if row is None:
        raise Problem(404, "biller-not-found", "Biller not found", biller_id)
    return row


def admit(key: ApiKey, *roles: Role) -> None:
    """Decided before any lookup: a merchant key (for its own biller, checked next) or ``roles``."""
    if key.role != Role.MERCHANT and key.role not in {str(r) for r in roles}:
        raise Problem(403, "forbidden-role", "This key's role may not do this", f"role {key.role!r}")


def may_act(key: ApiKey, b: Biller, *roles: Role) -> None:
    """The biller's own merchant key, or a key with one of ``roles``."""
    if key.role == Role.MERCHANT:
        if key.wallet != b.wallet:
            raise Problem(403, "not-your-biller", "A merchant key acts only for its own biller")
        return
    if key.role not in {str(r) for r in roles}:
        raise Problem(403, "forbidden-role", "This key's role may not do this", f"role {key.role!r}")


def check_account(b: Biller, account: str) -> None:
    if re.fullmatch(b.account_pattern, account) is None:
        raise Problem(
            422,
            "invalid-account-number",
            "Not an account number of this biller",
            f"{account!r} does not match {b.account_pattern!r}",
        )


# -- bills -------------------------------------------------------------------------------------


def create_bill(ctx: ServiceContext, b: Biller, body: BillIn) -> UtilityBill:
    check_account(b, body.account)
    row = UtilityBill(biller_id=b.id, account=body.account, period=body.period, amount_fen=body.amount_fen)
    with ctx.db.session() as s:
        s.add(row)
        try:
            s.commit()
        except IntegrityError:
            raise Problem(
                409, "bill-exists", "This account has a bill for this period", body.period
            ) from None
        s.refresh(row)
    return row


def bill_out(ctx: ServiceContext, row: UtilityBill) -> BillOut:
    row = _sync(ctx, row)
    return BillOut(
        id=row.id,
        biller=row.biller_id,
        account=row.account,
        period=row.period,
        amount_fen=row.amount_fen,
        status=row.status,  # type: ignore[arg-type]
        channel=row.channel,
        code_id=row.code_id,
        operation_id=row.operation_id,
        tx_hash=row.tx_hash,
        block_number=row.block_number,
        paid_at=row.paid_at,
    )


def account_bills(ctx: ServiceContext, b: Biller, account: str) -> list[BillOut]:
    check_account(b, account)
    with ctx.db.session() as s:
        rows = s.scalars(
            select(UtilityBill)
            .where(UtilityBill.biller_id == b.id, UtilityBill.account == account)
            .order_by(UtilityBill.period)
        ).all()
    return [bill_out(ctx, r) for r in rows]


def _sync(ctx: ServiceContext, row: UtilityBill) -> UtilityBill:
    """A ``paying`` bill brought up to date with its channel: paid once its payment confirmed,
    ``open`` again once it failed (or its code expired unpaid)."""
    if row.status != "paying":
        return row
    tx_hash: str | None = None
    block: int | None = None
    if row.channel == "code":
        assert row.code_id is not None
        code = paycodes.code_out(ctx, row.code_id)
        if code.status == "paid":
            paid = [p for p in code.payments if p.status == "confirmed"]
            with ctx.db.session() as s:
                op = s.get(Operation, paid[0].operation_id)
            assert op is not None
            tx_hash, block = op.tx_hash, op.block_number
        elif code.status == "expired":
            return _give_back(ctx, row)
        elif code.status == "short":  # the card covered part of it: open again for the rest
            covered = sum(p.settled_fen or 0 for p in code.payments if p.status == "shortfall")
            return _give_back(ctx, row, amount_fen=row.amount_fen - covered)
        else:
            return row
    else:
        with ctx.db.session() as s:
            op = s.get(Operation, row.operation_id)
        if op is None or op.status == "pending":
            return row
        if op.status == "failed":
            return _give_back(ctx, row)
        tx_hash, block = op.tx_hash, op.block_number
    assert block is not None
    paid_at = int(ctx.w3.eth.get_block(block)["timestamp"])
    with ctx.db.session() as s:
        s.execute(
            update(UtilityBill)
            .where(UtilityBill.id == row.id, UtilityBill.status == "paying")
            .values(status="paid", tx_hash=tx_hash, block_number=block, paid_at=paid_at)
        )
        s.commit()
        fresh = s.get(UtilityBill, row.id)
    assert fresh is not None
    return fresh


def _give_back(ctx: ServiceContext, row: UtilityBill, amount_fen: int | None = None) -> UtilityBill:
    """``paying`` -> ``open`` again; ``amount_fen``: what is still owed after a partial payment."""
    attempts = row.attempts + (1 if row.channel == "autodebit" else 0)
    owed = row.amount_fen if amount_fen is None else amount_fen
    with ctx.db.session() as s:
        s.execute(
            update(UtilityBill)
            .where(UtilityBill.id == row.id, UtilityBill.status == "paying")
            .values(
                status="open",
                channel=None,
                operation_id=None,
                code_id=None,
                attempts=attempts,
                amount_fen=owed,
            )
        )
        s.commit()
        fresh = s.get(UtilityBill, row.id)
    assert fresh is not None
    return fresh


def _claim(ctx: ServiceContext, bill_id: int, channel: str, **values: Any) -> None:
    """Take the bill for ``channel`` (``open`` -> ``paying``) or refuse: one payment per bill."""
    with ctx.db.session() as s:
        taken = s.execute(
            update(UtilityBill)
            .where(UtilityBill.id == bill_id, UtilityBill.status == "open")
            .values(status="paying", channel=channel, **values)
        ).rowcount  # type: ignore[attr-defined]
        s.commit()
    if taken != 1:
        raise Problem(409, "bill-not-open", "The bill is paid or being paid", str(bill_id))


def open_bill(ctx: ServiceContext, b: Biller, account: str, period: str | None) -> UtilityBill:
    """The account's bill of ``period``, or its oldest open one."""
    check_account(b, account)
    q = select(UtilityBill).where(UtilityBill.biller_id == b.id, UtilityBill.account == account)
    with ctx.db.session() as s:
        rows = s.scalars(q.order_by(UtilityBill.period)).all()
    rows = [_sync(ctx, r) for r in rows]
    if period is not None:
        match = [r for r in rows if r.period == period]
        if not match:
            raise Problem(404, "bill-not-found", "This account has no bill for this period", period)
        return match[0]
    open_ = [r for r in rows if r.status == "open"]
    if not open_:
        raise Problem(409, "no-open-bill", "This account has no open bill", account)
    return open_[0]


def _op_id(ctx: ServiceContext, key: ApiKey, idem: str) -> str:
    with ctx.db.session() as s:
        op_id = s.scalar(
            select(Operation.id).where(Operation.api_key_id == key.id, Operation.idempotency_key == idem)
        )
    assert op_id is not None
    return op_id


def pay_bill(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, b: Biller, bill: UtilityBill, payer: str
) -> BillOut:
    """The resident's custodial wallet pays the bill to the biller (claimed first)."""
    ctx.custodial(payer)
    request = {
        "bill": bill.id,
        "biller": b.id,
        "account": bill.account,
        "period": bill.period,
        "payer": payer,
        "biller_wallet": b.wallet,
        "amount_fen": bill.amount_fen,
    }

    def claim() -> dict[str, Any]:
        _claim(ctx, bill.id, "direct", operation_id=_op_id(ctx, key, idem))
        return {}

    try:
        perform(ops, "utilities.bill.pay", key, idem, request, target=f"{b.id}/{bill.account}", prepare=claim)
    finally:
        bill = _reload(ctx, bill.id)
    return bill_out(ctx, bill)


def _reload(ctx: ServiceContext, bill_id: int) -> UtilityBill:
    with ctx.db.session() as s:
        row = s.get(UtilityBill, bill_id)
    assert row is not None
    return _sync(ctx, row)


def code_for_bill(
    ctx: ServiceContext, key: ApiKey, b: Biller, bill: UtilityBill, expires_in_s: int
) -> BillOut:
    """A payment code (paycodes family) for the bill: any payer form pays it there; the bill's
    reference ``account/period`` is held by one code of the biller at a time."""
    _claim(ctx, bill.id, "code")
    try:
        code_id = paycodes.create_code(
            ctx,
            key,
            None,
            CodeIn(
                merchant=b.wallet,
                amount_fen=bill.amount_fen,
                reference=f"{bill.account}/{bill.period}",
                expires_in_s=expires_in_s,
            ),
        )
    except Exception:
        with ctx.db.session() as s:
            s.execute(
                update(UtilityBill).where(UtilityBill.id == bill.id).values(status="open", channel=None)
            )
            s.commit()
        raise
    with ctx.db.session() as s:
        s.execute(update(UtilityBill).where(UtilityBill.id == bill.id).values(code_id=code_id))
        s.commit()
    return bill_out(ctx, _reload(ctx, bill.id))


# -- auto-debits -------------------------------------------------------------------------------


def autodebit_out(row: AutoDebit) -> AutoDebitOut:
    return AutoDebitOut(
        id=row.id,
        biller=row.biller_id,
        account=row.account,
        holder=row.holder,
        mandate_id=row.mandate_id,
        revoked=row.revoked,
        operation_id=row.operation_id,
    )


def set_up_autodebit(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, b: Biller, body: AutoDebitIn
) -> AutoDebitOut:
    """The resident's custodial wallet grants the biller a QuickPay mandate capped at the biller's
    cap (per payment and per day); the worker pulls each due bill under it."""
    check_account(b, body.account)
    ctx.custodial(body.holder)
    with ctx.db.session() as s:
        live = s.scalar(
            select(AutoDebit).where(
                AutoDebit.biller_id == b.id, AutoDebit.account == body.account, AutoDebit.revoked.is_(False)
            )
        )
    request = {
        "biller": b.id,
        "account": body.account,
        "holder": body.holder,
        "biller_wallet": b.wallet,
        "cap_fen": b.mandate_cap_fen,
        "expires_at": body.expires_at,
    }
    if live is not None and live.operation_id != _existing(ctx, key, idem):
        raise Problem(409, "autodebit-exists", "This account has an auto-debit", str(live.id))
    op, _ = perform(ops, "utilities.mandate.grant", key, idem, request, target=f"{b.id}/{body.account}")
    mandate_id = next(
        (int(e["args"]["id"]) for e in (op.result or {}).get("events", []) if e["name"] == "MandateGranted"),
        None,
    )
    with ctx.db.session() as s:
        row = s.scalar(select(AutoDebit).where(AutoDebit.operation_id == op.id))
        if row is None:
            s.execute(
                update(AutoDebit)
                .where(AutoDebit.biller_id == b.id, AutoDebit.account == body.account)
                .values(account=f"{body.account}#{op.id[:8]}")  # a revoked one gives up the account
            )
            row = AutoDebit(
                biller_id=b.id,
                account=body.account,
                holder=body.holder,
                mandate_id=mandate_id,
                operation_id=op.id,
                api_key_id=key.id,
            )
            s.add(row)
            s.commit()
            s.refresh(row)
    return autodebit_out(row)


def _existing(ctx: ServiceContext, key: ApiKey, idem: str) -> str | None:
    with ctx.db.session() as s:
        return s.scalar(
            select(Operation.id).where(Operation.api_key_id == key.id, Operation.idempotency_key == idem)
        )


def revoke_autodebit(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, b: Biller, autodebit_id: int
) -> AutoDebitOut:
    with ctx.db.session() as s:
        row = s.get(AutoDebit, autodebit_id)
    if row is None or row.biller_id != b.id:
        raise Problem(404, "autodebit-not-found", "Auto-debit not found", str(autodebit_id))
    if row.mandate_id is not None:
        request = {"mandate": row.mandate_id, "holder": row.holder}
        perform(ops, "utilities.mandate.revoke", key, idem, request, target=str(row.mandate_id))
    with ctx.db.session() as s:
        s.execute(update(AutoDebit).where(AutoDebit.id == autodebit_id).values(revoked=True))
        s.commit()
        fresh = s.get(AutoDebit, autodebit_id)
    assert fresh is not None
    return autodebit_out(fresh)


def beijing_date(ts: int) -> date:
    return (datetime.fromtimestamp(ts, UTC) + BEIJING).date()


def is_due(b: Biller, period: str, today: date) -> bool:
    year, month = (int(p) for p in period.split("-"))
    return date(year, month, b.debit_day) <= today


def run_due(ctx: ServiceContext, ops: Operations) -> RunOut:
    """The scheduled run (the operator's background worker, or ``POST /v1/utilities/autodebit-runs``):
    every open bill of an account with a live auto-debit whose debit day (Beijing, chain time) has
    come is pulled under its mandate. The operation's idempotency key is the bill's
    (``autodebit:<biller>:<account>:<period>:<attempt>``, under the key that set the auto-debit
    up), so a run after a restart replays what an interrupted run sent instead of paying again; a
    new attempt follows only a failed one, and the chain refuses a second pull of one bill anyway."""
    today = beijing_date(int(ctx.w3.eth.get_block("latest")["timestamp"]))
    paid = failed = skipped = 0
    with ctx.db.session() as s:
        debits = s.scalars(
            select(AutoDebit).where(AutoDebit.revoked.is_(False), AutoDebit.mandate_id.is_not(None))
        ).all()
    for debit in debits:
        b = biller(ctx, debit.biller_id)
        with ctx.db.session() as s:
            bills = s.scalars(
                select(UtilityBill)
                .where(UtilityBill.biller_id == b.id, UtilityBill.account == debit.account)
                .order_by(UtilityBill.period)
            ).all()
            key = s.get(ApiKey, debit.api_key_id)
        assert key is not None
        for bill in bills:
            bill = _sync(ctx, bill)
            if bill.status != "open" or not is_due(b, bill.period, today) or bill.attempts >= MAX_ATTEMPTS:
                skipped += bill.status == "open"
                continue
            idem = f"autodebit:{b.id}:{bill.account}:{bill.period}:{bill.attempts}"
            request: dict[str, Any] = {
                "bill": bill.id,
                "mandate": debit.mandate_id,
                "holder": debit.holder,
                "biller_wallet": b.wallet,
                "amount_fen": bill.amount_fen,
                "reference": f"{b.id}/{bill.account}/{bill.period}",
            }
            bill_id = bill.id

            def claim(bill_id: int = bill_id, idem: str = idem, key: ApiKey = key) -> dict[str, Any]:
                _claim(ctx, bill_id, "autodebit", operation_id=_op_id(ctx, key, idem))
                return {}

            try:
                op, replayed = perform(
                    ops,
                    "utilities.autodebit",
                    key,
                    idem,
                    request,
                    target=f"{b.id}/{bill.account}",
                    prepare=claim,
                )
            except Problem:
                row = _reload(ctx, bill_id)
                if row.status == "open" and row.attempts == bill.attempts:  # a replayed failure
                    with ctx.db.session() as s:
                        s.execute(
                            update(UtilityBill)
                            .where(UtilityBill.id == bill_id)
                            .values(attempts=bill.attempts + 1)
                        )
                        s.commit()
                failed += 1
                continue
            if replayed:  # an earlier run sent it and what it recorded of the bill was lost: record it again
                with ctx.db.session() as s:
                    s.execute(
                        update(UtilityBill)
                        .where(UtilityBill.id == bill_id, UtilityBill.status == "open")
                        .values(status="paying", channel="autodebit", operation_id=op.id)
                    )
                    s.commit()
            row = _reload(ctx, bill_id)
            paid += row.status == "paid"
    return RunOut(paid=paid, failed=failed, skipped=skipped)


# -- the biller's daily settlement file ---------------------------------------------------------


def settlement_rows(ctx: ServiceContext, b: Biller, day: date) -> list[dict[str, Any]]:
    """The bills of ``b`` paid on ``day`` (Beijing, by their block's time), in block order."""
    start = int((datetime(day.year, day.month, day.day, tzinfo=UTC) - BEIJING).timestamp())
    with ctx.db.session() as s:
        paying = s.scalars(
            select(UtilityBill).where(UtilityBill.biller_id == b.id, UtilityBill.status == "paying")
        ).all()
    for row in paying:
        _sync(ctx, row)
    with ctx.db.session() as s:
        rows = s.scalars(
            select(UtilityBill)
            .where(
                UtilityBill.biller_id == b.id,
                UtilityBill.status == "paid",
                UtilityBill.paid_at >= start,
                UtilityBill.paid_at < start + 86_400,
            )
            .order_by(UtilityBill.block_number, UtilityBill.id)
        ).all()
    return [
        {
            "biller": r.biller_id,
            "account": r.account,
            "period": r.period,
            "amount_fen": r.amount_fen,
            "channel": r.channel,
            "tx_hash": r.tx_hash,
            "block_number": r.block_number,
            "paid_at": r.paid_at,
        }
        for r in rows
    ]


def settlement_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SETTLEMENT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
