"""Typed client for restricted-purpose funds (contracts/vouchers/VoucherProgrammes.sol).

Consumption vouchers (消费红包) and union welfare (工会福利) are two configurations of the same
contract: see :class:`Terms` and the category constants below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from web3.contract.contract import ContractFunction

from chain.clients.base import DOMAIN_FIELDS, ContractClient
from chain.merkle import MerkleTree
from chain.sender import TxResult

MAX_BATCH = 200  # VoucherProgrammes.MAX_BATCH
MAX_CATEGORIES = 32  # VoucherProgrammes.MAX_CATEGORIES
EIP712_NAME = "XcpayVoucherProgrammes"
EIP712_VERSION = "1"

# Merchant category codes (ISO 18245) the pilot programmes use.
MCC_GROCERY = 5411  # supermarkets and grocery stores
MCC_RESTAURANT = 5812  # eating places, canteens
MCC_FAST_FOOD = 5814
MCC_DEPARTMENT_STORE = 5311
MCC_HEALTH = 8099  # health practitioners and medical services
UNION_WELFARE_CATEGORIES = (MCC_RESTAURANT, MCC_GROCERY, MCC_HEALTH)  # canteen, supermarket, health


class Mode(IntEnum):
    """Mirrors ``VoucherProgrammes.Mode``."""

    NONE = 0
    GRANT_LIST = 1  # issuer grants in batches or by Merkle root (lottery winners, union members)
    OPEN_ENROLMENT = 2  # people enrol themselves and receive the per-person cap, while budget lasts


class GrantSource(IntEnum):
    """Mirrors ``VoucherProgrammes.GrantSource``."""

    BATCH = 0
    CLAIM = 1
    ENROLMENT = 2


def programme_name(name: str) -> bytes:
    """A programme name as bytes32: short UTF-8, right-padded."""
    raw = name.encode()
    if not raw or len(raw) > 32:
        raise ValueError("a programme name is 1 to 32 bytes")
    return raw.ljust(32, b"\0")


def name_text(tag: bytes) -> str:
    return bytes(tag).rstrip(b"\0").decode(errors="replace")


@dataclass(frozen=True)
class Terms:
    """What the issuer fixes at creation. Amounts in fen; ``min_bill``/``discount_per_spend`` 0 = none.

    ``discount_per_spend > 0``: the programme pays min(discount, bill, balance) of a bill of at least
    ``min_bill`` (满减, "20 off 100"). ``discount_per_spend == 0``: a plain voucher paying
    min(bill, balance).
    """

    name: bytes
    mode: Mode
    starts_at: int
    expires_at: int
    budget: int
    per_person_cap: int
    min_bill: int = 0
    discount_per_spend: int = 0

    def abi(self) -> tuple[bytes, int, int, int, int, int, int, int]:
        return (
            self.name,
            int(self.mode),
            self.starts_at,
            self.expires_at,
            self.budget,
            self.per_person_cap,
            self.min_bill,
            self.discount_per_spend,
        )

    def share(self, bill: int, balance: int) -> int:
        """The voucher share of ``bill`` under these terms (the caller checks the refusals)."""
        share = bill if self.discount_per_spend == 0 else min(self.discount_per_spend, bill)
        return min(share, balance)


@dataclass(frozen=True)
class Grant:
    holder: str
    amount: int

    def abi(self) -> tuple[str, int]:
        return (self.holder, self.amount)


@dataclass(frozen=True)
class Programme:
    id: int
    issuer: str
    mode: Mode
    merchant_list: bool
    budget_returned: bool
    starts_at: int
    expires_at: int
    leaf_count: int
    holders: int
    name: bytes
    root: bytes
    budget: int
    per_person_cap: int
    min_bill: int
    discount_per_spend: int
    granted: int
    spent: int
    returned_grants: int
    returned_budget: int

    @property
    def outstanding(self) -> int:
        return self.granted - self.spent - self.returned_grants

    @property
    def ungranted(self) -> int:
        return self.budget - self.granted - self.returned_budget

    @property
    def returned(self) -> int:
        return self.returned_grants + self.returned_budget


@dataclass(frozen=True)
class Holding:
    granted: int
    spent: int
    returned: int

    @property
    def balance(self) -> int:
        return self.granted - self.spent - self.returned


@dataclass(frozen=True)
class Totals:
    """A programme's report: budget == spent + returned + outstanding + ungranted."""

    budget: int
    granted: int
    spent: int
    returned: int
    outstanding: int
    ungranted: int
    by_category: dict[int, int] = field(default_factory=dict)


def leaf_hash(programme_id: int, index: int, holder: str, amount: int) -> bytes:
    """Mirrors ``VoucherProgrammes.leafHash``: keccak(keccak(abi.encode(id, index, holder, amount)))."""
    inner = keccak(
        encode(["uint256", "uint256", "address", "uint256"], [programme_id, index, holder, amount])
    )
    return keccak(inner)


LEAF_ENCODING = ("uint256", "uint256", "address", "uint256")  # (programme, index, holder, amount)


def merkle_tree(programme_id: int, grants: Sequence[Grant]) -> MerkleTree:
    """The grant tree of a large campaign (a ``StandardMerkleTree``): value i is ``grants[i]``."""
    return MerkleTree([(programme_id, i, g.holder, g.amount) for i, g in enumerate(grants)], LEAF_ENCODING)


def spend_typed_data(
    chain_id: int,
    verifying_contract: str,
    programme_id: int,
    merchant: str,
    bill: int,
    nonce: int,
    deadline: int,
) -> dict:
    """The EIP-712 ``Spend`` a holder signs (phone or card at the till) for a merchant to submit."""
    return {
        "types": {
            "EIP712Domain": DOMAIN_FIELDS,
            "Spend": [
                {"name": "programmeId", "type": "uint256"},
                {"name": "merchant", "type": "address"},
                {"name": "bill", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Spend",
        "domain": {
            "name": EIP712_NAME,
            "version": EIP712_VERSION,
            "chainId": chain_id,
            "verifyingContract": verifying_contract,
        },
        "message": {
            "programmeId": programme_id,
            "merchant": merchant,
            "bill": bill,
            "nonce": nonce,
            "deadline": deadline,
        },
    }


def sign_spend(
    holder_key: LocalAccount | bytes,
    chain_id: int,
    verifying_contract: str,
    programme_id: int,
    merchant: str,
    bill: int,
    nonce: int,
    deadline: int,
) -> bytes:
    """The holder's 65-byte signature over a ``Spend``."""
    typed = spend_typed_data(chain_id, verifying_contract, programme_id, merchant, bill, nonce, deadline)
    key = holder_key.key if isinstance(holder_key, LocalAccount) else holder_key
    return bytes(Account.sign_message(encode_typed_data(full_message=typed), key).signature)


class VoucherClient(ContractClient):
    CONTRACT = "VoucherProgrammes"

    # -- issuer ----------------------------------------------------------------------------
    #
    # Each write has a ``*_call`` twin that builds the call without sending it: the services send
    # those through ``Operations`` (one pipeline signs, stores and sends), tests and scripts
    # through the methods below (``Transactor.transact``).

    def approve_budget_call(self, terms: Terms) -> ContractFunction:
        """Let the programmes pull the budget of ``terms`` from the signer (before ``create``)."""
        return self.cash.functions.approve(self.address, terms.budget)

    def create_call(
        self, terms: Terms, categories: Sequence[int], merchants: Sequence[str] = ()
    ) -> ContractFunction:
        """Create a programme; the issuer must have approved its budget."""
        return self.contract.functions.create(terms.abi(), list(categories), list(merchants))

    def create(
        self,
        issuer: LocalAccount,
        terms: Terms,
        categories: Sequence[int],
        merchants: Sequence[str] = (),
        *,
        approve: bool = True,
    ) -> tuple[int, TxResult]:
        """Approve the budget (unless ``approve=False``) and create; returns (programme id, result)."""
        if approve:
            self.tx.transact(issuer, self.approve_budget_call(terms))
        result = self.tx.transact(issuer, self.create_call(terms, categories, merchants))
        return int(result.named("ProgrammeCreated")[0]["id"]), result

    def list_merchants_call(
        self, programme_id: int, merchants: Sequence[str], allowed: bool = True
    ) -> ContractFunction:
        return self.contract.functions.listMerchants(programme_id, list(merchants), allowed)

    def list_merchants(
        self, issuer: LocalAccount, programme_id: int, merchants: Sequence[str], allowed: bool = True
    ) -> TxResult:
        return self.tx.transact(issuer, self.list_merchants_call(programme_id, merchants, allowed))

    def grant_call(self, programme_id: int, grants: Sequence[Grant]) -> ContractFunction:
        return self.contract.functions.grant(programme_id, [g.abi() for g in grants])

    def grant(self, issuer: LocalAccount, programme_id: int, grants: Sequence[Grant]) -> TxResult:
        return self.tx.transact(issuer, self.grant_call(programme_id, grants))

    def set_grant_root_call(self, programme_id: int, root: bytes, leaf_count: int) -> ContractFunction:
        return self.contract.functions.setGrantRoot(programme_id, root, leaf_count)

    def set_grant_root(
        self, issuer: LocalAccount, programme_id: int, root: bytes, leaf_count: int
    ) -> TxResult:
        return self.tx.transact(issuer, self.set_grant_root_call(programme_id, root, leaf_count))

    # -- holders ---------------------------------------------------------------------------

    def claim_call(
        self, programme_id: int, index: int, grant: Grant, proof: Sequence[bytes]
    ) -> ContractFunction:
        return self.contract.functions.claim(programme_id, index, grant.holder, grant.amount, list(proof))

    def claim(
        self, account: LocalAccount, programme_id: int, index: int, grant: Grant, proof: Sequence[bytes]
    ) -> TxResult:
        return self.tx.transact(account, self.claim_call(programme_id, index, grant, proof))

    def enrol_call(self, programme_id: int) -> ContractFunction:
        return self.contract.functions.enrol(programme_id)

    def enrol(self, holder: LocalAccount, programme_id: int) -> TxResult:
        return self.tx.transact(holder, self.enrol_call(programme_id))

    def approve_cash_call(self, amount: int) -> ContractFunction:
        """Let the programmes take the signer's own share of bills (up to ``amount`` fen in all)."""
        return self.cash.functions.approve(self.address, amount)

    def approve_cash(self, holder: LocalAccount, amount: int) -> TxResult:
        """Let the programmes take the holder's own share of bills (up to ``amount`` fen in all)."""
        return self.tx.transact(holder, self.approve_cash_call(amount))

    def spend_call(self, programme_id: int, merchant: str, bill: int) -> ContractFunction:
        return self.contract.functions.spend(programme_id, merchant, bill)

    def spend(self, holder: LocalAccount, programme_id: int, merchant: str, bill: int) -> TxResult:
        return self.tx.transact(holder, self.spend_call(programme_id, merchant, bill))

    def sign_spend(
        self,
        holder: LocalAccount | bytes,
        programme_id: int,
        merchant: str,
        bill: int,
        deadline: int,
        *,
        nonce: int | None = None,
        chain_id: int | None = None,
        verifying_contract: str | None = None,
    ) -> bytes:
        """The holder's signature for ``spend_with_signature``; the nonce defaults to the holder's next."""
        if nonce is None:
            address = holder.address if isinstance(holder, LocalAccount) else Account.from_key(holder).address
            nonce = self.nonce(address)
        return sign_spend(
            holder,
            chain_id if chain_id is not None else self.tx.chain_id,
            verifying_contract or self.address,
            programme_id,
            merchant,
            bill,
            nonce,
            deadline,
        )

    def spend_with_signature_call(
        self, programme_id: int, holder: str, merchant: str, bill: int, deadline: int, signature: bytes
    ) -> ContractFunction:
        return self.contract.functions.spendWithSignature(
            programme_id, holder, merchant, bill, deadline, signature
        )

    def spend_with_signature(
        self,
        submitter: LocalAccount,
        programme_id: int,
        holder: str,
        merchant: str,
        bill: int,
        deadline: int,
        signature: bytes,
    ) -> TxResult:
        fn = self.spend_with_signature_call(programme_id, holder, merchant, bill, deadline, signature)
        return self.tx.transact(submitter, fn)

    # -- anyone ----------------------------------------------------------------------------

    def close_call(self, programme_id: int, holders: Sequence[str] = ()) -> ContractFunction:
        return self.contract.functions.close(programme_id, list(holders))

    def close(self, keeper: LocalAccount, programme_id: int, holders: Sequence[str] = ()) -> TxResult:
        return self.tx.transact(keeper, self.close_call(programme_id, holders))

    # -- views -----------------------------------------------------------------------------

    def programme(self, programme_id: int) -> Programme:
        raw = self.tx.call(self.contract.functions.programmeOf(programme_id))
        return Programme(
            programme_id,
            raw[0],
            Mode(raw[1]),
            bool(raw[2]),
            bool(raw[3]),
            starts_at=int(raw[4]),
            expires_at=int(raw[5]),
            leaf_count=int(raw[6]),
            holders=int(raw[7]),
            name=bytes(raw[8]),
            root=bytes(raw[9]),
            budget=int(raw[10]),
            per_person_cap=int(raw[11]),
            min_bill=int(raw[12]),
            discount_per_spend=int(raw[13]),
            granted=int(raw[14]),
            spent=int(raw[15]),
            returned_grants=int(raw[16]),
            returned_budget=int(raw[17]),
        )

    def categories(self, programme_id: int) -> list[int]:
        return [int(c) for c in self.tx.call(self.contract.functions.categoriesOf(programme_id))]

    def holding(self, programme_id: int, holder: str) -> Holding:
        granted, spent, returned = self.tx.call(self.contract.functions.holdingOf(programme_id, holder))
        return Holding(int(granted), int(spent), int(returned))

    def balance(self, programme_id: int, holder: str) -> int:
        return int(self.tx.call(self.contract.functions.voucherBalanceOf(programme_id, holder)))

    def quote(self, programme_id: int, holder: str, bill: int) -> tuple[int, int]:
        """(voucher share, holder's cash share) of ``bill`` now; raises the spend rule's refusals."""
        voucher, cash_part = self.tx.call(self.contract.functions.quote(programme_id, holder, bill))
        return int(voucher), int(cash_part)

    def spent_by_category(self, programme_id: int, category: int) -> int:
        return int(self.tx.call(self.contract.functions.spentByCategory(programme_id, category)))

    def totals(self, programme_id: int) -> Totals:
        """The programme's report, with spending by each of its allowed categories."""
        raw = self.tx.call(self.contract.functions.totalsOf(programme_id))
        by_category = {c: self.spent_by_category(programme_id, c) for c in self.categories(programme_id)}
        budget, granted, spent, returned, outstanding, ungranted = (int(v) for v in raw)
        return Totals(budget, granted, spent, returned, outstanding, ungranted, by_category=by_category)

    def is_listed(self, programme_id: int, merchant: str) -> bool:
        return bool(self.tx.call(self.contract.functions.isListed(programme_id, merchant)))

    def is_claimed(self, programme_id: int, index: int) -> bool:
        return bool(self.tx.call(self.contract.functions.isClaimed(programme_id, index)))

    def nonce(self, holder: str) -> int:
        return int(self.tx.call(self.contract.functions.nonces(holder)))

    def total_held(self) -> int:
        return int(self.tx.call(self.contract.functions.totalHeld()))

    # -- per-identity caps (issue 22) ----------------------------------------------------------

    def recover_grants_call(self, programme_id: int, lost: str, successor: str) -> ContractFunction:
        """Anyone: the retired ``lost`` wallet's holding in programme ``programme_id`` (balance and
        use of the per-person cap) counts for its registered successor from now on."""
        return self.contract.functions.recoverGrants(programme_id, lost, successor)

    def cap_per_identity_call(self, programme_id: int) -> ContractFunction:
        """Issuer: count programme ``programme_id``'s per-person cap over all the wallets of one
        identity hash (before its first grant, for good)."""
        return self.contract.functions.capPerIdentity(programme_id)

    def caps_per_identity(self, programme_id: int) -> bool:
        return bool(self.tx.call(self.contract.functions.capsPerIdentity(programme_id)))

    def granted_to_identity(self, programme_id: int, identity_hash: bytes) -> int:
        """Granted in the programme to all the wallets of ``identity_hash`` (per-identity programmes)."""
        return int(self.tx.call(self.contract.functions.grantedToIdentity(programme_id, identity_hash)))
