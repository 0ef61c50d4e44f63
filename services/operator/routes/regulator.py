"""The regulator's actions: freeze and unfreeze wallets, pause and unpause the system."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from services.common.context import ServiceContext
from services.common.deps import IdempotencyKey, OpsDep, RegulatorKey
from services.common.operations import Call, builder, perform
from services.common.schemas import OperationOut, respond
from services.operator.schemas import WalletRef

router = APIRouter(prefix="/v1/regulator", tags=["regulator"])


@router.post("/freeze", responses={202: {"model": OperationOut}})
def freeze(
    body: WalletRef, ops: OpsDep, key: RegulatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    op, _ = perform(ops, "regulator.freeze", key, idem, body.model_dump(), target=body.address)
    return respond(op, response)


@router.post("/unfreeze", responses={202: {"model": OperationOut}})
def unfreeze(
    body: WalletRef, ops: OpsDep, key: RegulatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    op, _ = perform(ops, "regulator.unfreeze", key, idem, body.model_dump(), target=body.address)
    return respond(op, response)


@router.post("/pause", responses={202: {"model": OperationOut}})
def pause(ops: OpsDep, key: RegulatorKey, idem: IdempotencyKey, response: Response) -> OperationOut:
    op, _ = perform(ops, "regulator.pause", key, idem, {}, target="system")
    return respond(op, response)


@router.post("/unpause", responses={202: {"model": OperationOut}})
def unpause(ops: OpsDep, key: RegulatorKey, idem: IdempotencyKey, response: Response) -> OperationOut:
    op, _ = perform(ops, "regulator.unpause", key, idem, {}, target="system")
    return respond(op, response)


@builder("regulator.freeze")
def _freeze(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.regulator, ctx.cash.registry.functions.freeze(req["address"]))


@builder("regulator.unfreeze")
def _unfreeze(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.regulator, ctx.cash.registry.functions.unfreeze(req["address"]))


@builder("regulator.pause")
def _pause(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.regulator, ctx.cash.cash.functions.pause())


@builder("regulator.unpause")
def _unpause(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.regulator, ctx.cash.cash.functions.unpause())
