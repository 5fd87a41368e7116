"""Gearbox V3 with WETH on Gearbox's own PythPriceFeed (@gearbox-protocol/oracles-v3) over Pyth's
MockPyth: the feed, the price feed store's on-demand updates, and a partial liquidation on the real
facade whose price drop exists only in the off-chain (pull) price, passed as priceUpdates."""
from __future__ import annotations

import copy

import pytest
from eth_utils import keccak
from keeper_devnet.deploy import DeployError
from keeper_devnet.protocols.gearbox_v3.world import (
    PYTH_FEED_FUNDING,
    PYTH_STALENESS_PERIOD,
    WETH_USD_FEED_ID,
    account_state,
    add_gearbox_to_world,
    facade_events,
    math_account,
    price_updates,
)
from keeper_devnet.pyth import mock_pyth_artifact
from keeper_devnet.tokens import approve, balance_of, mint, set_price
from keeper_devnet.world import World, bare_world

from keeper.protocols.gearbox_v3 import maths as gm
from tests.protocols.gearbox_v3.helpers import call, dep_of

PARTIAL, HEALTHY, BAD_DEBT = (0, 1, 2, 3), 4, 5
NOT_LIQUIDATABLE = "0x234b893b"  # CreditAccountNotLiquidatableException()


def sel(sig: str) -> str:
    return "0x" + keccak(text=sig)[:4].hex()


@pytest.fixture(scope="module")
async def gb_world(deployer) -> World:
    world = await bare_world(deployer)
    await add_gearbox_to_world(deployer, world)  # WETH on PythPriceFeed (a MockPyth of its own)
    return world


@pytest.fixture
async def world(gb_world, snapshot):
    yield copy.deepcopy(gb_world)




async def test_pyth_feed_is_wired_as_gearbox_wires_it(deployer, world):
    d, dep = deployer, dep_of(world)
    weth = world.tokens["WETH"]
    feed = dep.price_feeds["WETH"]
    assert dep.pyth_feed_ids == {"WETH": WETH_USD_FEED_ID} and feed != weth.feed
    assert world.sections["pull_oracle"].count(WETH_USD_FEED_ID) == 1 and weth.feed in world.sections["pull_oracle"]
    assert await call(d, dep, "PriceOracleV3", dep.price_oracle, "priceFeeds", weth.address) == feed
    params = await call(d, dep, "PriceOracleV3", dep.price_oracle, "priceFeedParams", weth.address)
    assert tuple(params[:3]) == (feed, PYTH_STALENESS_PERIOD, False)
    assert await call(d, dep, "PythPriceFeed", feed, "updatable") is True
    assert await call(d, dep, "PythPriceFeed", feed, "priceFeedId") == bytes.fromhex(WETH_USD_FEED_ID[2:])
    assert await call(d, dep, "PythPriceFeed", feed, "pyth") == dep.pyth_forwarder
    assert await call(d, dep, "GovStandIn", dep.gov, "getUpdatablePriceFeeds") == [feed]
    assert await d.w3.eth.get_balance(feed) == PYTH_FEED_FUNDING
    # Seeded at the world price; WBTC and USDC keep their Chainlink feeds.
    assert await call(d, dep, "PriceOracleV3", dep.price_oracle, "getPrice", weth.address) == weth.price
    assert await call(d, dep, "PriceOracleV3", dep.price_oracle, "priceFeeds",
                      world.tokens["WBTC"].address) == world.tokens["WBTC"].feed
    print(f"\nPythPriceFeed runtime {len(await d.w3.eth.get_code(feed))} B")


def test_pyth_price_feed_errors_decode():
    from keeper.errors import decode_revert
    for name in ("PriceTimestampTooFarBehindException", "PriceTimestampTooFarAheadException",
                 "IncorrectExpectedPublishTimestampException", "ConfToPriceRatioTooHighException",
                 "IncorrectPriceDecimalsException", "PriceFeedIsNotUpdatableException"):
        assert decode_revert(sel(f"{name}()")) == name


async def test_stale_pyth_price_reverts_views_and_an_update_in_the_batch_fixes_them(deployer, world):
    d, dep = deployer, dep_of(world)
    weth = world.tokens["WETH"]
    await d.rpc("evm_increaseTime", [PYTH_STALENESS_PERIOD + 1])
    await d.rpc("evm_mine", [])
    with pytest.raises(Exception, match=sel("PriceTimestampTooFarBehindException()")):  # from the feed
        await call(d, dep, "PriceOracleV3", dep.price_oracle, "getPrice", weth.address)
    ca = world.extra["gearbox_accounts"][0]
    st = await account_state(d, dep, ca)  # Multicall3: updatePrice first, then the views
    assert st.hf > 1 and not st.liquidatable


async def test_partial_liquidation_with_price_updates_when_only_the_pull_price_dropped(deployer, world):
    d, dep = deployer, dep_of(world)
    weth = world.tokens["WETH"]
    feed = dep.price_feeds["WETH"]
    cas = world.extra["gearbox_accounts"]
    await set_price(d, weth, weth.price * 7 // 10)  # the Chainlink mock the pull oracle reads; Pyth untouched
    await d.rpc("evm_increaseTime", [5])
    await d.rpc("evm_mine", [])
    # On chain, Pyth still has $3,000: every account is healthy by the plain views...
    stale = [await account_state(d, dep, ca, updates=[]) for ca in cas]
    assert not any(s.liquidatable for s in stale)
    # ...and after the on-demand update (the same eth_call) the drop is there.
    updates = await price_updates(d, dep)
    fresh = [await account_state(d, dep, ca, updates) for ca in cas]
    assert [i for i, s in enumerate(fresh) if s.liquidatable] == [*PARTIAL, BAD_DEBT]
    ca = cas[0]
    acc = await math_account(d, dep, ca, updates)
    assert acc.holdings[weth.address].price.price == weth.price
    plan = gm.best_partial(acc, 10**15)
    assert plan is not None and plan.token == weth.address
    liquidator = world.take_accounts(1)[0]
    await mint(d, dep.underlying, liquidator, 10**11)
    await approve(d, dep.underlying, liquidator, dep.credit_manager, 10**11)
    facade = dep.abis["CreditFacadeV3"]
    # Without the updates the facade sees the old price: not liquidatable.
    with pytest.raises(DeployError, match=NOT_LIQUIDATABLE):
        await d.transact(dep.credit_facade, facade, "partiallyLiquidateCreditAccount",
                         ca, weth.address, plan.amount, 0, liquidator, [], sender=liquidator)
    # A push feed is not in the store's updatable set.
    with pytest.raises(DeployError, match=sel("PriceFeedIsNotUpdatableException()")):
        await d.transact(dep.credit_facade, facade, "partiallyLiquidateCreditAccount", ca, weth.address,
                         plan.amount, 0, liquidator, [(world.tokens["WBTC"].feed, b"")], sender=liquidator)
    eth_before = await d.w3.eth.get_balance(feed)
    rc = await d.transact(dep.credit_facade, facade, "partiallyLiquidateCreditAccount",
                          ca, weth.address, plan.amount, plan.seized, liquidator, updates, sender=liquidator)
    (ev,) = facade_events(d, dep, rc, "PartiallyLiquidateCreditAccount")
    assert (ev["repaidDebt"], ev["seizedCollateral"], ev["fee"]) == (plan.repaid, plan.seized, plan.fee)
    assert await balance_of(d, weth, liquidator) == plan.seized
    # The feed emitted UpdatePrice, paid Pyth's fee (1 wei) itself; Pyth and the oracle now hold the new price.
    upd = d.at(feed, dep.abis["PythPriceFeed"]).events.UpdatePrice()
    (u,) = [upd.process_log(lg) for lg in rc["logs"] if lg["address"] == feed]
    assert u["args"]["price"] == weth.price
    assert await d.w3.eth.get_balance(feed) == eth_before - 1
    pyth_price = await d.call(dep.pyth, mock_pyth_artifact().abi, "getPriceUnsafe", bytes.fromhex(WETH_USD_FEED_ID[2:]))
    assert pyth_price[0] == weth.price
    assert await call(d, dep, "PriceOracleV3", dep.price_oracle, "getPrice", weth.address) == weth.price
    after = await account_state(d, dep, ca, updates=[])  # no update needed any more
    assert not after.liquidatable and after.hf >= 1 and after.twv_usd == plan.twv_usd_after
    # The same updates again are a no-op (publish time not newer), so later liquidations may carry them.
    assert await account_state(d, dep, ca, updates) == after
    print(f"\ngearbox partial liquidation with 1 Pyth update: gas {rc['gasUsed']}")
