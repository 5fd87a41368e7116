"""The keeper's choice of a Uniswap V3 route, end to end on the real Aave V3 and Uniswap V3 (wallet:
ETH only). An Aave position holds WBTC and owes USDC; WBTC drops and the pools follow the oracle.
- The direct WBTC/USDC pool is shallow, the two pools through WETH deep: the keeper sells through
  WETH, and the test's own quotes at the planning block show that path paying more than the direct
  pool for what was sold.
- `[swap] pools` lists only the two pools through WETH: the keeper uses them although the factory
  holds a deep direct pool, which it picks when the list is absent."""
from __future__ import annotations

import copy

import pytest
from keeper_devnet.tokens import set_price
from keeper_devnet.uniswap import align_world_pools, shrink_pool
from keeper_devnet.world import open_position

from keeper.executor import encode_path
from tests.helpers.flash import check_flash_outcome, flash_keeper, flash_world, quote
from tests.helpers.keeper import scan_rows, step

POSITION = ({"WBTC": 1}, {"USDC": 40_000})  # HF 1.125 at $60,000; 0.9375 at $50,000
WBTC_DROP = 50_000_00000000
TWO_HOP = "WBTC -0.30%-> WETH -0.30%-> USDC"
DIRECT = "WBTC -0.30%-> USDC"


@pytest.fixture(scope="module")
async def routes_base(deployer):
    world = await flash_world(deployer, ("aave_v3",), pool_usd=10_000_000)
    (user,) = world.take_accounts(1)
    await open_position(deployer, world, user, *POSITION)
    world.extra["aave_borrowers"] = [user]
    return world


@pytest.fixture
async def world(routes_base, snapshot):
    yield copy.deepcopy(routes_base)


async def drop_wbtc(d, world) -> None:
    await set_price(d, world.tokens["WBTC"], WBTC_DROP)
    await align_world_pools(d, world)


def path(world, *symbols: str) -> bytes:
    return encode_path([world.tokens[s].address for s in symbols], [3000] * (len(symbols) - 1))


async def liquidate(world, tmp_path, **cfg) -> dict:
    keeper = await flash_keeper(world, tmp_path, ["aave_v3"], **cfg)
    try:
        await step(keeper)
    finally:
        await keeper.close()
    (o,) = [o for o in keeper.recorder.report()["liquidations"] if o["account"] == world.extra["aave_borrowers"][0]]
    return o


async def test_the_keeper_sells_through_weth_when_the_direct_pool_is_shallow(deployer, world, tmp_path):
    d = deployer
    await drop_wbtc(d, world)
    await shrink_pool(d, world.extra["uniswap"], world.extra["uniswap_pools"]["WBTC/USDC"], 100)  # ~$100k a side
    o = await liquidate(world, tmp_path)
    token, _, receipts = await check_flash_outcome(d, world, o)
    assert token == world.tokens["USDC"].address
    flash = o["details"]["flash"]
    assert flash["route"] == TWO_HOP, flash
    # What was sold: the WBTC the executor sent into the route's first pool.
    wbtc_in = await wbtc_sold(d, world, receipts)
    block = o["block"] - 1  # the state the keeper planned on
    through_weth = await quote(d, world, path(world, "WBTC", "WETH", "USDC"), wbtc_in, block)
    direct = await quote(d, world, path(world, "WBTC", "USDC"), wbtc_in, block)
    assert through_weth > direct * 1.01, (through_weth, direct)  # not a close call: the direct pool is shallow
    assert int(flash["quoted_out"]) == through_weth


async def wbtc_sold(d, world, receipts) -> int:
    """WBTC the executor transferred to the WBTC/WETH pool in the keeper's transactions."""
    from eth_utils import keccak
    transfer = keccak(text="Transfer(address,address,uint256)")
    pool = world.extra["uniswap_pools"]["WETH/WBTC"].address.lower()
    wbtc = world.tokens["WBTC"].address.lower()
    total = 0
    for rc in receipts:
        for lg in rc["logs"]:
            if (lg["address"].lower() == wbtc and bytes(lg["topics"][0]) == transfer
                    and "0x" + lg["topics"][2].hex()[-40:] == pool):
                total += int.from_bytes(bytes(lg["data"]), "big")
    assert total > 0
    return total


async def test_the_listed_pools_are_the_only_ones_used(deployer, world, tmp_path):
    d = deployer
    await drop_wbtc(d, world)
    rows = {r.account: r for r in await scan_rows(world, tmp_path, execution="flash", protocols=["aave_v3"])}
    assert rows[world.extra["aave_borrowers"][0]].route == DIRECT  # every pool deep: one fee beats two
    pools = world.extra["uniswap_pools"]
    listed = [pools["WETH/WBTC"].address, pools["WETH/USDC"].address]
    o = await liquidate(world, tmp_path, swap={"pools": listed})
    await check_flash_outcome(d, world, o)
    assert o["details"]["flash"]["route"] == TWO_HOP
