// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Stand-in for Aave V3's PoolAddressesProvider (aave-dao/aave-v3-origin,
///  src/contracts/protocol/configuration/PoolAddressesProvider.sol)
/// @notice The registry an operator starts from. Same getters, ids and setter names as the real one
///  for what the keeper and the stand-in Pool use; no proxies: `setAddress(id, addr)` stores the
///  address itself (as the real `setAddress` does), so `setAddress("POOL", pool)` registers the Pool.
contract PoolAddressesProviderStandIn {
    bytes32 private constant POOL = "POOL";
    bytes32 private constant POOL_CONFIGURATOR = "POOL_CONFIGURATOR";
    bytes32 private constant PRICE_ORACLE = "PRICE_ORACLE";
    bytes32 private constant ACL_MANAGER = "ACL_MANAGER";
    bytes32 private constant ACL_ADMIN = "ACL_ADMIN";
    bytes32 private constant PRICE_ORACLE_SENTINEL = "PRICE_ORACLE_SENTINEL";
    bytes32 private constant DATA_PROVIDER = "DATA_PROVIDER";

    string private _marketId;
    address public owner;
    mapping(bytes32 => address) private _addresses;

    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event AddressSet(bytes32 indexed id, address indexed oldAddress, address indexed newAddress);
    event PriceOracleUpdated(address indexed oldAddress, address indexed newAddress);
    event ACLManagerUpdated(address indexed oldAddress, address indexed newAddress);

    modifier onlyOwner() {
        require(msg.sender == owner, "Ownable: caller is not the owner");
        _;
    }

    constructor(string memory marketId, address owner_) {
        _marketId = marketId;
        owner = owner_;
        emit OwnershipTransferred(address(0), owner_);
    }

    function transferOwnership(address newOwner) external onlyOwner {
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    function getMarketId() external view returns (string memory) {
        return _marketId;
    }

    function getAddress(bytes32 id) public view returns (address) {
        return _addresses[id];
    }

    function setAddress(bytes32 id, address newAddress) external onlyOwner {
        emit AddressSet(id, _addresses[id], newAddress);
        _addresses[id] = newAddress;
    }

    function setPriceOracle(address newPriceOracle) external onlyOwner {
        emit PriceOracleUpdated(_addresses[PRICE_ORACLE], newPriceOracle);
        _addresses[PRICE_ORACLE] = newPriceOracle;
    }

    function setACLManager(address newAclManager) external onlyOwner {
        emit ACLManagerUpdated(_addresses[ACL_MANAGER], newAclManager);
        _addresses[ACL_MANAGER] = newAclManager;
    }

    function getPool() external view returns (address) {
        return _addresses[POOL];
    }

    function getPoolConfigurator() external view returns (address) {
        return _addresses[POOL_CONFIGURATOR];
    }

    function getPriceOracle() external view returns (address) {
        return _addresses[PRICE_ORACLE];
    }

    function getACLManager() external view returns (address) {
        return _addresses[ACL_MANAGER];
    }

    function getACLAdmin() external view returns (address) {
        return _addresses[ACL_ADMIN];
    }

    function getPriceOracleSentinel() external view returns (address) {
        return _addresses[PRICE_ORACLE_SENTINEL];
    }

    function getPoolDataProvider() external view returns (address) {
        return _addresses[DATA_PROVIDER];
    }
}
