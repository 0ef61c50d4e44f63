// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {
    IWalletRegistry,
    policyLimit,
    POLICY_BALANCE_CAP,
    POLICY_PAYMENT_CAP,
    POLICY_DAILY_CAP,
    POLICY_REGISTERED,
    POLICY_FROZEN,
    POLICY_CAP_EXEMPT,
    POLICY_RETIRED,
    POLICY_HELD,
    IRegistryMoves
} from "./IWalletRegistry.sol";
import {IDigitalCash, PAY_TO_MERCHANT, PAY_CHARGES_OWNER, PAY_GRANT} from "./IDigitalCash.sol";
import {IIssuanceBook} from "./IIssuanceBook.sol";

/// @title DigitalCash
/// @notice Permissioned, fen-denominated digital cash (2 decimals). Only registered, unfrozen
/// wallets send or receive; the tier caps of the wallet registry apply to every movement, mints,
/// redemptions and movements made by other contracts included, because they all pass `_update`.
///
/// Family contracts (prepaid escrow, disbursement, vouchers, collective fund, card settlement) hold
/// money for someone else. The token would see only the cap-exempt contract, so a family never
/// sends with a plain `transfer`: it calls `payFor(owner, to, amount, rules)`, naming the economic
/// owner, and this contract applies the same policy to the owner as to a holder paying from their
/// own wallet (ERC-3643's compliance `canTransfer` is the model). A plain transfer out of a
/// cap-exempt wallet reverts `FamilyMustPayFor`, so a new family cannot forget the owner's rules.
/// A spender moving someone else's money (`transferFrom`) acts on that money, so it must be admitted
/// as well: registered and not frozen (`WalletNotRegistered(spender)`, `WalletFrozen(spender)`).
/// Family contracts that pull (escrow, disbursement, vouchers, collective fund, cards, quick-pay)
/// are registered wallets, so a regulator's freeze of a family stops its pulls too.
/// @dev Invariants: totalSupply == sum of balances (OpenZeppelin ERC20); no non-exempt wallet
/// ends a movement above its balance cap, sends more than its payment cap in one movement, or
/// sends more than its daily cap within one Beijing-time calendar day; no movement out of a family
/// contract has a frozen or unregistered owner or payee.
///
/// Holds, court orders and recovery are decided in the registry (maker-checker there). A hold keeps
/// its amount in the wallet: `_update` refuses any movement out of a held wallet (transfer,
/// `transferFrom` and so every family pull, redemption) that would leave less than the held amount
/// (`AmountFrozen`). Money a family holds for a held owner is reached through `payFor`: while the
/// owner's own balance does not cover its holds, no family pays the owner's money to anyone but the
/// owner (`AmountFrozenInFamily`); a grant (`PAY_GRANT`: a voucher's share, the programme's money
/// until spent) is not the owner's money and is not held. Only the registry's two moves, `courtTransfer` and `recoverHolding`, pass it.
/// A retired wallet neither sends nor receives (`WalletRetired`).
///
/// Two-tier operation (issue 24): once the admin links the central bank's issuance book
/// (`linkIssuanceBook`, once), every mint and redemption is reported to it after the movement, and
/// the book refuses what no operator institution may do (an issuer without an institution, a wallet
/// another institution serves, an issuance beyond the institution's reserve). Before the link the
/// token issues as a single-tier system (its own unit tests).
contract DigitalCash is ERC20, AccessControl, Pausable, IDigitalCash, IRegistryMoves {
    // ----------------------------------------------------------------------------------------
    // Errors
    // ----------------------------------------------------------------------------------------

    /// @dev `wallet` is not registered in the wallet registry.
    error WalletNotRegistered(address wallet);
    /// @dev `wallet` is frozen by the regulator.
    error WalletFrozen(address wallet);
    /// @dev The movement would leave `wallet` holding `balanceAfter`, above its tier's `cap`.
    error TierBalanceCapExceeded(address wallet, uint256 cap, uint256 balanceAfter);
    /// @dev `wallet` tried to send `amount` in one payment, above its tier's `cap`.
    error TierPaymentCapExceeded(address wallet, uint256 cap, uint256 amount);
    /// @dev The movement would bring `wallet`'s outgoing total today to `spentAfter`, above `cap`.
    error TierDailyCapExceeded(address wallet, uint256 cap, uint256 spentAfter);
    /// @dev Amounts must be positive.
    error ZeroAmount();
    /// @dev `caller` is not a family contract (a cap-exempt wallet), so it cannot pay for others.
    error FamilyOnly(address caller);
    /// @dev The family contract `family` sent with a plain transfer; it must name the owner (`payFor`).
    error FamilyMustPayFor(address family);
    /// @dev The movement must go to a merchant wallet; `payee` is not one.
    error PayeeNotMerchant(address payee);
    /// @dev A mint would take the supply to `supplyAfter`, above 2**128 - 1 fen (every balance
    /// shares its slot with the day's spending, so balances are kept below 2**128).
    error SupplyOverflow(uint256 supplyAfter);
    /// @dev `wallet` has `frozen` fen under holds and `available` free; `requested` is more than that.
    error AmountFrozen(address wallet, uint256 frozen, uint256 available, uint256 requested);
    /// @dev A family was to pay `requested` fen it holds for `owner` to someone else while `owner` has
    /// `held` fen under holds and only `balance` in its own wallet: the hold is not covered, so every
    /// fen the families hold for `owner` is held too (see `_checkHeldInFamily`).
    error AmountFrozenInFamily(address owner, uint256 held, uint256 balance, uint256 requested);
    /// @dev `wallet` is retired (recovered to a successor): it never sends or receives again.
    error WalletRetired(address wallet);
    /// @dev Only the wallet registry orders court transfers and recoveries; `caller` is not it.
    error RegistryOnly(address caller);
    /// @dev The issuance book is linked already (`book`), or the one given is the zero address.
    error IssuanceBookLink(address book);

    // ----------------------------------------------------------------------------------------
    // Events
    // ----------------------------------------------------------------------------------------

    /// @dev The issuer created `amount` fen in `to`.
    event Issued(address indexed to, uint256 amount, address indexed issuer);
    /// @dev The issuer redeemed (destroyed) `amount` fen from `from`.
    event Redeemed(address indexed from, uint256 amount, address indexed issuer);
    /// @dev The family contract `family` paid `amount` fen of `owner`'s money to `to`.
    event PaidFor(address indexed family, address indexed owner, address indexed to, uint256 amount);
    /// @dev A court order approved in the registry moved `amount` fen from `from` to `to`.
    event CourtTransfer(address indexed from, address indexed to, uint256 amount);
    /// @dev A recovery approved in the registry moved the holding of `lost` to `replacement`.
    event HoldingRecovered(address indexed lost, address indexed replacement, uint256 balance);
    /// @dev The admin linked the central bank's issuance book: every mint and redemption is booked.
    event IssuanceBookLinked(address indexed book);

    // ----------------------------------------------------------------------------------------
    // Roles and storage
    // ----------------------------------------------------------------------------------------

    /// @notice Mints and redeems.
    bytes32 public constant ISSUER_ROLE = keccak256("ISSUER_ROLE");
    /// @notice Pauses and unpauses every movement.
    bytes32 public constant REGULATOR_ROLE = keccak256("REGULATOR_ROLE");

    /// @dev Days start at midnight Beijing time (UTC+8), as a wallet holder would expect.
    uint256 private constant _DAY_OFFSET = 8 hours;

    /// @dev A holder's balance and what they sent on `day` in one slot, so that a movement reads
    /// and writes one slot per end, as a plain ERC20 does (the daily cap costs no extra slot).
    /// These replace OpenZeppelin's `_balances`/`_totalSupply`, which stay empty.
    struct Holding {
        uint128 balance;
        uint32 day;
        uint96 spent;
    }

    /// @notice The registry that decides who may take part and with which limits.
    IWalletRegistry public immutable registry;

    /// @notice The central bank's book of the operator institutions (zero: not linked).
    /// @dev Declared first so that it shares Pausable's slot (`_paused`), which every movement
    /// reads already: a mint or redemption reads the link warm.
    IIssuanceBook public issuanceBook;

    mapping(address wallet => Holding) private _holdings;
    uint256 private _supply;

    /// @dev Set only for the duration of one `payFor`: the movement out of a family is named.
    bool private transient _payingFor;

    /// @param registry_ The wallet registry.
    /// @param admin Holds DEFAULT_ADMIN_ROLE (grants the issuer and regulator roles).
    constructor(IWalletRegistry registry_, address admin) ERC20("Xiangcheng Digital Yuan", "XCNY") {
        registry = registry_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @notice Two decimals: amounts are in fen.
    function decimals() public pure override returns (uint8) {
        return 2;
    }

    // ----------------------------------------------------------------------------------------
    // Issuer
    // ----------------------------------------------------------------------------------------

    /// @notice Create `amount` fen in the registered wallet `to`.
    function mint(address to, uint256 amount) external onlyRole(ISSUER_ROLE) {
        if (amount == 0) revert ZeroAmount();
        _mint(to, amount);
        emit Issued(to, amount, msg.sender);
        IIssuanceBook book = issuanceBook;
        if (address(book) != address(0)) book.recordIssue(msg.sender, to, amount);
    }

    /// @notice Redeem `amount` fen held by `from`, which must have approved the issuer for it.
    function redeem(address from, uint256 amount) external onlyRole(ISSUER_ROLE) {
        if (amount == 0) revert ZeroAmount();
        _spendAllowance(from, msg.sender, amount);
        _burn(from, amount);
        emit Redeemed(from, amount, msg.sender);
        IIssuanceBook book = issuanceBook;
        if (address(book) != address(0)) book.recordRedeem(msg.sender, from, amount);
    }

    /// @notice Link the central bank's issuance book (once): from then on every mint and
    /// redemption is booked to the issuer's institution, and refused when the book refuses it.
    function linkIssuanceBook(IIssuanceBook book) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (address(issuanceBook) != address(0) || address(book) == address(0)) {
            revert IssuanceBookLink(address(issuanceBook));
        }
        issuanceBook = book;
        emit IssuanceBookLinked(address(book));
    }

    // ----------------------------------------------------------------------------------------
    // Spenders
    // ----------------------------------------------------------------------------------------

    /// @notice Move `value` fen of `from`'s money to `to` on `from`'s allowance to the caller.
    /// @dev A spender other than `from` must be registered and not frozen (reverts
    /// `WalletNotRegistered(spender)` / `WalletFrozen(spender)`, before the allowance is read): an
    /// approval given before a freeze must not let the frozen wallet act on someone else's money.
    /// `from` and `to` are judged in `_update` as for any movement.
    function transferFrom(address from, address to, uint256 value) public override(ERC20, IERC20) returns (bool) {
        address spender = _msgSender();
        if (spender != from) _admitted(spender);
        return super.transferFrom(from, to, value);
    }

    // ----------------------------------------------------------------------------------------
    // Families
    // ----------------------------------------------------------------------------------------

    /// @inheritdoc IDigitalCash
    /// @dev The family's and the owner's policies are read in one call (`movementPolicies`, the
    /// packed words of the hot path). A retired owner is refused as frozen (`WalletFrozen(owner)`),
    /// as `policyOf` reports it. Holds: see `_checkHeldInFamily`.
    function payFor(address owner, address to, uint256 amount, uint8 rules) external {
        (uint256 family, uint256 ownerPolicy) = registry.movementPolicies(msg.sender, owner);
        if (family & POLICY_CAP_EXEMPT == 0) revert FamilyOnly(msg.sender);
        if (amount == 0) revert ZeroAmount();
        if (ownerPolicy & POLICY_REGISTERED == 0) revert WalletNotRegistered(owner);
        if (ownerPolicy & (POLICY_FROZEN | POLICY_RETIRED) != 0) revert WalletFrozen(owner);
        if (ownerPolicy & POLICY_HELD != 0 && to != owner && rules & PAY_GRANT == 0) {
            _checkHeldInFamily(owner, amount);
        }
        if (rules & PAY_TO_MERCHANT != 0 && registry.kindOf(to) != IWalletRegistry.Kind.Merchant) {
            revert PayeeNotMerchant(to);
        }
        if (rules & PAY_CHARGES_OWNER != 0 && to != owner && ownerPolicy & POLICY_CAP_EXEMPT == 0) {
            _chargeOutgoing(
                owner, policyLimit(ownerPolicy, POLICY_PAYMENT_CAP), policyLimit(ownerPolicy, POLICY_DAILY_CAP), amount
            );
        }
        _payingFor = true;
        _transfer(msg.sender, to, amount);
        _payingFor = false;
        emit PaidFor(msg.sender, owner, to, amount);
    }

    // ----------------------------------------------------------------------------------------
    // The registry's moves (court orders, recoveries: maker-checker in the registry)
    // ----------------------------------------------------------------------------------------

    /// @inheritdoc IRegistryMoves
    /// @dev Not a payment of `from`'s: no sender check (a court order moves frozen and held money),
    /// no cap charged to it; `to` is judged as any receiver (registered, not frozen, not retired,
    /// within its balance cap); pause stops it like every movement.
    function courtTransfer(address from, address to, uint256 amount) external whenNotPaused {
        if (msg.sender != address(registry)) revert RegistryOnly(msg.sender);
        // slither-disable-next-line unused-return (a read shaped as a mint: the sender's word is 0 by definition)
        (, uint256 receiver) = registry.movementPolicies(address(0), to);
        _checkAdmitted(to, receiver);
        _move(from, to, amount);
        _checkBalanceCap(to, receiver);
        emit CourtTransfer(from, to, amount);
    }

    /// @inheritdoc IRegistryMoves
    /// @dev The successor takes the balance and the day's spending (a recovery does not reset the
    /// daily cap) and no balance cap is applied: it is the same person's money in the same tier,
    /// moved to a new, empty wallet. Pause stops it like every movement.
    function recoverHolding(address lost, address replacement) external whenNotPaused {
        if (msg.sender != address(registry)) revert RegistryOnly(msg.sender);
        Holding memory h = _holdings[lost];
        uint256 balance = h.balance;
        delete _holdings[lost];
        Holding storage n = _holdings[replacement];
        n.balance += h.balance; // the replacement is new: its balance was 0
        n.day = h.day;
        n.spent = h.spent;
        emit Transfer(lost, replacement, balance);
        emit HoldingRecovered(lost, replacement, balance);
        IIssuanceBook book = issuanceBook;
        if (address(book) != address(0)) book.recordRecovery(lost, replacement);
    }

    // ----------------------------------------------------------------------------------------
    // Regulator
    // ----------------------------------------------------------------------------------------

    /// @notice Stop every movement of cash.
    function pause() external onlyRole(REGULATOR_ROLE) {
        _pause();
    }

    /// @notice Resume movements.
    function unpause() external onlyRole(REGULATOR_ROLE) {
        _unpause();
    }

    // ----------------------------------------------------------------------------------------
    // Views
    // ----------------------------------------------------------------------------------------

    /// @notice What `wallet` has sent today (Beijing time), in fen.
    function spentToday(address wallet) public view returns (uint256) {
        Holding storage h = _holdings[wallet];
        // slither-disable-next-line incorrect-equality (a Beijing day number, compared exactly on purpose)
        return h.day == _today() ? h.spent : 0;
    }

    /// @inheritdoc ERC20
    function balanceOf(address account) public view override(ERC20, IERC20, IRegistryMoves) returns (uint256) {
        return _holdings[account].balance;
    }

    /// @inheritdoc ERC20
    function totalSupply() public view override(ERC20, IERC20) returns (uint256) {
        return _supply;
    }

    /// @notice The current day number (days since the epoch, Beijing time).
    function today() external view returns (uint256) {
        return _today();
    }

    // ----------------------------------------------------------------------------------------
    // The one place every movement passes
    // ----------------------------------------------------------------------------------------

    /// @dev Mints (from == 0), burns (to == 0) and transfers all come here. Checks first, then
    /// the balance update, then the receiver's cap against the new balance.
    function _update(address from, address to, uint256 value) internal override whenNotPaused {
        // One call for both ends, packed (a mint or a burn gets 0 for the zero address).
        (uint256 sender, uint256 receiver) = registry.movementPolicies(from, to);
        if (from != address(0)) {
            _checkAdmitted(from, sender);
            if (sender & POLICY_HELD != 0) _checkHeld(from, value);
            if (to != address(0)) {
                if (sender & POLICY_CAP_EXEMPT == 0) {
                    _chargeOutgoing(
                        from, policyLimit(sender, POLICY_PAYMENT_CAP), policyLimit(sender, POLICY_DAILY_CAP), value
                    );
                } else if (!_payingFor) {
                    revert FamilyMustPayFor(from);
                }
            }
        }
        if (to != address(0)) _checkAdmitted(to, receiver);

        _move(from, to, value);

        if (to != address(0)) _checkBalanceCap(to, receiver);
    }

    /// @dev The receiver's balance cap against its new balance (cap-exempt family wallets have none).
    function _checkBalanceCap(address to, uint256 receiver) private view {
        if (receiver & POLICY_CAP_EXEMPT == 0) {
            uint256 balanceAfter = _holdings[to].balance;
            uint256 cap = policyLimit(receiver, POLICY_BALANCE_CAP);
            if (balanceAfter > cap) revert TierBalanceCapExceeded(to, cap, balanceAfter);
        }
    }

    /// @dev A held wallet may send only what is above its holds (read only when the policy word
    /// says it has some, so wallets without holds pay nothing for the rule).
    function _checkHeld(address from, uint256 value) private view {
        uint256 held = registry.heldOf(from);
        uint256 balance = _holdings[from].balance;
        uint256 available = balance > held ? balance - held : 0;
        if (value > available) revert AmountFrozen(from, held, available, value);
    }

    /// @dev Money a family holds for `owner` is `owner`'s money, so a hold must reach it too. The token
    /// does not know how much each family holds for whom, so the rule is the simplest that is safe:
    /// while `owner`'s own wallet covers its holds (`heldOf(owner) <= balanceOf(owner)`, and `_update`
    /// keeps it so for every movement out of the wallet), family-held money is free, as the rest of a
    /// partly held holding should be; once it does not, no family pays `owner`'s money to anyone but
    /// `owner` (`AmountFrozenInFamily`). Paying back to `owner` (a refund, a card reserve withdrawn,
    /// a cancelled package) stays open: the money lands in the wallet, where the exact per-fen rule
    /// applies, so the holder can always free what is above the hold by bringing it home.
    function _checkHeldInFamily(address owner, uint256 amount) private view {
        uint256 held = registry.heldOf(owner);
        uint256 balance = _holdings[owner].balance;
        if (held > balance) revert AmountFrozenInFamily(owner, held, balance, amount);
    }

    /// @dev OpenZeppelin's ERC20 `_update` (same errors, same event) on the packed holdings.
    function _move(address from, address to, uint256 value) private {
        if (from == address(0)) {
            uint256 supplyAfter = _supply + value;
            if (supplyAfter > type(uint128).max) revert SupplyOverflow(supplyAfter);
            _supply = supplyAfter;
        } else {
            Holding storage h = _holdings[from];
            uint256 fromBalance = h.balance;
            if (fromBalance < value) revert ERC20InsufficientBalance(from, fromBalance, value);
            // fromBalance - value < fromBalance < 2**128: the cast is exact.
            h.balance = uint128(fromBalance - value);
        }
        if (to == address(0)) {
            unchecked {
                _supply -= value; // value <= fromBalance <= supply
            }
        } else {
            unchecked {
                // balance + value <= supply < 2**128, and value <= supply: neither wraps.
                _holdings[to].balance += uint128(value);
            }
        }
        emit Transfer(from, to, value);
    }

    function _admitted(address wallet) private view returns (IWalletRegistry.Policy memory policy) {
        policy = registry.policyOf(wallet);
        if (!policy.registered) revert WalletNotRegistered(wallet);
        if (policy.frozen) revert WalletFrozen(wallet);
    }

    function _checkAdmitted(address wallet, uint256 policy) private pure {
        if (policy & POLICY_REGISTERED == 0) revert WalletNotRegistered(wallet);
        if (policy & POLICY_RETIRED != 0) revert WalletRetired(wallet);
        if (policy & POLICY_FROZEN != 0) revert WalletFrozen(wallet);
    }

    /// @dev Redemptions (to == 0) are not payments and do not count toward the caps.
    function _chargeOutgoing(address from, uint256 paymentCap, uint256 dailyCap, uint256 value) private {
        if (value > paymentCap) revert TierPaymentCapExceeded(from, paymentCap, value);
        uint32 day = _today();
        Holding storage h = _holdings[from];
        // slither-disable-next-line incorrect-equality (a Beijing day number, compared exactly on purpose)
        uint256 spentAfter = (h.day == day ? uint256(h.spent) : 0) + value;
        if (spentAfter > dailyCap) revert TierDailyCapExceeded(from, dailyCap, spentAfter);
        // Capped tiers are below 2**80 (the registry's range), so a capped figure always fits;
        // an uncapped one may in theory exceed uint96 and saturates: it only matters against a cap.
        h.day = day;
        h.spent = spentAfter > type(uint96).max ? type(uint96).max : uint96(spentAfter);
    }

    /// @dev A uint32 day number lasts eleven million years.
    function _today() private view returns (uint32) {
        return uint32((block.timestamp + _DAY_OFFSET) / 1 days);
    }
}
