// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IIssuanceBook} from "../token/IIssuanceBook.sol";
import {IWalletRegistry} from "../token/IWalletRegistry.sol";

/// @dev The registration entry point of the wallet registry (its registrar role is granted to this
/// contract, so an institution registers the wallets it serves through `registerWallet`).
interface IWalletRegistrar {
    function register(address wallet, IWalletRegistry.Kind kind, uint8 tier, uint16 category, bytes32 identityHash)
        external;
}

/// @title OperatorInstitutions
/// @notice The two tiers of e-CNY: the central bank allocates reserves to authorised operator
/// institutions, and each institution issues digital cash to the wallets it serves within its
/// reserve, and redeems from them. Each institution signs with its own key; a wallet's serving
/// institution is recorded when the institution registers it here (`registerWallet`); a wallet
/// registered in the registry directly (the single-tier path: family contracts, the first operator's
/// own registrations) is served by institution #1, the operator that ran the system before the two
/// tiers, so that nothing else changes for the other families.
///
/// The token reports every mint and redemption (`IIssuanceBook`), after its own checks.
/// Storage (gas): an institution's reserve and gross issuance share one slot and its gross
/// redemptions another; `outstanding` is not stored but derived (`issued - redeemed`, exact in
/// int256), so a mint reads two slots and writes one, a redemption the same, and the totals over
/// all institutions are sums over them (views), which can never drift from the institutions'.
/// Every figure is below 2**128 fen (the token's supply limit is 2**128 - 1): an allocation that
/// would take a reserve beyond it is refused (`InvalidReserveAmount`), and the gross counters
/// revert (checked arithmetic) only after 2**128 fen issued or redeemed in all by one institution.
/// @dev Invariants: for every institution, `outstanding <= reserve` (issuance checks it, a withdrawal
/// keeps it, a redemption only lowers outstanding); the token's total supply equals
/// `totalIssued - totalRedeemed`, the sum of the institutions' outstanding, hence at most
/// `totalReserve`. `outstanding` is signed: an institution that redeems cash another issued (a
/// merchant paid across institutions, 互联互通) takes over that much of the other's backing, and its
/// outstanding may fall below zero (it may then issue more than its reserve, by what it took over).
contract OperatorInstitutions is AccessControl, IIssuanceBook {
    // ----------------------------------------------------------------------------------------
    // Errors
    // ----------------------------------------------------------------------------------------

    /// @dev `institution` would issue `asked` fen with `outstanding` out already, beyond its `reserve`.
    error ReserveExceeded(uint256 institution, uint256 reserve, int256 outstanding, uint256 asked);
    /// @dev Withdrawing `asked` fen would leave `institution`'s reserve below its `outstanding` issuance.
    error ReserveBelowOutstanding(uint256 institution, uint256 reserve, int256 outstanding, uint256 asked);
    /// @dev No institution `institution`.
    error UnknownInstitution(uint256 institution);
    /// @dev `signer` is not the signing key of any institution.
    error NotInstitution(address signer);
    /// @dev `signer` is the signing key of `institution` already.
    error SignerTaken(address signer, uint256 institution);
    /// @dev `wallet` is served by `servedBy`, not by `institution`, which acted on it.
    error WalletServedElsewhere(address wallet, uint256 servedBy, uint256 institution);
    /// @dev Only the linked token reports issuance; `caller` is not it.
    error CashOnly(address caller);
    /// @dev Amounts must be positive and below 2**128 fen, and an allocation must leave the reserve
    /// below 2**128 fen.
    error InvalidReserveAmount(uint256 amount);
    /// @dev The zero address is no signing key.
    error ZeroSigner();

    // ----------------------------------------------------------------------------------------
    // Events
    // ----------------------------------------------------------------------------------------

    /// @dev The central bank authorised `institution`, signing with `signer`.
    event InstitutionAdded(uint256 indexed institution, address indexed signer, bytes32 name);
    /// @dev The central bank allocated `amount` fen of reserve to `institution` (`reserve` now).
    event ReserveAllocated(uint256 indexed institution, uint256 amount, uint256 reserve, address by);
    /// @dev The central bank withdrew `amount` fen of reserve from `institution` (`reserve` now).
    event ReserveWithdrawn(uint256 indexed institution, uint256 amount, uint256 reserve, address by);
    /// @dev `institution` registered `wallet`, which it serves.
    event WalletServed(address indexed wallet, uint256 indexed institution);
    /// @dev `institution` issued `amount` fen to `to` (`outstanding` now).
    event InstitutionIssued(uint256 indexed institution, address indexed to, uint256 amount, int256 outstanding);
    /// @dev `institution` redeemed `amount` fen from `from` (`outstanding` now).
    event InstitutionRedeemed(
        uint256 indexed institution, address indexed from, uint256 amount, int256 outstanding
    );

    // ----------------------------------------------------------------------------------------
    // Roles and storage
    // ----------------------------------------------------------------------------------------

    /// @notice Authorises institutions, allocates and withdraws their reserves.
    bytes32 public constant CENTRAL_BANK_ROLE = keccak256("CENTRAL_BANK_ROLE");

    /// @notice The first institution's reserve at deployment: the single-tier operator's issuance
    /// was bounded only by the token's supply limit (2**128 - 1 fen); the central bank withdraws
    /// down to the real figure.
    uint256 public constant FIRST_RESERVE = type(uint128).max;

    /// @notice One operator institution (as the views return it).
    struct Institution {
        address signer;
        bytes32 name;
        uint256 reserve;
        int256 outstanding;
        uint256 issued;
        uint256 redeemed;
    }

    /// @notice The token whose mints and redemptions this book records.
    address public immutable cash;
    /// @notice The wallet registry (this contract registers the wallets institutions serve).
    IWalletRegistrar public immutable registry;

    /// @dev One institution in storage: `reserve` and `issued` share a slot, `redeemed` has its own.
    struct Member {
        address signer;
        bytes32 name;
        uint128 reserve;
        uint128 issued;
        uint128 redeemed;
    }

    mapping(uint256 id => Member) private _members; // 1..count
    uint256 private _count;
    mapping(address signer => uint256 institution) private _institutionOf;
    mapping(address wallet => uint256 institution) private _servedBy;

    /// @notice Total reserve allocated, over all institutions.
    uint256 public totalReserve;

    /// @param cash_ The token (it calls `recordIssue` and `recordRedeem`).
    /// @param registry_ The wallet registry.
    /// @param admin Holds DEFAULT_ADMIN_ROLE.
    /// @param centralBank Holds CENTRAL_BANK_ROLE.
    /// @param firstSigner The signing key of institution #1 (the operator before the two tiers).
    constructor(address cash_, IWalletRegistrar registry_, address admin, address centralBank, address firstSigner) {
        cash = cash_;
        registry = registry_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(CENTRAL_BANK_ROLE, centralBank);
        uint256 first = _add(firstSigner, "institution-1");
        _allocate(first, FIRST_RESERVE, centralBank);
    }

    // ----------------------------------------------------------------------------------------
    // Central bank
    // ----------------------------------------------------------------------------------------

    /// @notice Authorise an institution signing with `signer`; its reserve starts at zero.
    /// @return institution Its number (1, 2, ...).
    function addInstitution(address signer, bytes32 name)
        external
        onlyRole(CENTRAL_BANK_ROLE)
        returns (uint256 institution)
    {
        return _add(signer, name);
    }

    /// @notice Allocate `amount` fen of reserve to `institution`: it may issue that much more.
    function allocateReserve(uint256 institution, uint256 amount) external onlyRole(CENTRAL_BANK_ROLE) {
        _allocate(institution, amount, msg.sender);
    }

    /// @notice Withdraw `amount` fen of `institution`'s reserve; never below what it has outstanding.
    function withdrawReserve(uint256 institution, uint256 amount) external onlyRole(CENTRAL_BANK_ROLE) {
        Member storage i = _get(institution);
        if (amount == 0 || amount > type(uint128).max) revert InvalidReserveAmount(amount);
        uint256 reserve = i.reserve;
        int256 outstanding = _outstanding(i);
        if (amount > reserve || int256(reserve - amount) < outstanding) {
            revert ReserveBelowOutstanding(institution, reserve, outstanding, amount);
        }
        i.reserve = uint128(reserve - amount); // below reserve < 2**128
        totalReserve -= amount;
        emit ReserveWithdrawn(institution, amount, reserve - amount, msg.sender);
    }

    // ----------------------------------------------------------------------------------------
    // Institutions
    // ----------------------------------------------------------------------------------------

    /// @notice Register `wallet` in the wallet registry as served by the caller's institution.
    /// @dev The registry's own rules apply (its custom errors bubble up).
    function registerWallet(address wallet, IWalletRegistry.Kind kind, uint8 tier, uint16 category, bytes32 identityHash)
        external
    {
        uint256 institution = _institutionOf[msg.sender];
        if (institution == 0) revert NotInstitution(msg.sender);
        _servedBy[wallet] = institution;
        emit WalletServed(wallet, institution);
        registry.register(wallet, kind, tier, category, identityHash);
    }

    // ----------------------------------------------------------------------------------------
    // The token's reports
    // ----------------------------------------------------------------------------------------

    /// @inheritdoc IIssuanceBook
    function recordIssue(address issuer, address to, uint256 amount) external {
        if (msg.sender != cash) revert CashOnly(msg.sender);
        uint256 institution = _serving(issuer, to);
        Member storage i = _members[institution];
        // One slot: reserve and issued; redeemed is read only. All below 2**128: no int256 overflow.
        uint256 reserve = i.reserve;
        uint256 issued = i.issued;
        int256 outstanding = int256(issued) - int256(uint256(i.redeemed));
        int256 after_ = outstanding + int256(amount);
        if (after_ > int256(reserve)) revert ReserveExceeded(institution, reserve, outstanding, amount);
        i.issued = SafeCast.toUint128(issued + amount);
        emit InstitutionIssued(institution, to, amount, after_);
    }

    /// @inheritdoc IIssuanceBook
    function recordRedeem(address issuer, address from, uint256 amount) external {
        if (msg.sender != cash) revert CashOnly(msg.sender);
        uint256 institution = _serving(issuer, from);
        Member storage i = _members[institution];
        uint128 redeemed = SafeCast.toUint128(i.redeemed + amount);
        i.redeemed = redeemed;
        emit InstitutionRedeemed(institution, from, amount, int256(uint256(i.issued)) - int256(uint256(redeemed)));
    }

    /// @inheritdoc IIssuanceBook
    /// @dev The replacement is new (the registry refuses a registered one), so it had no
    /// institution of its own; institution #1's wallets need no entry.
    function recordRecovery(address lost, address replacement) external {
        if (msg.sender != cash) revert CashOnly(msg.sender);
        uint256 institution = _servedBy[lost];
        if (institution != 0) {
            _servedBy[replacement] = institution;
            emit WalletServed(replacement, institution);
        }
    }

    // ----------------------------------------------------------------------------------------
    // Views
    // ----------------------------------------------------------------------------------------

    /// @notice How many institutions there are (numbered 1..count).
    function institutionCount() external view returns (uint256) {
        return _count;
    }

    /// @notice Institution `id`'s record.
    function institutionRecord(uint256 id) external view returns (Institution memory) {
        Member storage i = _get(id);
        return Institution(i.signer, i.name, i.reserve, _outstanding(i), i.issued, i.redeemed);
    }

    /// @notice Total issued, over all institutions (gross): the sum of theirs.
    function totalIssued() external view returns (uint256 total) {
        uint256 n = _count;
        for (uint256 k = 1; k <= n; ++k) {
            total += _members[k].issued;
        }
    }

    /// @notice Total redeemed, over all institutions (gross): the sum of theirs.
    function totalRedeemed() external view returns (uint256 total) {
        uint256 n = _count;
        for (uint256 k = 1; k <= n; ++k) {
            total += _members[k].redeemed;
        }
    }

    /// @notice The institution `signer` signs for (0: none).
    function institutionOf(address signer) external view returns (uint256) {
        return _institutionOf[signer];
    }

    /// @notice The institution serving `wallet` (institution #1 unless another registered it).
    function servedBy(address wallet) public view returns (uint256) {
        uint256 id = _servedBy[wallet];
        return id == 0 ? 1 : id;
    }

    /// @notice How many institutions have more outstanding than reserve (the invariant: none).
    function institutionsOverReserve() external view returns (uint256 count) {
        uint256 n = _count;
        for (uint256 k = 1; k <= n; ++k) {
            Member storage i = _members[k];
            if (_outstanding(i) > int256(uint256(i.reserve))) ++count;
        }
    }

    // ----------------------------------------------------------------------------------------
    // Internals
    // ----------------------------------------------------------------------------------------

    function _add(address signer, bytes32 name) private returns (uint256 id) {
        if (signer == address(0)) revert ZeroSigner();
        uint256 taken = _institutionOf[signer];
        if (taken != 0) revert SignerTaken(signer, taken);
        id = ++_count;
        Member storage i = _members[id];
        i.signer = signer;
        i.name = name;
        _institutionOf[signer] = id;
        emit InstitutionAdded(id, signer, name);
    }

    function _allocate(uint256 institution, uint256 amount, address by) private {
        Member storage i = _get(institution);
        if (amount == 0 || amount > type(uint128).max) revert InvalidReserveAmount(amount);
        uint256 reserve = i.reserve + amount;
        if (reserve > type(uint128).max) revert InvalidReserveAmount(amount);
        i.reserve = uint128(reserve);
        totalReserve += amount;
        emit ReserveAllocated(institution, amount, reserve, by);
    }

    function _get(uint256 id) private view returns (Member storage) {
        if (id == 0 || id > _count) revert UnknownInstitution(id);
        return _members[id];
    }

    /// @dev Issued less redeemed (both below 2**128: exact in int256).
    function _outstanding(Member storage i) private view returns (int256) {
        return int256(uint256(i.issued)) - int256(uint256(i.redeemed));
    }

    /// @dev The issuer's institution, which must serve `wallet`.
    function _serving(address issuer, address wallet) private view returns (uint256 institution) {
        institution = _institutionOf[issuer];
        if (institution == 0) revert NotInstitution(issuer);
        uint256 serving = servedBy(wallet);
        if (serving != institution) revert WalletServedElsewhere(wallet, serving, institution);
    }
}
