// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

interface IChainlinkFeedStandIn {
    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80);
}

/// The GasOracle of equilibria-xyz/root (gas/GasOracle.sol, as Perennial's KeeperFactory prices its keeper
/// fees with it), with its public surface (COMPUTE_GAS, CALLDATA_GAS, FEED, FEED_OFFSET, cost):
/// cost(value) = (value + block.basefee x COMPUTE_GAS + calldataBaseFee x CALLDATA_GAS) x ETH price,
/// an 18-decimal token amount; each *_GAS is gas x multiplier + base (18-decimal fixed point).
/// Stand-in: the calldata base fee, which root's L2 variants read from the L2 (the L1 base fee it
/// reports), is a figure the owner sets, so that a local chain whose base fee decays towards zero
/// still prices a commit like an L2 does.
contract GasOracleStandIn {
    uint256 public immutable COMPUTE_GAS; // UFixed18 gas
    uint256 public immutable CALLDATA_GAS; // UFixed18 gas
    address public immutable FEED; // Chainlink ETH-token feed
    int256 public immutable FEED_OFFSET; // 10 ^ feed decimals
    address public immutable owner;
    uint256 public calldataBaseFee; // wei per calldata gas

    error StandInOnlyOwner();

    constructor(address feed, uint256 decimals, uint256 computeGas, uint256 computeMultiplier, uint256 computeBase,
                uint256 calldataGas, uint256 calldataMultiplier, uint256 calldataBase, uint256 calldataBaseFee_) {
        FEED = feed;
        FEED_OFFSET = int256(10 ** decimals);
        COMPUTE_GAS = computeGas * computeMultiplier + computeBase * 1e18;
        CALLDATA_GAS = calldataGas * calldataMultiplier + calldataBase * 1e18;
        owner = msg.sender;
        calldataBaseFee = calldataBaseFee_;
    }

    function updateCalldataBaseFee(uint256 newFee) external {
        if (msg.sender != owner) revert StandInOnlyOwner();
        calldataBaseFee = newFee;
    }

    /// UFixed18 token amount: every product is an 18-decimal mul (a x b / 1e18, truncated).
    function cost(uint256 value) external view returns (uint256) {
        uint256 gasCost = value + block.basefee * COMPUTE_GAS / 1e18 + calldataBaseFee * CALLDATA_GAS / 1e18;
        (, int256 answer, , , ) = IChainlinkFeedStandIn(FEED).latestRoundData();
        uint256 etherPrice = uint256(answer * 1e18 / FEED_OFFSET);
        return gasCost * etherPrice / 1e18;
    }
}
