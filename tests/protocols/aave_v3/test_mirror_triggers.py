"""The Aave V3 mirror's trigger-price index against the real Pool (@aave/core-v3 1.19.3): when one
price drops, the users re-checked before planning are only those the drop can have made
liquidatable (and those near it), yet the mirror finds exactly the users the Pool says are
liquidatable; the other users exposed to the asset are re-checked after the plans (after_block), and
then their account data equals the Pool's."""
from __future__ import annotations

import copy

import pytest

from keeper.abi import load
from keeper.chain.multicall import Call
from keeper.protocols.aave_v3.adapter import AaveV3Adapter
from keeper_devnet.tokens import set_price
from keeper_devnet.world import open_position
from tests.helpers.keeper import make_keeper

pytestmark = pytest.mark.anvil
POOL = load("aave_v3/AaveV3Pool")
HF_ONE = 10**18

# WETH collateral / USDC debt at fraction f of 24,000 USDC (10 WETH): after a 30% WETH drop HF is
# 0.7 x 0.825 / (0.8 f): f = 0.3 -> 2.4, 0.5 -> 1.44, 0.6 -> 1.2, 0.74 -> 0.975, 0.8 -> 0.90.
POSITIONS = [({"WETH": 10}, {"USDC": 24_000 * f}) for f in (0.3, 0.35, 0.4, 0.5, 0.6, 0.74, 0.8)] + [
    ({"WBTC": 1}, {"USDC": 30_000}),  # not exposed to WETH
    ({"WBTC": 1}, {"WETH": 5}),  # WETH on the debt side: the drop helps it
    ({"WETH": 10, "WBTC": 0.2}, {"USDC": 27_000}),  # two collaterals: HF ~0.97 after the drop
    ({"WETH": 10, "WBTC": 0.5}, {"USDC": 10_000}),  # two collaterals, healthy after it
]


@pytest.fixture
async def world(real_world, snapshot):
    yield copy.deepcopy(real_world)


async def pool_view(keeper, adapter: AaveV3Adapter, block: int) -> dict[str, tuple[int, int, int]]:
    fn = POOL.fn("getUserAccountData")
    users = sorted(adapter.users)
    res = await keeper.chain.multicall_strict([Call(adapter.pool, fn.encode(u), fn.decode) for u in users], block)
    return {u: (d[0], d[1], d[5]) for u, d in zip(users, res)}


async def test_a_single_price_drop_rechecks_only_the_crossed_users_before_planning(deployer, world, tmp_path):
    users = world.take_accounts(len(POSITIONS))
    for u, (c, d) in zip(users, POSITIONS):
        await open_position(deployer, world, u, c, d)
    keeper = await make_keeper(world, tmp_path)
    try:
        adapter = keeper.by_name["aave_v3"]
        assert isinstance(adapter, AaveV3Adapter) and adapter.mirror is not None
        m = adapter.mirror
        block = await keeper.chain.block_number()
        await keeper.discovery.advance(block, keeper.chain)
        await adapter.refresh(block)  # the first block: everyone read and computed (a full re-check)
        assert set(users) <= m.users.keys() and not m.liquidatable() and not m.deferred
        assert set(users) <= m.stale  # their triggers are computed once the plans are sent
        await adapter.after_block(block)
        assert not m.pending()
        weth = world.tokens["WETH"]
        exposed = set(m.exposure[weth.address])
        assert len(exposed & set(users)) == 10  # (and the world's liquidity supplier)

        await set_price(deployer, weth, weth.price * 7 // 10)  # one price moved, nothing else
        block = await keeper.chain.block_number()
        await keeper.discovery.advance(block, keeper.chain)
        await adapter.refresh(block)  # mirror, then the liquidatable users confirmed on chain
        pool = await pool_view(keeper, adapter, block)
        on_chain = {u for u, (_, debt, hf) in pool.items() if debt and hf < HF_ONE}
        assert on_chain == {users[5], users[6], users[9]}
        assert set(m.liquidatable()) == on_chain
        assert m.stats.confirm_mismatches == 0
        # Re-checked before planning: the users the drop reached (no one else was near liquidation).
        assert m.stats.last_rechecked == len(on_chain)
        assert m.deferred == exposed - on_chain
        for u in m.deferred & set(users):  # their data is still the one before the drop
            assert m.data[u].health_factor != pool[u][2]

        await adapter.after_block(block)  # the plans are sent: the deferred users re-checked
        assert not m.deferred and m.stats.deferred == len(exposed - on_chain)
        # (users the drop does not touch keep the data of their last re-check: interest accrues)
        mine = {u: (d.total_collateral_base, d.total_debt_base, d.health_factor)
                for u in sorted(exposed) for d in [m.data[u]]}
        assert mine == {u: pool[u] for u in sorted(exposed)}
        mine_users = sorted(exposed & set(users))
        assert {u: adapter.users[u].health_factor for u in mine_users} == {u: pool[u][2] for u in mine_users}

        # Two prices moved since the block mirrored (here in two blocks, the keeper mirroring only the
        # second): every user exposed to either is re-checked before planning, nothing deferred.
        wbtc = world.tokens["WBTC"]
        await set_price(deployer, wbtc, wbtc.price * 95 // 100)
        await set_price(deployer, weth, weth.price * 98 // 100)
        block = await keeper.chain.block_number()
        await keeper.discovery.advance(block, keeper.chain)
        await adapter.refresh(block)
        assert not m.deferred
        assert m.stats.last_rechecked == len(exposed | m.exposure[wbtc.address])
    finally:
        await keeper.close()
