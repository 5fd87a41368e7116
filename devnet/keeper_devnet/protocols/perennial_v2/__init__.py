"""Perennial V2 in the local world: the Solidity stand-ins beside world.py (Perennial publishes no
deployable package); the keeper's ABIs come from Perennial's published ones (@perennial/sdk)."""
from __future__ import annotations

from typing import Any

from keeper_devnet.protocols.perennial_v2.world import add_perennial_to_world as add_to_world  # noqa: F401

# abis/perennial_v2 file -> (the sdk's contract, the functions and events the keeper uses).
FROM_SDK: dict[str, tuple[str, list[str]]] = {
    "perennial_market": ("Market", [
        "update", "settle", "claimFee", "positions", "locals", "riskParameter", "oracle", "token", "factory",
        "liquidators", "global", "position", "FeeClaimed"]),
    "perennial_market_factory": ("MarketFactory", [
        "instances", "markets", "oracleFactory", "InstanceRegistered", "MarketCreated"]),
    "perennial_oracle": ("Oracle", ["global", "oracles", "market", "factory", "status", "at", "current"]),
    "perennial_oracle_factory": ("OracleFactory", ["instances", "factories", "ids", "oracles", "parameter"]),
    "perennial_keeper_oracle": ("KeeperOracle", [
        "global", "next", "timeout", "requests", "responses", "localCallbacks", "oracle", "factory", "at"]),
    "perennial_keeper_factory": ("KeeperFactory", [
        "commit", "settle", "parameter", "current", "ids", "oracles", "toUnderlyingId", "oracleFactory",
        "commitmentGasOracle", "settlementGasOracle", "instances"]),
    "perennial_gas_oracle": ("GasOracle", ["cost"]),
}
# Market.update overloads: the keeper sends the 6-argument one (a protected full close).
UPDATE_INPUTS = ["address", "uint256", "uint256", "uint256", "int256", "bool"]
# What the sdk (0.0.3-beta.6, Perennial v2.3's ABIs) does not describe as deployed (v2.4 on the
# Perennial chain, Order with `invalidation`, the 9-field Guarantee), or not at all (PythFactory):
# taken from the stand-ins, whose layouts tests/protocols/perennial_v2/test_abis.py checks against the
# sdk's with exactly these differences.
FROM_STAND_IN: dict[str, tuple[str, list[str]]] = {
    "perennial_market": ("market", ["pendings", "OrderCreated"]),
    "perennial_keeper_factory": ("keeper_factory", ["pyth"]),
}


def _only_update6(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries
            if e.get("name") != "update" or [i["type"] for i in e["inputs"]] == UPDATE_INPUTS]


async def keeper_abis() -> dict[str, list[dict[str, Any]]]:
    """Each file: the sdk's entries (without errors: the revert tables name them), then the ones the
    sdk lacks from the stand-ins (compiled as world.py compiles them)."""
    from keeper_devnet.abi_extract import subset
    from keeper_devnet.protocols.perennial_v2.sdk_abi import sdk_abis
    from keeper_devnet.protocols.perennial_v2.world import perennial_artifacts
    sdk = sdk_abis()
    arts = await perennial_artifacts()
    out = {}
    for name, (contract, names) in FROM_SDK.items():
        entries = _only_update6(subset(sdk[contract], names, f"@perennial/sdk {contract}", errors=False))
        if name in FROM_STAND_IN:
            key, extra = FROM_STAND_IN[name]
            entries += subset(arts[key].abi, extra, key, errors=False)
        out[name] = entries
    return out
