// SPDX-License-Identifier: MIT
pragma solidity ^0.8.17;

import {IPyth} from "@gearbox-protocol/oracles-v3/contracts/interfaces/pyth/IPyth.sol";
import {PythStructs} from "@gearbox-protocol/oracles-v3/contracts/interfaces/pyth/PythStructs.sol";

/// @dev Pyth's MockPyth (@pythnetwork/pyth-sdk-solidity) lacks `latestPriceInfoPublishTime(bytes32)`,
///      which the real Pyth contract has (the publish time stored for a feed, 0 if none) and which
///      Gearbox's PythPriceFeed.updatePrice calls first. This stand-in is the `pyth` a local
///      PythPriceFeed is built on: it answers that view from MockPyth's stored price and forwards the
///      rest of IPyth (updates pay MockPyth's fee with the value sent) to the one MockPyth of the
///      world, so every venue reads and writes the same prices.
contract MockPythPublishTime is IPyth {
    IPyth public immutable mockPyth;

    constructor(address mockPyth_) {
        mockPyth = IPyth(mockPyth_);
    }

    function updatePriceFeeds(bytes[] calldata updateData) external payable override {
        mockPyth.updatePriceFeeds{value: msg.value}(updateData);
    }

    function getPriceUnsafe(bytes32 id) external view override returns (PythStructs.Price memory) {
        return mockPyth.getPriceUnsafe(id);
    }

    function getUpdateFee(bytes[] calldata updateData) external view override returns (uint256) {
        return mockPyth.getUpdateFee(updateData);
    }

    /// @dev As the real Pyth: the stored publish time, 0 for a feed never updated (MockPyth reverts
    ///      PriceFeedNotFound on those).
    function latestPriceInfoPublishTime(bytes32 id) external view override returns (uint64) {
        try mockPyth.getPriceUnsafe(id) returns (PythStructs.Price memory p) {
            return uint64(p.publishTime);
        } catch {
            return 0;
        }
    }
}
