"""The incremental Morpho Blue mirror against the real Morpho Blue: after random collateral supplies
and withdrawals, borrows, repays, time passing, price moves and the keeper's liquidations, every
borrower's position in the mirror equals Morpho.position at the same block, and so does the
health computed from it; positions are read again only for borrowers named by the block's logs."""
from __future__ import annotations

import copy
import os
import random

import pytest

from keeper.abi import load
from keeper.chain.multicall import Call
from keeper.protocols.morpho_blue import maths as mm
from keeper.protocols.morpho_blue.adapter import MorphoBlueAdapter
from keeper_devnet.deploy import DeployError
from keeper_devnet.protocols.morpho_blue.world import (
    add_morpho_to_world,
    borrow,
    morpho_abi,
    supply_collateral,
)
from keeper_devnet.tokens import approve, mint, set_price
from keeper_devnet.world import KEEPER_ADDRESS, KEEPER_INVENTORY, World, bare_world
from tests.helpers.keeper import make_keeper

MORPHO = load("morpho_blue/MorphoBlue")
UINT_MAX = 2**256 - 1


@pytest.fixture(scope="module")
async def morpho_world(deployer) -> World:
    world = await bare_world(deployer)
    await add_morpho_to_world(deployer, world)
    for sym, amount in KEEPER_INVENTORY.items():
        await mint(deployer, world.tokens[sym], KEEPER_ADDRESS, world.tokens[sym].units(amount))
    return world


@pytest.fixture
async def world(morpho_world, snapshot):
    yield copy.deepcopy(morpho_world)


async def chain_positions(keeper, adapter: MorphoBlueAdapter, block: int) -> dict[tuple[bytes, str], tuple[int, int]]:
    fn = MORPHO.fn("position")
    pairs = sorted((m.id, b) for m in adapter.markets.values() for b in m.borrowers)
    res = await keeper.chain.multicall_strict([Call(adapter.morpho, fn.encode(i, b), fn.decode) for i, b in pairs],
                                              block)
    return {p: (r[1], r[2]) for p, r in zip(pairs, res)}


def mirror_positions(adapter: MorphoBlueAdapter) -> dict[tuple[bytes, str], tuple[int, int]]:
    return {(m.id, b): pos for m in adapter.markets.values() for b, pos in m.positions.items()}


def health(adapter: MorphoBlueAdapter, positions) -> dict[tuple[bytes, str], bool]:
    out = {}
    for (mid, b), (shares, coll) in positions.items():
        m = adapter.markets[mid]
        assert m.market is not None
        out[(mid, b)] = mm.is_healthy(shares, coll, m.market, m.price, m.lltv)
    return out


async def check(keeper, adapter, block, what):
    chain = await chain_positions(keeper, adapter, block)
    mine = mirror_positions(adapter)
    assert mine == chain, what
    assert health(adapter, mine) == health(adapter, chain), what


async def test_random_operations_keep_the_morpho_mirror_exact(deployer, world, tmp_path):
    rng = random.Random(int(os.environ.get("MIRROR_SEED", "17")))
    dep = world.extra["morpho"]
    users = world.extra["morpho_borrowers"]
    keeper = await make_keeper(world, tmp_path, protocols=["morpho_blue"])
    adapter = keeper.by_name["morpho_blue"]
    assert isinstance(adapter, MorphoBlueAdapter) and adapter.cfg.incremental
    abi = await morpho_abi()
    plan = ["collateral", "withdraw", "borrow", "repay", "time", "price", "price"] * 4
    rng.shuffle(plan)
    plan.append("crash")
    done: list[str] = []
    try:
        await keeper.step(await keeper.chain.block_number())
        read_before = adapter.positions_read
        for step, kind in enumerate(plan):
            u = rng.choice(users)
            m = rng.choice(list(dep.markets.values()))
            try:
                if kind == "collateral":
                    await supply_collateral(deployer, dep, m, u, m.collateral.units(rng.uniform(0.01, 0.5)
                                                                                     * 10**8 / m.collateral.price))
                elif kind == "withdraw":
                    await deployer.transact(dep.morpho, abi, "withdrawCollateral", m.params,
                                            m.collateral.units(50 * 10**8 / m.collateral.price / 1e2), u, u, sender=u)
                elif kind == "borrow":
                    await borrow(deployer, dep, m, u, m.loan.units(rng.uniform(10, 300) * 10**8 / m.loan.price))
                elif kind == "repay":
                    amount = m.loan.units(rng.uniform(10, 300) * 10**8 / m.loan.price)
                    await mint(deployer, m.loan, u, amount)
                    await approve(deployer, m.loan, u, dep.morpho, amount)
                    await deployer.transact(dep.morpho, abi, "repay", m.params, amount, 0, u, b"", sender=u)
                elif kind == "time":
                    await deployer.rpc("evm_increaseTime", [rng.randint(3600, 30 * 86400)])
                    await deployer.rpc("evm_mine", [])
                elif kind == "crash":
                    weth = world.tokens["WETH"]
                    await set_price(deployer, weth, weth.price * 65 // 100)
                else:
                    tok = world.tokens[rng.choice(["WETH", "WBTC"])]
                    tok.price = tok.price * rng.randint(85, 115) // 100
                    await set_price(deployer, tok, tok.price)
            except DeployError:
                continue
            done.append(kind)
            block = await keeper.chain.block_number()
            await keeper.step(block)
            await check(keeper, adapter, block, f"step {step}: {kind}")
            after = await keeper.chain.block_number()
            while after > block:
                block = after
                await keeper.step(block)
                await check(keeper, adapter, block, f"after {kind}")
                after = await keeper.chain.block_number()
    finally:
        await keeper.close()
    assert {"collateral", "borrow", "repay", "time", "price"} <= set(done)
    assert [o for o in keeper.recorder.outcomes if o.tx_hash], "the crash should have made a liquidation"
    pairs = sum(len(m.borrowers) for m in adapter.markets.values())
    assert adapter.positions_read - read_before < pairs * len(done) // 2  # only the named ones re-read
