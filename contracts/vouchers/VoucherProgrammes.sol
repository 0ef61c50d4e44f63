// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IWalletRegistry, requireSuccessor, RecoveryNothingHeld} from "../token/IWalletRegistry.sol";
import {IDigitalCash, PAY_TO_MERCHANT, PAY_GRANT} from "../token/IDigitalCash.sol";

/// @title VoucherProgrammes
/// @notice Restricted-purpose funds (消费红包 / 工会福利): money with rules attached. An *issuer* (a
/// government office, a trade union: a registered institution wallet) creates a *programme* and funds
/// its whole budget up front. The programme says where the money may be spent (merchant categories,
/// optionally also an explicit merchant list), when (start and expiry), how much one person may get
/// (per-person cap) and how a bill is shared (the spend rule below). Consumption vouchers and union
/// welfare are two configurations of this one contract, not two contracts.
///
/// Grants put voucher balance on registered personal wallets. That balance is not cash: it never
/// leaves this contract except to an allowed merchant through `spend`, or back to the issuer at
/// clawback. Two ways to grant, fixed per programme:
/// - **Grant list** (lottery winners, union members): the issuer grants in batches of at most
///   MAX_BATCH, and/or commits once to a Merkle root over leaves (programmeId, index, holder, amount)
///   that are claimed one by one (a bitmap stops a second claim).
/// - **Open enrolment**: a registered personal wallet enrols itself once and is granted the per-person
///   cap, while the ungranted budget still covers a full share.
/// Every grant, however made, is refused if it would take the holder above the per-person cap or the
/// programme above its budget. A programme capped per identity (`capPerIdentity`, before its first
/// grant) counts the cap over all the wallets of one identity hash in the wallet registry
/// (`VoucherOverIdentityCap`): one red packet per person, not per wallet.
///
/// Spend rule. With `minBill` m and `discountPerSpend` d (both in fen, 0 meaning "none"):
/// - a bill below m is refused (`VoucherBelowMinimum`); a bill exactly at m qualifies;
/// - d > 0 (minimum-spend voucher, e.g. 20 off a bill of at least 100): the programme pays
///   min(d, bill, voucher balance);
/// - d == 0 (plain voucher): the programme pays min(bill, voucher balance).
/// The holder's own wallet pays the rest in the same transaction (`transferFrom`, so the holder
/// approves this contract for it) and the merchant receives the whole bill in digital cash. The
/// holder's share is an ordinary DigitalCash payment: the holder's tier caps apply to it, and the
/// token's own error comes back when one bites. A holder with no voucher balance is refused
/// (`VoucherNoBalance`): a bill paid wholly in cash does not need this contract. "Over the cap" can
/// only happen at grant time (`VoucherOverPersonCap`): a holder's balance never exceeds the cap, so
/// no spend can take more than the cap from the programme.
///
/// A spend is accepted from `startsAt` to `expiresAt` inclusive. Afterwards (`block.timestamp >
/// expiresAt`) anyone may `close` the programme in bounded calls: the first call returns the
/// ungranted budget, and every call returns the unspent balance of the holders it names (at most
/// MAX_BATCH) to the issuer. A holder already returned is skipped; a call that would return nothing
/// at all after the first call (everything it names already returned, the budget already returned)
/// reverts with `VoucherNothingToReturn`, so a repeated clawback is refused visibly and never pays twice.
///
/// Freeze (money leaves only through the token's `payFor`: a spend's owner is the holder and its
/// payee a merchant; a clawback's owner and payee are the issuer). A frozen *holder* can no longer
/// spend or enrol; grants and Merkle claims still arrive on its voucher balance (a freeze is
/// temporary), which it spends once unfrozen, until expiry: after it, the unspent balance returns to
/// the issuer like everyone's. A frozen *merchant* takes no spends. A frozen *issuer* cannot fund a
/// programme (the token refuses the pull) and no new grants come out of its budgets (batch, Merkle
/// claim, enrolment, new grant root: `VoucherIssuerFrozen`) until it is unfrozen; what it granted
/// before is the holders' and is spent as usual; its clawback waits (`close` reverts with the
/// token's `WalletFrozen`). While the token is paused, spends and clawbacks revert whole.
///
/// Holds (judicial freeze of an amount, AML hold) reach the holder's *cash* share of a spend (pulled
/// from the holder's wallet: the token's `AmountFrozen`), not the voucher share: that is the issuer's
/// money until spent, paid with `PAY_GRANT`. The holder cannot redeem, transfer or withdraw it, a court
/// order cannot take it, and unspent it returns to the issuer; spending it takes nothing from what
/// the hold secures.
/// No call here pays several wallets: `close` returns everything it collects to the issuer in one
/// payment, so no holder named in it can make it revert.
///
/// @dev Invariants (tested): for every programme, budget == spent + returned + outstanding grants +
/// ungranted budget, where outstanding == granted - spent - returnedGrants is the sum of its holders'
/// voucher balances; this contract's token balance == totalHeld == the sum over programmes of
/// outstanding + ungranted. A programme only ever pays from its own budget: every payment is charged
/// to one programme's counters first, and they cannot go below zero.
contract VoucherProgrammes is ReentrancyGuard, EIP712 {
    using SafeERC20 for IERC20;

    // ----------------------------------------------------------------------------------------
    // Errors
    // ----------------------------------------------------------------------------------------

    /// @dev `issuer` is not a registered institution wallet (government office, union).
    error VoucherInvalidIssuer(address issuer);
    /// @dev The mode must be GrantList or OpenEnrolment.
    error VoucherInvalidMode();
    /// @dev The budget must be positive.
    error VoucherZeroBudget();
    /// @dev The per-person cap must be 1..budget.
    error VoucherInvalidPersonCap(uint256 cap, uint256 budget);
    /// @dev The period must end after it starts, and in the future.
    error VoucherInvalidPeriod(uint64 startsAt, uint64 expiresAt, uint256 nowTs);
    /// @dev With a minimum bill, the fixed discount cannot exceed it (20 off 100, not 120 off 100).
    error VoucherInvalidRule(uint256 minBill, uint256 discountPerSpend);
    /// @dev A programme allows 1..`max` merchant categories.
    error VoucherCategoryCount(uint256 count, uint256 max);
    /// @dev Category `category` is zero or listed twice.
    error VoucherInvalidCategory(uint16 category);
    /// @dev A batch (grants, merchants, holders to close) holds at most `max` entries (grants: 1..max).
    error VoucherBatchSize(uint256 size, uint256 max);
    /// @dev No programme has this id.
    error VoucherUnknownProgramme(uint256 id);
    /// @dev Only the programme's issuer may do this.
    error VoucherNotIssuer(uint256 id, address caller);
    /// @dev The operation needs a programme of mode `expected`.
    error VoucherWrongMode(uint256 id, Mode expected);
    /// @dev Programme `id` has no merchant list: its categories alone decide.
    error VoucherNoMerchantList(uint256 id);
    /// @dev `wallet` is not a registered merchant wallet.
    error VoucherNotMerchant(address wallet);
    /// @dev `wallet` is not a registered personal wallet: only people hold vouchers.
    error VoucherNotPersonal(address wallet);
    /// @dev Entry `index` of a grant batch has a zero amount.
    error VoucherZeroGrant(uint256 index);
    /// @dev Granting `amount` more to `holder` would bring its grants to `grantedAfter`, above `cap`.
    error VoucherOverPersonCap(uint256 id, address holder, uint256 cap, uint256 grantedAfter);
    /// @dev Granting more to a wallet of `identityHash` would bring that identity's grants in
    /// programme `id` (all its wallets together) to `grantedAfter`, above the per-person `cap`.
    error VoucherOverIdentityCap(uint256 id, bytes32 identityHash, uint256 cap, uint256 grantedAfter);
    /// @dev Programme `id` has granted `granted` already: the cap can only become per identity before.
    error VoucherGrantsStarted(uint256 id, uint256 granted);
    /// @dev Programme `id` caps per identity already.
    error VoucherIdentityCapAlreadySet(uint256 id);
    /// @dev Granting `amount` needs more than the `ungranted` budget left.
    error VoucherOverBudget(uint256 id, uint256 ungranted, uint256 amount);
    /// @dev `holder` enrolled in programme `id` already.
    error VoucherAlreadyEnrolled(uint256 id, address holder);
    /// @dev Programme `id` has a grant root already (one per programme).
    error VoucherRootAlreadySet(uint256 id);
    /// @dev A grant root needs a non-zero root and at least one leaf.
    error VoucherInvalidRoot();
    /// @dev Programme `id` has no leaf `index`.
    error VoucherUnknownLeaf(uint256 id, uint256 index);
    /// @dev Leaf `index` of programme `id` was claimed already.
    error VoucherAlreadyClaimed(uint256 id, uint256 index);
    /// @dev The proof does not show leaf (`id`, `index`, holder, amount) under the programme's root.
    error VoucherInvalidProof(uint256 id, uint256 index);
    /// @dev Programme `id` starts at `startsAt`: no spending before.
    error VoucherNotStarted(uint256 id, uint64 startsAt);
    /// @dev Programme `id` expired at `expiresAt`: no more grants, claims, enrolments or spending.
    error VoucherExpired(uint256 id, uint64 expiresAt);
    /// @dev Programme `id` expires at `expiresAt`: nothing returns to the issuer before.
    error VoucherNotExpired(uint256 id, uint64 expiresAt);
    /// @dev The bill must be positive.
    error VoucherZeroBill();
    /// @dev `bill` is below the programme's minimum bill `minBill`.
    error VoucherBelowMinimum(uint256 id, uint256 minBill, uint256 bill);
    /// @dev `holder` has no voucher balance in programme `id`.
    error VoucherNoBalance(uint256 id, address holder);
    /// @dev `merchant`'s category `category` is not one programme `id` allows.
    error VoucherCategoryNotAllowed(uint256 id, address merchant, uint16 category);
    /// @dev `merchant` is not on programme `id`'s merchant list.
    error VoucherMerchantNotListed(uint256 id, address merchant);
    /// @dev `holder`'s wallet is frozen by the regulator.
    error VoucherHolderFrozen(address holder);
    /// @dev The issuer `issuer` of programme `id` is frozen: no new grants from its budget.
    error VoucherIssuerFrozen(uint256 id, address issuer);
    /// @dev `merchant`'s wallet is frozen by the regulator.
    error VoucherMerchantFrozen(address merchant);
    /// @dev The holder's signature does not match (forged, replayed, other terms, chain or contract).
    error VoucherInvalidSignature(address holder);
    /// @dev The holder's signature expired at `deadline`.
    error VoucherSignatureExpired(uint256 deadline);
    /// @dev The clawback would return nothing: everything it names (and the budget) was returned.
    error VoucherNothingToReturn(uint256 id);

    // ----------------------------------------------------------------------------------------
    // Events
    // ----------------------------------------------------------------------------------------

    /// @dev `issuer` created programme `id` on `terms` and funded its budget.
    event ProgrammeCreated(
        uint256 indexed id, address indexed issuer, bytes32 indexed name, Terms terms, uint16[] categories, bool merchantList
    );
    /// @dev `merchant` was put on (`allowed`) or taken off programme `id`'s merchant list.
    event MerchantListed(uint256 indexed id, address indexed merchant, bool allowed);
    /// @dev `holder` was granted `amount` (`grantedTotal` in all) by a batch, a claim or enrolment.
    event Granted(uint256 indexed id, address indexed holder, uint256 amount, uint256 grantedTotal, GrantSource source);
    /// @dev The issuer committed programme `id` to a Merkle root of `leafCount` grants.
    event GrantRootSet(uint256 indexed id, bytes32 root, uint256 leafCount);
    /// @dev `holder` paid `merchant` (category `category`) a bill of `bill`: `voucher` from the
    /// programme, `cash` from the holder's wallet.
    event Spent(
        uint256 indexed id,
        address indexed holder,
        address indexed merchant,
        uint16 category,
        uint256 bill,
        uint256 voucher,
        uint256 cash,
        bool bySignature
    );
    /// @dev After expiry, `holder`'s unspent `amount` went back to the issuer.
    event GrantReturned(uint256 indexed id, address indexed holder, uint256 amount);
    /// @dev After expiry, the ungranted `amount` of the budget went back to the issuer.
    event BudgetReturned(uint256 indexed id, address indexed issuer, uint256 amount);
    /// @dev The issuer made programme `id`'s per-person cap count per identity (all the wallets of
    /// one person together), for good.
    event IdentityCapSet(uint256 indexed id, address indexed issuer);
    /// @dev The retired `lost` wallet's holding in programme `id` (its grants, spending and returns,
    /// `balance` of it unspent) now counts for `successor`, the wallet that replaced it.
    event GrantsRecovered(
        uint256 indexed id, address indexed lost, address indexed successor, uint256 balance, uint256 granted
    );

    // ----------------------------------------------------------------------------------------
    // Types and storage
    // ----------------------------------------------------------------------------------------

    /// @notice Most entries in one grant batch, merchant-list change or clawback call.
    uint256 public constant MAX_BATCH = 200;
    /// @notice Most merchant categories one programme allows.
    uint256 public constant MAX_CATEGORIES = 32;
    /// @notice What a holder signs so that a merchant (or a relayer for it) can submit the spend.
    bytes32 public constant SPEND_TYPEHASH = keccak256(
        "Spend(uint256 programmeId,address merchant,uint256 bill,uint256 nonce,uint256 deadline)"
    );

    enum Mode {
        None,
        GrantList,
        OpenEnrolment
    }

    enum GrantSource {
        Batch,
        Claim,
        Enrolment
    }

    /// @dev What the issuer chooses at creation; nothing of it changes afterwards.
    struct Terms {
        bytes32 name;
        Mode mode;
        uint64 startsAt;
        uint64 expiresAt;
        uint128 budget;
        uint128 perPersonCap;
        uint128 minBill;
        uint128 discountPerSpend;
    }

    struct Grant {
        address holder;
        uint128 amount;
    }

    struct Programme {
        address issuer;
        Mode mode;
        bool merchantList;
        bool budgetReturned; // the ungranted budget went back (first close)
        uint64 startsAt;
        uint64 expiresAt;
        uint32 leafCount; // Merkle leaves under `root`
        uint32 holders; // wallets granted at least once
        bytes32 name;
        bytes32 root;
        uint128 budget;
        uint128 perPersonCap;
        uint128 minBill;
        uint128 discountPerSpend;
        uint128 granted;
        uint128 spent;
        uint128 returnedGrants; // unspent grants clawed back
        uint128 returnedBudget; // ungranted budget returned
    }

    struct Holding {
        uint128 granted;
        uint128 spent;
        uint128 returned;
    }

    /// @dev One programme's figures, for reports.
    struct Totals {
        uint256 budget;
        uint256 granted;
        uint256 spent;
        uint256 returned;
        uint256 outstanding;
        uint256 ungranted;
    }

    IERC20 public immutable cash;
    IWalletRegistry public immutable registry;

    mapping(uint256 id => Programme) private _programmes;
    mapping(uint256 id => uint16[]) private _categories;
    mapping(uint256 id => mapping(uint16 category => bool)) private _allowedCategory;
    mapping(uint256 id => mapping(address merchant => bool)) private _listed;
    mapping(uint256 id => mapping(address holder => Holding)) private _holdings;
    mapping(uint256 id => mapping(uint256 word => uint256)) private _claimed;

    /// @notice Spent per programme and merchant category (the report "by category").
    mapping(uint256 id => mapping(uint16 category => uint256)) public spentByCategory;
    /// @notice Consumed by each holder-signed spend, across programmes.
    mapping(address holder => uint256) public nonces;

    /// @notice Programmes whose per-person cap counts per identity (the registry's identity hash).
    mapping(uint256 id => bool) public capsPerIdentity;
    /// @notice Granted per programme and identity (kept only for programmes capped per identity).
    mapping(uint256 id => mapping(bytes32 identityHash => uint256)) public grantedToIdentity;

    uint256 public programmeCount;
    /// @notice Budgets held here, over all programmes (outstanding grants + ungranted budget).
    uint256 public totalHeld;

    constructor(IERC20 cash_, IWalletRegistry registry_) EIP712("XcpayVoucherProgrammes", "1") {
        cash = cash_;
        registry = registry_;
    }

    // ----------------------------------------------------------------------------------------
    // Issuer
    // ----------------------------------------------------------------------------------------

    /// @notice Create a programme and fund its whole budget from the caller (a registered institution
    /// wallet, which must have approved this contract for it). `categories` are the merchant
    /// categories allowed; a non-empty `merchants` also restricts spending to merchants on that list
    /// (extend it with `listMerchants`). Returns the programme id.
    function create(Terms calldata terms, uint16[] calldata categories, address[] calldata merchants)
        external
        nonReentrant
        returns (uint256 id)
    {
        if (registry.kindOf(msg.sender) != IWalletRegistry.Kind.Institution) revert VoucherInvalidIssuer(msg.sender);
        if (terms.mode == Mode.None) revert VoucherInvalidMode();
        if (terms.budget == 0) revert VoucherZeroBudget();
        if (terms.perPersonCap == 0 || terms.perPersonCap > terms.budget) {
            revert VoucherInvalidPersonCap(terms.perPersonCap, terms.budget);
        }
        if (terms.expiresAt <= terms.startsAt || terms.expiresAt <= block.timestamp) {
            revert VoucherInvalidPeriod(terms.startsAt, terms.expiresAt, block.timestamp);
        }
        if (terms.minBill != 0 && terms.discountPerSpend > terms.minBill) {
            revert VoucherInvalidRule(terms.minBill, terms.discountPerSpend);
        }
        if (categories.length == 0 || categories.length > MAX_CATEGORIES) {
            revert VoucherCategoryCount(categories.length, MAX_CATEGORIES);
        }
        if (merchants.length > MAX_BATCH) revert VoucherBatchSize(merchants.length, MAX_BATCH);

        id = ++programmeCount;
        for (uint256 i = 0; i < categories.length; ++i) {
            uint16 mcc = categories[i];
            if (mcc == 0 || _allowedCategory[id][mcc]) revert VoucherInvalidCategory(mcc);
            _allowedCategory[id][mcc] = true;
        }
        _categories[id] = categories;

        Programme storage p = _programmes[id];
        p.issuer = msg.sender;
        p.mode = terms.mode;
        p.merchantList = merchants.length > 0;
        p.startsAt = terms.startsAt;
        p.expiresAt = terms.expiresAt;
        p.name = terms.name;
        p.budget = terms.budget;
        p.perPersonCap = terms.perPersonCap;
        p.minBill = terms.minBill;
        p.discountPerSpend = terms.discountPerSpend;
        totalHeld += terms.budget;
        emit ProgrammeCreated(id, msg.sender, terms.name, terms, categories, merchants.length > 0);
        if (merchants.length > 0) _list(id, merchants, true);

        cash.safeTransferFrom(msg.sender, address(this), terms.budget);
    }

    /// @notice The issuer puts up to MAX_BATCH merchants on (or takes them off) the merchant list of
    /// programme `id`, which must have been created with one. Listed merchants still need an allowed
    /// category.
    function listMerchants(uint256 id, address[] calldata merchants, bool allowed) external {
        Programme storage p = _issued(id);
        if (!p.merchantList) revert VoucherNoMerchantList(id);
        if (merchants.length == 0 || merchants.length > MAX_BATCH) revert VoucherBatchSize(merchants.length, MAX_BATCH);
        _list(id, merchants, allowed);
    }

    /// @notice The issuer makes programme `id`'s per-person cap count per identity: the grants of all
    /// the wallets registered to one identity hash add up against it, so a person's extra wallets
    /// (one per tier, or more where the registry allows) gain nothing. Only before the first grant
    /// (`VoucherGrantsStarted`), and for good.
    function capPerIdentity(uint256 id) external {
        Programme storage p = _issued(id);
        if (capsPerIdentity[id]) revert VoucherIdentityCapAlreadySet(id);
        if (p.granted != 0) revert VoucherGrantsStarted(id, p.granted);
        capsPerIdentity[id] = true;
        emit IdentityCapSet(id, msg.sender);
    }

    /// @notice The issuer of grant-list programme `id` grants up to MAX_BATCH amounts to registered
    /// personal wallets, before expiry. The whole batch is refused if one entry would exceed the
    /// per-person cap or the remaining budget. A frozen holder may be granted (a freeze is temporary);
    /// it cannot spend while frozen. A frozen issuer cannot grant (`VoucherIssuerFrozen`).
    function grant(uint256 id, Grant[] calldata grants) external {
        Programme storage p = _issued(id);
        if (p.mode != Mode.GrantList) revert VoucherWrongMode(id, Mode.GrantList);
        if (grants.length == 0 || grants.length > MAX_BATCH) revert VoucherBatchSize(grants.length, MAX_BATCH);
        if (block.timestamp > p.expiresAt) revert VoucherExpired(id, p.expiresAt);
        for (uint256 i = 0; i < grants.length; ++i) {
            if (grants[i].amount == 0) revert VoucherZeroGrant(i);
            _grant(id, p, grants[i].holder, grants[i].amount, GrantSource.Batch);
        }
    }

    /// @notice The issuer of grant-list programme `id` commits, once, to a Merkle root over
    /// `leafCount` leaves (programmeId, index, holder, amount) for a campaign too large for batches.
    /// Nothing is reserved: each claim is granted from the budget left when it is made.
    function setGrantRoot(uint256 id, bytes32 root, uint32 leafCount) external {
        Programme storage p = _issued(id);
        if (p.mode != Mode.GrantList) revert VoucherWrongMode(id, Mode.GrantList);
        if (p.root != bytes32(0)) revert VoucherRootAlreadySet(id);
        if (root == bytes32(0) || leafCount == 0) revert VoucherInvalidRoot();
        if (block.timestamp > p.expiresAt) revert VoucherExpired(id, p.expiresAt);
        if (registry.isFrozen(msg.sender)) revert VoucherIssuerFrozen(id, msg.sender);
        p.root = root;
        p.leafCount = leafCount;
        emit GrantRootSet(id, root, leafCount);
    }

    // ----------------------------------------------------------------------------------------
    // Holders
    // ----------------------------------------------------------------------------------------

    /// @notice Claim leaf `index` of programme `id`'s grant root: `amount` becomes `holder`'s voucher
    /// balance. Anyone may submit it (the grant only ever goes to `holder`); each leaf once. Waits
    /// while the issuer is frozen; a frozen holder's claim is accepted.
    function claim(uint256 id, uint256 index, address holder, uint128 amount, bytes32[] calldata proof) external {
        Programme storage p = _programme(id);
        if (p.mode != Mode.GrantList) revert VoucherWrongMode(id, Mode.GrantList);
        if (block.timestamp > p.expiresAt) revert VoucherExpired(id, p.expiresAt);
        if (index >= p.leafCount) revert VoucherUnknownLeaf(id, index);
        uint256 bit = 1 << (index & 0xff);
        uint256 word = _claimed[id][index >> 8];
        if (word & bit != 0) revert VoucherAlreadyClaimed(id, index);
        if (!MerkleProof.verifyCalldata(proof, p.root, leafHash(id, index, holder, amount))) {
            revert VoucherInvalidProof(id, index);
        }
        _claimed[id][index >> 8] = word | bit;
        _grant(id, p, holder, amount, GrantSource.Claim);
    }

    /// @notice The caller, a registered and unfrozen personal wallet, enrols in open-enrolment
    /// programme `id` (once, before expiry) and is granted the per-person cap.
    function enrol(uint256 id) external {
        Programme storage p = _programme(id);
        if (p.mode != Mode.OpenEnrolment) revert VoucherWrongMode(id, Mode.OpenEnrolment);
        if (block.timestamp > p.expiresAt) revert VoucherExpired(id, p.expiresAt);
        if (_holdings[id][msg.sender].granted != 0) revert VoucherAlreadyEnrolled(id, msg.sender);
        if (registry.isFrozen(msg.sender)) revert VoucherHolderFrozen(msg.sender);
        _grant(id, p, msg.sender, p.perPersonCap, GrantSource.Enrolment);
    }

    /// @notice The caller pays `merchant` a bill of `bill` fen: the programme pays its share from the
    /// caller's voucher balance (see the spend rule above) and the caller's wallet the rest, so the
    /// merchant receives the whole bill. Returns the voucher share.
    function spend(uint256 id, address merchant, uint256 bill) external nonReentrant returns (uint256 voucher) {
        return _spend(id, msg.sender, merchant, bill, false);
    }

    /// @notice The same spend, signed by `holder` (EIP-712 `Spend`, bound to this chain and contract,
    /// with the holder's next nonce) and submitted by the merchant or a relayer for it. The nonce is
    /// consumed with the verification: a signature works once.
    function spendWithSignature(
        uint256 id,
        address holder,
        address merchant,
        uint256 bill,
        uint256 deadline,
        bytes calldata signature
    ) external nonReentrant returns (uint256 voucher) {
        if (block.timestamp > deadline) revert VoucherSignatureExpired(deadline);
        uint256 nonce = nonces[holder];
        bytes32 digest = _hashTypedDataV4(keccak256(abi.encode(SPEND_TYPEHASH, id, merchant, bill, nonce, deadline)));
        if (!SignatureChecker.isValidSignatureNow(holder, digest, signature)) revert VoucherInvalidSignature(holder);
        nonces[holder] = nonce + 1;
        return _spend(id, holder, merchant, bill, true);
    }

    // ----------------------------------------------------------------------------------------
    // Anyone: recovery of a retired wallet's vouchers
    // ----------------------------------------------------------------------------------------

    /// @notice Move the retired `lost` wallet's whole holding in programme `id` (what it was granted,
    /// spent and had returned, so its unspent balance and its use of the per-person cap) to
    /// `successor`, which must be `lost`'s registered successor (`RecoveryWrongSuccessor`); anyone
    /// may call, the destination is the registry's. Once: the holding is then empty
    /// (`RecoveryNothingHeld`). Moves no cash (the balance stays in this contract's budget) and
    /// changes no programme total; per-identity caps are unchanged (same identity).
    function recoverGrants(uint256 id, address lost, address successor) external {
        _programme(id);
        requireSuccessor(registry, lost, successor);
        Holding memory h = _holdings[id][lost];
        if (h.granted == 0) revert RecoveryNothingHeld(lost);
        delete _holdings[id][lost];
        Holding storage to = _holdings[id][successor];
        // The successor was registered at the recovery's approval, so whatever it holds here was
        // granted since; one holder of the programme either way (the lost wallet counted already).
        if (to.granted != 0) --_programmes[id].holders;
        to.granted += h.granted;
        to.spent += h.spent;
        to.returned += h.returned;
        emit GrantsRecovered(id, lost, successor, h.granted - h.spent - h.returned, h.granted);
    }

    // ----------------------------------------------------------------------------------------
    // Anyone: clawback after expiry
    // ----------------------------------------------------------------------------------------

    /// @notice After programme `id` expired, return to its issuer the ungranted budget (the first time)
    /// and the unspent balances of up to MAX_BATCH `holders`. Holders with nothing left (never granted,
    /// spent out, returned already) are skipped; a later call returning nothing at all reverts
    /// (`VoucherNothingToReturn`): a double clawback is refused, never paid twice. Returns the amount
    /// sent to the issuer. While the issuer's wallet is frozen the token refuses the transfer
    /// (`WalletFrozen`) and nothing is recorded: the clawback waits for the regulator.
    function close(uint256 id, address[] calldata holders) external nonReentrant returns (uint256 amount) {
        Programme storage p = _programme(id);
        if (block.timestamp <= p.expiresAt) revert VoucherNotExpired(id, p.expiresAt);
        if (holders.length > MAX_BATCH) revert VoucherBatchSize(holders.length, MAX_BATCH);
        bool first = !p.budgetReturned;
        if (first) {
            uint128 ungranted = p.budget - p.granted;
            p.budgetReturned = true;
            p.returnedBudget = ungranted;
            amount = ungranted;
            emit BudgetReturned(id, p.issuer, ungranted);
        }
        uint256 returnedGrants = 0;
        for (uint256 i = 0; i < holders.length; ++i) {
            Holding storage h = _holdings[id][holders[i]];
            uint128 left = h.granted - h.spent - h.returned;
            if (left == 0) continue;
            h.returned += left;
            returnedGrants += left;
            emit GrantReturned(id, holders[i], left);
        }
        // The first call settles the budget even when it returns nothing (all granted, no holder named).
        if (!first && returnedGrants == 0) revert VoucherNothingToReturn(id);
        // Cannot overflow: returnedGrants is part of `granted - spent - returnedGrants`, a uint128.
        p.returnedGrants += uint128(returnedGrants);
        amount += returnedGrants;
        totalHeld -= amount;
        if (amount > 0) IDigitalCash(address(cash)).payFor(p.issuer, p.issuer, amount, 0);
    }

    // ----------------------------------------------------------------------------------------
    // Views
    // ----------------------------------------------------------------------------------------

    /// @notice Programme `id` as stored.
    function programmeOf(uint256 id) external view returns (Programme memory) {
        return _programme(id);
    }

    /// @notice The merchant categories programme `id` allows.
    function categoriesOf(uint256 id) external view returns (uint16[] memory) {
        _programme(id);
        return _categories[id];
    }

    /// @notice Whether programme `id` allows `category`.
    function allowsCategory(uint256 id, uint16 category) external view returns (bool) {
        return _allowedCategory[id][category];
    }

    /// @notice Whether `merchant` is on programme `id`'s merchant list.
    function isListed(uint256 id, address merchant) external view returns (bool) {
        return _listed[id][merchant];
    }

    /// @notice `holder`'s grants, spending and returned balance in programme `id`.
    function holdingOf(uint256 id, address holder) external view returns (Holding memory) {
        return _holdings[id][holder];
    }

    /// @notice `holder`'s spendable voucher balance in programme `id`.
    function voucherBalanceOf(uint256 id, address holder) public view returns (uint256) {
        Holding storage h = _holdings[id][holder];
        return h.granted - h.spent - h.returned;
    }

    /// @notice Programme `id`'s figures: budget == spent + returned + outstanding + ungranted.
    function totalsOf(uint256 id) external view returns (Totals memory t) {
        Programme storage p = _programme(id);
        t.budget = p.budget;
        t.granted = p.granted;
        t.spent = p.spent;
        t.returned = uint256(p.returnedGrants) + p.returnedBudget;
        t.outstanding = p.granted - p.spent - p.returnedGrants;
        t.ungranted = p.budget - p.granted - p.returnedBudget;
    }

    /// @notice What a bill of `bill` would take from `holder`'s voucher balance in programme `id` now
    /// (the spend rule only; it does not check merchant, dates or freezes). Reverts as `spend` would
    /// on a zero bill, a bill below the minimum or an empty balance.
    function quote(uint256 id, address holder, uint256 bill) external view returns (uint256 voucher, uint256 cashPart) {
        voucher = _share(id, _programme(id), holder, bill);
        cashPart = bill - voucher;
    }

    /// @notice Whether leaf `index` of programme `id`'s grant root was claimed.
    function isClaimed(uint256 id, uint256 index) external view returns (bool) {
        return _claimed[id][index >> 8] & (1 << (index & 0xff)) != 0;
    }

    /// @notice The leaf hashed under a grant root (OpenZeppelin's double-hashed standard leaf).
    function leafHash(uint256 id, uint256 index, address holder, uint256 amount) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(id, index, holder, amount))));
    }

    /// @notice The EIP-712 domain separator (bound to this chain id and this contract).
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ----------------------------------------------------------------------------------------
    // Internal
    // ----------------------------------------------------------------------------------------

    function _programme(uint256 id) private view returns (Programme storage p) {
        p = _programmes[id];
        if (p.mode == Mode.None) revert VoucherUnknownProgramme(id);
    }

    function _issued(uint256 id) private view returns (Programme storage p) {
        p = _programme(id);
        if (msg.sender != p.issuer) revert VoucherNotIssuer(id, msg.sender);
    }

    function _list(uint256 id, address[] calldata merchants, bool allowed) private {
        for (uint256 i = 0; i < merchants.length; ++i) {
            if (registry.kindOf(merchants[i]) != IWalletRegistry.Kind.Merchant) revert VoucherNotMerchant(merchants[i]);
            _listed[id][merchants[i]] = allowed;
            emit MerchantListed(id, merchants[i], allowed);
        }
    }

    /// @dev Every grant (batch, Merkle claim, enrolment) comes here: none while the issuer is frozen.
    function _grant(uint256 id, Programme storage p, address holder, uint128 amount, GrantSource source) private {
        if (registry.isFrozen(p.issuer)) revert VoucherIssuerFrozen(id, p.issuer);
        if (registry.kindOf(holder) != IWalletRegistry.Kind.Personal) revert VoucherNotPersonal(holder);
        Holding storage h = _holdings[id][holder];
        uint256 grantedAfter = uint256(h.granted) + amount;
        if (grantedAfter > p.perPersonCap) revert VoucherOverPersonCap(id, holder, p.perPersonCap, grantedAfter);
        if (capsPerIdentity[id]) {
            bytes32 identity = registry.identityOf(holder);
            uint256 identityAfter = grantedToIdentity[id][identity] + amount;
            if (identityAfter > p.perPersonCap) {
                revert VoucherOverIdentityCap(id, identity, p.perPersonCap, identityAfter);
            }
            grantedToIdentity[id][identity] = identityAfter;
        }
        uint256 ungranted = p.budget - p.granted;
        if (amount > ungranted) revert VoucherOverBudget(id, ungranted, amount);
        if (h.granted == 0) ++p.holders;
        // Cannot overflow: grantedAfter <= perPersonCap and p.granted + amount <= budget, both uint128.
        h.granted = uint128(grantedAfter);
        p.granted += amount;
        emit Granted(id, holder, amount, grantedAfter, source);
    }

    /// @dev The voucher share of `bill` for `holder` under programme `p`'s rule.
    function _share(uint256 id, Programme storage p, address holder, uint256 bill) private view returns (uint256 share) {
        if (bill == 0) revert VoucherZeroBill();
        if (bill < p.minBill) revert VoucherBelowMinimum(id, p.minBill, bill);
        uint256 balance = voucherBalanceOf(id, holder);
        if (balance == 0) revert VoucherNoBalance(id, holder);
        share = p.discountPerSpend == 0 ? bill : _min(p.discountPerSpend, bill);
        share = _min(share, balance);
    }

    function _spend(uint256 id, address holder, address merchant, uint256 bill, bool bySignature)
        private
        returns (uint256 voucher)
    {
        Programme storage p = _programme(id);
        if (block.timestamp < p.startsAt) revert VoucherNotStarted(id, p.startsAt);
        if (block.timestamp > p.expiresAt) revert VoucherExpired(id, p.expiresAt);
        if (registry.kindOf(merchant) != IWalletRegistry.Kind.Merchant) revert VoucherNotMerchant(merchant);
        uint16 mcc = registry.categoryOf(merchant);
        if (!_allowedCategory[id][mcc]) revert VoucherCategoryNotAllowed(id, merchant, mcc);
        if (p.merchantList && !_listed[id][merchant]) revert VoucherMerchantNotListed(id, merchant);
        if (registry.isFrozen(holder)) revert VoucherHolderFrozen(holder);
        if (registry.isFrozen(merchant)) revert VoucherMerchantFrozen(merchant);
        voucher = _share(id, p, holder, bill);
        uint256 cashPart = bill - voucher;

        // Cannot overflow: voucher <= the holder's balance, part of p.granted - p.spent (uint128).
        _holdings[id][holder].spent += uint128(voucher);
        p.spent += uint128(voucher);
        spentByCategory[id][mcc] += voucher;
        totalHeld -= voucher;
        emit Spent(id, holder, merchant, mcc, bill, voucher, cashPart, bySignature);

        IDigitalCash(address(cash)).payFor(holder, merchant, voucher, PAY_TO_MERCHANT | PAY_GRANT);
        if (cashPart > 0) cash.safeTransferFrom(holder, merchant, cashPart);
    }

    function _min(uint256 a, uint256 b) private pure returns (uint256) {
        return a < b ? a : b;
    }
}
