"""The spot-check robot (抽检): once a Beijing day, a 1-fen probe payment to every active merchant
code, refunded at once, and a coverage and pass-rate report per area and merchant category (the
pilot's target: coverage and spot-check pass rate above 85%).

Targets: every static payment code that has not expired (a counter's code; a dynamic code is one
customer's bill and is never probed), and every gateway terminal. A code is probed end to end: the
robot's own custodial wallet pays it 1 fen (``code.pay``, the custodial form) and the merchant's key
refunds the fen (``refunds.refund``), both through ``Operations`` like any payment; it passes when
both confirmed. A terminal is listed and counted but *skipped* (probing one needs a probe card
signing at the device, which the robot does not have): the coverage says so rather than hide it.
A code's area is the location of its merchant's first terminal ("unassigned" without one).

Idempotent per day: each (day, target) is one row (a unique constraint), so a second run -- the
worker's next round, the route, a restart -- probes only what the day's earlier runs did not reach,
and every operation's idempotency key names the day and the target. The robot acts with an API key
of its own (role operator, label ``spot-check robot``; its clear key is never kept)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.common.context import ServiceContext
from services.common.keys import Role, create_key
from services.common.models import ApiKey, CodePayment, GatewayTerminal, PaymentCode
from services.common.operations import Operations, perform
from services.common.problems import Problem
from services.operator.families.paycodes import service as paycodes
from services.operator.families.paycodes.schemas import PayIn
from services.operator.families.refunds import service
from services.operator.families.refunds.models import SpotCheck
from services.operator.families.refunds.schemas import SpotCheckGroup, SpotCheckOut, SpotCheckReport

ROBOT_LABEL = "spot-check robot"
PROBE_FEN = 1
TARGET = 0.85


def today() -> date:
    return date.fromisoformat(service.beijing_day(datetime.now(UTC)))


def robot_key(ctx: ServiceContext) -> ApiKey:
    """The robot's own API key (created once; nobody holds its clear text)."""
    with ctx.db.session() as s:
        key = s.scalar(
            select(ApiKey)
            .where(ApiKey.label == ROBOT_LABEL, ApiKey.role == str(Role.OPERATOR))
            .order_by(ApiKey.id)
        )
        if key is None:
            key, _ = create_key(s, Role.OPERATOR, ROBOT_LABEL)
            s.commit()
        s.refresh(key)
        s.expunge(key)
        return key


def probe_wallet(ctx: ServiceContext, ops: Operations, key: ApiKey) -> str:
    """The robot's custodial payer wallet (registered once, by the same idempotency key)."""
    from services.operator.families.cash import service as cash
    from services.operator.families.cash.schemas import WalletIn

    body = WalletIn(kind="personal", tier=2, display_name=ROBOT_LABEL, identity="xcpay:spot-check-robot")
    op = cash.register_wallet(ctx, ops, key, "spotcheck:probe-wallet", body)
    return str(op.request["address"])


def _fund(ctx: ServiceContext, ops: Operations, key: ApiKey, wallet: str, day: str, need: int) -> None:
    if ctx.cash.balance_of(wallet) >= need:
        return
    body = {"to": wallet, "amount_fen": max(need, 100)}
    perform(ops, "cash.issue", key, f"spotcheck:{day}:fund:{need}", body, target=wallet)


def _targets(ctx: ServiceContext) -> list[dict[str, Any]]:
    now = datetime.now(UTC).timestamp()
    with ctx.db.session() as s:
        terminals = s.scalars(
            select(GatewayTerminal).order_by(GatewayTerminal.created_at, GatewayTerminal.id)
        ).all()
        area: dict[str, str] = {}
        for t in terminals:
            area.setdefault(t.merchant, t.location)
        codes = s.scalars(
            select(PaymentCode).where(PaymentCode.kind == "static").order_by(PaymentCode.id)
        ).all()
        out = [
            {
                "kind": "code",
                "id": c.id,
                "merchant": c.merchant,
                "category": c.category,
                "area": area.get(c.merchant, "unassigned"),
            }
            for c in codes
            if c.expires_at is None or c.expires_at > now
        ]
        out += [
            {
                "kind": "terminal",
                "id": t.id,
                "merchant": t.merchant,
                "category": t.category,
                "area": t.location,
            }
            for t in terminals
        ]
    return out


def run(ctx: ServiceContext, ops: Operations, day: date | None = None) -> SpotCheckReport:
    """Probe every target not probed yet on ``day`` (today, Beijing time), then report the day."""
    d = (day or today()).isoformat()
    key = robot_key(ctx)
    targets = _targets(ctx)
    fresh: list[tuple[int, dict[str, Any]]] = []
    for t in targets:
        with ctx.db.session() as s:
            row = SpotCheck(
                day=d,
                target_kind=t["kind"],
                target_id=t["id"],
                merchant=t["merchant"],
                category=t["category"],
                area=t["area"],
                outcome="running" if t["kind"] == "code" else "skipped",
                detail=None if t["kind"] == "code" else "terminal probes need a probe card at the device",
            )
            s.add(row)
            try:
                s.commit()
            except IntegrityError:  # probed already today (or being probed by a concurrent run)
                s.rollback()
                continue
            if t["kind"] == "code":
                fresh.append((row.id, t))
    if fresh:
        wallet = probe_wallet(ctx, ops, key)
        _fund(ctx, ops, key, wallet, d, PROBE_FEN * len(fresh))
        for row_id, t in fresh:
            outcome, detail, refund_id = _probe_code(ctx, ops, key, wallet, d, t["id"])
            with ctx.db.session() as s:
                probe = s.get(SpotCheck, row_id)
                assert probe is not None
                probe.outcome, probe.detail, probe.refund_id = outcome, detail, refund_id
                s.commit()
    return report(ctx, date.fromisoformat(d))


def _probe_code(
    ctx: ServiceContext, ops: Operations, key: ApiKey, wallet: str, day: str, code_id: str
) -> tuple[str, str | None, int | None]:
    """Pay the code 1 fen and refund it: (outcome, detail, refund id)."""
    try:
        code = paycodes.find_code(ctx, code_id)
        body = PayIn(form="custodial", payer=wallet, amount_fen=PROBE_FEN)
        op = paycodes.pay(ctx, ops, key, f"spotcheck:{day}:code:{code_id}:pay", code, body)
        if op.status != "confirmed":
            return "failed", f"the probe payment is {op.status}", None
        with ctx.db.session() as s:
            payment = s.scalar(select(CodePayment.id).where(CodePayment.operation_id == op.id))
        assert payment is not None
        refund = service.refund_code_payment(
            ctx, ops, key, f"spotcheck:{day}:code:{code_id}:refund", code, payment, PROBE_FEN, "spot check"
        )
    except Problem as problem:
        return "failed", f"{problem.slug}: {problem.detail or problem.title}", None
    if refund.status != "confirmed":
        return "failed", f"the probe refund is {refund.status}", refund.id
    return "passed", None, refund.id


def _group(rows: list[SpotCheck]) -> SpotCheckGroup:
    probed = [r for r in rows if r.outcome in ("passed", "failed")]
    passed = sum(1 for r in probed if r.outcome == "passed")
    return SpotCheckGroup(
        targets=len(rows),
        probed=len(probed),
        passed=passed,
        coverage=round(len(probed) / len(rows), 4) if rows else 0.0,
        pass_rate=round(passed / len(probed), 4) if probed else 0.0,
    )


def report(ctx: ServiceContext, day: date) -> SpotCheckReport:
    """The day's probes: coverage (probed / targets) and pass rate (passed / probed), overall, per
    area and per merchant category."""
    with ctx.db.session() as s:
        rows = list(
            s.scalars(select(SpotCheck).where(SpotCheck.day == day.isoformat()).order_by(SpotCheck.id))
        )
    by_area: dict[str, list[SpotCheck]] = defaultdict(list)
    by_category: dict[str, list[SpotCheck]] = defaultdict(list)
    for r in rows:
        by_area[r.area].append(r)
        by_category[str(r.category)].append(r)
    total = _group(rows)
    return SpotCheckReport(
        day=day.isoformat(),
        targets=total.targets,
        probed=total.probed,
        passed=total.passed,
        coverage=total.coverage,
        pass_rate=total.pass_rate,
        meets_target=total.coverage > TARGET and total.pass_rate > TARGET,
        by_area={k: _group(v) for k, v in sorted(by_area.items())},
        by_category={k: _group(v) for k, v in sorted(by_category.items())},
        checks=[
            SpotCheckOut(
                day=r.day,
                target_kind=r.target_kind,
                target_id=r.target_id,
                merchant=r.merchant,
                category=r.category,
                area=r.area,
                outcome=r.outcome,
                detail=r.detail,
            )
            for r in rows
        ],
    )
