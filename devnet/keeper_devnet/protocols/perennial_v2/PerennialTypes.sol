// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// Perennial V2's value types as the stand-ins use them (equilibria-xyz/perennial-v2
/// packages/core/contracts/types/*.sol): the same fields in the same order, so that the ABI tuples,
/// the OrderCreated topic and the view answers are the real ones. UFixed6 / Fixed6 (6-decimal
/// fixed point, @equilibria/root) are written as uint256 / int256, which is what they encode to.

/// OracleVersion.sol
struct OracleVersion {
    uint256 timestamp;
    int256 price; // Fixed6
    bool valid;
}

/// OracleReceipt.sol
struct OracleReceipt {
    uint256 settlementFee; // UFixed6 DSU: the keeper fees of the version, charged to its orders
    uint256 oracleFee; // UFixed6 fraction
}

/// Position.sol
struct Position {
    uint256 timestamp;
    uint256 maker; // UFixed6
    uint256 long; // UFixed6
    uint256 short; // UFixed6
}

/// Local.sol
struct Local {
    uint256 currentId;
    uint256 latestId;
    int256 collateral; // Fixed6 DSU
    uint256 claimable; // UFixed6 DSU
}

/// Order.sol (13 fields)
struct Order {
    uint256 timestamp;
    uint256 orders;
    int256 collateral; // Fixed6
    uint256 makerPos;
    uint256 makerNeg;
    uint256 longPos;
    uint256 longNeg;
    uint256 shortPos;
    uint256 shortNeg;
    uint256 protection;
    uint256 invalidation;
    uint256 makerReferral;
    uint256 takerReferral;
}

/// Guarantee.sol (9 fields)
struct Guarantee {
    uint256 orders;
    int256 notional; // Fixed6
    uint256 longPos;
    uint256 longNeg;
    uint256 shortPos;
    uint256 shortNeg;
    uint256 takerFee;
    uint256 orderReferral;
    uint256 solverReferral;
}

/// @equilibria/root LinearAdiabatic6, NoopAdiabatic6, UJumpRateUtilizationCurve6, PController6
struct LinearAdiabatic6 {
    uint256 linearFee;
    uint256 proportionalFee;
    uint256 adiabaticFee;
    uint256 scale;
}

struct NoopAdiabatic6 {
    uint256 linearFee;
    uint256 proportionalFee;
    uint256 scale;
}

struct UJumpRateUtilizationCurve6 {
    uint256 minRate;
    uint256 maxRate;
    uint256 targetRate;
    uint256 targetUtilization;
}

struct PController6 {
    uint256 k;
    int256 min;
    int256 max;
}

/// RiskParameter.sol
struct RiskParameter {
    uint256 margin;
    uint256 maintenance;
    LinearAdiabatic6 takerFee;
    NoopAdiabatic6 makerFee;
    uint256 makerLimit;
    uint256 efficiencyLimit;
    uint256 liquidationFee; // multiple of the version's settlement fee paid to a liquidator
    UJumpRateUtilizationCurve6 utilizationCurve;
    PController6 pController;
    uint256 minMargin;
    uint256 minMaintenance;
    uint256 staleAfter; // seconds
    bool makerReceiveOnly;
}

/// What the Market asks of its oracle (IOracleProvider: status, at, request).
interface IOracleProviderStandIn {
    function status() external view returns (OracleVersion memory, uint256);
    function at(uint256 timestamp) external view returns (OracleVersion memory, OracleReceipt memory);
    function request(address market, address account) external;
}
