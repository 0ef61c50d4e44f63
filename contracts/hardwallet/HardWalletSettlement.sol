// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IWalletRegistry, requireSuccessor, RecoveryNothingHeld} from "../token/IWalletRegistry.sol";
import {IDigitalCash, PAY_TO_MERCHANT} from "../token/IDigitalCash.sol";
import {DigitalCash} from "../token/DigitalCash.sol";
import {CardPurses} from "./CardPurses.sol";

/// @title HardWalletSettlement
/// @notice Settlement of offline hard-wallet payments (硬钱包): IC cards, SIM-card wallets and
/// wearables for people for whom phone payment is hard. The operator registers a card (its public
/// address and form) to a holder's personal wallet; the holder loads value from that wallet into the
/// card's *reserve*, held here. At the counter the card signs an EIP-712 `Payment` offline (card,
/// merchant, amount, counter, time; domain bound to this chain and this contract); terminals upload the
/// payments in batches and each payment is paid to its merchant from the card's reserve.
///
/// Batches never revert for one bad payment: every payment gets exactly one outcome event,
/// `PaymentSettled`, `PaymentDuplicate`, `PaymentRejected(reason)` or `PaymentShortfall`, so a
/// terminal learns the fate of each one, and uploading the same batch again changes nothing (its
/// payments are duplicates by then). Only a settler uploads (SETTLER_ROLE: the gateway, the operator),
/// so every settled payment is one the services recorded (and can refund); a payment pays only the
/// merchant the card signed for, from that card's reserve, once.
///
/// - **Counters**: each card signature carries the card's monotonic counter. Payments from several
///   terminals arrive out of order, so used counters are kept in a bitmap per card (not "strictly
///   increasing"): any unused counter settles once, a used one is a duplicate.
/// - **Offline cap**: no single offline payment may exceed `offlineCap` (checked against the cap in
///   force at settlement; a genuine card refuses to sign above its own cap).
/// - **Clones**: a card that signed more than its reserve (a cloned or tampered card) has the covered
///   part settled, the rest recorded as its `shortfall` and is blocked: later payments of it only add
///   to the shortfall. Nothing is paid twice and no reserve goes negative.
/// - **Signed times**: the signed `time` is the terminal's clock, which the contract cannot check, so
///   it refuses the times that cannot be true (`PaymentRejected`, counter unused, nothing moved):
///   after `block.timestamp + MAX_CLOCK_SKEW` (`TimeInFuture`), before the card's registration
///   (`TimeBeforeRegistration`: a card holds nothing before it is registered), and for a lost card
///   before its `signedFrom` (`TimeBeforeUploadWindow`, below). The signature covers the time, so
///   such a payment cannot be re-dated: it is final for the terminal, except that the same
///   future-dated payment would pass once the chain's clock is within MAX_CLOCK_SKEW of its time.
/// - **Lost cards**: the holder (or the operator for them) reports the card lost. Payments signed
///   before the report and uploaded within `gracePeriod` (fixed per card at the report) still settle;
///   after that anyone may return what remains of the reserve to the holder's wallet. A thief with
///   the card and a forged terminal can have it sign payments after the report and back-date them.
///   Terminals must upload within `uploadWindow` of signing, so a payment signed before
///   `lostAt - uploadWindow` would have arrived before the report: one that arrives after it is
///   refused (`signedFrom`, fixed per card at the report like the grace period). What remains: a
///   thief may still back-date into `[signedFrom, lostAt]` and upload within the grace period, any
///   number of payments (each within the offline cap) until the reserve is spent; the window
///   narrows the span of dates the holder must dispute, not the amount, which only the reserve
///   bounds. Future-dating gains a thief nothing over back-dating: such a payment is refused until
///   the chain's clock nears its time, and a time after the report is `CardLost`.
///
/// Card payments are paid by the token's one family policy (`payFor`, owner = the card holder,
/// payee = a merchant only). Rejected payments consume no counter and move nothing: a payment refused
/// because its merchant cannot receive now (frozen, at a cap: `MerchantRefused`), because its payee is
/// not a merchant wallet (`PayeeNotMerchant`) or because the holder is frozen or has holds its own
/// wallet does not cover (`HolderRefused`, detail `WalletFrozen` / `AmountFrozenInFamily`), each
/// with the token's error selector, can be uploaded again later; a frozen holder's payments settle
/// once the regulator unfreezes the holder (a held holder's once the hold is lifted or covered; the
/// reserve is the holder's money, so a hold reaches it), if still within a lost card's grace period.
///
/// Earmarked purses (`CardPurses`: elderly-care vouchers, meal allowances) sit beside the reserve:
/// a payment at a merchant a purse allows spends the purse first, then cash; `settled` and the
/// reserve count cash only, the purses keep their own books.
///
/// @dev Invariants (tested): per card, loaded == settled + refunded + reserve, reserve never negative;
/// this contract's token balance == totalReserve + totalEarmarked, totalReserve == sum of reserves; each (card, counter) pays at most
/// once; a card's shortfall is exactly the unpaid part of its accepted over-reserve payments.
contract HardWalletSettlement is AccessControl, ReentrancyGuard, EIP712, CardPurses {
    using SafeERC20 for IERC20;

    // ----------------------------------------------------------------------------------------
    // Errors
    // ----------------------------------------------------------------------------------------

    /// @dev The card address cannot be zero.
    error HardWalletZeroCard();
    /// @dev `card` is registered already.
    error HardWalletCardExists(address card);
    /// @dev `card` is not registered.
    error HardWalletUnknownCard(address card);
    /// @dev `holder` is not a registered personal wallet.
    error HardWalletInvalidHolder(address holder);
    /// @dev `account` is not the holder of `card` (nor the operator, where the operator may act).
    error HardWalletNotHolder(address card, address account);
    /// @dev The operation needs `card` in status `expected`; it is in `actual`.
    error HardWalletWrongStatus(address card, Status expected, Status actual);
    /// @dev Amounts must be positive.
    error HardWalletZeroAmount();
    /// @dev Loading `amount` would bring the reserve of `card` to `reserveAfter`, above `cap`.
    error HardWalletReserveCapExceeded(address card, uint256 cap, uint256 reserveAfter);
    /// @dev `card` was reported lost; its grace period ends at `graceEndsAt`.
    error HardWalletGraceNotOver(address card, uint64 graceEndsAt);
    /// @dev A batch holds 1..`max` payments.
    error HardWalletBatchSize(uint256 size, uint256 max);
    /// @dev Limits out of range: 0 < offlineCap <= reserveCap < 2**128, grace in [MIN_GRACE, MAX_GRACE].
    error HardWalletInvalidLimits(uint256 offlineCap, uint256 reserveCap, uint64 gracePeriod);
    /// @dev The upload window `uploadWindow` is outside [`min`, `max`].
    error HardWalletInvalidUploadWindow(uint64 uploadWindow, uint64 min, uint64 max);
    /// @dev The token refused a payout without saying why (e.g. out of gas): the batch reverts whole.
    error HardWalletTransferFailed(address card, uint64 counter);

    // ----------------------------------------------------------------------------------------
    // Events
    // ----------------------------------------------------------------------------------------

    /// @dev The operator registered `card` (its public address) to `holder`'s wallet.
    event CardRegistered(address indexed card, address indexed holder, Form form);
    /// @dev `holder` loaded `amount` into the reserve of `card`, now `reserve`.
    event CardLoaded(address indexed card, address indexed holder, uint256 amount, uint256 reserve);
    /// @dev Payment `counter` of `card` paid `amount` to `merchant`; it was signed at `time`.
    event PaymentSettled(
        address indexed card, uint64 counter, address indexed merchant, uint256 amount, uint64 time
    );
    /// @dev Payment `counter` of `card` had been processed already: nothing moved.
    event PaymentDuplicate(address indexed card, uint64 counter, address indexed merchant, uint256 amount);
    /// @dev Payment `counter` of `card` was refused for `reason` (`detail`: the token's error selector
    /// for MerchantRefused, PayeeNotMerchant and HolderRefused). Nothing moved and the counter stays unused.
    event PaymentRejected(
        address indexed card, uint64 counter, address indexed merchant, uint256 amount, Reason reason, bytes4 detail
    );
    /// @dev Payment `counter` of `card` was signed beyond its reserve: `covered` went to `merchant`, the
    /// rest (`amount - covered`) is recorded as the card's shortfall.
    event PaymentShortfall(
        address indexed card, uint64 counter, address indexed merchant, uint256 amount, uint256 covered
    );
    /// @dev `card` signed beyond its reserve and was blocked; its shortfall is `shortfall` so far.
    event CardBlocked(address indexed card, uint256 shortfall);
    /// @dev `card` was reported lost by `by`: no payment signed after `lostAt` or before `signedFrom`
    /// (`lostAt - uploadWindow`) settles, and nothing settles after `graceEndsAt`.
    event CardReportedLost(
        address indexed card, address indexed by, uint64 lostAt, uint64 graceEndsAt, uint64 signedFrom
    );
    /// @dev After the grace period, `amount` (the rest of the reserve) went back to `holder`; card closed.
    event ReserveReturned(address indexed card, address indexed holder, uint256 amount);
    /// @dev `card` (not closed) of the retired `lost` wallet is now `successor`'s, its `reserve` with it.
    event CardRecovered(address indexed card, address indexed lost, address indexed successor, uint256 reserve);
    /// @dev The operator changed the limits.
    event LimitsChanged(uint256 offlineCap, uint256 reserveCap, uint64 gracePeriod);
    /// @dev The operator changed how long terminals may hold a payment before uploading it.
    event UploadWindowChanged(uint64 uploadWindow);
    /// @dev A batch of `size` payments was processed by `submitter`, with these outcome counts.
    event BatchProcessed(
        address indexed submitter, uint256 size, uint256 settled, uint256 duplicates, uint256 rejected, uint256 shortfalls
    );

    // ----------------------------------------------------------------------------------------
    // Types and storage
    // ----------------------------------------------------------------------------------------

    /// @notice Registers cards, reports them lost for holders, sets the limits.
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    /// @notice Settles uploaded card payments (the gateway, and the operator for payment codes
    /// paid by a card): a payment settled by anyone else would be unknown to the services (never
    /// refundable), and outsiders could flood the outcome events.
    bytes32 public constant SETTLER_ROLE = keccak256("SETTLER_ROLE");
    /// @notice Most payments in one batch (about 29k gas each when warm; a full batch about 2.9M gas).
    uint256 public constant MAX_BATCH = 100;
    /// @notice Bounds of the grace period the operator may set.
    uint64 public constant MIN_GRACE = 1 hours;
    uint64 public constant MAX_GRACE = 30 days;
    /// @notice How far ahead of the chain's clock a signed time may be (a terminal's clock runs a
    /// little fast, and the block's time lags the wall clock by up to a block): a payment signed
    /// later than `block.timestamp + MAX_CLOCK_SKEW` is refused (`TimeInFuture`).
    uint64 public constant MAX_CLOCK_SKEW = 1 hours;
    /// @notice Bounds of the upload window the operator may set.
    uint64 public constant MIN_UPLOAD_WINDOW = 1 hours;
    uint64 public constant MAX_UPLOAD_WINDOW = 30 days;
    /// @notice What a card signs for each offline payment.
    bytes32 public constant PAYMENT_TYPEHASH =
        keccak256("Payment(address card,address merchant,uint256 amount,uint64 counter,uint64 time)");

    /// @dev Card forms (mirrored by wallets.hardwallet.CardForm).
    enum Form {
        Card,
        Sim,
        Wearable
    }

    enum Status {
        None,
        Active,
        Blocked,
        Lost,
        Closed
    }

    /// @dev Why a payment was rejected.
    enum Reason {
        None,
        UnknownCard,
        InvalidSignature,
        ZeroAmount,
        OverOfflineCap,
        CardLost, // signed after the loss report
        GraceExpired, // signed before the report, uploaded after the grace period
        CardClosed,
        MerchantRefused, // the token refused the merchant (frozen, at its balance cap): retry later
        HolderRefused, // the token refused the holder (frozen, uncovered hold): settles once unfrozen / covered
        PayeeNotMerchant, // the payee is not a merchant wallet: card payments go to merchants only
        TimeInFuture, // signed later than block.timestamp + MAX_CLOCK_SKEW
        TimeBeforeRegistration, // signed before the card was registered
        TimeBeforeUploadWindow // a lost card's payment signed before lostAt - uploadWindow (its signedFrom)
    }

    /// @dev Five slots, laid out for `settle`: a payment reads slot 0 (holder, status, registeredAt),
    /// a lost card's slot 1 too, and writes slots 2 (settled, reserve) and 3 (shortfall).
    struct Card {
        address holder;
        Form form;
        Status status;
        uint64 registeredAt; // block time of `registerCard`: no payment is signed before it
        uint64 lostAt;
        uint64 graceEndsAt;
        uint64 signedFrom; // lost: lostAt - uploadWindow at the report; earlier signed times are refused
        uint128 settled;
        uint128 reserve;
        uint128 shortfall;
        uint128 loaded;
        uint128 refunded;
    }

    /// @dev One offline payment as uploaded: the signed fields and the card's signature.
    struct Payment {
        address card;
        address merchant;
        uint256 amount;
        uint64 counter;
        uint64 time;
        bytes signature;
    }

    IERC20 public immutable cash;
    IWalletRegistry public immutable registry;

    /// @notice Largest single offline payment, in fen (default 1,000 yuan).
    uint256 public offlineCap = 1_000_00;
    /// @notice Largest reserve of one card, in fen (default 10,000 yuan, the anonymous tier's balance cap).
    uint256 public reserveCap = 10_000_00;
    /// @notice How long after a loss report payments signed before it may still be uploaded.
    uint64 public gracePeriod = 3 days;
    /// @notice How long a terminal may hold a payment before uploading it: a lost card's payments
    /// signed more than this before the report are refused (`TimeBeforeUploadWindow`). A setting
    /// rather than a constant, as how often terminals come online (a bus depot, a village shop) is
    /// the operator's to know; bounded by [MIN_UPLOAD_WINDOW, MAX_UPLOAD_WINDOW] and fixed per card
    /// at its report, like the grace period. Shorter narrows what a thief may back-date into;
    /// shorter than a terminal's real upload interval refuses genuine payments of a lost card.
    uint64 public uploadWindow = 3 days;

    mapping(address card => Card) private _cards;
    mapping(address card => mapping(uint256 word => uint256)) private _usedCounters;

    uint256 public totalLoaded;
    uint256 public totalSettled;
    uint256 public totalRefunded;
    uint256 public totalReserve;
    uint256 public totalShortfall;

    constructor(IERC20 cash_, IWalletRegistry registry_, address admin) EIP712("XcpayHardWallet", "1") {
        cash = cash_;
        registry = registry_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        emit LimitsChanged(offlineCap, reserveCap, gracePeriod);
        emit UploadWindowChanged(uploadWindow);
    }

    // ----------------------------------------------------------------------------------------
    // Operator
    // ----------------------------------------------------------------------------------------

    /// @notice Register `card` (the address of the key inside its secure element) to the personal
    /// wallet `holder`, with its form.
    function registerCard(address card, address holder, Form form) external onlyRole(OPERATOR_ROLE) {
        if (card == address(0)) revert HardWalletZeroCard();
        if (_cards[card].status != Status.None) revert HardWalletCardExists(card);
        if (registry.kindOf(holder) != IWalletRegistry.Kind.Personal) revert HardWalletInvalidHolder(holder);
        Card storage c = _cards[card];
        c.holder = holder;
        c.form = form;
        c.status = Status.Active;
        c.registeredAt = uint64(block.timestamp);
        emit CardRegistered(card, holder, form);
    }

    /// @notice Set the offline single-payment cap, the per-card reserve cap (fen) and the grace period
    /// after a loss report. Cards reported lost already keep the grace period they got.
    function setLimits(uint256 offlineCap_, uint256 reserveCap_, uint64 gracePeriod_) external onlyRole(OPERATOR_ROLE) {
        if (
            offlineCap_ == 0 || reserveCap_ < offlineCap_ || reserveCap_ > type(uint128).max || gracePeriod_ < MIN_GRACE
                || gracePeriod_ > MAX_GRACE
        ) {
            revert HardWalletInvalidLimits(offlineCap_, reserveCap_, gracePeriod_);
        }
        offlineCap = offlineCap_;
        reserveCap = reserveCap_;
        gracePeriod = gracePeriod_;
        emit LimitsChanged(offlineCap_, reserveCap_, gracePeriod_);
    }

    /// @notice Set how long a terminal may hold a payment before uploading it (see `uploadWindow`).
    /// Cards reported lost already keep the `signedFrom` they got.
    function setUploadWindow(uint64 uploadWindow_) external onlyRole(OPERATOR_ROLE) {
        if (uploadWindow_ < MIN_UPLOAD_WINDOW || uploadWindow_ > MAX_UPLOAD_WINDOW) {
            revert HardWalletInvalidUploadWindow(uploadWindow_, MIN_UPLOAD_WINDOW, MAX_UPLOAD_WINDOW);
        }
        uploadWindow = uploadWindow_;
        emit UploadWindowChanged(uploadWindow_);
    }

    // ----------------------------------------------------------------------------------------
    // Holder
    // ----------------------------------------------------------------------------------------

    /// @notice The holder moves `amount` fen from their wallet into the reserve of their active `card`.
    /// The holder must have approved this contract; the token applies the holder's tier caps (payment
    /// and daily), this contract the per-card `reserveCap`.
    function load(address card, uint256 amount) external nonReentrant {
        Card storage c = _known(card);
        if (msg.sender != c.holder) revert HardWalletNotHolder(card, msg.sender);
        if (c.status != Status.Active) revert HardWalletWrongStatus(card, Status.Active, c.status);
        if (amount == 0) revert HardWalletZeroAmount();
        uint256 reserveAfter = c.reserve + amount;
        if (reserveAfter > reserveCap) revert HardWalletReserveCapExceeded(card, reserveCap, reserveAfter);
        // reserveAfter <= reserveCap < 2**128 (setLimits), so the casts below cannot truncate.
        c.reserve = uint128(reserveAfter);
        c.loaded += uint128(amount);
        totalLoaded += amount;
        totalReserve += amount;
        emit CardLoaded(card, msg.sender, amount, reserveAfter);
        cash.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice The holder (or the operator on the holder's call) reports `card` lost: it is blocked
    /// for payments signed from now on; payments signed before and uploaded within the grace period
    /// still settle. A blocked (cloned) card can be reported lost as well.
    function reportLost(address card) external {
        Card storage c = _known(card);
        if (msg.sender != c.holder && !hasRole(OPERATOR_ROLE, msg.sender)) revert HardWalletNotHolder(card, msg.sender);
        if (c.status != Status.Active && c.status != Status.Blocked) {
            revert HardWalletWrongStatus(card, Status.Active, c.status);
        }
        uint64 nowTs = uint64(block.timestamp);
        uint64 graceEndsAt = nowTs + gracePeriod;
        uint64 window = uploadWindow;
        uint64 signedFrom = nowTs > window ? nowTs - window : 0;
        c.status = Status.Lost;
        c.lostAt = nowTs;
        c.graceEndsAt = graceEndsAt;
        c.signedFrom = signedFrom;
        emit CardReportedLost(card, msg.sender, nowTs, graceEndsAt, signedFrom);
    }

    /// @notice After the grace period of lost `card`, return what remains of its reserve to the
    /// holder's wallet and close the card. Anyone may call; the money only goes to the holder. Reverts
    /// with the token's error if the holder cannot receive now (frozen, at a cap): retry later.
    function returnReserve(address card) external nonReentrant {
        Card storage c = _known(card);
        if (c.status != Status.Lost) revert HardWalletWrongStatus(card, Status.Lost, c.status);
        if (block.timestamp <= c.graceEndsAt) revert HardWalletGraceNotOver(card, c.graceEndsAt);
        uint128 amount = c.reserve;
        c.reserve = 0;
        c.refunded += amount;
        c.status = Status.Closed;
        totalReserve -= amount;
        totalRefunded += amount;
        emit ReserveReturned(card, c.holder, amount);
        if (amount > 0) IDigitalCash(address(cash)).payFor(c.holder, c.holder, amount, 0);
    }

    /// @notice `card` of the retired `lost` wallet (not closed) becomes `successor`'s, which must be
    /// `lost`'s registered successor (`RecoveryWrongSuccessor`): its reserve, status, counters and
    /// grace period carry on, so payments the card signed settle from it again (they were
    /// `HolderRefused` while the holder was retired) and a lost card's rest returns to the successor.
    /// Anyone may call; once (`RecoveryNothingHeld` when `lost` is not the holder).
    function recoverCard(address card, address lost, address successor) external {
        Card storage c = _known(card);
        if (c.status == Status.Closed) revert HardWalletWrongStatus(card, Status.Active, c.status);
        requireSuccessor(registry, lost, successor);
        if (c.holder != lost) revert RecoveryNothingHeld(lost);
        c.holder = successor;
        emit CardRecovered(card, lost, successor, c.reserve);
    }

    // ----------------------------------------------------------------------------------------
    // Terminals (anyone): settlement
    // ----------------------------------------------------------------------------------------

    /// @notice Settle up to MAX_BATCH offline payments (SETTLER_ROLE). Each payment gets one outcome
    /// event; only a malformed batch (empty, too large) or a token that fails without an error reverts.
    function settle(Payment[] calldata payments) external nonReentrant onlyRole(SETTLER_ROLE) {
        uint256 n = payments.length;
        if (n == 0 || n > MAX_BATCH) revert HardWalletBatchSize(n, MAX_BATCH);
        // slither-disable-next-line uninitialized-local (a memory array starts at zero: the counts)
        uint256[4] memory counts; // settled, duplicates, rejected, shortfalls
        for (uint256 i = 0; i < n; ++i) {
            ++counts[_settleOne(payments[i])];
        }
        emit BatchProcessed(msg.sender, n, counts[0], counts[1], counts[2], counts[3]);
    }

    // ----------------------------------------------------------------------------------------
    // Views
    // ----------------------------------------------------------------------------------------

    /// @notice `card` as stored.
    function cardOf(address card) external view returns (Card memory) {
        return _known(card);
    }

    /// @notice Whether payment `counter` of `card` has been settled (or recorded as a shortfall).
    function isCounterUsed(address card, uint64 counter) public view returns (bool) {
        return _usedCounters[card][counter >> 8] & (1 << (counter & 0xff)) != 0;
    }

    /// @notice The EIP-712 digest a card signs for this payment (bound to this chain and contract).
    function paymentDigest(address card, address merchant, uint256 amount, uint64 counter, uint64 time)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(PAYMENT_TYPEHASH, card, merchant, amount, counter, time)));
    }

    /// @notice The EIP-712 domain separator (chain id and this contract's address included).
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ----------------------------------------------------------------------------------------
    // Internal
    // ----------------------------------------------------------------------------------------

    function _purseToken() internal view override returns (IERC20) {
        return cash;
    }

    function _purseRegistry() internal view override returns (IWalletRegistry) {
        return registry;
    }

    function _purseHolder(address card, bool active) internal view override returns (address) {
        Card storage c = _known(card);
        if (active && c.status != Status.Active) revert HardWalletWrongStatus(card, Status.Active, c.status);
        return c.holder;
    }

    function _known(address card) private view returns (Card storage c) {
        c = _cards[card];
        if (c.status == Status.None) revert HardWalletUnknownCard(card);
    }

    /// @dev One payment; returns the index of its outcome in `settle`'s counts.
    function _settleOne(Payment calldata p) private returns (uint256) {
        Card storage c = _cards[p.card];
        if (c.status == Status.None) return _reject(p, Reason.UnknownCard, bytes4(0));
        {
            bytes32 digest = paymentDigest(p.card, p.merchant, p.amount, p.counter, p.time);
            // slither-disable-next-line unused-return (the third value only details `err`, which is checked)
            (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(digest, p.signature);
            if (err != ECDSA.RecoverError.NoError || signer != p.card) {
                return _reject(p, Reason.InvalidSignature, bytes4(0));
            }
        }
        if (isCounterUsed(p.card, p.counter)) {
            emit PaymentDuplicate(p.card, p.counter, p.merchant, p.amount);
            return 1;
        }
        if (p.amount == 0) return _reject(p, Reason.ZeroAmount, bytes4(0));
        if (p.amount > offlineCap) return _reject(p, Reason.OverOfflineCap, bytes4(0));
        Status status = c.status;
        {
            Reason refusal = _timeOrStatusRefusal(c, p.time, status);
            if (refusal != Reason.None) return _reject(p, refusal, bytes4(0));
        }

        // Effects first: the counter is used, allowed purses pay first (not a blocked card's), the
        // cash part leaves the reserve, an uncovered part is a shortfall that blocks an active card.
        // amount <= offlineCap <= reserveCap < 2**128 and fromCash <= reserve: no truncation, no underflow.
        // slither-disable-next-line uninitialized-local (zero: nothing taken from purses)
        uint128[MAX_PURSES] memory takes;
        uint128 earmarked = 0;
        if (status != Status.Blocked) (earmarked, takes) = _drawPurses(p.card, p.merchant, uint128(p.amount));
        uint128 fromCash = uint128(p.amount) - earmarked;
        if (fromCash > c.reserve) fromCash = c.reserve;
        uint128 uncovered = uint128(p.amount) - earmarked - fromCash;
        bool blocks = uncovered > 0 && status == Status.Active;
        _usedCounters[p.card][p.counter >> 8] |= 1 << (p.counter & 0xff);
        c.reserve -= fromCash;
        c.settled += fromCash;
        totalReserve -= fromCash;
        totalSettled += fromCash;
        c.shortfall += uncovered;
        totalShortfall += uncovered;
        if (blocks) c.status = Status.Blocked;

        if (earmarked + fromCash > 0) {
            // slither-disable-next-line reentrancy-no-eth (state is written after the call only to undo a refused payment; our own DigitalCash has no hooks; settle is nonReentrant)
            (bool ok, bytes memory ret) = address(cash).call(
                abi.encodeCall(IDigitalCash.payFor, (c.holder, p.merchant, earmarked + fromCash, PAY_TO_MERCHANT))
            );
            if (!ok || (ret.length != 0 && !abi.decode(ret, (bool)))) {
                if (ret.length < 4) revert HardWalletTransferFailed(p.card, p.counter);
                // The merchant cannot receive now: undo all, leave the counter unused for a later upload.
                _usedCounters[p.card][p.counter >> 8] &= ~(1 << (p.counter & 0xff));
                c.reserve += fromCash;
                c.settled -= fromCash;
                totalReserve += fromCash;
                totalSettled -= fromCash;
                _undrawPurses(p.card, earmarked, takes);
                c.shortfall -= uncovered;
                totalShortfall -= uncovered;
                c.status = status;
                return _reject(p, _refusal(ret, c.holder), bytes4(ret));
            }
        }
        if (earmarked > 0) _reportPurses(p.card, p.counter, p.merchant, takes);
        if (uncovered == 0) {
            emit PaymentSettled(p.card, p.counter, p.merchant, p.amount, p.time);
            return 0;
        }
        emit PaymentShortfall(p.card, p.counter, p.merchant, p.amount, earmarked + fromCash);
        if (blocks) emit CardBlocked(p.card, c.shortfall);
        return 3;
    }

    /// @dev Why a payment signed at `time` cannot settle now, before anything moves (`Reason.None`: it
    /// may): first the times that cannot be true (the terminal's clock is all the contract has; slot 0
    /// is warm from the status check), then the card's status, then a lost card's times and grace.
    function _timeOrStatusRefusal(Card storage c, uint64 time, Status status) private view returns (Reason) {
        unchecked {
            // block.timestamp is far below 2**256 - MAX_CLOCK_SKEW on any real chain
            if (time > block.timestamp + MAX_CLOCK_SKEW) return Reason.TimeInFuture;
        }
        if (time < c.registeredAt) return Reason.TimeBeforeRegistration;
        if (status == Status.Closed) return Reason.CardClosed;
        if (status == Status.Lost) {
            if (time > c.lostAt) return Reason.CardLost;
            if (time < c.signedFrom) return Reason.TimeBeforeUploadWindow;
            if (block.timestamp > c.graceEndsAt) return Reason.GraceExpired;
        }
        return Reason.None;
    }

    /// @dev Which party the token's refusal `ret` (a custom error, at least 4 bytes) is about: the
    /// holder (`WalletFrozen`/`WalletNotRegistered`/`AmountFrozenInFamily` naming the holder), the
    /// payee's kind, or the merchant.
    function _refusal(bytes memory ret, address holder) private pure returns (Reason) {
        bytes4 selector = bytes4(ret);
        if (selector == DigitalCash.PayeeNotMerchant.selector) return Reason.PayeeNotMerchant;
        if (
            (
                selector == DigitalCash.WalletFrozen.selector || selector == DigitalCash.WalletNotRegistered.selector
                    || selector == DigitalCash.AmountFrozenInFamily.selector
            ) && ret.length >= 36
        ) {
            address wallet;
            // slither-disable-next-line assembly (reads the error's first argument, an address, after the selector)
            assembly ("memory-safe") {
                wallet := mload(add(ret, 36))
            }
            if (wallet == holder) return Reason.HolderRefused;
        }
        return Reason.MerchantRefused;
    }

    function _reject(Payment calldata p, Reason reason, bytes4 detail) private returns (uint256) {
        emit PaymentRejected(p.card, p.counter, p.merchant, p.amount, reason, detail);
        return 2;
    }
}
