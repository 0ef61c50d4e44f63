"""The spot-check robot (抽检): once a Beijing day, a 1-fen probe payment to every active merchant
code and terminal, refunded at once, and a coverage and pass-rate report per area and merchant
category (the pilot's target: coverage and spot-check pass rate above 85%).

Targets: every static payment code that has not expired (a counter's code; a dynamic code is one
customer's bill and is never probed), and every gateway terminal whose key is not revoked. A code
is probed end to end: the robot's own custodial wallet pays it 1 fen (``code.pay``, the custodial
form) and the merchant's key refunds the fen (``refunds.refund``), both through ``Operations``
like any payment; it passes when both confirmed. A code's area is the location of its merchant's
first terminal ("unassigned" without one).

A terminal is probed with the robot's **probe card**: a hard wallet whose holder is the robot's
wallet, issued and loaded by the operator on the first run that needs it (``spotcheck.card.register``
by the operator key, which holds the settlement contract's OPERATOR_ROLE; ``spotcheck.card.load``
from the robot's wallet, funded by ``cash.issue``). Its key is derived from the robot wallet's
custodial key (keccak of a label and that key), so it is held exactly where that key is, encrypted
at rest, and survives restarts. The card signs a 1-fen ``Payment`` to the terminal's merchant and
the payment is settled as that terminal's upload would be (``offline_payments.upload``: the same
``settle`` call, the same upload row and stored outcomes), then refunded through the card-payment
refund path (``services/common/refunds.py``) to the card's holder, the robot's wallet. A settlement
the contract rejects (the merchant frozen or not registered, ``merchant-refused`` with the token's
error) or a refund that fails is a *fail*, with the reason.

Idempotent per day: each (day, target) is one row (a unique constraint), stored as ``running``
before anything is signed: a second run -- the worker's next round, the route, a restart --
probes only what the day's earlier runs did not finish, and every operation's idempotency key
names the day and the target. A terminal probe's card counter is its row's id and its signed time
the row's creation, so a probe resumed after a restart signs the very same payment: its settlement
replays (or the contract answers ``duplicate``, nothing moves twice) and its refund replays. The
robot acts with an API key of its own (role operator, label ``spot-check robot``; its clear key is
never kept)."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from chain.clients.hardwallet import Payment, sign_payment
from chain.exceptions import ContractError
from services.common import refunds as core
from services.common.context import ServiceContext
from services.common.keys import Role, create_key
from services.common.models import (
    ApiKey,
    CodePayment,
    GatewayCard,
    GatewayTerminal,
    Operation,
    PaymentCode,
)
from services.common.operations import Operations, perform
from services.common.problems import Problem
from services.common.refunds import MerchantRefund
from services.gateway.families.hardwallet.schemas import SignedPaymentIn
from services.gateway.families.hardwallet.service import offline_payments
from services.gateway.families.hardwallet.service import refunds as card_refunds
from services.operator.families.paycodes import service as paycodes
from services.operator.families.paycodes.schemas import PayIn
from services.operator.families.refunds import service
from services.operator.families.refunds.models import SpotCheck
from services.operator.families.refunds.schemas import SpotCheckGroup, SpotCheckOut, SpotCheckReport

ROBOT_LABEL = "spot-check robot"
PROBE_FEN = 1
TARGET = 0.85
CARD_LABEL = b"xcpay spot-check probe card\0"
MIN_TOP_UP = 100  # fen: the robot's wallet and card are topped up by at least this much

log = logging.getLogger("xcpay.operator.spotcheck")
_one_run_at_a_time = threading.Lock()  # the worker's round and the route, in one process


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
    """Issue to the robot's wallet what it lacks of ``need`` (the key names the balance it
    started from, so a later top-up the same day is a new operation, a resumed one the same)."""
    have = ctx.cash.balance_of(wallet)
    if have >= need:
        return
    body = {"to": wallet, "amount_fen": max(need - have, MIN_TOP_UP)}
    perform(ops, "cash.issue", key, f"spotcheck:{day}:fund:{have}:{need}", body, target=wallet)


def probe_card(ctx: ServiceContext, ops: Operations, key: ApiKey, wallet: str, day: str) -> LocalAccount:
    """The robot's probe card (its holder: the robot's wallet), issued by the operator the first
    time it is needed: a ``gateway_cards`` row like any card the gateway issued, and the card
    registered on chain (the day's idempotency key: a refused registration is tried again the
    next day, not replayed for ever)."""
    card = card_account(ctx, wallet)
    with ctx.db.session() as s:
        recorded = s.get(GatewayCard, card.address) is not None
    if recorded and _on_chain(ctx, card.address):
        return card

    def prepare() -> dict[str, Any]:
        with ctx.db.session() as s:
            if s.get(GatewayCard, card.address) is None:
                s.add(GatewayCard(address=card.address, holder=wallet, form="card", serial=ROBOT_LABEL))
                s.commit()
        return {}

    body = {"card": card.address, "holder": wallet, "form": "card", "serial": ROBOT_LABEL}
    idem = f"spotcheck:{day}:probe-card"
    perform(ops, "spotcheck.card.register", key, idem, body, target=card.address, prepare=prepare)
    return card


def card_account(ctx: ServiceContext, wallet: str) -> LocalAccount:
    """The probe card's key, derived from the robot wallet's custodial key (nothing sent)."""
    holder_key = bytes(ctx.custodial(wallet).key)
    card: LocalAccount = Account.from_key(keccak(CARD_LABEL + holder_key))
    return card


def _on_chain(ctx: ServiceContext, card: str) -> bool:
    try:
        ctx.hardwallet.card(card)
    except ContractError:  # HardWalletUnknownCard
        return False
    return True


def _load(
    ctx: ServiceContext, ops: Operations, key: ApiKey, wallet: str, card: str, day: str, need: int, more: int
) -> None:
    """Load the probe card's reserve to at least ``need`` fen from the robot's wallet (which keeps
    ``more`` fen for the codes' probes)."""
    reserve = ctx.hardwallet.card(card).reserve
    if reserve >= need:
        _fund(ctx, ops, key, wallet, day, more)
        return
    amount = max(need - reserve, MIN_TOP_UP)
    _fund(ctx, ops, key, wallet, day, amount + more)
    body = {"card": card, "holder": wallet, "amount_fen": amount}
    perform(ops, "spotcheck.card.load", key, f"spotcheck:{day}:load:{reserve}:{need}", body, target=card)


def _probe_terminal(
    ctx: ServiceContext,
    ops: Operations,
    key: ApiKey,
    card: LocalAccount,
    day: str,
    row_id: int,
    terminal_id: str,
) -> tuple[str, str | None, int | None]:
    """The probe card pays the terminal's merchant 1 fen, settled as the terminal's upload would
    be, and the merchant refunds it to the card's holder: (outcome, detail, refund id)."""
    with ctx.db.session() as s:
        terminal = s.get(GatewayTerminal, terminal_id)
        row = s.get(SpotCheck, row_id)
    assert terminal is not None and row is not None
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    # counter and time from the stored intent: a resumed probe signs the very same payment. The
    # settlement refuses a time before the card's registration (TimeBeforeRegistration), and the
    # first run registers the probe card after its rows were stored: never earlier than that.
    signed_at = max(int(created.timestamp()), ctx.hardwallet.card(card.address).registered_at)
    payment = Payment(card.address, terminal.merchant, PROBE_FEN, row_id, signed_at)
    signed = sign_payment(bytes(card.key), payment, ctx.hardwallet.domain)
    payments = [SignedPaymentIn.model_validate(signed.to_json()).model_dump()]
    prefix = f"spotcheck:{day}:terminal:{terminal_id}"
    try:
        out = offline_payments.upload(
            ctx, ops, key, terminal, f"{prefix}:settle", payments, "spotcheck.settle"
        )
        if out.status != "confirmed":
            return "failed", f"the probe settlement is {out.status}", None
        (result,) = out.results
        if result.outcome not in ("settled", "duplicate"):  # duplicate: settled by an earlier try
            why = result.reason or result.outcome
            if result.detail:
                why += f" ({ctx.tx.errors.name_of(result.detail) or result.detail})"
            return _refused(ctx, terminal.merchant, f"settlement {result.outcome}: {why}")
    except Problem as problem:
        return _refused(ctx, terminal.merchant, f"{problem.slug}: {problem.detail or problem.title}")
    return _refund_probe(ctx, ops, key, card.address, row_id)


def _refused(ctx: ServiceContext, merchant: str, why: str) -> tuple[str, str | None, int | None]:
    """A probe payment refused, nothing moved: skipped when the merchant was frozen or put under
    a hold meanwhile (not its acceptance failing), else a failure."""
    state = merchant_state(ctx, merchant)
    return ("skipped", state, None) if state is not None else ("failed", why, None)


def _targets(ctx: ServiceContext) -> list[dict[str, Any]]:
    now = datetime.now(UTC).timestamp()
    with ctx.db.session() as s:
        terminals = s.scalars(
            select(GatewayTerminal).order_by(GatewayTerminal.created_at, GatewayTerminal.id)
        ).all()
        revoked = set(s.scalars(select(ApiKey.id).where(ApiKey.role == str(Role.TERMINAL), ApiKey.revoked)))
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
            if t.api_key_id not in revoked
        ]
    return out


def run(ctx: ServiceContext, ops: Operations, day: date | None = None) -> SpotCheckReport:
    """Probe every target not probed yet on ``day`` (today, Beijing time), retry every probe
    refund still waiting (of any day), then report the day."""
    with _one_run_at_a_time:
        return _run(ctx, ops, (day or today()).isoformat())


def merchant_state(ctx: ServiceContext, merchant: str) -> str | None:
    """Why a merchant's wallet cannot take part in a probe now, read from the chain: ``frozen``
    (by the regulator; the registry reads a retired wallet as frozen too) or ``held`` (a hold,
    e.g. a court's: what arrives is held until the hold is covered, so the probe's fen could not
    be refunded), else None."""
    if ctx.cash.is_frozen(merchant):
        return "frozen"
    if ctx.cash.held_of(merchant) > 0:
        return "held"
    return None


def _can_refund(ctx: ServiceContext, merchant: str) -> str | None:
    """Why the merchant cannot refund the probe's fen now (frozen, or holds covering its balance:
    the token would refuse the refund, ``AmountFrozen``), else None: retries wait for this
    instead of sending a transaction the chain would refuse."""
    if ctx.cash.is_frozen(merchant):
        return "frozen"
    if ctx.cash.balance_of(merchant) - ctx.cash.held_of(merchant) < PROBE_FEN:
        return "held"
    return None


def _started(ctx: ServiceContext, key: ApiKey, day: str, kind: str, target_id: str) -> bool:
    """Whether the probe's payment was begun (its operation stored): a resumed probe then goes on
    to its refund whatever the merchant's state, so no fen is left behind."""
    idem = (
        f"spotcheck:{day}:code:{target_id}:pay"
        if kind == "code"
        else f"spotcheck:{day}:terminal:{target_id}:settle"
    )
    with ctx.db.session() as s:
        found = s.scalar(
            select(Operation.id).where(Operation.api_key_id == key.id, Operation.idempotency_key == idem)
        )
    return found is not None


def _save(ctx: ServiceContext, row_id: int, outcome: str, detail: str | None, refund_id: int | None) -> None:
    with ctx.db.session() as s:
        probe = s.get(SpotCheck, row_id)
        assert probe is not None
        probe.outcome, probe.detail = outcome, detail
        probe.refund_id = refund_id if refund_id is not None else probe.refund_id
        s.commit()


def _run(ctx: ServiceContext, ops: Operations, d: str) -> SpotCheckReport:
    key = robot_key(ctx)
    for t in _targets(ctx):  # the intents: one row per (day, target), before anything is signed
        with ctx.db.session() as s:
            s.add(
                SpotCheck(
                    day=d,
                    target_kind=t["kind"],
                    target_id=t["id"],
                    merchant=t["merchant"],
                    category=t["category"],
                    area=t["area"],
                    outcome="running",
                )
            )
            try:
                s.commit()
            except IntegrityError:  # probed (or being probed) already today
                s.rollback()
    with ctx.db.session() as s:  # this run's and any a stopped run left unfinished
        running = [
            (r.id, r.target_kind, r.target_id, r.merchant)
            for r in s.scalars(
                select(SpotCheck)
                .where(SpotCheck.day == d, SpotCheck.outcome == "running")
                .order_by(SpotCheck.id)
            )
        ]
    states: dict[str, str | None] = {}
    todo = []
    for row_id, kind, target_id, merchant in running:  # a frozen or held merchant is not probed
        if merchant not in states:
            states[merchant] = merchant_state(ctx, merchant)
        if states[merchant] is not None and not _started(ctx, key, d, kind, target_id):
            _save(ctx, row_id, "skipped", states[merchant], None)
        else:
            todo.append((row_id, kind, target_id))
    if todo:
        wallet = probe_wallet(ctx, ops, key)
        blocked = merchant_state(ctx, wallet)
        if blocked is not None:  # a robot that cannot pay says nothing of the merchants (red team 8)
            raise Problem(
                409,
                "spot-check-robot-blocked",
                "The spot-check robot's own wallet cannot pay",
                f"its wallet {wallet} is {blocked}: no target was probed; they wait for the next run",
            )
        codes = sum(1 for _, kind, _ in todo if kind == "code")
        terminals = len(todo) - codes
        card: LocalAccount | None = None
        waiting: str | None = None  # why the terminals wait (the probe card could not be readied)
        if terminals:
            try:
                card = probe_card(ctx, ops, key, wallet, d)
                _load(ctx, ops, key, wallet, card.address, d, PROBE_FEN * terminals, PROBE_FEN * codes)
            except Problem as problem:
                log.warning("spot check: the probe card is not ready: %s", problem.detail or problem.title)
                waiting, card = (
                    f"waiting for the probe card: {problem.slug}: {problem.detail or problem.title}",
                    None,
                )
        if card is None:
            _fund(ctx, ops, key, wallet, d, PROBE_FEN * codes)
        for row_id, kind, target_id in todo:
            if kind == "code":
                outcome, detail, refund_id = _probe_code(ctx, ops, key, wallet, d, row_id, target_id)
            elif card is None:  # not probed: stays running (coverage shows it), the next round tries again
                outcome, detail, refund_id = "running", waiting, None
            else:
                outcome, detail, refund_id = _probe_terminal(ctx, ops, key, card, d, row_id, target_id)
            _save(ctx, row_id, outcome, detail, refund_id)
    _retry_refunds(ctx, ops, key)
    return report(ctx, date.fromisoformat(d))


def _retry_refunds(ctx: ServiceContext, ops: Operations, key: ApiKey) -> None:
    """Every probe whose refund waits (a hold or a freeze came between the probe and its
    refund), of any day: refunded once the merchant can, else left waiting for the next round."""
    with ctx.db.session() as s:
        waiting = [
            (r.id, r.target_kind)
            for r in s.scalars(
                select(SpotCheck).where(SpotCheck.outcome == REFUND_PENDING).order_by(SpotCheck.id)
            )
        ]
    card: str | None = None
    for row_id, kind in waiting:
        if kind == "terminal" and card is None:
            card = card_account(ctx, probe_wallet(ctx, ops, key)).address
        outcome, detail, refund_id = _refund_probe(ctx, ops, key, card, row_id)
        _save(ctx, row_id, outcome, detail, refund_id)


REFUND_PENDING = "refund-pending"
# Refusals that a hold or a freeze of the merchant (or the robot's wallet) causes: the refund waits
WAIT_SLUGS = frozenset(
    {"merchant-frozen", "amount-frozen", "amount-frozen-in-family", "wallet-frozen", "refund-payer-frozen"}
)


def _refund_probe(
    ctx: ServiceContext, ops: Operations, key: ApiKey, card: str | None, row_id: int
) -> tuple[str, str | None, int | None]:
    """Refund probe ``row_id``'s fen: (passed | refund-pending | failed, detail, refund id).

    Never twice: a probe's refunds are the refunds recorded against its one payment; a confirmed
    one ends it (passed), a pending one is waited for, and a new attempt is made only when every
    earlier one failed, under an idempotency key that counts them (``...:refund``, then
    ``...:refund:1``...; the first attempt's key is the one probes always used). The chain refuses
    a refund above what was paid anyway (``RefundExceedsPayment``)."""
    with ctx.db.session() as s:
        probe = s.get(SpotCheck, row_id)
        assert probe is not None
        day, kind, target_id, merchant = probe.day, probe.target_kind, probe.target_id, probe.merchant
    prefix = f"spotcheck:{day}:{kind}:{target_id}"
    if kind == "code":
        with ctx.db.session() as s:
            op_id = s.scalar(
                select(Operation.id).where(
                    Operation.api_key_id == key.id, Operation.idempotency_key == f"{prefix}:pay"
                )
            )
            payment = s.scalar(select(CodePayment.id).where(CodePayment.operation_id == op_id))
        assert payment is not None
        payment_kind, ref = "code", str(payment)
    else:
        assert card is not None
        payment_kind, ref = "card", f"{card}:{row_id}"
    core.sync(ctx)
    with ctx.db.session() as s:
        earlier = list(
            s.scalars(
                select(MerchantRefund)
                .where(MerchantRefund.payment_kind == payment_kind)
                .where(MerchantRefund.payment_ref == ref)
                .order_by(MerchantRefund.id)
            )
        )
    for r in earlier:
        if r.status == "confirmed":
            return "passed", None, r.id
    for r in earlier:
        if r.status == "pending":
            return REFUND_PENDING, "the probe refund is pending", r.id
    blocked = _can_refund(ctx, merchant)
    if blocked is not None:
        return REFUND_PENDING, f"refund waits: the merchant is {blocked}", None
    attempt = len(earlier)
    idem = f"{prefix}:refund" + (f":{attempt}" if attempt else "")
    try:
        if kind == "code":
            code = paycodes.find_code(ctx, target_id)
            refund = service.refund_code_payment(ctx, ops, key, idem, code, int(ref), PROBE_FEN, "spot check")
        else:
            assert card is not None
            refund = card_refunds.refund_card_payment(
                ctx, ops, key, idem, card, row_id, merchant, PROBE_FEN, "spot check"
            )
    except Problem as problem:
        why = f"{problem.slug}: {problem.detail or problem.title}"
        if problem.slug in WAIT_SLUGS:
            return REFUND_PENDING, f"refund waits: {why}", None
        return "failed", why, None
    if refund.status == "pending":
        return REFUND_PENDING, "the probe refund is pending", refund.id
    if refund.status != "confirmed":
        return "failed", f"the probe refund is {refund.status}", refund.id
    return "passed", None, refund.id


def _probe_code(
    ctx: ServiceContext, ops: Operations, key: ApiKey, wallet: str, day: str, row_id: int, code_id: str
) -> tuple[str, str | None, int | None]:
    """Pay the code 1 fen and refund it: (outcome, detail, refund id)."""
    try:
        code = paycodes.find_code(ctx, code_id)
        body = PayIn(form="custodial", payer=wallet, amount_fen=PROBE_FEN)
        op = paycodes.pay(ctx, ops, key, f"spotcheck:{day}:code:{code_id}:pay", code, body)
        if op.status != "confirmed":
            return "failed", f"the probe payment is {op.status}", None
    except Problem as problem:
        with ctx.db.session() as s:
            probe = s.get(SpotCheck, row_id)
        assert probe is not None
        return _refused(ctx, probe.merchant, f"{problem.slug}: {problem.detail or problem.title}")
    return _refund_probe(ctx, ops, key, None, row_id)


def _group(rows: list[SpotCheck]) -> SpotCheckGroup:
    """Coverage counts the targets that could be probed: a skipped one (its merchant frozen or
    under a hold) is shown apart and is not a failure of the merchant's acceptance. A probe whose
    refund waits reached the merchant (probed) but is neither passed nor failed until refunded."""
    skipped = [r for r in rows if r.outcome == "skipped"]
    probed = [r for r in rows if r.outcome in ("passed", "failed", REFUND_PENDING)]
    passed = sum(1 for r in probed if r.outcome == "passed")
    decided = sum(1 for r in probed if r.outcome in ("passed", "failed"))
    probeable = len(rows) - len(skipped)
    reasons: dict[str, int] = defaultdict(int)
    for r in skipped:
        reasons[r.detail or "unknown"] += 1
    return SpotCheckGroup(
        targets=len(rows),
        skipped=len(skipped),
        skipped_by_reason=dict(sorted(reasons.items())),
        probed=len(probed),
        passed=passed,
        refund_pending=sum(1 for r in probed if r.outcome == REFUND_PENDING),
        coverage=round(len(probed) / probeable, 4) if probeable else 0.0,
        pass_rate=round(passed / decided, 4) if decided else 0.0,
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
        skipped=total.skipped,
        skipped_by_reason=total.skipped_by_reason,
        probed=total.probed,
        passed=total.passed,
        refund_pending=total.refund_pending,
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
