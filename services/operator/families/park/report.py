"""The park report (``GET /v1/parks/{id}/report``): what the park's money did, from the indexed
chain events, and what its terminals and doors saw, from the gateway's records.

Free money and earmarked money are counted apart. *Free* money is the staff's own cash: wages and
subsidies the tenants' payers paid into staff wallets (``paid_in``) and what the staff paid the
park's merchants out of it (``spent_inside``); the retention ratio is theirs. *Earmarked* money
can be spent only where its programme allows: the park's welfare vouchers (granted to staff,
spendable only at the park's merchants) would be retained whatever the staff chose, so counting
them in would inflate the ratio. They are their own section (granted, spent inside, unspent,
returned at expiry), with the other earmarked money staff spent at the park's merchants (another
programme's voucher share, a card purse's part).

How a payment is read (DigitalCash's ``Transfer`` and ``PaidFor``): a direct transfer counts from
its ``from``; a family's ``payFor`` on an owner's behalf (a disbursement payout, a card
settlement, a QuickPay pull, a voucher spend) from its ``owner``, never twice (its ``Transfer``
leaves the family contract, not the owner). A voucher spend's programme share is a ``PaidFor`` of
the VoucherProgrammes contract (earmarked) and the holder's own share a ``Transfer`` (free); a
card settlement's purse part is the settlement's ``PurseSpent`` (earmarked), the rest free.

Activity: a *card tap* is a card payment settled at one of the park's terminals (the chain's
``PaymentSettled``, or ``PaymentShortfall``'s covered part, in the transaction of an upload of
that terminal), on the Beijing day it was signed (a shortfall's: its upload's); a *door event*
is a decision an access point of the park logged (allowed or denied), on its Beijing day. Both by
the tenant whose staff holds the card (None: someone else's card).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import select

from services.common.context import ServiceContext
from services.common.models import ChainEvent, GatewayCard, Operation
from services.common.refunds import beijing_day
from services.gateway.families.hardwallet.models import AccessDecision, OfflineUpload
from services.operator.families.park.models import Park
from services.operator.families.park.schemas import (
    ActivityLine,
    CategoryLine,
    Earmarked,
    MerchantLine,
    Money,
    ParkIn,
    ParkReport,
    TenantLine,
)
from services.operator.families.refunds.spotcheck import ROBOT_LABEL
from services.operator.families.vouchers import service as vouchers

SETTLEMENT = "HardWalletSettlement"
REFUNDS = "MerchantRefunds"


def money(fen: int) -> Money:
    sign = "-" if fen < 0 else ""
    return Money(fen=fen, yuan=f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}")


def ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _events(
    ctx: ServiceContext, contract: str, names: tuple[str, ...], subject: int | None = None
) -> list[Any]:
    with ctx.db.session() as s:
        q = select(ChainEvent.name, ChainEvent.args, ChainEvent.tx_hash).where(
            ChainEvent.contract == contract, ChainEvent.name.in_(names)
        )
        if subject is not None:
            q = q.where(ChainEvent.subject == subject)
        return list(s.execute(q.order_by(ChainEvent.block_number, ChainEvent.log_index)).all())


def _payments(ctx: ServiceContext) -> list[tuple[str, str, int, bool]]:
    """Every (payer, payee, fen, paid by a voucher programme) of digital cash as indexed."""
    programmes = ctx.vouchers.address.lower()
    out: list[tuple[str, str, int, bool]] = []
    for name, args, _ in _events(ctx, "DigitalCash", ("Transfer", "PaidFor")):
        if name == "Transfer":
            out.append(
                (
                    to_checksum_address(args["from"]),
                    to_checksum_address(args["to"]),
                    int(args["value"]),
                    False,
                )
            )
        else:
            by_voucher = str(args["family"]).lower() == programmes
            owner, to = to_checksum_address(args["owner"]), to_checksum_address(args["to"])
            out.append((owner, to, int(args["amount"]), by_voucher))
    return out


class _Holders:
    """A card's holder, read from the chain once per card."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.known: dict[str, str] = {}

    def __call__(self, card: str) -> str:
        card = to_checksum_address(card)
        if card not in self.known:
            self.known[card] = to_checksum_address(self.ctx.hardwallet.card(card).holder)
        return self.known[card]


def report(ctx: ServiceContext, indexer: Any, row: Park) -> ParkReport:
    indexer.catch_up()
    spec = ParkIn.model_validate(row.spec)
    payer_of = {t.payer: t.id for t in spec.tenants}
    tenant_of = {s: t.id for t in spec.tenants for s in t.staff}
    merchant_of = {m.wallet: m for m in spec.merchants}
    holder_of = _Holders(ctx)
    paid_in = dict.fromkeys(payer_of.values(), 0)
    spent = dict.fromkeys(payer_of.values(), 0)
    fees = dict.fromkeys(payer_of.values(), 0)
    takings = {m.id: 0 for m in spec.merchants}  # the staff's own cash
    earmarked = {m.id: 0 for m in spec.merchants}  # voucher shares and card purses
    for payer, payee, fen, by_voucher in _payments(ctx):
        if payer in payer_of and payee in tenant_of:
            paid_in[tenant_of[payee]] += fen
        elif payer in tenant_of and payee in merchant_of:
            if by_voucher:
                earmarked[merchant_of[payee].id] += fen
            else:
                spent[tenant_of[payer]] += fen
                takings[merchant_of[payee].id] += fen
        elif payer in payer_of and payee == spec.fee_wallet:
            fees[payer_of[payer]] += fen
    # a card's purse part was paid in the holder's ``payFor``, counted as its cash above: move it
    for _, args, _ in _events(ctx, SETTLEMENT, ("PurseSpent",)):
        holder, merchant = holder_of(args["card"]), to_checksum_address(args["merchant"])
        if holder in tenant_of and merchant in merchant_of:
            fen = int(args["amount"])
            spent[tenant_of[holder]] -= fen
            takings[merchant_of[merchant].id] -= fen
            earmarked[merchant_of[merchant].id] += fen
    # refunds of payments inside the park take back what they counted: the cash share from the
    # staff's spending and the merchant's takings, the voucher (or purse) share from the earmarked
    refunded_welfare: dict[str, int] = defaultdict(int)
    issuer: str | None = spec.welfare.issuer if spec.welfare is not None else None
    for payer, shop, cash, voucher, payee in _refunds(ctx):
        if payer in tenant_of and shop in merchant_of:
            spent[tenant_of[payer]] -= cash
            takings[merchant_of[shop].id] -= cash
            earmarked[merchant_of[shop].id] -= voucher
            if voucher and row.welfare_programme is not None and payee == issuer:
                refunded_welfare[tenant_of[payer]] += voucher
    welfare, by_tenant_welfare = _welfare(
        ctx, row, [t.id for t in spec.tenants], tenant_of, merchant_of, refunded_welfare
    )
    welfare = welfare.model_copy(
        update={"other_spent_inside": money(sum(earmarked.values()) - welfare.spent_inside.fen)}
    )
    activity = _activity(ctx, spec, tenant_of, holder_of)
    categories: dict[int, list[str]] = defaultdict(list)
    for m in spec.merchants:
        categories[m.category].append(m.id)
    total_in, total_spent = sum(paid_in.values()), sum(spent.values())
    return ParkReport(
        park=row.id,
        name=row.name,
        area=row.area,
        as_of_block=indexer.position() or 0,
        paid_in=money(total_in),
        spent_inside=money(total_spent),
        retention_ratio=ratio(total_spent, total_in),
        earmarked=welfare,
        fee_income=money(sum(fees.values())),
        card_taps=sum(a.card_taps for a in activity),
        card_tap_fen=money(sum(a.card_tap_fen.fen for a in activity)),
        door_entries=sum(a.door_entries for a in activity),
        door_denied=sum(a.door_denied for a in activity),
        by_tenant=[
            TenantLine(
                tenant=t.id,
                name=t.name,
                paid_in=money(paid_in[t.id]),
                spent_inside=money(spent[t.id]),
                retention_ratio=ratio(spent[t.id], paid_in[t.id]),
                earmarked_granted=money(by_tenant_welfare[t.id][0]),
                earmarked_spent=money(by_tenant_welfare[t.id][1]),
                fees_paid=money(fees[t.id]),
            )
            for t in spec.tenants
        ],
        by_category=[
            CategoryLine(
                category=c,
                merchants=len(ids),
                spent_inside=money(sum(takings[i] for i in ids)),
                earmarked_spent=money(sum(earmarked[i] for i in ids)),
            )
            for c, ids in sorted(categories.items())
        ],
        by_merchant=[
            MerchantLine(
                merchant=m.id,
                name=m.name,
                category=m.category,
                spent_inside=money(takings[m.id]),
                earmarked_spent=money(earmarked[m.id]),
                takings_from_staff=money(takings[m.id] + earmarked[m.id]),
            )
            for m in spec.merchants
        ],
        activity=activity,
    )


def _refunds(ctx: ServiceContext) -> list[tuple[str, str, int, int, str]]:
    """Every confirmed merchant refund as indexed (``MerchantRefunds``' ``Refunded``): (payer,
    merchant, cash share back to the payer, voucher or purse share back to its funder, that
    funder, from the payment's ``PaymentRecorded``)."""
    funder: dict[str, str] = {}
    out: list[tuple[str, str, int, int, str]] = []
    for name, args, _ in _events(ctx, REFUNDS, ("PaymentRecorded", "Refunded")):
        pid = str(args["paymentId"]).lower()
        if name == "PaymentRecorded":
            funder[pid] = to_checksum_address(args["voucherPayee"])
            continue
        out.append(
            (
                to_checksum_address(args["payer"]),
                to_checksum_address(args["merchant"]),
                int(args["cash"]),
                int(args["voucher"]),
                funder.get(pid, ""),
            )
        )
    return out


def _welfare(
    ctx: ServiceContext,
    row: Park,
    tenants: list[str],
    tenant_of: dict[str, str],
    merchant_of: dict[str, Any],
    refunded: dict[str, int],
) -> tuple[Earmarked, dict[str, tuple[int, int]]]:
    """The welfare programme's section, from its events (``Granted``, ``Spent``,
    ``GrantReturned``) restricted to the park's staff; and per tenant (granted, spent), every
    tenant (one without staff too: zeros). ``refunded``: per tenant, the voucher shares merchants
    refunded to the programme's issuer -- no longer spent inside, and gone back to the issuer
    (counted with ``returned``, so ``unspent`` stays what the staff still hold)."""
    per: dict[str, list[int]] = {t: [0, 0] for t in tenants}
    granted = spent = returned = 0
    expired = False
    pid = row.welfare_programme
    if pid is not None:
        for name, args, _ in _events(ctx, vouchers.CONTRACT, ("Granted", "Spent", "GrantReturned"), pid):
            holder = to_checksum_address(args["holder"])
            if holder not in tenant_of:
                continue
            fen = int(args["voucher"] if name == "Spent" else args["amount"])
            if name == "Granted":
                granted += fen
                per[tenant_of[holder]][0] += fen
            elif name == "Spent" and to_checksum_address(args["merchant"]) in merchant_of:
                spent += fen
                per[tenant_of[holder]][1] += fen
            elif name == "GrantReturned":
                returned += fen
        back = sum(refunded.values())
        spent -= back
        returned += back
        for t, fen in refunded.items():
            per[t][1] -= fen
        now = int(ctx.w3.eth.get_block("latest")["timestamp"])
        expired = now > ctx.vouchers.programme(pid).expires_at
    section = Earmarked(
        programme=pid,
        granted=money(granted),
        spent_inside=money(spent),
        unspent=money(granted - spent - returned),
        returned=money(returned),
        expired=expired,
        spend_ratio=ratio(spent, granted),
        other_spent_inside=money(0),
    )
    return section, {t: (g, s) for t, (g, s) in per.items()}


def _activity(
    ctx: ServiceContext, spec: ParkIn, tenant_of: dict[str, str], holder_of: _Holders
) -> list[ActivityLine]:
    """Card taps at the park's terminals and door events at its door points, per day and tenant."""
    taps: dict[tuple[str, str | None], list[int]] = defaultdict(lambda: [0, 0])
    doors: dict[tuple[str, str | None], list[int]] = defaultdict(lambda: [0, 0])
    if spec.terminals:
        with ctx.db.session() as s:
            uploads = s.execute(
                select(Operation.tx_hash, OfflineUpload.created_at)
                .join(Operation, Operation.id == OfflineUpload.operation_id)
                .where(OfflineUpload.terminal_id.in_(spec.terminals), Operation.status == "confirmed")
            ).all()
            # The spot-check robot's probe card pays 1 fen and is refunded: a test of the
            # terminal, not a tap of anyone in the park (red team 8 LOW-4).
            robot_cards = {
                str(c).lower()
                for c in s.scalars(select(GatewayCard.address).where(GatewayCard.serial == ROBOT_LABEL))
            }
        uploaded = {str(h).lower(): at for h, at in uploads if h}
        for name, args, tx in _events(ctx, SETTLEMENT, ("PaymentSettled", "PaymentShortfall")):
            if str(tx).lower() not in uploaded or str(args["card"]).lower() in robot_cards:
                continue
            fen = int(args["amount"] if name == "PaymentSettled" else args["covered"])
            if fen == 0:
                continue
            when = (
                datetime.fromtimestamp(int(args["time"]), UTC)
                if name == "PaymentSettled"
                else uploaded[str(tx).lower()]
            )
            line = taps[(beijing_day(when), tenant_of.get(holder_of(args["card"])))]
            line[0] += 1
            line[1] += fen
    if spec.door_points:
        with ctx.db.session() as s:
            decisions = s.execute(
                select(AccessDecision.at, AccessDecision.holder, AccessDecision.allowed).where(
                    AccessDecision.access_point_id.in_(spec.door_points)
                )
            ).all()
        for at, holder, allowed in decisions:
            tenant = tenant_of.get(to_checksum_address(holder)) if holder else None
            doors[(beijing_day(at), tenant)][0 if allowed else 1] += 1
    keys = sorted(set(taps) | set(doors), key=lambda k: (k[0], k[1] is None, k[1] or ""))
    return [
        ActivityLine(
            day=day,
            tenant=tenant,
            card_taps=taps[(day, tenant)][0] if (day, tenant) in taps else 0,
            card_tap_fen=money(taps[(day, tenant)][1] if (day, tenant) in taps else 0),
            door_entries=doors[(day, tenant)][0] if (day, tenant) in doors else 0,
            door_denied=doors[(day, tenant)][1] if (day, tenant) in doors else 0,
        )
        for day, tenant in keys
    ]
