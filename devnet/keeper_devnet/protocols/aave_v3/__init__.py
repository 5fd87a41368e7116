"""Aave V3 in the local world: the real @aave/core-v3 Pool (real.py), the v3.3 stand-in
(standin.py and its Solidity beside it), shared deployment helpers (common.py)."""
from __future__ import annotations

from typing import Any

_CORE = "@aave/core-v3/artifacts/contracts"


async def keeper_abis() -> dict[str, list[dict[str, Any]]]:
    from keeper_devnet.abi_extract import npm_abi, subset
    wanted = {
        "AaveV3Pool": (f"{_CORE}/interfaces/IPool.sol/IPool.json", [
            "liquidationCall", "getUserAccountData", "getReservesList", "getReserveData",
            "getUserConfiguration", "getUserEMode", "getEModeCategoryData", "flashLoanSimple",
            "FLASHLOAN_PREMIUM_TOTAL",
            "Supply", "Borrow", "Repay", "Withdraw", "LiquidationCall"]),
        "AaveV3PoolAddressesProvider": (
            f"{_CORE}/interfaces/IPoolAddressesProvider.sol/IPoolAddressesProvider.json",
            ["getPool", "getPriceOracle"]),
        "AaveOracle": (f"{_CORE}/interfaces/IAaveOracle.sol/IAaveOracle.json", [
            "getAssetPrice", "getAssetsPrices", "getSourceOfAsset", "BASE_CURRENCY", "BASE_CURRENCY_UNIT"]),
    }
    return {name: subset(npm_abi(rel), names, rel) for name, (rel, names) in wanted.items()}
