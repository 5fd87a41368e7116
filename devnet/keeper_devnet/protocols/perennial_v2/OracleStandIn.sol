// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import "./PerennialTypes.sol";

/// Perennial V2's Oracle router (equilibria-xyz/perennial-v2 packages/oracle/contracts/Oracle.sol),
/// the `oracle()` of a Market: an OracleFactory instance that routes to a history of oracle
/// providers (KeeperOracles), with the real signatures and rules:
/// - oracles(i) = (provider, timestamp) for epochs 1..global.current; global() = (current, latest):
///   `current` takes new requests, `latest` answers status() until the current provider's latest
///   version passes the last version requested from it (then latest = current);
/// - request(market, account) is onlyMarket (the market registered by the owner) and goes to the
///   provider of the epoch the current version belongs to; update(newProvider) is onlyFactory;
/// - at(t) asks the provider whose epoch covers t;
/// - claimFee(settlementFeeRequested) is onlySubOracle (the current or latest provider): it claims the
///   oracle's fees from the market (market.claimFee(this)) and pays the requested settlement fee to
///   the provider, the rest staying with the oracle (its beneficiary's).
/// Stand-in: made with `new` by its OracleFactory; its owner is the factory's owner (root Instance).
contract OracleStandIn {
    struct Epoch {
        address provider;
        uint96 timestamp;
    }

    struct OracleGlobal {
        uint128 current;
        uint128 latest;
    }

    error OracleNotMarketError();
    error OracleNotSubOracleError();
    error OracleOutOfSyncError();
    error InstanceNotFactoryError(address sender);
    error InstanceNotOwnerError(address sender);

    event OracleUpdated(address newProvider);
    event MarketUpdated(address newMarket);
    event FeeReceived(uint256 settlementFee, uint256 oracleFee);

    address public immutable factory;
    mapping(uint256 => Epoch) public oracles;
    OracleGlobal public global;
    address public market;
    string public name;

    constructor(address initialProvider, string memory name_) {
        factory = msg.sender;
        name = name_;
        _updateCurrent(initialProvider);
        _updateLatest(IOracleProviderStandIn(initialProvider).latest());
    }

    function owner() public view returns (address) {
        return IFactoryStandIn(factory).owner();
    }

    function update(address newProvider) external {
        if (msg.sender != factory) revert InstanceNotFactoryError(msg.sender);
        _updateCurrent(newProvider);
        _updateLatest(IOracleProviderStandIn(newProvider).latest());
    }

    function register(address newMarket) external {
        if (msg.sender != owner()) revert InstanceNotOwnerError(msg.sender);
        market = newMarket;
        emit MarketUpdated(newMarket);
    }

    function request(address, address account) external {
        if (msg.sender != market) revert OracleNotMarketError();
        (OracleVersion memory latestVersion, uint256 currentTimestamp) = _provider(global.current).status();
        uint256 epoch = currentTimestamp > oracles[global.latest].timestamp ? global.current : global.latest;
        _provider(epoch).request(market, account);
        oracles[global.current].timestamp = uint96(currentTimestamp);
        _updateLatest(latestVersion);
    }

    function status() external view returns (OracleVersion memory latestVersion, uint256 currentTimestamp) {
        (latestVersion, currentTimestamp) = _provider(global.current).status();
        latestVersion = _handleLatest(latestVersion);
    }

    function latest() external view returns (OracleVersion memory) {
        return _handleLatest(_provider(global.current).latest());
    }

    function current() external view returns (uint256) {
        return _provider(global.current).current();
    }

    function at(uint256 timestamp) public view returns (OracleVersion memory atVersion, OracleReceipt memory atReceipt) {
        if (timestamp == 0) return (atVersion, atReceipt);
        address provider = oracles[global.current].provider;
        for (uint256 i = global.current - 1; i > 0; i--) {
            if (timestamp > uint256(oracles[i].timestamp)) break;
            provider = oracles[i].provider;
        }
        return IOracleProviderStandIn(provider).at(timestamp);
    }

    function claimFee(uint256 settlementFeeRequested) external {
        if (msg.sender != oracles[global.current].provider && msg.sender != oracles[global.latest].provider)
            revert OracleNotSubOracleError();
        uint256 received = IMarketStandIn(market).claimFee(address(this));
        if (settlementFeeRequested != 0)
            require(IERC20(IMarketStandIn(market).token()).transfer(msg.sender, settlementFeeRequested * 1e12), "push");
        emit FeeReceived(settlementFeeRequested, received - settlementFeeRequested);
    }

    function _provider(uint256 epoch) private view returns (IOracleProviderStandIn) {
        return IOracleProviderStandIn(oracles[epoch].provider);
    }

    function _updateCurrent(address newProvider) private {
        if (global.current != global.latest) revert OracleOutOfSyncError();
        if (global.current != 0) {
            OracleVersion memory latestVersion = _provider(global.current).latest();
            if (latestVersion.timestamp > oracles[global.current].timestamp)
                oracles[global.current].timestamp = uint96(latestVersion.timestamp);
        }
        oracles[++global.current] = Epoch(newProvider, uint96(IOracleProviderStandIn(newProvider).current()));
        emit OracleUpdated(newProvider);
    }

    function _updateLatest(OracleVersion memory currentLatest) private {
        if (_latestStale(currentLatest)) global.latest = global.current;
    }

    function _handleLatest(OracleVersion memory currentLatest) private view returns (OracleVersion memory latestVersion) {
        if (global.current == global.latest) return currentLatest;
        bool stale = _latestStale(currentLatest);
        latestVersion = stale ? currentLatest : _provider(global.latest).latest();
        uint256 epochEnd = uint256(stale ? oracles[global.current].timestamp : oracles[global.latest].timestamp);
        if (!stale && latestVersion.timestamp > epochEnd) (latestVersion, ) = at(epochEnd);
    }

    /// Whether the previous provider is done: its last requested version is committed and the
    /// current provider's latest version is past it.
    function _latestStale(OracleVersion memory currentLatest) private view returns (bool) {
        if (global.current == global.latest) return false;
        if (global.latest == 0) return true;
        uint256 epochEnd = uint256(oracles[global.latest].timestamp);
        if (epochEnd > _provider(global.latest).latest().timestamp) return false;
        if (epochEnd >= currentLatest.timestamp) return false;
        return true;
    }
}
