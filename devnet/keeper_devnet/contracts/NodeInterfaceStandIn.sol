// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

// Stand-in for Arbitrum's NodeInterface (0x00000000000000000000000000000000000000C8), which is not a
// contract on Arbitrum but a virtual one answered by the node, so no published bytecode exists.
// Same signature as @arbitrum/nitro-contracts src/node-interface/NodeInterface.sol
// gasEstimateL1Component. Its pricing is this file's own simple model, not ArbOS's: the L1 cost is
// l1PricePerUnit x 16 x (calldata bytes + 140 bytes of fixed overhead), returned as L2 gas units at
// the L2 base fee (Arbitrum likewise charges the L1 part as L2 gas).
contract NodeInterfaceStandIn {
    uint256 public l1PricePerUnit; // slot 0, set with anvil_setStorageAt
    uint256 public l2BaseFee; // slot 1: the L2 base fee to price with when block.basefee is 0 (eth_call)

    function gasEstimateL1Component(address, bool, bytes calldata data)
        external
        payable
        returns (uint64 gasEstimateForL1, uint256 baseFee, uint256 l1BaseFeeEstimate)
    {
        baseFee = block.basefee != 0 ? block.basefee : l2BaseFee;
        l1BaseFeeEstimate = l1PricePerUnit;
        uint256 posterCost = l1PricePerUnit * 16 * (data.length + 140);
        gasEstimateForL1 = uint64(baseFee == 0 ? 0 : (posterCost + baseFee - 1) / baseFee);
    }
}
