// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {Disbursement} from "../../contracts/disburse/Disbursement.sol";
import {IWalletRegistry} from "../../contracts/token/IWalletRegistry.sol";

/// @notice `forge test` on this repo (no forge-std needed: a revert fails a test). A 3-leaf batch
/// tree as chain/merkle.py and the npm StandardMerkleTree build it for batch id 0x11…11 and rows (0x0A…, 100), (0x0B…, 200), (0x0C…, 300): the contract's leaves verify under
/// the root with the published proofs, a changed amount does not.
contract StandardMerkleTreeTest {
    bytes32 internal constant BATCH = bytes32(0x1111111111111111111111111111111111111111111111111111111111111111);
    bytes32 internal constant ROOT = 0x55aff8273bdded72ee73888f9bb9d05f3aac6de35e0c5b41343bbcf54b066d75;
    bytes32 internal constant SHARED = 0xdd27402a1da3fdf4199e07710aa660a3ea402fc60c8616b965e813553a129b06;

    error NotVerified(uint256 index);
    error VerifiedTampered();

    Disbursement internal disburse;

    function setUp() public {
        disburse = new Disbursement(IERC20(address(0)), IWalletRegistry(address(0)));
    }

    function _proof(uint256 index) internal pure returns (bytes32[] memory proof) {
        if (index == 0) {
            proof = new bytes32[](1);
            proof[0] = 0xe7102d2769a1597e42d47dab246e3438cc14fba78bea24ff25508b8a473df318;
        } else {
            proof = new bytes32[](2);
            proof[0] = index == 1
                ? bytes32(0x728d254ed0eb4a3857835929c217e88b19309b3fb7c0712a38db8eecf602278c)
                : bytes32(0x7dd20777c225f77d634e45301e3be7d586b32b1b881e8d951e952003b54208a2);
            proof[1] = SHARED;
        }
    }

    function _recipient(uint256 index) internal pure returns (address) {
        address[3] memory rows = [
            0x0A0A0a0a0a0a0a0A0a0a0A0a0A0A0A0a0a0a0a0a,
            0x0B0b0b0b0B0B0B0B0b0b0b0b0B0B0B0B0B0b0B0b,
            0x0C0c0C0c0c0c0c0c0c0c0C0C0C0c0c0C0c0c0c0c
        ];
        return rows[index];
    }

    function test_everyLeafVerifiesUnderTheStandardRoot() public view {
        for (uint256 i = 0; i < 3; ++i) {
            bytes32 leaf = disburse.leafHash(BATCH, i, _recipient(i), 100 * (i + 1));
            if (!MerkleProof.verify(_proof(i), ROOT, leaf)) revert NotVerified(i);
        }
    }

    function test_aChangedAmountDoesNotVerify() public view {
        bytes32 leaf = disburse.leafHash(BATCH, 1, _recipient(1), 201);
        if (MerkleProof.verify(_proof(1), ROOT, leaf)) revert VerifiedTampered();
    }
}
