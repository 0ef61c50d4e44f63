"""Typed client for the two tiers (issue 24): the central bank's book of operator institutions."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.contract.contract import ContractFunction

from chain.clients.base import ContractClient
from chain.clients.token import Kind
from chain.sender import TxResult


@dataclass(frozen=True)
class Institution:
    """One operator institution as the book holds it (amounts in fen; ``outstanding`` is signed:
    what it issued less what it redeemed, below zero when it redeemed cash others issued)."""

    id: int
    signer: str
    name: bytes
    reserve: int
    outstanding: int
    issued: int
    redeemed: int

    @property
    def headroom(self) -> int:
        """How much more it may issue now."""
        return self.reserve - self.outstanding


class InstitutionsClient(ContractClient):
    """Every call of ``OperatorInstitutions``; writes take the signing account explicitly."""

    CONTRACT = "OperatorInstitutions"

    @property
    def book(self) -> Contract:
        """The OperatorInstitutions contract (``contract``), by the name callers knew it."""
        return self.contract

    # -- central bank --------------------------------------------------------------------

    def add_institution_call(self, signer: str, name: bytes) -> ContractFunction:
        return self.contract.functions.addInstitution(signer, name)

    def add_institution(self, central_bank: LocalAccount, signer: str, name: bytes) -> int:
        """Authorise an institution; its number."""
        self.tx.transact(central_bank, self.add_institution_call(signer, name))
        return int(self.tx.call(self.contract.functions.institutionOf(signer)))

    def allocate_call(self, institution: int, amount: int) -> ContractFunction:
        return self.contract.functions.allocateReserve(institution, amount)

    def allocate(self, central_bank: LocalAccount, institution: int, amount: int) -> TxResult:
        return self.tx.transact(central_bank, self.allocate_call(institution, amount))

    def withdraw_call(self, institution: int, amount: int) -> ContractFunction:
        return self.contract.functions.withdrawReserve(institution, amount)

    def withdraw(self, central_bank: LocalAccount, institution: int, amount: int) -> TxResult:
        return self.tx.transact(central_bank, self.withdraw_call(institution, amount))

    # -- institutions --------------------------------------------------------------------

    def register_call(
        self, wallet: str, kind: Kind, tier: int, category: int, identity_hash: bytes
    ) -> ContractFunction:
        """Register ``wallet`` as served by the signer's institution."""
        return self.contract.functions.registerWallet(wallet, int(kind), tier, category, identity_hash)

    def register(
        self, signer: LocalAccount, wallet: str, kind: Kind, tier: int, category: int, identity_hash: bytes
    ) -> TxResult:
        return self.tx.transact(signer, self.register_call(wallet, kind, tier, category, identity_hash))

    # -- views ---------------------------------------------------------------------------

    def count(self) -> int:
        return int(self.tx.call(self.contract.functions.institutionCount()))

    def institution(self, institution: int) -> Institution:
        record = self.tx.call(self.contract.functions.institutionRecord(institution))
        s, name, reserve, outstanding, issued, redeemed = record
        return Institution(institution, s, bytes(name), reserve, outstanding, issued, redeemed)

    def institutions(self) -> list[Institution]:
        return [self.institution(i) for i in range(1, self.count() + 1)]

    def institution_of(self, signer: str) -> int:
        """The institution ``signer`` signs for (0: none)."""
        return int(self.tx.call(self.contract.functions.institutionOf(signer)))

    def served_by(self, wallet: str) -> int:
        return int(self.tx.call(self.contract.functions.servedBy(wallet)))

    def totals(self) -> dict[str, int]:
        f = self.contract.functions
        return {
            "reserve": self.tx.call(f.totalReserve()),
            "issued": self.tx.call(f.totalIssued()),
            "redeemed": self.tx.call(f.totalRedeemed()),
        }


def authorise_institution(
    book: InstitutionsClient, admin: LocalAccount, central_bank: LocalAccount, signer: str, name: str
) -> int:
    """Authorise a new operator institution end to end: the central bank adds it to the book, the
    token's admin grants its key the issuer role (the book still bounds it by its reserve, zero
    until the central bank allocates one). Its number."""
    institution = book.add_institution(central_bank, signer, name.encode()[:32].ljust(32, b"\0"))
    issuer = book.cash.functions.ISSUER_ROLE().call()
    book.tx.transact(admin, book.cash.functions.grantRole(issuer, signer))
    return institution
