"""What a service holds while it runs: settings, database, chain connection, clients, keys."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from web3 import Web3

from chain.backends import connect
from chain.families import FamilyClients
from chain.manifest import Manifest
from chain.sender import Transactor
from services.common.db import Database
from services.common.models import Meta
from services.common.problems import Problem
from services.common.settings import Settings
from services.common.signers import Custody, service_account


@dataclass
class ServiceContext(FamilyClients):
    """The families' typed clients (``ctx.cash``, ``ctx.disburse``, ``ctx.hardwallet``, ...) are
    attributes built from the family registry (chain/families.py, :class:`FamilyClients`): those
    marked eager when the context is built, the others on first use."""

    settings: Settings
    db: Database
    w3: Web3
    manifest: Manifest
    tx: Transactor
    operator: LocalAccount
    regulator: LocalAccount
    custody: Custody
    # The second regulator key (court orders' checker, issue 22); None when not configured.
    second_regulator: LocalAccount | None = None
    # The contracts' admin key (sets the personal wallet limit); None when not configured.
    admin: LocalAccount | None = None

    @classmethod
    def build(
        cls, settings: Settings, w3: Web3 | None = None, db: Database | None = None, signer: str = "operator"
    ) -> ServiceContext:
        """``signer``: whose key ``operator`` holds, the key this service signs its own
        transactions with ("operator" for the operator service, "gateway" for the gateway)."""
        w3 = w3 or connect(settings.rpc_url, timeout_s=settings.rpc_timeout_s)
        manifest = Manifest.load(settings.manifest)
        tx = Transactor(
            w3,
            manifest.error_decoder(),
            manifest.event_decoder(w3),
            confirmations=settings.confirmations,
            receipt_timeout_s=settings.receipt_timeout_s,
        )
        ctx = cls(
            settings=settings,
            db=db or Database(settings.database_url),
            w3=w3,
            manifest=manifest,
            tx=tx,
            operator=service_account(settings, signer),
            regulator=service_account(settings, "regulator"),
            custody=Custody(settings.keystore_password, settings.keystore_scrypt_n),
            second_regulator=_optional_key(settings, "second_regulator"),
            admin=_optional_key(settings, "admin"),
        )
        ctx.build_eager_clients()
        return ctx

    def custodial(self, address: str) -> LocalAccount:
        """The key of a custodial wallet; a 422 problem when the service does not hold it."""
        from services.common.models import Wallet
        from services.common.problems import Problem

        with self.db.session() as s:
            row = s.get(Wallet, address)
        if row is None or row.custody != "custodial" or row.keystore is None:
            raise Problem(
                422,
                "not-custodial",
                "Not a custodial wallet",
                f"the service does not hold the key of {address}; only custodial wallets can act here",
            )
        return self.custody.open(address, row.keystore)

    def chain_binding(self) -> str:
        """What a database records of its chain: chain id, genesis hash, the token's address."""
        genesis = "0x" + bytes(self.w3.eth.get_block(0)["hash"]).hex()
        return f"{self.manifest.chain_id}:{genesis}:{self.manifest.address('DigitalCash')}"

    def bind_database_to_chain(self) -> None:
        """Refuse to run a database against a chain it does not belong to.

        The first start records the chain's genesis hash and the token's address; a later start
        on another chain (a restarted in-memory node, another network) stops with a clear error
        instead of mixing the records of two chains.
        """
        binding = self.chain_binding()
        with self.db.session() as s:
            recorded = s.scalar(select(Meta.value).where(Meta.key == "chain"))
            if recorded is None:
                # The operator and the gateway start side by side on one database: the other may
                # record the binding between this read and this write. Its row then stands, and
                # is checked like any recorded one.
                s.add(Meta(key="chain", value=binding))
                try:
                    s.commit()
                    return
                except IntegrityError:
                    s.rollback()
                    recorded = s.scalar(select(Meta.value).where(Meta.key == "chain"))
            if recorded != binding:
                raise ChainMismatch(
                    f"the database belongs to chain {recorded}, but the service is on {binding}; "
                    "point XCPAY_DATABASE_URL at this chain's database (or a new one)"
                )


class ChainMismatch(RuntimeError):
    """The database holds the records of another chain."""


def _optional_key(settings: Settings, role: str) -> LocalAccount | None:
    """The second regulator key (``checker``) or the admin's: a development account locally, the
    configured keystore in production, None when production configures none (the routes that
    need it then answer 503)."""
    if getattr(settings, f"{role}_keystore") is None and settings.profile != "local":
        return None
    return service_account(settings, role)


def refuse_retired(ctx: ServiceContext, wallet: str, what: str = "", *, then: str = "address") -> None:
    """410 ``wallet-retired`` naming the successor when ``wallet`` was recovered: no new obligation
    (a mandate, a card, a grant, a row) is ever addressed to a retired wallet, and no key signs in
    for it. The one spelling of that answer: ``what`` says which part of the request named the
    wallet, ``then`` what to do with the successor instead ("sign in with", "issue the key for")."""
    if ctx.cash.is_retired(wallet):
        named = f"{wallet} ({what})" if what else wallet
        raise Problem(
            410,
            "wallet-retired",
            "Wallet retired: it was recovered to a new wallet",
            f"{named}: {then} its successor, {ctx.cash.successor_of(wallet)}",
        )
