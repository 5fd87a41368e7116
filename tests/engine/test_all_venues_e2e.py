"""Lending and leverage in one daemon: Aave V3, Compound III, Morpho Blue, Perennial V2 and Gearbox
V3 in the same world; after one WETH drop every liquidatable position is acted on once, in one
ranking by profit after gas, with 0 reverts; what no liquidation can take is reported, not sent."""
from __future__ import annotations

import copy

import pytest
from keeper_devnet.protocols.aave_v3.common import account_data
from keeper_devnet.protocols.compound_v3.world import comet_call
from keeper_devnet.protocols.gearbox_v3.world import account_state
from keeper_devnet.protocols.morpho_blue.world import MORPHO_DEMO_POSITIONS
from keeper_devnet.protocols.perennial_v2.world import (
    DEMO_UNHEALTHY as PERENNIAL_UNHEALTHY,
)
from keeper_devnet.tokens import set_price
from keeper_devnet.world import ALL_PROTOCOLS

from tests.helpers.keeper import run_keeper, scan_rows, world_with_aave_positions

E18 = 10**18
AAVE_POSITIONS = [({"WETH": 10}, {"USDC": 24_000 * f}) for f in (0.5, 0.74, 0.8)]  # 0.74, 0.8 liquidatable
MORPHO_UNHEALTHY = (0, 2, 3)
GEARBOX_FULL_ONLY = 5  # GEARBOX_DEMO_POSITIONS[5]: bad debt, no partial size restores HF >= 1: a full liquidation
assert len(MORPHO_DEMO_POSITIONS) == 5


@pytest.fixture(scope="module")
async def all_world(deployer):
    return await world_with_aave_positions(deployer, ALL_PROTOCOLS, AAVE_POSITIONS)


@pytest.fixture
async def world(all_world, snapshot):
    yield copy.deepcopy(all_world)


async def drop_weth(d, world, bps=3_000):
    weth = world.tokens["WETH"]
    await set_price(d, weth, weth.price * (10_000 - bps) // 10_000)
    await d.rpc("evm_increaseTime", [10])  # a pull-oracle price published now is a newer version
    await d.rpc("evm_mine", [])


async def liquidatable_now(d, world) -> dict[str, set[str]]:
    """Each venue's own verdict (Perennial's at the fresh price the keeper commits)."""
    gb = world.extra["gearbox"]
    return {
        "aave_v3": {u for u in world.extra["aave_borrowers"] if (await account_data(d, world.aave, u))[5] < E18},
        "compound_v3": {u for u in world.extra["comet_borrowers"]
                        if await comet_call(d, world.extra["comet"], "isLiquidatable", u)},
        "morpho_blue": {world.extra["morpho_borrowers"][i] for i in MORPHO_UNHEALTHY},
        "perennial_v2": {world.extra["perennial_accounts"][i] for i in PERENNIAL_UNHEALTHY},
        "gearbox_v3": {ca for ca in world.extra["gearbox_accounts"] if (await account_state(d, gb, ca)).liquidatable},
    }


def acted_on(outcome: dict) -> list[str]:
    return outcome["accounts"]


async def test_one_ranking_over_lending_and_leverage_each_position_once(deployer, world, tmp_path):
    await drop_weth(deployer, world)
    expected = await liquidatable_now(deployer, world)
    assert all(expected.values()), expected
    full_only = world.extra["gearbox_accounts"][GEARBOX_FULL_ONLY]
    assert full_only in expected["gearbox_v3"]
    keeper = await run_keeper(world, tmp_path, until_quiet=True)
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == []
    liqs = report["liquidations"]
    for proto in ALL_PROTOCOLS:
        covered = sorted(a for o in liqs if o["protocol"] == proto for a in acted_on(o))
        assert covered == sorted(expected[proto]), proto  # each once, nobody healthy
    # The account only a full liquidation could resolve is fully liquidated.
    (full,) = [o for o in liqs if o["account"] == full_only]
    assert full["details"]["liquidation"] == "full" and full["details"]["bad_debt"]
    # The first block's sends are one ranking across all five venues.
    first, seen = [], set()
    for o in liqs:
        if o["rank"] in seen or (first and o["rank"] < first[-1]["rank"]):
            break
        seen.add(o["rank"])
        first.append(o)
    assert {o["protocol"] for o in first} == set(ALL_PROTOCOLS)
    nets = [o["ranked_net_usd"] for o in first]
    assert nets == sorted(nets, reverse=True)
    for o in liqs:
        assert o["realised_profit_usd"] == pytest.approx(o["predicted_profit_usd"], rel=0.005)
    # Aave, Comet and Gearbox leave nobody liquidatable.
    left = await liquidatable_now(deployer, world)
    assert not left["aave_v3"] and not left["compound_v3"] and not left["gearbox_v3"]


async def test_scan_is_one_table_over_all_venues(deployer, world, tmp_path):
    await drop_weth(deployer, world)
    expected = await liquidatable_now(deployer, world)
    rows = await scan_rows(world, tmp_path)
    assert {r.protocol for r in rows} == set(ALL_PROTOCOLS)
    for proto in ALL_PROTOCOLS:
        assert {r.account for r in rows if r.protocol == proto and r.liquidatable} == expected[proto], proto
    profits = [r.expected_profit_usd or 0 for r in rows if r.liquidatable]
    assert profits == sorted(profits, reverse=True)
