"""Aave V3 and its forks: one Pool (from its PoolAddressesProvider)."""
from keeper.protocols.aave_v3.config import AaveV3Config
from keeper.protocols.registry import Protocol

PROTOCOL = Protocol(
    kind="aave_v3",
    config=AaveV3Config,
    adapter="keeper.protocols.aave_v3.adapter:AaveV3Adapter",
    errors=("MustNotLeaveDust()", "HealthFactorNotBelowThreshold()", "CollateralCannotBeLiquidated()",
            "SpecifiedCurrencyNotBorrowedByUser()", "InvalidAmount()", "ReservePaused()", "ReserveInactive()",
            "SelfLiquidation()"),
    # Aave V3 numeric error codes (Errors.sol, v3.0-v3.1) the keeper may meet while liquidating.
    error_codes={
        "1": "CALLER_NOT_POOL_ADMIN", "26": "INVALID_AMOUNT", "27": "RESERVE_INACTIVE",
        "28": "RESERVE_FROZEN", "29": "RESERVE_PAUSED", "35": "HEALTH_FACTOR_LOWER_THAN_LIQUIDATION_THRESHOLD",
        "39": "NO_DEBT_OF_SELECTED_TYPE", "43": "COLLATERAL_CANNOT_BE_LIQUIDATED",
        "45": "HEALTH_FACTOR_NOT_BELOW_THRESHOLD", "46": "COLLATERAL_CANNOT_BE_LIQUIDATED",
        "47": "SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER", "58": "INCONSISTENT_FLASHLOAN_PARAMS",
        "91": "FLASHLOAN_DISABLED", "103": "MUST_NOT_LEAVE_DUST",
    },
)
