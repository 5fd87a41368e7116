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

/// Global.sol (PAccumulator6: @equilibria/root, the funding controller's last value and skew)
struct PAccumulator6 {
    int256 _value; // Fixed6 annual funding rate
    int256 _skew; // Fixed6 normalised skew the rate moves with until the next settlement
}

struct Global {
    uint256 currentId;
    uint256 latestId;
    uint256 protocolFee; // UFixed6
    uint256 oracleFee; // UFixed6: settlement fees charged, claimed by the market's Oracle
    uint256 riskFee; // UFixed6
    int256 latestPrice; // Fixed6
    int256 exposure; // Fixed6
    PAccumulator6 pAccumulator;
}

/// perennial-oracle: KeeperOracleParameter.sol, OracleParameter.sol, PriceResponse.sol,
/// IKeeperOracle.KeeperOracleGlobal / SettlementCallback, IKeeperFactory.PayoffDefinition,
/// IOracle.OracleGlobal / Epoch.
struct KeeperOracleParameter {
    uint256 latestGranularity;
    uint256 currentGranularity;
    uint256 effectiveAfter;
    uint256 oracleFee; // UFixed6
    uint256 validFrom;
    uint256 validTo;
}

struct OracleParameter {
    uint256 maxGranularity;
    uint256 maxSettlementFee; // UFixed6 DSU
    uint256 maxOracleFee; // UFixed6
}

struct PriceResponse {
    int256 price; // Fixed6
    uint256 syncFee; // UFixed6 DSU, paid to the committer of a requested version
    uint256 asyncFee; // UFixed6 DSU, paid per settlement callback
    uint256 oracleFee; // UFixed6
    bool valid;
}

struct KeeperOracleGlobal {
    uint64 latestVersion;
    uint64 currentIndex;
    uint64 latestIndex;
}

struct SettlementCallback {
    address market;
    address account;
    uint256 version;
}

struct PayoffDefinition {
    address provider;
    int16 decimals;
}

/// What the Market and the Oracle router ask of an oracle provider (IOracleProvider).
interface IOracleProviderStandIn {
    function status() external view returns (OracleVersion memory, uint256);
    function latest() external view returns (OracleVersion memory);
    function current() external view returns (uint256);
    function at(uint256 timestamp) external view returns (OracleVersion memory, OracleReceipt memory);
    function request(address market, address account) external;
}

/// root Instance / Factory views the stand-ins check each other with.
interface IInstanceStandIn {
    function factory() external view returns (address);
}

interface IFactoryStandIn {
    function owner() external view returns (address);
    function instances(address instance) external view returns (bool);
}

/// What oracles ask of the Market (IMarket).
interface IMarketStandIn {
    function settle(address account) external;
    function claimFee(address account) external returns (uint256);
    function token() external view returns (address);
}
