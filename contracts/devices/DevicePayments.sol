// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IWalletRegistry} from "../token/IWalletRegistry.sol";
import {IDigitalCash, PAY_TO_MERCHANT} from "../token/IDigitalCash.sol";
import {HardWalletSettlement} from "../hardwallet/HardWalletSettlement.sol";

/// @title DevicePayments
/// @notice Unattended devices (无人值守设备): vending machines (可乐机、咖啡机) and recycling bins
/// (再生资源回收箱), driven by the gateway for the devices' terminals.
///
/// - **Pre-authorisation**: at a vending machine the holder's card (a hard wallet registered in
///   `HardWalletSettlement`) signs an EIP-712 `PreAuth` (card, merchant, maximum, counter, time;
///   domain bound to this chain and this contract). Uploaded by the gateway, it moves the maximum
///   from the holder's wallet into this contract (the holder approved it once, as for quick-pay).
///   The machine then **completes** with the real amount (at most the maximum: the merchant gets
///   it, the rest goes back to the holder) or **releases** the whole on a failed dispense; each
///   pre-authorisation is completed or released exactly once. After its deadline (`preAuthTtl`
///   from the upload) it can no longer be completed and anyone may release it to the holder, so a
///   holder is never charged for nothing even if the machine never reports back. Each (card,
///   counter) pre-authorises once, as a card payment settles once.
/// - **Recycling payouts**: an operator's programme (sponsor, the recycling merchant, a daily cap
///   per person) is funded from the sponsor's wallet; a bin pays a person for what they dropped
///   (to their wallet, or to the holder of the card they tapped), from the programme's budget,
///   at most `dailyCap` per person per Beijing day, each bin reference once.
///
/// @dev Invariants (tested): authorized == captured + released + open; funded == paid + returned +
/// budget; this contract's token balance >= totalOpen + totalBudget (equal but for cash sent to it
/// directly); each (card, counter) pre-authorises at most once; a pre-authorisation is completed
/// or released at most once and never captures above its maximum; per (programme, person, day)
/// paid <= dailyCap; each (programme, reference) pays at most once.
contract DevicePayments is AccessControl, ReentrancyGuard, EIP712 {
    using SafeERC20 for IERC20;

    // ----------------------------------------------------------------------------------------
    // Errors
    // ----------------------------------------------------------------------------------------

    /// @dev Amounts must be positive.
    error DeviceZeroAmount();
    /// @dev `card` is not registered in the settlement contract.
    error DeviceUnknownCard(address card);
    /// @dev `card` is not active (status as in HardWalletSettlement.Status): no pre-authorisation.
    error DeviceCardNotActive(address card, uint8 status);
    /// @dev The signature is not `card`'s over this pre-authorisation (forged, another chain or contract).
    error DeviceInvalidSignature(address card);
    /// @dev Counter `counter` of `card` pre-authorised already.
    error DeviceCounterUsed(address card, uint64 counter);
    /// @dev `merchant` is not a registered merchant wallet.
    error DeviceInvalidMerchant(address merchant);
    /// @dev The maximum `amount` is above the pre-authorisation cap `cap`.
    error DevicePreAuthAboveCap(uint256 cap, uint256 amount);
    /// @dev No pre-authorisation has this id.
    error DeviceUnknownPreAuth(uint256 id);
    /// @dev Pre-authorisation `id` is not open (completed or released already): `status`.
    error DevicePreAuthNotOpen(uint256 id, PreAuthStatus status);
    /// @dev Pre-authorisation `id` expired at `expiresAt`: it can only be released.
    error DevicePreAuthExpired(uint256 id, uint64 expiresAt);
    /// @dev Pre-authorisation `id` runs until `expiresAt`: only the device role releases it before.
    error DevicePreAuthNotExpired(uint256 id, uint64 expiresAt);
    /// @dev Completing `id` with `amount` is above what was authorised (`authorized`).
    error DeviceCompletionAboveAuthorized(uint256 id, uint256 authorized, uint256 amount);
    /// @dev Limits out of range: MIN_TTL <= ttl <= MAX_TTL, 0 < preAuthCap < 2**128.
    error DeviceInvalidLimits(uint64 ttl, uint256 preAuthCap);
    /// @dev The sponsor must be a registered wallet and the daily cap positive.
    error DeviceInvalidProgramme(address sponsor, address merchant, uint256 dailyCap);
    /// @dev No programme has this id.
    error DeviceUnknownProgramme(uint256 id);
    /// @dev Programme `id` is closed.
    error DeviceProgrammeClosed(uint256 id);
    /// @dev Only the programme's sponsor funds it.
    error DeviceNotSponsor(uint256 id, address account);
    /// @dev Programme `id` holds `budget`, less than `amount`.
    error DeviceBudgetExceeded(uint256 id, uint256 budget, uint256 amount);
    /// @dev `to` is neither a registered personal wallet nor a card of one.
    error DeviceInvalidPerson(address to);
    /// @dev The payout would bring `person`'s total today in programme `id` to `paidAfter`, above `cap`.
    error DeviceDailyCapExceeded(uint256 id, address person, uint256 cap, uint256 paidAfter);
    /// @dev Programme `id` paid bin reference `ref` already.
    error DevicePayoutDuplicate(uint256 id, bytes32 ref);

    // ----------------------------------------------------------------------------------------
    // Events
    // ----------------------------------------------------------------------------------------

    /// @dev `card` (of `holder`) pre-authorised up to `amount` at `merchant`; held until `expiresAt`.
    event PreAuthorized(
        uint256 indexed id,
        address indexed card,
        address indexed holder,
        address merchant,
        uint256 amount,
        uint64 counter,
        uint64 expiresAt
    );
    /// @dev Pre-authorisation `id` was completed: `amount` to `merchant`, `returned` back to the holder.
    event PreAuthCompleted(uint256 indexed id, address indexed merchant, uint256 amount, uint256 returned);
    /// @dev Pre-authorisation `id` was released by `by`: `amount` back to `holder` (`expired`: after its deadline).
    event PreAuthReleased(uint256 indexed id, address indexed holder, uint256 amount, address by, bool expired);
    /// @dev Recycling programme `id` of `sponsor` for `merchant`'s bins, at most `dailyCap` per person a day.
    event RecyclingProgrammeCreated(uint256 indexed id, address indexed sponsor, address indexed merchant, uint256 dailyCap);
    /// @dev `sponsor` funded programme `id` with `amount`; its budget is now `budget`.
    event RecyclingProgrammeFunded(uint256 indexed id, address indexed sponsor, uint256 amount, uint256 budget);
    /// @dev Programme `id` paid `amount` to `person` (through `card`, or zero) for bin reference `ref`.
    event RecyclingPaid(
        uint256 indexed id, address indexed person, bytes32 indexed ref, address card, uint256 amount, uint256 paidToday
    );
    /// @dev Programme `id` was closed; `returned` went back to its sponsor.
    event RecyclingProgrammeClosed(uint256 indexed id, uint256 returned);
    /// @dev The operator changed the limits.
    event DeviceLimitsChanged(uint64 preAuthTtl, uint256 preAuthCap);

    // ----------------------------------------------------------------------------------------
    // Types and storage
    // ----------------------------------------------------------------------------------------

    /// @notice The gateway: uploads pre-authorisations, completes and releases them, pays bins.
    bytes32 public constant DEVICE_ROLE = keccak256("DEVICE_ROLE");
    /// @notice Creates and closes programmes, sets the limits.
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    /// @notice Bounds of the pre-authorisation deadline.
    uint64 public constant MIN_TTL = 1 minutes;
    uint64 public constant MAX_TTL = 7 days;
    /// @notice What a card signs for a pre-authorisation.
    bytes32 public constant PREAUTH_TYPEHASH =
        keccak256("PreAuth(address card,address merchant,uint256 maxAmount,uint64 counter,uint64 time)");

    /// @dev Days start at midnight Beijing time (UTC+8), as in DigitalCash.
    uint256 private constant _DAY_OFFSET = 8 hours;

    enum PreAuthStatus {
        None,
        Open,
        Completed,
        Released
    }

    struct PreAuth {
        address card;
        uint64 counter;
        uint64 expiresAt;
        PreAuthStatus status;
        address holder;
        address merchant;
        uint128 authorized;
        uint128 captured;
    }

    /// @dev A pre-authorisation as the card signed it and the gateway uploads it.
    struct PreAuthRequest {
        address card;
        address merchant;
        uint256 maxAmount;
        uint64 counter;
        uint64 time;
        bytes signature;
    }

    struct Programme {
        address sponsor;
        bool closed;
        address merchant;
        uint128 dailyCap;
        uint128 budget;
        uint128 funded;
        uint128 paid;
    }

    IERC20 public immutable cash;
    IWalletRegistry public immutable registry;
    HardWalletSettlement public immutable settlement;

    /// @notice How long a pre-authorisation may stay open after its upload (default 30 minutes).
    uint64 public preAuthTtl = 30 minutes;
    /// @notice Largest pre-authorisation, in fen (default 200 yuan).
    uint256 public preAuthCap = 200_00;

    mapping(uint256 id => PreAuth) private _preAuths;
    mapping(address card => mapping(uint256 word => uint256)) private _usedCounters;
    mapping(address card => mapping(uint64 counter => uint256 id)) private _byCounter;
    uint256 public preAuthCount;

    mapping(uint256 id => Programme) private _programmes;
    mapping(uint256 id => mapping(bytes32 ref => bool)) private _refs;
    mapping(uint256 id => mapping(address person => uint256 dayAndPaid)) private _paidToday;
    uint256 public programmeCount;

    uint256 public totalAuthorized;
    uint256 public totalCaptured;
    uint256 public totalReleased;
    uint256 public totalOpen;
    uint256 public totalFunded;
    uint256 public totalPaidOut;
    uint256 public totalReturned;
    uint256 public totalBudget;

    constructor(IERC20 cash_, IWalletRegistry registry_, HardWalletSettlement settlement_, address admin)
        EIP712("XcpayDevices", "1")
    {
        cash = cash_;
        registry = registry_;
        settlement = settlement_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        emit DeviceLimitsChanged(preAuthTtl, preAuthCap);
    }

    // ----------------------------------------------------------------------------------------
    // Operator
    // ----------------------------------------------------------------------------------------

    /// @notice Set the pre-authorisation deadline and cap. Open pre-authorisations keep their deadline.
    function setLimits(uint64 ttl, uint256 cap) external onlyRole(OPERATOR_ROLE) {
        if (ttl < MIN_TTL || ttl > MAX_TTL || cap == 0 || cap > type(uint128).max) {
            revert DeviceInvalidLimits(ttl, cap);
        }
        preAuthTtl = ttl;
        preAuthCap = cap;
        emit DeviceLimitsChanged(ttl, cap);
    }

    /// @notice A recycling programme: `sponsor` (a registered wallet) funds it, the bins of
    /// `merchant` pay from it, at most `dailyCap` fen per person per Beijing day. Returns its id.
    function createProgramme(address sponsor, address merchant, uint128 dailyCap)
        external
        onlyRole(OPERATOR_ROLE)
        returns (uint256 id)
    {
        if (
            registry.kindOf(sponsor) == IWalletRegistry.Kind.None
                || registry.kindOf(merchant) != IWalletRegistry.Kind.Merchant || dailyCap == 0
        ) revert DeviceInvalidProgramme(sponsor, merchant, dailyCap);
        id = ++programmeCount;
        Programme storage p = _programmes[id];
        p.sponsor = sponsor;
        p.merchant = merchant;
        p.dailyCap = dailyCap;
        emit RecyclingProgrammeCreated(id, sponsor, merchant, dailyCap);
    }

    /// @notice Close programme `id` and return what is left of its budget to its sponsor.
    function closeProgramme(uint256 id) external onlyRole(OPERATOR_ROLE) nonReentrant {
        Programme storage p = _programme(id);
        if (p.closed) revert DeviceProgrammeClosed(id);
        uint128 left = p.budget;
        p.closed = true;
        p.budget = 0;
        totalBudget -= left;
        totalReturned += left;
        emit RecyclingProgrammeClosed(id, left);
        if (left > 0) IDigitalCash(address(cash)).payFor(p.sponsor, p.sponsor, left, 0);
    }

    // ----------------------------------------------------------------------------------------
    // Sponsor
    // ----------------------------------------------------------------------------------------

    /// @notice The sponsor moves `amount` fen from its wallet into programme `id`'s budget (it must
    /// have approved this contract).
    function fund(uint256 id, uint128 amount) external nonReentrant {
        Programme storage p = _programme(id);
        if (msg.sender != p.sponsor) revert DeviceNotSponsor(id, msg.sender);
        if (p.closed) revert DeviceProgrammeClosed(id);
        if (amount == 0) revert DeviceZeroAmount();
        p.budget += amount;
        p.funded += amount;
        totalBudget += amount;
        totalFunded += amount;
        emit RecyclingProgrammeFunded(id, msg.sender, amount, p.budget);
        cash.safeTransferFrom(msg.sender, address(this), amount);
    }

    // ----------------------------------------------------------------------------------------
    // Devices (the gateway)
    // ----------------------------------------------------------------------------------------

    /// @notice Hold up to `r.maxAmount` fen of card `r.card`'s holder for `r.merchant`'s machine, as
    /// the card signed it (`r.counter`, `r.time`, `r.signature`). The holder's wallet pays the
    /// maximum into this contract (its allowance, its tier caps). Returns the pre-authorisation's id.
    function preAuthorize(PreAuthRequest calldata r) external onlyRole(DEVICE_ROLE) nonReentrant returns (uint256 id) {
        if (r.maxAmount == 0) revert DeviceZeroAmount();
        if (r.maxAmount > preAuthCap) revert DevicePreAuthAboveCap(preAuthCap, r.maxAmount);
        bytes32 digest = preAuthDigest(r.card, r.merchant, r.maxAmount, r.counter, r.time);
        // slither-disable-next-line unused-return (the third value only details `err`, which is checked)
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(digest, r.signature);
        if (err != ECDSA.RecoverError.NoError || signer != r.card || r.card == address(0)) {
            revert DeviceInvalidSignature(r.card);
        }
        if (isCounterUsed(r.card, r.counter)) revert DeviceCounterUsed(r.card, r.counter);
        address holder = _activeHolder(r.card);
        if (registry.kindOf(r.merchant) != IWalletRegistry.Kind.Merchant) revert DeviceInvalidMerchant(r.merchant);
        id = _record(r, holder);
        // slither-disable-next-line arbitrary-send-erc20 (from is the card's holder, whose card signed this maximum for this merchant)
        cash.safeTransferFrom(holder, address(this), r.maxAmount);
    }

    /// @notice Complete pre-authorisation `id` with the real `amount` (at most the maximum, before
    /// the deadline): the merchant gets `amount`, the holder the rest. Once. If the holder's wallet
    /// was recovered meanwhile (retired), the completion still stands (the card signed the hold
    /// before the recovery and the machine delivered): the merchant is paid on behalf of the
    /// holder's registered successor (`successorOf`, followed to the live wallet), who gets the rest.
    function complete(uint256 id, uint256 amount) external onlyRole(DEVICE_ROLE) nonReentrant {
        PreAuth storage a = _open(id);
        if (block.timestamp > a.expiresAt) revert DevicePreAuthExpired(id, a.expiresAt);
        if (amount == 0) revert DeviceZeroAmount();
        if (amount > a.authorized) revert DeviceCompletionAboveAuthorized(id, a.authorized, amount);
        uint256 rest = a.authorized - amount;
        a.status = PreAuthStatus.Completed;
        // amount <= authorized, a uint128.
        a.captured = uint128(amount);
        totalOpen -= a.authorized;
        totalCaptured += amount;
        totalReleased += rest;
        emit PreAuthCompleted(id, a.merchant, amount, rest);
        address holder = _currentHolder(a.holder);
        IDigitalCash(address(cash)).payFor(holder, a.merchant, amount, PAY_TO_MERCHANT);
        if (rest > 0) IDigitalCash(address(cash)).payFor(holder, holder, rest, 0);
    }

    /// @notice Release pre-authorisation `id` whole to its holder: the device role at any time (a
    /// failed dispense), anyone after the deadline. Once. A retired holder's hold goes to its
    /// registered successor (`successorOf`, followed to the live wallet), never stays locked here.
    function release(uint256 id) external nonReentrant {
        PreAuth storage a = _open(id);
        bool expired = block.timestamp > a.expiresAt;
        if (!expired && !hasRole(DEVICE_ROLE, msg.sender)) revert DevicePreAuthNotExpired(id, a.expiresAt);
        uint256 amount = a.authorized;
        a.status = PreAuthStatus.Released;
        totalOpen -= amount;
        totalReleased += amount;
        address holder = _currentHolder(a.holder);
        emit PreAuthReleased(id, holder, amount, msg.sender, expired);
        IDigitalCash(address(cash)).payFor(holder, holder, amount, 0);
    }

    /// @notice A recycling bin of programme `id` pays `amount` fen to `to` (a personal wallet, or a
    /// card: its holder's wallet) for the bin's reference `ref` (each pays once), within the
    /// programme's budget and the person's daily cap.
    function payout(uint256 id, address to, uint128 amount, bytes32 ref) external onlyRole(DEVICE_ROLE) nonReentrant {
        Programme storage p = _programme(id);
        if (p.closed) revert DeviceProgrammeClosed(id);
        if (amount == 0) revert DeviceZeroAmount();
        if (_refs[id][ref]) revert DevicePayoutDuplicate(id, ref);
        (address person, address card) = _person(to);
        if (amount > p.budget) revert DeviceBudgetExceeded(id, p.budget, amount);
        uint256 day = _today();
        uint256 word = _paidToday[id][person];
        // word = day << 128 | paid: the paid part counts for that day only.
        // slither-disable-next-line incorrect-equality (a Beijing day number, compared exactly on purpose)
        uint256 paidAfter = (word >> 128 == day ? uint128(word) : 0) + uint256(amount);
        if (paidAfter > p.dailyCap) revert DeviceDailyCapExceeded(id, person, p.dailyCap, paidAfter);

        _refs[id][ref] = true;
        _paidToday[id][person] = (day << 128) | paidAfter;
        p.budget -= amount;
        p.paid += amount;
        totalBudget -= amount;
        totalPaidOut += amount;
        emit RecyclingPaid(id, person, ref, card, amount, paidAfter);
        IDigitalCash(address(cash)).payFor(p.sponsor, person, amount, 0);
    }

    // ----------------------------------------------------------------------------------------
    // Views
    // ----------------------------------------------------------------------------------------

    /// @notice Pre-authorisation `id` as stored.
    function preAuthOf(uint256 id) external view returns (PreAuth memory) {
        PreAuth storage a = _preAuths[id];
        if (a.status == PreAuthStatus.None) revert DeviceUnknownPreAuth(id);
        return a;
    }

    /// @notice The id of the pre-authorisation `card` signed with `counter` (0: none).
    function preAuthIdOf(address card, uint64 counter) external view returns (uint256) {
        return _byCounter[card][counter];
    }

    /// @notice Whether `card`'s `counter` pre-authorised already.
    function isCounterUsed(address card, uint64 counter) public view returns (bool) {
        return _usedCounters[card][counter >> 8] & (1 << (counter & 0xff)) != 0;
    }

    /// @notice Programme `id` as stored.
    function programmeOf(uint256 id) external view returns (Programme memory) {
        return _programme(id);
    }

    /// @notice What programme `id` paid `person` today (Beijing day).
    function paidToday(uint256 id, address person) external view returns (uint256) {
        uint256 word = _paidToday[id][person];
        // slither-disable-next-line incorrect-equality (a Beijing day number, compared exactly on purpose)
        return word >> 128 == _today() ? uint128(word) : 0;
    }

    /// @notice Whether programme `id` paid bin reference `ref`.
    function isReferenceUsed(uint256 id, bytes32 ref) external view returns (bool) {
        return _refs[id][ref];
    }

    /// @notice The EIP-712 digest a card signs for this pre-authorisation.
    function preAuthDigest(address card, address merchant, uint256 maxAmount, uint64 counter, uint64 time)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(PREAUTH_TYPEHASH, card, merchant, maxAmount, counter, time)));
    }

    /// @notice The EIP-712 domain separator (chain id and this contract's address included).
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ----------------------------------------------------------------------------------------
    // Internal
    // ----------------------------------------------------------------------------------------

    function _open(uint256 id) private view returns (PreAuth storage a) {
        a = _preAuths[id];
        if (a.status == PreAuthStatus.None) revert DeviceUnknownPreAuth(id);
        if (a.status != PreAuthStatus.Open) revert DevicePreAuthNotOpen(id, a.status);
    }

    /// @dev Store a new open pre-authorisation of `r` for `holder`; uses its counter.
    function _record(PreAuthRequest calldata r, address holder) private returns (uint256 id) {
        id = ++preAuthCount;
        uint64 expiresAt = uint64(block.timestamp) + preAuthTtl;
        _usedCounters[r.card][r.counter >> 8] |= 1 << (r.counter & 0xff);
        _byCounter[r.card][r.counter] = id;
        // maxAmount <= preAuthCap < 2**128 (setLimits): no truncation.
        _preAuths[id] = PreAuth({
            card: r.card,
            counter: r.counter,
            expiresAt: expiresAt,
            status: PreAuthStatus.Open,
            holder: holder,
            merchant: r.merchant,
            authorized: uint128(r.maxAmount),
            captured: 0
        });
        totalAuthorized += r.maxAmount;
        totalOpen += r.maxAmount;
        emit PreAuthorized(id, r.card, holder, r.merchant, r.maxAmount, r.counter, expiresAt);
    }

    /// @dev The wallet that now stands for `holder`: itself, or, if it was recovered (retired), its
    /// registered successor, followed while that one was recovered too. Only the registry's word
    /// decides where a recovered holder's money goes.
    function _currentHolder(address holder) private view returns (address current) {
        current = holder;
        for (address next = registry.successorOf(current); next != address(0); next = registry.successorOf(current)) {
            current = next;
        }
    }

    function _programme(uint256 id) private view returns (Programme storage p) {
        p = _programmes[id];
        if (p.sponsor == address(0)) revert DeviceUnknownProgramme(id);
    }

    /// @dev The holder of active `card` (read from the settlement contract).
    function _activeHolder(address card) private view returns (address) {
        try settlement.cardOf(card) returns (HardWalletSettlement.Card memory c) {
            if (c.status != HardWalletSettlement.Status.Active) revert DeviceCardNotActive(card, uint8(c.status));
            return c.holder;
        } catch {
            revert DeviceUnknownCard(card);
        }
    }

    /// @dev The person a payout to `to` pays: `to` itself (a personal wallet) or the holder of card `to`.
    function _person(address to) private view returns (address person, address card) {
        if (registry.kindOf(to) == IWalletRegistry.Kind.Personal) return (to, address(0));
        try settlement.cardOf(to) returns (HardWalletSettlement.Card memory c) {
            return (c.holder, to);
        } catch {
            revert DeviceInvalidPerson(to);
        }
    }

    function _today() private view returns (uint256) {
        return (block.timestamp + _DAY_OFFSET) / 1 days;
    }
}
