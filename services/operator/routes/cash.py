"""Issuance, redemption and transfers of digital cash."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from services.common.context import ServiceContext
from services.common.deps import CtxDep, IdempotencyKey, OperatorKey, OpsDep
from services.common.operations import Call, builder, perform
from services.common.schemas import OperationOut, respond
from services.operator.schemas import IssuanceIn, RedemptionIn, TransferIn

router = APIRouter(prefix="/v1", tags=["cash"])


@router.post("/issuance", responses={202: {"model": OperationOut}})
def issue(
    body: IssuanceIn, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """Mint ``amount_fen`` into a registered wallet."""
    op, _ = perform(ops, "cash.issue", key, idem, body.model_dump(), target=body.to)
    return respond(op, response)


@builder("cash.issue")
def _issue(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.operator, ctx.cash.cash.functions.mint(req["to"], req["amount_fen"]))


@router.post("/redemptions", responses={202: {"model": OperationOut}})
def redeem(
    body: RedemptionIn, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """Burn ``amount_fen`` from a custodial wallet (it approves the issuer, the issuer redeems)."""
    ctx.custodial(body.holder)
    op, _ = perform(ops, "cash.redeem", key, idem, body.model_dump(), target=body.holder)
    return respond(op, response)


@builder("cash.redeem")
def _redeem(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    holder = ctx.custodial(req["holder"])
    cash = ctx.cash.cash
    ctx.ensure_allowance(holder.address, ctx.operator.address, req["amount_fen"])
    return Call(ctx.operator, cash.functions.redeem(holder.address, req["amount_fen"]))


@router.post("/transfers", responses={202: {"model": OperationOut}})
def transfer(
    body: TransferIn, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """Move cash from a custodial wallet to any registered wallet."""
    ctx.custodial(body.sender)
    op, _ = perform(ops, "cash.transfer", key, idem, body.model_dump(), target=f"{body.sender}->{body.to}")
    return respond(op, response)


@builder("cash.transfer")
def _transfer(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    sender = ctx.custodial(req["sender"])
    return Call(sender, ctx.cash.cash.functions.transfer(req["to"], req["amount_fen"]))
