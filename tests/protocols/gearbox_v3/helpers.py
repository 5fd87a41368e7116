"""Gearbox V3 test helpers shared by the real-contract, e2e and pull-feed tests."""
from __future__ import annotations

from keeper_devnet.protocols.gearbox_v3.world import (
    GearboxDeployment,
    gearbox_config_entry,
)

from tests.helpers.keeper import make_keeper


def gearbox(world) -> GearboxDeployment:
    return world.extra["gearbox"]


async def keeper_for(world, tmp_path, *, mode="live", min_profit_usd="1", **entry):
    world.entries = {"gearbox_v3": gearbox_config_entry(gearbox(world), **entry)}
    return await make_keeper(world, tmp_path, mode=mode, min_profit_usd=min_profit_usd)




def dep_of(world) -> GearboxDeployment:
    return world.extra["gearbox"]


async def call(d, dep: GearboxDeployment, contract: str, address: str, fn: str, *args):
    return await d.at(address, dep.abis[contract]).get_function_by_name(fn)(*args).call()


