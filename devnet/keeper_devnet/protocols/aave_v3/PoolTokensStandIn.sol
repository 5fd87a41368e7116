// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @title Minimal Aave V3 aToken / variable debt token for the v3.3 stand-in Pool
/// @notice Balances are minted and burned by the Pool only. The stand-in accrues no interest (both
///  indexes stay 1 ray), so scaledBalanceOf == balanceOf. Not transferable by holders (the real
///  aToken is; the keeper only reads balanceOf / totalSupply / decimals).
abstract contract PoolTokenStandIn {
    address public immutable POOL;
    address public immutable UNDERLYING_ASSET_ADDRESS;
    uint8 public immutable decimals;
    string public name;
    string public symbol;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;

    event Transfer(address indexed from, address indexed to, uint256 value);

    modifier onlyPool() {
        require(msg.sender == POOL, "23"); // Errors.CALLER_MUST_BE_POOL
        _;
    }

    constructor(address pool, address underlying, string memory name_, string memory symbol_, uint8 decimals_) {
        POOL = pool;
        UNDERLYING_ASSET_ADDRESS = underlying;
        name = name_;
        symbol = symbol_;
        decimals = decimals_;
    }

    function scaledBalanceOf(address user) external view returns (uint256) {
        return balanceOf[user];
    }

    function scaledTotalSupply() external view returns (uint256) {
        return totalSupply;
    }

    function _mint(address to, uint256 amount) internal {
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function _burn(address from, uint256 amount) internal {
        balanceOf[from] -= amount;
        totalSupply -= amount;
        emit Transfer(from, address(0), amount);
    }
}

/// The aToken holds the reserve's underlying, as in Aave.
contract ATokenStandIn is PoolTokenStandIn {
    using SafeERC20 for IERC20;

    address public immutable RESERVE_TREASURY_ADDRESS;

    constructor(address pool, address underlying, address treasury, string memory name_, string memory symbol_,
        uint8 decimals_) PoolTokenStandIn(pool, underlying, name_, symbol_, decimals_) {
        RESERVE_TREASURY_ADDRESS = treasury;
    }

    function mint(address onBehalfOf, uint256 amount) external onlyPool returns (bool isFirstSupply) {
        isFirstSupply = balanceOf[onBehalfOf] == 0;
        _mint(onBehalfOf, amount);
    }

    /// Burns `amount` from `from` and sends the underlying to `receiverOfUnderlying`.
    function burn(address from, address receiverOfUnderlying, uint256 amount) external onlyPool {
        _burn(from, amount);
        IERC20(UNDERLYING_ASSET_ADDRESS).safeTransfer(receiverOfUnderlying, amount);
    }

    /// Moves aTokens on a liquidation (to the liquidator with receiveAToken, or the fee to the treasury).
    function transferOnLiquidation(address from, address to, uint256 amount) external onlyPool {
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
        emit Transfer(from, to, amount);
    }

    /// Sends underlying out on a borrow.
    function transferUnderlyingTo(address to, uint256 amount) external onlyPool {
        IERC20(UNDERLYING_ASSET_ADDRESS).safeTransfer(to, amount);
    }
}

contract VariableDebtTokenStandIn is PoolTokenStandIn {
    constructor(address pool, address underlying, string memory name_, string memory symbol_, uint8 decimals_)
        PoolTokenStandIn(pool, underlying, name_, symbol_, decimals_) {}

    function mint(address onBehalfOf, uint256 amount) external onlyPool returns (bool isFirstBorrowing) {
        isFirstBorrowing = balanceOf[onBehalfOf] == 0;
        _mint(onBehalfOf, amount);
    }

    function burn(address from, uint256 amount) external onlyPool {
        _burn(from, amount);
    }
}
