"""Gearbox V3 test helpers shared by the real-contract, e2e and pull-feed tests."""
from __future__ import annotations

from keeper_devnet.protocols.gearbox_v3.world import (
    GearboxDeployment,
    gearbox_config_entry,
)

from tests.helpers.keeper import make_keeper


def gearbox(world) -> GearboxDeployment:
    return world.extra["gearbox"]


async def keeper_for(world, tmp_path, *, mode="live", min_profit_usd="1", store=None, **entry):
    world.entries = {"gearbox_v3": gearbox_config_entry(gearbox(world), **entry)}
    return await make_keeper(world, tmp_path, mode=mode, min_profit_usd=min_profit_usd, store=store)




def dep_of(world) -> GearboxDeployment:
    return world.extra["gearbox"]


async def call(d, dep: GearboxDeployment, contract: str, address: str, fn: str, *args):
    return await d.at(address, dep.abis[contract]).get_function_by_name(fn)(*args).call()




async def facade_multicall(d, dep: GearboxDeployment, ca: str, borrower: str, *inner: tuple) -> dict:
    """CreditFacadeV3.multicall(ca, calls) from the borrower; ``inner``: (fn, *args) of
    ICreditFacadeV3Multicall (increaseDebt, decreaseDebt, addCollateral, withdrawCollateral, updateQuota...)."""
    c = d.at(dep.credit_facade, dep.abis["ICreditFacadeV3Multicall"])
    calls = [(dep.credit_facade, bytes.fromhex(c.encode_abi(fn, list(args))[2:])) for fn, *args in inner]
    return await d.transact(dep.credit_facade, dep.abis["CreditFacadeV3"], "multicall", ca, calls, sender=borrower)
