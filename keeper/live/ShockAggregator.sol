// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// What `keeper rehearse` puts, on a fork only, in place of a Chainlink aggregator (the contract
/// under a feed's proxy, or the feed itself) to apply a price shock: an AggregatorV3 that answers
/// from four storage slots the rehearsal writes with anvil_setStorageAt. Every round answers the
/// shocked price.
/// Its runtime bytecode is keeper/live/aggregator.py's RUNTIME (compiled by the pinned solcjs,
/// optimizer 200 runs, EVM paris; tests/live/test_aggregator.py recompiles and compares).
contract ShockAggregator {
    int256 internal answer; // slot 0
    uint256 internal updatedAt; // slot 1
    uint256 internal roundId; // slot 2
    uint256 internal decimals_; // slot 3

    function decimals() external view returns (uint8) {
        return uint8(decimals_);
    }

    function description() external pure returns (string memory) {
        return "keeper rehearsal price shock";
    }

    function version() external pure returns (uint256) {
        return 4;
    }

    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        return (uint80(roundId), answer, updatedAt, updatedAt, uint80(roundId));
    }

    function getRoundData(uint80 id) external view returns (uint80, int256, uint256, uint256, uint80) {
        return (id, answer, updatedAt, updatedAt, id);
    }

    function latestAnswer() external view returns (int256) {
        return answer;
    }

    function latestTimestamp() external view returns (uint256) {
        return updatedAt;
    }

    function latestRound() external view returns (uint256) {
        return roundId;
    }

    function getAnswer(uint256) external view returns (int256) {
        return answer;
    }

    function getTimestamp(uint256) external view returns (uint256) {
        return updatedAt;
    }
}
