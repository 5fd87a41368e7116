// SPDX-License-Identifier: MIT
// Test helper: opens many Aave V3 positions in one transaction (for scale tests). Each borrower is
// a new contract whose constructor mints itself collateral (TestERC20.mint is open), supplies it
// to the Pool and borrows the given amount for itself, through the Pool's ordinary entry points.
pragma solidity ^0.8.24;

interface IBulkPool {
    function supply(address asset, uint256 amount, address onBehalfOf, uint16 referralCode) external;
    function borrow(address asset, uint256 amount, uint256 interestRateMode, uint16 referralCode,
        address onBehalfOf) external;
}

interface IMintable {
    function mint(address to, uint256 amount) external;
    function approve(address spender, uint256 amount) external returns (bool);
}

contract BulkBorrower {
    constructor(address pool, address collateral, uint256 amount, address debt, uint256 debtAmount) {
        IMintable(collateral).mint(address(this), amount);
        IMintable(collateral).approve(pool, amount);
        IBulkPool(pool).supply(collateral, amount, address(this), 0);
        IBulkPool(pool).borrow(debt, debtAmount, 2, 0, address(this));
    }
}

contract BulkBorrowers {
    event Opened(address indexed borrower, uint256 debtAmount);

    function open(address pool, address collateral, uint256 amount, address debt, uint256[] calldata debtAmounts)
        external
    {
        for (uint256 i; i < debtAmounts.length; ++i) {
            address b = address(new BulkBorrower(pool, collateral, amount, debt, debtAmounts[i]));
            emit Opened(b, debtAmounts[i]);
        }
    }
}
