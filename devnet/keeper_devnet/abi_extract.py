"""What the keeper's abis/ folder holds, taken from the protocols' published artifacts (or, where a
protocol publishes none, from the stand-ins that declare its signatures): subsets of the functions,
events and errors the keeper uses, so the keeper ships the real declarations without copying the
packages' files. Each protocol's devnet folder declares its own files (``keeper_abis()``); shared
ones (ERC20, Chainlink, Pyth) are declared here. scripts/extract_abis.py writes them."""
from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Awaitable, Callable
from typing import Any

from keeper_devnet.solc import NODE_MODULES

Abi = list[dict[str, Any]]


def npm_abi(rel: str) -> Abi:
    """The ABI of a JSON artifact (hardhat-style ``{"abi": ...}`` or a bare list) under node_modules."""
    data = json.loads((NODE_MODULES / rel).read_text())
    out: Abi = data["abi"] if isinstance(data, dict) else data
    return out


async def compiled_abi(compiler: str, units: list[tuple[str, str]]) -> Abi:
    """ABIs of (source, contract) units compiled together with a pinned solcjs."""
    from keeper_devnet.solc import compile_standard_json
    out = await compile_standard_json([src for src, _ in units], compiler=compiler, evm_version="paris")
    abi: Abi = []
    for src, name in units:
        abi += out["contracts"][src][name]["abi"]
    return abi


def subset(abi: Abi, names: list[str], source: str, *, errors: bool = True) -> Abi:
    """The entries of ``abi`` named in ``names`` (errors left out unless ``errors``); every name must
    be there."""
    out = [e for e in abi if e.get("name") in names and (errors or e["type"] != "error")]
    missing = set(names) - {e["name"] for e in out}
    if missing:
        raise RuntimeError(f"{source} lacks {sorted(missing)}")
    return out


async def common_abis() -> dict[str, Abi]:
    """abis/common: what every protocol meets (tokens, Chainlink feeds, Pyth)."""
    wanted = {
        "ERC20": ("@openzeppelin/contracts/build/contracts/ERC20.json",
                  ["balanceOf", "allowance", "approve", "decimals", "symbol", "Transfer"]),
        "ChainlinkAggregatorV3": ("@chainlink/contracts/abi/v0.8/shared/AggregatorV3Interface.abi.json",
                                  ["latestRoundData", "decimals", "description"]),
        "pyth": ("@pythnetwork/pyth-sdk-solidity/abis/IPyth.json",
                 ["getUpdateFee", "updatePriceFeeds", "parsePriceFeedUpdates", "getPriceUnsafe", "PriceFeedUpdate"]),
        "pyth_mock": ("@pythnetwork/pyth-sdk-solidity/abis/MockPyth.json", ["createPriceFeedUpdateData"]),
    }
    return {name: subset(npm_abi(rel), names, rel) for name, (rel, names) in wanted.items()}


def all_sources() -> dict[str, Callable[[], Awaitable[dict[str, Abi]]]]:
    """abis/ subfolder -> the coroutine function that produces its files: "common", then every
    protocol folder of keeper_devnet.protocols that declares ``keeper_abis``."""
    import keeper_devnet.protocols as pkg
    out: dict[str, Callable[[], Awaitable[dict[str, Abi]]]] = {"common": common_abis}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"keeper_devnet.protocols.{info.name}")
        if hasattr(mod, "keeper_abis"):
            out[info.name] = mod.keeper_abis
    return out


async def extract_all() -> dict[str, dict[str, Abi]]:
    """abis/ subfolder -> file name -> entries."""
    return {folder: await fn() for folder, fn in all_sources().items()}
