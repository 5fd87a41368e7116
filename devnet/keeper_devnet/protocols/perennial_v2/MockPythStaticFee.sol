// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {PythStructs} from "@pythnetwork/pyth-sdk-solidity/PythStructs.sol";

interface IMockPythStandIn {
    function parsePriceFeedUpdates(bytes[] calldata updateData, bytes32[] calldata priceIds, uint64 minPublishTime,
                                   uint64 maxPublishTime) external payable returns (PythStructs.PriceFeed[] memory);
    function getUpdateFee(bytes[] calldata updateData) external view returns (uint256);
    function priceFeedExists(bytes32 id) external view returns (bool);
    function getPriceUnsafe(bytes32 id) external view returns (PythStructs.Price memory);
}

/// @dev The real Pyth contract answers `singleUpdateFeeInWei()`, which Perennial's PythFactory calls
///      to price a commit (the `value` its commitment gas oracle reimburses); Pyth's MockPyth
///      (npm pyth-sdk-solidity 4.3.1) keeps that figure internal. This forwarder is the
///      `pyth` a local PythFactory is built on: it answers singleUpdateFeeInWei from MockPyth's own
///      getUpdateFee for one update and forwards the rest (updates pay MockPyth's fee with the value
///      sent) to the one MockPyth of the world, so every venue reads and writes the same prices.
contract MockPythStaticFee {
    IMockPythStandIn public immutable mockPyth;

    constructor(address mockPyth_) {
        mockPyth = IMockPythStandIn(mockPyth_);
    }

    function singleUpdateFeeInWei() external view returns (uint256) {
        return mockPyth.getUpdateFee(new bytes[](1));
    }

    function getUpdateFee(bytes[] calldata updateData) external view returns (uint256) {
        return mockPyth.getUpdateFee(updateData);
    }

    function priceFeedExists(bytes32 id) external view returns (bool) {
        return mockPyth.priceFeedExists(id);
    }

    function getPriceUnsafe(bytes32 id) external view returns (PythStructs.Price memory) {
        return mockPyth.getPriceUnsafe(id);
    }

    function parsePriceFeedUpdates(bytes[] calldata updateData, bytes32[] calldata priceIds, uint64 minPublishTime,
                                   uint64 maxPublishTime) external payable returns (PythStructs.PriceFeed[] memory) {
        return mockPyth.parsePriceFeedUpdates{value: msg.value}(updateData, priceIds, minPublishTime, maxPublishTime);
    }
}
