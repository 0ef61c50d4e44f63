// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IWalletRegistry} from "../token/IWalletRegistry.sol";
import {IDigitalCash} from "../token/IDigitalCash.sol";

/// @title CardPurses
/// @notice Earmarked purses on a hard wallet's reserve (养老支付凭证, meal allowances): beside its
/// plain cash a card can hold up to MAX_PURSES purses, each of a *purse programme* the operator
/// creates (a funder wallet, the merchant categories it may be spent at, a per-card cap, an expiry
/// and what happens to unspent value at expiry). The programme's funder puts value on a card's
/// purse; when the settlement settles an offline payment of the card at a merchant whose category
/// a purse allows, that purse's value is spent before the card's cash (purses in slot order: the
/// order they were funded, an expired purse's slot taken by the last one), and cash pays the rest.
/// At other merchants only cash pays.
///
/// - **Clones**: a card blocked for signing beyond what covers it (HardWalletSettlement) spends no
///   purse any more: its earmarked value stays for the programme (returned at expiry), so a clone
///   drains at most what was spendable at the payment that blocked it. What neither the allowed
///   purses nor the cash covered is the card's shortfall, as before.
/// - **Expiry**: a purse is spendable while `block.timestamp <= expiresAt` (settlement time). After
///   it, anyone may expire a card's purse: its balance goes back to the programme's funder
///   (`toHolderAtExpiry == false`, the default a district office expects: earmarked subsidy not
///   spent returns to its budget) or to the holder's own wallet (`toHolderAtExpiry == true`, for a
///   programme that is a gift once granted). The programme chooses at creation.
///
/// The purse value is held by the settlement contract with the cards' reserves.
/// @dev Invariants (tested): per programme funded == spent + expired + held; the sum of held over
/// programmes == totalEarmarked; the settlement's token balance == totalReserve + totalEarmarked.
abstract contract CardPurses is AccessControl {
    using SafeERC20 for IERC20;

    /// @dev A purse programme id is non-zero, its funder registered, its per-card cap in
    /// 1..2**128-1 and its expiry in the future.
    error PurseInvalidProgramme(uint32 programme, address funder, uint256 perCardCap, uint64 expiresAt);
    /// @dev Purse programme `programme` exists already.
    error PurseProgrammeExists(uint32 programme);
    /// @dev Purse programme `programme` does not exist.
    error PurseUnknownProgramme(uint32 programme);
    /// @dev A purse programme allows 1..`max` merchant categories.
    error PurseCategoryCount(uint256 count, uint256 max);
    /// @dev Category `category` is zero or listed twice.
    error PurseInvalidCategory(uint16 category);
    /// @dev `account` is not the funder of purse programme `programme`.
    error PurseNotFunder(uint32 programme, address account);
    /// @dev Purse programme `programme` expired at `expiresAt`: no more funding.
    error PurseProgrammeExpired(uint32 programme, uint64 expiresAt);
    /// @dev Purse programme `programme` runs until `expiresAt`: its purses cannot be expired yet.
    error PurseNotExpired(uint32 programme, uint64 expiresAt);
    /// @dev Funding would bring `card`'s purse of `programme` to `balanceAfter`, above `cap`.
    error PurseCapExceeded(address card, uint32 programme, uint256 cap, uint256 balanceAfter);
    /// @dev `card` holds MAX_PURSES purses already.
    error PurseSlotsFull(address card, uint256 max);
    /// @dev `card` holds no purse of `programme`.
    error PurseNotHeld(address card, uint32 programme);
    /// @dev Amounts must be positive.
    error PurseZeroAmount();

    /// @dev The operator created purse programme `programme`.
    event PurseProgrammeCreated(
        uint32 indexed programme,
        address indexed funder,
        uint256 perCardCap,
        uint64 expiresAt,
        bool toHolderAtExpiry,
        uint16[] categories
    );
    /// @dev `funder` put `amount` on `card`'s purse of `programme`, now `balance`.
    event PurseFunded(
        address indexed card, uint32 indexed programme, address indexed funder, uint256 amount, uint256 balance
    );
    /// @dev Payment `counter` of `card` at `merchant` spent `amount` of its purse of `programme`, now `balance`.
    event PurseSpent(
        address indexed card,
        uint32 indexed programme,
        uint64 counter,
        address indexed merchant,
        uint256 amount,
        uint256 balance
    );
    /// @dev After expiry, `amount` left on `card`'s purse of `programme` went to `to` (the funder or
    /// the holder); the purse is closed.
    event PurseExpired(address indexed card, uint32 indexed programme, address indexed to, uint256 amount);

    /// @notice Most purses one card holds at a time (bounds the settlement's work per payment).
    uint256 public constant MAX_PURSES = 4;
    /// @notice Most merchant categories one purse programme allows.
    uint256 public constant MAX_PURSE_CATEGORIES = 8;
    bytes32 private constant PURSE_OPERATOR_ROLE = keccak256("OPERATOR_ROLE");

    /// @dev What the settlement reads and writes per purse fits one slot (expiresAt, held); `spent`
    /// is not stored (funded - expired - held), the views fill it in.
    struct PurseProgramme {
        uint64 expiresAt;
        bool toHolderAtExpiry;
        uint128 held;
        address funder;
        uint128 perCardCap;
        uint128 funded;
        uint128 expired;
        uint128 spent;
    }

    /// @dev One purse slot of a card (programme 0: empty).
    struct Purse {
        uint32 programme;
        uint128 balance;
    }

    /// @dev A card's books of one programme (kept when its slot is expired and reused); `spent` is
    /// not stored (funded - expired - balance), the view fills it in.
    struct PurseBooks {
        uint128 funded;
        uint128 expired;
        uint128 spent;
    }

    mapping(uint32 programme => PurseProgramme) private _programmes;
    mapping(uint32 programme => uint16[]) private _purseCategories;
    mapping(uint32 programme => mapping(uint16 category => bool)) private _purseAllows;
    mapping(address card => Purse[MAX_PURSES]) private _purses;
    mapping(address card => mapping(uint32 programme => PurseBooks)) private _books;

    /// @notice Earmarked value held on all purses, and its history.
    uint256 public totalEarmarked;
    uint256 public totalEarmarkedFunded;
    uint256 public totalEarmarkedSpent;
    uint256 public totalEarmarkedExpired;

    // -- hooks the settlement provides --------------------------------------------------------

    function _purseToken() internal view virtual returns (IERC20);
    function _purseRegistry() internal view virtual returns (IWalletRegistry);
    /// @dev The holder of `card`, reverting unless the card is known (and, if `active`, active).
    function _purseHolder(address card, bool active) internal view virtual returns (address);

    // -- operator, funders, anyone ------------------------------------------------------------

    /// @notice Create purse programme `programme`: `funder` (a registered wallet) funds its purses,
    /// each card's purse holds at most `perCardCap`, spendable at merchants of `categories` until
    /// `expiresAt`; then what is left goes back to the funder, or to the holder if `toHolderAtExpiry`.
    function createPurseProgramme(
        uint32 programme,
        address funder,
        uint256 perCardCap,
        uint64 expiresAt,
        bool toHolderAtExpiry,
        uint16[] calldata categories
    ) external onlyRole(PURSE_OPERATOR_ROLE) {
        if (
            programme == 0 || _purseRegistry().kindOf(funder) == IWalletRegistry.Kind.None || perCardCap == 0
                || perCardCap > type(uint128).max || expiresAt <= block.timestamp
        ) {
            revert PurseInvalidProgramme(programme, funder, perCardCap, expiresAt);
        }
        PurseProgramme storage p = _programmes[programme];
        if (p.funder != address(0)) revert PurseProgrammeExists(programme);
        if (categories.length == 0 || categories.length > MAX_PURSE_CATEGORIES) {
            revert PurseCategoryCount(categories.length, MAX_PURSE_CATEGORIES);
        }
        for (uint256 i = 0; i < categories.length; ++i) {
            uint16 mcc = categories[i];
            if (mcc == 0 || _purseAllows[programme][mcc]) revert PurseInvalidCategory(mcc);
            _purseAllows[programme][mcc] = true;
        }
        _purseCategories[programme] = categories;
        p.funder = funder;
        p.expiresAt = expiresAt;
        p.toHolderAtExpiry = toHolderAtExpiry;
        p.perCardCap = uint128(perCardCap);
        emit PurseProgrammeCreated(programme, funder, perCardCap, expiresAt, toHolderAtExpiry, categories);
    }

    /// @notice The funder of `programme` puts `amount` on the purse of active `card` (pulled from
    /// the funder's wallet, which must have approved this contract).
    function fundPurse(address card, uint32 programme, uint256 amount) external {
        PurseProgramme storage p = _programme(programme);
        if (msg.sender != p.funder) revert PurseNotFunder(programme, msg.sender);
        if (block.timestamp > p.expiresAt) revert PurseProgrammeExpired(programme, p.expiresAt);
        _purseHolder(card, true);
        if (amount == 0) revert PurseZeroAmount();
        Purse[MAX_PURSES] storage slots = _purses[card];
        uint256 at = MAX_PURSES;
        for (uint256 i = 0; i < MAX_PURSES; ++i) {
            uint32 held = slots[i].programme;
            if (held == programme) {
                at = i;
                break;
            }
            if (held == 0 && at == MAX_PURSES) at = i;
        }
        if (at == MAX_PURSES) revert PurseSlotsFull(card, MAX_PURSES);
        Purse storage s = slots[at];
        uint256 balanceAfter = s.balance + amount;
        if (balanceAfter > p.perCardCap) revert PurseCapExceeded(card, programme, p.perCardCap, balanceAfter);
        // balanceAfter <= perCardCap < 2**128: no truncation.
        s.programme = programme;
        s.balance = uint128(balanceAfter);
        _books[card][programme].funded += uint128(amount);
        p.funded += uint128(amount);
        p.held += uint128(amount);
        totalEarmarked += amount;
        totalEarmarkedFunded += amount;
        emit PurseFunded(card, programme, msg.sender, amount, balanceAfter);
        _purseToken().safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice After `programme` expired, send what is left on `card`'s purse of it to the funder
    /// (or to the holder, as the programme says) and free the slot. Anyone may call. Reverts with
    /// the token's error if the receiver cannot receive now: retry later.
    function expirePurse(address card, uint32 programme) external {
        PurseProgramme storage p = _programme(programme);
        if (block.timestamp <= p.expiresAt) revert PurseNotExpired(programme, p.expiresAt);
        address holder = _purseHolder(card, false);
        Purse[MAX_PURSES] storage slots = _purses[card];
        uint256 at = MAX_PURSES;
        for (uint256 i = 0; i < MAX_PURSES; ++i) {
            if (slots[i].programme == programme) {
                at = i;
                break;
            }
        }
        if (at == MAX_PURSES) revert PurseNotHeld(card, programme);
        uint128 amount = slots[at].balance;
        // Keep the slots contiguous: the last used one moves into the freed one.
        uint256 last = at;
        while (last + 1 < MAX_PURSES && slots[last + 1].programme != 0) ++last;
        slots[at] = slots[last];
        delete slots[last];
        _books[card][programme].expired += amount;
        p.expired += amount;
        p.held -= amount;
        totalEarmarked -= amount;
        totalEarmarkedExpired += amount;
        address to = p.toHolderAtExpiry ? holder : p.funder;
        emit PurseExpired(card, programme, to, amount);
        if (amount > 0) IDigitalCash(address(_purseToken())).payFor(to, to, amount, 0);
    }

    // -- views --------------------------------------------------------------------------------

    /// @notice Purse programme `programme` and its merchant categories.
    function purseProgramme(uint32 programme) external view returns (PurseProgramme memory p, uint16[] memory) {
        p = _programme(programme);
        p.spent = p.funded - p.expired - p.held;
        return (p, _purseCategories[programme]);
    }

    /// @notice `card`'s purse slots (programme 0: an empty slot).
    function pursesOf(address card) external view returns (Purse[MAX_PURSES] memory) {
        return _purses[card];
    }

    /// @notice `card`'s books of `programme`: funded == spent + expired + its purse's balance.
    function purseBooks(address card, uint32 programme) external view returns (PurseBooks memory b) {
        b = _books[card][programme];
        uint128 balance = 0;
        Purse[MAX_PURSES] storage slots = _purses[card];
        for (uint256 i = 0; i < MAX_PURSES; ++i) {
            if (slots[i].programme == programme) balance = slots[i].balance;
        }
        b.spent = b.funded - b.expired - balance;
    }

    // -- the settlement's side ----------------------------------------------------------------

    /// @dev Spend from `card`'s purses allowed at `merchant`, up to `amount`, in slot order. Returns
    /// the total taken and what each slot gave (to undo or report). Only reads one slot for a card
    /// without purses.
    function _drawPurses(address card, address merchant, uint128 amount)
        internal
        returns (uint128 taken, uint128[MAX_PURSES] memory takes)
    {
        Purse[MAX_PURSES] storage slots = _purses[card];
        uint16 category = 0; // read from the registry once, at the first purse with value
        for (uint256 i = 0; i < MAX_PURSES && taken < amount; ++i) {
            Purse storage s = slots[i];
            uint32 programme = s.programme;
            if (programme == 0) break; // slots are kept contiguous
            uint128 balance = s.balance;
            if (balance == 0) continue;
            PurseProgramme storage p = _programmes[programme];
            if (block.timestamp > p.expiresAt) continue;
            if (category == 0) category = _purseRegistry().categoryOf(merchant);
            if (!_purseAllows[programme][category]) continue;
            uint128 take = amount - taken < balance ? amount - taken : balance;
            s.balance = balance - take;
            p.held -= take;
            takes[i] = take;
            taken += take;
        }
        if (taken > 0) {
            totalEarmarked -= taken;
            totalEarmarkedSpent += taken;
        }
    }

    /// @dev Undo `_drawPurses` (the merchant refused the payment).
    function _undrawPurses(address card, uint128 taken, uint128[MAX_PURSES] memory takes) internal {
        if (taken == 0) return;
        Purse[MAX_PURSES] storage slots = _purses[card];
        for (uint256 i = 0; i < MAX_PURSES; ++i) {
            uint128 take = takes[i];
            if (take == 0) continue;
            Purse storage s = slots[i];
            s.balance += take;
            _programmes[s.programme].held += take;
        }
        totalEarmarked += taken;
        totalEarmarkedSpent -= taken;
    }

    /// @dev The events of a settled `_drawPurses`.
    function _reportPurses(address card, uint64 counter, address merchant, uint128[MAX_PURSES] memory takes) internal {
        Purse[MAX_PURSES] storage slots = _purses[card];
        for (uint256 i = 0; i < MAX_PURSES; ++i) {
            if (takes[i] == 0) continue;
            emit PurseSpent(card, slots[i].programme, counter, merchant, takes[i], slots[i].balance);
        }
    }

    function _programme(uint32 programme) private view returns (PurseProgramme storage p) {
        p = _programmes[programme];
        if (p.funder == address(0)) revert PurseUnknownProgramme(programme);
    }
}
