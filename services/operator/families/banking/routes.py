"""The banking family's HTTP routes (two-tier operation, issue 24): the central bank's reserves,
the institutions' customer accounts and wallet links, top-ups and redemptions through the bank,
and each institution's statement. Thin: authorise, call ``service``/``statement``, answer.

An operator key acts for one institution (``ApiKey.institution``, #1 when unset) and reaches only
the wallets and accounts that institution serves; the central bank is the regulator's key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from services.common.deps import CtxDep, IdempotencyKey, OperatorKey, OpsDep, ReaderKey, RegulatorKey
from services.common.models import Operation
from services.common.operations import perform
from services.common.problems import Problem, problem_from_stored
from services.common.schemas import Address, OperationOut, respond
from services.operator.families.banking import service, statement
from services.operator.families.banking.models import BankAccount, BankTransfer
from services.operator.families.banking.schemas import (
    AccountIn,
    AccountOut,
    BankTransferIn,
    BankTransferOut,
    InstitutionIn,
    InstitutionOut,
    InstitutionsOut,
    LinkIn,
    LinksOut,
    ReserveIn,
    StatementOut,
)

InstitutionId = Annotated[int, Path(ge=1, lt=2**31)]

# -- the central bank ---------------------------------------------------------------------------

institutions = APIRouter(prefix="/v1/institutions", tags=["institutions"])


@institutions.get("")
def list_institutions(ctx: CtxDep, key: ReaderKey) -> InstitutionsOut:
    """Every operator institution: its reserve, what it has outstanding, its headroom."""
    items = [_institution_out(i) for i in ctx.institutions.institutions()]
    totals = ctx.institutions.totals()
    return InstitutionsOut(
        items=items, supply_fen=ctx.cash.total_supply(), total_reserve_fen=totals["reserve"]
    )


@institutions.post("", status_code=201, responses={202: {"model": OperationOut}})
def add_institution(
    body: InstitutionIn, ops: OpsDep, key: RegulatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """The central bank authorises an operator institution signing with ``signer`` (its reserve
    starts at zero). Once the book has it, the token's admin key grants that key the issuer role
    (``banking.grant_issuer``, idempotency key ``<key>:issuer``), so the institution can issue
    within the reserve the central bank allocates; without an admin key configured the answer is
    503 ``admin-key-missing`` and a retry with the same key finishes the grant."""
    op, _ = perform(ops, "banking.add_institution", key, idem, body.model_dump(), target=body.name)
    if op.status == "confirmed" and not ops.ctx.cash.is_issuer(body.signer):
        perform(ops, "banking.grant_issuer", key, f"{idem}:issuer", {"signer": body.signer}, target=body.name)
    return respond(op, response, done_status=201)


def _reserve(
    ctx: CtxDep, ops: OpsDep, key: RegulatorKey, idem: str, kind: str, institution: int, amount: int
) -> Operation:
    if not 1 <= institution <= ctx.institutions.count():
        raise Problem(404, "institution-not-found", "Institution not found", f"no institution {institution}")
    op, _ = perform(
        ops, kind, key, idem, {"institution": institution, "amount_fen": amount}, target=str(institution)
    )
    return op


@institutions.post("/{institution}/reserve/allocations", responses={202: {"model": OperationOut}})
def allocate(
    institution: InstitutionId,
    body: ReserveIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: RegulatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """The central bank allocates ``amount_fen`` of reserve: the institution may issue that much more."""
    return respond(_reserve(ctx, ops, key, idem, "banking.allocate", institution, body.amount_fen), response)


@institutions.post("/{institution}/reserve/withdrawals", responses={202: {"model": OperationOut}})
def withdraw(
    institution: InstitutionId,
    body: ReserveIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: RegulatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """The central bank withdraws reserve; never below what the institution has outstanding
    (409 ``reserve-below-outstanding``)."""
    return respond(_reserve(ctx, ops, key, idem, "banking.withdraw", institution, body.amount_fen), response)


@institutions.get("/{institution}/statement")
def institution_statement(institution: InstitutionId, ctx: CtxDep, key: ReaderKey) -> StatementOut:
    """The institution's side of every movement of its customers' cash (issued, redeemed, paid to
    or from another institution's customers, 互联互通) and its bank journal. An operator key sees
    only its own institution's."""
    if key.role == "operator" and service.institution_of(key) != institution:
        raise Problem(
            403,
            "institution-scope",
            "Another institution's statement",
            f"this key acts for institution {service.institution_of(key)}",
        )
    return statement.statement(ctx, institution)


def _institution_out(i: object) -> InstitutionOut:
    from chain.clients.tiers import Institution

    assert isinstance(i, Institution)
    return InstitutionOut(
        id=i.id,
        signer=i.signer,
        name=i.name.rstrip(b"\0").decode(errors="replace"),
        reserve_fen=i.reserve,
        outstanding_fen=i.outstanding,
        issued_fen=i.issued,
        redeemed_fen=i.redeemed,
        headroom_fen=i.headroom,
    )


# -- accounts and links ---------------------------------------------------------------------------

bank = APIRouter(prefix="/v1/bank", tags=["bank"])


def _account_out(account: BankAccount, balance: int) -> AccountOut:
    return AccountOut(
        id=account.id,
        institution=account.institution,
        masked=account.masked,
        holder=account.holder,
        balance_fen=balance,
    )


@bank.post("/accounts", status_code=201)
def open_account(body: AccountIn, ctx: CtxDep, key: OperatorKey) -> AccountOut:
    """Open a customer's deposit account at the key's institution (simulated core banking), with
    an opening deposit. The number is answered masked, here and everywhere."""
    account = service.open_account(
        ctx, service.institution_of(key), body.number, body.holder, body.opening_balance_fen
    )
    return _account_out(account, body.opening_balance_fen)


@bank.get("/accounts/{account_id}")
def get_account(
    account_id: Annotated[int, Path(ge=1, lt=2**31)], ctx: CtxDep, key: OperatorKey
) -> AccountOut:
    account, balance = service.account_of(ctx, key, account_id)
    return _account_out(account, balance)


wallet_links = APIRouter(prefix="/v1/wallets", tags=["bank"])


@wallet_links.post("/{address}/bank-links", status_code=201)
def link_account(address: Address, body: LinkIn, ctx: CtxDep, key: OperatorKey) -> LinksOut:
    """Link a wallet the key's institution serves to one of its customers' bank accounts."""
    service.link(ctx, key, address, body.account_id)
    return _links(ctx, key, address)


@wallet_links.get("/{address}/bank-links")
def get_links(address: Address, ctx: CtxDep, key: OperatorKey) -> LinksOut:
    return _links(ctx, key, address)


def _links(ctx: CtxDep, key: OperatorKey, address: str) -> LinksOut:
    accounts = service.links(ctx, key, address)
    with ctx.db.session() as s:
        balances = {a.id: service.balance(s, a.id) for a in accounts}
    return LinksOut(wallet=address, accounts=[_account_out(a, balances[a.id]) for a in accounts])


# -- top-ups and redemptions -------------------------------------------------------------------


def _transfer_out(ctx: CtxDep, t: BankTransfer) -> BankTransferOut:
    with ctx.db.session() as s:
        account = s.get(BankAccount, t.account_id)
    return BankTransferOut(
        id=t.id,
        kind=t.kind,
        institution=t.institution,
        wallet=t.wallet,
        account=account.masked if account is not None else "",
        amount_fen=t.amount_fen,
        status=t.status,
        operation_id=t.operation_id,
        tx_hash=t.tx_hash,
        problem=t.problem,
        created_at=t.created_at,
        updated_at=t.updated_at,
    )


def _run(
    request: Request,
    ctx: CtxDep,
    key: OperatorKey,
    idem: str,
    kind: str,
    body: BankTransferIn,
    response: Response,
) -> BankTransferOut:
    transfers: service.Transfers = request.app.state.banking
    t = transfers.begin(key, idem, kind, body.wallet, body.account_id, body.amount_fen)
    t = transfers.drive(t.id)
    if t.status in ("failed", "compensated") and t.problem is not None:
        raise problem_from_stored(t.problem, transfer_id=t.id, transfer_status=t.status)
    response.status_code = 200 if t.status == "completed" else 202
    return _transfer_out(ctx, t)


@bank.post("/top-ups", responses={202: {"model": BankTransferOut}})
def top_up(
    body: BankTransferIn,
    request: Request,
    ctx: CtxDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> BankTransferOut:
    """Debit the linked bank account and mint the same amount into the wallet, exactly once (the
    bank leg first; a chain refusal reverses it: 4xx with ``transfer_status: compensated``)."""
    return _run(request, ctx, key, idem, service.TOPUP, body, response)


@bank.post("/redemptions", responses={202: {"model": BankTransferOut}})
def redeem_to_bank(
    body: BankTransferIn,
    request: Request,
    ctx: CtxDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> BankTransferOut:
    """Burn from the custodial wallet and credit the linked bank account, exactly once (the chain
    leg first; a chain refusal moves nothing)."""
    return _run(request, ctx, key, idem, service.REDEEM, body, response)


@bank.get("/transfers/{transfer_id}")
def get_transfer(
    transfer_id: Annotated[str, Path(max_length=36)], request: Request, ctx: CtxDep, key: OperatorKey
) -> BankTransferOut:
    transfers: service.Transfers = request.app.state.banking
    t = transfers.get(transfer_id)
    if t.institution != service.institution_of(key):
        raise Problem(404, "bank-transfer-not-found", "Bank transfer not found")
    return _transfer_out(ctx, t)


ROUTERS = (institutions, bank, wallet_links)
