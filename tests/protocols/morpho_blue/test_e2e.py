"""The keeper end to end on the real Morpho Blue (@morpho-org/morpho-blue 1.0.0): liquidations at two
LLTVs after a price drop, a position made liquidatable by accrued interest alone, and bad debt;
everything asserted on chain (Liquidate events, positions, balances)."""
from __future__ import annotations

import copy

import pytest
from keeper_devnet.protocols.morpho_blue.world import (
    MORPHO_DEMO_POSITIONS,
    MorphoDeployment,
    add_morpho_to_world,
    events,
    open_morpho_position,
    position,
)
from keeper_devnet.tokens import mint, set_price
from keeper_devnet.world import KEEPER_ADDRESS, KEEPER_INVENTORY, World, bare_world

from tests.helpers.keeper import (
    Wallet,
    make_keeper,
    run_keeper,
    run_until_quiet,
    scan_rows,
    step,
)

# MORPHO_DEMO_POSITIONS after a 30% WETH drop: 0 (lltv 0.86), 2 (bad debt) and 3 (lltv 0.77).
UNHEALTHY = (0, 2, 3)
BAD_DEBT = 2


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


def morpho(world: World) -> MorphoDeployment:
    return world.extra["morpho"]


async def drop_weth(d, world, bps=3_000):
    weth = world.tokens["WETH"]
    await set_price(d, weth, weth.price * (10_000 - bps) // 10_000)


async def liquidate_events(d, world, report) -> dict[str, dict]:
    out = {}
    for o in report["liquidations"]:
        receipt = await d.w3.eth.get_transaction_receipt(o["tx_hash"])
        assert receipt["status"] == 1
        [ev] = await events(d, morpho(world), receipt, "Liquidate")
        out[o["account"]] = ev
    return out


async def test_price_drop_liquidates_each_unhealthy_position_once(deployer, world, tmp_path):
    borrowers = world.extra["morpho_borrowers"]
    markets = {i: morpho(world).markets[MORPHO_DEMO_POSITIONS[i][0]] for i in range(len(borrowers))}
    keeper = await make_keeper(world, tmp_path)
    try:
        await step(keeper)
        assert keeper.recorder.outcomes == []  # all healthy before the drop
        await drop_weth(deployer, world)
        before = {i: await position(deployer, morpho(world), markets[i], b) for i, b in enumerate(borrowers)}
        wallet = await Wallet(deployer, world).start()
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == []
    assert sorted(o["account"] for o in report["liquidations"]) == sorted(borrowers[i] for i in UNHEALTHY)
    evs = await liquidate_events(deployer, world, report)
    assert {markets[i].lltv for i in UNHEALTHY} == {86 * 10**16, 77 * 10**16}  # two LLTVs
    for i, b in enumerate(borrowers):
        after = await position(deployer, morpho(world), markets[i], b)
        if i not in UNHEALTHY:
            assert after == before[i]  # untouched
            continue
        ev = evs[b]
        assert ev["borrower"] == b and ev["caller"] == KEEPER_ADDRESS
        assert after.collateral == before[i].collateral - ev["seizedAssets"]
        if i == BAD_DEBT:  # every unit of collateral seized, the rest of the debt socialised
            assert after.collateral == 0 and after.borrow_shares == 0
            assert ev["badDebtAssets"] > 0 and ev["badDebtShares"] > 0
        else:
            assert ev["badDebtAssets"] == 0 and after.borrow_shares < before[i].borrow_shares
    for o in report["liquidations"]:
        assert o["predicted_profit_usd"] > 0
        assert o["realised_profit_usd"] == pytest.approx(o["predicted_profit_usd"], rel=0.005)
    # The recorded figures match the wallet measured independently (tokens at the feeds, gas in ETH).
    total = sum(o["realised_profit_usd"] for o in report["liquidations"])
    assert await wallet.net_usd() == pytest.approx(total, rel=0.005)


async def test_position_made_liquidatable_by_interest_alone(deployer, world, tmp_path):
    """LTV 0.7695 against LLTV 0.77 with no price move: ~3 days of interest at the IrmMock rate tip it
    over. The keeper must find it from accrued interest (Morpho's stored totals are stale)."""
    [user] = world.take_accounts(1)
    await open_morpho_position(deployer, morpho(world), user, "WBTC/USDC", 1, 60_000 * 0.7695)
    keeper = await make_keeper(world, tmp_path)
    try:
        await step(keeper)
        assert keeper.recorder.outcomes == []
        await deployer.rpc("evm_increaseTime", [30 * 86_400])
        await deployer.rpc("evm_mine", [])
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == []
    assert [o["account"] for o in report["liquidations"]] == [user]  # nobody else crossed the line
    [ev] = (await liquidate_events(deployer, world, report)).values()
    assert ev["repaidAssets"] > 0 and ev["badDebtAssets"] == 0
    o = report["liquidations"][0]
    assert o["realised_profit_usd"] == pytest.approx(o["predicted_profit_usd"], rel=0.005)


async def test_dry_run_sends_nothing(deployer, world, tmp_path):
    await drop_weth(deployer, world)
    nonce = await deployer.w3.eth.get_transaction_count(KEEPER_ADDRESS)
    keeper = await run_keeper(world, tmp_path, mode="dry-run")
    report = keeper.recorder.report()
    borrowers = world.extra["morpho_borrowers"]
    assert {o["account"] for o in report["dry_run"]} == {borrowers[i] for i in UNHEALTHY}
    assert report["liquidations"] == []
    assert await deployer.w3.eth.get_transaction_count(KEEPER_ADDRESS) == nonce


async def test_scan_lists_every_position(deployer, world, tmp_path):
    await drop_weth(deployer, world)
    rows = await scan_rows(world, tmp_path)
    borrowers = world.extra["morpho_borrowers"]
    by = {r.account: r for r in rows}
    assert set(by) == set(borrowers)
    for i, b in enumerate(borrowers):
        assert by[b].liquidatable == (i in UNHEALTHY)
        assert by[b].protocol == "morpho_blue" and "lltv" in by[b].pair
        assert (by[b].health < 1) == (i in UNHEALTHY)
