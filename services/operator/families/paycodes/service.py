"""The paycodes family's logic: merchant payment codes (聚合支付码), one code every wallet form
can pay, settled as digital cash.

A code is a strict EIP-681 payment URI for the token (``ethereum:<token>@<chain>/transfer?address=
<merchant>&uint256=<fen>``): the standard's grammar admits only ``value``, ``gas``, ``gasLimit``,
``gasPrice`` and Solidity types as parameter keys, so a strict wallet would refuse anything more.
What xcpay adds -- ``mcc`` (the merchant's category), ``ref`` (the bill reference) and ``code``
(this code's id, so a wallet can report its payment here) -- is carried beside the URI, in the
code's ``extras`` field. Static codes take any amount; dynamic codes are one bill
(amount, reference, expiry) and are paid at most once, even by concurrent requests: a live payment
holds the code through a unique column until it confirms, or releases it if it fails.

Payer forms: a custodial wallet (the operator pays on its behalf); a self-custody wallet's own
signed token transfer, which the service checks (chain, token, payee, amount), simulates and relays
unchanged; or a voucher holder (custodial), whose programme pays its share of the bill and whose
wallet pays the rest, in one transaction; or a hard-wallet card, whose signed payment (checked
offline first: signer, payee, amount, an active card whose reserve plus the purses allowed at the
merchant's category cover it) the settlement contract settles from those purses, then from the
card's reserve. Every payment records its operation, hence its transaction and its events.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import segno
from eth_abi import decode as abi_decode
from hexbytes import HexBytes
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from web3.exceptions import TransactionNotFound

from chain.clients.token import Kind
from chain.rawtx import InvalidSignedTransaction, SignedTx, decode_signed
from chain.sender import node_errors
from services.common.context import ServiceContext
from services.common.keys import Role
from services.common.models import ApiKey, CodePayment, Operation, PaymentCode
from services.common.operations import Operations, perform, request_hash
from services.common.paging import Page, PageQuery, paginate
from services.common.problems import Problem
from services.common.scope import check_operator_scope
from services.operator.families.paycodes.schemas import (
    CardPaymentIn,
    CodeExtras,
    CodeIn,
    CodeOut,
    PayIn,
    PaymentOut,
)

PREFIX = "/v1/payment-codes"
TRANSFER_SELECTOR = bytes.fromhex("a9059cbb")  # transfer(address,uint256)


EIP681_KEYS = ("address", "uint256")  # the only keys our URIs use: Solidity types of transfer()


def payment_uri(token: str, chain_id: int, merchant: str, amount_fen: int | None) -> str:
    """The strict EIP-681 URI of a ``transfer(merchant, amount)`` of the token on ``chain_id``."""
    uri = f"ethereum:{token}@{chain_id}/transfer?address={merchant}"
    return uri if amount_fen is None else f"{uri}&uint256={amount_fen}"


def strict_uri(stored: str) -> str:
    """A stored URI without the keys codes made before strict EIP-681 carried (mcc, ref, code)."""
    head, _, query = stored.partition("?")
    kept = [p for p in query.split("&") if p.partition("=")[0] in EIP681_KEYS]
    return f"{head}?{'&'.join(kept)}" if kept else head


def may_act_for(key: ApiKey, merchant: str, *roles: Role) -> None:
    """A merchant key acts for its own wallet only; any other key needs one of ``roles``."""
    if key.role == Role.MERCHANT:
        if key.wallet != merchant:
            raise Problem(403, "not-your-merchant", "A merchant key acts only for its own wallet")
        return
    if key.role not in {str(r) for r in roles}:
        raise Problem(403, "forbidden-role", "This key's role may not do this", f"role {key.role!r}")


# -- creating and reading ----------------------------------------------------------------------


def create_code(ctx: ServiceContext, key: ApiKey, idem: str | None, body: CodeIn) -> str:
    """Create a static code (no amount) or a dynamic one (a bill: amount, optional reference, expiry)
    for a registered merchant; returns its id (the earlier one's, for a replayed ``idem``).

    A merchant's bill reference is held by one code at a time and paid at most once: while a code
    with it is open, being paid or paid, another is refused (409 reference-in-use naming it); a code
    that expired unpaid gives it up. The same ``idem`` and body answer with the same code; the same
    ``idem`` with another body is a 409, as for every other write."""
    digest = request_hash("code.create", body.model_dump(mode="json"))
    if idem is not None and (earlier := _created_with(ctx, key, idem, digest)) is not None:
        return earlier
    wallet = ctx.cash.wallet(body.merchant)
    if wallet.kind != Kind.MERCHANT:
        raise Problem(422, "not-a-merchant-wallet", "Not a registered merchant wallet", body.merchant)
    check_operator_scope(ctx, key, body.merchant)
    if wallet.frozen:
        raise Problem(409, "merchant-frozen", "The merchant's wallet is frozen", body.merchant)
    if body.reference is not None:
        _take_reference(ctx, body.merchant, body.reference)
    code_id = secrets.token_urlsafe(12)
    dynamic = body.amount_fen is not None
    uri = payment_uri(ctx.cash.token_address, ctx.tx.chain_id, body.merchant, body.amount_fen)
    with ctx.db.session() as s:
        s.add(
            PaymentCode(
                id=code_id,
                merchant=body.merchant,
                category=wallet.category,
                kind="dynamic" if dynamic else "static",
                amount_fen=body.amount_fen,
                reference=body.reference,
                held_reference=body.reference,
                expires_at=int(time.time()) + body.expires_in_s if dynamic else None,
                uri=uri,
                created_by=key.id,
                idempotency_key=idem,
                request_hash=digest,
            )
        )
        try:
            s.commit()
        except IntegrityError:  # a concurrent request with this key, or for this reference, won
            s.rollback()
            if idem is not None and (earlier := _created_with(ctx, key, idem, digest)) is not None:
                return earlier
            if body.reference is None:  # no other unique column can clash: a fault, not a conflict
                raise
            raise _reference_in_use(ctx, body.merchant, body.reference) from None
    return code_id


def _created_with(ctx: ServiceContext, key: ApiKey, idem: str, digest: str) -> str | None:
    """The code this key created with this Idempotency-Key (None: none yet); another body: 409."""
    with ctx.db.session() as s:
        code = s.scalar(
            select(PaymentCode).where(PaymentCode.created_by == key.id, PaymentCode.idempotency_key == idem)
        )
    if code is None:
        return None
    if code.request_hash != digest:
        raise Problem(
            409,
            "idempotency-key-reused",
            "Idempotency key reused with a different request",
            f"key {idem!r} was first used to create code {code.id} with another body",
            code_id=code.id,
        )
    return code.id


def _reference_in_use(ctx: ServiceContext, merchant: str, reference: str) -> Problem:
    with ctx.db.session() as s:
        holder = s.scalar(
            select(PaymentCode.id).where(
                PaymentCode.merchant == merchant, PaymentCode.held_reference == reference
            )
        )
    return Problem(
        409,
        "reference-in-use",
        "This bill reference belongs to another code of the merchant",
        f"code {holder} holds reference {reference!r} (open, being paid or paid); "
        "a code that expired unpaid gives its reference up",
        code_id=holder,
    )


def _take_reference(ctx: ServiceContext, merchant: str, reference: str) -> None:
    """Make ``reference`` free for a new code of ``merchant``, or raise reference-in-use.

    The code holding it gives it up only if it expired and no payment of it is live or confirmed.
    Giving it up and a payment's claim (``_claim_payment``) both write the code's row first, so one
    waits for the other and then sees what it did: a payment that got there first keeps the
    reference held, and a payment that comes after finds the code without it and is refused."""
    with ctx.db.session() as s:
        holder = s.scalar(
            select(PaymentCode).where(
                PaymentCode.merchant == merchant, PaymentCode.held_reference == reference
            )
        )
    if holder is None:
        return
    sync(ctx, holder.id)  # a failed payment gives the bill back
    if holder.expires_at is None or time.time() <= holder.expires_at:
        raise _reference_in_use(ctx, merchant, reference)
    with ctx.db.session() as s:
        s.execute(
            update(PaymentCode)
            .where(PaymentCode.id == holder.id, PaymentCode.held_reference == reference)
            .values(held_reference=None)
        )
        live = s.scalar(
            select(CodePayment.id).where(CodePayment.settles == holder.id, CodePayment.status != "shortfall")
        )
        if live is not None:
            s.rollback()
            raise _reference_in_use(ctx, merchant, reference)
        s.commit()


def find_code(ctx: ServiceContext, code_id: str) -> PaymentCode:
    with ctx.db.session() as s:
        code = s.get(PaymentCode, code_id)
    if code is None:
        raise Problem(404, "code-not-found", "Payment code not found", code_id)
    return code


def sync(ctx: ServiceContext, code_id: str) -> None:
    """Bring pending payments up to date with their operations (the reconciler may have finished them).

    A card payment's transaction confirms whatever the settlement decided, so its status comes from
    the settlement's event: settled pays the bill; a duplicate or a refusal moved nothing and releases
    it; a shortfall paid the merchant only part of it: the code ends ``short`` (final: what arrived
    is the payment's ``settled_fen``, which the merchant may refund), its bill reference freed.
    """
    with ctx.db.session() as s:
        pending = s.scalars(
            select(CodePayment).where(CodePayment.code_id == code_id, CodePayment.status == "pending")
        ).all()
        for p in pending:
            op = s.get(Operation, p.operation_id)
            if op is None or op.status == "pending":
                continue
            p.status, p.tx_hash = op.status, op.tx_hash
            if op.status == "confirmed" and p.form == "card":
                outcome, _ = card_outcome(op.result or {}, op.request["payment"])
                p.status = {"settled": "confirmed", "shortfall": "shortfall"}.get(outcome, "failed")
            if p.status == "failed":
                p.settles = None
        s.commit()


def _reason_name(reason: int) -> str:
    """The settlement's rejection reason as a word (RejectReason.HOLDER_REFUSED -> "holder-refused")."""
    from chain.clients.hardwallet import RejectReason

    try:
        return RejectReason(reason).name.lower().replace("_", "-")
    except ValueError:
        return f"reason {reason}"


def card_outcome(result: dict[str, Any], payment: dict[str, Any]) -> tuple[str, str]:
    """What the settlement contract decided for this card payment, from the operation's events."""
    names = {
        "PaymentSettled": "settled",
        "PaymentDuplicate": "duplicate",
        "PaymentRejected": "rejected",
        "PaymentShortfall": "shortfall",
    }
    for e in result.get("events", []):
        args = e.get("args", {})
        ours = args.get("card") == payment["card"] and args.get("counter") == payment["counter"]
        if e.get("name") in names and ours:
            detail = _reason_name(int(args["reason"])) if "reason" in args else ""
            if e["name"] == "PaymentShortfall":
                detail = f"only {args['covered']} of {args['amount']} fen was covered; the card is blocked"
            return names[e["name"]], detail
    return "missing", "the settlement reported nothing for this payment"


def settled_fen(ctx: ServiceContext, p: CodePayment) -> int | None:
    """What a payment moved to the merchant: all of it once confirmed, a shortfall's ``covered``
    (from its settlement event), nothing otherwise; None while pending."""
    if p.status == "confirmed":
        return p.amount_fen
    if p.status != "shortfall":
        return None if p.status == "pending" else 0
    with ctx.db.session() as s:
        op = s.get(Operation, p.operation_id)
    for e in ((op.result if op is not None else None) or {}).get("events", []):
        args = e.get("args", {})
        if e.get("name") == "PaymentShortfall" and args.get("card") == p.payer:
            return int(args["covered"])
    return 0


def code_out(ctx: ServiceContext, code_id: str) -> CodeOut:
    """The code as every read answers it: its status (active, paying, paid, short, expired), decided from
    its payments brought up to date first, and every payment with its transaction."""
    sync(ctx, code_id)
    code = find_code(ctx, code_id)
    with ctx.db.session() as s:
        payments = s.scalars(
            select(CodePayment).where(CodePayment.code_id == code_id).order_by(CodePayment.id)
        ).all()
    settled = any(p.settles is not None and p.status == "confirmed" for p in payments)
    if code.kind == "dynamic" and settled:
        status = "paid"
    elif code.kind == "dynamic" and any(p.settles is not None and p.status == "shortfall" for p in payments):
        status = "short"  # final: the card covered only part of it (each payment's settled_fen)
    elif code.kind == "dynamic" and any(p.settles is not None for p in payments):
        status = "paying"
    elif code.expires_at is not None and time.time() > code.expires_at:
        status = "expired"
    else:
        status = "active"
    return CodeOut(
        id=code.id,
        merchant=code.merchant,
        category=code.category,
        kind=code.kind,
        amount_fen=code.amount_fen,
        reference=code.reference,
        expires_at=code.expires_at,
        status=status,
        uri=strict_uri(code.uri),
        extras=CodeExtras(mcc=code.category, ref=code.reference, code=code.id),
        png=f"{PREFIX}/{code.id}.png",
        svg=f"{PREFIX}/{code.id}.svg",
        payments=[
            PaymentOut(
                id=p.id,
                form=p.form,
                payer=p.payer,
                amount_fen=p.amount_fen,
                status=p.status,
                operation_id=p.operation_id,
                tx_hash=p.tx_hash,
                settled_fen=settled_fen(ctx, p),
            )
            for p in payments
        ],
    )


def qr(code: PaymentCode) -> segno.QRCode:
    """The code as a QR symbol: it holds exactly the strict EIP-681 URI its JSON shows."""
    return segno.make(strict_uri(code.uri), error="m", micro=False)


# -- paying ------------------------------------------------------------------------------------


def pay(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, code: PaymentCode, body: PayIn
) -> Operation:
    """Pay ``code`` (the caller may: see the route). Custodial form: the operator pays from the
    payer's custodial wallet; voucher form: the programme pays its share and the payer's custodial
    wallet the rest; card form: the settlement pays from the card's reserve; signed transaction: the
    payer's own signed DigitalCash transfer to the merchant, relayed unchanged. Returns the
    operation (confirmed, or pending on a slow chain); a card payment the settlement did not settle
    is a 422 or 409 naming its outcome."""
    replay = _earlier(ctx, key, idem)
    if replay is None:
        _check_payable(ctx, code)
    request: dict[str, Any] = {"code": code.id, "merchant": code.merchant, "form": body.form}
    relayed: str | None = None  # the hash of a payer-signed transaction, recorded with the claim
    if body.form in ("custodial", "voucher"):
        assert body.payer is not None
        ctx.custodial(body.payer)
        check_operator_scope(ctx, key, body.payer)
        amount = _amount(code, body.amount_fen)
        request.update(payer=body.payer, amount_fen=amount)
        if body.form == "voucher":
            request["programme_id"] = body.programme_id
    elif body.form == "card":
        assert body.payment is not None
        amount = _check_card(ctx, code, body.payment, body.amount_fen)
        request.update(payer=body.payment.card, amount_fen=amount, payment=body.payment.model_dump())
    else:
        assert body.signed_transaction is not None
        signed, amount = _check_signed(ctx, code, bytes.fromhex(body.signed_transaction[2:]), body.amount_fen)
        if replay is None:
            _check_new(ctx, signed)
        request.update(payer=signed.sender, amount_fen=amount, raw=body.signed_transaction)
        relayed = signed.hash
    if request["payer"].lower() == code.merchant.lower():
        # Red team (LOW): a merchant paying itself moves nothing but makes a payment record (a
        # turnover, a refundable payment, a paid bill) out of nothing.
        raise Problem(
            422,
            "payer-is-merchant",
            "A merchant cannot pay its own payment code",
            f"the payer {request['payer']} is the code's merchant",
        )

    def claim() -> dict[str, Any]:
        """Record the payment. A dynamic code's bill is held by a unique column (one payer wins); a
        relayed transaction's hash is recorded now, before it is sent, in a unique column too (one
        payment wins it, even when two requests relay the same bytes at once)."""
        _claim_payment(ctx, code, body.form, request, key, idem, relayed)
        return {}

    if body.form == "card":
        card_addr, card_amount = request["payer"], request["amount_fen"]

        def claim_card() -> dict[str, Any]:
            """A card's claim runs under the card's lock (see :func:`_lock_card`), and counts the
            card's payments still being settled against its reserve: two bills that each fit the
            reserve but not together cannot both pass before either settles."""
            _claim_payment(ctx, code, body.form, request, key, idem, relayed, card=(card_addr, card_amount))
            return {}

        claim = claim_card

    try:
        op, _ = perform(ops, "code.pay", key, idem, request, target=code.id, prepare=claim)
    except Problem:
        sync(ctx, code.id)  # a failed payment releases a dynamic code
        raise
    sync(ctx, code.id)
    if body.form == "card" and op.status == "confirmed":
        outcome, detail = card_outcome(op.result or {}, request["payment"])
        if outcome != "settled":
            raise Problem(
                422 if outcome == "rejected" else 409,
                f"card-payment-{outcome}",
                f"The card payment was not settled ({outcome})",
                detail,
                operation_id=op.id,
            )
    return op


def _claim_payment(
    ctx: ServiceContext,
    code: PaymentCode,
    form: str,
    request: dict[str, Any],
    key: ApiKey,
    idem: str,
    relayed: str | None,
    card: tuple[str, int] | None = None,
) -> None:
    with ctx.db.session() as s:
        if card is not None:
            _lock_card(s, card[0])
            _check_cover(ctx, code.merchant, card[0], card[1], _card_in_flight(s, card[0]))
        if code.reference is not None:
            # Write the code's row first (see _take_reference): a new code may have taken this
            # expired bill's reference meanwhile, and then this code is no longer payable.
            s.execute(
                update(PaymentCode)
                .where(PaymentCode.id == code.id)
                .values(held_reference=PaymentCode.held_reference)
            )
            if s.scalar(select(PaymentCode.held_reference).where(PaymentCode.id == code.id)) is None:
                s.rollback()
                raise Problem(
                    409,
                    "code-expired",
                    "The payment code has expired",
                    f"its reference {code.reference!r} went to a newer code",
                )
        op_id = s.scalar(
            select(Operation.id).where(Operation.api_key_id == key.id, Operation.idempotency_key == idem)
        )
        s.add(
            CodePayment(
                code_id=code.id,
                settles=code.id if code.kind == "dynamic" else None,
                form=form,
                payer=request["payer"],
                amount_fen=request["amount_fen"],
                operation_id=op_id,
                tx_hash=relayed,
            )
        )
        try:
            s.commit()
        except IntegrityError:
            s.rollback()
            if relayed is not None and s.scalar(select(CodePayment.id).where(CodePayment.tx_hash == relayed)):
                raise _already_known(relayed, "another payment of a code recorded it") from None
            raise Problem(
                409, "code-already-paid", "This bill is paid (or being paid) already", code.id
            ) from None


def _already_known(tx_hash: str, why: str) -> Problem:
    return Problem(
        409,
        "transaction-already-known",
        "This transaction is not new: a transaction pays one bill, ever",
        f"{why}; sign a new transfer with the sender's next nonce",
        tx_hash=tx_hash,
    )


def _check_new(ctx: ServiceContext, tx: SignedTx) -> None:
    """A relayed transaction must be new: no payment recorded it, the node does not know it (mined
    or waiting), and its nonce is the sender's next one. Otherwise relaying it would find it known
    and take someone else's (or an earlier) payment for this bill."""
    with ctx.db.session() as s:
        recorded = s.scalar(select(CodePayment.code_id).where(CodePayment.tx_hash == tx.hash))
    if recorded is not None:
        raise _already_known(tx.hash, f"it was relayed for code {recorded} already")
    with node_errors():
        try:
            ctx.w3.eth.get_transaction(HexBytes(tx.hash))
            known = True
        except TransactionNotFound:
            known = False
        if known:
            raise _already_known(tx.hash, "the node has it already (mined, or waiting to be)")
        following = ctx.w3.eth.get_transaction_count(tx.sender, "pending")  # type: ignore[arg-type]
    if tx.nonce != following:
        raise Problem(
            409,
            "nonce-not-next",
            "The transaction's nonce is not the sender's next",
            f"nonce {tx.nonce}, and the sender's next is {following}: "
            + (
                "another transaction used it"
                if tx.nonce < following
                else "it would wait for the ones before it"
            ),
            nonce=tx.nonce,
            next_nonce=following,
        )


def merchant_of(ctx: ServiceContext, code_id: str) -> str | None:
    """The merchant of a code (None: no such code), for deciding a merchant key's access before
    a 404 could tell it that a code exists."""
    with ctx.db.session() as s:
        return s.scalar(select(PaymentCode.merchant).where(PaymentCode.id == code_id))


def _earlier(ctx: ServiceContext, key: ApiKey, idem: str) -> str | None:
    with ctx.db.session() as s:
        return s.scalar(
            select(Operation.id).where(Operation.api_key_id == key.id, Operation.idempotency_key == idem)
        )


def _check_payable(ctx: ServiceContext, code: PaymentCode) -> None:
    sync(ctx, code.id)
    if code.expires_at is not None and time.time() > code.expires_at:
        raise Problem(409, "code-expired", "The payment code has expired", f"it expired at {code.expires_at}")
    if code.kind == "dynamic":
        with ctx.db.session() as s:
            live = s.scalar(select(CodePayment).where(CodePayment.settles == code.id))
        if live is not None:
            raise Problem(
                409,
                "code-already-paid",
                "This bill is paid (or being paid) already",
                code.id,
                operation_id=live.operation_id,
            )
    if ctx.cash.wallet(code.merchant).frozen:
        raise Problem(409, "merchant-frozen", "The merchant's wallet is frozen", code.merchant)


def _amount(code: PaymentCode, given: int | None) -> int:
    if code.amount_fen is not None:
        if given is not None and given != code.amount_fen:
            raise Problem(
                422,
                "amount-mismatch",
                "The amount does not match the bill",
                f"the bill is {code.amount_fen} fen",
            )
        return code.amount_fen
    if given is None:
        raise Problem(422, "amount-required", "A static code needs the amount", "give amount_fen")
    return given


def _check_signed(
    ctx: ServiceContext, code: PaymentCode, raw: bytes, given: int | None
) -> tuple[SignedTx, int]:
    """The signed transaction must be a DigitalCash transfer to the code's merchant on this chain."""
    try:
        tx = decode_signed(raw)
    except InvalidSignedTransaction as exc:
        raise Problem(422, "invalid-signed-transaction", "Not a signed transaction", str(exc)) from None
    if tx.chain_id != ctx.tx.chain_id:
        raise Problem(
            422, "wrong-chain", "Signed for another chain", f"chain id {tx.chain_id}, not {ctx.tx.chain_id}"
        )
    if tx.to != ctx.cash.token_address or tx.data[:4] != TRANSFER_SELECTOR or len(tx.data) != 68 or tx.value:
        raise Problem(
            422, "not-a-cash-transfer", "Not a DigitalCash transfer", "sign transfer(merchant, amount)"
        )
    to, amount = abi_decode(["address", "uint256"], tx.data[4:])
    if to.lower() != code.merchant.lower():
        raise Problem(422, "wrong-payee", "The transfer does not pay this code's merchant", f"it pays {to}")
    if _amount(code, given if given is not None else amount) != amount:
        raise Problem(422, "amount-mismatch", "The amount does not match", f"the transfer is {amount} fen")
    return tx, int(amount)


# A purse counts towards a card bill only if it is still unexpired this long after the later of the
# latest block's time and the service's clock: on a quiet chain the latest block lags wall time, and
# the settlement's block comes after both (a purse expired by then would make it a shortfall).
PURSE_MARGIN_S = 5


def _lock_card(s: Session, card: str) -> None:
    """Serialise card claims per card until ``s`` commits, across processes: PostgreSQL takes a
    transaction-scoped advisory lock on the card's address; SQLite has one writer at a time, so a
    write (which matches no row) takes its write lock for the rest of the transaction."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"card:{card.lower()}"}
        )
    else:
        s.execute(update(PaymentCode).where(PaymentCode.id == "").values(id=PaymentCode.id))


def _card_in_flight(s: Session, card: str) -> int:
    """The fen of this card's code payments whose operation is still pending (not yet settled on
    chain, so not yet out of the reserve the chain shows)."""
    total = s.scalar(
        select(func.coalesce(func.sum(CodePayment.amount_fen), 0))
        .join(Operation, Operation.id == CodePayment.operation_id)
        .where(CodePayment.form == "card", CodePayment.payer == card, Operation.status == "pending")
    )
    return int(total or 0)


def _check_cover(ctx: ServiceContext, merchant: str, card_addr: str, amount: int, in_flight: int = 0) -> None:
    """The card's cash reserve plus its purses allowed at the merchant's category (unexpired a
    margin after now, :data:`PURSE_MARGIN_S`), less what its payments in flight will draw, must
    cover ``amount``: 409 card-reserve-too-low otherwise."""
    card = ctx.hardwallet.card(card_addr)
    need = amount + in_flight
    if card.reserve >= need:  # the purses allowed at this merchant pay first (CardPurses)
        return
    category = ctx.cash.wallet(merchant).category
    block_time = int(ctx.w3.eth.get_block("latest")["timestamp"])
    now = max(block_time, int(time.time())) + PURSE_MARGIN_S
    earmarked = ctx.hardwallet.purse_spendable(card_addr, category, now)
    if card.reserve + earmarked < need:
        pending = f", less {in_flight} fen of its payments still being settled" if in_flight else ""
        raise Problem(
            409,
            "card-reserve-too-low",
            "The card's reserve and the purses allowed here do not cover the bill",
            f"{amount} fen is above {card.reserve} fen of cash plus {earmarked} fen of purses "
            f"allowed at merchant category {category}{pending}",
        )


def _check_card(ctx: ServiceContext, code: PaymentCode, p: CardPaymentIn, given: int | None) -> int:
    """The card must have signed this payment to the code's merchant, for the bill, on this chain,
    and be active with its cash reserve plus the purses allowed at the merchant's category
    (unexpired now) to cover it: what the settlement draws (the contract checks it all again when
    it settles; a bill it could not cover would block the card as a clone)."""
    from chain.clients.hardwallet import CardStatus, Payment, SignedPayment, recover_card

    if p.merchant != code.merchant:
        raise Problem(422, "wrong-payee", "The card payment is not to this code's merchant", p.merchant)
    amount = _amount(code, given if given is not None else p.amount)
    if amount != p.amount:
        raise Problem(422, "amount-mismatch", "The amount does not match", f"the card signed {p.amount} fen")
    domain = ctx.hardwallet.domain
    payment = Payment(p.card, p.merchant, p.amount, p.counter, p.time)
    try:
        signer = recover_card(SignedPayment(payment, bytes.fromhex(p.signature[2:])), domain)
    except ValueError as exc:
        raise Problem(422, "invalid-signature", "Not a card signature", str(exc)) from None
    if signer != p.card:
        raise Problem(422, "invalid-signature", "The card did not sign this payment (or not for this chain)")
    card = ctx.hardwallet.card(p.card)
    if card.status != CardStatus.ACTIVE:
        raise Problem(
            409, "card-not-active", "The card is not active", f"its status is {card.status.name.lower()}"
        )
    _check_cover(ctx, code.merchant, p.card, p.amount)
    if ctx.cash.wallet(card.holder).frozen:  # the settlement would reject it (HolderRefused) and retry
        raise Problem(409, "card-holder-frozen", "The card holder's wallet is frozen", card.holder)
    return amount


# -- listing (issue 21: find what you created) --------------------------------------------------


def list_codes(
    ctx: ServiceContext,
    paging: PageQuery,
    *,
    merchant: str | None = None,
    status: str | None = None,
    reference: str | None = None,
    kind: str | None = None,
    serves: Callable[..., bool] | None = None,
) -> Page[CodeOut]:
    """The codes, by id, each as :func:`code_out` reads it, filtered (``status`` is decided per code;
    ``serves``: a key bound to an institution lists its own merchants' codes)."""
    q = select(PaymentCode)
    if merchant is not None:
        q = q.where(PaymentCode.merchant == merchant)
    if reference is not None:
        q = q.where(PaymentCode.reference == reference)
    if kind is not None:
        q = q.where(PaymentCode.kind == kind)
    outs: dict[str, CodeOut] = {}

    def out(row: PaymentCode) -> CodeOut:
        if row.id not in outs:
            outs[row.id] = code_out(ctx, row.id)
        return outs[row.id]

    def keep(row: PaymentCode) -> bool:
        if serves is not None and not serves(row.merchant):
            return False
        return status is None or out(row).status == status

    with ctx.db.session() as s:
        rows, cursor = paginate(
            s,
            q,
            PaymentCode.id,
            paging,
            "payment-codes",
            keep=keep if status is not None or serves is not None else None,
        )
    return Page[CodeOut](items=[out(r) for r in rows], next_cursor=cursor, limit=paging.limit)
