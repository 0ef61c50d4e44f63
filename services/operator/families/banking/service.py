"""The bank leg and the chain leg of a top-up or a redemption, as one idempotent operation.

The intent comes first: a ``BankTransfer`` row (unique per API key and Idempotency-Key) records
what was asked before anything moves. Then, in a fixed order:

- a **top-up** debits the customer's deposit account in the institution's journal (the bank leg,
  one database transaction that also moves the intent to ``bank_done``), and only then mints on
  chain (the chain leg, an ordinary operation of ``services.common.operations`` whose idempotency
  key names the transfer, so that it is signed at most once). If the chain refuses the mint (the
  reserve, the wallet's tier cap...), a reversing entry gives the customer the money back
  (``compensated``);
- a **redemption** burns on chain first (the customer's wallet approves the institution's key,
  which redeems) and only then credits the deposit account (``completed``). If the chain refuses,
  nothing moved (``failed``).

A process may die between any two steps. :func:`drive` carries a transfer on from whatever state
it is in, and is what the request runs and what the reconciler (on start and periodically, see
``services/operator/app.py``) runs for every transfer not finished: each step is a compare-and-set
on the transfer's status in the same database transaction as the journal entry it writes, and the
chain leg replays its operation (the same idempotency key) rather than sign another. So a failure
on either side never leaves money created (minted without a debit) or lost (burnt without a
credit, debited without a mint), and nothing is done twice.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from sqlalchemy import func, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chain.accounts import INSTITUTION_DEV_ACCOUNTS, dev_account
from services.common.context import ServiceContext
from services.common.models import ApiKey, Operation, aware, utcnow
from services.common.operations import Operations, fault_point, perform, request_hash
from services.common.problems import Problem, jsonable
from services.common.scope import check_scope, institution_of
from services.operator.families.banking.models import (
    BankAccount,
    BankEntry,
    BankPosting,
    BankTransfer,
    WalletBankLink,
)

log = logging.getLogger("xcpay.banking")

TOPUP, REDEEM = "topup", "redeem"
TERMINAL = ("completed", "compensated", "failed")
#: The periodic reconciler leaves a transfer this young to the request that is carrying it.
GRACE_S = 30.0


# -- institutions, keys and scope -----------------------------------------------------------------


def signer_of(ctx: ServiceContext, institution: int) -> LocalAccount:
    """The signing key of ``institution``: #1 is the operator's; the others are development
    accounts in the local profile (chain.accounts.INSTITUTION_DEV_ACCOUNTS)."""
    if institution == 1:
        return ctx.operator
    index = institution - 2
    if ctx.settings.profile == "local" and 0 <= index < len(INSTITUTION_DEV_ACCOUNTS):
        return dev_account(INSTITUTION_DEV_ACCOUNTS[index])
    raise Problem(
        503,
        "institution-key-unavailable",
        "This service holds no signing key for the institution",
        f"institution {institution}",
    )


def served_by(ctx: ServiceContext, wallet: str) -> int:
    return ctx.institutions.served_by(wallet)


def check_customer(ctx: ServiceContext, key: ApiKey, wallet: str) -> int:
    """The key's institution, which must serve ``wallet`` (403 otherwise: institution scope)."""
    if not ctx.cash.wallet(wallet).registered:
        raise Problem(422, "wallet-not-registered", "Wallet not registered", f"{wallet} is not registered")
    return check_scope(ctx, key, wallet)


# -- accounts and the journal -------------------------------------------------------------------

_NUMBER = re.compile(r"^[0-9]{12,19}$")


def mask(number: str) -> str:
    """What answers and logs show of an account number: its first four and last four digits."""
    return f"{number[:4]} **** **** {number[-4:]}"


def balance(s: Session, account_id: int) -> int:
    return int(
        s.scalar(
            select(func.coalesce(func.sum(BankPosting.amount_fen), 0)).where(
                BankPosting.account_id == account_id
            )
        )
        or 0
    )


def _system_account(s: Session, institution: int, kind: str) -> BankAccount:
    number = f"{kind.upper()}-{institution}"
    row = s.scalar(
        select(BankAccount).where(BankAccount.institution == institution, BankAccount.number == number)
    )
    if row is None:
        row = BankAccount(
            institution=institution,
            kind=kind,
            number=number,
            masked=number,
            holder=f"institution {institution}",
        )
        s.add(row)
        s.flush()
    return row


def post(
    s: Session, institution: int, memo: str, legs: list[tuple[int, int]], transfer_id: str | None = None
) -> BankEntry:
    """A journal entry of ``legs`` (account, amount: + credits it); they must sum to zero."""
    if sum(amount for _, amount in legs) != 0 or not legs:
        raise AssertionError(f"unbalanced entry {memo}: {legs}")  # a programming error, never data
    entry = BankEntry(institution=institution, memo=memo, transfer_id=transfer_id)
    s.add(entry)
    s.flush()
    s.add_all(BankPosting(entry_id=entry.id, account_id=a, amount_fen=amount) for a, amount in legs)
    return entry


def open_account(
    ctx: ServiceContext, institution: int, number: str, holder: str, opening_fen: int
) -> BankAccount:
    """A customer's deposit account, with an opening deposit paid in at the counter (the vault)."""
    if not _NUMBER.match(number):
        raise Problem(422, "invalid-account-number", "An account number is 12 to 19 digits")
    with ctx.db.session() as s:
        account = BankAccount(
            institution=institution, kind="customer", number=number, masked=mask(number), holder=holder
        )
        s.add(account)
        try:
            s.flush()
        except IntegrityError:
            s.rollback()
            raise Problem(
                409, "bank-account-exists", "This institution has an account with this number"
            ) from None
        if opening_fen > 0:
            vault = _system_account(s, institution, "vault")
            post(s, institution, "opening deposit", [(vault.id, -opening_fen), (account.id, opening_fen)])
        s.commit()
        s.refresh(account)
        log.info("institution %s opened account %s", institution, account.masked)
        return account


def account_of(ctx: ServiceContext, key: ApiKey, account_id: int) -> tuple[BankAccount, int]:
    """A customer account of the key's institution and its balance (404 for another's)."""
    with ctx.db.session() as s:
        account = s.get(BankAccount, account_id)
        if account is None or account.kind != "customer" or account.institution != institution_of(key):
            raise Problem(
                404, "bank-account-not-found", "Bank account not found", f"no account {account_id} here"
            )
        return account, balance(s, account.id)


def link(ctx: ServiceContext, key: ApiKey, wallet: str, account_id: int) -> BankAccount:
    check_customer(ctx, key, wallet)
    account, _ = account_of(ctx, key, account_id)
    with ctx.db.session() as s:
        s.add(WalletBankLink(wallet=wallet, account_id=account.id))
        try:
            s.commit()
        except IntegrityError:
            s.rollback()  # linked already: the same answer
    log.info("wallet %s linked to account %s", wallet, account.masked)
    return account


def links(ctx: ServiceContext, key: ApiKey, wallet: str) -> list[BankAccount]:
    check_customer(ctx, key, wallet)
    with ctx.db.session() as s:
        return list(
            s.scalars(
                select(BankAccount)
                .join(WalletBankLink, WalletBankLink.account_id == BankAccount.id)
                .where(WalletBankLink.wallet == wallet)
                .order_by(BankAccount.id)
            )
        )


# -- transfers --------------------------------------------------------------------------------


class Transfers:
    """Begins and drives top-ups and redemptions; one per process (``app.state.banking``)."""

    def __init__(self, ops: Operations) -> None:
        self.ops = ops
        self.ctx = ops.ctx
        self._busy: set[str] = set()
        self._lock = threading.Lock()

    def begin(
        self, key: ApiKey, idem: str, kind: str, wallet: str, account_id: int, amount_fen: int
    ) -> BankTransfer:
        """The intent, or the earlier one with this key (409 when its request differs)."""
        ctx = self.ctx
        institution = check_customer(ctx, key, wallet)
        body = {"wallet": wallet, "account_id": account_id, "amount_fen": amount_fen}
        digest = request_hash(f"banking.{kind}", body)
        with ctx.db.session() as s:
            earlier = s.scalar(
                select(BankTransfer).where(
                    BankTransfer.api_key_id == key.id, BankTransfer.idempotency_key == idem
                )
            )
        if earlier is None:
            account_of(ctx, key, account_id)
            with ctx.db.session() as s:
                if (
                    s.scalar(
                        select(WalletBankLink.id).where(
                            WalletBankLink.wallet == wallet, WalletBankLink.account_id == account_id
                        )
                    )
                    is None
                ):
                    raise Problem(
                        409, "bank-account-not-linked", "The wallet is not linked to this bank account"
                    )
                row = BankTransfer(
                    id=str(uuid.uuid4()),
                    kind=kind,
                    institution=institution,
                    wallet=wallet,
                    account_id=account_id,
                    amount_fen=amount_fen,
                    api_key_id=key.id,
                    idempotency_key=idem,
                    request_hash=digest,
                    status="intent",
                )
                s.add(row)
                try:
                    s.commit()
                    return row
                except IntegrityError:
                    s.rollback()
                earlier = s.scalar(
                    select(BankTransfer).where(
                        BankTransfer.api_key_id == key.id, BankTransfer.idempotency_key == idem
                    )
                )
                assert earlier is not None
        if earlier.request_hash != digest:
            raise Problem(
                409,
                "idempotency-key-reused",
                "Idempotency key reused with a different request",
                f"key {idem!r} was first used for another bank {earlier.kind}",
            )
        return earlier

    def get(self, transfer_id: str) -> BankTransfer:
        with self.ctx.db.session() as s:
            row = s.get(BankTransfer, transfer_id)
        if row is None:
            raise Problem(404, "bank-transfer-not-found", "Bank transfer not found")
        return row

    # -- driving -----------------------------------------------------------------------------

    def drive(self, transfer_id: str) -> BankTransfer:
        """Carry the transfer on from its state to the end (or as far as the chain allows now)."""
        with self._lock:
            if transfer_id in self._busy:
                return self.get(transfer_id)
            self._busy.add(transfer_id)
        try:
            t = self.get(transfer_id)
            if t.kind == TOPUP:
                if t.status == "intent":
                    self._topup_bank_leg(t)
                    t = self.get(transfer_id)
                    fault_point("after_bank_leg", "banking.topup")
                if t.status == "bank_done":
                    self._chain_leg(t)
            else:
                if t.status == "intent":
                    self._chain_leg(t)
                    t = self.get(transfer_id)
                if t.status == "chain_done":
                    self._redeem_bank_leg(t)
            return self.get(transfer_id)
        finally:
            with self._lock:
                self._busy.discard(transfer_id)

    def _cas(self, s: Session, t: BankTransfer, old: str, new: str, **values: Any) -> bool:
        result = cast(
            "CursorResult[Any]",
            s.execute(
                update(BankTransfer)
                .where(BankTransfer.id == t.id, BankTransfer.status == old)
                .values(status=new, updated_at=utcnow(), **values)
            ),
        )
        return result.rowcount == 1

    def _topup_bank_leg(self, t: BankTransfer) -> None:
        account = self._post_leg(t, "intent", "bank_done", f"e-CNY top-up to {t.wallet}", debit=True)
        if account is not None:
            log.info("top-up %s: debited %s fen from %s", t.id, t.amount_fen, account.masked)

    def _redeem_bank_leg(self, t: BankTransfer) -> None:
        memo = f"e-CNY redemption from {t.wallet}"
        account = self._post_leg(t, "chain_done", "completed", memo, debit=False)
        if account is not None:
            log.info("redemption %s: credited %s fen to %s", t.id, t.amount_fen, account.masked)

    def _compensate(self, t: BankTransfer, problem: dict[str, Any] | None) -> None:
        memo = f"reversal of top-up {t.id}: the chain refused it"
        account = self._post_leg(
            t, "bank_done", "compensated", memo, debit=False, entry="reversal_entry_id", problem=problem
        )
        if account is not None:
            log.info("top-up %s compensated: the chain refused it", t.id)

    def _post_leg(
        self,
        t: BankTransfer,
        old: str,
        new: str,
        memo: str,
        *,
        debit: bool,
        entry: str = "bank_entry_id",
        **values: Any,
    ) -> BankAccount | None:
        """One bank leg in one database transaction: move the transfer from ``old`` to ``new``
        (with ``values``), post the two-line entry between the customer's account and the
        institution's issuance clearing account (``debit``: the customer pays, which needs the
        funds; else the customer is paid) and store the entry's id in the transfer's ``entry``
        column. The customer's account, or None when nothing was posted: another run did this
        leg, or (a debit) the account does not hold the amount and the transfer failed."""
        with self.ctx.db.session() as s:
            # The compare-and-set first: it takes the write lock (SQLite) or the transfer's row
            # (PostgreSQL), so another run of this leg waits and then finds it done.
            if not self._cas(s, t, old, new, **values):
                s.rollback()  # another run did this leg: nothing written twice
                return None
            if debit:
                # Lock the customer's account row (PostgreSQL; SQLite has one writer anyway) so
                # that two top-ups from one account cannot both see the same balance.
                query = select(BankAccount).where(BankAccount.id == t.account_id).with_for_update()
                account = s.scalar(query)
            else:
                account = s.get(BankAccount, t.account_id)
            assert account is not None
            if debit and (have := balance(s, account.id)) < t.amount_fen:
                problem = Problem(
                    409,
                    "bank-insufficient-funds",
                    "The bank account does not hold the amount",
                    f"account {account.masked} holds {have} fen; {t.amount_fen} asked",
                )
                s.execute(
                    update(BankTransfer)
                    .where(BankTransfer.id == t.id)
                    .values(status="failed", problem=_stored(problem), updated_at=utcnow())
                )
                s.commit()
                return None
            clearing = _system_account(s, t.institution, "issuance")
            payer, payee = (account.id, clearing.id) if debit else (clearing.id, account.id)
            posted = post(s, t.institution, memo, [(payer, -t.amount_fen), (payee, t.amount_fen)], t.id)
            s.execute(update(BankTransfer).where(BankTransfer.id == t.id).values({entry: posted.id}))
            s.commit()
        return account

    def _chain_leg(self, t: BankTransfer) -> None:
        kind = f"banking.{t.kind}"
        body = {
            "transfer": t.id,
            "institution": t.institution,
            "wallet": t.wallet,
            "amount_fen": t.amount_fen,
        }
        idem = f"bank-transfer:{t.id}"
        with self.ctx.db.session() as s:
            key = s.get(ApiKey, t.api_key_id)
        assert key is not None
        try:
            op, _ = perform(self.ops, kind, key, idem, body, target=t.wallet)
        except Problem:
            found = self._operation(key.id, idem)
            if found is None or found.status == "pending":
                raise  # nothing known, or the node is away: the reconciler carries it on
            op = found
        self._chain_outcome(t, op)

    def _chain_outcome(self, t: BankTransfer, op: Operation) -> None:
        if op.status == "pending":
            with self.ctx.db.session() as s:
                s.execute(update(BankTransfer).where(BankTransfer.id == t.id).values(operation_id=op.id))
                s.commit()
            return
        done = op.status == "confirmed"
        if t.kind == TOPUP:
            if done:
                with self.ctx.db.session() as s:
                    if self._cas(s, t, "bank_done", "completed", operation_id=op.id, tx_hash=op.tx_hash):
                        s.commit()
            else:
                self._compensate(t, op.error)
        else:
            with self.ctx.db.session() as s:
                new = "chain_done" if done else "failed"
                if self._cas(
                    s,
                    t,
                    "intent",
                    new,
                    operation_id=op.id,
                    tx_hash=op.tx_hash,
                    problem=None if done else op.error,
                ):
                    s.commit()
            if done:
                fault_point("after_chain_leg", "banking.redeem")

    def _operation(self, api_key_id: int, idem: str) -> Operation | None:
        with self.ctx.db.session() as s:
            return s.scalar(
                select(Operation).where(Operation.api_key_id == api_key_id, Operation.idempotency_key == idem)
            )

    # -- the reconciler --------------------------------------------------------------------

    def reconcile(self, *, grace_s: float = GRACE_S) -> dict[str, int]:
        """Finish or compensate every transfer left unfinished (a crash, a node away). On start
        ``grace_s=0``: every one; periodically, those older than the grace."""
        cutoff = datetime.now(UTC) - timedelta(seconds=grace_s)
        with self.ctx.db.session() as s:
            rows = s.execute(
                select(BankTransfer.id, BankTransfer.updated_at).where(BankTransfer.status.not_in(TERMINAL))
            ).all()
        counts: dict[str, int] = {}
        for transfer_id, updated in rows:
            if grace_s and aware(updated) > cutoff:
                continue
            try:
                t = self.drive(transfer_id)
            except Exception as exc:  # one must not stop the others (the node may be away)
                log.info("bank transfer %s: %s", transfer_id, exc)
                t = self.get(transfer_id)
            counts[t.status] = counts.get(t.status, 0) + 1
        return counts

    def reconcile_all(self) -> dict[str, int]:
        return self.reconcile(grace_s=0)


def _stored(problem: Problem) -> dict[str, Any]:
    return jsonable(
        {"status": problem.status, "slug": problem.slug, "title": problem.title, "detail": problem.detail}
    )
