// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {PythStructs} from "@pythnetwork/pyth-sdk-solidity/PythStructs.sol";
import {KeeperOracleStandIn} from "./KeeperOracleStandIn.sol";
import "./PerennialTypes.sol";

interface IPythStaticFeeStandIn {
    function parsePriceFeedUpdates(bytes[] calldata updateData, bytes32[] calldata priceIds, uint64 minPublishTime,
                                   uint64 maxPublishTime) external payable returns (PythStructs.PriceFeed[] memory);
    function singleUpdateFeeInWei() external view returns (uint256);
    function priceFeedExists(bytes32 id) external view returns (bool);
}

/// Perennial V2's PythFactory on its KeeperFactory (equilibria-xyz/perennial-v2 packages/oracle/
/// contracts/pyth/PythFactory.sol, keeper/KeeperFactory.sol) on root's Factory, with the real
/// signatures and rules:
/// - create(oracleId, underlyingId, payoff) (owner) makes a KeeperOracle for a Pyth feed that exists,
///   registers it (instances, InstanceRegistered), oracles(id), ids(oracle), toUnderlyingId(id);
/// - current() is the block timestamp rounded up to the granularity in force (parameter());
/// - commit(ids, version, data) verifies `data` with pyth.parsePriceFeedUpdates{value: msg.value};
///   each publish time must lie in [version + validFrom, version + validTo]; each price is converted
///   to 18 decimals then truncated to Fixed6; each oracle's commit gets (version, msg.sender,
///   pyth.singleUpdateFeeInWei()) (empty data: an invalid version, value 0);
/// - settle(ids, versions, maxCounts) runs the oracles' settlement callbacks, paying msg.sender.
/// Stand-in: payoff providers are not supported (the payoff must be zero); KeeperOracles are made with
/// `new` and share this factory's `timeout` (the real one is the implementation's immutable).
contract PythFactoryStandIn {
    error KeeperFactoryNotCreatedError();
    error KeeperFactoryAlreadyCreatedError();
    error KeeperFactoryInvalidPayoffError();
    error KeeperFactoryInvalidSettleError();
    error KeeperFactoryVersionOutsideRangeError();
    error KeeperFactoryInvalidParameterError();
    error PythFactoryInvalidIdError();
    error OwnableNotOwnerError(address sender);

    event InstanceRegistered(address indexed instance);
    event OracleCreated(address indexed oracle, bytes32 indexed id);
    event ParameterUpdated(KeeperOracleParameter newParameter);

    IPythStaticFeeStandIn public immutable pyth;
    address public immutable commitmentGasOracle;
    address public immutable settlementGasOracle;
    address public immutable oracleFactory;
    uint256 public immutable timeout;
    address public immutable owner;

    mapping(bytes32 => address) public oracles;
    mapping(bytes32 => bytes32) public toUnderlyingId;
    mapping(address => bytes32) public ids;
    mapping(address => bool) private _instances;
    KeeperOracleParameter private _parameter;

    constructor(address pyth_, address commitmentGasOracle_, address settlementGasOracle_, address oracleFactory_,
                uint256 timeout_) {
        pyth = IPythStaticFeeStandIn(pyth_);
        commitmentGasOracle = commitmentGasOracle_;
        settlementGasOracle = settlementGasOracle_;
        oracleFactory = oracleFactory_;
        timeout = timeout_;
        owner = msg.sender;
        _parameter.currentGranularity = 1;
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert OwnableNotOwnerError(msg.sender);
        _;
    }

    function instances(address instance) external view returns (bool) {
        return _instances[instance];
    }

    function parameter() external view returns (KeeperOracleParameter memory) {
        return _parameter;
    }

    function updateParameter(uint256 newGranularity, uint256 newOracleFee, uint256 newValidFrom, uint256 newValidTo)
        external onlyOwner
    {
        uint256 currentTimestamp = current();
        if (currentTimestamp <= _parameter.effectiveAfter || newGranularity == 0) revert KeeperFactoryInvalidParameterError();
        _parameter = KeeperOracleParameter(_parameter.currentGranularity, newGranularity, currentTimestamp, newOracleFee,
                                           newValidFrom, newValidTo);
        emit ParameterUpdated(_parameter);
    }

    function create(bytes32 oracleId, bytes32 underlyingId, PayoffDefinition memory payoff)
        external onlyOwner returns (address newOracle)
    {
        if (!pyth.priceFeedExists(underlyingId)) revert PythFactoryInvalidIdError();
        if (oracles[oracleId] != address(0)) revert KeeperFactoryAlreadyCreatedError();
        if (payoff.provider != address(0) || payoff.decimals != 0) revert KeeperFactoryInvalidPayoffError();
        newOracle = address(new KeeperOracleStandIn(timeout));
        _instances[newOracle] = true;
        emit InstanceRegistered(newOracle);
        oracles[oracleId] = newOracle;
        ids[newOracle] = oracleId;
        toUnderlyingId[oracleId] = underlyingId;
        emit OracleCreated(newOracle, oracleId);
    }

    function current() public view returns (uint256) {
        uint256 g = block.timestamp <= _parameter.effectiveAfter ? _parameter.latestGranularity
                                                                 : _parameter.currentGranularity;
        return (block.timestamp + g - 1) / g * g; // Math.ceilDiv(block.timestamp, g) * g
    }

    function commit(bytes32[] memory oracleIds, uint256 version, bytes calldata data) external payable {
        bool valid = data.length != 0;
        bytes32[] memory underlying = new bytes32[](oracleIds.length);
        for (uint256 i; i < oracleIds.length; i++) {
            underlying[i] = toUnderlyingId[oracleIds[i]];
            if (underlying[i] == bytes32(0)) revert KeeperFactoryNotCreatedError();
        }
        int256[] memory prices = new int256[](oracleIds.length);
        uint256 cost;
        if (valid) {
            bytes[] memory datas = new bytes[](1);
            datas[0] = data;
            PythStructs.PriceFeed[] memory feeds =
                pyth.parsePriceFeedUpdates{value: msg.value}(datas, underlying, 0, type(uint64).max);
            cost = pyth.singleUpdateFeeInWei();
            for (uint256 i; i < feeds.length; i++) {
                PythStructs.Price memory p = feeds[i].price;
                if (p.publishTime < version + _parameter.validFrom || p.publishTime > version + _parameter.validTo)
                    revert KeeperFactoryVersionOutsideRangeError();
                // significand x 10^(expo + 18) as Fixed18, then Fixed6Lib.from (truncated toward zero)
                int256 exponent = int256(p.expo) + 18;
                int256 price18 = exponent < 0 ? int256(p.price) / int256(10 ** uint256(-exponent))
                                              : int256(p.price) * int256(10 ** uint256(exponent));
                prices[i] = price18 / 1e12;
            }
        }
        for (uint256 i; i < oracleIds.length; i++)
            KeeperOracleStandIn(oracles[oracleIds[i]]).commit(OracleVersion(version, prices[i], valid), msg.sender, cost);
    }

    function settle(bytes32[] memory oracleIds, uint256[] memory versions, uint256[] memory maxCounts) external {
        if (oracleIds.length == 0 || oracleIds.length != versions.length || oracleIds.length != maxCounts.length)
            revert KeeperFactoryInvalidSettleError();
        for (uint256 i; i < oracleIds.length; i++)
            KeeperOracleStandIn(oracles[oracleIds[i]]).settle(versions[i], maxCounts[i], msg.sender);
    }
}
