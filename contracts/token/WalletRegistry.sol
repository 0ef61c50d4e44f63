// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {
    IWalletRegistry,
    POLICY_PAYMENT_CAP,
    POLICY_DAILY_CAP,
    POLICY_NO_LIMIT,
    POLICY_REGISTERED,
    POLICY_FROZEN,
    POLICY_CAP_EXEMPT,
    POLICY_RETIRED,
    POLICY_HELD,
    IRegistryMoves
} from "./IWalletRegistry.sol";

/// @title WalletRegistry
/// @notice Who may hold and move digital cash: registered wallets with a tier (1 to 4), a kind,
/// a merchant category code for merchants and an identity hash (never the identity in clear).
/// The regulator freezes and unfreezes wallets; the admin changes tier limits.
///
/// One person, one identity: an identity hash holds at most `personalWalletLimit` personal wallets
/// per tier (default 1), so that a payroll row or a voucher cap addressed by identity means one
/// wallet (`personalWalletOf`). A merchant or institution wallet carries its owner's identity hash
/// (the person or entity that owns it) and never counts as, or resolves as, a personal wallet.
///
/// Holds, court orders and recovery (ERC-3643's `freezePartialTokens`, `forcedTransfer` and
/// `recoveryAddress` in spirit) are decided here and executed by the token (`IRegistryMoves`, the
/// one linked token, callable only from this registry):
/// - a *hold* (judicial freeze of an amount, AML hold) with a reason and a case number keeps that
///   amount of the wallet's balance from moving by any path (the token checks `heldOf` in `_update`;
///   money families hold for the wallet moves only to it while its balance does not cover the holds:
///   `payFor`, `AmountFrozenInFamily`); the regulator places and lifts holds;
/// - a *court order* moves an amount out of a wallet (held and frozen money included): one regulator
///   proposes, a different regulator approves, which executes it;
/// - a *recovery* moves a lost wallet's whole holding to a new wallet of the same identity, which
///   takes the lost wallet's record (kind, tier, category, freeze, holds): the operator records the
///   identity verification (maker), a regulator approves (checker); the lost wallet is retired, and
///   can never send or receive again.
/// @dev Invariants: a wallet is registered at most once; its kind never changes; tier is always
/// in 1..4 for a registered wallet; merchants, and only merchants, carry a non-zero category; a
/// wallet's `held` is the sum of its active holds; a retired wallet stays retired; the live personal
/// wallets of an identity in a tier are counted in `_personal` (never more than the limit at the time
/// each joined).
contract WalletRegistry is AccessControl, IWalletRegistry {
    // ----------------------------------------------------------------------------------------
    // Errors
    // ----------------------------------------------------------------------------------------

    /// @dev `wallet` is not registered.
    error WalletNotRegistered(address wallet);
    /// @dev `wallet` is registered already.
    error WalletAlreadyRegistered(address wallet);
    /// @dev `wallet` is frozen by the regulator.
    error WalletFrozen(address wallet);
    /// @dev `wallet` is not frozen, so it cannot be unfrozen.
    error WalletNotFrozen(address wallet);
    /// @dev The zero address cannot be registered.
    error WalletZeroAddress();
    /// @dev `tier` is outside 1..4.
    error InvalidTier(uint8 tier);
    /// @dev `kind` is not one of Personal, Merchant, Institution.
    error InvalidKind(uint8 kind);
    /// @dev Merchants need a non-zero category code; other kinds must use 0.
    error InvalidCategory(Kind kind, uint16 category);
    /// @dev The identity hash must not be zero.
    error ZeroIdentityHash();
    /// @dev Tier limits must satisfy paymentCap <= dailyCap.
    error InvalidTierLimits(uint8 tier, uint256 paymentCap, uint256 dailyCap);
    /// @dev A tier limit must be below 2**80 - 1 fen (about 1.2e22 yuan) or `type(uint256).max`
    /// (no limit): the three limits of a tier share one storage slot.
    error TierLimitOutOfRange(uint8 tier, uint256 limit);
    /// @dev `identityHash` holds `limit` personal wallets in `tier` already (one person, one identity).
    error IdentityWalletLimit(bytes32 identityHash, uint8 tier, uint256 limit);
    /// @dev The personal wallet limit per identity and tier must be 1..255.
    error InvalidPersonalWalletLimit(uint256 limit);
    /// @dev `identityHash` has no personal wallet in `tier` (0: in any tier).
    error NoPersonalWallet(bytes32 identityHash, uint8 tier);
    /// @dev `identityHash` has `count` personal wallets in `tier` (0: in all tiers), so no single one.
    error AmbiguousPersonalWallet(bytes32 identityHash, uint8 tier, uint256 count);
    /// @dev `wallet` is retired (recovered to a successor): it never sends, receives or changes again.
    error WalletRetired(address wallet);
    /// @dev Amounts must be positive (and below 2**128 fen).
    error InvalidAmount(uint256 amount);
    /// @dev A hold or a court order needs a case number.
    error ZeroCaseNumber();
    /// @dev No active hold `holdId` on `wallet` (unknown, lifted, or on another wallet).
    error HoldNotActive(uint256 holdId, address wallet);
    /// @dev No pending proposal `id` (court order or recovery): unknown, executed or cancelled.
    error ProposalNotPending(uint256 id);
    /// @dev The checker `checker` proposed this very proposal: maker and checker must differ.
    error CheckerIsMaker(uint256 id, address checker);
    /// @dev The token is not linked yet (`linkCash`), or was linked already (`cash`).
    error CashLink(address cash);
    /// @dev A family contract's wallet (cap-exempt) is not recovered: it has no key to lose.
    error RecoveryOfFamilyWallet(address wallet);
    /// @dev A recovery needs a record of the identity verification (its hash).
    error ZeroEvidence();

    // ----------------------------------------------------------------------------------------
    // Events
    // ----------------------------------------------------------------------------------------

    /// @dev A wallet was registered.
    event WalletRegistered(
        address indexed wallet, Kind kind, uint8 tier, uint16 category, bytes32 identityHash
    );
    /// @dev A wallet moved to another tier.
    event WalletTierChanged(address indexed wallet, uint8 previousTier, uint8 newTier);
    /// @dev The regulator froze a wallet.
    event Frozen(address indexed wallet, address indexed regulator);
    /// @dev The regulator unfroze a wallet.
    event Unfrozen(address indexed wallet, address indexed regulator);
    /// @dev The admin changed the limits of a tier.
    event TierLimitsChanged(uint8 indexed tier, uint256 balanceCap, uint256 paymentCap, uint256 dailyCap);
    /// @dev The admin changed how many personal wallets one identity may hold per tier.
    event PersonalWalletLimitChanged(uint256 previousLimit, uint256 newLimit);
    /// @dev The admin linked the token that executes court orders and recoveries.
    event CashLinked(address indexed cash);
    /// @dev The regulator held `amount` fen of `wallet`'s balance (`heldTotal` held in all now).
    event HoldPlaced(
        uint256 indexed holdId,
        address indexed wallet,
        uint256 amount,
        uint256 heldTotal,
        bytes32 reason,
        bytes32 caseNumber,
        address regulator
    );
    /// @dev The hold was lifted (`released` fen freed), by the regulator or consumed by a court order.
    event HoldReleased(
        uint256 indexed holdId, address indexed wallet, uint256 released, uint256 heldTotal, bytes32 caseNumber, address by
    );
    /// @dev A regulator proposed a court order moving `amount` fen from `from` to `to`.
    event CourtOrderProposed(
        uint256 indexed id,
        address indexed from,
        address indexed to,
        uint256 amount,
        bytes32 caseNumber,
        uint256 holdId,
        address maker
    );
    /// @dev A second regulator approved the court order and the token moved the amount.
    event CourtOrderExecuted(
        uint256 indexed id,
        address indexed from,
        address indexed to,
        uint256 amount,
        bytes32 caseNumber,
        address maker,
        address checker
    );
    /// @dev A regulator cancelled a pending court order.
    event CourtOrderCancelled(uint256 indexed id, bytes32 caseNumber, address regulator);
    /// @dev The operator recorded a verified identity and proposed to recover `lost` to `replacement`.
    event RecoveryProposed(
        uint256 indexed id,
        address indexed lost,
        address indexed replacement,
        bytes32 identityHash,
        bytes32 evidence,
        address maker
    );
    /// @dev A regulator approved the recovery: `replacement` took `lost`'s record and `balance` fen.
    event WalletRecovered(
        uint256 indexed id,
        address indexed lost,
        address indexed replacement,
        bytes32 identityHash,
        uint256 balance,
        uint256 held,
        address maker,
        address checker
    );
    /// @dev `wallet` is retired for good; `successor` holds what it held.
    event WalletRetiredTo(address indexed wallet, address indexed successor);
    /// @dev A regulator or the operator cancelled a pending recovery.
    event RecoveryCancelled(uint256 indexed id, address by);

    // ----------------------------------------------------------------------------------------
    // Roles and storage
    // ----------------------------------------------------------------------------------------

    /// @notice Registers wallets and changes their tier (the operator).
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");
    /// @notice Freezes and unfreezes wallets.
    bytes32 public constant REGULATOR_ROLE = keccak256("REGULATOR_ROLE");
    /// @notice Held by the contracts of other families that keep funds in their own address:
    /// registered institution wallets exempt from tier caps. Granted explicitly, with an event.
    bytes32 public constant CAP_EXEMPT_ROLE = keccak256("CAP_EXEMPT_ROLE");

    uint256 private constant _UNLIMITED = type(uint256).max;
    /// @dev How "no limit" is stored in a packed limit.
    uint80 private constant _PACKED_UNLIMITED = uint80(POLICY_NO_LIMIT);

    /// @dev One slot for everything a movement reads about the wallet (identityHash is the second
    /// slot, never read by the token). `capExempt` mirrors CAP_EXEMPT_ROLE (kept in step by
    /// `_grantRole`/`_revokeRole`) so that a movement does not pay a cold read of the role map.
    /// `retired` and `held` share that slot, so the token learns of them at no extra read.
    struct Wallet {
        Kind kind;
        uint8 tier;
        bool frozen;
        uint16 category;
        bool capExempt;
        bool retired;
        uint128 held;
        bytes32 identityHash;
    }

    /// @dev The live personal wallets of one identity in one tier: how many, and the last one that
    /// joined (zero when it left while others remain: only possible with a limit above 1).
    struct PersonalSlot {
        address wallet;
        uint96 count;
    }

    /// @notice A hold on part of a wallet's balance.
    struct Hold {
        address wallet;
        uint128 amount;
        bool active;
        bytes32 reason;
        bytes32 caseNumber;
    }

    /// @notice Where a maker-checker proposal stands.
    enum Status {
        None,
        Pending,
        Executed,
        Cancelled
    }

    /// @notice A court order: `amount` fen from `from` to `to`; `holdId` (0: none) is the hold it
    /// executes against, reduced by what the order moves.
    struct CourtOrder {
        address from;
        Status status;
        address to;
        uint128 amount;
        address maker;
        bytes32 caseNumber;
        uint256 holdId;
    }

    /// @notice A recovery of `lost` to `replacement`; `evidence` is the hash of the operator's
    /// identity-verification record.
    struct Recovery {
        address lost;
        Status status;
        address replacement;
        address maker;
        bytes32 evidence;
    }

    /// @dev The three limits of a tier in one slot, in fen; `_PACKED_UNLIMITED` means no limit.
    /// The largest real limit is 500,000 yuan (5e7 fen), far below 2**80.
    struct PackedLimits {
        uint80 balanceCap;
        uint80 paymentCap;
        uint80 dailyCap;
    }

    mapping(address wallet => Wallet) private _wallets;
    mapping(uint8 tier => PackedLimits) private _tiers;
    mapping(bytes32 identityHash => mapping(uint8 tier => PersonalSlot)) private _personal;
    mapping(uint256 holdId => Hold) private _holds;
    mapping(address wallet => uint256[]) private _walletHolds;
    mapping(uint256 id => CourtOrder) private _orders;
    mapping(uint256 id => Recovery) private _recoveries;
    /// @notice The wallet that took over a retired wallet's record and balance.
    mapping(address wallet => address) public successorOf;

    /// @notice How many personal wallets one identity may hold per tier.
    uint8 public personalWalletLimit;
    /// @notice The token that executes court orders and recoveries (`linkCash`, once).
    IRegistryMoves public cash;
    /// @notice Holds placed so far (ids are 1..holdCount).
    uint256 public holdCount;
    /// @notice Court orders proposed so far (ids are 1..courtOrderCount).
    uint256 public courtOrderCount;
    /// @notice Recoveries proposed so far (ids are 1..recoveryCount).
    uint256 public recoveryCount;

    /// @param admin Holds DEFAULT_ADMIN_ROLE: grants roles and changes tier limits.
    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        // Public e-CNY wallet classes, in fen (1 yuan = 100 fen).
        _setTierLimits(1, _UNLIMITED, _UNLIMITED, _UNLIMITED);
        _setTierLimits(2, 500_000_00, 50_000_00, 100_000_00);
        _setTierLimits(3, 20_000_00, 5_000_00, 10_000_00);
        _setTierLimits(4, 10_000_00, 2_000_00, 5_000_00);
        personalWalletLimit = 1;
        emit PersonalWalletLimitChanged(0, 1);
    }

    // ----------------------------------------------------------------------------------------
    // Registrar
    // ----------------------------------------------------------------------------------------

    /// @notice Register `wallet` with a kind, a tier, a merchant category (merchants only) and
    /// the hash of the holder's identity (for a merchant or institution: its owner's).
    function register(address wallet, Kind kind, uint8 tier, uint16 category, bytes32 identityHash)
        external
        onlyRole(REGISTRAR_ROLE)
    {
        bytes memory refusal = _registrationRefusal(wallet, kind, tier, category, identityHash);
        if (refusal.length != 0) {
            assembly ("memory-safe") {
                revert(add(refusal, 32), mload(refusal))
            }
        }
        _record(wallet, kind, tier, category, identityHash);
    }

    /// @notice One row of `registerBatch`: the arguments of `register`.
    struct Registration {
        address wallet;
        Kind kind;
        uint8 tier;
        uint16 category;
        bytes32 identityHash;
    }

    /// @notice Most rows one `registerBatch` takes (a full batch stays well inside a block).
    uint256 public constant MAX_REGISTRATIONS = 200;

    /// @dev `registerBatch` got `count` rows; 1 to `max` are allowed.
    error WalletBatchSize(uint256 count, uint256 max);
    /// @dev Row `index` (0-based) of a `registerBatch`, for `wallet`, was refused with the error
    /// `register` raises for it (`reason` is that error's selector); nothing was registered.
    error WalletBatchRowRefused(uint256 index, address wallet, bytes4 reason);

    /// @notice Register many wallets in one transaction, each exactly as `register` would, with
    /// one WalletRegistered event per wallet. All or nothing: the first refused row reverts the
    /// whole batch with WalletBatchRowRefused(index, wallet, reason), a wallet repeated within the
    /// batch included (its second row is WalletAlreadyRegistered).
    /// @dev Fields are written one by one (not as a struct literal) so that a field added to the
    /// wallet record later keeps its default here, as in a record that was never registered.
    function registerBatch(Registration[] calldata rows) external onlyRole(REGISTRAR_ROLE) {
        uint256 count = rows.length;
        if (count == 0 || count > MAX_REGISTRATIONS) revert WalletBatchSize(count, MAX_REGISTRATIONS);
        for (uint256 i = 0; i < count; ++i) {
            Registration calldata r = rows[i];
            bytes memory refusal = _registrationRefusal(r.wallet, r.kind, r.tier, r.category, r.identityHash);
            if (refusal.length != 0) revert WalletBatchRowRefused(i, r.wallet, bytes4(refusal));
            _record(r.wallet, r.kind, r.tier, r.category, r.identityHash);
        }
    }

    /// @dev The one set of registration rules, for `register` and every row of `registerBatch`: the
    /// ABI-encoded error (selector and values) that refuses the row, or empty when it can be
    /// registered. A batch sees its own earlier rows (they are recorded as it goes), so two rows of
    /// one identity in one tier are refused like two single registrations.
    function _registrationRefusal(address wallet, Kind kind, uint8 tier, uint16 category, bytes32 identityHash)
        private
        view
        returns (bytes memory)
    {
        if (wallet == address(0)) return abi.encodeWithSelector(WalletZeroAddress.selector);
        if (_wallets[wallet].kind != Kind.None) return abi.encodeWithSelector(WalletAlreadyRegistered.selector, wallet);
        if (kind == Kind.None) return abi.encodeWithSelector(InvalidKind.selector, uint8(kind));
        if (tier < 1 || tier > 4) return abi.encodeWithSelector(InvalidTier.selector, tier);
        if ((kind == Kind.Merchant) != (category != 0)) {
            return abi.encodeWithSelector(InvalidCategory.selector, kind, category);
        }
        if (identityHash == bytes32(0)) return abi.encodeWithSelector(ZeroIdentityHash.selector);
        if (kind == Kind.Personal) {
            uint256 limit = personalWalletLimit;
            if (_personal[identityHash][tier].count >= limit) {
                return abi.encodeWithSelector(IdentityWalletLimit.selector, identityHash, tier, limit);
            }
        }
        return "";
    }

    /// @dev Writes a registration that passed `_registrationRefusal`. Fields are written one by one
    /// (not as a struct literal) so that `capExempt` (the role may come before registration) and any
    /// field added later keep their value, as in a record that was never registered.
    function _record(address wallet, Kind kind, uint8 tier, uint16 category, bytes32 identityHash) private {
        Wallet storage w = _wallets[wallet];
        w.kind = kind;
        w.tier = tier;
        w.category = category;
        w.identityHash = identityHash;
        if (kind == Kind.Personal) _joinPersonal(identityHash, tier, wallet);
        emit WalletRegistered(wallet, kind, tier, category, identityHash);
    }

    /// @notice Move a registered `wallet` to another tier (after more identity checks, say).
    /// A personal wallet joins its identity's wallets of the new tier, within the limit
    /// (`IdentityWalletLimit`).
    function setTier(address wallet, uint8 tier) external onlyRole(REGISTRAR_ROLE) {
        Wallet storage w = _live(wallet);
        _checkTier(tier);
        uint8 previous = w.tier;
        if (w.kind == Kind.Personal && tier != previous) {
            uint256 limit = personalWalletLimit;
            if (_personal[w.identityHash][tier].count >= limit) {
                revert IdentityWalletLimit(w.identityHash, tier, limit);
            }
            _leavePersonal(w.identityHash, previous, wallet);
            _joinPersonal(w.identityHash, tier, wallet);
        }
        w.tier = tier;
        emit WalletTierChanged(wallet, previous, tier);
    }

    // ----------------------------------------------------------------------------------------
    // Regulator
    // ----------------------------------------------------------------------------------------

    /// @notice Freeze `wallet`: it can neither send nor receive until unfrozen.
    function freeze(address wallet) external onlyRole(REGULATOR_ROLE) {
        Wallet storage w = _live(wallet);
        if (w.frozen) revert WalletFrozen(wallet);
        w.frozen = true;
        emit Frozen(wallet, msg.sender);
    }

    /// @notice Unfreeze a frozen `wallet`.
    function unfreeze(address wallet) external onlyRole(REGULATOR_ROLE) {
        Wallet storage w = _live(wallet);
        if (!w.frozen) revert WalletNotFrozen(wallet);
        w.frozen = false;
        emit Unfrozen(wallet, msg.sender);
    }

    /// @notice Hold `amount` fen of `wallet`'s balance (a judicial freeze of an amount, an AML hold):
    /// that much can no longer move out of it by any path, the rest can. A hold may exceed the
    /// balance: money arriving later is held until the hold is covered. Returns the hold's id.
    function placeHold(address wallet, uint256 amount, bytes32 reason, bytes32 caseNumber)
        external
        onlyRole(REGULATOR_ROLE)
        returns (uint256 holdId)
    {
        Wallet storage w = _live(wallet);
        if (amount == 0 || amount > type(uint128).max - w.held) revert InvalidAmount(amount);
        if (caseNumber == bytes32(0)) revert ZeroCaseNumber();
        holdId = ++holdCount;
        _holds[holdId] = Hold(wallet, uint128(amount), true, reason, caseNumber);
        _walletHolds[wallet].push(holdId);
        w.held += uint128(amount);
        emit HoldPlaced(holdId, wallet, amount, w.held, reason, caseNumber, msg.sender);
    }

    /// @notice Lift hold `holdId` on `wallet` whole: its amount can move again.
    function liftHold(address wallet, uint256 holdId) external onlyRole(REGULATOR_ROLE) {
        _release(wallet, holdId, type(uint256).max);
    }

    /// @notice Propose a court order moving `amount` fen from `from` to `to` (held and frozen money
    /// included); `holdId` (0: none) is the hold on `from` the order executes against. A different
    /// regulator approves it (`approveCourtOrder`), which executes it. Returns the order's id.
    function proposeCourtOrder(address from, address to, uint256 amount, bytes32 caseNumber, uint256 holdId)
        external
        onlyRole(REGULATOR_ROLE)
        returns (uint256 id)
    {
        _registered(from);
        _live(to);
        if (amount == 0 || amount > type(uint128).max) revert InvalidAmount(amount);
        if (caseNumber == bytes32(0)) revert ZeroCaseNumber();
        if (holdId != 0) _activeHold(from, holdId);
        id = ++courtOrderCount;
        _orders[id] = CourtOrder(from, Status.Pending, to, uint128(amount), msg.sender, caseNumber, holdId);
        emit CourtOrderProposed(id, from, to, amount, caseNumber, holdId, msg.sender);
    }

    /// @notice Approve and execute court order `id` (a regulator other than its maker): the token
    /// moves the order's amount, exactly; the hold it names shrinks by as much (lifted when covered).
    /// A wallet retired since the proposal is refused (`WalletRetired`): its money is the successor's.
    function approveCourtOrder(uint256 id) external onlyRole(REGULATOR_ROLE) {
        CourtOrder storage o = _orders[id];
        if (o.status != Status.Pending) revert ProposalNotPending(id);
        if (o.maker == msg.sender) revert CheckerIsMaker(id, msg.sender);
        IRegistryMoves token = _cash();
        _live(o.from); // recovered since the proposal: the order is proposed again against the successor
        o.status = Status.Executed;
        // A hold on a live wallet stays on it (holds move only with a recovery, which retires it).
        if (o.holdId != 0 && _holds[o.holdId].active) _release(o.from, o.holdId, o.amount);
        emit CourtOrderExecuted(id, o.from, o.to, o.amount, o.caseNumber, o.maker, msg.sender);
        token.courtTransfer(o.from, o.to, o.amount);
    }

    /// @notice Cancel pending court order `id` (any regulator).
    function cancelCourtOrder(uint256 id) external onlyRole(REGULATOR_ROLE) {
        CourtOrder storage o = _orders[id];
        if (o.status != Status.Pending) revert ProposalNotPending(id);
        o.status = Status.Cancelled;
        emit CourtOrderCancelled(id, o.caseNumber, msg.sender);
    }

    // ----------------------------------------------------------------------------------------
    // Recovery (operator records the verification, a regulator approves)
    // ----------------------------------------------------------------------------------------

    /// @notice Record that the holder of `lost` proved their identity (`evidence`: the hash of the
    /// verification record) and propose that `replacement`, a new unregistered wallet, takes over
    /// `lost`. Returns the recovery's id.
    function proposeRecovery(address lost, address replacement, bytes32 evidence)
        external
        onlyRole(REGISTRAR_ROLE)
        returns (uint256 id)
    {
        Wallet storage w = _live(lost);
        if (w.capExempt) revert RecoveryOfFamilyWallet(lost);
        if (replacement == address(0)) revert WalletZeroAddress();
        if (_wallets[replacement].kind != Kind.None) revert WalletAlreadyRegistered(replacement);
        if (evidence == bytes32(0)) revert ZeroEvidence();
        id = ++recoveryCount;
        _recoveries[id] = Recovery(lost, Status.Pending, replacement, msg.sender, evidence);
        emit RecoveryProposed(id, lost, replacement, w.identityHash, evidence, msg.sender);
    }

    /// @notice Approve recovery `id` (a regulator other than its maker): `replacement` is registered
    /// with `lost`'s record (kind, tier, category, identity, freeze) and its holds, `lost` is retired
    /// for good, and the token moves `lost`'s whole holding to `replacement`.
    function approveRecovery(uint256 id) external onlyRole(REGULATOR_ROLE) {
        Recovery storage r = _recoveries[id];
        if (r.status != Status.Pending) revert ProposalNotPending(id);
        if (r.maker == msg.sender) revert CheckerIsMaker(id, msg.sender);
        IRegistryMoves token = _cash();
        address lost = r.lost;
        address replacement = r.replacement;
        Wallet storage old = _live(lost);
        if (_wallets[replacement].kind != Kind.None) revert WalletAlreadyRegistered(replacement);
        r.status = Status.Executed;

        Wallet storage w = _wallets[replacement];
        w.kind = old.kind;
        w.tier = old.tier;
        w.frozen = old.frozen;
        w.category = old.category;
        w.identityHash = old.identityHash;
        w.held = old.held;
        old.held = 0;
        old.retired = true;
        successorOf[lost] = replacement;
        if (old.kind == Kind.Personal) {
            PersonalSlot storage slot = _personal[old.identityHash][old.tier];
            if (slot.wallet == lost || slot.count == 1) slot.wallet = replacement;
        }
        uint256[] storage ids = _walletHolds[lost];
        for (uint256 i = 0; i < ids.length; ++i) {
            _holds[ids[i]].wallet = replacement;
            _walletHolds[replacement].push(ids[i]);
        }
        delete _walletHolds[lost];

        uint256 balance = token.balanceOf(lost);
        emit WalletRegistered(replacement, w.kind, w.tier, w.category, w.identityHash);
        emit WalletRetiredTo(lost, replacement);
        emit WalletRecovered(id, lost, replacement, w.identityHash, balance, w.held, r.maker, msg.sender);
        token.recoverHolding(lost, replacement);
    }

    /// @notice Cancel pending recovery `id` (the operator, or a regulator refusing it).
    function cancelRecovery(uint256 id) external {
        if (!hasRole(REGISTRAR_ROLE, msg.sender) && !hasRole(REGULATOR_ROLE, msg.sender)) {
            revert AccessControlUnauthorizedAccount(msg.sender, REGULATOR_ROLE);
        }
        Recovery storage r = _recoveries[id];
        if (r.status != Status.Pending) revert ProposalNotPending(id);
        r.status = Status.Cancelled;
        emit RecoveryCancelled(id, msg.sender);
    }

    // ----------------------------------------------------------------------------------------
    // Admin
    // ----------------------------------------------------------------------------------------

    /// @notice How many personal wallets one identity may hold per tier (1..255). Lowering it keeps
    /// the wallets already registered and refuses new ones above it.
    function setPersonalWalletLimit(uint256 limit) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (limit == 0 || limit > type(uint8).max) revert InvalidPersonalWalletLimit(limit);
        emit PersonalWalletLimitChanged(personalWalletLimit, limit);
        personalWalletLimit = uint8(limit);
    }

    /// @notice Link the token that executes court orders and recoveries (once: its address is how
    /// the token recognises this registry's word, and the other way round).
    function linkCash(IRegistryMoves cash_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (address(cash) != address(0) || address(cash_) == address(0)) revert CashLink(address(cash));
        cash = cash_;
        emit CashLinked(address(cash_));
    }

    /// @notice Change the limits of `tier`, in fen; `type(uint256).max` means no limit.
    function setTierLimits(uint8 tier, uint256 balanceCap, uint256 paymentCap, uint256 dailyCap)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _checkTier(tier);
        _setTierLimits(tier, balanceCap, paymentCap, dailyCap);
    }

    // ----------------------------------------------------------------------------------------
    // Views
    // ----------------------------------------------------------------------------------------

    /// @inheritdoc IWalletRegistry
    function policyOf(address wallet) external view returns (Policy memory policy) {
        return _policy(wallet);
    }

    /// @inheritdoc IWalletRegistry
    function movementPolicies(address from, address to) external view returns (uint256 sender, uint256 receiver) {
        if (from != address(0)) sender = _policyWord(from);
        if (to != address(0)) receiver = _policyWord(to);
    }

    /// @inheritdoc IWalletRegistry
    function isRegistered(address wallet) external view returns (bool) {
        return _wallets[wallet].kind != Kind.None;
    }

    /// @inheritdoc IWalletRegistry
    function isFrozen(address wallet) external view returns (bool) {
        Wallet storage w = _wallets[wallet];
        return w.frozen || w.retired;
    }

    /// @inheritdoc IWalletRegistry
    function kindOf(address wallet) external view returns (Kind) {
        return _wallets[wallet].kind;
    }

    /// @inheritdoc IWalletRegistry
    function categoryOf(address wallet) external view returns (uint16) {
        return _wallets[wallet].category;
    }

    /// @inheritdoc IWalletRegistry
    function identityOf(address wallet) external view returns (bytes32) {
        return _wallets[wallet].identityHash;
    }

    /// @inheritdoc IWalletRegistry
    function heldOf(address wallet) external view returns (uint256) {
        return _wallets[wallet].held;
    }

    /// @notice Whether `wallet` is retired (recovered to `successorOf(wallet)`).
    function isRetired(address wallet) external view returns (bool) {
        return _wallets[wallet].retired;
    }

    /// @notice The one live personal wallet of `identityHash` in `tier` (0: in any tier); reverts
    /// `NoPersonalWallet` when there is none, `AmbiguousPersonalWallet` when there are several (a row
    /// addressed by identity is then a row error naming the count, never a guess).
    function personalWalletOf(bytes32 identityHash, uint8 tier) external view returns (address wallet) {
        if (tier > 4) revert InvalidTier(tier);
        uint256 found = 0;
        for (uint8 t = tier == 0 ? 1 : tier; t <= (tier == 0 ? 4 : tier); ++t) {
            PersonalSlot storage slot = _personal[identityHash][t];
            if (slot.count == 0) continue;
            found += slot.count;
            wallet = slot.wallet;
        }
        if (found == 0) revert NoPersonalWallet(identityHash, tier);
        if (found > 1 || wallet == address(0)) revert AmbiguousPersonalWallet(identityHash, tier, found);
    }

    /// @notice How many live personal wallets `identityHash` holds in `tier`.
    function personalWalletCount(bytes32 identityHash, uint8 tier) external view returns (uint256) {
        return _personal[identityHash][tier].count;
    }

    /// @notice Hold `holdId` (zeroes when unknown).
    function holdOf(uint256 holdId) external view returns (Hold memory) {
        return _holds[holdId];
    }

    /// @notice The active holds on `wallet`, by id.
    function holdsOf(address wallet) external view returns (uint256[] memory) {
        return _walletHolds[wallet];
    }

    /// @notice Court order `id` (zeroes when unknown).
    function courtOrderOf(uint256 id) external view returns (CourtOrder memory) {
        return _orders[id];
    }

    /// @notice Recovery `id` (zeroes when unknown).
    function recoveryOf(uint256 id) external view returns (Recovery memory) {
        return _recoveries[id];
    }

    /// @notice The full record of `wallet` (zeroes when not registered); a retired wallet reads as
    /// frozen (`isRetired` tells them apart).
    function walletOf(address wallet)
        external
        view
        returns (Kind kind, uint8 tier, bool frozen, uint16 category, bytes32 identityHash)
    {
        Wallet storage w = _wallets[wallet];
        return (w.kind, w.tier, w.frozen || w.retired, w.category, w.identityHash);
    }

    /// @notice The limits of `tier`, in fen.
    function tierLimits(uint8 tier) external view returns (TierLimits memory) {
        _checkTier(tier);
        return _unpack(_tiers[tier]);
    }

    // ----------------------------------------------------------------------------------------
    // Internal
    // ----------------------------------------------------------------------------------------

    function _registered(address wallet) private view returns (Wallet storage w) {
        w = _wallets[wallet];
        if (w.kind == Kind.None) revert WalletNotRegistered(wallet);
    }

    /// @dev A registered wallet that is not retired (everything that changes a wallet needs one).
    function _live(address wallet) private view returns (Wallet storage w) {
        w = _registered(wallet);
        if (w.retired) revert WalletRetired(wallet);
    }

    function _cash() private view returns (IRegistryMoves token) {
        token = cash;
        if (address(token) == address(0)) revert CashLink(address(0));
    }

    function _joinPersonal(bytes32 identityHash, uint8 tier, address wallet) private {
        PersonalSlot storage slot = _personal[identityHash][tier];
        slot.count += 1;
        slot.wallet = wallet;
    }

    function _leavePersonal(bytes32 identityHash, uint8 tier, address wallet) private {
        PersonalSlot storage slot = _personal[identityHash][tier];
        slot.count -= 1;
        if (slot.wallet == wallet) slot.wallet = address(0);
    }

    function _activeHold(address wallet, uint256 holdId) private view returns (Hold storage h) {
        h = _holds[holdId];
        if (!h.active || h.wallet != wallet) revert HoldNotActive(holdId, wallet);
    }

    /// @dev Frees up to `amount` of hold `holdId` on `wallet`; the hold ends when nothing is left.
    function _release(address wallet, uint256 holdId, uint256 amount) private {
        Hold storage h = _activeHold(wallet, holdId);
        uint128 released = amount >= h.amount ? h.amount : uint128(amount);
        h.amount -= released;
        Wallet storage w = _wallets[wallet];
        w.held -= released;
        if (h.amount == 0) {
            h.active = false;
            uint256[] storage ids = _walletHolds[wallet];
            uint256 last = ids.length - 1;
            for (uint256 i = 0; i <= last; ++i) {
                if (ids[i] == holdId) {
                    ids[i] = ids[last];
                    ids.pop();
                    break;
                }
            }
        }
        emit HoldReleased(holdId, wallet, released, w.held, h.caseNumber, msg.sender);
    }

    function _checkTier(uint8 tier) private pure {
        if (tier < 1 || tier > 4) revert InvalidTier(tier);
    }

    function _setTierLimits(uint8 tier, uint256 balanceCap, uint256 paymentCap, uint256 dailyCap) private {
        if (paymentCap > dailyCap) revert InvalidTierLimits(tier, paymentCap, dailyCap);
        _tiers[tier] = PackedLimits(_pack(tier, balanceCap), _pack(tier, paymentCap), _pack(tier, dailyCap));
        emit TierLimitsChanged(tier, balanceCap, paymentCap, dailyCap);
    }

    function _policy(address wallet) private view returns (Policy memory policy) {
        Wallet storage w = _wallets[wallet];
        policy.registered = w.kind != Kind.None;
        policy.frozen = w.frozen || w.retired; // a retired wallet is frozen for good
        policy.capExempt = w.capExempt;
        if (policy.registered) policy.limits = _unpack(_tiers[w.tier]);
    }

    /// @dev The token's hot path (two per movement): one read of the wallet's first slot and one of
    /// its tier's slot, decoded by hand. The layout is the compiler's packing of `Wallet` (kind in
    /// byte 0, tier 1, frozen 2, category 3-4, capExempt 5, retired 6, held 7-22) and `PackedLimits`
    /// (three 80-bit limits from bit 0, the very layout of the policy word, so it is copied whole);
    /// the contract tests pin every field through `policyOf`/`movementPolicies`.
    function _policyWord(address wallet) private view returns (uint256 word) {
        Wallet storage w = _wallets[wallet];
        uint256 packed;
        assembly ("memory-safe") {
            packed := sload(w.slot)
        }
        if (packed & 0xff == 0) return 0; // Kind.None: not registered
        PackedLimits storage t = _tiers[uint8(packed >> 8)];
        assembly ("memory-safe") {
            word := sload(t.slot)
        }
        word |= POLICY_REGISTERED;
        if ((packed >> 16) & 0xff != 0) word |= POLICY_FROZEN;
        if ((packed >> 40) & 0xff != 0) word |= POLICY_CAP_EXEMPT;
        if ((packed >> 48) & 0xff != 0) word |= POLICY_RETIRED;
        if (packed >> 56 != 0) word |= POLICY_HELD;
    }

    function _pack(uint8 tier, uint256 limit) private pure returns (uint80) {
        if (limit == _UNLIMITED) return _PACKED_UNLIMITED;
        if (limit >= _PACKED_UNLIMITED) revert TierLimitOutOfRange(tier, limit);
        return uint80(limit);
    }

    function _widen(uint80 limit) private pure returns (uint256) {
        return limit == _PACKED_UNLIMITED ? _UNLIMITED : limit;
    }

    function _unpack(PackedLimits memory p) private pure returns (TierLimits memory) {
        return TierLimits(_widen(p.balanceCap), _widen(p.paymentCap), _widen(p.dailyCap));
    }

    /// @dev Keeps the wallet record's `capExempt` in step with CAP_EXEMPT_ROLE.
    function _grantRole(bytes32 role, address account) internal override returns (bool granted) {
        granted = super._grantRole(role, account);
        if (granted && role == CAP_EXEMPT_ROLE) _wallets[account].capExempt = true;
    }

    /// @dev Keeps the wallet record's `capExempt` in step with CAP_EXEMPT_ROLE.
    function _revokeRole(bytes32 role, address account) internal override returns (bool revoked) {
        revoked = super._revokeRole(role, account);
        if (revoked && role == CAP_EXEMPT_ROLE) _wallets[account].capExempt = false;
    }
}
