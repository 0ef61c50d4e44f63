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
    POLICY_CAP_EXEMPT
} from "./IWalletRegistry.sol";

/// @title WalletRegistry
/// @notice Who may hold and move digital cash: registered wallets with a tier (1 to 4), a kind,
/// a merchant category code for merchants and an identity hash (never the identity in clear).
/// The regulator freezes and unfreezes wallets; the admin changes tier limits.
/// @dev Invariants: a wallet is registered at most once; its kind never changes; tier is always
/// in 1..4 for a registered wallet; merchants, and only merchants, carry a non-zero category.
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
    struct Wallet {
        Kind kind;
        uint8 tier;
        bool frozen;
        uint16 category;
        bool capExempt;
        bytes32 identityHash;
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

    /// @param admin Holds DEFAULT_ADMIN_ROLE: grants roles and changes tier limits.
    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        // Public e-CNY wallet classes, in fen (1 yuan = 100 fen).
        _setTierLimits(1, _UNLIMITED, _UNLIMITED, _UNLIMITED);
        _setTierLimits(2, 500_000_00, 50_000_00, 100_000_00);
        _setTierLimits(3, 20_000_00, 5_000_00, 10_000_00);
        _setTierLimits(4, 10_000_00, 2_000_00, 5_000_00);
    }

    // ----------------------------------------------------------------------------------------
    // Registrar
    // ----------------------------------------------------------------------------------------

    /// @notice Register `wallet` with a kind, a tier, a merchant category (merchants only) and
    /// the hash of the holder's identity.
    function register(address wallet, Kind kind, uint8 tier, uint16 category, bytes32 identityHash)
        external
        onlyRole(REGISTRAR_ROLE)
    {
        if (wallet == address(0)) revert WalletZeroAddress();
        if (_wallets[wallet].kind != Kind.None) revert WalletAlreadyRegistered(wallet);
        if (kind == Kind.None) revert InvalidKind(uint8(kind));
        _checkTier(tier);
        if ((kind == Kind.Merchant) != (category != 0)) revert InvalidCategory(kind, category);
        if (identityHash == bytes32(0)) revert ZeroIdentityHash();

        _wallets[wallet] = Wallet({
            kind: kind,
            tier: tier,
            frozen: false,
            category: category,
            capExempt: _wallets[wallet].capExempt, // the role may have been granted before registration
            identityHash: identityHash
        });
        emit WalletRegistered(wallet, kind, tier, category, identityHash);
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
            bytes4 reason = _registrationRefusal(r);
            if (reason != bytes4(0)) revert WalletBatchRowRefused(i, r.wallet, reason);
            Wallet storage w = _wallets[r.wallet];
            w.kind = r.kind;
            w.tier = r.tier;
            w.category = r.category;
            w.identityHash = r.identityHash;
            emit WalletRegistered(r.wallet, r.kind, r.tier, r.category, r.identityHash);
        }
    }

    /// @dev The selector of the error `register` raises for row `r` (the same checks, in the same
    /// order), or zero when `r` can be registered.
    function _registrationRefusal(Registration calldata r) private view returns (bytes4) {
        if (r.wallet == address(0)) return WalletZeroAddress.selector;
        if (_wallets[r.wallet].kind != Kind.None) return WalletAlreadyRegistered.selector;
        if (r.kind == Kind.None) return InvalidKind.selector;
        if (r.tier < 1 || r.tier > 4) return InvalidTier.selector;
        if ((r.kind == Kind.Merchant) != (r.category != 0)) return InvalidCategory.selector;
        if (r.identityHash == bytes32(0)) return ZeroIdentityHash.selector;
        return bytes4(0);
    }

    /// @notice Move a registered `wallet` to another tier (after more identity checks, say).
    function setTier(address wallet, uint8 tier) external onlyRole(REGISTRAR_ROLE) {
        Wallet storage w = _registered(wallet);
        _checkTier(tier);
        uint8 previous = w.tier;
        w.tier = tier;
        emit WalletTierChanged(wallet, previous, tier);
    }

    // ----------------------------------------------------------------------------------------
    // Regulator
    // ----------------------------------------------------------------------------------------

    /// @notice Freeze `wallet`: it can neither send nor receive until unfrozen.
    function freeze(address wallet) external onlyRole(REGULATOR_ROLE) {
        Wallet storage w = _registered(wallet);
        if (w.frozen) revert WalletFrozen(wallet);
        w.frozen = true;
        emit Frozen(wallet, msg.sender);
    }

    /// @notice Unfreeze a frozen `wallet`.
    function unfreeze(address wallet) external onlyRole(REGULATOR_ROLE) {
        Wallet storage w = _registered(wallet);
        if (!w.frozen) revert WalletNotFrozen(wallet);
        w.frozen = false;
        emit Unfrozen(wallet, msg.sender);
    }

    // ----------------------------------------------------------------------------------------
    // Admin
    // ----------------------------------------------------------------------------------------

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
        return _wallets[wallet].frozen;
    }

    /// @inheritdoc IWalletRegistry
    function kindOf(address wallet) external view returns (Kind) {
        return _wallets[wallet].kind;
    }

    /// @inheritdoc IWalletRegistry
    function categoryOf(address wallet) external view returns (uint16) {
        return _wallets[wallet].category;
    }

    /// @notice The full record of `wallet` (zeroes when not registered).
    function walletOf(address wallet)
        external
        view
        returns (Kind kind, uint8 tier, bool frozen, uint16 category, bytes32 identityHash)
    {
        Wallet storage w = _wallets[wallet];
        return (w.kind, w.tier, w.frozen, w.category, w.identityHash);
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
        policy.frozen = w.frozen;
        policy.capExempt = w.capExempt;
        if (policy.registered) policy.limits = _unpack(_tiers[w.tier]);
    }

    function _policyWord(address wallet) private view returns (uint256 word) {
        Wallet storage w = _wallets[wallet];
        if (w.kind == Kind.None) return 0;
        PackedLimits storage t = _tiers[w.tier];
        word = uint256(t.balanceCap) | (uint256(t.paymentCap) << POLICY_PAYMENT_CAP)
            | (uint256(t.dailyCap) << POLICY_DAILY_CAP) | POLICY_REGISTERED;
        if (w.frozen) word |= POLICY_FROZEN;
        if (w.capExempt) word |= POLICY_CAP_EXEMPT;
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
