// SPDX-License-Identifier: MIT
pragma solidity ^0.8.19;

import {IOracle} from "@morpho-org/morpho-blue/src/interfaces/IOracle.sol";
import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";

/// Morpho Blue oracle for the local world: the price of the collateral token in the loan token from
/// the two tokens' USD feeds (Chainlink-style), so moving a feed moves every market that uses it.
/// Units are Morpho's IOracle: 1 collateral unit in loan units scaled by 1e36 (that is, with
/// 36 + loanDecimals - collateralDecimals decimals), rounded down.
contract ChainlinkPairOracle is IOracle {
    AggregatorV3Interface public immutable COLLATERAL_FEED;
    AggregatorV3Interface public immutable LOAN_FEED;
    uint256 public immutable SCALE_FACTOR;

    constructor(
        AggregatorV3Interface collateralFeed,
        AggregatorV3Interface loanFeed,
        uint256 collateralDecimals,
        uint256 loanDecimals
    ) {
        COLLATERAL_FEED = collateralFeed;
        LOAN_FEED = loanFeed;
        // (c / 10^cf) / (l / 10^lf) USD ratio per whole token, times 10^loanDecimals / 10^collateralDecimals
        // per unit, times 1e36: c * 10^(36 + loanDecimals + lf - collateralDecimals - cf) / l.
        SCALE_FACTOR = 10 ** (36 + loanDecimals + uint256(loanFeed.decimals()) - collateralDecimals
            - uint256(collateralFeed.decimals()));
    }

    function price() external view returns (uint256) {
        return _answer(COLLATERAL_FEED) * SCALE_FACTOR / _answer(LOAN_FEED);
    }

    function _answer(AggregatorV3Interface feed) internal view returns (uint256) {
        (, int256 answer,,,) = feed.latestRoundData();
        require(answer > 0, "non-positive feed answer");
        return uint256(answer);
    }
}
