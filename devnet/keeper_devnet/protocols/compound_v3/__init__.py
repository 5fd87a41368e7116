"""Compound III in the local world: the Comet stand-in (CometStandIn.sol beside world.py)."""
from __future__ import annotations

import json
from typing import Any

from keeper_devnet.protocols.compound_v3.world import add_comet_to_world as add_to_world  # noqa: F401


async def keeper_abis() -> dict[str, list[dict[str, Any]]]:
    """Comet publishes no installable package: the ABI comes from the stand-in, which declares
    Comet's functions and events with CometMainInterface / CometExtInterface's exact signatures
    (its structs renamed to CometCore's, where Comet declares them)."""
    from keeper_devnet.abi_extract import compiled_abi, subset
    from keeper_devnet.protocols.compound_v3.world import COMET_SOURCE
    names = [
        "baseToken", "baseTokenPriceFeed", "baseScale", "numAssets", "getAssetInfo", "storeFrontPriceFactor",
        "targetReserves", "getPrice", "getReserves", "getCollateralReserves", "quoteCollateral",
        "isLiquidatable", "borrowBalanceOf", "collateralBalanceOf", "isAbsorbPaused", "isBuyPaused",
        "absorb", "buyCollateral",
        "Withdraw", "SupplyCollateral", "WithdrawCollateral", "TransferCollateral", "AbsorbDebt",
        "AbsorbCollateral", "BuyCollateral"]
    abi = subset(await compiled_abi("solc", [(COMET_SOURCE, "CometStandIn")]), names, COMET_SOURCE)
    return {"CometMain": json.loads(json.dumps(abi).replace("struct CometStandIn.", "struct CometCore."))}
