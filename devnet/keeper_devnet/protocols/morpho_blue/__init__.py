"""Morpho Blue in the local world: the real @morpho-org/morpho-blue (world.py), markets priced by
ChainlinkPairOracle.sol (beside it) over the tokens' feeds."""
from __future__ import annotations

from typing import Any

from keeper_devnet.protocols.morpho_blue.world import add_morpho_to_world as add_to_world  # noqa: F401

_SRC = "@morpho-org/morpho-blue/src"


async def keeper_abis() -> dict[str, list[dict[str, Any]]]:
    """The package ships sources only: compiled with its pinned compiler (the ABI of an interface
    plus, for the Morpho singleton, the events of EventsLib, which solc 0.8.19 leaves out of it)."""
    from keeper_devnet.abi_extract import compiled_abi, subset
    wanted = {
        "MorphoBlue": ([(f"{_SRC}/interfaces/IMorpho.sol", "IMorpho"),
                        (f"{_SRC}/libraries/EventsLib.sol", "EventsLib")],
                       ["idToMarketParams", "market", "position", "liquidate", "accrueInterest",
                        "CreateMarket", "Supply", "Borrow", "Repay", "SupplyCollateral", "WithdrawCollateral",
                        "Liquidate", "AccrueInterest"]),
        "MorphoIrm": ([(f"{_SRC}/interfaces/IIrm.sol", "IIrm")], ["borrowRateView"]),
        "MorphoOracle": ([(f"{_SRC}/interfaces/IOracle.sol", "IOracle")], ["price"]),
    }
    return {name: subset(await compiled_abi("solc_0_8_19", units), names, units[0][0])
            for name, (units, names) in wanted.items()}
