// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

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

    /// @notice Whether `wallet` is registered.
    function isRegistered(address wallet) external view returns (bool);

    /// @notice Whether `wallet` is frozen by the regulator.
    function isFrozen(address wallet) external view returns (bool);

    /// @notice The kind of `wallet` (None when not registered).
    function kindOf(address wallet) external view returns (Kind);

    /// @notice The merchant category code of `wallet` (0 unless it is a merchant).
    function categoryOf(address wallet) external view returns (uint16);
}
