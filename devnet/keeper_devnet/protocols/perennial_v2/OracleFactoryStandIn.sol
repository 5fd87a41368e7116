// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {OracleStandIn} from "./OracleStandIn.sol";
import "./PerennialTypes.sol";

interface IOracleProviderFactoryStandIn {
    function oracles(bytes32 id) external view returns (address);
}

/// Perennial V2's OracleFactory (equilibria-xyz/perennial-v2 packages/oracle/contracts/
/// OracleFactory.sol) on root's Factory, with the real signatures and rules:
/// - register(factory) (owner) allows an oracle provider factory (a KeeperFactory) to back oracles;
/// - create(id, factory, name) (owner) makes the Oracle router for the registered factory's
///   provider oracles(id), registers it (instances, InstanceRegistered), oracles(id), ids(oracle);
/// - update(id, factory) (owner) moves the router to another registered factory's provider for id;
/// - parameter() = (maxGranularity, maxSettlementFee, maxOracleFee), the bounds keeper oracles obey.
/// Stand-in: routers are made with `new`.
contract OracleFactoryStandIn {
    error OracleFactoryNotRegisteredError();
    error OracleFactoryAlreadyCreatedError();
    error OracleFactoryInvalidIdError();
    error OracleFactoryNotCreatedError();
    error OwnableNotOwnerError(address sender);

    event InstanceRegistered(address indexed instance);
    event OracleCreated(address indexed oracle, bytes32 indexed id);
    event FactoryRegistered(address factory);

    address public immutable owner;
    mapping(bytes32 => address) public oracles;
    mapping(address => bool) public factories;
    mapping(address => bytes32) public ids;
    mapping(address => bool) private _instances;
    OracleParameter private _parameter;

    constructor(OracleParameter memory parameter_) {
        owner = msg.sender;
        _parameter = parameter_;
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert OwnableNotOwnerError(msg.sender);
        _;
    }

    function instances(address instance) external view returns (bool) {
        return _instances[instance];
    }

    function parameter() external view returns (OracleParameter memory) {
        return _parameter;
    }

    function updateParameter(OracleParameter memory newParameter) external onlyOwner {
        _parameter = newParameter;
    }

    function register(address factory) external onlyOwner {
        factories[factory] = true;
        emit FactoryRegistered(factory);
    }

    function create(bytes32 id, address factory, string calldata name) external onlyOwner returns (address newOracle) {
        if (!factories[factory]) revert OracleFactoryNotRegisteredError();
        if (oracles[id] != address(0)) revert OracleFactoryAlreadyCreatedError();
        address provider = IOracleProviderFactoryStandIn(factory).oracles(id);
        if (provider == address(0)) revert OracleFactoryInvalidIdError();
        newOracle = address(new OracleStandIn(provider, name));
        _instances[newOracle] = true;
        emit InstanceRegistered(newOracle);
        oracles[id] = newOracle;
        ids[newOracle] = id;
        emit OracleCreated(newOracle, id);
    }

    function update(bytes32 id, address factory) external onlyOwner {
        if (!factories[factory]) revert OracleFactoryNotRegisteredError();
        if (oracles[id] == address(0)) revert OracleFactoryNotCreatedError();
        address provider = IOracleProviderFactoryStandIn(factory).oracles(id);
        if (provider == address(0)) revert OracleFactoryInvalidIdError();
        OracleStandIn(oracles[id]).update(provider);
    }
}
