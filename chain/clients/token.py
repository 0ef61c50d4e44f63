"""Typed client for the digital-cash family: the wallet registry and the DigitalCash token."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector
from web3 import Web3
from web3.contract.contract import ContractFunction

from chain.batch import BatchReader
from chain.events import checksum
from chain.manifest import Manifest
from chain.sender import Transactor, TxResult, node_errors

UNLIMITED = 2**256 - 1


#: ``payFor`` rule: the payee must be a merchant wallet (contracts/token/IDigitalCash.sol).
PAY_TO_MERCHANT = 1
#: ``payFor`` rule: the owner's tier payment and daily caps count the movement.
PAY_CHARGES_OWNER = 2


class Kind(IntEnum):
    """Mirrors ``IWalletRegistry.Kind``."""

    NONE = 0
    PERSONAL = 1
    MERCHANT = 2
    INSTITUTION = 3


#: ``WalletRegistry.MAX_REGISTRATIONS``: most rows of one ``registerBatch``.
MAX_REGISTRATIONS = 200


@dataclass(frozen=True)
class Registration:
    """One row of :meth:`CashClient.register_batch`: the arguments of ``register``."""

    wallet: str
    kind: Kind
    tier: int
    category: int
    identity_hash: bytes

    def abi(self) -> tuple[str, int, int, int, bytes]:
        return (self.wallet, int(self.kind), self.tier, self.category, self.identity_hash)


@dataclass(frozen=True)
class TierLimits:
    balance_cap: int
    payment_cap: int
    daily_cap: int


@dataclass(frozen=True)
class WalletInfo:
    address: str
    kind: Kind
    tier: int
    frozen: bool
    category: int
    identity_hash: bytes
    cap_exempt: bool
    limits: TierLimits | None

    @property
    def registered(self) -> bool:
        return self.kind != Kind.NONE


@dataclass(frozen=True)
class WalletState:
    """:meth:`CashClient.wallet_state`: a wallet's record with its balances, read together."""

    info: WalletInfo
    balance: int
    spent_today: int
    held: int
    retired: bool
    successor: str  # the zero address unless a retired wallet's funds moved on


class CashClient:
    """Every call of the token family; writes take the signing account explicitly."""

    def __init__(self, w3: Web3, manifest: Manifest, tx: Transactor | None = None) -> None:
        self.w3 = w3
        self.manifest = manifest
        self.tx = tx or Transactor(w3, manifest.error_decoder(), manifest.event_decoder(w3))
        self.registry = manifest.contract(w3, "WalletRegistry")
        self.cash = manifest.contract(w3, "DigitalCash")

    # -- registry --------------------------------------------------------------------------

    def register(
        self, signer: LocalAccount, wallet: str, kind: Kind, tier: int, category: int, identity_hash: bytes
    ) -> TxResult:
        return self.tx.transact(signer, self.register_call(wallet, kind, tier, category, identity_hash))

    def register_call(
        self, wallet: str, kind: Kind, tier: int, category: int, identity_hash: bytes
    ) -> ContractFunction:
        """The ``register`` call of one wallet (the registrar signs it)."""
        return self.registry.functions.register(wallet, int(kind), tier, category, identity_hash)

    def register_batch(self, signer: LocalAccount, rows: list[Registration]) -> TxResult:
        """Register up to MAX_REGISTRATIONS wallets in one transaction, all or nothing (a refused
        row reverts it with ``WalletBatchRowRefused(index, wallet, reason)``)."""
        return self.tx.transact(signer, self.register_batch_call(rows))

    def register_batch_call(self, rows: list[Registration]) -> ContractFunction:
        """The ``registerBatch`` call of ``rows`` (for callers that send it their own way)."""
        return self.registry.functions.registerBatch([r.abi() for r in rows])

    def set_tier(self, signer: LocalAccount, wallet: str, tier: int) -> TxResult:
        return self.tx.transact(signer, self.registry.functions.setTier(wallet, tier))

    def freeze(self, signer: LocalAccount, wallet: str) -> TxResult:
        return self.tx.transact(signer, self.freeze_call(wallet))

    def freeze_call(self, wallet: str) -> ContractFunction:
        """The regulator's ``freeze``: the wallet can neither pay nor be paid until unfrozen."""
        return self.registry.functions.freeze(wallet)

    def unfreeze(self, signer: LocalAccount, wallet: str) -> TxResult:
        return self.tx.transact(signer, self.unfreeze_call(wallet))

    def unfreeze_call(self, wallet: str) -> ContractFunction:
        return self.registry.functions.unfreeze(wallet)

    def set_tier_limits(self, signer: LocalAccount, tier: int, limits: TierLimits) -> TxResult:
        fn = self.registry.functions.setTierLimits(
            tier, limits.balance_cap, limits.payment_cap, limits.daily_cap
        )
        return self.tx.transact(signer, fn)

    def grant_cap_exemption(self, signer: LocalAccount, wallet: str) -> TxResult:
        role = self.registry.functions.CAP_EXEMPT_ROLE().call()
        return self.tx.transact(signer, self.registry.functions.grantRole(role, wallet))

    def tier_limits(self, tier: int) -> TierLimits:
        b, p, d = self.tx.call(self.registry.functions.tierLimits(tier))
        return TierLimits(b, p, d)

    def kind_of(self, address: str) -> Kind:
        """The wallet's kind (``Kind.NONE``: not registered), from one ``walletOf`` read."""
        return Kind(self.tx.call(self.registry.functions.walletOf(address))[0])

    def is_frozen(self, address: str) -> bool:
        """Whether the regulator froze the wallet, from one ``walletOf`` read (``wallet`` reads its
        tier policy too)."""
        return bool(self.tx.call(self.registry.functions.walletOf(address))[2])

    def wallet(self, address: str) -> WalletInfo:
        """The registry's record and policy of ``address`` (one round trip over HTTP)."""
        return self._wallet_info(address, *self.tx.call_many(self._wallet_calls(address)))

    def wallet_state(self, address: str) -> WalletState:
        """What a wallet's page shows of the chain: its record and policy, balance, today's
        spending, held amount, and whether (and to whom) it was retired; the seven views in one
        JSON-RPC batch over HTTP (they were seven round trips)."""
        r, c = self.registry.functions, self.cash.functions
        fns = [
            *self._wallet_calls(address),
            c.balanceOf(address),
            c.spentToday(address),
            r.heldOf(address),
            r.isRetired(address),
            r.successorOf(address),
        ]
        record, policy, balance, spent, held, retired, successor = self.tx.call_many(fns)
        return WalletState(
            info=self._wallet_info(address, record, policy),
            balance=int(balance),
            spent_today=int(spent),
            held=int(held),
            retired=bool(retired),
            successor=str(successor),
        )

    def _wallet_calls(self, address: str) -> list[ContractFunction]:
        return [self.registry.functions.walletOf(address), self.registry.functions.policyOf(address)]

    @staticmethod
    def _wallet_info(address: str, record: Sequence[Any], policy: Sequence[Any]) -> WalletInfo:
        kind, tier, frozen, category, identity_hash = record
        registered, _, exempt, (b, p, d) = policy
        return WalletInfo(
            address=address,
            kind=Kind(kind),
            tier=tier,
            frozen=frozen,
            category=category,
            identity_hash=bytes(identity_hash),
            cap_exempt=exempt,
            limits=TierLimits(b, p, d) if registered else None,
        )

    # -- cash ------------------------------------------------------------------------------

    @property
    def token_address(self) -> str:
        """The DigitalCash contract's address (the ``to`` of every signed cash transfer)."""
        return str(self.cash.address)

    def mint(self, signer: LocalAccount, to: str, amount_fen: int) -> TxResult:
        return self.tx.transact(signer, self.mint_call(to, amount_fen))

    def mint_call(self, to: str, amount_fen: int) -> ContractFunction:
        """The issuer's ``mint`` of ``amount_fen`` into the registered wallet ``to``."""
        return self.cash.functions.mint(to, amount_fen)

    def redeem(self, signer: LocalAccount, holder: str, amount_fen: int) -> TxResult:
        """Burn ``amount_fen`` from ``holder``, who must have approved ``signer`` (the issuer)."""
        return self.tx.transact(signer, self.redeem_call(holder, amount_fen))

    def redeem_call(self, holder: str, amount_fen: int) -> ContractFunction:
        """The issuer's ``redeem``: it needs ``holder``'s allowance to the issuer of ``amount_fen``."""
        return self.cash.functions.redeem(holder, amount_fen)

    def approve(self, holder: LocalAccount, spender: str, amount_fen: int) -> TxResult:
        return self.tx.transact(holder, self.cash.functions.approve(spender, amount_fen))

    def transfer(self, sender: LocalAccount, to: str, amount_fen: int) -> TxResult:
        return self.tx.transact(sender, self.transfer_call(to, amount_fen))

    def transfer_call(self, to: str, amount_fen: int) -> ContractFunction:
        """A ``transfer`` of the signer's own cash to ``to``."""
        return self.cash.functions.transfer(to, amount_fen)

    def transfer_from(self, spender: LocalAccount, owner: str, to: str, amount_fen: int) -> TxResult:
        """``spender`` moves ``amount_fen`` of ``owner``'s money to ``to`` on ``owner``'s approval
        (the spender must itself be registered and unfrozen)."""
        return self.tx.transact(spender, self.cash.functions.transferFrom(owner, to, amount_fen))

    def pay_for(self, family: LocalAccount, owner: str, to: str, amount_fen: int, rules: int = 0) -> TxResult:
        """A family (cap-exempt) wallet pays ``amount_fen`` of ``owner``'s money to ``to``.

        ``rules`` is a bit set of :data:`PAY_TO_MERCHANT` and :data:`PAY_CHARGES_OWNER`.
        """
        return self.tx.transact(family, self.cash.functions.payFor(owner, to, amount_fen, rules))

    def pause(self, signer: LocalAccount) -> TxResult:
        return self.tx.transact(signer, self.pause_call())

    def pause_call(self) -> ContractFunction:
        """The regulator's ``pause``: no cash moves until ``unpause``."""
        return self.cash.functions.pause()

    def unpause(self, signer: LocalAccount) -> TxResult:
        return self.tx.transact(signer, self.unpause_call())

    def unpause_call(self) -> ContractFunction:
        return self.cash.functions.unpause()

    def balance_of(self, address: str) -> int:
        return int(self.tx.call(self.cash.functions.balanceOf(address)))

    def allowance(self, owner: str, spender: str) -> int:
        return int(self.tx.call(self.cash.functions.allowance(owner, spender)))

    def approve_call(self, spender: str, amount_fen: int) -> ContractFunction:
        """The signer's approval of ``spender`` (a family contract) for ``amount_fen``."""
        return self.cash.functions.approve(spender, amount_fen)

    def total_supply(self) -> int:
        return int(self.tx.call(self.cash.functions.totalSupply()))

    def grant_issuer_call(self, signer: str) -> ContractFunction:
        """Admin: let ``signer`` (an operator institution's key) mint and redeem; the institutions'
        book still bounds it by its reserve."""
        return self.cash.functions.grantRole(self.cash.functions.ISSUER_ROLE().call(), signer)

    def is_issuer(self, signer: str) -> bool:
        role = self.tx.call(self.cash.functions.ISSUER_ROLE())
        return bool(self.tx.call(self.cash.functions.hasRole(role, signer)))

    def spent_today(self, address: str) -> int:
        return int(self.tx.call(self.cash.functions.spentToday(address)))

    def paused(self) -> bool:
        return bool(self.tx.call(self.cash.functions.paused()))

    # -- identities, holds, court orders, recovery (issue 22) --------------------------------
    # Writes return calls (send them with ``self.tx.transact(signer, call)`` or Operations).

    def set_personal_wallet_limit_call(self, limit: int) -> ContractFunction:
        """Admin: how many personal wallets one identity may hold per tier (1..255)."""
        return self.registry.functions.setPersonalWalletLimit(limit)

    def personal_wallet_limit(self) -> int:
        return int(self.tx.call(self.registry.functions.personalWalletLimit()))

    def personal_wallet_of(self, identity_hash: bytes, tier: int = 0) -> str:
        """The one live personal wallet of ``identity_hash`` in ``tier`` (0: any tier); raises the
        registry's ``NoPersonalWallet`` / ``AmbiguousPersonalWallet`` (a row error, never a guess)."""
        return str(self.tx.call(self.registry.functions.personalWalletOf(identity_hash, tier)))

    def personal_wallet_count(self, identity_hash: bytes, tier: int) -> int:
        return int(self.tx.call(self.registry.functions.personalWalletCount(identity_hash, tier)))

    def identity_of(self, wallet: str) -> bytes:
        """The holder's identity hash (a merchant's or institution's: its owner's)."""
        return bytes(self.tx.call(self.registry.functions.identityOf(wallet)))

    def place_hold_call(
        self, wallet: str, amount_fen: int, reason: bytes, case_number: bytes
    ) -> ContractFunction:
        """Regulator: hold ``amount_fen`` of ``wallet``'s balance (see :func:`bytes32_text`)."""
        return self.registry.functions.placeHold(wallet, amount_fen, reason, case_number)

    def lift_hold_call(self, wallet: str, hold_id: int) -> ContractFunction:
        """Regulator: lift hold ``hold_id`` on ``wallet`` whole."""
        return self.registry.functions.liftHold(wallet, hold_id)

    def held_of(self, wallet: str) -> int:
        return int(self.tx.call(self.registry.functions.heldOf(wallet)))

    def hold(self, hold_id: int) -> Hold:
        wallet, amount, active, reason, case = self.tx.call(self.registry.functions.holdOf(hold_id))
        return Hold(hold_id, wallet, int(amount), bool(active), bytes(reason), bytes(case))

    def holds_of(self, wallet: str) -> list[Hold]:
        """The active holds on ``wallet``."""
        return [self.hold(int(i)) for i in self.tx.call(self.registry.functions.holdsOf(wallet))]

    def propose_court_order_call(
        self, from_wallet: str, to: str, amount_fen: int, case_number: bytes, hold_id: int = 0
    ) -> ContractFunction:
        """Regulator (maker): a court order moving ``amount_fen`` from ``from_wallet`` to ``to``,
        executed against hold ``hold_id`` (0: none) when a different regulator approves it."""
        return self.registry.functions.proposeCourtOrder(from_wallet, to, amount_fen, case_number, hold_id)

    def approve_court_order_call(self, order_id: int) -> ContractFunction:
        """Regulator (checker, not the maker): approve and execute court order ``order_id``."""
        return self.registry.functions.approveCourtOrder(order_id)

    def cancel_court_order_call(self, order_id: int) -> ContractFunction:
        return self.registry.functions.cancelCourtOrder(order_id)

    def court_order(self, order_id: int) -> CourtOrder:
        frm, status, to, amount, maker, case, hold_id = self.tx.call(
            self.registry.functions.courtOrderOf(order_id)
        )
        return CourtOrder(
            order_id, frm, ProposalStatus(status), to, int(amount), maker, bytes(case), int(hold_id)
        )

    def propose_recovery_call(self, lost: str, replacement: str, evidence: bytes) -> ContractFunction:
        """Operator (maker): the holder of ``lost`` proved their identity (``evidence``: the hash of
        the verification record); ``replacement`` (unregistered) is to take ``lost``'s place."""
        return self.registry.functions.proposeRecovery(lost, replacement, evidence)

    def approve_recovery_call(self, recovery_id: int) -> ContractFunction:
        """Regulator (checker): register the replacement with the lost wallet's record, retire the
        lost wallet and move its whole holding."""
        return self.registry.functions.approveRecovery(recovery_id)

    def cancel_recovery_call(self, recovery_id: int) -> ContractFunction:
        return self.registry.functions.cancelRecovery(recovery_id)

    def recovery(self, recovery_id: int) -> Recovery:
        lost, status, replacement, maker, evidence = self.tx.call(
            self.registry.functions.recoveryOf(recovery_id)
        )
        return Recovery(recovery_id, lost, ProposalStatus(status), replacement, maker, bytes(evidence))

    def is_retired(self, wallet: str) -> bool:
        return bool(self.tx.call(self.registry.functions.isRetired(wallet)))

    def successor_of(self, wallet: str) -> str:
        """The wallet that took over a retired ``wallet`` (the zero address when none)."""
        return str(self.tx.call(self.registry.functions.successorOf(wallet)))

    # -- many wallets at once (batched reads) ----------------------------------------------

    def retired_among(self, wallets: Sequence[str]) -> dict[str, str]:
        """The retired wallets among ``wallets``, each with its successor (the zero address when
        none): ``isRetired`` of every wallet in JSON-RPC batches (:mod:`chain.batch`), then
        ``successorOf`` of the retired ones. One ``eth_call`` each through web3 cost a round trip
        and its checks per row: most of a 10,000-row payroll's creation (146 s under load)."""
        wallets = list(dict.fromkeys(wallets))
        retired = [
            w for w, word in zip(wallets, self._views("isRetired(address)", wallets), strict=True) if word[31]
        ]
        heirs = self._views("successorOf(address)", retired)
        return {w: checksum("0x" + word[12:32].hex()) for w, word in zip(retired, heirs, strict=True)}

    def live_personal_among(self, wallets: Sequence[str]) -> set[str]:
        """Those of ``wallets`` registered as personal and not retired (the chain's
        ``personalWalletOf`` rule), from batched ``walletOf`` and ``isRetired`` reads."""
        wallets = list(dict.fromkeys(wallets))
        records = self._views("walletOf(address)", wallets)
        kinds = [int.from_bytes(word[:32], "big") for word in records]
        personal = [w for w, kind in zip(wallets, kinds, strict=True) if kind == Kind.PERSONAL]
        retired = self._views("isRetired(address)", personal)
        return {w for w, word in zip(personal, retired, strict=True) if not word[31]}

    def _views(self, signature: str, wallets: list[str]) -> list[bytes]:
        """The return data of the registry's one-address view ``signature`` for each wallet."""
        if not wallets:
            return []
        selector = function_signature_to_4byte_selector(signature)
        to = str(self.registry.address)
        calls = [(to, selector + bytes(12) + bytes.fromhex(w[2:])) for w in wallets]
        with node_errors():
            return BatchReader(self.w3).calls(calls)


def bytes32_text(text: str) -> bytes:
    """A case number or a hold reason as bytes32: UTF-8, 1 to 32 bytes, right-padded."""
    raw = text.encode()
    if not raw or len(raw) > 32:
        raise ValueError("a case number or reason is 1 to 32 bytes of UTF-8")
    return raw.ljust(32, b"\0")


class ProposalStatus(IntEnum):
    """Mirrors ``WalletRegistry.Status`` (court orders and recoveries)."""

    NONE = 0
    PENDING = 1
    EXECUTED = 2
    CANCELLED = 3


@dataclass(frozen=True)
class Hold:
    """``WalletRegistry.Hold``: ``amount`` fen of ``wallet`` held (what is left of it)."""

    hold_id: int
    wallet: str
    amount: int
    active: bool
    reason: bytes
    case_number: bytes


@dataclass(frozen=True)
class CourtOrder:
    order_id: int
    from_wallet: str
    status: ProposalStatus
    to: str
    amount: int
    maker: str
    case_number: bytes
    hold_id: int


@dataclass(frozen=True)
class Recovery:
    recovery_id: int
    lost: str
    status: ProposalStatus
    replacement: str
    maker: str
    evidence: bytes
