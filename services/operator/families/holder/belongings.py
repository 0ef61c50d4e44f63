"""What a holder holds besides the cash balance, and what they may do with it, on their own only:
hard-wallet cards (see the reserve, report one lost), prepaid packages (confirm sessions, cancel),
vouchers (what is held, where it pays, campaign grants to claim) and disbursement rows paid to
them (with the claims they may make).

Every action reuses its family's existing path and contract call; the holder's channel adds only
the check that the thing is the holder's own, made before anything is recorded. Another's card,
package, grant or row and one that does not exist get the same 404, so that ids (sequential for
packages) tell a holder nothing of others.

- **Report a card lost**: ``HardWalletSettlement.reportLost``, the call the gateway's
  ``/v1/cards/{card}/report-lost`` makes, under the contract's grace rule (payments signed before
  the report still settle within the card's grace period). The contract takes the holder or an
  operator as the caller: a custodial holder's report is signed with the holder's own key (the
  event names the holder as reporter); a self-custody holder's with the operator's key, on the
  holder's signed-in request, since a resident who lost a card may have lost the phone with it
  and a loss report must not wait for them to sign a transaction.
- **Confirm sessions, cancel a package**: ``PrepaidEscrow.consume`` / ``cancel``, which only the
  package's consumer may call. Custodial holders: the prepaid family's own operations
  (``prepaid.consume``, ``prepaid.cancel``), signed with the holder's key. Self-custody: nothing is
  sent; the answer is the call to sign, as a mandate's revocation.
- **Claim a campaign voucher grant**: ``VoucherProgrammes.claim`` (anyone may submit a leaf; the
  grant only ever goes to the leaf's holder), the vouchers family's ``voucher.claim`` operation.
- **Claim a disbursement row**: an unpaid row of a Merkle batch (``Disbursement.claim``, anyone may
  submit it for the recipient) or a payout exception whose cause is gone (``retryException``, the
  disburse family's ``disburse.retry``). The operator's key signs; the money goes only to the row's
  recipient.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, cast, select

from chain.clients.disburse import BatchStatus
from chain.clients.hardwallet import CardInfo, CardStatus
from chain.clients.prepaid import Package, PackageStatus
from chain.clients.vouchers import name_text
from chain.exceptions import ContractError
from services.common.context import ServiceContext
from services.common.humanize import wallet_names
from services.common.models import ApiKey, ChainEvent, GatewayCard, Operation, Wallet
from services.common.operations import Operations, perform
from services.common.problems import Problem, contract_problem
from services.operator.families.disburse.models import Disbursement, DisbursementRow
from services.operator.families.holder.schemas import (
    CardOut,
    ClaimableLeafOut,
    DisbursementRowOut,
    UnsignedCall,
    VoucherMerchantOut,
    VoucherOut,
)
from services.operator.families.vouchers.models import VoucherLeaf

MAX_MERCHANTS = 100  # where a voucher pays: at most this many merchants listed
# batches past approval: their rows are the holder's money (a draft may still be cancelled)
PAYING = ("approved", "executing", "executed", "closed")


def chain_now(ctx: ServiceContext) -> int:
    return int(ctx.w3.eth.get_block("latest")["timestamp"])


def _events_of(ctx: ServiceContext, contract: str, event: str, arg: str, wallet: str) -> list[ChainEvent]:
    """The indexed ``contract.event``s whose ``arg`` is ``wallet`` (exactly, after a text prefilter)."""
    q = select(ChainEvent).where(
        ChainEvent.contract == contract,
        ChainEvent.name == event,
        cast(ChainEvent.args, String).contains(wallet),
    )
    with ctx.db.session() as s:
        return [e for e in s.scalars(q) if e.args.get(arg) == wallet]


def stored(ctx: ServiceContext, key: ApiKey, idem: str) -> Operation | None:
    """The operation this key already started with this idempotency key, if any. A replayed
    action skips the checks made before an operation (the card is lost by then, the package
    cancelled, the row paid) and gets the first outcome, as every idempotent POST does."""
    with ctx.db.session() as s:
        return s.scalar(
            select(Operation).where(Operation.api_key_id == key.id, Operation.idempotency_key == idem)
        )


def unsigned(ctx: ServiceContext, fn: Any, eip681: str) -> UnsignedCall:
    """A call for a self-custody holder to sign and send themselves."""
    to = str(fn.address)
    chain_id = ctx.manifest.chain_id
    return UnsignedCall(
        chain_id=chain_id,
        to=to,
        data=fn._encode_transaction_data(),
        eip681=f"ethereum:{to}@{chain_id}/{eip681}",
    )


# -- cards ---------------------------------------------------------------------------------------


def _card_out(ctx: ServiceContext, info: CardInfo, serial: str | None, offline_cap: int) -> CardOut:
    lost = info.status in (CardStatus.LOST, CardStatus.CLOSED) and info.lost_at > 0
    return CardOut(
        card=info.card,
        holder=info.holder,
        form=info.form.name.lower(),
        serial=serial,
        status=info.status.name.lower(),
        reserve_fen=info.reserve,
        loaded_fen=info.loaded,
        settled_fen=info.settled,
        refunded_fen=info.refunded,
        shortfall_fen=info.shortfall,
        lost_at=info.lost_at if lost else None,
        grace_ends_at=info.grace_ends_at if lost else None,
        offline_cap_fen=offline_cap,
    )


def card_holders(ctx: ServiceContext, wallet: str) -> set[str]:
    """The wallet and the wallets a recovery retired to it, transitively (``WalletRetiredTo``
    events): a card stays registered to the wallet it was issued to, so a resident who lost the
    phone and got a new wallet still sees, and may report lost, the cards of the old one."""
    holders, frontier = {wallet}, {wallet}
    while frontier:
        found: set[str] = set()
        for successor in frontier:
            retired = _events_of(ctx, "WalletRegistry", "WalletRetiredTo", "successor", successor)
            found |= {str(e.args["wallet"]) for e in retired}
        frontier = found - holders
        holders |= frontier
    return holders


def cards(ctx: ServiceContext, wallet: str) -> list[CardOut]:
    """The holder's cards: those the gateway issued to the wallet (or to a wallet it replaced by
    a recovery) and any the chain registered to them (``CardRegistered``), each as the chain
    holds it now, in address order."""
    holders = card_holders(ctx, wallet)
    found: set[str] = set()
    for holder in holders:
        registered = _events_of(ctx, "HardWalletSettlement", "CardRegistered", "holder", holder)
        found |= {str(e.args["card"]) for e in registered}
    with ctx.db.session() as s:
        rows = s.scalars(select(GatewayCard).where(GatewayCard.holder.in_(holders)))
        serials = {r.address: r.serial for r in rows}
    found |= set(serials)
    if not found:
        return []
    cap = ctx.hardwallet.offline_cap()
    out = []
    for card in sorted(found):
        info = ctx.hardwallet.card(card)
        if info.holder in holders:  # the chain decides whose card it is
            out.append(_card_out(ctx, info, serials.get(card), cap))
    return out


def own_card(ctx: ServiceContext, wallet: str, card: str) -> CardInfo:
    """The card, if it is the holder's (or a wallet's it replaced); another's and an unknown one:
    the same 404."""
    try:
        info = ctx.hardwallet.card(card)
    except ContractError as exc:
        if exc.name != "HardWalletUnknownCard":
            raise contract_problem(exc) from None
        info = None
    if info is None or info.holder not in card_holders(ctx, wallet):
        raise Problem(404, "card-not-found", "No such card of yours", card)
    return info


def report_lost(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, wallet: str, card: str, custodial: bool
) -> Operation:
    """Report the holder's card lost (the gateway's ``reportLost`` call, the contract's grace
    rule). Only an active or blocked card can be: another status is ``card-wrong-status``. A
    replay skips the checks and answers the first outcome (or ``idempotency-key-reused``)."""
    if stored(ctx, key, idem) is None:
        info = own_card(ctx, wallet, card)
        if info.status not in (CardStatus.ACTIVE, CardStatus.BLOCKED):
            raise Problem(
                409,
                "card-wrong-status",
                "The card is not in the status this needs",
                f"the card is {info.status.name.lower()}; only an active or blocked card is reported lost",
            )
        holder: str | None = info.holder
    else:
        try:  # a card's holder never changes on chain: the replay names the same signer
            holder = ctx.hardwallet.card(card).holder
        except ContractError:
            holder = None
    # The custodial holder's own key signs for a card of their wallet; the operator's for a
    # self-custody holder and for a card of a wallet a recovery retired (the contract takes an
    # operator's report; the retired wallet's key is not the holder's any more).
    own = custodial and holder == wallet
    request = {"holder": wallet, "card": card, "signer": "holder" if own else "operator"}
    op, _ = perform(ops, "holder.card.report_lost", key, idem, request, target=card)
    return op


# -- prepaid packages ----------------------------------------------------------------------------


def own_package(ctx: ServiceContext, wallet: str, package_id: int) -> Package:
    """An open package of the holder's; another's and an unknown one: the same 404."""
    try:
        p: Package | None = ctx.prepaid.package(package_id)
    except ContractError as exc:
        if exc.name != "PrepaidUnknownPackage":
            raise contract_problem(exc) from None
        p = None
    if p is None or p.status == PackageStatus.NONE or p.consumer != wallet:
        raise Problem(404, "package-not-found", "No such package of yours", f"package {package_id}")
    if p.status != PackageStatus.OPEN:
        raise Problem(
            409,
            "package-closed",
            "The package is no longer open",
            f"package {package_id} is {p.status.name.lower()}",
        )
    return p


def consume(ops: Operations, key: ApiKey, idem: str, package_id: int, sessions: int) -> Operation:
    """The custodial holder confirms sessions: the prepaid family's own operation."""
    request = {"id": package_id, "sessions": sessions}
    op, _ = perform(ops, "prepaid.consume", key, idem, request, target=str(package_id))
    return op


def cancel(ops: Operations, key: ApiKey, idem: str, package_id: int) -> Operation:
    """The custodial holder cancels: the prepaid family's own operation."""
    op, _ = perform(ops, "prepaid.cancel", key, idem, {"id": package_id}, target=str(package_id))
    return op


def consume_unsigned(ctx: ServiceContext, package_id: int, sessions: int) -> UnsignedCall:
    fn = ctx.prepaid.consume_call(package_id, sessions)
    return unsigned(ctx, fn, f"consume?uint256={package_id}&uint32={sessions}")


def cancel_unsigned(ctx: ServiceContext, package_id: int) -> UnsignedCall:
    return unsigned(ctx, ctx.prepaid.cancel_call(package_id), f"cancel?uint256={package_id}")


# -- vouchers ------------------------------------------------------------------------------------


def _status(p: Any, now: int) -> str:
    if p.budget_returned:
        return "closed"
    if now > p.expires_at:
        return "expired"
    return "upcoming" if now < p.starts_at else "open"


def _where_it_pays(
    ctx: ServiceContext, s: Any, pid: int, p: Any, categories: list[int]
) -> list[VoucherMerchantOut]:
    """The listed merchants (a programme with a merchant list), else the registered merchants of
    the programme's categories; either way at most MAX_MERCHANTS, by address."""
    if p.merchant_list:
        events = s.scalars(
            select(ChainEvent).where(
                ChainEvent.contract == "VoucherProgrammes",
                ChainEvent.subject == pid,
                ChainEvent.name == "MerchantListed",
            )
        )
        listed = sorted({str(e.args["merchant"]) for e in events})
        listed = [m for m in listed if ctx.vouchers.is_listed(pid, m)][:MAX_MERCHANTS]
        rows = s.scalars(select(Wallet).where(Wallet.address.in_(listed))).all() if listed else []
        category = {r.address: r.category for r in rows}
        merchants = [(m, category.get(m, 0)) for m in listed]
    else:
        rows = s.scalars(
            select(Wallet)
            .where(Wallet.kind == "merchant", Wallet.category.in_(categories))
            .order_by(Wallet.address)
            .limit(MAX_MERCHANTS)
        ).all()
        merchants = [(r.address, r.category) for r in rows]
    names = wallet_names(s, {m for m, _ in merchants})
    return [VoucherMerchantOut(merchant=m, name=names.get(m.lower()), category=c) for m, c in merchants]


def vouchers(ctx: ServiceContext, wallet: str) -> list[VoucherOut]:
    """The programmes the holder was granted from or has a campaign grant in, by id."""
    pids = {int(e.args["id"]) for e in _events_of(ctx, "VoucherProgrammes", "Granted", "holder", wallet)}
    # grants a recovery moved here from a retired wallet (the chain's holding decides below)
    pids |= {
        int(e.args["id"])
        for e in _events_of(ctx, "VoucherProgrammes", "GrantsRecovered", "successor", wallet)
    }
    with ctx.db.session() as s:
        leaves = s.execute(
            select(VoucherLeaf.programme_id, VoucherLeaf.idx, VoucherLeaf.amount_fen).where(
                VoucherLeaf.holder.in_(card_holders(ctx, wallet))  # the wallets retired to it too
            )
        ).all()
    pids |= {int(pid) for pid, _, _ in leaves}
    if not pids:
        return []
    now = chain_now(ctx)
    out = []
    with ctx.db.session() as s:
        for pid in sorted(pids):
            p = ctx.vouchers.programme(pid)
            h = ctx.vouchers.holding(pid, wallet)
            categories = ctx.vouchers.categories(pid)
            claimable = [
                ClaimableLeafOut(index=int(i), amount_fen=int(a))
                for q, i, a in sorted(leaves)
                if q == pid and now <= p.expires_at and not ctx.vouchers.is_claimed(pid, int(i))
            ]
            names = wallet_names(s, {p.issuer})
            out.append(
                VoucherOut(
                    programme_id=pid,
                    name=name_text(p.name),
                    issuer=p.issuer,
                    issuer_name=names.get(p.issuer.lower()),
                    status=_status(p, now),
                    starts_at=p.starts_at,
                    expires_at=p.expires_at,
                    granted_fen=h.granted,
                    spent_fen=h.spent,
                    returned_fen=h.returned,
                    balance_fen=h.balance,
                    min_bill_fen=p.min_bill,
                    discount_fen=p.discount_per_spend,
                    categories=sorted(categories),
                    merchant_list=p.merchant_list,
                    merchants=_where_it_pays(ctx, s, pid, p, categories),
                    claimable=claimable,
                )
            )
    return out


def own_leaf(ctx: ServiceContext, wallet: str, pid: int, index: int) -> VoucherLeaf:
    """The holder's campaign grant; another's and a missing one: the same 404."""
    with ctx.db.session() as s:
        row = s.scalar(select(VoucherLeaf).where(VoucherLeaf.programme_id == pid, VoucherLeaf.idx == index))
    if row is None or row.holder not in card_holders(ctx, wallet):
        raise Problem(
            404, "leaf-not-found", "No such campaign grant of yours", f"programme {pid} grant {index}"
        )
    if ctx.vouchers.is_claimed(pid, index):
        raise Problem(
            409, "already-claimed", "This grant was claimed already", f"programme {pid} grant {index}"
        )
    return row


def claim_voucher(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, wallet: str, pid: int, index: int
) -> Operation:
    """The vouchers family's own claim (the operator submits; the grant goes to the leaf's holder).
    A leaf addressed to a wallet a recovery retired to ``wallet`` is granted to that retired wallet
    (the chain's rule), then moved on to ``wallet`` (``recoverGrants``, one step per recovery,
    each an operation under ``<idem>#recover-<n>``)."""
    op, _ = perform(ops, "voucher.claim", key, idem, {"programme": pid, "index": index}, target=str(pid))
    with ctx.db.session() as s:
        holder = s.scalar(
            select(VoucherLeaf.holder).where(VoucherLeaf.programme_id == pid, VoucherLeaf.idx == index)
        )
    n = 0
    while (
        op.status == "confirmed" and holder is not None and holder != wallet and ctx.cash.is_retired(holder)
    ):
        successor = ctx.cash.successor_of(holder)
        request = {"lost": holder, "successor": successor, "programme": pid}
        try:
            perform(ops, "vouchers.recover_grants", key, f"{idem}#recover-{n}", request, target=str(pid))
        except Problem as exc:
            if exc.slug != "nothing-held":  # a recovery sweep moved it meanwhile: fine
                raise
        holder, n = successor, n + 1
    return op


# -- disbursement rows ---------------------------------------------------------------------------


def _row_state(ctx: ServiceContext, b: Disbursement, r: DisbursementRow, now: int) -> tuple[str, bool]:
    """The row's status (a pending Merkle row claimed outside the runner reads as paid) and
    whether the holder may claim it now (the batch approved on chain and not ended)."""
    if r.status not in ("pending", "exception") or now > b.ends_at:
        return r.status, False
    bid = bytes.fromhex(b.batch_id[2:])
    if r.status == "pending" and b.mode == "merkle" and ctx.disburse.is_claimed(bid, r.idx):
        return "paid", False
    approved = ctx.disburse.batch(bid).status == BatchStatus.APPROVED
    if r.status == "exception":
        return r.status, approved and ctx.disburse.exception(bid, r.idx) is not None
    return r.status, approved and b.mode == "merkle"


def _recovered_rows(ctx: ServiceContext, wallet: str) -> set[tuple[str, int]]:
    """(batch id, row index) of the rows a recovery re-addressed to ``wallet`` on chain
    (``PayoutRecovered``: a frozen row's exception or an unclaimed Merkle leaf of a retired wallet)."""
    events = _events_of(ctx, "Disbursement", "PayoutRecovered", "successor", wallet)
    return {(str(e.args["id"]).lower(), int(e.args["index"])) for e in events}


def _is_recovered(b: Disbursement, r: DisbursementRow, recovered: set[tuple[str, int]]) -> bool:
    return (b.batch_id.lower(), r.idx) in recovered


def _recovered_state(ctx: ServiceContext, b: Disbursement, r: DisbursementRow, now: int) -> tuple[str, bool]:
    """A re-addressed row is an exception owed to the successor until it is paid again."""
    bid = bytes.fromhex(b.batch_id[2:])
    if now > b.ends_at or ctx.disburse.exception(bid, r.idx) is None:
        return ("paid" if r.status in ("pending", "exception") else r.status), False
    return "exception", ctx.disburse.batch(bid).status == BatchStatus.APPROVED


def disbursements(ctx: ServiceContext, wallet: str) -> list[DisbursementRowOut]:
    """Every row addressed to the holder's wallet, or re-addressed to it by a recovery, newest
    batch first."""
    recovered = _recovered_rows(ctx, wallet)
    q = (
        select(DisbursementRow, Disbursement)
        .join(Disbursement, Disbursement.ref == DisbursementRow.ref)
        .where(DisbursementRow.recipient.in_(card_holders(ctx, wallet)), Disbursement.status.in_(PAYING))
        .order_by(Disbursement.created_at.desc(), DisbursementRow.idx)
    )
    now = chain_now(ctx)
    with ctx.db.session() as s:
        pairs = [
            (r, b) for r, b in s.execute(q).all() if r.recipient == wallet or _is_recovered(b, r, recovered)
        ]
        names = wallet_names(s, {b.payer for _, b in pairs})
    out = []
    for r, b in pairs:
        if r.recipient != wallet:
            status, claimable = _recovered_state(ctx, b, r, now)
        else:
            status, claimable = _row_state(ctx, b, r, now)
        out.append(
            DisbursementRowOut(
                reference=b.ref,
                index=r.idx,
                payer=b.payer,
                payer_name=names.get(b.payer.lower()),
                purpose=b.purpose,
                amount_fen=r.amount_fen,
                mode=b.mode,
                status=status,
                reason=r.reason,
                ends_at=b.ends_at,
                claimable=claimable,
            )
        )
    return out


def own_row(ctx: ServiceContext, wallet: str, ref: str, index: int) -> tuple[Disbursement, DisbursementRow]:
    """The holder's row; another's and a missing one: the same 404."""
    with ctx.db.session() as s:
        pair = s.execute(
            select(DisbursementRow, Disbursement)
            .join(Disbursement, Disbursement.ref == DisbursementRow.ref)
            .where(DisbursementRow.ref == ref, DisbursementRow.idx == index)
        ).first()
    mine = pair is not None and (
        pair[0].recipient == wallet or _is_recovered(pair[1], pair[0], _recovered_rows(ctx, wallet))
    )
    if pair is None or not mine:
        raise Problem(404, "row-not-found", "No such row of yours", f"batch {ref!r} row {index}")
    return pair[1], pair[0]


def claim_row(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, wallet: str, ref: str, index: int
) -> Operation:
    """Claim the holder's unpaid Merkle row, or have a payout exception paid again."""
    b, r = own_row(ctx, wallet, ref, index)
    first = stored(ctx, key, idem)
    if first is not None:  # a replay: the first outcome (or idempotency-key-reused)
        status, claimable = ("exception" if first.kind == "disburse.retry" else "pending"), True
    elif r.recipient != wallet:  # re-addressed here by a recovery
        status, claimable = _recovered_state(ctx, b, r, chain_now(ctx))
    else:
        status, claimable = _row_state(ctx, b, r, chain_now(ctx))
    if not claimable:
        raise Problem(
            409,
            "row-not-claimable",
            "Nothing to claim on this row now",
            f"the row is {status}; the batch {ref!r} is {b.status} and ends at {b.ends_at} (unix seconds)",
        )
    if status == "exception":
        op, _ = perform(ops, "disburse.retry", key, idem, {"ref": ref, "index": index}, target=ref)
    else:
        request = {"ref": ref, "index": index, "recipient": wallet, "amount_fen": r.amount_fen}
        op, _ = perform(ops, "holder.disburse.claim", key, idem, request, target=ref)
    return op
