from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from chain.clients.token import MAX_REGISTRATIONS, UNLIMITED, Kind, Registration
from services.common.context import ServiceContext
from services.common.deps import (
    READER_ROLES,
    ApiKeyDep,
    CtxDep,
    IdempotencyKey,
    OperatorKey,
    OpsDep,
    officer_of_payer,
    reader_or_owner,
)
from services.common.models import Operation, Wallet
from services.common.operations import Call, builder, perform, request_hash
from services.common.paging import Page, Paging, paginate
from services.common.problems import Problem
from services.common.schemas import Address, OperationOut, respond
from services.operator.schemas import (
    Limits,
    WalletBatchIn,
    WalletBatchOut,
    WalletBatchRow,
    WalletIn,
    WalletOut,
)

router = APIRouter(prefix="/v1/wallets", tags=["wallets"])

# Wallets per registerBatch transaction (and per operation) of POST /v1/wallets/batch.
GROUP = MAX_REGISTRATIONS

KINDS = {"personal": Kind.PERSONAL, "merchant": Kind.MERCHANT, "institution": Kind.INSTITUTION}


def identity_hash(pepper: str, identity: str) -> str:
    return "0x" + hmac.new(pepper.encode(), identity.encode(), hashlib.sha256).hexdigest()


class WalletCreatedOut(OperationOut):
    address: str | None = Field(default=None, description="the new wallet's address (also request.address)")


@router.post("", status_code=201, responses={202: {"model": WalletCreatedOut}})
def create_wallet(
    body: WalletIn, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> WalletCreatedOut:
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
        if _has_code(ctx, body.address):
            raise _contract_problem(body.address)

    def prepare() -> dict[str, Any]:
        record = _new_wallet(ctx, body, request["identity_hash"])
        address = record.address
        with ctx.db.session() as s:
            s.add(record)
            try:
                s.commit()
            except IntegrityError:  # a concurrent request recorded the same address first
                raise Problem(
                    409, "wallet-already-registered", "Wallet already registered", address
                ) from None
        return {"address": address}

    op, _ = perform(ops, "wallet.register", key, idem, request, target=body.display_name, prepare=prepare)
    out = respond(op, response, done_status=201)
    return WalletCreatedOut(**out.model_dump(), address=op.request.get("address"))


def _has_code(ctx: ServiceContext, address: str) -> bool:
    """Whether ``address`` is a contract (the platform's own or any other): cash sent to it as a
    wallet would be lost, so no contract is ever registered as one."""
    return len(ctx.w3.eth.get_code(address)) > 0


def _contract_problem(address: str) -> Problem:
    return Problem(
        422,
        "wallet-is-contract",
        "A contract cannot be registered as a wallet",
        f"{address} has code on chain",
    )


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


@router.post("/batch", status_code=201, responses={202: {"model": WalletBatchOut}})
def create_wallets(
    body: WalletBatchIn, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> WalletBatchOut:
    """Register many wallets at once (up to 10,000), each as ``POST /v1/wallets`` would: on chain
    200 to a transaction (``registerBatch``), each group of 200 all or nothing and its own
    operation (idempotency key ``<key>#<n>``), so a replay with the same key and body answers the
    same wallets. Rows are checked together first: every bad row is reported with its 1-based
    ``row`` in one 422, and nothing is registered. 201 when every group is confirmed, else 202."""
    groups = [body.wallets[i : i + GROUP] for i in range(0, len(body.wallets), GROUP)]
    digest = request_hash("wallet.register_batch", body.model_dump(mode="json"))
    with ctx.db.session() as s:
        begun = s.scalar(
            select(Operation.id).where(
                Operation.api_key_id == key.id, Operation.idempotency_key == f"{idem}#0"
            )
        )
    if begun is None:  # a replay is answered by its operations, whatever happened since
        _check_batch(ctx, body.wallets)
    rows: list[WalletBatchRow] = []
    operations: list[OperationOut] = []
    for n, group in enumerate(groups):
        first = n * GROUP
        request = {
            "batch": digest,
            "first_row": first + 1,
            "wallets": [_row_request(ctx, w) for w in group],
        }
        try:
            op, _ = perform(
                ops,
                "wallet.register_batch",
                key,
                f"{idem}#{n}",
                request,
                target=f"{len(group)} wallets",
                prepare=lambda g=group, r=request, f=first: {
                    "addresses": _keep_wallets(ctx, g, r["wallets"], f)
                },
            )
        except Problem as exc:
            _forget_group(ctx, exc.extra.get("operation_id"))
            # Which rows: the contract names the row within its group; earlier groups stand.
            args = (exc.extra.get("error") or {}).get("args", {})
            if args.get("index") is not None:
                exc.extra["row"] = first + int(args["index"]) + 1
                exc.extra["reason"] = ctx.tx.errors.name_of(args.get("reason") or "0x") or args.get("reason")
            exc.extra["rows_registered"] = first
            raise
        operations.append(OperationOut.model_validate(op, from_attributes=True))
        for i, (w, address) in enumerate(zip(group, op.request["addresses"], strict=True)):
            rows.append(
                WalletBatchRow(
                    row=first + i + 1, address=address, display_name=w.display_name, operation_id=op.id
                )
            )
    done = all(o.status == "confirmed" for o in operations)
    response.status_code = 201 if done else 202
    return WalletBatchOut(status="confirmed" if done else "pending", wallets=rows, operations=operations)


def _row_request(ctx: ServiceContext, w: WalletIn) -> dict[str, Any]:
    """What is stored of one row: never the identity, only its hash."""
    row = w.model_dump(exclude={"identity", "address"})
    row["identity_hash"] = identity_hash(ctx.settings.identity_pepper, w.identity)
    if w.address is not None:
        row["address"] = w.address
    return row


def _check_batch(ctx: ServiceContext, wallets: list[WalletIn]) -> None:
    """Every self-custody address new, once in the batch, and not registered on chain already:
    all errors in one 422 naming each row, before anything is created."""
    own = [w.address for w in wallets if w.address is not None]
    known: set[str] = set()
    with ctx.db.session() as s:
        for i in range(0, len(own), 500):
            known.update(s.scalars(select(Wallet.address).where(Wallet.address.in_(own[i : i + 500]))))
    errors: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    registry = ctx.cash.registry.functions
    for row, w in enumerate(wallets, start=1):
        if w.address is None:
            continue
        code = None
        if w.address in seen:
            reason = f"{w.address} is already in row {seen[w.address]}"
        elif w.address in known or ctx.tx.call(registry.walletOf(w.address))[0] != int(Kind.NONE):
            reason = f"{w.address} is registered already"
        elif _has_code(ctx, w.address):
            reason, code = f"{w.address} is a contract (it has code on chain)", "wallet-is-contract"
        else:
            seen[w.address] = row
            continue
        entry = {"row": row, "field": "address", "reason": reason}
        if code is not None:
            entry["code"] = code
        errors.append(entry)
    if errors:
        raise Problem(
            422,
            "invalid-wallets",
            "Some wallets are invalid; nothing was registered",
            f"{len(errors)} error(s) in {len(wallets)} rows",
            errors=errors,
        )


def _new_wallet(ctx: ServiceContext, w: WalletIn, identity_digest: str) -> Wallet:
    """The record of one wallet to register (single or in a batch): a custodial wallet's key is
    created here, a self-custody wallet keeps the address it was given."""
    if w.custody == "custodial":
        address, keystore = ctx.custody.create()
    else:
        address, keystore = w.address, None  # type: ignore[assignment]
    return Wallet(
        address=address,
        kind=w.kind,
        tier=w.tier,
        category=w.merchant_category,
        display_name=w.display_name,
        identity_hash=identity_digest,
        custody=w.custody,
        keystore=keystore,
    )


def _keep_wallets(
    ctx: ServiceContext, wallets: list[WalletIn], rows: list[dict[str, Any]], first: int = 0
) -> list[str]:
    """Create the custodial keys of a group and record its wallets; returns their addresses.
    A self-custody address another request recorded meanwhile (two concurrent batches sharing
    it, both past ``_check_batch``) is a 409 naming its row (``first`` rows precede the group)."""
    addresses: list[str] = []
    records = []
    for w, row in zip(wallets, rows, strict=True):
        record = _new_wallet(ctx, w, row["identity_hash"])
        addresses.append(record.address)
        records.append(record)
    with ctx.db.session() as s:
        s.add_all(records)
        try:
            s.commit()
        except IntegrityError:
            s.rollback()
            taken = set(s.scalars(select(Wallet.address).where(Wallet.address.in_(addresses))))
            row = next((i for i, a in enumerate(addresses) if a in taken), None)
            raise Problem(
                409,
                "wallet-already-registered",
                "Wallet already registered",
                f"{addresses[row]} was registered by another request meanwhile; nothing of this group was"
                if row is not None
                else "a wallet of this group was registered by another request meanwhile",
                **({"row": first + row + 1} if row is not None else {}),
            ) from None
    return addresses


def _forget_group(ctx: ServiceContext, op_id: str | None) -> None:
    """A group the chain refused (or that failed before it was sent) registered nothing: its
    wallet records go too, all or nothing, so no ghost wallet is listed or blocks a later batch."""
    if op_id is None:
        return
    with ctx.db.session() as s:
        op = s.get(Operation, op_id)
        if op is None or op.status != "failed" or op.kind != "wallet.register_batch":
            return
        addresses = list((op.request or {}).get("addresses") or [])
        if addresses:
            s.execute(delete(Wallet).where(Wallet.address.in_(addresses)))
            s.commit()


@builder("wallet.register_batch")
def _register_batch(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    rows = list(zip(req["wallets"], req["addresses"], strict=True))
    topup = ctx.settings.gas_topup_wei
    if topup > 0:  # gas money, so that custodial wallets can sign; sent together, awaited once
        poor = [a for w, a in rows if w["custody"] == "custodial" and ctx.w3.eth.get_balance(a) < topup // 2]
        ctx.tx.send_values(ctx.operator, [(a, topup) for a in poor])
    registrations = [
        Registration(
            address,
            KINDS[w["kind"]],
            w["tier"],
            w["merchant_category"],
            bytes.fromhex(w["identity_hash"][2:]),
        )
        for w, address in rows
    ]
    return Call(ctx.operator, ctx.cash.register_batch_call(registrations))


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


# -- listing (issue 21: find what you created) --------------------------------------------------


class WalletItem(BaseModel):
    """A wallet as a listing shows it: the operator's record and the chain's frozen flag."""

    address: str
    kind: str
    tier: int
    merchant_category: int
    display_name: str
    custody: str
    frozen: bool
    created_at: datetime


@router.get("", summary="List and search wallets")
def list_wallets(
    ctx: CtxDep,
    key: ApiKeyDep,
    paging: Paging,
    kind: Annotated[Literal["personal", "merchant", "institution"] | None, Query()] = None,
    tier: Annotated[int | None, Query(ge=0, le=255)] = None,
    identity: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="the identity given at registration, hashed as then (lookup by identity)",
        ),
    ] = None,
    name: Annotated[
        str | None, Query(min_length=1, max_length=200, description="part of the display name, any case")
    ] = None,
    frozen: Annotated[bool | None, Query(description="frozen on chain now")] = None,
    custody: Annotated[Literal["custodial", "self"] | None, Query()] = None,
) -> Page[WalletItem]:
    """The registered wallets, by address. The reader roles list every wallet; any other key only
    its own (the single read's rule, ``reader_or_owner``). The identity is a query parameter, never
    in the path, so the access log (which never writes the query) never holds it."""
    q = select(Wallet)
    if key.role not in READER_ROLES:
        reader_or_owner(key, key.wallet is not None)  # a key that speaks for no wallet reads none
        q = q.where(Wallet.address == key.wallet)
    if kind is not None:
        q = q.where(Wallet.kind == kind)
    if tier is not None:
        q = q.where(Wallet.tier == tier)
    if identity is not None:
        q = q.where(Wallet.identity_hash == identity_hash(ctx.settings.identity_pepper, identity))
    if name is not None:
        q = q.where(func.lower(Wallet.display_name).contains(name.lower(), autoescape=True))
    if custody is not None:
        q = q.where(Wallet.custody == custody)
    states: dict[str, bool] = {}

    def frozen_now(row: Wallet) -> bool:
        if row.address not in states:
            _, _, states[row.address], _, _ = ctx.cash.tx.call(
                ctx.cash.registry.functions.walletOf(row.address)
            )
        return states[row.address]

    keep = None if frozen is None else (lambda row: frozen_now(row) == frozen)
    with ctx.db.session() as s:
        rows, cursor = paginate(s, q, Wallet.address, paging, "wallets", keep=keep)
    items = [
        WalletItem(
            address=r.address,
            kind=r.kind,
            tier=r.tier,
            merchant_category=r.category,
            display_name=r.display_name,
            custody=r.custody,
            frozen=frozen_now(r),
            created_at=r.created_at,
        )
        for r in rows
    ]
    return Page[WalletItem](items=items, next_cursor=cursor, limit=paging.limit)
