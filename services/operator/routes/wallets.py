from __future__ import annotations

import hashlib
import hmac
from typing import Any

from fastapi import APIRouter, Response

from chain.clients.token import UNLIMITED, Kind
from services.common.context import ServiceContext
from services.common.deps import (
    ApiKeyDep,
    CtxDep,
    IdempotencyKey,
    OperatorKey,
    OpsDep,
    officer_of_payer,
    reader_or_owner,
)
from services.common.models import Wallet
from services.common.operations import Call, builder, perform
from services.common.problems import Problem
from services.common.schemas import Address, OperationOut, respond
from services.operator.schemas import Limits, WalletIn, WalletOut

router = APIRouter(prefix="/v1/wallets", tags=["wallets"])

KINDS = {"personal": Kind.PERSONAL, "merchant": Kind.MERCHANT, "institution": Kind.INSTITUTION}


def identity_hash(pepper: str, identity: str) -> str:
    return "0x" + hmac.new(pepper.encode(), identity.encode(), hashlib.sha256).hexdigest()


@router.post("", status_code=201, responses={202: {"model": OperationOut}})
def create_wallet(
    body: WalletIn, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """Register a person, merchant or institution. Custodial: the service creates the key in an
    encrypted keystore. Self-custody: the caller supplies the address."""
    request = body.model_dump(exclude={"identity", "address"})
    request["identity_hash"] = identity_hash(
        ctx.settings.identity_pepper, body.identity
    )  # never the identity
    if body.address is not None:
        request["address"] = body.address
        with ctx.db.session() as s:
            if s.get(Wallet, body.address) is not None:
                raise Problem(409, "wallet-already-registered", "Wallet already registered", body.address)

    def prepare() -> dict[str, Any]:
        if body.custody == "custodial":
            address, keystore = ctx.custody.create()
        else:
            address, keystore = body.address, None  # type: ignore[assignment]
        with ctx.db.session() as s:
            s.add(
                Wallet(
                    address=address,
                    kind=body.kind,
                    tier=body.tier,
                    category=body.merchant_category,
                    display_name=body.display_name,
                    identity_hash=request["identity_hash"],
                    custody=body.custody,
                    keystore=keystore,
                )
            )
            s.commit()
        return {"address": address}

    op, _ = perform(ops, "wallet.register", key, idem, request, target=body.display_name, prepare=prepare)
    return respond(op, response, done_status=201)


@builder("wallet.register")
def _register(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    address = req["address"]
    topup = ctx.settings.gas_topup_wei
    if req["custody"] == "custodial" and topup > 0 and ctx.w3.eth.get_balance(address) < topup // 2:
        ctx.tx.send_value(ctx.operator, address, topup)  # gas money, so the wallet can sign
    fn = ctx.cash.registry.functions.register(
        address,
        int(KINDS[req["kind"]]),
        req["tier"],
        req["merchant_category"],
        bytes.fromhex(req["identity_hash"][2:]),
    )
    return Call(ctx.operator, fn)


@router.get("/{address}")
def get_wallet(address: Address, ctx: CtxDep, key: ApiKeyDep) -> WalletOut:
    """Balance, tier, limits, what is left of today's cap, frozen flag (read from the chain).
    The reader roles read any wallet; a key bound to a wallet reads only that one, and a checker
    key also the payers it is an officer of."""
    reader_or_owner(key, key.wallet == address or officer_of_payer(ctx, key, address))
    info = ctx.cash.wallet(address)
    with ctx.db.session() as s:
        row = s.get(Wallet, address)
    if not info.registered and row is None:
        raise Problem(
            404, "wallet-not-found", "Wallet not found", f"{address} is neither registered nor known"
        )
    spent = ctx.cash.spent_today(address)

    def cap(v: int) -> int | None:
        return None if v == UNLIMITED else v

    limits = info.limits
    remaining = None if limits is None or limits.daily_cap == UNLIMITED else max(0, limits.daily_cap - spent)
    return WalletOut(
        address=address,
        kind=info.kind.name.lower() if info.registered else (row.kind if row else "none"),
        tier=info.tier,
        merchant_category=info.category,
        display_name=row.display_name if row else None,
        custody=row.custody if row else None,
        registered=info.registered,
        frozen=info.frozen,
        balance_fen=ctx.cash.balance_of(address),
        limits=Limits(
            balance_cap_fen=cap(limits.balance_cap),
            payment_cap_fen=cap(limits.payment_cap),
            daily_cap_fen=cap(limits.daily_cap),
        )
        if limits
        else None,
        spent_today_fen=spent,
        remaining_today_fen=remaining,
    )
