"""The cash family's logic: registering wallets (one, or thousands in groups of 200), reading and
listing them, and beginning the operations of issuance, redemption, transfers and the regulator's
actions. The routes validate and authorise, then call here; the builders (``builders.py``) turn
each stored operation into its contract call."""

from __future__ import annotations

import functools
import hashlib
import hmac
import unicodedata
from collections.abc import Callable
from typing import Any, Literal

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from web3 import Web3

from chain.clients.token import MAX_REGISTRATIONS, UNLIMITED, Hold, Kind, ProposalStatus, bytes32_text
from chain.exceptions import ContractError, NodeUnavailable
from chain.families import ZERO
from services.common.context import ServiceContext
from services.common.models import ApiKey, Operation, Wallet
from services.common.operations import Operations, perform, request_hash
from services.common.paging import Page, PageQuery, paginate
from services.common.problems import Problem
from services.common.schemas import OperationOut
from services.common.scope import check_operator_scope, check_scope, institution_of
from services.operator.families.cash.models import CourtOrder
from services.operator.families.cash.models import Recovery as RecoveryRow
from services.operator.families.cash.recovery import Swept, sweep
from services.operator.families.cash.schemas import (
    CourtOrderIn,
    CourtOrderOut,
    HoldIn,
    HoldOut,
    HoldsOut,
    IssuanceIn,
    Limits,
    PersonalWalletLimitIn,
    RecoveryIn,
    RecoveryOut,
    RedemptionIn,
    TransferIn,
    WalletBatchIn,
    WalletBatchOut,
    WalletBatchRow,
    WalletIn,
    WalletItem,
    WalletOut,
    WalletRef,
)

# Wallets per registerBatch transaction (and per operation) of POST /v1/wallets/batch.
GROUP = MAX_REGISTRATIONS


def normalize_identity(identity: str) -> str:
    """One spelling per identity: Unicode NFKC (full-width ``ＩＤ`` is ``ID``), no whitespace, upper
    case (an ID number's check letter ``x`` is ``X``). Found from outside: ``"id-a"``, ``" ID-A"``
    and ``"ＩＤ-Ａ"`` were three people, so one person held several wallets and vouchers."""
    return "".join(unicodedata.normalize("NFKC", identity).split()).upper()


def identity_hash(pepper: str, identity: str) -> str:
    """What is stored of an identity: the keyed hash (the pepper is the service's secret) of its
    normalized spelling, so the same identity finds the same wallets however it is written, and
    the identity itself is never kept."""
    canonical = normalize_identity(identity)
    return "0x" + hmac.new(pepper.encode(), canonical.encode(), hashlib.sha256).hexdigest()


# -- issuance, redemption, transfers, the regulator ------------------------------------------------


def _scoped(ctx: ServiceContext, key: ApiKey, wallet: str, request: dict[str, Any]) -> dict[str, Any]:
    """Two tiers: the key's institution must serve ``wallet`` (403 ``institution-scope``), and a
    key of an institution other than #1 signs with that institution's key (``institution`` in the
    request; absent for #1, so that the requests of the single tier stay as they were)."""
    try:
        institution = check_scope(ctx, key, wallet)
    except NodeUnavailable:
        # The node is down: the intent is still stored (503, finished when the node is back), and
        # nothing is lost by not checking here: the book refuses a mint or redemption for another
        # institution's wallet (WalletServedElsewhere), and Operations checks a custodial payer's
        # institution before it signs.
        institution = institution_of(key)
    return request if institution == 1 else {**request, "institution": institution}


def issue(ops: Operations, key: ApiKey, idem: str, body: IssuanceIn) -> Operation:
    """Mint ``amount_fen`` into a registered wallet (builder ``cash.issue``)."""
    request = _scoped(ops.ctx, key, body.to, body.model_dump())
    op, _ = perform(ops, "cash.issue", key, idem, request, target=body.to)
    return op


def redeem(ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, body: RedemptionIn) -> Operation:
    """Burn ``amount_fen`` from a custodial wallet (it approves the issuer, the issuer redeems)."""
    ctx.custodial(body.holder)  # a wallet the service holds no key of cannot approve: 4xx now
    request = _scoped(ctx, key, body.holder, body.model_dump())
    op, _ = perform(ops, "cash.redeem", key, idem, request, target=body.holder)
    return op


def transfer(ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, body: TransferIn) -> Operation:
    """Move cash from a custodial wallet to any registered wallet (the payee may be another
    institution's customer: 互联互通; the payer must be the key's institution's)."""
    ctx.custodial(body.sender)
    request = _scoped(ctx, key, body.sender, body.model_dump())
    op, _ = perform(ops, "cash.transfer", key, idem, request, target=f"{body.sender}->{body.to}")
    return op


def regulate(
    ops: Operations,
    key: ApiKey,
    idem: str,
    action: Literal["freeze", "unfreeze", "pause", "unpause"],
    wallet: WalletRef | None = None,
) -> Operation:
    """The regulator's ``action`` on ``wallet`` (freeze, unfreeze) or on the system (pause, unpause)."""
    body = wallet.model_dump() if wallet is not None else {}
    target = wallet.address if wallet is not None else "system"
    op, _ = perform(ops, f"regulator.{action}", key, idem, body, target=target)
    return op


# -- registering one wallet --------------------------------------------------------------------


def register_wallet(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, body: WalletIn
) -> Operation:
    """Register a person, merchant or institution. Custodial: the service creates the key in an
    encrypted keystore (in the prepare step, once). Self-custody: the caller supplies the address."""
    request = body.model_dump(exclude={"identity", "address"})
    request["identity_hash"] = identity_hash(
        ctx.settings.identity_pepper, body.identity
    )  # never the identity
    if key.institution not in (None, 1):
        # Two tiers: an institution's key registers the wallets it serves (through the book).
        request["institution"] = key.institution
    if body.address is not None:
        request["address"] = body.address
        with ctx.db.session() as s:
            if s.get(Wallet, body.address) is not None:
                raise Problem(409, "wallet-already-registered", "Wallet already registered", body.address)
        _refuse_unusable_address(ctx, body.address)

    def prepare() -> dict[str, Any]:
        record = new_wallet(ctx, body, request["identity_hash"])
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

    try:
        op, _ = perform(ops, "wallet.register", key, idem, request, target=body.display_name, prepare=prepare)
    except Problem as exc:
        # Refused on chain (e.g. IdentityWalletLimit): the record goes too, so no ghost wallet is
        # listed or counted when an identity is resolved (a payroll row addressed by identity).
        _forget_group(ctx, exc.extra.get("operation_id"))
        raise
    return op


def _has_code(ctx: ServiceContext, address: str) -> bool:
    """Whether ``address`` is a contract (the platform's own or any other): cash sent to it as a
    wallet would be lost, so no contract is ever registered as one."""
    return len(ctx.w3.eth.get_code(Web3.to_checksum_address(address))) > 0


def _contract_problem(address: str) -> Problem:
    return Problem(
        422,
        "wallet-is-contract",
        "A contract cannot be registered as a wallet",
        f"{address} has code on chain",
    )


def _is_card(ctx: ServiceContext, address: str) -> bool:
    """Whether ``address`` is a hard-wallet card's key (registered in the settlement contract): a
    card's key lives in its secure element and signs its offline payments, so it is never also a
    wallet (red team: a self-custody wallet was registered at an active card's address; the
    gateway refuses the converse, ``card-is-wallet``)."""
    try:
        ctx.hardwallet.card(address)
    except ContractError:  # HardWalletUnknownCard
        return False
    return True


def _card_problem(address: str) -> Problem:
    return Problem(
        422, "wallet-is-card", "A hard-wallet card's key cannot be registered as a wallet", address
    )


def _refuse_unusable_address(ctx: ServiceContext, address: str) -> None:
    """A self-custody wallet's address is neither a contract nor a card's key (422)."""
    if _has_code(ctx, address):
        raise _contract_problem(address)
    if _is_card(ctx, address):
        raise _card_problem(address)


def new_wallet(ctx: ServiceContext, w: WalletIn, identity_digest: str) -> Wallet:
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


# -- registering many --------------------------------------------------------------------------


def register_wallets(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, body: WalletBatchIn
) -> WalletBatchOut:
    """Register many wallets at once, each as :func:`register_wallet` would: on chain GROUP to a
    transaction (``registerBatch``), each group all or nothing and its own operation (idempotency
    key ``<key>#<n>``), so a replay with the same key and body answers the same wallets. Rows are
    checked together first (:func:`check_batch`); a group the chain refuses leaves no record."""
    if key.institution not in (None, 1):
        # ``registerBatch`` is the registry's own entry point: its wallets would be institution #1's.
        raise Problem(
            403,
            "institution-scope",
            "Batch registration registers institution 1's wallets",
            f"this key acts for institution {key.institution}: "
            "register its wallets one by one (POST /v1/wallets)",
        )
    groups = [body.wallets[i : i + GROUP] for i in range(0, len(body.wallets), GROUP)]
    digest = request_hash("wallet.register_batch", body.model_dump(mode="json"))
    with ctx.db.session() as s:
        begun = s.scalar(
            select(Operation.id).where(
                Operation.api_key_id == key.id, Operation.idempotency_key == f"{idem}#0"
            )
        )
    if begun is None:  # a replay is answered by its operations, whatever happened since
        check_batch(ctx, body.wallets)
    rows: list[WalletBatchRow] = []
    operations: list[OperationOut] = []
    for n, group in enumerate(groups):
        first = n * GROUP
        wallet_rows = [_row_request(ctx, w) for w in group]
        request = {"batch": digest, "first_row": first + 1, "wallets": wallet_rows}
        try:
            op, _ = perform(
                ops,
                "wallet.register_batch",
                key,
                f"{idem}#{n}",
                request,
                target=f"{len(group)} wallets",
                prepare=functools.partial(_kept_group, ctx, group, wallet_rows, first),
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
    return WalletBatchOut(status="confirmed" if done else "pending", wallets=rows, operations=operations)


def _row_request(ctx: ServiceContext, w: WalletIn) -> dict[str, Any]:
    """What is stored of one row: never the identity, only its hash."""
    row = w.model_dump(exclude={"identity", "address"})
    row["identity_hash"] = identity_hash(ctx.settings.identity_pepper, w.identity)
    if w.address is not None:
        row["address"] = w.address
    return row


def check_batch(ctx: ServiceContext, wallets: list[WalletIn]) -> None:
    """Every self-custody address new, once in the batch, and not registered on chain already:
    all errors in one 422 naming each row, before anything is created."""
    own = [w.address for w in wallets if w.address is not None]
    known: set[str] = set()
    with ctx.db.session() as s:
        for i in range(0, len(own), 500):
            known.update(s.scalars(select(Wallet.address).where(Wallet.address.in_(own[i : i + 500]))))
    errors: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for row, w in enumerate(wallets, start=1):
        if w.address is None:
            continue
        code = None
        if w.address in seen:
            reason = f"{w.address} is already in row {seen[w.address]}"
        elif w.address in known or ctx.cash.kind_of(w.address) != Kind.NONE:
            reason = f"{w.address} is registered already"
        elif _has_code(ctx, w.address):
            reason, code = f"{w.address} is a contract (it has code on chain)", "wallet-is-contract"
        elif _is_card(ctx, w.address):
            reason, code = f"{w.address} is a hard-wallet card's key", "wallet-is-card"
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


def _kept_group(
    ctx: ServiceContext, wallets: list[WalletIn], rows: list[dict[str, Any]], first: int
) -> dict[str, Any]:
    """What a batch group's operation records before it is sent: the addresses of its new wallets."""
    return {"addresses": _keep_wallets(ctx, wallets, rows, first)}


def _keep_wallets(
    ctx: ServiceContext, wallets: list[WalletIn], rows: list[dict[str, Any]], first: int = 0
) -> list[str]:
    """Create the custodial keys of a group and record its wallets; returns their addresses.
    A self-custody address another request recorded meanwhile (two concurrent batches sharing
    it, both past ``check_batch``) is a 409 naming its row (``first`` rows precede the group)."""
    addresses: list[str] = []
    records = []
    for w, row in zip(wallets, rows, strict=True):
        record = new_wallet(ctx, w, row["identity_hash"])
        addresses.append(record.address)
        records.append(record)
    with ctx.db.session() as s:
        s.add_all(records)
        try:
            s.commit()
        except IntegrityError:
            s.rollback()
            taken = set(s.scalars(select(Wallet.address).where(Wallet.address.in_(addresses))))
            clash = next((i for i, a in enumerate(addresses) if a in taken), None)
            raise Problem(
                409,
                "wallet-already-registered",
                "Wallet already registered",
                f"{addresses[clash]} was registered by another request meanwhile; nothing of this group was"
                if clash is not None
                else "a wallet of this group was registered by another request meanwhile",
                **({"row": first + clash + 1} if clash is not None else {}),
            ) from None
    return addresses


def _forget_group(ctx: ServiceContext, op_id: str | None) -> None:
    """A wallet or a group the chain refused (or that failed before it was sent) registered nothing: its
    wallet records go too, all or nothing, so no ghost wallet is listed or blocks a later batch."""
    if op_id is None:
        return
    with ctx.db.session() as s:
        op = s.get(Operation, op_id)
        if op is None or op.status != "failed":
            return
        request = op.request or {}
        if op.kind == "wallet.register_batch":
            addresses = list(request.get("addresses") or [])
        elif op.kind == "wallet.register" and request.get("address"):
            addresses = [request["address"]]
        else:
            return
        if addresses:
            s.execute(delete(Wallet).where(Wallet.address.in_(addresses)))
            s.commit()


# -- reads ---------------------------------------------------------------------------------------


def wallet_out(ctx: ServiceContext, address: str) -> WalletOut:
    """Balance, tier, limits, what is left of today's cap, frozen flag (read from the chain), with
    the operator's record of the wallet; 404 if neither the chain nor the record knows it."""
    state = ctx.cash.wallet_state(address)  # one round trip for the chain's side of the page
    info = state.info
    with ctx.db.session() as s:
        row = s.get(Wallet, address)
    if not info.registered and row is None:
        raise Problem(
            404, "wallet-not-found", "Wallet not found", f"{address} is neither registered nor known"
        )

    def cap(v: int) -> int | None:
        return None if v == UNLIMITED else v

    limits = info.limits
    spent = state.spent_today
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
        balance_fen=state.balance,
        limits=Limits(
            balance_cap_fen=cap(limits.balance_cap),
            payment_cap_fen=cap(limits.payment_cap),
            daily_cap_fen=cap(limits.daily_cap),
        )
        if limits
        else None,
        spent_today_fen=spent,
        remaining_today_fen=remaining,
        held_fen=state.held,
        retired=state.retired,
        successor=state.successor if state.retired else None,
    )


def list_wallets(
    ctx: ServiceContext,
    paging: PageQuery,
    *,
    only: str | None = None,
    kind: str | None = None,
    tier: int | None = None,
    identity: str | None = None,
    name: str | None = None,
    frozen: bool | None = None,
    custody: str | None = None,
    serves: Callable[..., bool] | None = None,
) -> Page[WalletItem]:
    """The registered wallets, by address, filtered (``only``: the one wallet a non-reader key may
    see; ``serves``: the institution scope of a key bound to one, services/common/scope.py
    ``read_filter``). The frozen flag is the chain's, read once per wallet listed or filtered."""
    q = select(Wallet)
    if only is not None:
        q = q.where(Wallet.address == only)
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
            states[row.address] = ctx.cash.is_frozen(row.address)
        return states[row.address]

    with ctx.db.session() as s:
        replacements = set(s.scalars(select(RecoveryRow.replacement)))

    def listed(row: Wallet) -> bool:
        # a recovery's replacement the chain never registered (its recovery still pending, or
        # cancelled) is no wallet yet: not listed
        if row.address in replacements and ctx.cash.kind_of(row.address) == Kind.NONE:
            return False
        if serves is not None and not serves(row.address):
            return False
        return frozen is None or frozen_now(row) == frozen

    with ctx.db.session() as s:
        rows, cursor = paginate(s, q, Wallet.address, paging, "wallets", keep=listed)
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


# -- one person, one identity; holds, court orders, recovery (issue 22) -------------------------


def _text(value: str, field: str) -> str:
    """A case number or reason the chain can hold (1 to 32 bytes of UTF-8): 422 otherwise."""
    try:
        bytes32_text(value)
    except ValueError as exc:
        raise Problem(422, "invalid-request", "The request is invalid", f"{field}: {exc}") from None
    return value


def _untext(raw: bytes) -> str:
    return raw.rstrip(b"\0").decode(errors="replace")


def personal_wallet_limit(ctx: ServiceContext) -> int:
    return ctx.cash.personal_wallet_limit()


def set_personal_wallet_limit(
    ops: Operations, key: ApiKey, idem: str, body: PersonalWalletLimitIn
) -> Operation:
    """The admin sets how many personal wallets one identity may hold per tier (chain-wide)."""
    op, _ = perform(ops, "cash.set_personal_wallet_limit", key, idem, body.model_dump(), target="registry")
    return op


def place_hold(ops: Operations, key: ApiKey, idem: str, body: HoldIn) -> Operation:
    """Hold ``amount_fen`` of a wallet: it cannot move by any path until lifted or taken by a court
    order; the rest of the balance can."""
    request = {
        **body.model_dump(),
        "reason": _text(body.reason, "reason"),
        "case_number": _text(body.case_number, "case_number"),
    }
    op, _ = perform(ops, "cash.place_hold", key, idem, request, target=body.wallet)
    return op


def _hold_out(h: Hold) -> HoldOut:
    return HoldOut(
        hold_id=h.hold_id,
        wallet=h.wallet,
        amount_fen=h.amount,
        active=h.active,
        reason=_untext(h.reason),
        case_number=_untext(h.case_number),
    )


def hold(ctx: ServiceContext, hold_id: int) -> HoldOut:
    h = ctx.cash.hold(hold_id)
    if h.wallet == ZERO:
        raise Problem(404, "hold-not-found", "Hold not found", f"no hold {hold_id}")
    return _hold_out(h)


def holds_of(ctx: ServiceContext, wallet: str) -> HoldsOut:
    """The active holds on ``wallet`` (read from the chain) and their total."""
    return HoldsOut(
        wallet=wallet,
        held_fen=ctx.cash.held_of(wallet),
        holds=[_hold_out(h) for h in ctx.cash.holds_of(wallet)],
    )


def lift_hold(ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, hold_id: int) -> Operation:
    """Lift a hold whole (its wallet read from the chain: the request names the hold only)."""
    found = hold(ctx, hold_id)
    request = {"hold_id": hold_id, "wallet": found.wallet}
    op, _ = perform(ops, "cash.lift_hold", key, idem, request, target=found.wallet)
    return op


def propose_court_order(ops: Operations, key: ApiKey, idem: str, body: CourtOrderIn) -> Operation:
    """The maker's half of a court order: signed with the first regulator key."""
    request = {**body.model_dump(by_alias=True), "case_number": _text(body.case_number, "case_number")}
    op, _ = perform(
        ops, "cash.propose_court_order", key, idem, request, target=f"{body.from_wallet}->{body.to}"
    )
    return op


def court_order(ctx: ServiceContext, order_id: int) -> CourtOrderOut:
    o = ctx.cash.court_order(order_id)
    if o.status == ProposalStatus.NONE:
        raise Problem(404, "court-order-not-found", "Court order not found", f"no court order {order_id}")
    return CourtOrderOut(
        order_id=order_id,
        status=o.status.name.lower(),
        from_wallet=o.from_wallet,
        to=o.to,
        amount_fen=o.amount,
        case_number=_untext(o.case_number),
        hold_id=o.hold_id,
        maker=o.maker,
    )


def _maker_key(ctx: ServiceContext, order_id: int) -> int | None:
    """The API key that proposed court order ``order_id`` through this service (its row, written
    when the proposal was confirmed; None for an order proposed outside the service)."""
    with ctx.db.session() as s:
        row = s.get(CourtOrder, order_id)
        return row.maker_key_id if row is not None else None


def list_court_orders(
    ctx: ServiceContext, paging: PageQuery, status: str | None = None
) -> Page[CourtOrderOut]:
    """The court orders proposed through the service, by id; each as the chain has it now (the
    status filter is judged on the chain's status)."""
    found: dict[int, CourtOrderOut] = {}

    def now(row: CourtOrder) -> CourtOrderOut:
        if row.order_id not in found:
            found[row.order_id] = court_order(ctx, row.order_id)
        return found[row.order_id]

    keep = None if status is None else (lambda row: now(row).status == status)
    with ctx.db.session() as s:
        rows, cursor = paginate(s, select(CourtOrder), CourtOrder.order_id, paging, "court-orders", keep=keep)
    return Page[CourtOrderOut](items=[now(r) for r in rows], next_cursor=cursor, limit=paging.limit)


def list_recoveries(ctx: ServiceContext, paging: PageQuery, status: str | None = None) -> Page[RecoveryOut]:
    """The recoveries proposed through the service, by id, each as the chain has it now."""
    found: dict[int, RecoveryOut] = {}

    def now(row: RecoveryRow) -> RecoveryOut:
        if row.recovery_id not in found:
            found[row.recovery_id] = recovery(ctx, row.recovery_id)
        return found[row.recovery_id]

    keep = None if status is None else (lambda row: now(row).status == status)
    with ctx.db.session() as s:
        rows, cursor = paginate(
            s, select(RecoveryRow), RecoveryRow.recovery_id, paging, "recoveries", keep=keep
        )
    return Page[RecoveryOut](items=[now(r) for r in rows], next_cursor=cursor, limit=paging.limit)


def approve_court_order(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, order_id: int
) -> Operation:
    """The checker's half: a different regulator API key than the maker's (two people), signed
    with the second regulator key (two keys on chain: ``CheckerIsMaker`` otherwise)."""
    court_order(ctx, order_id)  # 404 when there is none
    maker = _maker_key(ctx, order_id)
    if maker == key.id:
        raise Problem(
            403,
            "checker-is-maker",
            "The checker must be a different regulator key than the maker",
            f"this API key proposed court order {order_id}; another regulator approves it",
        )
    op, _ = perform(ops, "cash.approve_court_order", key, idem, {"order_id": order_id}, target=str(order_id))
    return op


def cancel_court_order(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, order_id: int
) -> Operation:
    court_order(ctx, order_id)
    op, _ = perform(ops, "cash.cancel_court_order", key, idem, {"order_id": order_id}, target=str(order_id))
    return op


def evidence_hash(evidence: str) -> str:
    """What is kept of a recovery's identity verification record: its SHA-256 (on chain too)."""
    return "0x" + hashlib.sha256(evidence.encode()).hexdigest()


def propose_recovery(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, lost: str, body: RecoveryIn
) -> Operation:
    """The operator's half of a recovery: the holder of ``lost`` proved who they are; a new wallet
    (custodial: created here, once; self-custody: the given address) is to take its place. The
    new wallet's record takes the lost one's kind, tier, category and identity hash; the chain
    registers it only when the regulator approves."""
    with ctx.db.session() as s:
        old = s.get(Wallet, lost)
    if old is None:
        raise Problem(404, "wallet-not-found", "Wallet not found", f"{lost} is not a wallet of this service")
    check_operator_scope(ctx, key, lost)  # two tiers: only the lost wallet's own institution
    if not _replayed(ctx, key, idem):
        _refuse_second_recovery(ctx, lost)
    if body.address is not None:
        with ctx.db.session() as s:
            if s.get(Wallet, body.address) is not None:
                raise Problem(409, "wallet-already-registered", "Wallet already registered", body.address)
        _refuse_unusable_address(ctx, body.address)
    request: dict[str, Any] = {
        "lost": lost,
        "custody": body.custody,
        "evidence_hash": evidence_hash(body.evidence),  # never the evidence itself
    }
    if body.address is not None:
        request["replacement"] = body.address

    def prepare() -> dict[str, Any]:
        if body.custody == "custodial":
            address, keystore = ctx.custody.create()
        else:
            address, keystore = body.address, None  # type: ignore[assignment]
        record = Wallet(
            address=address,
            kind=old.kind,
            tier=old.tier,
            category=old.category,
            display_name=old.display_name,
            identity_hash=old.identity_hash,
            custody=body.custody,
            keystore=keystore,
        )
        with ctx.db.session() as s:
            s.add(record)
            try:
                s.commit()
            except IntegrityError:
                raise Problem(
                    409, "wallet-already-registered", "Wallet already registered", address
                ) from None
        return {"replacement": address}

    try:
        op, _ = perform(ops, "cash.propose_recovery", key, idem, request, target=lost, prepare=prepare)
    except Problem as exc:
        _forget_replacement(ctx, exc.extra.get("operation_id"))
        raise
    return op


def _replayed(ctx: ServiceContext, key: ApiKey, idem: str) -> bool:
    """Whether this key started an operation with this idempotency key already (a replay gets
    its first answer, whatever changed since)."""
    with ctx.db.session() as s:
        found = s.scalar(
            select(Operation.id).where(Operation.api_key_id == key.id, Operation.idempotency_key == idem)
        )
    return found is not None


def _refuse_second_recovery(ctx: ServiceContext, lost: str) -> None:
    """409 ``recovery-pending`` while a recovery of ``lost`` waits for the regulator (proposed on
    chain) or is still on its way there: a second one could never be approved after the first and
    would leave a replacement that is never registered."""
    with ctx.db.session() as s:
        proposed = list(s.scalars(select(RecoveryRow.recovery_id).where(RecoveryRow.lost == lost)))
        waiting = s.scalars(
            select(Operation).where(Operation.kind == "cash.propose_recovery", Operation.status == "pending")
        )
        in_flight = next((op.id for op in waiting if (op.request or {}).get("lost") == lost), None)
    pending = [rid for rid in proposed if ctx.cash.recovery(rid).status == ProposalStatus.PENDING]
    if pending or in_flight is not None:
        detail = f"recovery {pending[0]}" if pending else f"operation {in_flight}"
        raise Problem(
            409,
            "recovery-pending",
            "A recovery of this wallet is pending",
            f"{lost}: {detail} waits for the regulator; approve or cancel it first",
        )


def _forget_replacement(ctx: ServiceContext, op_id: str | None) -> None:
    """A recovery proposal the chain refused leaves no replacement record."""
    if op_id is None:
        return
    with ctx.db.session() as s:
        op = s.get(Operation, op_id)
        if op is None or op.status != "failed" or op.kind != "cash.propose_recovery":
            return
        replacement = (op.request or {}).get("replacement")
        if replacement and ctx.cash.kind_of(replacement) == Kind.NONE:
            s.execute(delete(Wallet).where(Wallet.address == replacement))
            s.commit()


def recovery(ctx: ServiceContext, recovery_id: int) -> RecoveryOut:
    r = ctx.cash.recovery(recovery_id)
    if r.status == ProposalStatus.NONE:
        raise Problem(404, "recovery-not-found", "Recovery not found", f"no recovery {recovery_id}")
    return RecoveryOut(
        recovery_id=recovery_id,
        status=r.status.name.lower(),
        lost=r.lost,
        replacement=r.replacement,
        maker=r.maker,
        evidence_hash="0x" + r.evidence.hex(),
    )


def approve_recovery(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, recovery_id: int
) -> tuple[Operation, Swept | None]:
    """The regulator's half: the replacement takes the lost wallet's record and holding, the lost
    wallet is retired for good (refused everywhere: ``wallet-retired``); once the approval is
    confirmed, everything the families hold for the lost wallet moves to the replacement
    (:func:`recovery.sweep`, one operation per thing). A replay sweeps again: only what is
    still there moves."""
    found = recovery(ctx, recovery_id)
    request = {"recovery_id": recovery_id, "lost": found.lost, "replacement": found.replacement}
    op, _ = perform(ops, "cash.approve_recovery", key, idem, request, target=found.lost)
    if op.status != "confirmed":
        return op, None  # pending: POST .../holdings moves the families' holdings once it is
    return op, sweep(ctx, ops, key, recovery_id, found.lost, found.replacement)


def sweep_recovery(ctx: ServiceContext, ops: Operations, key: ApiKey, recovery_id: int) -> Swept:
    """Move what the families still hold for an approved recovery's lost wallet (again: a thing
    moved already is not there any more; a new one, e.g. a grant that reached the retired wallet
    since, is)."""
    found = recovery(ctx, recovery_id)
    if found.status != "executed":
        raise Problem(
            409,
            "recovery-not-approved",
            "The recovery is not approved",
            f"recovery {recovery_id} is {found.status}: nothing of the lost wallet moves before approval",
        )
    return sweep(ctx, ops, key, recovery_id, found.lost, found.replacement)
