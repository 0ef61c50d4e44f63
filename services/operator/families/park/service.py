"""The closed-loop park (黄桥未来工场, 园区"收、管、付"闭环): set up from one declarative file, and
its report computed from the indexed chain events.

Setting up checks the file against what the platform already holds (the chain's wallet registry
through the cash client, the gateway's terminals and door points) and records the park; it moves
no money and signs nothing. The same file posted again changes nothing (its canonical JSON's
SHA-256 is stored); another file for the same park id is refused (409 ``park-exists``).

A wallet belongs to one park only (``park_wallets``, migration 0026): a second park naming a
tenant's payer, a staff member or a merchant of the first is refused whole (409
``park-wallet-taken``), also when both are posted at once. A retired, frozen or held wallet is
refused too (410 ``wallet-retired``, 409 ``park-wallet-frozen``, 409 ``park-wallet-held``).

The report: ``report.py``.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from chain.clients.token import Kind
from chain.clients.vouchers import Grant
from services.common.context import ServiceContext, refuse_retired
from services.common.models import AccessPoint, ApiKey, GatewayTerminal, Operation, Wallet
from services.common.operations import Operations, perform
from services.common.problems import Problem
from services.common.scope import check_operator_scope
from services.operator.families.park.models import Park, ParkWallet
from services.operator.families.park.schemas import FeeIn, FeeOut, ParkIn, ParkOut
from services.operator.families.vouchers import service as vouchers
from services.operator.families.vouchers.schemas import ProgrammeIn


def spec_hash(body: ParkIn) -> str:
    text = json.dumps(body.model_dump(mode="json"), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def park_out(row: Park, created: bool) -> ParkOut:
    spec = ParkIn.model_validate(row.spec)
    return ParkOut(
        id=row.id,
        name=row.name,
        area=row.area,
        tenants=len(spec.tenants),
        staff=sum(len(t.staff) for t in spec.tenants),
        merchants=len(spec.merchants),
        terminals=len(spec.terminals),
        door_points=len(spec.door_points),
        fee_mandates={k: int(v) for k, v in (row.mandates or {}).items()},
        welfare_programme=row.welfare_programme,
        created=created,
    )


def _wallet(ctx: ServiceContext, address: str, field: str, *kinds: Kind) -> Any:
    info = ctx.cash.wallet(address)
    if not info.registered:
        raise Problem(422, "park-wallet-not-registered", "A wallet of the park file is not registered", field)
    if kinds and info.kind not in kinds:
        wanted = " or ".join(k.name.lower() for k in kinds)
        raise Problem(
            422,
            "park-wallet-wrong-kind",
            "A wallet of the park file is not of the kind its place needs",
            f"{field}: a {info.kind.name.lower()} wallet, expected {wanted}",
        )
    _usable(ctx, address, field, info.frozen)
    return info


def _usable(ctx: ServiceContext, address: str, field: str, frozen: bool) -> None:
    """A park is not set up around a wallet that cannot take part in its flows: a retired wallet
    (recovered: 410 ``wallet-retired`` naming its successor, as every family answers), a frozen
    one (409 ``park-wallet-frozen``) or one under a hold (409 ``park-wallet-held``: a judicial or
    AML hold, so wages paid in or takings would be held). All read from the chain now; the
    registry's ``walletOf`` reads a retired wallet as frozen, so ``isRetired`` is read only then."""
    if frozen:
        refuse_retired(ctx, address, field)
        raise Problem(
            409,
            "park-wallet-frozen",
            "A wallet of the park file is frozen",
            f"{field}: {address} is frozen by the regulator",
            field=field,
            wallet=address,
        )
    held = ctx.cash.held_of(address)
    if held:
        raise Problem(
            409,
            "park-wallet-held",
            "A wallet of the park file is under a hold",
            f"{field}: {address} has {held} fen under holds (a court's or an AML hold)",
            field=field,
            wallet=address,
            held_fen=held,
        )


def _custodial(ctx: ServiceContext, address: str, field: str) -> None:
    with ctx.db.session() as s:
        row = s.get(Wallet, address)
    if row is None or row.custody != "custodial" or row.keystore is None:
        raise Problem(
            422,
            "park-wallet-not-custodial",
            "A fee mandate needs custodial wallets (the service signs the grant and the pulls)",
            field,
        )


def check(ctx: ServiceContext, body: ParkIn) -> None:
    """What the file names exists and is what the file says it is (422 naming the field)."""
    if body.welfare is not None:
        _wallet(ctx, body.welfare.issuer, "welfare.issuer", Kind.INSTITUTION)
        _custodial(ctx, body.welfare.issuer, "welfare.issuer")
    if body.fee_mandates:
        _custodial(ctx, body.fee_wallet, "fee_wallet")
        now = int(ctx.w3.eth.get_block("latest")["timestamp"])
        payers = {t.id: (i, t.payer) for i, t in enumerate(body.tenants)}
        for i, f in enumerate(body.fee_mandates):
            j, payer = payers[f.tenant]
            _custodial(ctx, payer, f"tenants.{j}.payer (fee_mandates.{i})")
            if int(f.expires_at.timestamp()) <= now:
                raise Problem(
                    422,
                    "park-mandate-expired",
                    "A fee mandate's expiry is past",
                    f"fee_mandates.{i}.expires_at",
                )
    _wallet(ctx, body.fee_wallet, "fee_wallet", Kind.MERCHANT)
    for i, t in enumerate(body.tenants):
        _wallet(ctx, t.payer, f"tenants.{i}.payer", Kind.INSTITUTION, Kind.MERCHANT)
        for j, worker in enumerate(t.staff):
            _wallet(ctx, worker, f"tenants.{i}.staff.{j}", Kind.PERSONAL)
    for i, m in enumerate(body.merchants):
        info = _wallet(ctx, m.wallet, f"merchants.{i}.wallet", Kind.MERCHANT)
        if info.category != m.category:
            raise Problem(
                422,
                "park-merchant-category-mismatch",
                "A merchant's category is not the one registered on chain",
                f"merchants.{i}.category: {m.category}, registered {info.category}",
            )
    merchants = {m.wallet for m in body.merchants}
    with ctx.db.session() as s:
        terminals = {
            t.id: t.merchant
            for t in s.scalars(select(GatewayTerminal).where(GatewayTerminal.id.in_(body.terminals)))
        }
        doors = set(s.scalars(select(AccessPoint.id).where(AccessPoint.id.in_(body.door_points))))
    for i, tid in enumerate(body.terminals):
        if tid not in terminals:
            raise Problem(
                422, "park-terminal-not-found", "No gateway terminal has this id", f"terminals.{i}: {tid}"
            )
        if to_checksum_address(terminals[tid]) not in merchants:
            raise Problem(
                422,
                "park-terminal-not-a-park-merchant",
                "A terminal of the park file belongs to a merchant outside the park",
                f"terminals.{i}: {tid}",
            )
    for i, did in enumerate(body.door_points):
        if did not in doors:
            raise Problem(
                422, "park-door-not-found", "No door access point has this id", f"door_points.{i}: {did}"
            )


def check_scope(ctx: ServiceContext, key: ApiKey, body: ParkIn) -> None:
    """The key's institution serves every wallet the park claims and the welfare issuer (403
    ``institution-scope``): a red team's institution-2 key set up a park of institution 1's
    customers, locking them out of every other park. Checked before anything is stored."""
    wallets = [w for w, _ in claims(body)]
    if body.welfare is not None:
        wallets.append(body.welfare.issuer)
    check_operator_scope(ctx, key, *dict.fromkeys(wallets))


def check_welfare(ctx: ServiceContext, body: ParkIn) -> None:
    """What the chain would refuse of the welfare programme, refused before the park is stored:
    a period already over (422 ``invalid-period``) and a budget above the issuer's cash (422
    ``insufficient-balance``), as the chain's ``create`` answers them."""
    w = body.welfare
    if w is None:
        return
    # the chain's next block is no earlier than now: the latest block's time lags on a quiet chain
    now = max(int(ctx.w3.eth.get_block("latest")["timestamp"]), int(time.time()))
    starts, expires = int(w.starts_at.timestamp()), int(w.expires_at.timestamp())
    if expires <= starts or expires <= now:
        raise Problem(
            422,
            "invalid-period",
            "The programme's start and expiry are invalid",
            f"welfare.expires_at: {w.expires_at.isoformat()} is not after its start and now",
        )
    cash = ctx.cash.balance_of(w.issuer)
    if w.budget_fen > cash:
        raise Problem(
            422,
            "insufficient-balance",
            "Insufficient balance",
            f"welfare.budget_fen: {w.budget_fen} fen, the issuer holds {cash}",
        )


def set_up(ctx: ServiceContext, ops: Operations, key: ApiKey, body: ParkIn) -> tuple[Park, bool]:
    """The park recorded from ``body`` (True), or the one this very file recorded before (False);
    then its fee mandates granted, those not granted yet (a re-post finishes an interrupted one).

    A chain step refused for good (4xx) releases the park: its row and its wallets' claims are
    deleted, so a refused file leaves nothing claimed and may be posted again once fixed (the
    steps' idempotency keys replay what the chain already did). A pending step (503) keeps it:
    the re-post finishes it."""
    row, created = _record(ctx, key, body)
    try:
        row = _grant_mandates(ctx, ops, key, row, body)
        return _welfare(ctx, ops, key, row, body), created
    except Problem as exc:
        if exc.status < 500:
            release(ctx, row.id)
        raise


def release(ctx: ServiceContext, park_id: str) -> None:
    """The park and its wallets' claims deleted (one transaction): its set-up was refused."""
    with ctx.db.session() as s:
        s.execute(delete(ParkWallet).where(ParkWallet.park_id == park_id))
        s.execute(delete(Park).where(Park.id == park_id))
        s.commit()


def _pending(what: str) -> Problem:
    return Problem(
        503, "park-setup-pending", "Part of the park is not confirmed yet: post the file again", what
    )


def _welfare(ctx: ServiceContext, ops: Operations, key: ApiKey, row: Park, body: ParkIn) -> Park:
    """The welfare programme (the vouchers family's ``create``, then ``grant_batches``), once:
    listed merchants = the park's, categories = theirs; each step under an idempotency key of the
    park and the file, so a re-post replays what an interrupted one sent."""
    w = body.welfare
    if w is None or row.welfare_granted:
        return row
    idem = f"park:{row.id}:welfare:{row.spec_hash[:16]}"
    pid = row.welfare_programme
    if pid is None:
        programme = ProgrammeIn(
            issuer=w.issuer,
            name=w.name,
            mode="grant-list",
            budget_fen=w.budget_fen,
            per_person_cap_fen=w.per_staff_fen,
            starts_at=w.starts_at,
            expires_at=w.expires_at,
            categories=sorted({m.category for m in body.merchants}),
            merchants=[m.wallet for m in body.merchants],
        )
        op = vouchers.create(ctx, ops, key, idem, programme)
        pid = vouchers.created_id(op)
        if op.status != "confirmed" or pid is None:
            raise _pending("welfare programme")
        row = _update(ctx, row.id, welfare_programme=pid)
    grants = [Grant(s, w.per_staff_fen) for t in body.tenants for s in t.staff]
    done = vouchers.grant_batches(ctx, ops, key, f"{idem}:grants", pid, grants)
    if any(o.status != "confirmed" for o in done.operations):
        raise _pending("welfare grants")
    return _update(ctx, row.id, welfare_granted=True)


def _update(ctx: ServiceContext, park_id: str, **values: Any) -> Park:
    with ctx.db.session() as s:
        fresh = s.get(Park, park_id)
        assert fresh is not None
        for name, value in values.items():
            setattr(fresh, name, value)
        s.commit()
        s.refresh(fresh)
    return fresh


def claims(body: ParkIn) -> list[tuple[str, str]]:
    """(wallet, place) of every wallet the park claims for itself: its tenants' payers and staff
    and its merchants (see ``ParkWallet`` for why not the fee wallet and the welfare issuer)."""
    out: list[tuple[str, str]] = []
    for i, t in enumerate(body.tenants):
        out.append((t.payer, f"tenants.{i}.payer"))
        out += [(w, f"tenants.{i}.staff.{j}") for j, w in enumerate(t.staff)]
    out += [(m.wallet, f"merchants.{i}.wallet") for i, m in enumerate(body.merchants)]
    return out


CHUNK = 500  # wallets per IN (...) query: a park may name a million staff wallets


def _refuse_taken(ctx: ServiceContext, park_id: str, wanted: list[tuple[str, str]]) -> None:
    """409 ``park-wallet-taken`` when another park claimed one of ``wanted`` (the first in the
    file's order), naming the wallet, its place in this file, the other park and its place there."""
    taken: dict[str, ParkWallet] = {}
    wallets = [w for w, _ in wanted]
    with ctx.db.session() as s:
        for k in range(0, len(wallets), CHUNK):
            q = select(ParkWallet).where(ParkWallet.wallet.in_(wallets[k : k + CHUNK]))
            taken.update((r.wallet, r) for r in s.scalars(q) if r.park_id != park_id)
    for wallet, place in wanted:
        other = taken.get(wallet)
        if other is not None:
            raise Problem(
                409,
                "park-wallet-taken",
                "A wallet of the park file belongs to another park",
                f"{place}: {wallet} is {other.place} of park {other.park_id}; a wallet belongs to one park",
                field=place,
                wallet=wallet,
                park=other.park_id,
            )


def _record(ctx: ServiceContext, key: ApiKey, body: ParkIn) -> tuple[Park, bool]:
    """The park and its wallets' claims, stored in one transaction: a second park naming a wallet
    of the first is refused whole (the check first, for an early answer; the primary key of
    ``park_wallets`` when two set-ups race past the check together)."""
    digest = spec_hash(body)
    with ctx.db.session() as s:
        found = s.get(Park, body.id)
    if found is not None:
        if found.spec_hash != digest:
            raise Problem(409, "park-exists", "A park with this id was set up from another file", body.id)
        check_scope(ctx, key, body)
        return found, False
    # every refusal before anything is stored: the file's own faults (422), whose customers it
    # names (403), what the chain would refuse of its welfare (422), whose wallets it takes (409)
    check(ctx, body)
    check_scope(ctx, key, body)
    check_welfare(ctx, body)
    wanted = claims(body)
    _refuse_taken(ctx, body.id, wanted)
    row = Park(
        id=body.id,
        name=body.name,
        area=body.area,
        spec=body.model_dump(mode="json"),
        spec_hash=digest,
        mandates={},
        welfare_granted=False,
    )
    with ctx.db.session() as s:
        try:
            s.add(row)
            s.flush()  # the park first: its claims refer to it
            s.add_all([ParkWallet(wallet=w, park_id=body.id, place=p) for w, p in wanted])
            s.commit()
        except IntegrityError:  # a concurrent post of the same id, or of a park taking our wallets
            s.rollback()
            found = s.get(Park, body.id)
            if found is not None and found.spec_hash == digest:
                return found, False  # answer as a re-post would
            if found is not None:
                raise Problem(
                    409, "park-exists", "A park with this id was set up from another file", body.id
                ) from None
            _refuse_taken(ctx, body.id, wanted)
            raise Problem(  # the rival's claim, not readable yet: the same answer, without its name
                409,
                "park-wallet-taken",
                "A wallet of the park file belongs to another park",
                "a park set up at the same moment claimed a wallet of this file",
            ) from None
        s.refresh(row)
    return row, True


def _grant_mandates(ctx: ServiceContext, ops: Operations, key: ApiKey, row: Park, body: ParkIn) -> Park:
    """Each fee mandate of the file not granted yet: the tenant's custodial payer grants the fee
    wallet a QuickPay mandate (the utilities family's ``utilities.mandate.grant``: one cap per pull
    and per day), under an idempotency key of the park, the tenant and the file, so a re-post
    replays what was sent instead of granting twice."""
    payers = {t.id: t.payer for t in body.tenants}
    for f in body.fee_mandates:
        if f.tenant in (row.mandates or {}):
            continue
        request = {
            "park": row.id,
            "tenant": f.tenant,
            "holder": payers[f.tenant],
            "biller_wallet": body.fee_wallet,
            "cap_fen": f.cap_fen,
            "expires_at": int(f.expires_at.timestamp()),
        }
        idem = f"park:{row.id}:fee-mandate:{f.tenant}:{row.spec_hash[:16]}"
        op, _ = perform(ops, "utilities.mandate.grant", key, idem, request, target=f"park/{row.id}")
        granted = [e for e in (op.result or {}).get("events", []) if e["name"] == "MandateGranted"]
        if op.status != "confirmed" or not granted:
            raise Problem(
                503,
                "park-mandate-pending",
                "A fee mandate is not confirmed yet: post the file again",
                f.tenant,
            )
        with ctx.db.session() as s:
            fresh = s.get(Park, row.id)
            assert fresh is not None
            fresh.mandates = {**(fresh.mandates or {}), f.tenant: int(granted[0]["args"]["id"])}
            s.commit()
            s.refresh(fresh)
        row = fresh
    return row


def collect_fee(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, row: Park, body: FeeIn
) -> FeeOut:
    """The park's fee wallet pulls a tenant's fee for one period under the tenant's mandate (the
    utilities family's ``utilities.autodebit``). The order reference is ``park/<id>/<tenant>/<kind>/
    <period>``: the chain refuses a second pull of one fee (``duplicate-reference``)."""
    spec = ParkIn.model_validate(row.spec)
    tenant = next((t for t in spec.tenants if t.id == body.tenant), None)
    if tenant is None:
        raise Problem(404, "park-tenant-not-found", "No such tenant in this park", body.tenant)
    mandate = (row.mandates or {}).get(body.tenant)
    if mandate is None:
        raise Problem(409, "park-no-fee-mandate", "This tenant has no fee mandate", body.tenant)
    request = {
        "park": row.id,
        "tenant": body.tenant,
        "mandate": int(mandate),
        "holder": tenant.payer,
        "biller_wallet": spec.fee_wallet,
        "amount_fen": body.amount_fen,
        "reference": f"park/{row.id}/{body.tenant}/{body.kind}/{body.period}",
    }
    op, _ = perform(ops, "utilities.autodebit", key, idem, request, target=f"park/{row.id}")
    return fee_out(body, int(mandate), op)


def fee_out(body: FeeIn, mandate: int, op: Operation) -> FeeOut:
    return FeeOut(
        tenant=body.tenant,
        period=body.period,
        kind=body.kind,
        amount_fen=body.amount_fen,
        mandate_id=mandate,
        operation_id=op.id,
        status=op.status,
        tx_hash=op.tx_hash,
    )


def park(ctx: ServiceContext, park_id: str) -> Park:
    with ctx.db.session() as s:
        row = s.get(Park, park_id)
    if row is None:
        raise Problem(404, "park-not-found", "Park not found", park_id)
    return row
