// SPDX-License-Identifier: MIT
pragma solidity ^0.8.17;

import {IACL} from "@gearbox-protocol/core-v3/contracts/interfaces/base/IACL.sol";
import {IContractsRegister} from "@gearbox-protocol/core-v3/contracts/interfaces/base/IContractsRegister.sol";
import {IAddressProvider} from "@gearbox-protocol/core-v3/contracts/interfaces/base/IAddressProvider.sol";
import {IPriceFeedStore, PriceUpdate} from "@gearbox-protocol/core-v3/contracts/interfaces/base/IPriceFeedStore.sol";
import {IUpdatablePriceFeed} from "@gearbox-protocol/core-v3/contracts/interfaces/base/IPriceFeed.sol";
import {
    AddressNotFoundException,
    PriceFeedDoesNotExistException,
    PriceFeedIsNotUpdatableException
} from "@gearbox-protocol/core-v3/contracts/interfaces/IExceptions.sol";

/// @dev The part of Gearbox governance that @gearbox-protocol/core-v3 calls but does not publish
///      (ACL, ContractsRegister, AddressProvider, PriceFeedStore), in one contract, for a local world.
///      Signatures are those of the package's interfaces (interfaces/base/*). The owner is the
///      configurator; registration and addresses are owner-only.
contract GovStandIn is IACL, IContractsRegister, IAddressProvider, IPriceFeedStore {
    address public owner;

    mapping(bytes32 => mapping(uint256 => address)) internal _addresses;
    mapping(bytes32 => mapping(address => bool)) public override hasRole;
    mapping(address => bool) public override isPool;
    mapping(address => bool) public override isCreditManager;
    mapping(address => uint32) internal _stalenessPeriods;
    mapping(address => bool) public isUpdatablePriceFeed;
    address[] internal _updatablePriceFeeds;
    address[] internal _pools;
    address[] internal _creditManagers;

    event SetAddress(bytes32 indexed key, uint256 indexed version, address indexed value);

    error CallerNotOwnerException();

    modifier onlyOwner() {
        if (msg.sender != owner) revert CallerNotOwnerException();
        _;
    }

    constructor() {
        owner = msg.sender;
        // The price feed store is this contract (PRICE_FEED_STORE is read by the facade and the loss policy).
        _setAddress("PRICE_FEED_STORE", address(this), 0);
        // Owner of BotListV3 and DefaultAccountFactoryV3.
        _setAddress("INSTANCE_MANAGER_PROXY", msg.sender, 0);
        // This contract is also the ACL and the ContractsRegister, found under the keys the real
        // AddressProviderV3 holds them at (version 0, NO_VERSION_CONTROL).
        _setAddress("ACL", address(this), 0);
        _setAddress("CONTRACTS_REGISTER", address(this), 0);
    }

    // ---- IACL ----
    function isConfigurator(address account) external view override returns (bool) {
        return account == owner;
    }

    function grantRole(bytes32 role, address account) external onlyOwner {
        hasRole[role][account] = true;
    }

    function revokeRole(bytes32 role, address account) external onlyOwner {
        hasRole[role][account] = false;
    }

    // ---- IContractsRegister ----
    function getPools() external view override returns (address[] memory) {
        return _pools;
    }

    function getCreditManagers() external view override returns (address[] memory) {
        return _creditManagers;
    }

    function addPool(address pool) external onlyOwner {
        if (!isPool[pool]) {
            isPool[pool] = true;
            _pools.push(pool);
        }
    }

    function addCreditManager(address creditManager) external onlyOwner {
        if (!isCreditManager[creditManager]) {
            isCreditManager[creditManager] = true;
            _creditManagers.push(creditManager);
        }
    }

    // ---- IAddressProvider ----
    function getAddressOrRevert(bytes32 key, uint256 version) external view override returns (address result) {
        result = _addresses[key][version];
        if (result == address(0)) revert AddressNotFoundException();
    }

    function setAddress(bytes32 key, address value, uint256 version) external onlyOwner {
        _setAddress(key, value, version);
    }

    function _setAddress(bytes32 key, address value, uint256 version) internal {
        _addresses[key][version] = value;
        emit SetAddress(key, version, value);
    }

    // ---- IPriceFeedStore ----
    /// @dev Staleness period registered for a feed (read by AliasedLossPolicyV3.setAliasPriceFeed only).
    function getStalenessPeriod(address priceFeed) external view override returns (uint32 period) {
        period = _stalenessPeriods[priceFeed];
        if (period == 0) revert PriceFeedDoesNotExistException();
    }

    function setStalenessPeriod(address priceFeed, uint32 period) external onlyOwner {
        _stalenessPeriods[priceFeed] = period;
    }

    /// @dev The store's set of updatable feeds (the real PriceFeedStore adds a feed's updatable
    ///      nodes when the feed is added; here the owner lists them).
    function addUpdatablePriceFeed(address priceFeed) external onlyOwner {
        if (!isUpdatablePriceFeed[priceFeed]) {
            isUpdatablePriceFeed[priceFeed] = true;
            _updatablePriceFeeds.push(priceFeed);
        }
    }

    function getUpdatablePriceFeeds() external view returns (address[] memory) {
        return _updatablePriceFeeds;
    }

    /// @dev On-demand price updates, as Gearbox's PriceFeedStore does them: each feed must be in the
    ///      updatable set, and gets `updatePrice(data)`; its revert propagates.
    function updatePrices(PriceUpdate[] calldata updates) external override {
        uint256 n = updates.length;
        for (uint256 i; i < n; ++i) {
            if (!isUpdatablePriceFeed[updates[i].priceFeed]) revert PriceFeedIsNotUpdatableException();
            IUpdatablePriceFeed(updates[i].priceFeed).updatePrice(updates[i].data);
        }
    }
}
