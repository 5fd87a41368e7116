// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import "./PerennialTypes.sol";

interface IKeeperFactoryStandIn {
    function current() external view returns (uint256);
    function parameter() external view returns (KeeperOracleParameter memory);
    function oracleFactory() external view returns (address);
    function commitmentGasOracle() external view returns (address);
    function settlementGasOracle() external view returns (address);
    function owner() external view returns (address);
}

interface IOracleFactoryParameterStandIn {
    function parameter() external view returns (OracleParameter memory);
}

interface IGasOracleStandIn {
    function cost(uint256 value) external view returns (uint256);
}

interface IOracleRouterStandIn {
    function market() external view returns (address);
    function claimFee(uint256 settlementFeeRequested) external;
}

/// Perennial V2's KeeperOracle (equilibria-xyz/perennial-v2 packages/oracle/contracts/keeper/
/// KeeperOracle.sol, types/PriceResponse.sol): one price feed's versions, an instance of a
/// KeeperFactory (here PythFactoryStandIn), with the real signatures, layouts and rules:
/// - request(market, account) is onlyOracle (the Oracle router registered by the factory's owner): it
///   records the account as a settlement callback of the current version and requests that version
///   once (requests[++currentIndex]); next() is the oldest requested version not committed;
/// - commit(version, receiver, value) is onlyFactory: a requested version (== next()) committed within
///   `timeout` of it must carry a valid price; after the timeout it can only be committed invalid (the
///   latest price carried over). Its PriceResponse prices the keepers: syncFee = commitment gas
///   oracle cost(value), asyncFee = settlement gas oracle cost(0) (18 -> 6 decimals rounded up),
///   both scaled down together if syncFee + asyncFee x callbacks exceeds the oracle factory's
///   maxSettlementFee. An unrequested version must be valid, newer than latest and older than next().
///   The commit then settles the market (settle(0)), claims the version's settlement fee through the
///   Oracle router and pays syncFee to `receiver`;
/// - settle(version, maxCount, receiver) (onlyFactory) settles up to maxCount callback accounts and
///   pays `receiver` asyncFee for each;
/// - at(version) = (OracleVersion, OracleReceipt(syncFee + asyncFee x callbacks, oracleFee)).
/// Stand-in: made with `new` by its factory (the real one is a proxy of the factory's implementation);
/// its owner is the factory's owner, as root's Instance has it.
contract KeeperOracleStandIn {
    using EnumerableSet for EnumerableSet.AddressSet;

    error KeeperOracleVersionOutsideRangeError();
    error KeeperOracleInvalidPriceError();
    error KeeperOracleInvalidCallbackError();
    error KeeperOracleNotOracleError();
    error InstanceNotFactoryError(address sender);
    error InstanceNotOwnerError(address sender);

    event OracleUpdated(address newOracle);
    event OracleProviderVersionRequested(uint256 indexed version, bool newPrice);
    event OracleProviderVersionFulfilled(OracleVersion version);
    event CallbackRequested(SettlementCallback indexed callback);
    event CallbackFulfilled(SettlementCallback indexed callback);

    address public immutable factory;
    uint256 public immutable timeout;
    address public oracle;
    mapping(uint256 => uint256) public requests;

    KeeperOracleGlobal private _global;
    mapping(uint256 => PriceResponse) private _responses;
    mapping(uint256 => EnumerableSet.AddressSet) private _localCallbacks;

    constructor(uint256 timeout_) {
        factory = msg.sender;
        timeout = timeout_;
    }

    modifier onlyFactory() {
        if (msg.sender != factory) revert InstanceNotFactoryError(msg.sender);
        _;
    }

    modifier onlyOracle() {
        if (msg.sender != oracle) revert KeeperOracleNotOracleError();
        _;
    }

    function owner() public view returns (address) {
        return IKeeperFactoryStandIn(factory).owner();
    }

    function register(address newOracle) external {
        if (msg.sender != owner()) revert InstanceNotOwnerError(msg.sender);
        oracle = newOracle;
        emit OracleUpdated(newOracle);
    }

    function global() external view returns (KeeperOracleGlobal memory) {
        return _global;
    }

    function next() public view returns (uint256) {
        return requests[_global.latestIndex + 1];
    }

    function responses(uint256 timestamp) external view returns (PriceResponse memory) {
        return _responses[timestamp];
    }

    function localCallbacks(uint256 version) external view returns (address[] memory) {
        return _localCallbacks[version].values();
    }

    function current() public view returns (uint256) {
        return IKeeperFactoryStandIn(factory).current();
    }

    function request(address, address account) external onlyOracle {
        uint256 currentTimestamp = current();
        _localCallbacks[currentTimestamp].add(account);
        emit CallbackRequested(SettlementCallback(IOracleRouterStandIn(oracle).market(), account, currentTimestamp));
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
                OracleReceipt(_settlementFee(r, _localCallbacks[timestamp].length()), r.oracleFee));
    }

    function commit(OracleVersion memory version, address receiver, uint256 value) external onlyFactory {
        if (version.timestamp == 0) revert KeeperOracleVersionOutsideRangeError();
        PriceResponse memory response = version.timestamp == next()
            ? _commitRequested(version, value)
            : _commitUnrequested(version);
        _global.latestVersion = uint64(version.timestamp);
        emit OracleProviderVersionFulfilled(version);

        address market = IOracleRouterStandIn(oracle).market();
        IMarketStandIn(market).settle(address(0));
        IOracleRouterStandIn(oracle).claimFee(_settlementFee(response, _localCallbacks[version.timestamp].length()));
        _push(market, receiver, response.syncFee);
    }

    function settle(uint256 version, uint256 maxCount, address receiver) external onlyFactory {
        EnumerableSet.AddressSet storage callbacks = _localCallbacks[version];
        if (_global.latestVersion < version) revert KeeperOracleVersionOutsideRangeError();
        if (maxCount == 0 || callbacks.length() == 0) revert KeeperOracleInvalidCallbackError();
        address market = IOracleRouterStandIn(oracle).market();
        for (uint256 i; i < maxCount && callbacks.length() > 0; i++) {
            address account = callbacks.at(0);
            IMarketStandIn(market).settle(account);
            callbacks.remove(account);
            emit CallbackFulfilled(SettlementCallback(market, account, version));
            _push(market, receiver, _responses[version].asyncFee);
        }
    }

    function _commitRequested(OracleVersion memory version, uint256 value) private returns (PriceResponse memory r) {
        IKeeperFactoryStandIn f = IKeeperFactoryStandIn(factory);
        if (block.timestamp <= next() + timeout) {
            if (!version.valid) revert KeeperOracleInvalidPriceError();
            (r.price, r.valid) = (version.price, true);
        } else {
            (r.price, r.valid) = (_responses[_global.latestVersion].price, false);
        }
        r.syncFee = _to6RoundUp(IGasOracleStandIn(f.commitmentGasOracle()).cost(value));
        r.asyncFee = _to6RoundUp(IGasOracleStandIn(f.settlementGasOracle()).cost(0));
        r.oracleFee = f.parameter().oracleFee;
        // PriceResponseLib.applyFeeMaximum: both fees scaled by max / total when over the maximum.
        uint256 maxFee = IOracleFactoryParameterStandIn(f.oracleFactory()).parameter().maxSettlementFee;
        uint256 total = _settlementFee(r, _localCallbacks[version.timestamp].length());
        if (total > maxFee) {
            r.syncFee = r.syncFee * maxFee / total;
            r.asyncFee = r.asyncFee * maxFee / total;
        }
        _responses[version.timestamp] = r;
        _global.latestIndex++;
    }

    function _commitUnrequested(OracleVersion memory version) private returns (PriceResponse memory r) {
        if (!version.valid) revert KeeperOracleInvalidPriceError();
        if (version.timestamp <= _global.latestVersion || (next() != 0 && version.timestamp >= next()))
            revert KeeperOracleVersionOutsideRangeError();
        (r.price, r.valid) = (version.price, true);
        _responses[version.timestamp] = r;
    }

    function _settlementFee(PriceResponse memory r, uint256 callbacks) private pure returns (uint256) {
        return r.syncFee + r.asyncFee * callbacks;
    }

    /// UFixed6Lib.from(UFixed18, roundOut = true)
    function _to6RoundUp(uint256 amount18) private pure returns (uint256) {
        return (amount18 + 1e12 - 1) / 1e12;
    }

    function _push(address market, address to, uint256 amount6) private {
        if (amount6 != 0) require(IERC20(IMarketStandIn(market).token()).transfer(to, amount6 * 1e12), "push");
    }
}
