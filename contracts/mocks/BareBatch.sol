// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @dev The open mint of the `PlainERC20` mock.
interface IOpenMint {
    function mint(address to, uint256 amount) external;
}

/// @title BareBatch
/// @notice The node's limit for the benchmarks: a plain loop of ERC20 transfers (out of this
/// contract's own balance) or mints, with no permission checks and no records, so that a batch
/// path of the platform can be read as a fraction of what the node itself sustains.
/// Never deployed by `chain deploy`.
contract BareBatch {
    /// @dev `recipients` and `amounts` differ in length.
    error LengthMismatch(uint256 recipients, uint256 amounts);
    /// @dev The token refused a transfer (a token that returns false instead of reverting).
    error TransferRefused(address to, uint256 amount);

    /// @dev One batch done (one event a batch, as a payout chunk emits one summary).
    event BatchSent(address indexed token, uint256 rows);

    /// @notice Transfer `amounts[i]` of `token`, held by this contract, to `recipients[i]`.
    function transferBatch(IERC20 token, address[] calldata recipients, uint256[] calldata amounts) external {
        if (recipients.length != amounts.length) revert LengthMismatch(recipients.length, amounts.length);
        for (uint256 i; i < recipients.length; ++i) {
            if (!token.transfer(recipients[i], amounts[i])) revert TransferRefused(recipients[i], amounts[i]);
        }
        emit BatchSent(address(token), recipients.length);
    }

    /// @notice Mint `amounts[i]` of `token` (an open-mint mock) to `recipients[i]`.
    function mintBatch(IOpenMint token, address[] calldata recipients, uint256[] calldata amounts) external {
        if (recipients.length != amounts.length) revert LengthMismatch(recipients.length, amounts.length);
        for (uint256 i; i < recipients.length; ++i) {
            token.mint(recipients[i], amounts[i]);
        }
        emit BatchSent(address(token), recipients.length);
    }
}
