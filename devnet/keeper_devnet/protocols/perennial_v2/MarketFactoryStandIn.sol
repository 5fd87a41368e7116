// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {MarketStandIn} from "./MarketStandIn.sol";
import {IFactoryStandIn, IOracleProviderStandIn, RiskParameter} from "./PerennialTypes.sol";

/// Perennial V2's MarketFactory (equilibria-xyz/perennial-v2 packages/core/contracts/MarketFactory.sol,
/// interfaces/IMarketFactory.sol) on root's Factory (equilibria-xyz/root contracts/attribute/Factory.sol,
/// interfaces/IFactory.sol), reduced to market creation and the instance registry, with the real
/// signatures, events and errors:
/// - create(MarketDefinition{token, oracle}) (owner only) creates a market for an oracle that has
///   none yet, registers it (instances(market) = true, InstanceRegistered(market), as root's
///   Factory._register does inside _create) then emits MarketCreated(market, definition);
/// - markets(oracle) is the oracle's market; instances(instance) tells a market this factory made;
/// - the market's governance (updateRiskParameter) answers to this factory's owner (root Instance).
/// Stand-in: the market is a MarketStandIn made with `new` (the real one is a BeaconProxy of
/// `implementation` initialized with the definition), with a zero RiskParameter that the owner sets
/// afterwards through market.updateRiskParameter as Perennial's governance does, and the implicit
/// maker pool `makerPool`. As the real create, the definition's oracle must be an instance of the
/// factory's oracleFactory (an Oracle router), else FactoryInvalidOracleError.
contract MarketFactoryStandIn {
    /// IMarket.MarketDefinition (Perennial v2.1+: Token18 token, IOracleProvider oracle).
    struct MarketDefinition {
        IERC20 token;
        IOracleProviderStandIn oracle;
    }

    event InstanceRegistered(address indexed instance);
    event MarketCreated(address indexed market, MarketDefinition definition);

    error FactoryAlreadyRegisteredError();
    error FactoryInvalidOracleError();
    error OwnableNotOwnerError(address sender);

    address public immutable owner;
    IFactoryStandIn public immutable oracleFactory;
    uint256 public makerPool; // stand-in: UFixed6 maker position of the markets created next

    mapping(address => bool) private _instances;
    mapping(address => address) private _markets; // oracle => market

    constructor(IFactoryStandIn oracleFactory_, uint256 makerPool_) {
        owner = msg.sender;
        oracleFactory = oracleFactory_;
        makerPool = makerPool_;
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert OwnableNotOwnerError(msg.sender);
        _;
    }

    function instances(address instance) external view returns (bool) {
        return _instances[instance];
    }

    function markets(address oracle) external view returns (address) {
        return _markets[oracle];
    }

    function updateMakerPool(uint256 makerPool_) external onlyOwner {
        makerPool = makerPool_;
    }

    function create(MarketDefinition calldata definition) external onlyOwner returns (address newMarket) {
        if (!oracleFactory.instances(address(definition.oracle))) revert FactoryInvalidOracleError();
        if (_markets[address(definition.oracle)] != address(0)) revert FactoryAlreadyRegisteredError();
        RiskParameter memory unset;
        newMarket = address(new MarketStandIn(definition.token, definition.oracle, unset, makerPool));
        _instances[newMarket] = true;
        emit InstanceRegistered(newMarket);
        _markets[address(definition.oracle)] = newMarket;
        emit MarketCreated(newMarket, definition);
    }
}
