"""Compound III in flash mode (the Comet stand-in): a keeper wallet holding no base token absorbs
the liquidatable accounts and buys what the absorb freed with flash liquidity through its
LiquidationExecutor (absorb, then per collateral: borrow USDC, buyCollateral, sell on Uniswap V3,
repay). The owner's USDC change is the profit, within 1% of the prediction."""
from __future__ import annotations

import copy

import pytest
from keeper_devnet.protocols.compound_v3.world import comet_call

from tests.helpers.flash import check_flash_outcome, crash_weth, flash_keeper, flash_world, wallet_tokens
from tests.helpers.keeper import Wallet, run_until_quiet

LIQUIDATABLE = (2, 3, 5, 6)  # COMET_DEMO_POSITIONS after WETH's crash


@pytest.fixture(scope="module")
async def flash_base(deployer):
    return await flash_world(deployer, ("compound_v3", "morpho_blue"), pool_usd=10_000_000)


@pytest.fixture
async def world(flash_base, snapshot):
    yield copy.deepcopy(flash_base)


async def test_an_empty_wallet_absorbs_and_buys_with_flash_liquidity(deployer, world, tmp_path):
    d = deployer
    dep = world.extra["comet"]
    await crash_weth(d, world)
    assert set((await wallet_tokens(d, world)).values()) == {0}
    wallet = await Wallet(d, world).start()
    keeper = await flash_keeper(world, tmp_path, ["compound_v3"])
    try:
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == []
    borrowers = world.extra["comet_borrowers"]
    (o,) = report["liquidations"]  # one batch: absorb 4, buy WETH and WBTC
    assert set(o["accounts"]) == {borrowers[i] for i in LIQUIDATABLE}
    token, profit, receipts = await check_flash_outcome(d, world, o)
    assert token == dep.base.address and len(receipts) == 2  # one executor call per collateral bought
    assert [f["lender"] for f in o["details"]["flash"]] == ["morpho_blue", "morpho_blue"]
    assert {b["symbol"] for b in o["details"]["buys"]} == {"WETH", "WBTC"}
    for i in LIQUIDATABLE:
        assert await comet_call(d, dep, "borrowBalanceOf", borrowers[i]) == 0  # absorbed
    held = await wallet_tokens(d, world)
    assert held["USDC"] == profit and held["WETH"] == held["WBTC"] == 0
    assert await wallet.net_usd() == pytest.approx(o["realised_profit_usd"], rel=0.01)
