"""Errors the keeper raises, and readable reasons for the reverts of real protocol contracts."""
from __future__ import annotations

from eth_abi import decode
from eth_utils import keccak


class KeeperError(Exception):
    """Base class."""


class ConfigError(KeeperError):
    """Bad configuration or command line: exit status 2, nothing sent."""


class StartupError(KeeperError):
    """A start-up sanity check failed (chain id, signer, missing code): exit status 2."""


class RpcError(KeeperError):
    def __init__(self, message: str, *, code: int | None = None, data=None):
        super().__init__(message)
        self.code = code
        self.data = data


class TransientRpcError(RpcError):
    """Worth retrying: connection trouble, rate limit, overloaded node."""


# Aave V3 numeric error codes (Errors.sol) the keeper may meet while liquidating.
AAVE_ERRORS = {
    "1": "CALLER_NOT_POOL_ADMIN", "26": "INVALID_AMOUNT", "27": "RESERVE_INACTIVE",
    "28": "RESERVE_FROZEN", "29": "RESERVE_PAUSED", "35": "HEALTH_FACTOR_LOWER_THAN_LIQUIDATION_THRESHOLD",
    "39": "NO_DEBT_OF_SELECTED_TYPE", "43": "COLLATERAL_CANNOT_BE_LIQUIDATED",
    "45": "HEALTH_FACTOR_NOT_BELOW_THRESHOLD", "46": "COLLATERAL_CANNOT_BE_LIQUIDATED",
    "47": "SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER", "58": "INCONSISTENT_FLASHLOAN_PARAMS",
    "91": "FLASHLOAN_DISABLED", "103": "MUST_NOT_LEAVE_DUST",
}

# Custom errors of the contracts the keeper talks to: selector -> name.
_CUSTOM_ERRORS = [
    "MustNotLeaveDust()", "HealthFactorNotBelowThreshold()", "CollateralCannotBeLiquidated()",
    "SpecifiedCurrencyNotBorrowedByUser()", "InvalidAmount()", "ReservePaused()", "ReserveInactive()",
    "SelfLiquidation()",
    "ERC20InsufficientBalance(address,uint256,uint256)", "ERC20InsufficientAllowance(address,uint256,uint256)",
    "NotLiquidatable()", "NotForSale()", "TooMuchSlippage()", "InsufficientReserves()",
    "StalePrice()", "PriceFeedNotFound()", "InsufficientFee()",
    # Pyth (PythErrors.sol)
    "PriceFeedNotFoundWithinRange()", "InvalidUpdateData()", "NoFreshUpdate()", "InvalidArgument()",
    # Perennial V2 Market (IMarket.sol) and keeper oracle (IKeeperFactory.sol, IKeeperOracle.sol)
    "MarketStalePriceError()", "MarketInvalidProtectionError()", "MarketInsufficientMarginError()",
    "MarketInsufficientCollateralError()", "MarketOperatorNotAllowedError()", "MarketNotSingleSidedError()",
    "MarketOverCloseError()", "MarketProtectedError()", "MarketNotOperatorError()", "MarketSettleOnlyError()",
    "MarketClosedError()", "MarketExceedsPendingIdLimitError()",
    "KeeperFactoryNotCreatedError()", "KeeperFactoryVersionOutsideRangeError()",
    "KeeperOracleVersionOutsideRangeError()", "KeeperOracleInvalidPriceError()",
]


def _abi_errors(name: str) -> list[str]:
    """Error signatures of an abis/*.json file (e.g. gearbox_errors: every custom error of the
    Gearbox V3 compile jobs, since a facade call also reverts with its credit manager's, oracle's,
    pool's, 1inch SafeERC20's and its updatable price feeds' (PythPriceFeed) errors)."""
    import json
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "abis" / f"{name}.json"
    if not path.exists():
        return []

    def typ(p: dict) -> str:
        t = p["type"]
        return "(" + ",".join(typ(c) for c in p["components"]) + ")" + t[5:] if t.startswith("tuple") else t
    return [f"{e['name']}({','.join(typ(i) for i in e['inputs'])})"
            for e in json.loads(path.read_text()) if e.get("type") == "error"]


_CUSTOM_ERRORS += _abi_errors("gearbox_errors")
CUSTOM_ERRORS = {"0x" + keccak(text=sig)[:4].hex(): sig.split("(")[0] for sig in _CUSTOM_ERRORS}
_ERROR_STRING = "0x08c379a0"  # Error(string)
_PANIC = "0x4e487b71"  # Panic(uint256)


def decode_revert(data: str | bytes | None, message: str = "") -> str:
    """A readable reason for revert data: Aave codes ("45 HEALTH_FACTOR_NOT_BELOW_THRESHOLD"),
    plain strings (Morpho), known custom errors, panics; else the raw selector."""
    if isinstance(data, (bytes, bytearray)):
        data = "0x" + bytes(data).hex()
    if isinstance(data, dict):  # some nodes nest it
        data = data.get("data")
    if not data or data == "0x":
        return message or "reverted without reason"
    data = data.lower()
    if data.startswith(_ERROR_STRING):
        try:
            (reason,) = decode(["string"], bytes.fromhex(data[10:]))
        except Exception:
            return f"revert {data[:74]}"
        name = AAVE_ERRORS.get(reason)
        return f"{reason} {name}" if name else reason
    if data.startswith(_PANIC):
        try:
            (code,) = decode(["uint256"], bytes.fromhex(data[10:]))
            return f"panic 0x{code:02x}"
        except Exception:
            return "panic"
    name = CUSTOM_ERRORS.get(data[:10])
    return name if name else f"custom error {data[:10]}"
