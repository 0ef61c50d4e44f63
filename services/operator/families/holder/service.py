"""The holder family's logic: sign-in (EIP-4361 challenges and their single-use spend), holder
keys, and the reads and actions of a holder on their own wallet.

Why Sign-In with Ethereum (EIP-4361) over an EIP-712 login: every wallet app shows an EIP-4361
message as readable text (domain, address, statement, nonce, expiry) and signs it with the plain
``personal_sign`` (EIP-191) that hardware and custodial signers all support; an EIP-712 login
needs a typed-data domain per deployment and wallet support for it, and buys nothing here since
the server keeps the exact text it issued. The service stores each challenge (nonce, wallet, the
exact message, expiry) and accepts a signature only over that exact text, once: the spend is one
conditional UPDATE (``used_at IS NULL AND expires_at > now``), so a replayed or racing signature
gets nothing. The answer is an API key of role ``holder`` bound to the wallet (hashed in the
database like every key, expiring after :data:`SESSION_TTL`): it passes the existing guard as
``X-API-Key`` and is revoked, rotated and listed like any key.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
import typing
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from sqlalchemy import String, cast, select, update
from sqlalchemy.engine import CursorResult

from chain.clients.token import Kind
from chain.families import FAMILIES
from services.common.context import ServiceContext, refuse_retired
from services.common.humanize import wallet_names
from services.common.keys import Role, create_key
from services.common.models import ApiKey, ChainEvent, Wallet, aware, utcnow
from services.common.operations import Operations, perform
from services.common.paging import PageQuery, paginate
from services.common.problems import Problem
from services.common.scope import check_operator_scope
from services.operator.families.holder.models import HolderChallenge
from services.operator.families.holder.schemas import (
    BalanceOut,
    ChallengeOut,
    MandateOut,
    MovementOut,
    PackageOut,
    TierLimitsOut,
    UnsignedCall,
)

CHALLENGE_TTL = timedelta(minutes=5)
SESSION_TTL = timedelta(minutes=15)
STATEMENT = "Sign in to xcpay to see and manage your own wallet. This costs nothing and moves no money."
_NONCE = re.compile(r"^Nonce: ([A-Za-z0-9]{8,64})$", re.MULTILINE)
ZERO = "0x" + "0" * 40


# -- sign-in -------------------------------------------------------------------------------------


def siwe_message(
    domain: str, uri: str, wallet: str, chain_id: int, nonce: str, at: datetime, until: datetime
) -> str:
    """The EIP-4361 message text (its ABNF, without the optional resources)."""
    return (
        f"{domain} wants you to sign in with your Ethereum account:\n"
        f"{wallet}\n\n"
        f"{STATEMENT}\n\n"
        f"URI: {uri}\n"
        "Version: 1\n"
        f"Chain ID: {chain_id}\n"
        f"Nonce: {nonce}\n"
        f"Issued At: {_iso(at)}\n"
        f"Expiration Time: {_iso(until)}"
    )


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def create_challenge(ctx: ServiceContext, wallet: str, domain: str, uri: str) -> ChallengeOut:
    """A new single-use challenge for a registered, not retired wallet."""
    info = ctx.cash.wallet(wallet)
    if not info.registered:
        raise Problem(404, "wallet-not-registered", "The wallet is not registered", wallet)
    refuse_retired(ctx, wallet, then="sign in with")
    nonce = secrets.token_hex(16)
    now = utcnow()
    until = now + CHALLENGE_TTL
    message = siwe_message(domain, uri, wallet, ctx.manifest.chain_id, nonce, now, until)
    with ctx.db.session() as s:
        s.add(HolderChallenge(nonce=nonce, wallet=wallet, message=message, created_at=now, expires_at=until))
        s.commit()
    return ChallengeOut(message=message, nonce=nonce, wallet=wallet, expires_at=until)


def recover(message: str, signature: str) -> str:
    """The address whose key signed ``message`` with ``personal_sign`` (422 when none does)."""
    try:
        return str(Account.recover_message(encode_defunct(text=message), signature=signature))
    except Exception as exc:  # eth-account raises several types for a signature that is no point
        raise Problem(422, "bad-signature", "The signature does not verify", str(exc)[:200]) from None


def open_session(ctx: ServiceContext, message: str, signature: str) -> tuple[ApiKey, str]:
    """Spend the challenge ``message`` names for a holder key; refused with a specific problem
    when the challenge is unknown, altered, used, expired, or signed by another key."""
    m = _NONCE.search(message)
    if m is None:
        raise Problem(422, "challenge-unknown", "The message is not a challenge of this service", "no nonce")
    nonce = m.group(1)
    with ctx.db.session() as s:
        row = s.scalar(select(HolderChallenge).where(HolderChallenge.nonce == nonce))
        if row is None or row.message != message:
            raise Problem(422, "challenge-unknown", "The message is not a challenge of this service", nonce)
        if row.used_at is not None:
            raise Problem(409, "challenge-used", "This challenge was used already", "ask for a new one")
        if aware(row.expires_at) <= utcnow():
            raise Problem(410, "challenge-expired", "The challenge expired", "ask for a new one")
        wallet = row.wallet
        row_id = row.id
    signer = recover(message, signature)
    if signer != wallet:
        raise Problem(
            403, "signature-not-wallet", "The message was not signed by the wallet", f"signed by {signer}"
        )
    now = utcnow()
    with ctx.db.session() as s:
        spent = typing.cast(
            CursorResult[Any],
            s.execute(
                update(HolderChallenge)
                .where(
                    HolderChallenge.id == row_id,
                    HolderChallenge.used_at.is_(None),
                    HolderChallenge.expires_at > now,
                )
                .values(used_at=now)
            ),
        ).rowcount  # a DML statement's result
        if spent != 1:
            s.rollback()
            raise Problem(409, "challenge-used", "This challenge was used already", "ask for a new one")
        key_row, key = create_key(s, Role.HOLDER, f"holder sign-in #{row_id}", wallet=wallet)
        key_row.expires_at = now + SESSION_TTL
        s.execute(update(HolderChallenge).where(HolderChallenge.id == row_id).values(api_key_id=key_row.id))
        s.commit()
        s.refresh(key_row)
        s.expunge(key_row)
    return key_row, key


def issue_custodial_key(
    ctx: ServiceContext, operator: ApiKey, wallet: str, ttl: timedelta
) -> tuple[ApiKey, str]:
    """A holder key for a custodial wallet of this service (the holder has no key to sign with),
    issued by an operator key of the institution that serves the wallet."""
    with ctx.db.session() as s:
        row = s.get(Wallet, wallet)
        custodial = row is not None and row.custody == "custodial"
    if custodial:
        refuse_retired(ctx, wallet, then="issue the key for")
    if not custodial or not ctx.cash.wallet(wallet).registered:
        raise Problem(
            422,
            "not-a-custodial-wallet",
            "A holder key from the operator needs a registered custodial wallet of this service",
            f"{wallet}: a self-custody holder signs in (POST /v1/holder/challenge)",
        )
    check_operator_scope(ctx, operator, wallet)
    with ctx.db.session() as s:
        key_row, key = create_key(s, Role.HOLDER, "holder key (custodial)", wallet=wallet)
        key_row.expires_at = utcnow() + ttl
        s.commit()
        s.refresh(key_row)
        s.expunge(key_row)
    return key_row, key


def own_wallet(key: ApiKey) -> str:
    """The wallet a holder key speaks for (a holder key always names one)."""
    if key.wallet is None:  # pragma: no cover - holder keys are created with a wallet only
        raise Problem(403, "not-yours", "This key speaks for no wallet")
    return key.wallet


# -- reads ---------------------------------------------------------------------------------------


def balance(ctx: ServiceContext, wallet: str) -> BalanceOut:
    info = ctx.cash.wallet(wallet)
    bal = ctx.cash.balance_of(wallet)
    held = ctx.cash.held_of(wallet)
    spent = ctx.cash.spent_today(wallet)
    limits = info.limits
    capped = limits is not None and not info.cap_exempt
    with ctx.db.session() as s:
        name = wallet_names(s, {wallet}).get(wallet.lower())
    return BalanceOut(
        wallet=wallet,
        display_name=name,
        kind=Kind(info.kind).name.lower(),
        tier=info.tier,
        frozen=info.frozen,
        cap_exempt=info.cap_exempt,
        balance_fen=bal,
        held_fen=held,
        available_fen=max(0, bal - held),
        limits=TierLimitsOut(
            balance_cap_fen=limits.balance_cap,
            payment_cap_fen=limits.payment_cap,
            daily_cap_fen=limits.daily_cap,
        )
        if limits is not None
        else None,
        spent_today_fen=spent,
        daily_left_fen=max(0, limits.daily_cap - spent) if capped and limits is not None else None,
        balance_room_fen=max(0, limits.balance_cap - bal) if capped and limits is not None else None,
    )


def _family_of_contract(ctx: ServiceContext) -> dict[str, str]:
    """Contract address (lower case) and contract name -> the family it belongs to."""
    out: dict[str, str] = {}
    for fam in FAMILIES:
        name = "cash" if fam.name == "token" else fam.name
        for contract in fam.contracts:
            out[contract] = name
            if contract in ctx.manifest.contracts:
                out[ctx.manifest.address(contract).lower()] = name
    return out


def _mine(wallet: str) -> Any:
    """A transfer row of ``wallet`` (decided exactly, after the SQL prefilter on the text)."""
    return lambda e: wallet in (e.args.get("from"), e.args.get("to"))


def history(
    ctx: ServiceContext, wallet: str, paging: PageQuery, direction: str | None, family: str | None
) -> tuple[list[MovementOut], str | None]:
    """The wallet's movements, oldest first (cursor paging by event id)."""
    q = select(ChainEvent).where(
        ChainEvent.contract == "DigitalCash",
        ChainEvent.name == "Transfer",
        cast(ChainEvent.args, String).contains(wallet),
    )
    keep = _mine(wallet)
    with ctx.db.session() as s:
        rows, cursor = paginate(s, q, ChainEvent.id, paging, "holder-history", keep=keep)
        items = _movements(ctx, s, wallet, rows)
    if direction is not None or family is not None:
        items = [
            i
            for i in items
            if (direction is None or i.direction == direction) and (family is None or i.family == family)
        ]
    return items, cursor


def _movements(ctx: ServiceContext, s: Any, wallet: str, rows: Iterable[ChainEvent]) -> list[MovementOut]:
    rows = list(rows)
    if not rows:
        return []
    fam = _family_of_contract(ctx)
    txs = {r.tx_hash for r in rows}
    siblings: dict[str, list[ChainEvent]] = {}
    for e in s.scalars(select(ChainEvent).where(ChainEvent.tx_hash.in_(txs)).order_by(ChainEvent.log_index)):
        siblings.setdefault(e.tx_hash, []).append(e)
    parties = {str(r.args["from"]) if r.args["to"] == wallet else str(r.args["to"]) for r in rows}
    names = wallet_names(s, parties)
    out: list[MovementOut] = []
    for r in rows:
        incoming = r.args["to"] == wallet
        other = str(r.args["from"] if incoming else r.args["to"])
        # The two tiers' book (OperatorInstitutions) records every mint and redemption beside the
        # token's own events: bookkeeping of the institutions, not a family the holder used.
        others = [
            e
            for e in siblings.get(r.tx_hash, [])
            if e.name not in ("Transfer", "Approval") and e.contract != "OperatorInstitutions"
        ]
        family = fam.get(other.lower())
        if family is None:
            family = next(
                (fam.get(e.contract, "cash") for e in others if e.contract != "DigitalCash"), "cash"
            )
        purpose = ",".join(dict.fromkeys(e.name for e in others)) or ("transfer" if other != ZERO else "")
        out.append(
            MovementOut(
                id=r.id,
                block_number=r.block_number,
                tx_hash=r.tx_hash,
                direction="in" if incoming else "out",
                amount_fen=int(r.args["value"]),
                counterparty=other,
                counterparty_name=names.get(other.lower()) or ("(issuer)" if other == ZERO else None),
                family=family,
                purpose=purpose,
            )
        )
    return out


def history_csv(ctx: ServiceContext, wallet: str, limit: int = 10_000) -> str:
    """Every movement of the wallet as CSV (at most ``limit`` rows, oldest first)."""
    q = (
        select(ChainEvent)
        .where(
            ChainEvent.contract == "DigitalCash",
            ChainEvent.name == "Transfer",
            cast(ChainEvent.args, String).contains(wallet),
        )
        .order_by(ChainEvent.id)
    )
    keep = _mine(wallet)
    with ctx.db.session() as s:
        rows = [e for e in s.scalars(q) if keep(e)][:limit]
        items = _movements(ctx, s, wallet, rows)
    buf = io.StringIO()
    w = csv.writer(buf)
    fields = [
        "id",
        "block_number",
        "tx_hash",
        "direction",
        "amount_fen",
        "counterparty",
        "counterparty_name",
        "family",
        "purpose",
    ]
    w.writerow(fields)
    for i in items:
        w.writerow([_cell(getattr(i, f)) for f in fields])
    return buf.getvalue()


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (display names are user text)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _subjects(ctx: ServiceContext, contract: str, event: str, arg: str, wallet: str) -> list[int]:
    q = select(ChainEvent).where(
        ChainEvent.contract == contract,
        ChainEvent.name == event,
        cast(ChainEvent.args, String).contains(wallet),
    )
    with ctx.db.session() as s:
        return sorted({int(e.args["id"]) for e in s.scalars(q) if e.args.get(arg) == wallet})


def mandates(ctx: ServiceContext, wallet: str) -> list[MandateOut]:
    # granted by the wallet, or moved to it by a recovery (the chain's holder decides below)
    ids = sorted(
        {
            *_subjects(ctx, "QuickPay", "MandateGranted", "holder", wallet),
            *_subjects(ctx, "QuickPay", "MandateRecovered", "successor", wallet),
        }
    )
    now = int(ctx.w3.eth.get_block("latest")["timestamp"])
    out = []
    rows = [ctx.quickpay.mandate(i) for i in ids]
    with ctx.db.session() as s:
        names = wallet_names(s, {m.merchant for m in rows})
    for m in rows:
        if m.holder != wallet:  # a recovery may have moved it; the chain decides
            continue
        out.append(
            MandateOut(
                id=m.id,
                merchant=m.merchant,
                merchant_name=names.get(m.merchant.lower()),
                per_payment_cap_fen=m.per_payment_cap,
                daily_cap_fen=m.daily_cap,
                spent_today_fen=ctx.quickpay.spent_today(m.id),
                total_pulled_fen=m.total_pulled,
                expires_at=m.expires_at,
                revoked=m.revoked,
                active=not m.revoked and m.expires_at > now,
            )
        )
    return out


def own_mandate(ctx: ServiceContext, wallet: str, mandate_id: int) -> None:
    """404 unless the mandate exists and is the wallet's (another's is not revealed)."""
    m = ctx.quickpay.mandate(mandate_id)
    if m.holder != wallet:
        raise Problem(404, "mandate-not-found", "No such mandate of yours", f"mandate {mandate_id}")
    if m.revoked:
        raise Problem(409, "mandate-revoked", "The mandate is revoked already", f"mandate {mandate_id}")


def custody_of(ctx: ServiceContext, wallet: str) -> str:
    with ctx.db.session() as s:
        row = s.get(Wallet, wallet)
        return row.custody if row is not None and row.keystore is not None else "self"


def revoke_custodial(ops: Operations, key: ApiKey, idem: str, wallet: str, mandate_id: int) -> Any:
    op, _ = perform(
        ops,
        "holder.mandate.revoke",
        key,
        idem,
        {"holder": wallet, "mandate": mandate_id},
        target=f"mandate {mandate_id}",
    )
    return op


def revoke_unsigned(ctx: ServiceContext, mandate_id: int) -> UnsignedCall:
    """The revocation a self-custody holder signs and sends themselves (EIP-681 link included)."""
    fn = ctx.quickpay.revoke_call(mandate_id)
    to = ctx.quickpay.address
    data = fn._encode_transaction_data()
    chain_id = ctx.manifest.chain_id
    return UnsignedCall(
        chain_id=chain_id, to=to, data=data, eip681=f"ethereum:{to}@{chain_id}/revoke?uint256={mandate_id}"
    )


def packages(ctx: ServiceContext, wallet: str) -> list[PackageOut]:
    ids = sorted(
        {
            *_subjects(ctx, "PrepaidEscrow", "PackagePrepaid", "consumer", wallet),
            *_subjects(ctx, "PrepaidEscrow", "PackageRecovered", "successor", wallet),
        }
    )
    rows = [ctx.prepaid.package(i) for i in ids]
    rows = [p for p in rows if p.consumer == wallet]
    with ctx.db.session() as s:
        names = wallet_names(s, {p.merchant for p in rows})
    return [
        PackageOut(
            id=p.id,
            merchant=p.merchant,
            merchant_name=names.get(p.merchant.lower()),
            status=p.status.name.lower(),
            sessions=p.sessions,
            used=p.used,
            unit_price_fen=p.unit_price,
            deposited_fen=p.deposited,
            released_fen=p.released,
            expires_at=p.expires_at,
        )
        for p in rows
    ]
