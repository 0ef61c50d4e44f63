// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title PlainERC20
/// @notice A plain OpenZeppelin ERC20 with an open mint: the gas baseline the benchmark measures
/// DigitalCash against (the price of the permission checks). Never deployed by `chain deploy`.
contract PlainERC20 is ERC20 {
    constructor() ERC20("Plain", "PLN") {}

    /// @notice Mint `amount` to `to` (benchmark only).
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
