// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IWalletRegistry, requireSuccessor, RecoveryNothingHeld} from "../token/IWalletRegistry.sol";

/// @title QuickPay
/// @notice Quick-pay mandates (钱包快付): a wallet holder lets one merchant pull payments from their
/// wallet without confirming each one (a transit operator, a canteen, a utility), within a per-payment
/// cap, a daily cap (Beijing-time days, as the token counts them) and an expiry. The holder revokes a
/// mandate at any time, effective for the next pull.
///
/// Money moves straight from the holder's wallet to the merchant (`transferFrom`; the holder approves
/// this contract on the token once), so this contract holds nothing, and the token still applies the
/// holder's and the merchant's registration, freeze and tier caps to every pull. Each pull carries the
/// merchant's own reference (an order number); a reference pays once per mandate, so a merchant that
/// retries a pull after a timeout never charges twice.
///
/// @dev Invariants (tested): per mandate and day, pulled today <= dailyCap; each pull <= perPaymentCap;
/// no pull after expiry or revocation; each (mandate, orderRef) pays at most once.
contract QuickPay is ReentrancyGuard {
    using SafeERC20 for IERC20;

    // ----------------------------------------------------------------------------------------
    // Errors
    // ----------------------------------------------------------------------------------------

    /// @dev `holder` is not a registered wallet.
    error QuickPayInvalidHolder(address holder);
    /// @dev `merchant` is not a registered merchant wallet.
    error QuickPayInvalidMerchant(address merchant);
    /// @dev Caps must satisfy 0 < perPaymentCap <= dailyCap.
    error QuickPayInvalidCaps(uint256 perPaymentCap, uint256 dailyCap);
    /// @dev The expiry must be in the future.
    error QuickPayExpiryInPast(uint64 expiresAt, uint256 nowTs);
    /// @dev No mandate has this id.
    error QuickPayUnknownMandate(uint256 id);
    /// @dev Only the mandate's holder may do this.
    error QuickPayNotHolder(uint256 id, address account);
    /// @dev Only the mandate's merchant may pull.
    error QuickPayNotMerchant(uint256 id, address account);
    /// @dev Mandate `id` was revoked.
    error QuickPayRevoked(uint256 id);
    /// @dev Mandate `id` expired at `expiresAt`.
    error QuickPayExpired(uint256 id, uint64 expiresAt);
    /// @dev Amounts must be positive.
    error QuickPayZeroAmount();
    /// @dev `amount` is above the mandate's per-payment `cap`.
    error QuickPayOverPaymentCap(uint256 id, uint256 cap, uint256 amount);
    /// @dev The pull would bring today's total of mandate `id` to `spentAfter`, above `cap`.
    error QuickPayOverDailyCap(uint256 id, uint256 cap, uint256 spentAfter);
    /// @dev Mandate `id` paid `orderRef` already.
    error QuickPayDuplicateReference(uint256 id, bytes32 orderRef);

    // ----------------------------------------------------------------------------------------
    // Events
    // ----------------------------------------------------------------------------------------

    /// @dev `holder` granted `merchant` mandate `id`.
    event MandateGranted(
        uint256 indexed id,
        address indexed holder,
        address indexed merchant,
        uint256 perPaymentCap,
        uint256 dailyCap,
        uint64 expiresAt
    );
    /// @dev The merchant pulled `amount` under mandate `id` for `orderRef`; `spentToday` after it.
    event MandatePulled(uint256 indexed id, address indexed merchant, bytes32 indexed orderRef, uint256 amount, uint256 spentToday);
    /// @dev The holder revoked mandate `id`.
    event MandateRevoked(uint256 indexed id, address indexed holder);
    /// @dev Mandate `id` of the retired `lost` wallet now pulls from `successor`, the wallet that replaced it.
    event MandateRecovered(uint256 indexed id, address indexed lost, address indexed successor);

    // ----------------------------------------------------------------------------------------
    // Storage
    // ----------------------------------------------------------------------------------------

    /// @dev Days start at midnight Beijing time (UTC+8), as in DigitalCash.
    uint256 private constant _DAY_OFFSET = 8 hours;

    struct Mandate {
        address holder;
        uint64 expiresAt;
        bool revoked;
        address merchant;
        uint64 day; // the day `spentToday` counts
        uint128 perPaymentCap;
        uint128 dailyCap;
        uint128 spentToday;
        uint128 totalPulled;
    }

    IERC20 public immutable cash;
    IWalletRegistry public immutable registry;

    mapping(uint256 id => Mandate) private _mandates;
    mapping(uint256 id => mapping(bytes32 orderRef => bool)) private _references;
    uint256 public mandateCount;

    constructor(IERC20 cash_, IWalletRegistry registry_) {
        cash = cash_;
        registry = registry_;
    }

    // ----------------------------------------------------------------------------------------
    // Holder
    // ----------------------------------------------------------------------------------------

    /// @notice The caller grants `merchant` a mandate: pulls of at most `perPaymentCap` fen each, at
    /// most `dailyCap` fen per day, until `expiresAt`. Returns the mandate id. The caller must also
    /// approve this contract on the token for what the merchant may pull.
    function grant(address merchant, uint128 perPaymentCap, uint128 dailyCap, uint64 expiresAt)
        external
        returns (uint256 id)
    {
        if (registry.kindOf(msg.sender) == IWalletRegistry.Kind.None) revert QuickPayInvalidHolder(msg.sender);
        if (registry.kindOf(merchant) != IWalletRegistry.Kind.Merchant) revert QuickPayInvalidMerchant(merchant);
        if (perPaymentCap == 0 || dailyCap < perPaymentCap) revert QuickPayInvalidCaps(perPaymentCap, dailyCap);
        if (expiresAt <= block.timestamp) revert QuickPayExpiryInPast(expiresAt, block.timestamp);
        id = ++mandateCount;
        _mandates[id] = Mandate({
            holder: msg.sender,
            expiresAt: expiresAt,
            revoked: false,
            merchant: merchant,
            day: 0,
            perPaymentCap: perPaymentCap,
            dailyCap: dailyCap,
            spentToday: 0,
            totalPulled: 0
        });
        emit MandateGranted(id, msg.sender, merchant, perPaymentCap, dailyCap, expiresAt);
    }

    /// @notice The holder revokes mandate `id`; no pull succeeds after this.
    function revoke(uint256 id) external {
        Mandate storage m = _known(id);
        if (msg.sender != m.holder) revert QuickPayNotHolder(id, msg.sender);
        if (m.revoked) revert QuickPayRevoked(id);
        m.revoked = true;
        emit MandateRevoked(id, msg.sender);
    }

    /// @notice Mandate `id` of the retired `lost` wallet (not revoked) becomes `successor`'s, which
    /// must be `lost`'s registered successor (`RecoveryWrongSuccessor`): its caps, expiry, today's
    /// count and used references carry on, and the merchant pulls from the successor (within the
    /// successor's own allowance to this contract). Anyone may call; once (`RecoveryNothingHeld`
    /// when `lost` is not the holder).
    function recoverMandate(uint256 id, address lost, address successor) external {
        Mandate storage m = _known(id);
        if (m.revoked) revert QuickPayRevoked(id);
        requireSuccessor(registry, lost, successor);
        if (m.holder != lost) revert RecoveryNothingHeld(lost);
        m.holder = successor;
        emit MandateRecovered(id, lost, successor);
    }

    // ----------------------------------------------------------------------------------------
    // Merchant
    // ----------------------------------------------------------------------------------------

    /// @notice The mandate's merchant pulls `amount` fen from the holder for `orderRef` (its order
    /// number; each reference pays once per mandate).
    function pull(uint256 id, uint128 amount, bytes32 orderRef) external nonReentrant {
        Mandate storage m = _known(id);
        if (msg.sender != m.merchant) revert QuickPayNotMerchant(id, msg.sender);
        if (m.revoked) revert QuickPayRevoked(id);
        if (block.timestamp > m.expiresAt) revert QuickPayExpired(id, m.expiresAt);
        if (amount == 0) revert QuickPayZeroAmount();
        if (amount > m.perPaymentCap) revert QuickPayOverPaymentCap(id, m.perPaymentCap, amount);
        if (_references[id][orderRef]) revert QuickPayDuplicateReference(id, orderRef);
        uint64 day = _today();
        // slither-disable-next-line incorrect-equality (a Beijing day number, compared exactly on purpose)
        uint256 spentAfter = (m.day == day ? uint256(m.spentToday) : 0) + amount;
        if (spentAfter > m.dailyCap) revert QuickPayOverDailyCap(id, m.dailyCap, spentAfter);

        _references[id][orderRef] = true;
        m.day = day;
        // spentAfter <= dailyCap, a uint128.
        m.spentToday = uint128(spentAfter);
        m.totalPulled += amount;
        emit MandatePulled(id, msg.sender, orderRef, amount, spentAfter);
        // slither-disable-next-line arbitrary-send-erc20 (from is the mandate's holder, who granted it; only its merchant pulls, within its caps, expiry and revocation)
        cash.safeTransferFrom(m.holder, msg.sender, amount);
    }

    // ----------------------------------------------------------------------------------------
    // Views
    // ----------------------------------------------------------------------------------------

    /// @notice Mandate `id` as stored (`spentToday` counts for day `day` only; see `spentToday`).
    function mandateOf(uint256 id) external view returns (Mandate memory) {
        return _known(id);
    }

    /// @notice What mandate `id` has pulled today (Beijing time).
    function spentToday(uint256 id) external view returns (uint256) {
        Mandate storage m = _known(id);
        // slither-disable-next-line incorrect-equality (a Beijing day number, compared exactly on purpose)
        return m.day == _today() ? m.spentToday : 0;
    }

    /// @notice Whether mandate `id` has paid `orderRef`.
    function isReferenceUsed(uint256 id, bytes32 orderRef) external view returns (bool) {
        return _references[id][orderRef];
    }

    // ----------------------------------------------------------------------------------------
    // Internal
    // ----------------------------------------------------------------------------------------

    function _known(uint256 id) private view returns (Mandate storage m) {
        m = _mandates[id];
        if (m.holder == address(0)) revert QuickPayUnknownMandate(id);
    }

    function _today() private view returns (uint64) {
        return uint64((block.timestamp + _DAY_OFFSET) / 1 days);
    }
}
