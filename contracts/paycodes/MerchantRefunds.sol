// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IWalletRegistry} from "../token/IWalletRegistry.sol";

/// @title MerchantRefunds
/// @notice Refunds of ordinary payments (payment-code payments in any form, card payments): the
/// merchant refunds all or part of a bill, never more in total than was paid for it. Each payment
/// is known here by an id (the operator's, bound to the paying transaction) and recorded once by
/// the operator (the recorder) with what the chain says it moved: who paid whom, how much, and how
/// much of it a voucher programme paid (and where that part returns: the programme's issuer).
///
/// Money moves straight from the merchant's wallet (`transferFrom`: the merchant approves this
/// contract on the token) to the payer (the cash part) and to the programme's issuer (the voucher
/// part), so this contract holds nothing; the token still applies registration, freezes, holds and
/// tier caps to both movements (a frozen or retired payer is refused by the token: `WalletFrozen`,
/// `WalletRetired`). Only the payment's merchant refunds it. The voucher part of each refund is in
/// proportion to the bill, counted on the running total so that rounding never drifts: after a full
/// refund the programme got back exactly what it paid.
///
/// @dev Invariants (tested): per payment, refunded <= paid; voucherRefunded <= voucherPart;
/// refunded - voucherRefunded <= paid - voucherPart; each refund reference is used once.
contract MerchantRefunds is AccessControl, ReentrancyGuard {
    using SafeERC20 for IERC20;

    // ----------------------------------------------------------------------------------------
    // Errors
    // ----------------------------------------------------------------------------------------

    /// @dev No payment is recorded under `paymentId`.
    error RefundUnknownPayment(bytes32 paymentId);
    /// @dev `paymentId` is recorded already.
    error RefundPaymentAlreadyRecorded(bytes32 paymentId);
    /// @dev The payment's terms are invalid: zero amount, zero parties, or a voucher part above the bill.
    error RefundInvalidPayment(bytes32 paymentId, uint256 paid, uint256 voucherPart);
    /// @dev `merchant` is not a registered merchant wallet.
    error RefundNotMerchantWallet(address merchant);
    /// @dev Only the payment's merchant refunds it; `caller` is not.
    error RefundNotMerchant(bytes32 paymentId, address caller);
    /// @dev Amounts must be positive.
    error RefundZeroAmount();
    /// @dev A refund of `asked` would bring payment `paymentId`'s refunds above the `paid` amount
    /// (`refunded` so far).
    error RefundExceedsPayment(bytes32 paymentId, uint256 paid, uint256 refunded, uint256 asked);
    /// @dev The merchant used refund reference `refundRef` already.
    error RefundDuplicateReference(bytes32 refundRef);

    // ----------------------------------------------------------------------------------------
    // Events
    // ----------------------------------------------------------------------------------------

    /// @dev The recorder recorded payment `paymentId`: `payer` paid `merchant` `paid` fen, of which a
    /// voucher programme paid `voucherPart` (returned to `voucherPayee` on a refund).
    event PaymentRecorded(
        bytes32 indexed paymentId,
        address indexed merchant,
        address indexed payer,
        uint256 paid,
        uint256 voucherPart,
        address voucherPayee
    );
    /// @dev `merchant` refunded `amount` of payment `paymentId` under `refundRef`: `cash` to the payer,
    /// `voucher` to the programme; `refundedTotal` is the payment's refunded total after it.
    event Refunded(
        bytes32 indexed paymentId,
        address indexed merchant,
        bytes32 indexed refundRef,
        address payer,
        uint256 amount,
        uint256 cash,
        uint256 voucher,
        uint256 refundedTotal
    );

    // ----------------------------------------------------------------------------------------
    // Storage
    // ----------------------------------------------------------------------------------------

    /// @notice The operator records payments.
    bytes32 public constant RECORDER_ROLE = keccak256("RECORDER_ROLE");

    struct Payment {
        address merchant;
        address payer;
        address voucherPayee;
        uint128 paid;
        uint128 voucherPart;
        uint128 refunded;
        uint128 voucherRefunded;
    }

    IERC20 public immutable cash;
    IWalletRegistry public immutable registry;

    mapping(bytes32 paymentId => Payment) private _payments;
    mapping(bytes32 refundRef => bool) private _references;
    /// @notice Every refund's total, in fen (cash and voucher parts).
    uint256 public totalRefunded;

    constructor(IERC20 cash_, IWalletRegistry registry_, address admin) {
        cash = cash_;
        registry = registry_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // ----------------------------------------------------------------------------------------
    // Recorder
    // ----------------------------------------------------------------------------------------

    /// @notice Record payment `paymentId`: `payer` paid `merchant` `paid` fen, `voucherPart` of it
    /// from a voucher programme whose refunds go to `voucherPayee` (zero when `voucherPart` is 0).
    function record(
        bytes32 paymentId,
        address merchant,
        address payer,
        uint128 paid,
        uint128 voucherPart,
        address voucherPayee
    ) external onlyRole(RECORDER_ROLE) {
        if (_payments[paymentId].merchant != address(0)) revert RefundPaymentAlreadyRecorded(paymentId);
        if (
            paid == 0 || voucherPart > paid || payer == address(0)
                || (voucherPart > 0 && voucherPayee == address(0))
        ) {
            revert RefundInvalidPayment(paymentId, paid, voucherPart);
        }
        if (registry.kindOf(merchant) != IWalletRegistry.Kind.Merchant) revert RefundNotMerchantWallet(merchant);
        _payments[paymentId] = Payment({
            merchant: merchant,
            payer: payer,
            voucherPayee: voucherPart > 0 ? voucherPayee : address(0),
            paid: paid,
            voucherPart: voucherPart,
            refunded: 0,
            voucherRefunded: 0
        });
        emit PaymentRecorded(paymentId, merchant, payer, paid, voucherPart, voucherPayee);
    }

    // ----------------------------------------------------------------------------------------
    // Merchant
    // ----------------------------------------------------------------------------------------

    /// @notice The payment's merchant refunds `amount` fen of payment `paymentId` under its own
    /// reference `refundRef` (each used once): the voucher share back to the programme, the rest to
    /// the payer. Never more in total than was paid.
    function refund(bytes32 paymentId, uint128 amount, bytes32 refundRef) external nonReentrant {
        Payment storage p = _payments[paymentId];
        if (p.merchant == address(0)) revert RefundUnknownPayment(paymentId);
        if (msg.sender != p.merchant) revert RefundNotMerchant(paymentId, msg.sender);
        if (amount == 0) revert RefundZeroAmount();
        if (_references[refundRef]) revert RefundDuplicateReference(refundRef);
        uint256 after_ = uint256(p.refunded) + amount;
        if (after_ > p.paid) revert RefundExceedsPayment(paymentId, p.paid, p.refunded, amount);

        // The voucher's share of everything refunded so far, minus what it got back already:
        // after_ <= paid, so voucherAfter <= voucherPart, and it never decreases as after_ grows.
        uint256 voucherAfter = after_ * p.voucherPart / p.paid;
        uint256 voucher = voucherAfter - p.voucherRefunded;
        // A difference of two floors: at most ceil(amount * voucherPart / paid) <= amount.
        uint256 cashPart = amount - voucher;

        _references[refundRef] = true;
        // after_ <= paid and voucherAfter <= voucherPart, both uint128.
        p.refunded = uint128(after_);
        p.voucherRefunded = uint128(voucherAfter);
        totalRefunded += amount;
        emit Refunded(paymentId, msg.sender, refundRef, p.payer, amount, cashPart, voucher, after_);
        if (cashPart > 0) {
            // slither-disable-next-line arbitrary-send-erc20 (from is the caller: the payment's merchant)
            cash.safeTransferFrom(msg.sender, p.payer, cashPart);
        }
        if (voucher > 0) {
            // slither-disable-next-line arbitrary-send-erc20 (from is the caller: the payment's merchant)
            cash.safeTransferFrom(msg.sender, p.voucherPayee, voucher);
        }
    }

    // ----------------------------------------------------------------------------------------
    // Views
    // ----------------------------------------------------------------------------------------

    /// @notice Payment `paymentId` as recorded, with what was refunded of it.
    function paymentOf(bytes32 paymentId) external view returns (Payment memory) {
        Payment memory p = _payments[paymentId];
        if (p.merchant == address(0)) revert RefundUnknownPayment(paymentId);
        return p;
    }

    /// @notice Whether `paymentId` is recorded.
    function isRecorded(bytes32 paymentId) external view returns (bool) {
        return _payments[paymentId].merchant != address(0);
    }

    /// @notice Whether refund reference `refundRef` was used.
    function isReferenceUsed(bytes32 refundRef) external view returns (bool) {
        return _references[refundRef];
    }
}
