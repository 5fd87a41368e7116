"""One daemon over every lending protocol of the world (the real Aave V3, the Comet stand-in, the real
Morpho Blue): one ranking by profit after gas, every liquidatable position acted on once, 0 reverts;
and when plans compete for the same wallet balance the more profitable one goes first."""
from __future__ import annotations

import copy

import pytest
from keeper_devnet.protocols.aave_v3.common import account_data
from keeper_devnet.protocols.compound_v3.world import comet_call
from keeper_devnet.tokens import balance_of, erc20_artifact, set_price
from keeper_devnet.world import KEEPER_ADDRESS

from tests.helpers.keeper import (
    make_keeper,
    run_and_close,
    run_keeper,
    scan_rows,
    world_with_aave_positions,
)

E18 = 10**18
LENDING = ("aave_v3", "compound_v3", "morpho_blue")
# Aave: WETH/USDC at fraction f of the 80% LTV; after a 30% WETH drop f=0.74 and 0.8 are
# liquidatable (HF 0.975 and 0.90), and one liquidation makes them healthy; 0.5 stays healthy.
AAVE_POSITIONS = [({"WETH": 10}, {"USDC": 24_000 * f}) for f in (0.5, 0.74, 0.8)]
MORPHO_UNHEALTHY = (0, 2, 3)  # see tests/engine/test_morpho_blue_e2e.py


@pytest.fixture(scope="module")
async def mixed_world(deployer):
    return await world_with_aave_positions(deployer, LENDING, AAVE_POSITIONS)


@pytest.fixture
async def world(mixed_world, snapshot):
    yield copy.deepcopy(mixed_world)


async def liquidatable_now(d, world) -> dict[str, set[str]]:
    """Each protocol's own verdict, read from its contracts."""
    aave = {u for u in world.extra["aave_borrowers"] if (await account_data(d, world.aave, u))[5] < E18}
    comet = {u for u in world.extra["comet_borrowers"]
             if await comet_call(d, world.extra["comet"], "isLiquidatable", u)}
    morpho = {world.extra["morpho_borrowers"][i] for i in MORPHO_UNHEALTHY}
    return {"aave_v3": aave, "compound_v3": comet, "morpho_blue": morpho}


async def drop_weth(d, world, bps=3_000):
    weth = world.tokens["WETH"]
    await set_price(d, weth, weth.price * (10_000 - bps) // 10_000)


def acted_on(outcome: dict) -> list[str]:
    """The accounts one liquidation covered (Comet's absorb batches name several)."""
    return outcome["accounts"]


async def test_all_protocols_one_ranking_each_position_once(deployer, world, tmp_path):
    await drop_weth(deployer, world)
    expected = await liquidatable_now(deployer, world)
    assert all(expected.values())  # every protocol has something to liquidate
    keeper = await run_keeper(world, tmp_path, until_quiet=True)
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == []
    liqs = report["liquidations"]
    for proto in LENDING:
        covered = [a for o in liqs if o["protocol"] == proto for a in acted_on(o)]
        assert sorted(covered) == sorted(expected[proto]), proto  # each once, nobody healthy
    # Nothing liquidatable is left on chain.
    left = await liquidatable_now(deployer, world)
    assert not left["aave_v3"] and not left["compound_v3"]
    # Sends followed one ranking across protocols: in each block step, most profitable after gas first.
    steps: list[list[dict]] = []
    for o in liqs:
        if not steps or o["rank"] <= steps[-1][-1]["rank"]:
            steps.append([])  # the ranking starts again: a new block
        steps[-1].append(o)
    for step in steps:
        nets = [o["ranked_net_usd"] for o in step]
        assert nets == sorted(nets, reverse=True)
    first_step = steps[0]
    assert {o["protocol"] for o in first_step} == set(LENDING)  # all three ranked together
    for o in liqs:
        assert o["realised_profit_usd"] == pytest.approx(o["predicted_profit_usd"], rel=0.005)


async def test_competing_for_the_same_balance_the_more_profitable_goes_first(deployer, world, tmp_path):
    """Leave the wallet only enough USDC for about one plan: the best-ranked takes it whole; the
    others are planned again with what is left (smaller) or skipped naming the balance."""
    usdc = world.tokens["USDC"]
    held = await balance_of(deployer, usdc, KEEPER_ADDRESS)
    keep = usdc.units(12_000)
    await deployer.transact(usdc.address, (await erc20_artifact()).abi, "transfer", world.admin, held - keep,
                            sender=KEEPER_ADDRESS)
    await drop_weth(deployer, world)
    keeper = await run_keeper(world, tmp_path)
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == []
    spent_usdc = [o for o in report["liquidations"] if usdc.address in o["details"]["token_deltas"]
                  and int(o["details"]["token_deltas"][usdc.address]) < 0]
    assert len(spent_usdc) == 1  # the balance covered one plan
    [winner] = spent_usdc
    assert -int(winner["details"]["token_deltas"][usdc.address]) > keep * 95 // 100  # nearly all of it
    # Every plan that wanted the same USDC ranked below the winner, was planned again with what was
    # left and skipped, naming the balance; nothing was sent for it.
    losers = [o for o in report["skipped"] if "USDC" in o["reason"]]
    assert {o["protocol"] for o in losers} >= {"morpho_blue", "compound_v3"}
    for o in losers:
        assert o["rank"] > winner["rank"]
        assert o["ranked_net_usd"] <= winner["ranked_net_usd"]


async def test_scan_lists_all_protocols_in_one_table(deployer, world, tmp_path):
    await drop_weth(deployer, world)
    expected = await liquidatable_now(deployer, world)
    rows = await scan_rows(world, tmp_path)
    assert {r.protocol for r in rows} == set(LENDING)
    flagged = {p: {r.account for r in rows if r.protocol == p and r.liquidatable} for p in LENDING}
    assert flagged == expected
    # One table: liquidatable rows first, by expected profit.
    assert [r.liquidatable for r in rows] == sorted((r.liquidatable for r in rows), reverse=True)
    profits = [r.expected_profit_usd or 0 for r in rows if r.liquidatable]
    assert profits == sorted(profits, reverse=True)


async def test_price_back_before_sending_is_caught_by_simulation_with_readable_reasons(deployer, world, tmp_path):
    """A race: the keeper reads the chain after the drop, the price recovers before it simulates.
    The contracts' reverts become readable skip reasons, and nothing is sent."""
    weth = world.tokens["WETH"]
    price = weth.price
    await drop_weth(deployer, world)
    keeper = await make_keeper(world, tmp_path)
    run = keeper.executor.run

    async def recover_then_run(*args, **kw):
        await set_price(deployer, weth, price)
        return await run(*args, **kw)

    keeper.executor.run = recover_then_run
    nonce = await deployer.w3.eth.get_transaction_count(KEEPER_ADDRESS)
    await run_and_close(keeper)
    report = keeper.recorder.report()
    assert report["liquidations"] == [] and report["reverted"] == []
    assert await deployer.w3.eth.get_transaction_count(KEEPER_ADDRESS) == nonce
    readable = {"aave_v3": "would revert: 45 HEALTH_FACTOR_NOT_BELOW_THRESHOLD",  # Aave's numeric code
                "morpho_blue": "would revert: position is healthy",  # Morpho's string
                "compound_v3": "would revert: NotLiquidatable"}  # Comet's custom error
    assert {o["protocol"] for o in report["skipped"]} == set(LENDING)
    for o in report["skipped"]:
        assert o["reason"].startswith("simulation: ") and o["reason"].endswith(readable[o["protocol"]])
