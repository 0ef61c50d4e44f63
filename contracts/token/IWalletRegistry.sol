// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

// A movement's policy packed in one word (`IWalletRegistry.movementPolicies`, the token's hot path:
// two words cross the call instead of two decoded structs). Bits 0-79 balance cap, 80-159 payment
// cap, 160-239 daily cap, in fen (`POLICY_NO_LIMIT` there means no limit); then three flags.
uint256 constant POLICY_BALANCE_CAP = 0;
uint256 constant POLICY_PAYMENT_CAP = 80;
uint256 constant POLICY_DAILY_CAP = 160;
uint256 constant POLICY_NO_LIMIT = type(uint80).max;
uint256 constant POLICY_REGISTERED = 1 << 240;
uint256 constant POLICY_FROZEN = 1 << 241;
uint256 constant POLICY_CAP_EXEMPT = 1 << 242;
/// @dev The wallet is retired (its key was lost and its balance recovered to a successor).
uint256 constant POLICY_RETIRED = 1 << 243;
/// @dev Part of the wallet's balance is held (judicial freeze, AML hold): read `heldOf`.
uint256 constant POLICY_HELD = 1 << 244;

/// @dev The limit at bit `shift` of a packed policy word, `type(uint256).max` for no limit.
function policyLimit(uint256 word, uint256 shift) pure returns (uint256 limit) {
    limit = (word >> shift) & POLICY_NO_LIMIT;
    if (limit == POLICY_NO_LIMIT) limit = type(uint256).max;
}

/// @title IWalletRegistry
/// @notice What the other contract families read from the wallet registry: whether a wallet may
/// take part and which limits apply to it.
interface IWalletRegistry {
    /// @dev Kinds of wallet, in the style of e-CNY personal and corporate wallets.
    enum Kind {
        None,
        Personal,
        Merchant,
        Institution
    }

    /// @dev Limits of a wallet tier, in fen. `type(uint256).max` means "no limit".
    struct TierLimits {
        uint256 balanceCap;
        uint256 paymentCap;
        uint256 dailyCap;
    }

    /// @dev Everything the token needs to decide on a movement touching `wallet`, read in one call.
    struct Policy {
        bool registered;
        bool frozen;
        bool capExempt;
        TierLimits limits;
    }

    /// @notice The policy that applies to `wallet` now.
    function policyOf(address wallet) external view returns (Policy memory);

    /// @notice The policies of both ends of a movement in one call, packed (see `POLICY_*` above;
    /// `policyOf` is the readable form); the zero address (a mint or a burn) gets 0.
    function movementPolicies(address from, address to) external view returns (uint256 sender, uint256 receiver);

    /// @notice Whether `wallet` is registered.
    function isRegistered(address wallet) external view returns (bool);

    /// @notice Whether `wallet` is frozen by the regulator, or retired (a retired wallet is frozen
    /// for good, so every family that refuses frozen wallets refuses retired ones as well).
    function isFrozen(address wallet) external view returns (bool);

    /// @notice The identity hash of `wallet`: the holder's for a personal wallet, the owning person's
    /// or entity's for a merchant or institution wallet (zero when not registered).
    function identityOf(address wallet) external view returns (bytes32);

    /// @notice The amount of `wallet`'s balance under holds (judicial freeze, AML hold), in fen:
    /// the token refuses every movement out of `wallet` that would leave less than this.
    function heldOf(address wallet) external view returns (uint256);

    /// @notice The kind of `wallet` (None when not registered).
    function kindOf(address wallet) external view returns (Kind);

    /// @notice The merchant category code of `wallet` (0 unless it is a merchant).
    function categoryOf(address wallet) external view returns (uint16);

    /// @notice The wallet that replaced the retired `wallet` in an approved recovery (zero while
    /// `wallet` is not retired): the one address a family may move `wallet`'s holdings to.
    function successorOf(address wallet) external view returns (address);
}

// ----------------------------------------------------------------------------------------
// Recovery of family-held assets (shared by every family that holds something for a wallet)
// ----------------------------------------------------------------------------------------

/// @dev `wallet` is not retired: nothing it holds in a family may be moved for a recovery.
error RecoveryNotRetired(address wallet);
/// @dev `wallet` was recovered to `successor`; a move for it must go there, not to `given`.
error RecoveryWrongSuccessor(address wallet, address successor, address given);
/// @dev The retired `wallet` holds nothing here (never did, or it was moved already).
error RecoveryNothingHeld(address wallet);

/// @dev Reverts unless `lost` is retired and `successor` is exactly its registered successor (so a
/// family's recovery move can be permissionless: the destination is the registry's, never the caller's).
function requireSuccessor(IWalletRegistry registry, address lost, address successor) view {
    address expected = registry.successorOf(lost);
    if (expected == address(0)) revert RecoveryNotRetired(lost);
    if (successor != expected) revert RecoveryWrongSuccessor(lost, expected, successor);
}

/// @title IRegistryMoves
/// @notice The two movements the token makes only on the wallet registry's word, after a maker-checker
/// decision recorded there: a court order's forced transfer and a lost wallet's recovery.
interface IRegistryMoves {
    /// @notice Move `amount` fen from `from` to `to` for an approved court order: held and frozen
    /// money included, no sender cap charged (not a payment); `to` admitted and within its balance cap.
    function courtTransfer(address from, address to, uint256 amount) external;

    /// @notice Move the whole holding of the retired `lost` wallet (balance and the day's spending)
    /// to `replacement`, its successor.
    function recoverHolding(address lost, address replacement) external;

    /// @notice The balance of `wallet`, in fen.
    function balanceOf(address wallet) external view returns (uint256);
}
