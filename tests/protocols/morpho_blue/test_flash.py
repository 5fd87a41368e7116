"""Morpho Blue in flash mode against the real contracts: a keeper wallet holding no loan token at
all liquidates every liquidatable position through its LiquidationExecutor (liquidate with callback
data: the seized collateral is sold on Uniswap V3 inside onMorphoLiquidate); the owner's balance
change in the loan token is the profit, within 1% of the prediction."""
from __future__ import annotations

import copy

import pytest
from keeper_devnet.protocols.morpho_blue.world import position

from tests.helpers.flash import check_flash_outcome, crash_weth, flash_keeper, flash_world, wallet_tokens
from tests.helpers.keeper import Wallet, run_until_quiet

LIQUIDATABLE = (0, 2, 3)  # MORPHO_DEMO_POSITIONS after the crash: WETH/USDC, WETH/USDC bad debt, WETH/WBTC


@pytest.fixture(scope="module")
async def flash_base(deployer):
    return await flash_world(deployer, ("morpho_blue",), pool_usd=10_000_000)


@pytest.fixture
async def world(flash_base, snapshot):
    yield copy.deepcopy(flash_base)


async def test_an_empty_wallet_liquidates_every_position(deployer, world, tmp_path):
    d = deployer
    await crash_weth(d, world)
    assert set((await wallet_tokens(d, world)).values()) == {0}  # ETH for gas, no token at all
    wallet = await Wallet(d, world).start()
    keeper = await flash_keeper(world, tmp_path, ["morpho_blue"])
    try:
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == []
    borrowers = world.extra["morpho_borrowers"]
    liqs = {o["account"]: o for o in report["liquidations"]}
    assert set(liqs) == {borrowers[i] for i in LIQUIDATABLE}
    dep = world.extra["morpho"]
    keys = {0: "WETH/USDC", 2: "WETH/USDC", 3: "WETH/WBTC"}
    for i in LIQUIDATABLE:
        o = liqs[borrowers[i]]
        token, _, _ = await check_flash_outcome(d, world, o)
        m = dep.markets[keys[i]]
        assert token == m.loan.address and o["details"]["flash"]["route"].startswith("WETH")
        assert o["details"]["flash"]["lender"] is None  # Morpho's callback: nothing borrowed
        assert (await position(d, dep, m, borrowers[i])).borrow_shares == 0  # repaid, or bad debt realised
    held = await wallet_tokens(d, world)
    assert held["WETH"] == 0 and held["USDC"] > 0 and held["WBTC"] > 0  # profit only in the loan tokens
    assert await wallet.net_usd() == pytest.approx(sum(o["realised_profit_usd"] for o in liqs.values()), rel=0.01)
