"""Recovery of family-held assets: after a recovery is approved, what every family holds for the
retired wallet moves to its successor, one operation per thing held.

The registry's approval moves the wallet's own balance, day's spending and holds. What the
families hold for it stays where it is until moved here: voucher holdings (``recoverGrants``),
open prepaid packages (``recoverPackage``), quick-pay mandates (``recoverMandate``), cards
(``recoverCard``), disbursement exceptions and unclaimed Merkle leaves owed to it
(``recoverException``, ``recoverLeaf``). The contract functions take no destination of the
caller's: they check that the one given is ``registry.successorOf(lost)``, and refuse a second
move (``RecoveryNothingHeld``), so the operator may send them (the service does, with its key) as
anyone else may.

What the retired wallet holds is found from the event index (what was granted, prepaid,
registered or excepted for it, and what earlier recoveries moved to it) and confirmed on the
chain, so a thing moved already is not listed again. Each move is an operation of its own kind,
its idempotency key derived from the recovery and the thing (``recovery:<id>:<digest>``): the
sweep may run again (approval replayed, ``POST .../recoveries/{id}/holdings``) and moves only
what is still there."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, cast, select

from chain.clients.disburse import BatchStatus, Row
from chain.clients.hardwallet import CardStatus
from chain.clients.prepaid import PackageStatus
from services.common.context import ServiceContext
from services.common.models import ApiKey, ChainEvent, Operation
from services.common.operations import Builder, Call, Operations, perform
from services.common.problems import Problem


@dataclass(frozen=True)
class Move:
    """One thing a family holds for the retired wallet: the operation that moves it."""

    kind: str
    item: str  # for people and the audit log: "programme 3", "card 0x...", "batch 0x... row 2"
    request: dict[str, Any]


def _subjects(ctx: ServiceContext, contract: str, found: Iterable[tuple[str, str]], wallet: str) -> list[Any]:
    """The indexed events of ``contract`` naming ``wallet`` as ``arg`` for each (event, arg) of
    ``found`` (as granted, or as a successor in an earlier recovery), oldest first."""
    names = dict(found)
    q = select(ChainEvent).where(
        ChainEvent.contract == contract,
        ChainEvent.name.in_(names),
        cast(ChainEvent.args, String).contains(wallet),
    )
    with ctx.db.session() as s:
        rows = s.scalars(q.order_by(ChainEvent.id)).all()
    return [e.args for e in rows if e.args.get(names[e.name]) == wallet]


def _deployed(ctx: ServiceContext, contract: str) -> bool:
    return contract in ctx.manifest.contracts


def holdings_of(ctx: ServiceContext, lost: str, successor: str) -> list[Move]:
    """Everything the families hold for ``lost`` now (read from the chain), as moves to ``successor``."""
    base = {"lost": lost, "successor": successor}
    moves: list[Move] = []
    if _deployed(ctx, "VoucherProgrammes"):
        events = _subjects(
            ctx, "VoucherProgrammes", [("Granted", "holder"), ("GrantsRecovered", "successor")], lost
        )
        for pid in sorted({int(a["id"]) for a in events}):
            if ctx.vouchers.holding(pid, lost).granted:
                moves.append(Move("vouchers.recover_grants", f"programme {pid}", {**base, "programme": pid}))
    if _deployed(ctx, "PrepaidEscrow"):
        events = _subjects(
            ctx, "PrepaidEscrow", [("PackagePrepaid", "consumer"), ("PackageRecovered", "successor")], lost
        )
        for pid in sorted({int(a["id"]) for a in events}):
            p = ctx.prepaid.package(pid)
            if p.consumer == lost and p.status is PackageStatus.OPEN:
                moves.append(Move("prepaid.recover_package", f"package {pid}", {**base, "package": pid}))
    if _deployed(ctx, "QuickPay"):
        events = _subjects(
            ctx, "QuickPay", [("MandateGranted", "holder"), ("MandateRecovered", "successor")], lost
        )
        for mid in sorted({int(a["id"]) for a in events}):
            m = ctx.quickpay.mandate(mid)
            if m.holder == lost and not m.revoked:
                moves.append(Move("hardwallet.recover_mandate", f"mandate {mid}", {**base, "mandate": mid}))
    if _deployed(ctx, "HardWalletSettlement"):
        found = [("CardRegistered", "holder"), ("CardRecovered", "successor")]
        for card in sorted({a["card"] for a in _subjects(ctx, "HardWalletSettlement", found, lost)}):
            c = ctx.hardwallet.card(card)
            if c.holder == lost and c.status is not CardStatus.CLOSED:
                moves.append(Move("hardwallet.recover_card", f"card {card}", {**base, "card": card}))
    moves.extend(_disbursements(ctx, lost, base))
    return moves


def _disbursements(ctx: ServiceContext, lost: str, base: dict[str, Any]) -> list[Move]:
    """Exceptions owed to ``lost`` and unclaimed Merkle leaves addressed to it, in batches that
    still pay (approved, not ended: after the end date the payer reclaims them)."""
    from services.operator.families.disburse.models import Disbursement, DisbursementRow
    from services.operator.families.disburse.service import proof

    now = int(ctx.w3.eth.get_block("latest")["timestamp"])
    open_batch: dict[str, bool] = {}

    def paying(bid: str) -> bool:
        if bid not in open_batch:
            b = ctx.disburse.batch(bytes.fromhex(bid[2:]))
            open_batch[bid] = b.status is BatchStatus.APPROVED and b.ends_at >= now
        return open_batch[bid]

    moves: list[Move] = []
    found = [("PayoutException", "recipient"), ("PayoutRecovered", "successor")]
    seen = {(a["id"], int(a["index"])) for a in _subjects(ctx, "Disbursement", found, lost)}
    for bid, index in sorted(seen):
        owed = ctx.disburse.exception(bytes.fromhex(bid[2:]), index)
        if owed is not None and owed.recipient == lost and paying(bid):
            item = f"batch {bid} row {index}"
            moves.append(Move("disburse.recover_exception", item, {**base, "batch_id": bid, "index": index}))
    with ctx.db.session() as s:
        rows = s.execute(
            select(DisbursementRow, Disbursement.batch_id)
            .join(Disbursement, Disbursement.ref == DisbursementRow.ref)
            .where(DisbursementRow.recipient == lost, Disbursement.mode == "merkle")
            .order_by(DisbursementRow.id)
        ).all()
    for row, bid in rows:
        raw = bytes.fromhex(bid[2:])
        if (bid, row.idx) in seen or not paying(bid) or ctx.disburse.is_claimed(raw, row.idx):
            continue
        item = f"batch {bid} leaf {row.idx}"
        request = {
            **base,
            "batch_id": bid,
            "index": row.idx,
            "amount_fen": row.amount_fen,
            "proof": proof(row.proof),
        }
        moves.append(Move("disburse.recover_leaf", item, request))
    return moves


def move_key(recovery_id: int, move: Move) -> str:
    """The idempotency key of one move of recovery ``recovery_id`` (stable across sweeps)."""
    digest = hashlib.sha256(f"{move.kind}:{move.item}".encode()).hexdigest()[:24]
    return f"recovery:{recovery_id}:{digest}"


@dataclass(frozen=True)
class Swept:
    """What a sweep did: the moves' operations, and the moves the chain refused (with why)."""

    operations: list[Operation]
    refused: list[dict[str, Any]]


def sweep(
    ctx: ServiceContext, ops: Operations, key: ApiKey, recovery_id: int, lost: str, successor: str
) -> Swept:
    """Move everything the families hold for the retired ``lost`` to ``successor``, each thing as
    an operation (signed by the operator: the contract functions are anyone's). A move the chain
    refuses (e.g. another sweep moved it meanwhile: ``nothing-held``) is reported, not raised."""
    done: list[Operation] = []
    refused: list[dict[str, Any]] = []
    for move in holdings_of(ctx, lost, successor):
        try:
            op, _ = perform(ops, move.kind, key, move_key(recovery_id, move), move.request, target=move.item)
        except Problem as exc:
            refused.append({"item": move.item, "kind": move.kind, "type": exc.slug, "detail": exc.detail})
            continue
        done.append(op)
    return Swept(done, refused)


# -- builders: the operator sends every move (the functions are permissionless) ---------------


def recover_grants(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(
        ctx.operator, ctx.vouchers.recover_grants_call(req["programme"], req["lost"], req["successor"])
    )


def recover_package(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.operator, ctx.prepaid.recover_package_call(req["package"], req["lost"], req["successor"]))


def recover_mandate(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(
        ctx.operator, ctx.quickpay.recover_mandate_call(req["mandate"], req["lost"], req["successor"])
    )


def recover_card(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.operator, ctx.hardwallet.recover_card_call(req["card"], req["lost"], req["successor"]))


def recover_exception(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    bid = bytes.fromhex(req["batch_id"][2:])
    return Call(
        ctx.operator, ctx.disburse.recover_exception_call(bid, req["index"], req["lost"], req["successor"])
    )


def recover_leaf(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    bid = bytes.fromhex(req["batch_id"][2:])
    proof = [bytes.fromhex(p[2:]) for p in req["proof"]]
    fn = ctx.disburse.recover_leaf_call(
        bid, req["index"], Row(req["lost"], req["amount_fen"]), proof, req["successor"]
    )
    return Call(ctx.operator, fn)


BUILDERS: dict[str, Builder] = {
    "vouchers.recover_grants": recover_grants,
    "prepaid.recover_package": recover_package,
    "hardwallet.recover_mandate": recover_mandate,
    "hardwallet.recover_card": recover_card,
    "disburse.recover_exception": recover_exception,
    "disburse.recover_leaf": recover_leaf,
}
