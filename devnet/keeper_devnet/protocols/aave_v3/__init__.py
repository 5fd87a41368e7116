"""Aave V3 in the local world: the real @aave/core-v3 Pool (real.py), the v3.3 stand-in
(standin.py and its Solidity beside it), shared deployment helpers (common.py)."""
from __future__ import annotations

import json
from typing import Any

_CORE = "@aave/core-v3/artifacts/contracts"
# Pool functions added from v3.2 on that the keeper reads. @aave/core-v3 (v3.0) lacks them and no
# installed package ships their ABI: they come from the v3.3 stand-in, which declares them with
# aave-dao/aave-v3-origin IPool's exact signatures (its structs renamed to DataTypes', where the
# release declares them).
POOL_V32_FUNCTIONS = ["getEModeCategoryCollateralConfig", "getEModeCategoryCollateralBitmap"]


async def keeper_abis() -> dict[str, list[dict[str, Any]]]:
    from keeper_devnet.abi_extract import npm_abi, subset
    wanted = {
        "AaveV3Pool": (f"{_CORE}/interfaces/IPool.sol/IPool.json", [
            "liquidationCall", "getUserAccountData", "getReservesList", "getReserveData",
            "getUserConfiguration", "getUserEMode", "getEModeCategoryData", "flashLoanSimple",
            "Supply", "Borrow", "Repay", "Withdraw", "LiquidationCall"]),
        "AaveV3PoolAddressesProvider": (
            f"{_CORE}/interfaces/IPoolAddressesProvider.sol/IPoolAddressesProvider.json",
            ["getPool", "getPriceOracle"]),
        "AaveOracle": (f"{_CORE}/interfaces/IAaveOracle.sol/IAaveOracle.json", [
            "getAssetPrice", "getAssetsPrices", "getSourceOfAsset", "BASE_CURRENCY", "BASE_CURRENCY_UNIT"]),
    }
    out = {name: subset(npm_abi(rel), names, rel) for name, (rel, names) in wanted.items()}
    from keeper_devnet.protocols.aave_v3.standin import POOL_SOURCE, pool_artifact
    v32 = subset((await pool_artifact()).abi, POOL_V32_FUNCTIONS, POOL_SOURCE)
    out["AaveV3PoolV32"] = json.loads(json.dumps(v32).replace("struct PoolV33StandIn.", "struct DataTypes."))
    return out
