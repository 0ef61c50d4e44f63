// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title IIssuanceBook
/// @notice The central bank's book of the operator institutions (two-tier operation): the token
/// reports every issuance and redemption to it, and it refuses (reverts) one that no institution may
/// make: an issuer that is no institution's signer, a wallet another institution serves, an issuance
/// beyond the institution's reserve.
interface IIssuanceBook {
    /// @notice `issuer` created `amount` fen in `to`; reverts when it may not.
    /// @dev Callable only by the linked token.
    function recordIssue(address issuer, address to, uint256 amount) external;

    /// @notice `issuer` redeemed `amount` fen of `from`; reverts when it may not.
    /// @dev Callable only by the linked token.
    function recordRedeem(address issuer, address from, uint256 amount) external;

    /// @notice `lost` was recovered to `replacement`: the replacement is served where `lost` was.
    /// @dev Callable only by the linked token.
    function recordRecovery(address lost, address replacement) external;
}
