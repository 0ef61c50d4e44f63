// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @dev `payFor` rule: the payee must be a registered merchant wallet (card payments, payment codes,
/// voucher spends, quick-pay pulls, prepaid releases).
uint8 constant PAY_TO_MERCHANT = 1;
/// @dev `payFor` rule: the owner's tier payment and daily caps count this movement, as if the owner
/// had paid from their own wallet (card payments: money the holder spends through a family).
uint8 constant PAY_CHARGES_OWNER = 2;

/// @dev `payFor` rule: the money is a grant the owner only directs, not the owner's own (a voucher's
/// share: the programme issuer's money until spent, never redeemable or transferable by the holder,
/// and out of a court's reach), so the owner's holds do not apply to it; freeze still does.
uint8 constant PAY_GRANT = 4;

/// @title IDigitalCash
/// @notice What the other contract families call on the digital cash besides ERC20: the one way a
/// family contract moves money it holds for someone (its *economic owner*) to a payee.
interface IDigitalCash is IERC20 {
    /// @notice Move `amount` fen held by the calling family contract for `owner` to `to`, judged by
    /// the token's one policy: pause; `owner` and `to` registered and not frozen; `to` a merchant when
    /// `rules` has `PAY_TO_MERCHANT`; `owner`'s payment and daily caps when it has `PAY_CHARGES_OWNER`;
    /// `to`'s balance cap always; `owner`'s holds (`AmountFrozenInFamily`: while `owner`'s own balance
    /// does not cover them, nothing is paid to anyone but `owner`) unless it has `PAY_GRANT`.
    /// Callable only by family contracts (cap-exempt wallets).
    function payFor(address owner, address to, uint256 amount, uint8 rules) external;
}
