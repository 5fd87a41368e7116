// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {IPyth} from "@pythnetwork/pyth-sdk-solidity/IPyth.sol";
import {PythStructs} from "@pythnetwork/pyth-sdk-solidity/PythStructs.sol";
import {OracleVersion, OracleReceipt} from "./PerennialTypes.sol";

/// Perennial V2's Pyth keeper oracle for ONE price feed, for the local world: PythFactory +
/// KeeperFactory (commit, current, parameter, ids, toUnderlyingId, pyth) and KeeperOracle (request,
/// status, latest, at, next, timeout, global, localCallbacks) in one contract, with their real
/// signatures and rules (equilibria-xyz/perennial-v2 packages/oracle/contracts/keeper/*,
/// pyth/PythFactory.sol):
/// - versions are timestamps rounded up to `granularity` (current());
/// - commit(ids, version, data) verifies `data` with pyth.parsePriceFeedUpdates{value: msg.value};
///   the publish time must lie in [version + validFrom, version + validTo]; the price is converted
///   to 18 decimals then truncated to Fixed6 as PythFactory does;
/// - a requested version (== next()) must be committed with a valid price within `timeout`, after
///   which it can only be committed invalid (the latest price carried over); an unrequested version
///   must be newer than latest and older than next();
/// - a requested version's receipt charges settlementFee = syncFee + asyncFee x callbacks.
/// Simplified: the keeper fees are fixed DSU amounts set by the owner (the real ones are priced by
/// gas oracles) and are not paid out to committers here (the Market keeps what it charges).
contract KeeperOracleStandIn {
    using EnumerableSet for EnumerableSet.AddressSet;

    struct KeeperOracleParameter {
        uint256 latestGranularity;
        uint256 currentGranularity;
        uint256 effectiveAfter;
        uint256 oracleFee; // UFixed6
        uint256 validFrom;
        uint256 validTo;
    }

    struct KeeperOracleGlobal {
        uint64 currentIndex;
        uint64 latestIndex;
        uint64 latestVersion;
    }

    struct PriceResponse {
        int256 price;
        uint256 syncFee;
        uint256 asyncFee;
        uint256 oracleFee;
        bool valid;
    }

    error KeeperFactoryNotCreatedError();
    error KeeperFactoryVersionOutsideRangeError();
    error KeeperOracleVersionOutsideRangeError();
    error KeeperOracleInvalidPriceError();
    error KeeperOracleNotOracleError();
    error StandInOnlyOwner();

    event OracleProviderVersionRequested(uint256 indexed version, bool newPrice);
    event OracleProviderVersionFulfilled(OracleVersion version);

    IPyth public immutable pyth;
    uint256 public immutable timeout;
    address public immutable owner;
    address public market; // the one market whose orders request versions
    uint256 public syncFee; // UFixed6 DSU
    uint256 public asyncFee; // UFixed6 DSU, per settlement callback
    bytes32 private immutable _id;
    bytes32 private immutable _underlyingId;

    KeeperOracleParameter private _parameter;
    KeeperOracleGlobal private _global;
    mapping(uint256 => uint256) public requests;
    mapping(uint256 => PriceResponse) private _responses;
    mapping(uint256 => EnumerableSet.AddressSet) private _localCallbacks;

    constructor(IPyth pyth_, bytes32 id_, bytes32 underlyingId_, uint256 granularity, uint256 validFrom,
                uint256 validTo, uint256 timeout_, uint256 syncFee_, uint256 asyncFee_) {
        pyth = pyth_;
        _id = id_;
        _underlyingId = underlyingId_;
        timeout = timeout_;
        owner = msg.sender;
        syncFee = syncFee_;
        asyncFee = asyncFee_;
        _parameter = KeeperOracleParameter(granularity, granularity, 0, 0, validFrom, validTo);
    }

    function register(address market_) external {
        if (msg.sender != owner) revert StandInOnlyOwner();
        market = market_;
    }

    function updateFees(uint256 syncFee_, uint256 asyncFee_) external {
        if (msg.sender != owner) revert StandInOnlyOwner();
        (syncFee, asyncFee) = (syncFee_, asyncFee_);
    }

    // ---- factory side (KeeperFactory / PythFactory) ----------------------------------------------

    function factory() external view returns (address) {
        return address(this);
    }

    function ids(address oracle) external view returns (bytes32) {
        return oracle == address(this) ? _id : bytes32(0);
    }

    function toUnderlyingId(bytes32 id) public view returns (bytes32) {
        return id == _id ? _underlyingId : bytes32(0);
    }

    function parameter() external view returns (KeeperOracleParameter memory) {
        return _parameter;
    }

    function current() public view returns (uint256) {
        uint256 g = _parameter.currentGranularity;
        return (block.timestamp + g - 1) / g * g; // Math.ceilDiv(block.timestamp, g) * g
    }

    function commit(bytes32[] memory oracleIds, uint256 version, bytes calldata data) external payable {
        bool valid = data.length != 0;
        for (uint256 i; i < oracleIds.length; i++)
            if (toUnderlyingId(oracleIds[i]) == bytes32(0)) revert KeeperFactoryNotCreatedError();
        int256 price;
        if (valid) {
            bytes[] memory datas = new bytes[](1);
            datas[0] = data;
            bytes32[] memory underlying = new bytes32[](1);
            underlying[0] = _underlyingId;
            PythStructs.PriceFeed[] memory feeds =
                pyth.parsePriceFeedUpdates{value: msg.value}(datas, underlying, 0, type(uint64).max);
            PythStructs.Price memory p = feeds[0].price;
            if (p.publishTime < version + _parameter.validFrom || p.publishTime > version + _parameter.validTo)
                revert KeeperFactoryVersionOutsideRangeError();
            // PythFactory: significand x 10^(expo + 18) as Fixed18, then truncated to Fixed6.
            int256 exponent = int256(p.expo) + 18;
            int256 price18 = exponent < 0 ? int256(p.price) / int256(10 ** uint256(-exponent))
                                          : int256(p.price) * int256(10 ** uint256(exponent));
            price = price18 / 1e12;
        }
        if (oracleIds.length > 0) _commit(OracleVersion(version, price, valid));
    }

    // ---- oracle side (KeeperOracle) ------------------------------------------------------------

    function global() external view returns (KeeperOracleGlobal memory) {
        return _global;
    }

    function next() public view returns (uint256) {
        return requests[_global.latestIndex + 1];
    }

    function localCallbacks(uint256 version) external view returns (address[] memory) {
        return _localCallbacks[version].values();
    }

    function request(address, address account) external {
        if (msg.sender != market) revert KeeperOracleNotOracleError();
        uint256 currentTimestamp = current();
        _localCallbacks[currentTimestamp].add(account);
        if (requests[_global.currentIndex] == currentTimestamp) return;
        requests[++_global.currentIndex] = currentTimestamp;
        emit OracleProviderVersionRequested(currentTimestamp, true);
    }

    function status() external view returns (OracleVersion memory, uint256) {
        return (latest(), current());
    }

    function latest() public view returns (OracleVersion memory latestVersion) {
        (latestVersion, ) = at(_global.latestVersion);
    }

    function at(uint256 timestamp) public view returns (OracleVersion memory, OracleReceipt memory) {
        PriceResponse memory r = _responses[timestamp];
        return (OracleVersion(timestamp, r.price, r.valid),
                OracleReceipt(r.syncFee + r.asyncFee * _localCallbacks[timestamp].length(), r.oracleFee));
    }

    function _commit(OracleVersion memory version) private {
        if (version.timestamp == 0) revert KeeperOracleVersionOutsideRangeError();
        PriceResponse memory response;
        if (version.timestamp == next()) {
            if (block.timestamp <= next() + timeout) {
                if (!version.valid) revert KeeperOracleInvalidPriceError();
                (response.price, response.valid) = (version.price, true);
            } else {
                (response.price, response.valid) = (_responses[_global.latestVersion].price, false);
            }
            (response.syncFee, response.asyncFee, response.oracleFee) = (syncFee, asyncFee, _parameter.oracleFee);
            _global.latestIndex++;
        } else {
            if (!version.valid) revert KeeperOracleInvalidPriceError();
            if (version.timestamp <= _global.latestVersion || (next() != 0 && version.timestamp >= next()))
                revert KeeperOracleVersionOutsideRangeError();
            (response.price, response.valid) = (version.price, true);
        }
        _responses[version.timestamp] = response;
        _global.latestVersion = uint64(version.timestamp);
        emit OracleProviderVersionFulfilled(OracleVersion(version.timestamp, response.price, response.valid));
    }
}
