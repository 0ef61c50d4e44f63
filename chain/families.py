"""The family registry: one descriptor per contract family, the spine the rest is derived from.

A family (the digital cash, prepaid, disburse, collective, vouchers, hardwallet with QuickPay) is
described once here: its contracts and how they are deployed, its typed client(s) and the
attribute a service context gives them, the HTTP answer of each of its contracts' custom errors,
what the reconciliation checks of it (the cash it must hold against its own books, the events an
operation of it must have produced) and what the dashboard shows of it. ``chain/deploy.py``
deploys the families in this order, ``services/common/context.py`` builds their clients,
``services/common/problems.py`` merges their error tables and ``services/operator/reconciliation.py``
checks their holdings and expected events, each from :data:`FAMILIES` rather than naming every
family by hand. Adding a family is adding a descriptor (and its contracts, client and folders).

Payment codes (``services/operator/routes/payment_codes.py``) are a family of the services with no
contract of their own (a code is paid with the token, a voucher or a card), so they have no
descriptor here.

Deploy steps are data (:class:`Deploy`, :class:`RegisterWallet`, :class:`Grant`), run in order by
``chain/deploy.py``: the order of the transactions fixes every address, so it is kept exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hexbytes import HexBytes

from chain.clients.collective import CollectiveClient
from chain.clients.devices import DeviceClient
from chain.clients.disburse import DisbursementClient, purpose_name
from chain.clients.hardwallet import HardWalletClient, QuickPayClient
from chain.clients.prepaid import PrepaidClient
from chain.clients.refunds import RefundsClient
from chain.clients.tiers import InstitutionsClient
from chain.clients.token import CashClient
from chain.clients.vouchers import VoucherClient

if TYPE_CHECKING:
    from web3 import Web3

    from chain.manifest import Manifest
    from chain.sender import Transactor

ZERO = "0x0000000000000000000000000000000000000000"

#: A custom error's HTTP answer: (status, stable problem slug, title).
ErrorAnswer = tuple[int, str, str]

#: What an operation of a kind asked for, as (event name, expected arguments) its transaction must
#: contain, from the operation's stored request (and its kind).
Expected = Callable[[dict[str, Any], str], list[tuple[str, dict[str, Any]]]]


# -- deploy steps, as data ------------------------------------------------------------------------


@dataclass(frozen=True)
class Role:
    """A deployment role as a constructor argument or grantee: ``deployer`` (the admin, whose key
    deploys), ``operator``, ``regulator`` or ``gateway`` (chain.deploy.Roles)."""

    name: str


@dataclass(frozen=True)
class Deploy:
    """Deploy ``contract`` with these constructor arguments: a :class:`Role`'s address or, for a
    string, the address of that contract deployed earlier."""

    contract: str
    args: tuple[Role | str, ...] = ()


@dataclass(frozen=True)
class RegisterWallet:
    """Register ``contract`` as an institution wallet (chain.deploy.register_contract_wallet):
    the token admits only registered spenders; ``cap_exempt`` when it holds funds."""

    contract: str
    cap_exempt: bool = True


@dataclass(frozen=True)
class Grant:
    """Grant ``role`` (the name of the contract's role constant) of ``contract`` to ``to``: a
    :class:`Role`, or (a string) a contract deployed earlier."""

    contract: str
    role: str
    to: Role | str


@dataclass(frozen=True)
class Link:
    """The admin (deployer) calls ``contract.function(*args)`` to wire two contracts together
    (``WalletRegistry.linkCash``: court orders and recoveries are decided in the registry and
    carried out by the token); ``args`` as for :class:`Deploy`."""

    contract: str
    function: str
    args: tuple[Role | str, ...] = ()


Step = Deploy | RegisterWallet | Grant | Link

DEPLOYER = Role("deployer")
OPERATOR = Role("operator")
REGULATOR = Role("regulator")
GATEWAY = Role("gateway")
# The second regulator key: approves the court orders the first one proposed (maker-checker).
SECOND_REGULATOR = Role("second_regulator")
TOKEN = ("DigitalCash", "WalletRegistry")  # the arguments most family contracts are built with


# -- what the services and the reconciliation read of a family ------------------------------------


@dataclass(frozen=True)
class ClientSlot:
    """A typed client of the family and the attribute a service context holds it under.

    ``eager``: built when the context is built (a missing contract stops the start); otherwise on
    first use (the contracts of a family a service may run without)."""

    attr: str
    cls: type[Any]
    eager: bool = False


@dataclass(frozen=True)
class Holding:
    """A contract that holds cash for its family, and how its own books say how much.

    ``views`` are no-argument ``uint256`` getters, read at the reconciled block as
    ``{key: value}``; ``books`` gives from them what the contract must hold (its token balance may
    exceed it only by cash sent to it directly, a surplus). ``identity``, when given, is a further
    check over the views: (its name, whether it holds). ``figures`` prefixes the check's detail
    with the books' own figures."""

    contract: str
    what: str
    views: tuple[tuple[str, str], ...]  # (key, getter)
    books: Callable[[Mapping[str, int]], int]
    identity: tuple[str, Callable[[Mapping[str, int]], bool]] | None = None
    figures: Callable[[Mapping[str, int]], str] | None = None


@dataclass(frozen=True)
class Tally:
    """A total of the reconciliation's report over one event of the family: ``report_key`` ->
    {``key(args)``: sum of ``args[amount]``}, e.g. disbursements by purpose."""

    report_key: str
    contract: str
    event: str
    key: Callable[[Mapping[str, Any]], str]
    amount: str


@dataclass(frozen=True)
class Panel:
    """The family's dashboard section, as data: the key of the section in ``/dashboard/data``,
    the title of its card (the English text, the key of its translation), the contract without
    which the section is absent, and the counts of indexed events it shows as
    ``{output key: (contract, event name)}`` (a contract not deployed gives no counts)."""

    key: str
    title: str
    needs: str
    counts: Mapping[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Backing:
    """What backs the token's supply (two-tier operation): ``views`` of ``contract`` (no-argument
    ``uint256`` getters, read at the reconciled block) and the ``checks`` the reconciliation makes
    of them together with the supply, each (its name, whether it holds given (views, supply))."""

    contract: str
    views: tuple[tuple[str, str], ...]
    checks: tuple[tuple[str, Callable[[Mapping[str, int], int], bool]], ...]


@dataclass(frozen=True)
class Family:
    """One contract family: everything the platform derives from it (see the module's doc)."""

    name: str
    contracts: tuple[str, ...]
    deploy: tuple[Step, ...]
    clients: tuple[ClientSlot, ...]
    errors: Mapping[str, ErrorAnswer]
    holdings: tuple[Holding, ...] = ()
    expected: Mapping[str, Expected] = field(default_factory=dict)
    tallies: tuple[Tally, ...] = ()
    panel: Panel | None = None
    #: What backs the token's supply, checked by the reconciliation (the two tiers' reserves).
    backing: tuple[Backing, ...] = ()
    #: The family's folder in the services (``services/<app>/families/<folder>/``) when its name
    #: there differs (the token's is ``cash``).
    folder: str | None = None


# -- the families' custom errors and their HTTP answers (services/common/problems.py) ----------

_TOKEN_ERRORS: dict[str, ErrorAnswer] = {
    "WalletNotRegistered": (422, "wallet-not-registered", "Wallet not registered"),
    "WalletAlreadyRegistered": (409, "wallet-already-registered", "Wallet already registered"),
    "WalletFrozen": (409, "wallet-frozen", "Wallet frozen"),
    "WalletNotFrozen": (409, "wallet-not-frozen", "Wallet not frozen"),
    "TierBalanceCapExceeded": (422, "tier-balance-cap-exceeded", "Tier balance cap exceeded"),
    "TierPaymentCapExceeded": (422, "tier-payment-cap-exceeded", "Tier payment cap exceeded"),
    "TierDailyCapExceeded": (422, "tier-daily-cap-exceeded", "Tier daily cap exceeded"),
    "ERC20InsufficientBalance": (422, "insufficient-balance", "Insufficient balance"),
    "ERC20InsufficientAllowance": (422, "insufficient-allowance", "Insufficient allowance"),
    "InvalidTier": (422, "invalid-tier", "Invalid tier"),
    "InvalidCategory": (422, "invalid-category", "Invalid merchant category"),
    "ZeroAmount": (422, "zero-amount", "Amount must be positive"),
    # one person, one identity; holds, court orders and recovery (issue 22)
    "IdentityWalletLimit": (
        409,
        "identity-wallet-limit",
        "This identity holds as many personal wallets in this tier as allowed",
    ),
    "InvalidPersonalWalletLimit": (422, "invalid-personal-wallet-limit", "Invalid personal wallet limit"),
    "NoPersonalWallet": (422, "no-personal-wallet", "No personal wallet is registered with this identity"),
    "AmbiguousPersonalWallet": (
        422,
        "identity-ambiguous",
        "Several personal wallets are registered with this identity",
    ),
    "AmountFrozen": (409, "amount-frozen", "Part of the balance is held and cannot move"),
    "AmountFrozenInFamily": (
        409,
        "amount-frozen",
        "The holder's holds are not covered by the wallet: money held for them cannot move",
    ),
    "WalletRetired": (410, "wallet-retired", "Wallet retired: it was recovered to a new wallet"),
    "InvalidAmount": (422, "invalid-amount", "Invalid amount"),
    "ZeroCaseNumber": (422, "case-number-required", "A case number is required"),
    "HoldNotActive": (409, "hold-not-active", "The hold is not active on this wallet"),
    "ProposalNotPending": (409, "proposal-not-pending", "The order or recovery is not pending"),
    "CheckerIsMaker": (
        403,
        "checker-is-maker",
        "The checker must be a different regulator key than the maker",
    ),
    "RecoveryOfFamilyWallet": (
        422,
        "recovery-of-family-wallet",
        "A family contract's wallet cannot be recovered",
    ),
    "ZeroEvidence": (422, "evidence-required", "Identity verification evidence is required"),
    # recovery of family-held assets (declared once, next to IWalletRegistry; every family uses them)
    "RecoveryNotRetired": (409, "wallet-not-retired", "The wallet is not retired: nothing of it moves"),
    "RecoveryWrongSuccessor": (
        409,
        "not-the-successor",
        "A retired wallet's holdings move only to its registered successor",
    ),
    "RecoveryNothingHeld": (409, "nothing-held", "The retired wallet holds nothing here (moved already?)"),
}
_PREPAID_ERRORS: dict[str, ErrorAnswer] = {
    "PrepaidUnknownPackage": (404, "package-not-found", "Package not found"),
    "PrepaidPackageClosed": (409, "package-closed", "The package is no longer open"),
    "PrepaidMerchantNotEnrolled": (422, "merchant-not-enrolled", "Merchant not enrolled for supervision"),
    "PrepaidMerchantAlreadyEnrolled": (409, "merchant-already-enrolled", "Merchant already enrolled"),
    "PrepaidMerchantClosed": (409, "merchant-closed", "The merchant was closed by the regulator"),
    "PrepaidMerchantFrozen": (409, "merchant-frozen", "The merchant's wallet is frozen"),
    "PrepaidNotMerchantWallet": (422, "not-a-merchant-wallet", "Not a registered merchant wallet"),
    "PrepaidTooManySessions": (422, "too-many-sessions", "More sessions than remain"),
    "PrepaidPackageExpired": (409, "package-expired", "The package has ended"),
    "PrepaidNotRefundable": (409, "not-refundable", "Neither expired nor the merchant closed"),
    "PrepaidInvalidSignature": (422, "invalid-signature", "The consumer's signature does not match"),
    "PrepaidSignatureExpired": (422, "signature-expired", "The consumer's signature has expired"),
    "PrepaidConsumerFrozen": (
        409,
        "consumer-frozen",
        "The consumer's wallet is frozen; use and refunds wait",
    ),
    "PrepaidTransferFailed": (502, "prepaid-transfer-failed", "The token failed a refund"),
    "PrepaidCeilingExceeded": (422, "ceiling-exceeded", "Above the merchant's per-package ceiling"),
    "PrepaidFeeTooHigh": (422, "fee-too-high", "The cancellation fee exceeds the supervised part"),
    "PrepaidExpiryInPast": (422, "expiry-in-past", "The end date is in the past"),
    "PrepaidInvalidShare": (422, "invalid-share", "Supervised share must be 1 to 10000 basis points"),
}
_DISBURSE_ERRORS: dict[str, ErrorAnswer] = {
    "DisburseBatchExists": (409, "batch-exists", "A batch with this id exists"),
    "DisburseUnknownBatch": (404, "disbursement-not-found", "Disbursement not found on chain"),
    "DisburseInvalidPayer": (422, "invalid-payer", "The payer is not a merchant or institution wallet"),
    "DisburseNotMaker": (403, "not-a-maker", "Not the payer or one of its makers"),
    "DisburseNotChecker": (403, "not-a-checker", "Not one of the payer's checkers"),
    "DisburseSelfApproval": (403, "maker-checker", "The creator of a batch cannot approve it"),
    "DisburseNotCreator": (403, "not-the-creator", "Only the batch's creator may do this"),
    "DisburseEndInPast": (422, "end-in-past", "The end date is in the past"),
    "DisburseWrongStatus": (409, "batch-wrong-status", "The batch is not in the status this needs"),
    "DisburseWrongKind": (409, "batch-wrong-kind", "Not possible for this kind of batch"),
    "DisburseOverTotal": (422, "rows-over-total", "The rows exceed the batch total"),
    "DisburseRowsIncomplete": (409, "rows-incomplete", "The rows do not add up to the total yet"),
    "DisburseChunkPaid": (409, "chunk-already-paid", "This chunk was paid already"),
    "DisburseChunkMismatch": (422, "chunk-mismatch", "The rows are not the approved rows"),
    "DisburseUnknownChunk": (404, "chunk-not-found", "No such chunk"),
    "DisburseAlreadyClaimed": (409, "already-claimed", "This row was paid already"),
    "DisburseInvalidProof": (422, "invalid-proof", "The Merkle proof does not match"),
    "DisburseUnknownLeaf": (404, "row-not-found", "No such row"),
    "DisburseBatchEnded": (409, "batch-ended", "The batch has ended; the payer reclaims the rest"),
    "DisburseNotEnded": (409, "batch-not-ended", "The batch has not ended yet"),
    "DisburseExceedsFunding": (409, "exceeds-funding", "More than the batch was funded with"),
    "DisburseNoException": (404, "exception-not-found", "No open exception at this row"),
    "DisburseChunkSize": (422, "chunk-size", "Too many or no rows in one transaction"),
    "DisburseZeroReference": (422, "invalid-reference", "The batch reference must be non-zero"),
    "DisbursePayerNotAdmitted": (
        409,
        "payer-frozen",
        "The payer is frozen or not registered: the batch waits",
    ),
    "DisburseCheckerFrozen": (
        409,
        "checker-frozen",
        "The checker's wallet is frozen: it cannot approve the batch",
    ),
}
_COLLECTIVE_ERRORS: dict[str, ErrorAnswer] = {
    "CollectiveUnknown": (404, "collective-not-found", "Collective not found"),
    "CollectiveNotSupervisor": (403, "not-the-supervisor", "Only the collective's supervisor may do this"),
    "CollectiveInvalidSupervisor": (422, "invalid-supervisor", "This account cannot be the supervisor"),
    "CollectiveNotOfficer": (403, "not-an-officer", "Not an officer of this collective"),
    "CollectiveNotApprover": (403, "not-an-approver", "Treasurers do not approve"),
    "CollectiveInvalidOfficer": (422, "invalid-officer", "This account cannot be an officer"),
    "CollectiveOfficerUnchanged": (409, "officer-unchanged", "The officer has this role already"),
    "CollectiveTooManyOfficers": (409, "too-many-officers", "The collective has the most officers it can"),
    "CollectiveLengthMismatch": (422, "length-mismatch", "Two lists that go together differ in length"),
    "CollectiveTierCount": (422, "tier-count", "There must be 1 to 4 approval tiers"),
    "CollectiveInvalidTier": (422, "invalid-approval-tier", "Invalid approval tier"),
    "CollectiveInvalidLifetime": (422, "invalid-lifetime", "Invalid proposal lifetime"),
    "CollectiveOfficerFrozen": (
        409,
        "officer-frozen",
        "The acting officer's wallet is frozen: it cannot propose, approve or execute",
    ),
    "CollectiveFrozen": (409, "collective-frozen", "The collective is frozen by its supervisor"),
    "CollectiveNotFrozen": (409, "collective-not-frozen", "The collective is not frozen"),
    "CollectiveYearNotAfter": (409, "year-not-after", "The fiscal year must come after the current one"),
    "CollectiveLineCount": (422, "line-count", "There must be 1 to 8 budget lines"),
    "CollectiveUnknownLine": (422, "unknown-budget-line", "The current year has no such budget line"),
    "CollectiveBudgetExceeded": (409, "budget-exceeded", "More than is left of the budget line"),
    "CollectiveBudgetBelowSpent": (409, "budget-below-spent", "A budget cannot be cut below what it spent"),
    "CollectiveZeroAmount": (422, "zero-amount", "Amount must be positive"),
    "CollectiveInvalidPayee": (422, "invalid-payee", "Invalid payee"),
    "CollectivePayeeNotRegistered": (422, "payee-not-registered", "The payee is not a registered wallet"),
    "CollectivePayeeFrozen": (409, "payee-frozen", "The payee's wallet is frozen"),
    "CollectiveInvalidSplitWindow": (422, "invalid-split-window", "The split window must be 1..90 days"),
    "CollectiveAmountAboveTiers": (422, "amount-above-tiers", "Above the highest approval tier"),
    "CollectiveUnknownProposal": (404, "proposal-not-found", "Proposal not found"),
    "CollectiveProposalNotPending": (409, "proposal-not-pending", "The proposal is no longer pending"),
    "CollectiveProposalStale": (409, "proposal-stale", "Officers, rules or year changed since the proposal"),
    "CollectiveProposalExpired": (409, "proposal-expired", "The proposal has expired"),
    "CollectiveSelfApproval": (403, "self-approval", "The proposer cannot approve their own proposal"),
    "CollectiveAlreadyApproved": (409, "already-approved", "This approver approved already"),
    "CollectiveNotApproved": (409, "not-approved", "The proposal lacks approvals"),
    "CollectiveTimelocked": (409, "timelocked", "The proposal's public-notice time lock is running"),
    "CollectiveInsufficientFunds": (409, "collective-insufficient-funds", "The collective holds too little"),
    "CollectiveNotProposer": (403, "not-the-proposer", "Only the proposer may cancel"),
    "CollectiveUnknownAsset": (404, "asset-not-found", "Asset not found"),
    "CollectiveAssetNotInCollective": (422, "asset-of-another-collective", "The asset is another's"),
    "CollectiveAssetRetired": (409, "asset-retired", "The asset was retired from the register"),
    "CollectiveInvalidAssetKind": (422, "invalid-asset-kind", "An asset is a property or a resource"),
    "CollectiveContractEndsInPast": (422, "contract-ends-in-past", "The income contract ends in the past"),
}
_VOUCHERS_ERRORS: dict[str, ErrorAnswer] = {
    "VoucherInvalidIssuer": (422, "invalid-issuer", "The issuer is not a registered institution wallet"),
    "VoucherInvalidMode": (422, "invalid-mode", "Invalid programme mode"),
    "VoucherZeroBudget": (422, "zero-budget", "The budget must be positive"),
    "VoucherInvalidPersonCap": (422, "invalid-person-cap", "The per-person cap must be 1..budget"),
    "VoucherInvalidPeriod": (422, "invalid-period", "The programme's start and expiry are invalid"),
    "VoucherInvalidRule": (422, "invalid-rule", "The minimum-spend rule is invalid"),
    "VoucherCategoryCount": (422, "category-count", "Too many or no merchant categories"),
    "VoucherInvalidCategory": (422, "invalid-category", "Invalid merchant category"),
    "VoucherBatchSize": (422, "batch-size", "Too many or no rows in one transaction"),
    "VoucherUnknownProgramme": (404, "programme-not-found", "Voucher programme not found"),
    "VoucherNotIssuer": (403, "not-the-issuer", "Only the programme's issuer may do this"),
    "VoucherWrongMode": (409, "wrong-mode", "Not possible in this programme's mode"),
    "VoucherNoMerchantList": (409, "no-merchant-list", "The programme has no merchant list"),
    "VoucherNotMerchant": (422, "not-a-merchant-wallet", "Not a registered merchant wallet"),
    "VoucherNotPersonal": (422, "not-a-personal-wallet", "Vouchers go to registered personal wallets"),
    "VoucherZeroGrant": (422, "zero-grant", "A grant must be positive"),
    "VoucherOverPersonCap": (422, "over-person-cap", "Above the per-person cap"),
    "VoucherOverIdentityCap": (
        422,
        "over-identity-cap",
        "Above the per-person cap: this identity's wallets together got their grants",
    ),
    "VoucherOverBudget": (422, "over-budget", "Beyond what is left of the budget"),
    "VoucherAlreadyEnrolled": (409, "already-enrolled", "Enrolled already"),
    "VoucherRootAlreadySet": (409, "campaign-exists", "This programme has a campaign already"),
    "VoucherInvalidRoot": (422, "invalid-root", "Invalid Merkle root"),
    "VoucherUnknownLeaf": (404, "leaf-not-found", "No such campaign grant"),
    "VoucherAlreadyClaimed": (409, "already-claimed", "This grant was claimed already"),
    "VoucherInvalidProof": (422, "invalid-proof", "The Merkle proof does not match"),
    "VoucherNotStarted": (409, "programme-not-started", "The programme has not started"),
    "VoucherExpired": (409, "programme-expired", "The programme has expired"),
    "VoucherNotExpired": (409, "programme-not-expired", "The programme has not expired yet"),
    "VoucherZeroBill": (422, "zero-bill", "The bill must be positive"),
    "VoucherBelowMinimum": (422, "below-minimum-spend", "The bill is below the programme's minimum spend"),
    "VoucherNoBalance": (409, "no-voucher-balance", "No voucher balance in this programme"),
    "VoucherCategoryNotAllowed": (422, "category-not-allowed", "This merchant's category is not allowed"),
    "VoucherMerchantNotListed": (422, "merchant-not-listed", "This merchant is not on the programme's list"),
    "VoucherHolderFrozen": (409, "holder-frozen", "The holder's wallet is frozen"),
    "VoucherMerchantFrozen": (409, "merchant-frozen", "The merchant's wallet is frozen"),
    "VoucherIssuerFrozen": (409, "issuer-frozen", "The issuer's wallet is frozen: no new grants"),
    "VoucherInvalidSignature": (422, "invalid-signature", "The holder's signature does not match"),
    "VoucherSignatureExpired": (422, "signature-expired", "The holder's signature has expired"),
    "VoucherNothingToReturn": (409, "nothing-to-return", "Nothing left to return (closed already?)"),
}
_HARDWALLET_ERRORS: dict[str, ErrorAnswer] = {
    "HardWalletZeroCard": (422, "zero-card", "The card address cannot be zero"),
    "HardWalletCardExists": (409, "card-exists", "The card is registered already"),
    "HardWalletUnknownCard": (404, "card-not-found", "Card not found"),
    "HardWalletInvalidHolder": (422, "invalid-holder", "The holder is not a registered personal wallet"),
    "HardWalletNotHolder": (403, "not-the-holder", "Not the card's holder"),
    "HardWalletWrongStatus": (409, "card-wrong-status", "The card is not in the status this needs"),
    "HardWalletZeroAmount": (422, "zero-amount", "Amount must be positive"),
    "HardWalletReserveCapExceeded": (422, "reserve-cap-exceeded", "Above the card's reserve cap"),
    "HardWalletGraceNotOver": (409, "grace-not-over", "The lost card's grace period is not over"),
    "HardWalletBatchSize": (422, "batch-size", "A batch holds 1 to 100 payments"),
    "HardWalletInvalidLimits": (422, "invalid-limits", "Limits out of range"),
    "HardWalletTransferFailed": (502, "settlement-transfer-failed", "The token failed a payout"),
    # earmarked purses (contracts/hardwallet/CardPurses.sol)
    "PurseInvalidProgramme": (422, "invalid-purse-programme", "Purse programme terms out of range"),
    "PurseProgrammeExists": (409, "purse-programme-exists", "The purse programme exists already"),
    "PurseUnknownProgramme": (404, "purse-programme-not-found", "Purse programme not found"),
    "PurseCategoryCount": (422, "purse-category-count", "A purse programme allows 1 to 8 categories"),
    "PurseInvalidCategory": (422, "invalid-purse-category", "Category zero or listed twice"),
    "PurseNotFunder": (403, "not-the-purse-funder", "Not the purse programme's funder"),
    "PurseProgrammeExpired": (409, "purse-programme-expired", "The purse programme has expired"),
    "PurseNotExpired": (409, "purse-not-expired", "The purse programme has not expired yet"),
    "PurseCapExceeded": (422, "purse-cap-exceeded", "Above the programme's per-card cap"),
    "PurseSlotsFull": (409, "purse-slots-full", "The card holds 4 purses already"),
    "PurseNotHeld": (404, "purse-not-held", "The card holds no purse of this programme"),
    "PurseZeroAmount": (422, "zero-amount", "Amount must be positive"),
    "QuickPayInvalidHolder": (422, "invalid-holder", "The holder is not a registered wallet"),
    "QuickPayInvalidMerchant": (422, "invalid-merchant", "Not a registered merchant wallet"),
    "QuickPayInvalidCaps": (422, "invalid-caps", "Caps must satisfy 0 < per-payment cap <= daily cap"),
    "QuickPayExpiryInPast": (422, "expiry-in-past", "The expiry is in the past"),
    "QuickPayUnknownMandate": (404, "mandate-not-found", "Mandate not found"),
    "QuickPayNotHolder": (403, "not-the-holder", "Only the mandate's holder may do this"),
    "QuickPayNotMerchant": (403, "not-the-merchant", "Only the mandate's merchant may pull"),
    "QuickPayRevoked": (409, "mandate-revoked", "The mandate was revoked"),
    "QuickPayExpired": (409, "mandate-expired", "The mandate has expired"),
    "QuickPayZeroAmount": (422, "zero-amount", "Amount must be positive"),
    "QuickPayOverPaymentCap": (422, "over-payment-cap", "Above the mandate's per-payment cap"),
    "QuickPayOverDailyCap": (422, "over-daily-cap", "Above what the mandate may pull today"),
    "QuickPayDuplicateReference": (409, "duplicate-reference", "This order reference was paid already"),
}
_REFUNDS_ERRORS: dict[str, ErrorAnswer] = {
    "RefundUnknownPayment": (404, "refund-payment-not-recorded", "The payment is not recorded for refunds"),
    "RefundPaymentAlreadyRecorded": (409, "refund-payment-recorded", "The payment is recorded already"),
    "RefundInvalidPayment": (422, "refund-invalid-payment", "The payment's terms are invalid"),
    "RefundNotMerchantWallet": (422, "not-a-merchant-wallet", "Not a registered merchant wallet"),
    "RefundNotMerchant": (403, "not-the-merchant", "Only the payment's merchant refunds it"),
    "RefundZeroAmount": (422, "zero-amount", "Amount must be positive"),
    "RefundExceedsPayment": (
        409,
        "refund-exceeds-payment",
        "The refunds would exceed what was paid for this bill",
    ),
    "RefundDuplicateReference": (409, "refund-duplicate-reference", "This refund reference was used already"),
}

_DEVICES_ERRORS: dict[str, ErrorAnswer] = {
    "DeviceZeroAmount": (422, "zero-amount", "Amount must be positive"),
    "DeviceUnknownCard": (404, "card-not-found", "Card not found"),
    "DeviceCardNotActive": (409, "card-not-active", "The card is not active"),
    "DeviceInvalidSignature": (422, "invalid-card-signature", "The card's signature does not match"),
    "DeviceCounterUsed": (409, "preauth-duplicate", "This card counter pre-authorised already"),
    "DeviceInvalidMerchant": (422, "invalid-merchant", "Not a registered merchant wallet"),
    "DevicePreAuthAboveCap": (422, "preauth-above-cap", "Above the pre-authorisation cap"),
    "DeviceUnknownPreAuth": (404, "preauth-not-found", "Pre-authorisation not found"),
    "DevicePreAuthNotOpen": (409, "preauth-not-open", "The pre-authorisation was completed or released"),
    "DevicePreAuthExpired": (
        409,
        "preauth-expired",
        "The pre-authorisation expired: it can only be released",
    ),
    "DevicePreAuthNotExpired": (409, "preauth-not-expired", "The pre-authorisation runs until its deadline"),
    "DeviceCompletionAboveAuthorized": (
        422,
        "completion-above-authorized",
        "The completion is above the pre-authorised maximum",
    ),
    "DeviceInvalidLimits": (422, "invalid-limits", "Limits out of range"),
    "DeviceInvalidProgramme": (422, "invalid-programme", "Invalid sponsor, merchant or daily cap"),
    "DeviceUnknownProgramme": (404, "recycling-programme-not-found", "Recycling programme not found"),
    "DeviceProgrammeClosed": (409, "programme-closed", "The programme is closed"),
    "DeviceNotSponsor": (403, "not-the-sponsor", "Only the programme's sponsor funds it"),
    "DeviceBudgetExceeded": (409, "programme-budget-exceeded", "The programme's budget is too small"),
    "DeviceInvalidPerson": (422, "invalid-person", "Neither a personal wallet nor a card"),
    "DeviceDailyCapExceeded": (422, "daily-cap-exceeded", "Above what this person may be paid today"),
    "DevicePayoutDuplicate": (409, "payout-duplicate", "This bin reference was paid already"),
}

_TIERS_ERRORS: dict[str, ErrorAnswer] = {
    "ReserveExceeded": (409, "reserve-exceeded", "The institution's reserve does not cover this issuance"),
    "ReserveBelowOutstanding": (
        409,
        "reserve-below-outstanding",
        "The reserve cannot go below what the institution has issued",
    ),
    "UnknownInstitution": (404, "institution-not-found", "Institution not found"),
    "NotInstitution": (403, "not-an-institution", "The signing key is no operator institution's"),
    "SignerTaken": (409, "signer-taken", "This key signs for an institution already"),
    "WalletServedElsewhere": (
        403,
        "wallet-served-elsewhere",
        "The wallet is served by another operator institution",
    ),
    "CashOnly": (403, "cash-only", "Only the token reports issuance"),
    "InvalidReserveAmount": (422, "invalid-reserve-amount", "Invalid reserve amount"),
    "ZeroSigner": (422, "zero-signer", "The signing key cannot be the zero address"),
    "IssuanceBookLink": (409, "issuance-book-linked", "The issuance book is linked already"),
}


# -- the registry, in deployment order ------------------------------------------------------------

FAMILIES: tuple[Family, ...] = (
    Family(
        name="token",  # the digital cash: the services' "cash" family (wallets, issue/redeem, freeze)
        contracts=("WalletRegistry", "DigitalCash"),
        deploy=(
            Deploy("WalletRegistry", (DEPLOYER,)),
            Deploy("DigitalCash", ("WalletRegistry", DEPLOYER)),
            Grant("WalletRegistry", "REGISTRAR_ROLE", OPERATOR),
            Grant("WalletRegistry", "REGULATOR_ROLE", REGULATOR),
            Grant("WalletRegistry", "REGULATOR_ROLE", SECOND_REGULATOR),  # maker-checker court orders
            Grant("DigitalCash", "ISSUER_ROLE", OPERATOR),
            Grant("DigitalCash", "REGULATOR_ROLE", REGULATOR),
            Link("WalletRegistry", "linkCash", ("DigitalCash",)),
        ),
        clients=(ClientSlot("cash", CashClient, eager=True),),
        errors=_TOKEN_ERRORS,
        expected={
            "cash.issue": lambda r, _: [
                ("Transfer", {"from": ZERO, "to": r["to"], "value": r["amount_fen"]})
            ],
            "cash.redeem": lambda r, _: [
                ("Transfer", {"from": r["holder"], "to": ZERO, "value": r["amount_fen"]})
            ],
            "cash.transfer": lambda r, _: [
                ("Transfer", {"from": r["sender"], "to": r["to"], "value": r["amount_fen"]})
            ],
            # one person, one identity; holds, court orders, recovery (issue 22)
            "cash.set_personal_wallet_limit": lambda r, _: [
                ("PersonalWalletLimitChanged", {"newLimit": r["limit"]})
            ],
            "cash.place_hold": lambda r, _: [
                ("HoldPlaced", {"wallet": r["wallet"], "amount": r["amount_fen"]})
            ],
            "cash.lift_hold": lambda r, _: [
                ("HoldReleased", {"holdId": r["hold_id"], "wallet": r["wallet"]})
            ],
            "cash.propose_court_order": lambda r, _: [
                (
                    "CourtOrderProposed",
                    {"from": r["from"], "to": r["to"], "amount": r["amount_fen"], "holdId": r["hold_id"]},
                )
            ],
            "cash.approve_court_order": lambda r, _: [("CourtOrderExecuted", {"id": r["order_id"]})],
            "cash.cancel_court_order": lambda r, _: [("CourtOrderCancelled", {"id": r["order_id"]})],
            "cash.propose_recovery": lambda r, _: [
                ("RecoveryProposed", {"lost": r["lost"], "replacement": r["replacement"]})
            ],
            "cash.approve_recovery": lambda r, _: [
                (
                    "WalletRecovered",
                    {"id": r["recovery_id"], "lost": r["lost"], "replacement": r["replacement"]},
                ),
                ("WalletRetiredTo", {"wallet": r["lost"], "successor": r["replacement"]}),
            ],
        },
        panel=Panel("token", "System", "DigitalCash"),
        folder="cash",
    ),
    Family(
        name="prepaid",
        contracts=("PrepaidEscrow",),
        deploy=(
            Deploy("PrepaidEscrow", (*TOKEN, DEPLOYER)),
            RegisterWallet("PrepaidEscrow"),
            Grant("PrepaidEscrow", "REGULATOR_ROLE", REGULATOR),
        ),
        clients=(ClientSlot("prepaid", PrepaidClient, eager=True),),
        errors=_PREPAID_ERRORS,
        holdings=(
            Holding(
                "PrepaidEscrow",
                "the escrow holds what it holds for packages",
                views=(
                    ("deposited", "totalDeposited"),
                    ("released", "totalReleased"),
                    ("refunded", "totalRefunded"),
                    ("held", "totalHeld"),
                ),
                books=lambda v: v["held"],
                identity=(
                    "deposited = released + refunded + held",
                    lambda v: v["deposited"] == v["released"] + v["refunded"] + v["held"],
                ),
            ),
        ),
        expected={
            "prepaid.recover_package": lambda r, _: [
                ("PackageRecovered", {"id": r["package"], "lost": r["lost"], "successor": r["successor"]})
            ],
            "prepaid.prepay": lambda r, _: [
                (
                    "PackagePrepaid",
                    {"consumer": r["consumer"], "merchant": r["merchant"], "sessions": r["sessions"]},
                )
            ],
        },
        panel=Panel(
            "prepaid",
            "Prepaid escrow",
            "PrepaidEscrow",
            {
                "packages": ("PrepaidEscrow", "PackagePrepaid"),
                "merchants": ("PrepaidEscrow", "MerchantEnrolled"),
            },
        ),
    ),
    Family(
        name="disburse",
        contracts=("Disbursement",),
        deploy=(Deploy("Disbursement", TOKEN), RegisterWallet("Disbursement")),
        clients=(ClientSlot("disburse", DisbursementClient, eager=True),),
        errors=_DISBURSE_ERRORS,
        holdings=(
            Holding(
                "Disbursement",
                "funded = paid + reclaimed + outstanding (the contract's balance)",
                views=(("funded", "totalFunded"), ("paid", "totalPaid"), ("reclaimed", "totalReclaimed")),
                books=lambda v: v["funded"] - v["paid"] - v["reclaimed"],
                figures=lambda v: f"funded {v['funded']}, paid {v['paid']}, reclaimed {v['reclaimed']}",
            ),
        ),
        expected={
            "disburse.create": lambda r, _: [
                ("BatchCreated", {"payer": r["payer"], "total": r["total_fen"]})
            ],
            # a holder claims their own row of a Merkle batch (the operator's holder channel)
            "holder.disburse.claim": lambda r, _: [
                ("Paid", {"index": r["index"], "recipient": r["recipient"], "amount": r["amount_fen"]})
            ],
            "disburse.recover_exception": lambda r, _: [
                (
                    "PayoutRecovered",
                    {"index": r["index"], "lost": r["lost"], "successor": r["successor"], "leaf": False},
                )
            ],
            "disburse.recover_leaf": lambda r, _: [
                (
                    "PayoutRecovered",
                    {
                        "index": r["index"],
                        "lost": r["lost"],
                        "successor": r["successor"],
                        "amount": r["amount_fen"],
                        "leaf": True,
                    },
                )
            ],
        },
        tallies=(
            Tally(
                "disbursed_by_purpose_fen",
                "Disbursement",
                "Paid",
                lambda a: purpose_name(HexBytes(a["purpose"])),
                "amount",
            ),
        ),
        panel=Panel("disbursements", "Disbursements", "Disbursement"),
    ),
    Family(
        name="collective",
        contracts=("CollectiveFund",),
        deploy=(
            Deploy("CollectiveFund", (*TOKEN, DEPLOYER)),
            RegisterWallet("CollectiveFund"),
            Grant("CollectiveFund", "TOWNSHIP_ROLE", REGULATOR),  # the township creates collectives
        ),
        clients=(ClientSlot("collective", CollectiveClient, eager=True),),
        errors=_COLLECTIVE_ERRORS,
        holdings=(
            Holding(
                "CollectiveFund",
                "the fund holds the sum of the collectives' balances",
                views=(("balance", "totalBalance"),),
                books=lambda v: v["balance"],
            ),
        ),
        panel=Panel("collectives", "Collective funds", "CollectiveFund"),
    ),
    Family(
        name="vouchers",
        contracts=("VoucherProgrammes",),
        deploy=(Deploy("VoucherProgrammes", TOKEN), RegisterWallet("VoucherProgrammes")),
        clients=(ClientSlot("vouchers", VoucherClient),),
        errors=_VOUCHERS_ERRORS,
        expected={
            "vouchers.cap_per_identity": lambda r, _: [("IdentityCapSet", {"id": r["programme"]})],
            "vouchers.recover_grants": lambda r, _: [
                ("GrantsRecovered", {"id": r["programme"], "lost": r["lost"], "successor": r["successor"]})
            ],
        },
        holdings=(
            Holding(
                "VoucherProgrammes",
                "the contract holds every programme's outstanding + ungranted",
                views=(("held", "totalHeld"),),
                books=lambda v: v["held"],
            ),
        ),
        panel=Panel("vouchers", "Voucher programmes", "VoucherProgrammes"),
    ),
    Family(
        name="hardwallet",
        contracts=("HardWalletSettlement", "QuickPay"),
        deploy=(
            Deploy("HardWalletSettlement", (*TOKEN, DEPLOYER)),
            RegisterWallet("HardWalletSettlement"),  # holds the cards' reserves
            Grant("HardWalletSettlement", "OPERATOR_ROLE", GATEWAY),  # the gateway signs card operations
            Grant("HardWalletSettlement", "OPERATOR_ROLE", OPERATOR),  # the operator's own tools and tests
            Grant("HardWalletSettlement", "SETTLER_ROLE", GATEWAY),  # terminals' uploads
            Grant("HardWalletSettlement", "SETTLER_ROLE", OPERATOR),  # payment codes paid by a card, probes
            Deploy("QuickPay", TOKEN),
            # QuickPay holds nothing (pulls go holder -> merchant), so no cap exemption; it is a
            # registered wallet because the token admits only registered, unfrozen spenders.
            RegisterWallet("QuickPay", cap_exempt=False),
        ),
        clients=(ClientSlot("hardwallet", HardWalletClient), ClientSlot("quickpay", QuickPayClient)),
        errors=_HARDWALLET_ERRORS,
        expected={  # the operator's holder channel: a holder's own mandate revoked, own card lost
            "holder.mandate.revoke": lambda r, _: [
                ("MandateRevoked", {"id": r["mandate"], "holder": r["holder"]})
            ],
            "holder.card.report_lost": lambda r, _: [("CardReportedLost", {"card": r["card"]})],
            "hardwallet.recover_mandate": lambda r, _: [
                ("MandateRecovered", {"id": r["mandate"], "lost": r["lost"], "successor": r["successor"]})
            ],
            "hardwallet.recover_card": lambda r, _: [
                ("CardRecovered", {"card": r["card"], "lost": r["lost"], "successor": r["successor"]})
            ],
        },
        # Earmarked purses by programme (held = funded - spent - expired, per programme).
        tallies=tuple(
            Tally(
                f"earmarked_{what}_by_programme_fen",
                "HardWalletSettlement",
                event,
                lambda a: str(a["programme"]),
                "amount",
            )
            for what, event in (
                ("funded", "PurseFunded"),
                ("spent", "PurseSpent"),
                ("expired", "PurseExpired"),
            )
        ),
        holdings=(
            Holding(
                "HardWalletSettlement",
                "the contract holds exactly the cards' reserves and earmarked purses",
                views=(
                    ("reserve", "totalReserve"),
                    ("earmarked", "totalEarmarked"),
                    ("earmarked_funded", "totalEarmarkedFunded"),
                    ("earmarked_spent", "totalEarmarkedSpent"),
                    ("earmarked_expired", "totalEarmarkedExpired"),
                ),
                books=lambda v: v["reserve"] + v["earmarked"],
                identity=(
                    "purses: funded == spent + expired + held",
                    lambda v: (
                        v["earmarked_funded"]
                        == v["earmarked_spent"] + v["earmarked_expired"] + v["earmarked"]
                    ),
                ),
            ),
        ),
        panel=Panel(
            "hardwallet",
            "Hard-wallet settlements",
            "HardWalletSettlement",
            {
                "cards": ("HardWalletSettlement", "CardRegistered"),
                "batches": ("HardWalletSettlement", "BatchProcessed"),
                "payments_settled": ("HardWalletSettlement", "PaymentSettled"),
                "payments_duplicate": ("HardWalletSettlement", "PaymentDuplicate"),
                "payments_rejected": ("HardWalletSettlement", "PaymentRejected"),
                "payments_shortfall": ("HardWalletSettlement", "PaymentShortfall"),
                "mandates": ("QuickPay", "MandateGranted"),
                "mandate_pulls": ("QuickPay", "MandatePulled"),
            },
        ),
    ),
    Family(
        name="refunds",  # merchants' refunds of ordinary payments (issue 23); last: earlier addresses stay
        contracts=("MerchantRefunds",),
        deploy=(
            Deploy("MerchantRefunds", (*TOKEN, DEPLOYER)),
            # Holds nothing (refunds go merchant -> payer and programme), so no cap exemption; a
            # registered wallet because the token admits only registered, unfrozen spenders.
            RegisterWallet("MerchantRefunds", cap_exempt=False),
            Grant("MerchantRefunds", "RECORDER_ROLE", OPERATOR),
            Grant("MerchantRefunds", "RECORDER_ROLE", GATEWAY),  # terminals' card payments
        ),
        clients=(ClientSlot("refunds", RefundsClient),),
        errors=_REFUNDS_ERRORS,
        expected={
            "refunds.record": lambda r, _: [
                (
                    "PaymentRecorded",
                    {"merchant": r["merchant"], "payer": r["payer"], "paid": r["paid_fen"]},
                )
            ],
            "refunds.refund": lambda r, _: [
                ("Refunded", {"merchant": r["merchant"], "payer": r["payer"], "amount": r["amount_fen"]})
            ],
        },
        tallies=(
            Tally(
                "refunded_by_merchant_fen", "MerchantRefunds", "Refunded", lambda a: a["merchant"], "amount"
            ),
        ),
        folder="refunds",
    ),
    Family(
        name="devices",  # unattended devices: vending pre-authorisations, recycling payouts (issue 23)
        contracts=("DevicePayments",),
        deploy=(
            Deploy("DevicePayments", (*TOKEN, "HardWalletSettlement", DEPLOYER)),
            RegisterWallet("DevicePayments"),  # holds open pre-authorisations and programme budgets
            Grant("DevicePayments", "DEVICE_ROLE", GATEWAY),  # the gateway drives the devices
            Grant("DevicePayments", "DEVICE_ROLE", OPERATOR),  # the operator's own tools and tests
            Grant("DevicePayments", "OPERATOR_ROLE", GATEWAY),  # programmes are set up at the gateway
            Grant("DevicePayments", "OPERATOR_ROLE", OPERATOR),
        ),
        clients=(ClientSlot("devices", DeviceClient),),
        errors=_DEVICES_ERRORS,
        expected={
            "devices.preauth": lambda r, _: [
                (
                    "PreAuthorized",
                    {"card": r["card"], "merchant": r["merchant"], "amount": r["max_amount_fen"]},
                )
            ],
            "devices.complete": lambda r, _: [
                ("PreAuthCompleted", {"id": r["preauth"], "amount": r["amount_fen"]})
            ],
            "devices.release": lambda r, _: [("PreAuthReleased", {"id": r["preauth"]})],
            "devices.payout": lambda r, _: [
                ("RecyclingPaid", {"id": r["programme"], "amount": r["amount_fen"]})
            ],
            "devices.programme.fund": lambda r, _: [
                ("RecyclingProgrammeFunded", {"id": r["programme"], "amount": r["amount_fen"]})
            ],
        },
        holdings=(
            Holding(
                "DevicePayments",
                "the contract holds the open pre-authorisations and the programmes' budgets",
                views=(
                    ("authorized", "totalAuthorized"),
                    ("captured", "totalCaptured"),
                    ("released", "totalReleased"),
                    ("open", "totalOpen"),
                    ("funded", "totalFunded"),
                    ("paid", "totalPaidOut"),
                    ("returned", "totalReturned"),
                    ("budget", "totalBudget"),
                ),
                books=lambda v: v["open"] + v["budget"],
                identity=(
                    "authorized = captured + released + open; funded = paid + returned + budget",
                    lambda v: (
                        v["authorized"] == v["captured"] + v["released"] + v["open"]
                        and v["funded"] == v["paid"] + v["returned"] + v["budget"]
                    ),
                ),
            ),
        ),
        panel=Panel(
            "devices",
            "Unattended devices",
            "DevicePayments",
            {
                "preauths": ("DevicePayments", "PreAuthorized"),
                "preauths_completed": ("DevicePayments", "PreAuthCompleted"),
                "preauths_released": ("DevicePayments", "PreAuthReleased"),
                "recycling_payouts": ("DevicePayments", "RecyclingPaid"),
            },
        ),
    ),
    Family(
        # Two-tier operation (issue 24): the central bank (the regulator's key) allocates reserves to
        # operator institutions, each issuing within its reserve to the wallets it serves. Deployed
        # last so that every earlier address stays where it was; the operator is institution #1.
        name="banking",
        contracts=("OperatorInstitutions",),
        deploy=(
            Deploy("OperatorInstitutions", (*TOKEN, DEPLOYER, REGULATOR, OPERATOR)),
            Grant("WalletRegistry", "REGISTRAR_ROLE", "OperatorInstitutions"),
            Link("DigitalCash", "linkIssuanceBook", ("OperatorInstitutions",)),
        ),
        clients=(ClientSlot("institutions", InstitutionsClient),),
        errors=_TIERS_ERRORS,
        expected={
            "banking.topup": lambda r, _: [
                ("Transfer", {"from": ZERO, "to": r["wallet"], "value": r["amount_fen"]})
            ],
            "banking.redeem": lambda r, _: [
                ("Transfer", {"from": r["wallet"], "to": ZERO, "value": r["amount_fen"]})
            ],
            "banking.add_institution": lambda r, _: [("InstitutionAdded", {"signer": r["signer"]})],
            "banking.grant_issuer": lambda r, _: [("RoleGranted", {"account": r["signer"]})],
            "banking.allocate": lambda r, _: [
                ("ReserveAllocated", {"institution": r["institution"], "amount": r["amount_fen"]})
            ],
            "banking.withdraw": lambda r, _: [
                ("ReserveWithdrawn", {"institution": r["institution"], "amount": r["amount_fen"]})
            ],
        },
        tallies=(
            Tally(
                "issued_by_institution_fen",
                "OperatorInstitutions",
                "InstitutionIssued",
                lambda a: str(a["institution"]),
                "amount",
            ),
            Tally(
                "redeemed_by_institution_fen",
                "OperatorInstitutions",
                "InstitutionRedeemed",
                lambda a: str(a["institution"]),
                "amount",
            ),
        ),
        backing=(
            Backing(
                "OperatorInstitutions",
                views=(
                    ("issued", "totalIssued"),
                    ("redeemed", "totalRedeemed"),
                    ("reserve", "totalReserve"),
                    ("over", "institutionsOverReserve"),
                ),
                checks=(
                    (
                        "supply = issued - redeemed over the operator institutions",
                        lambda v, supply: supply == v["issued"] - v["redeemed"],
                    ),
                    ("supply <= the institutions' reserves", lambda v, supply: supply <= v["reserve"]),
                    ("no institution has issued beyond its reserve", lambda v, _: v["over"] == 0),
                ),
            ),
        ),
    ),
)


def family_of_contract() -> dict[str, str]:
    """Contract name -> the name of its family."""
    return {contract: f.name for f in FAMILIES for contract in f.contracts}


def contract_errors() -> dict[str, ErrorAnswer]:
    """Every family's custom errors as one table; an error two families answer differently is a
    programming error (one name, one answer: the decoder knows only the name)."""
    table: dict[str, ErrorAnswer] = {}
    for f in FAMILIES:
        for name, answer in f.errors.items():
            if table.get(name, answer) != answer:
                raise ValueError(f"error {name} is answered two ways")
            table[name] = answer
    return table


def expected_events() -> dict[str, Expected]:
    """Operation kind -> the events its transaction must contain, over every family."""
    return {kind: fn for f in FAMILIES for kind, fn in f.expected.items()}


def client_slots() -> dict[str, ClientSlot]:
    """Service-context attribute -> its client, over every family."""
    return {slot.attr: slot for f in FAMILIES for slot in f.clients}


def backings() -> Iterator[tuple[Family, Backing]]:
    """Every check of what backs the supply, in registry order."""
    for f in FAMILIES:
        for b in f.backing:
            yield f, b


def holdings() -> Iterator[tuple[Family, Holding]]:
    """Every contract that holds cash for its family, in registry order."""
    for f in FAMILIES:
        for h in f.holdings:
            yield f, h


class FamilyClients:
    """The families' typed clients as attributes (``ctx.cash``, ``ctx.disburse``, ...), built from
    the registry's :class:`ClientSlot` on first use and kept. The annotations below only type them
    for readers and mypy; :func:`check_typed_slots` proves they match the registry."""

    cash: CashClient
    prepaid: PrepaidClient
    disburse: DisbursementClient
    collective: CollectiveClient
    vouchers: VoucherClient
    hardwallet: HardWalletClient
    quickpay: QuickPayClient
    refunds: RefundsClient
    devices: DeviceClient
    institutions: InstitutionsClient

    # What the clients are built with; the subclass (services.common.context.ServiceContext) holds them.
    w3: Web3
    manifest: Manifest
    tx: Transactor

    if not TYPE_CHECKING:  # to mypy, an attribute not declared above stays an error

        def __getattr__(self, name: str) -> Any:
            slot = client_slots().get(name)
            if slot is None:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            client = slot.cls(self.w3, self.manifest, self.tx)
            object.__setattr__(self, name, client)
            return client

    def build_eager_clients(self) -> None:
        """Build the clients marked eager now (a missing contract of theirs fails here)."""
        for slot in client_slots().values():
            if slot.eager:
                getattr(self, slot.attr)


def check_typed_slots() -> None:
    """The typed attributes of :class:`FamilyClients` are exactly the registry's client slots."""
    typed = set(FamilyClients.__annotations__) - {"w3", "manifest", "tx"}
    if typed != set(client_slots()):
        raise AssertionError(
            f"FamilyClients types {sorted(typed)}, the registry has {sorted(client_slots())}"
        )


check_typed_slots()
