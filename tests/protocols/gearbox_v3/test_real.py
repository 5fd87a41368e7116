"""Gearbox V3 from @gearbox-protocol/core-v3 on Anvil: the deployment, credit accounts opened through
the facade's multicall, and a partial liquidation on the real facade after a price drop, checked
against gearbox_v3_math (which the keeper plans with)."""
from __future__ import annotations

import copy

import pytest
from keeper_devnet.deploy import DeployError
from keeper_devnet.protocols.gearbox_v3.world import (
    GEARBOX_CODE,
    GEARBOX_DEMO_POSITIONS,
    PERCENTAGE_FACTOR,
    GearboxDeployment,
    account_state,
    add_gearbox_to_world,
    facade_events,
    liquidate_fully,
    math_account,
)
from keeper_devnet.tokens import approve, balance_of, mint, set_price
from keeper_devnet.world import World, bare_world

from keeper.protocols.gearbox_v3 import maths as gm
from tests.protocols.gearbox_v3.helpers import call, dep_of

PARTIAL, HEALTHY, BAD_DEBT = (0, 1, 2, 3), 4, 5


@pytest.fixture(scope="module")
async def gb_world(deployer) -> World:
    world = await bare_world(deployer)
    await add_gearbox_to_world(deployer, world, pyth_weth=False)  # push feeds; Pyth: test_gearbox_pyth.py
    return world


@pytest.fixture
async def world(gb_world, snapshot):
    yield copy.deepcopy(gb_world)






async def read_account(d, dep: GearboxDeployment, ca: str) -> tuple[gm.Account, list]:
    """The account as gearbox_v3_math sees it, plus the raw calcDebtAndCollateral(ca, 3)."""
    cdd = await call(d, dep, "CreditManagerV3", dep.credit_manager, "calcDebtAndCollateral", ca, 3)
    return await math_account(d, dep, ca), cdd


async def test_deployment(deployer, world):
    d, dep = deployer, dep_of(world)
    assert world.contracts["gearbox_v3"] == GEARBOX_CODE and "gearbox_v3" in world.entries
    cm = dep.credit_manager
    assert await call(d, dep, "CreditManagerV3", cm, "version") == 3_10
    assert await call(d, dep, "CreditManagerV3", cm, "creditFacade") == dep.credit_facade
    assert await call(d, dep, "CreditManagerV3", cm, "creditConfigurator") == dep.credit_configurator
    assert await call(d, dep, "CreditManagerV3", cm, "underlying") == dep.underlying.address
    assert await call(d, dep, "CreditFacadeV3", dep.credit_facade, "debtLimits") == [dep.min_debt, dep.max_debt]
    assert await call(d, dep, "CreditManagerV3", cm, "fees") == [1_000, 150, 9_600, 100, 9_800]
    assert await call(d, dep, "CreditManagerV3", cm, "liquidationThresholds", dep.underlying.address) == 9_450
    for sym, t in dep.collaterals.items():
        assert await call(d, dep, "CreditManagerV3", cm, "liquidationThresholds", t.address) == dep.lts[sym]
        assert await call(d, dep, "PriceOracleV3", dep.price_oracle, "getPrice", t.address) == t.price
        assert await call(d, dep, "PriceOracleV3", dep.price_oracle, "priceFeeds", t.address) == t.feed
    assert await call(d, dep, "PoolV3", dep.pool, "creditManagerBorrowed", cm) == sum(
        dep.underlying.units(debt) for _, debt, _ in GEARBOX_DEMO_POSITIONS)
    assert await call(d, dep, "CreditManagerV3", cm, "creditAccountsLen") == len(GEARBOX_DEMO_POSITIONS)


async def test_accounts_open_with_expected_hf(deployer, world):
    d, dep = deployer, dep_of(world)
    prices = {s: t.price for s, t in world.tokens.items()}
    for i, (ca, user, (coll, debt, quotas)) in enumerate(zip(world.extra["gearbox_accounts"],
                                                             world.extra["gearbox_borrowers"],
                                                             GEARBOX_DEMO_POSITIONS)):
        assert await call(d, dep, "CreditManagerV3", dep.credit_manager, "getBorrowerOrRevert", ca) == user
        st = await account_state(d, dep, ca)
        twv = sum(min(a * prices[s] * dep.lts[s] // PERCENTAGE_FACTOR, quotas[s] * 10**8) for s, a in coll.items())
        assert st.debt == debt * 10**6 and st.total_debt - st.debt < 10**4  # a few seconds of interest
        assert st.twv_usd == twv and st.hf == pytest.approx(twv / (debt * 10**8), rel=1e-6)
        assert st.hf > 1 and not st.liquidatable
        # The borrowed USDC left the account: it holds only the collateral.
        assert await balance_of(d, dep.underlying, ca) == 0
        assert await balance_of(d, dep.underlying, user) == debt * 10**6
        for s, a in coll.items():
            assert await balance_of(d, dep.collaterals[s], ca) == dep.collaterals[s].units(a)
        # The math module values the account exactly as CollateralLogic does.
        acc, cdd = await read_account(d, dep, ca)
        assert acc.twv_usd() == cdd[9] and acc.total_debt_usd() == cdd[6], i


async def test_valuation_matches_the_credit_manager_at_many_prices(deployer, world):
    d, dep = deployer, dep_of(world)
    weth, wbtc = world.tokens["WETH"], world.tokens["WBTC"]
    checked = 0
    for pw, pb in [(2_100_00000000, 60_000_00000000), (1_234_56789012, 47_777_77777777),
                   (4_321_00000001, 71_000_12345678)]:
        await set_price(d, weth, pw)
        await set_price(d, wbtc, pb)
        for ca in world.extra["gearbox_accounts"]:
            acc, cdd = await read_account(d, dep, ca)
            assert acc.twv_usd() == cdd[9] and acc.total_debt_usd() == cdd[6]
            liq = await call(d, dep, "CreditManagerV3", dep.credit_manager, "isLiquidatable", ca, 10_000)
            assert liq == (cdd[9] < cdd[6])
            checked += 1
    assert checked == 3 * len(GEARBOX_DEMO_POSITIONS)


async def test_partial_liquidation_after_price_drop(deployer, world):
    d, dep = deployer, dep_of(world)
    weth = world.tokens["WETH"]
    await set_price(d, weth, weth.price * 7 // 10)
    states = [await account_state(d, dep, ca) for ca in world.extra["gearbox_accounts"]]
    assert [i for i, s in enumerate(states) if s.liquidatable] == [*PARTIAL, BAD_DEBT]
    ca = world.extra["gearbox_accounts"][0]
    liquidator = world.take_accounts(1)[0]
    await mint(d, dep.underlying, liquidator, 10**11)
    await approve(d, dep.underlying, liquidator, dep.credit_manager, 10**11)
    acc, _ = await read_account(d, dep, ca)
    plan = gm.best_partial(acc, 10**15)
    assert plan is not None and plan.token == weth.address
    facade = d.at(dep.credit_facade, dep.abis["CreditFacadeV3"])
    fn = facade.functions.partiallyLiquidateCreditAccount(ca, weth.address, plan.amount, plan.seized, liquidator, [])
    assert await fn.call({"from": liquidator}) == plan.seized  # eth_call previews the seizure
    treasury_before = await balance_of(d, dep.underlying, dep.treasury)
    weth_before = await balance_of(d, weth, ca)
    rc = await d.transact(dep.credit_facade, dep.abis["CreditFacadeV3"], "partiallyLiquidateCreditAccount",
                          ca, weth.address, plan.amount, plan.seized, liquidator, [], sender=liquidator)
    (ev,) = facade_events(d, dep, rc, "PartiallyLiquidateCreditAccount")
    assert ev["creditAccount"] == ca and ev["token"] == weth.address and ev["liquidator"] == liquidator
    assert (ev["repaidDebt"], ev["seizedCollateral"], ev["fee"]) == (plan.repaid, plan.seized, plan.fee)
    assert plan.fee == plan.amount * 150 // 10_000
    assert await balance_of(d, weth, liquidator) == plan.seized
    assert await balance_of(d, weth, ca) == weth_before - plan.seized
    assert await balance_of(d, dep.underlying, liquidator) == 10**11 - plan.amount
    assert await balance_of(d, dep.underlying, dep.treasury) == treasury_before + plan.fee
    after = await account_state(d, dep, ca)
    assert not after.liquidatable and after.hf >= 1
    # The maths predicted the new state; the debt up to the interest of the one block (a second or
    # so) between the read and the liquidation, which leaves a little more to repay.
    assert after.twv_usd == plan.twv_usd_after
    assert plan.debt_after.debt == dep.min_debt <= after.debt <= plan.debt_after.debt + 100
    assert after.total_debt_usd == pytest.approx(plan.total_debt_usd_after, abs=10**4)
    # The liquidator's gain: seized value = amount / 0.96 at the oracle price.
    assert plan.profit_usd == pytest.approx(plan.amount * 100 * (1 / 0.96 - 1), rel=1e-4)
    print(f"\ngearbox partial liquidation gas {rc['gasUsed']}")


async def test_bad_debt_account_cannot_be_partially_liquidated(deployer, world):
    d, dep = deployer, dep_of(world)
    weth = world.tokens["WETH"]
    await set_price(d, weth, weth.price * 7 // 10)
    ca = world.extra["gearbox_accounts"][BAD_DEBT]
    acc, cdd = await read_account(d, dep, ca)
    assert cdd[7] < cdd[0]  # total value below debt
    assert gm.best_partial(acc, 10**15) is None
    liquidator = world.take_accounts(1)[0]
    await mint(d, dep.underlying, liquidator, 10**12)
    await approve(d, dep.underlying, liquidator, dep.credit_manager, 10**12)
    for amount in (1_000, 5_000, 9_000):
        with pytest.raises(DeployError, match="0x532e7bb6"):  # NotEnoughCollateralException()
            await d.transact(dep.credit_facade, dep.abis["CreditFacadeV3"], "partiallyLiquidateCreditAccount",
                             ca, weth.address, amount * 10**6, 0, liquidator, [], sender=liquidator)
    # A full liquidation resolves it (with a loss to the pool); the account stays listed, debt 0.
    rc = await liquidate_fully(d, dep, ca, liquidator)
    (ev,) = facade_events(d, dep, rc, "LiquidateCreditAccount")
    assert ev["creditAccount"] == ca and ev["remainingFunds"] == 0
    assert (await account_state(d, dep, ca)).debt == 0
    assert await call(d, dep, "CreditManagerV3", dep.credit_manager, "getBorrowerOrRevert", ca) != liquidator
    assert await balance_of(d, weth, liquidator) == 5 * 10**18 - 1  # withdrawCollateral(max) leaves 1 wei
