// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IWalletRegistry, requireSuccessor, RecoveryNothingHeld} from "../token/IWalletRegistry.sol";
import {IDigitalCash, PAY_TO_MERCHANT} from "../token/IDigitalCash.sol";

/// @title PrepaidEscrow
/// @notice Prepaid-fund supervision (预付资金监管): a consumer prepays a supervised merchant (gym,
/// school, training centre) for a package of sessions. The supervised share of the money stays in
/// this contract, still earmarked for the consumer, and is released to the merchant only per session
/// consumed. The consumer can cancel (unused part back, minus the package's cancellation fee); after
/// the package's end date, or once the regulator closes the merchant, the unused part goes back to the
/// consumer, never to the merchant.
/// @dev Invariants (tested): for every package and in total, deposited == released + refunded + held;
/// the contract's token balance equals the total held; after `used` sessions the merchant has been
/// released exactly `immediate + floor(supervised * used / sessions)` (all of it once every session is
/// used), however the sessions were split into calls.
///
/// Freeze (the README's freeze table): every payout names the consumer as the economic owner
/// (`DigitalCash.payFor`), so the token's one policy judges it. A frozen consumer cannot prepay,
/// consume, cancel, nor have the merchant claim sessions (any signature): `PrepaidConsumerFrozen`.
/// Refunds to a frozen consumer wait: the funds stay held and the package stays refundable until the
/// regulator unfreezes the wallet (`refund` reverts `PrepaidConsumerFrozen`, `refundBatch` defers the
/// row with `RefundDeferred` and the token's reason). A frozen merchant takes no new packages and
/// cannot be paid, so its releases wait as well; refunds of its packages still reach consumers.
contract PrepaidEscrow is AccessControl, ReentrancyGuard, EIP712 {
    using SafeERC20 for IERC20;

    // ----------------------------------------------------------------------------------------
    // Errors
    // ----------------------------------------------------------------------------------------

    /// @dev `wallet` is not a registered merchant wallet.
    error PrepaidNotMerchantWallet(address wallet);
    /// @dev `merchant` is not enrolled for supervision.
    error PrepaidMerchantNotEnrolled(address merchant);
    /// @dev `merchant` is enrolled already.
    error PrepaidMerchantAlreadyEnrolled(address merchant);
    /// @dev `merchant` was closed by the regulator.
    error PrepaidMerchantClosed(address merchant);
    /// @dev `merchant`'s wallet is frozen: it takes no new packages.
    error PrepaidMerchantFrozen(address merchant);
    /// @dev The supervised share must be 1..10000 basis points.
    error PrepaidInvalidShare(uint16 supervisedBps);
    /// @dev The package total is above the merchant's per-contract ceiling.
    error PrepaidCeilingExceeded(address merchant, uint256 ceiling, uint256 total);
    /// @dev Sessions and unit price must be positive.
    error PrepaidEmptyPackage(uint256 sessions, uint256 unitPrice);
    /// @dev The end date must be in the future.
    error PrepaidExpiryInPast(uint256 expiresAt, uint256 nowTs);
    /// @dev The cancellation fee cannot exceed the held amount.
    error PrepaidFeeTooHigh(uint256 fee, uint256 held);
    /// @dev No package has this id.
    error PrepaidUnknownPackage(uint256 id);
    /// @dev The package is no longer open (cancelled, refunded or fully consumed).
    error PrepaidPackageClosed(uint256 id);
    /// @dev Only the package's consumer may do this.
    error PrepaidNotConsumer(uint256 id, address caller);
    /// @dev Only the package's merchant may do this.
    error PrepaidNotMerchant(uint256 id, address caller);
    /// @dev Releasing `requested` sessions when only `remaining` are left.
    error PrepaidTooManySessions(uint256 id, uint256 requested, uint256 remaining);
    /// @dev The package ended at `expiresAt`: no more consumption.
    error PrepaidPackageExpired(uint256 id, uint256 expiresAt);
    /// @dev The package is neither expired nor its merchant closed: no refund.
    error PrepaidNotRefundable(uint256 id);
    /// @dev The consumer's signature does not match (forged, replayed, other package or chain).
    error PrepaidInvalidSignature(uint256 id);
    /// @dev The consumer's signature expired at `deadline`.
    error PrepaidSignatureExpired(uint256 deadline);
    /// @dev The package's consumer is frozen: no consumption, claim or cancellation, and its refund
    /// waits until the regulator unfreezes it.
    error PrepaidConsumerFrozen(uint256 id, address consumer);
    /// @dev The token refused a batch refund without saying why (e.g. out of gas): the batch reverts.
    error PrepaidTransferFailed(uint256 id);
    /// @dev At most `max` packages per batch.
    error PrepaidBatchTooLarge(uint256 size, uint256 max);

    // ----------------------------------------------------------------------------------------
    // Events
    // ----------------------------------------------------------------------------------------

    /// @dev The regulator enrolled a merchant for supervision.
    event MerchantEnrolled(address indexed merchant, uint16 supervisedBps, uint256 ceiling);
    /// @dev The regulator closed a merchant: its open packages are refundable.
    event MerchantClosed(address indexed merchant);
    /// @dev A consumer prepaid a package; `immediate` went to the merchant, `held` is supervised.
    event PackagePrepaid(
        uint256 indexed id,
        address indexed consumer,
        address indexed merchant,
        uint256 sessions,
        uint256 unitPrice,
        uint256 total,
        uint256 immediate,
        uint256 held,
        uint256 expiresAt,
        uint256 cancellationFee
    );
    /// @dev Sessions were consumed and `amount` released to the merchant.
    event SessionsConsumed(uint256 indexed id, uint256 sessions, uint256 amount, uint256 remaining, bool bySignature);
    /// @dev The consumer cancelled: `refund` back to the consumer, `fee` to the merchant.
    event PackageCancelled(uint256 indexed id, uint256 refund, uint256 fee);
    /// @dev The unused part went back to the consumer (`merchantClosed` false: the package expired).
    event PackageRefunded(uint256 indexed id, uint256 amount, bool merchantClosed);
    /// @dev A batch refund could not pay package `id`'s consumer now (`reason`: PrepaidConsumerFrozen's
    /// selector, or the token's error selector, e.g. TierBalanceCapExceeded); nothing moved, it stays
    /// refundable.
    event RefundDeferred(uint256 indexed id, address indexed consumer, bytes4 reason);
    /// @dev Open package `id` of the retired `lost` wallet is now `successor`'s (its `held` fen with it).
    event PackageRecovered(uint256 indexed id, address indexed lost, address indexed successor, uint256 held);

    // ----------------------------------------------------------------------------------------
    // Storage
    // ----------------------------------------------------------------------------------------

    /// @notice Enrols and closes merchants.
    bytes32 public constant REGULATOR_ROLE = keccak256("REGULATOR_ROLE");
    /// @notice Largest refund batch (keeps every call well inside a block).
    uint256 public constant MAX_BATCH = 100;
    /// @notice What a consumer signs so that the merchant can claim sessions at the counter.
    bytes32 public constant CONSUME_TYPEHASH =
        keccak256("Consume(uint256 packageId,uint256 sessions,uint256 nonce,uint256 deadline)");

    uint16 private constant _BPS = 10_000;

    enum Status {
        None,
        Open,
        Consumed,
        Cancelled,
        Refunded
    }

    struct Merchant {
        bool enrolled;
        bool closed;
        uint16 supervisedBps;
        uint256 ceiling; // 0: none
    }

    struct Package {
        address consumer;
        address merchant;
        Status status;
        uint64 expiresAt;
        uint32 sessions;
        uint32 used;
        uint64 nonce; // consumed by each signed claim
        uint128 unitPrice;
        uint128 cancellationFee;
        uint128 deposited;
        uint128 released;
        uint128 refunded;
        uint128 held;
    }

    IERC20 public immutable cash;
    IWalletRegistry public immutable registry;

    mapping(address merchant => Merchant) private _merchants;
    mapping(address merchant => uint256[]) private _packagesOf;
    mapping(uint256 id => Package) private _packages;
    uint256 public packageCount;

    uint256 public totalDeposited;
    uint256 public totalReleased;
    uint256 public totalRefunded;
    uint256 public totalHeld;

    constructor(IERC20 cash_, IWalletRegistry registry_, address admin) EIP712("XcpayPrepaidEscrow", "1") {
        cash = cash_;
        registry = registry_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // ----------------------------------------------------------------------------------------
    // Regulator
    // ----------------------------------------------------------------------------------------

    /// @notice Enrol `merchant` with the share of every prepayment held in escrow (basis points)
    /// and an optional per-package ceiling in fen (0: none).
    function enrolMerchant(address merchant, uint16 supervisedBps, uint256 ceiling) external onlyRole(REGULATOR_ROLE) {
        if (registry.kindOf(merchant) != IWalletRegistry.Kind.Merchant) revert PrepaidNotMerchantWallet(merchant);
        if (_merchants[merchant].enrolled) revert PrepaidMerchantAlreadyEnrolled(merchant);
        if (supervisedBps == 0 || supervisedBps > _BPS) revert PrepaidInvalidShare(supervisedBps);
        _merchants[merchant] = Merchant({enrolled: true, closed: false, supervisedBps: supervisedBps, ceiling: ceiling});
        emit MerchantEnrolled(merchant, supervisedBps, ceiling);
    }

    /// @notice Close `merchant`: no new packages, no more consumption, every open package refundable.
    function closeMerchant(address merchant) external onlyRole(REGULATOR_ROLE) {
        Merchant storage m = _enrolled(merchant);
        if (m.closed) revert PrepaidMerchantClosed(merchant);
        m.closed = true;
        emit MerchantClosed(merchant);
    }

    // ----------------------------------------------------------------------------------------
    // Consumer
    // ----------------------------------------------------------------------------------------

    /// @notice Prepay `sessions` sessions at `unitPrice` fen with `merchant`, ending at `expiresAt`.
    /// The caller must have approved this contract for the total. Returns the package id.
    function prepay(address merchant, uint32 sessions, uint128 unitPrice, uint64 expiresAt, uint128 cancellationFee)
        external
        nonReentrant
        returns (uint256 id)
    {
        Merchant storage m = _enrolled(merchant);
        if (m.closed) revert PrepaidMerchantClosed(merchant);
        if (registry.isFrozen(merchant)) revert PrepaidMerchantFrozen(merchant);
        if (sessions == 0 || unitPrice == 0) revert PrepaidEmptyPackage(sessions, unitPrice);
        if (expiresAt <= block.timestamp) revert PrepaidExpiryInPast(expiresAt, block.timestamp);
        uint256 total = uint256(sessions) * unitPrice;
        if (m.ceiling != 0 && total > m.ceiling) revert PrepaidCeilingExceeded(merchant, m.ceiling, total);
        uint256 held = total * m.supervisedBps / _BPS;
        uint256 immediate = total - held;
        if (cancellationFee > held) revert PrepaidFeeTooHigh(cancellationFee, held);

        id = ++packageCount;
        _packages[id] = Package({
            consumer: msg.sender,
            merchant: merchant,
            status: Status.Open,
            expiresAt: expiresAt,
            sessions: sessions,
            used: 0,
            nonce: 0,
            unitPrice: unitPrice,
            cancellationFee: cancellationFee,
            deposited: uint128(total),
            released: uint128(immediate),
            refunded: 0,
            held: uint128(held)
        });
        _packagesOf[merchant].push(id);
        totalDeposited += total;
        totalReleased += immediate;
        totalHeld += held;
        emit PackagePrepaid(id, msg.sender, merchant, sessions, unitPrice, total, immediate, held, expiresAt, cancellationFee);

        cash.safeTransferFrom(msg.sender, address(this), total);
        if (immediate > 0) IDigitalCash(address(cash)).payFor(msg.sender, merchant, immediate, PAY_TO_MERCHANT);
    }

    /// @notice The consumer confirms `sessions` used: their held share goes to the merchant.
    function consume(uint256 id, uint32 sessions) external nonReentrant {
        Package storage p = _open(id);
        if (msg.sender != p.consumer) revert PrepaidNotConsumer(id, msg.sender);
        _release(id, p, sessions, false);
    }

    /// @notice The merchant claims `sessions` with the consumer's EIP-712 `Consume` signature.
    function claim(uint256 id, uint32 sessions, uint256 deadline, bytes calldata signature) external nonReentrant {
        Package storage p = _open(id);
        if (msg.sender != p.merchant) revert PrepaidNotMerchant(id, msg.sender);
        if (block.timestamp > deadline) revert PrepaidSignatureExpired(deadline);
        bytes32 digest = _hashTypedDataV4(keccak256(abi.encode(CONSUME_TYPEHASH, id, sessions, p.nonce, deadline)));
        if (!SignatureChecker.isValidSignatureNow(p.consumer, digest, signature)) revert PrepaidInvalidSignature(id);
        p.nonce += 1; // consumed with the verification: the same signature never works twice
        _release(id, p, sessions, true);
    }

    /// @notice The consumer cancels: the held part returns, minus the package's cancellation fee.
    function cancel(uint256 id) external nonReentrant {
        Package storage p = _open(id);
        if (msg.sender != p.consumer) revert PrepaidNotConsumer(id, msg.sender);
        if (registry.isFrozen(p.consumer)) revert PrepaidConsumerFrozen(id, p.consumer);
        uint256 held = p.held;
        uint256 fee = p.cancellationFee; // <= held at creation, and held only shrinks with use
        if (fee > held) fee = held;
        uint256 refundAmount = held - fee;
        p.status = Status.Cancelled;
        p.held = 0;
        p.released += uint128(fee);
        p.refunded += uint128(refundAmount);
        totalHeld -= held;
        totalReleased += fee;
        totalRefunded += refundAmount;
        emit PackageCancelled(id, refundAmount, fee);
        if (fee > 0) IDigitalCash(address(cash)).payFor(p.consumer, p.merchant, fee, PAY_TO_MERCHANT);
        if (refundAmount > 0) IDigitalCash(address(cash)).payFor(p.consumer, p.consumer, refundAmount, 0);
    }

    // ----------------------------------------------------------------------------------------
    // Anyone: recovery of a retired consumer's packages
    // ----------------------------------------------------------------------------------------

    /// @notice Open package `id` of the retired `lost` wallet becomes `successor`'s, which must be
    /// `lost`'s registered successor (`RecoveryWrongSuccessor`): its sessions, refunds and signatures
    /// are the successor's from now on (a signature's nonce carries on, so none of the lost key's
    /// works again). Anyone may call; once (`RecoveryNothingHeld` when `lost` is not the consumer).
    /// Moves no cash: the held part stays here.
    function recoverPackage(uint256 id, address lost, address successor) external {
        Package storage p = _open(id);
        requireSuccessor(registry, lost, successor);
        if (p.consumer != lost) revert RecoveryNothingHeld(lost);
        p.consumer = successor;
        emit PackageRecovered(id, lost, successor, p.held);
    }

    // ----------------------------------------------------------------------------------------
    // Anyone (keepers): refunds after expiry or merchant closure
    // ----------------------------------------------------------------------------------------

    /// @notice Refund the unused part of package `id` to its consumer, once it has expired or its
    /// merchant was closed.
    function refund(uint256 id) external nonReentrant {
        Package storage p = _open(id);
        bool closed = _merchants[p.merchant].closed;
        if (!closed && block.timestamp <= p.expiresAt) revert PrepaidNotRefundable(id);
        if (registry.isFrozen(p.consumer)) revert PrepaidConsumerFrozen(id, p.consumer);
        _refund(id, p, closed);
    }

    /// @notice Push refunds for up to MAX_BATCH packages; those not refundable are skipped. A refund
    /// the token refuses (consumer frozen, at its tier balance cap, ...) is deferred with
    /// `RefundDeferred(id, consumer, reason)` and stays refundable: one consumer never blocks the page.
    /// Reverts only when paused (the token refuses every row: the call stops as a whole) or when the
    /// token fails without an error. Returns how many were refunded.
    function refundBatch(uint256[] calldata ids) external nonReentrant returns (uint256 done) {
        if (ids.length > MAX_BATCH) revert PrepaidBatchTooLarge(ids.length, MAX_BATCH);
        if (Pausable(address(cash)).paused()) revert Pausable.EnforcedPause();
        for (uint256 i = 0; i < ids.length; ++i) {
            Package storage p = _packages[ids[i]];
            if (p.status != Status.Open) continue;
            bool closed = _merchants[p.merchant].closed;
            if (!closed && block.timestamp <= p.expiresAt) continue;
            if (registry.isFrozen(p.consumer)) {
                // As `refund`: a frozen consumer's refund waits, even one of 0 fen.
                emit RefundDeferred(ids[i], p.consumer, PrepaidConsumerFrozen.selector);
                continue;
            }
            if (_tryRefund(ids[i], p, closed)) ++done;
        }
    }

    // ----------------------------------------------------------------------------------------
    // Views
    // ----------------------------------------------------------------------------------------

    /// @notice Package `id` as stored.
    function packageOf(uint256 id) external view returns (Package memory) {
        if (_packages[id].status == Status.None) revert PrepaidUnknownPackage(id);
        return _packages[id];
    }

    /// @notice Enrolment of `merchant`.
    function merchantOf(address merchant) external view returns (Merchant memory) {
        return _merchants[merchant];
    }

    /// @notice Package ids of `merchant`, `limit` from `offset` (for paging refunds).
    function packagesOf(address merchant, uint256 offset, uint256 limit) external view returns (uint256[] memory ids) {
        uint256[] storage all = _packagesOf[merchant];
        if (offset >= all.length) return new uint256[](0);
        uint256 end = offset + limit > all.length ? all.length : offset + limit;
        ids = new uint256[](end - offset);
        for (uint256 i = offset; i < end; ++i) {
            ids[i - offset] = all[i];
        }
    }

    /// @notice How many packages `merchant` has.
    function packageCountOf(address merchant) external view returns (uint256) {
        return _packagesOf[merchant].length;
    }

    /// @notice The EIP-712 domain separator (bound to this chain id and this contract).
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ----------------------------------------------------------------------------------------
    // Internal
    // ----------------------------------------------------------------------------------------

    function _enrolled(address merchant) private view returns (Merchant storage m) {
        m = _merchants[merchant];
        if (!m.enrolled) revert PrepaidMerchantNotEnrolled(merchant);
    }

    function _open(uint256 id) private view returns (Package storage p) {
        p = _packages[id];
        if (p.status == Status.None) revert PrepaidUnknownPackage(id);
        if (p.status != Status.Open) revert PrepaidPackageClosed(id);
    }

    function _release(uint256 id, Package storage p, uint32 sessions, bool bySignature) private {
        Merchant storage m = _merchants[p.merchant];
        if (m.closed) revert PrepaidMerchantClosed(p.merchant);
        if (block.timestamp > p.expiresAt) revert PrepaidPackageExpired(id, p.expiresAt);
        // Checked here although payFor refuses a frozen owner too: a release of 0 fen (sessions worth
        // less than a fen so far) moves nothing, yet uses sessions of the frozen consumer.
        if (registry.isFrozen(p.consumer)) revert PrepaidConsumerFrozen(id, p.consumer);
        uint256 remaining = p.sessions - p.used;
        if (sessions == 0 || sessions > remaining) revert PrepaidTooManySessions(id, sessions, remaining);
        // Cumulative: what is due for every session used so far minus what was released of the
        // supervised part already (held only shrinks by releases while the package is open), so
        // rounding never loses a fen across calls; the last session takes the remainder. The merchant's
        // share is fixed at enrolment (no setter), so `supervised` is what `prepay` put in `held`.
        // slither-disable-next-line divide-before-multiply (on purpose: `supervised` must be exactly what `prepay` rounded into `held`)
        uint256 supervised = uint256(p.deposited) * m.supervisedBps / _BPS;
        uint256 usedAfter = uint256(p.used) + sessions;
        uint256 due = usedAfter == p.sessions ? supervised : supervised * usedAfter / p.sessions;
        uint256 amount = due - (supervised - p.held);
        p.used += sessions;
        p.held -= uint128(amount);
        p.released += uint128(amount);
        if (p.used == p.sessions) p.status = Status.Consumed;
        totalHeld -= amount;
        totalReleased += amount;
        emit SessionsConsumed(id, sessions, amount, remaining - sessions, bySignature);
        if (amount > 0) IDigitalCash(address(cash)).payFor(p.consumer, p.merchant, amount, PAY_TO_MERCHANT);
    }

    /// @dev `_refund` for a batch row: a refusal by the token undoes the row and defers it.
    function _tryRefund(uint256 id, Package storage p, bool merchantClosed) private returns (bool) {
        uint256 amount = p.held;
        p.status = Status.Refunded;
        p.held = 0;
        p.refunded += uint128(amount);
        totalHeld -= amount;
        totalRefunded += amount;
        if (amount > 0) {
            // slither-disable-next-line reentrancy-no-eth,reentrancy-events (state is written after the call only to undo a refused refund; our own DigitalCash has no hooks; refundBatch is nonReentrant)
            (bool ok, bytes memory ret) =
                address(cash).call(abi.encodeCall(IDigitalCash.payFor, (p.consumer, p.consumer, amount, 0)));
            if (!ok) {
                if (ret.length < 4) revert PrepaidTransferFailed(id);
                p.status = Status.Open;
                p.held = uint128(amount);
                p.refunded -= uint128(amount);
                totalHeld += amount;
                totalRefunded -= amount;
                emit RefundDeferred(id, p.consumer, bytes4(ret));
                return false;
            }
        }
        emit PackageRefunded(id, amount, merchantClosed);
        return true;
    }

    function _refund(uint256 id, Package storage p, bool merchantClosed) private {
        uint256 amount = p.held;
        p.status = Status.Refunded;
        p.held = 0;
        p.refunded += uint128(amount);
        totalHeld -= amount;
        totalRefunded += amount;
        emit PackageRefunded(id, amount, merchantClosed);
        if (amount > 0) IDigitalCash(address(cash)).payFor(p.consumer, p.consumer, amount, 0);
    }
}
