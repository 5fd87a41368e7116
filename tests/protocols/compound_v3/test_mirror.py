"""The incremental Compound III mirror against the Comet stand-in: after random collateral supplies
and withdrawals, borrows, repays, time passing (interest), price moves and the keeper's absorbs,
every account's debt and liquidatability in the mirror equal Comet's borrowBalanceOf and
isLiquidatable at the same block."""
from __future__ import annotations

import copy
import os
import random

import pytest

from keeper.abi import load
from keeper.chain.multicall import Call
from keeper.protocols.compound_v3.adapter import CompoundV3Adapter
from keeper_devnet.deploy import DeployError
from keeper_devnet.protocols.compound_v3.world import (
    add_comet_to_world,
    borrow,
    comet_config_entry,
    comet_transact,
    supply_base,
    supply_collateral,
)
from keeper_devnet.tokens import set_price
from keeper_devnet.world import World, bare_world
from tests.helpers.keeper import make_keeper

COMET = load("compound_v3/CometMain")


@pytest.fixture(scope="module")
async def comet_world(deployer) -> World:
    world = await bare_world(deployer)
    await add_comet_to_world(deployer, world, keeper_base=500_000)
    return world


@pytest.fixture
async def world(comet_world, snapshot):
    yield copy.deepcopy(comet_world)


async def chain_view(keeper, adapter: CompoundV3Adapter, block: int) -> dict[str, tuple[int, bool]]:
    f = COMET.fn
    users = sorted(adapter.accounts)
    calls = []
    for u in users:
        calls += [Call(adapter.comet, f("borrowBalanceOf").encode(u), f("borrowBalanceOf").decode),
                  Call(adapter.comet, f("isLiquidatable").encode(u), f("isLiquidatable").decode)]
    res = await keeper.chain.multicall_strict(calls, block)
    return {u: (res[2 * i], res[2 * i + 1]) for i, u in enumerate(users)}


def mirror_view(adapter: CompoundV3Adapter) -> dict[str, tuple[int, bool]]:
    return {u: (st.debt, st.comet_liquidatable) for u, st in sorted(adapter.accounts.items())}


async def test_random_operations_keep_the_comet_mirror_exact(deployer, world, tmp_path):
    rng = random.Random(int(os.environ.get("MIRROR_SEED", "17")))
    dep = world.extra["comet"]
    users = world.extra["comet_borrowers"]
    world.entries = {"compound_v3": comet_config_entry(dep)}
    keeper = await make_keeper(world, tmp_path)
    adapter = keeper.by_name["compound_v3"]
    assert isinstance(adapter, CompoundV3Adapter) and adapter.cfg.incremental
    plan = ["collateral", "withdraw", "borrow", "repay", "time", "price", "price"] * 4
    rng.shuffle(plan)
    plan.append("crash")  # last: WETH down 35%, so that there is something to absorb
    done: list[str] = []
    try:
        for step, kind in enumerate(plan):
            u = rng.choice(users)
            sym = rng.choice(["WETH", "WBTC"])
            tok = dep.collaterals[sym]
            try:
                if kind == "collateral":
                    await supply_collateral(deployer, dep, u, sym, tok.units({"WETH": 1, "WBTC": 0.05}[sym]))
                elif kind == "withdraw":
                    await comet_transact(deployer, dep, "withdraw", tok.address,
                                         tok.units({"WETH": 0.5, "WBTC": 0.02}[sym]), sender=u)
                elif kind == "borrow":
                    await borrow(deployer, dep, u, dep.base.units(rng.randint(100, 2_000)))
                elif kind == "repay":
                    await supply_base(deployer, dep, u, dep.base.units(rng.randint(100, 3_000)))
                elif kind == "time":
                    await deployer.rpc("evm_increaseTime", [rng.randint(3600, 60 * 86400)])
                    await deployer.rpc("evm_mine", [])
                elif kind == "crash":
                    tok = dep.collaterals["WETH"]
                    tok.price = tok.price * 65 // 100
                    await set_price(deployer, tok, tok.price)
                else:
                    tok.price = tok.price * rng.randint(80, 115) // 100
                    await set_price(deployer, tok, tok.price)
            except DeployError:
                continue  # Comet refused it (undercollateralized, too little collateral)
            done.append(kind)
            block = await keeper.chain.block_number()
            await keeper.step(block)
            assert mirror_view(adapter) == await chain_view(keeper, adapter, block), f"step {step}: {kind}"
            after = await keeper.chain.block_number()
            while after > block:  # the keeper absorbed / bought: the next step mirrors those logs
                block = after
                await keeper.step(block)
                assert mirror_view(adapter) == await chain_view(keeper, adapter, block), f"after {kind}"
                after = await keeper.chain.block_number()
    finally:
        await keeper.close()
    assert {"collateral", "borrow", "repay", "time", "price"} <= set(done)
    assert [o for o in keeper.recorder.outcomes if o.tx_hash], "the crash should have made an absorb"
    assert adapter.mirror_mismatches == 0
    assert adapter.mirror is not None and adapter.mirror.reread < len(users) * len(done)
