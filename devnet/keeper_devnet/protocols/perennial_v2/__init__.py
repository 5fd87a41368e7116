"""Perennial V2 in the local world: the Solidity stand-ins beside world.py (Perennial publishes no
deployable package)."""
from __future__ import annotations

from typing import Any

from keeper_devnet.protocols.perennial_v2.world import add_perennial_to_world as add_to_world  # noqa: F401


async def keeper_abis() -> dict[str, list[dict[str, Any]]]:
    """From the stand-ins, which declare the Market's, the keeper oracle's and the factory's
    functions, events and errors with the real signatures (compiled as world.py compiles them)."""
    from keeper_devnet.abi_extract import subset
    from keeper_devnet.protocols.perennial_v2.world import perennial_artifacts
    arts = await perennial_artifacts()
    wanted = {
        "perennial_market": ("market", [
            "update", "settle", "claimFee", "positions", "locals", "pendings", "riskParameter", "oracle", "token",
            "liquidators", "OrderCreated", "FeeClaimed"]),
        "perennial_oracle": ("oracle", [
            "commit", "current", "status", "at", "next", "timeout", "parameter", "factory", "ids", "toUnderlyingId",
            "pyth", "localCallbacks", "global", "requests"]),
        # Markets found from the factory: root Factory's registry and IMarketFactory's creation event.
        "perennial_market_factory": ("factory", ["instances", "markets", "InstanceRegistered", "MarketCreated"]),
    }
    return {name: subset(arts[key].abi, names, key) for name, (key, names) in wanted.items()}
