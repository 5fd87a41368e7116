"""Gearbox V3 in flash mode on the real contracts (WETH on Gearbox's Pyth feed: every liquidation
carries its on-demand price update): a keeper wallet holding no USDC liquidates through its
LiquidationExecutor. An account with bad debt and one whose partial liquidation would break the
minimum debt are fully liquidated (flash USDC added, every collateral withdrawn and sold); where a
partial and a full liquidation are both possible, the keeper sends the one that pays more, which
the test computes itself by previewing both on chain (the executor's entry points return the
profit) over a grid of partial sizes."""
from __future__ import annotations

import copy

import pytest
from keeper_devnet.protocols.gearbox_v3.world import (
    account_state,
    facade_events,
    math_account,
    open_credit_account,
    price_updates,
)
from keeper_devnet.tokens import balance_of
from keeper_devnet.uniswap import shrink_pool

from keeper.executor import (
    Flash,
    FlashSource,
    GearboxFullLiquidation,
    GearboxPartialLiquidation,
    PriceUpdate,
    Profit,
    Swap,
    encode_path,
    liquidate_gearbox_full,
    liquidate_gearbox_partial,
)
from keeper.protocols.gearbox_v3 import maths as gm
from keeper.swap.search import grid
from tests.helpers.flash import (
    check_flash_outcome,
    crash_weth,
    flash_keeper,
    flash_world,
    preview,
    run_with_arbitrage,
    wallet_tokens,
)
from tests.helpers.keeper import Wallet

BAD_DEBT = 5  # GEARBOX_DEMO_POSITIONS
BOTH = (0, 1, 2, 3)
MIN_DEBT_CASE = ({"WETH": 0.6}, 1_100, {"WETH": 2_000})  # see test_full.py


@pytest.fixture(scope="module")
async def flash_base(deployer):
    world = await flash_world(deployer, ("gearbox_v3", "morpho_blue"), pool_usd=2_000_000)
    (user,) = world.take_accounts(1)
    collateral, debt, quotas = MIN_DEBT_CASE
    world.extra["min_debt_account"] = await open_credit_account(deployer, world.extra["gearbox"], user, debt,
                                                                collateral, quotas)
    return world


@pytest.fixture
async def world(flash_base, snapshot):
    yield copy.deepcopy(flash_base)


async def test_bad_debt_and_min_debt_accounts_are_fully_liquidated_with_flash(deployer, world, tmp_path):
    d, dep = deployer, world.extra["gearbox"]
    bad, small = world.extra["gearbox_accounts"][BAD_DEBT], world.extra["min_debt_account"]
    await crash_weth(d, world)
    assert set((await wallet_tokens(d, world)).values()) == {0}  # no USDC at all
    for ca in (bad, small):
        assert gm.best_partial(await math_account(d, dep, ca), 10**18, 10) is None  # only a full one
    wallet = await Wallet(d, world).start()
    keeper = await flash_keeper(world, tmp_path, ["gearbox_v3"])
    try:
        await run_with_arbitrage(d, world, keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == []
    liqs = {o["account"]: o for o in report["liquidations"]}
    executor = world.extra["executor"]
    for ca in (bad, small):
        o = liqs[ca]
        token, _, (rc,) = await check_flash_outcome(d, world, o)
        assert token == dep.underlying.address and o["details"]["liquidation"] == "full"
        (ev,) = facade_events(d, dep, rc, "LiquidateCreditAccount")
        assert (ev["creditAccount"], ev["liquidator"], ev["to"]) == (ca, executor, executor)
        assert (await account_state(d, dep, ca)).debt == 0
        assert o["details"]["price_updates"] == 1  # WETH's Pyth update went first in the multicall
    assert liqs[bad]["details"]["bad_debt"] and int(liqs[bad]["details"]["loss"]) > 0
    assert await wallet.net_usd() == pytest.approx(sum(o["realised_profit_usd"] for o in liqs.values()), rel=0.01)
    held = await wallet_tokens(d, world)
    assert held["WETH"] == held["WBTC"] == 0 and held["USDC"] > 0  # the profit is USDC only


def _swap(world, token: str, router: str) -> Swap:
    return Swap(router, encode_path([token, world.tokens["USDC"].address], [3000]), 0, 0)


async def choices(d, world, tmp_path) -> dict[int, tuple[str, int, int, int]]:
    """Account -> (the keeper's kind, its plan's previewed profit, the test's full preview, the
    test's best partial preview), before anything is sent."""
    dep = world.extra["gearbox"]
    keeper = await flash_keeper(world, tmp_path, ["gearbox_v3"])
    try:
        block = await keeper.chain.block_number()
        _, _, budget = await keeper._state(block)
        (adapter,) = keeper.adapters
        plans = {p.account: p for p in adapter.assess(budget).plans}
    finally:
        await keeper.close()
    router = world.extra["uniswap"].router
    flash = Flash(FlashSource.MORPHO_BLUE, world.extra["morpho"].morpho)
    usdc = dep.underlying.address
    out = {}
    for i in BOTH:
        ca = world.extra["gearbox_accounts"][i]
        raw = await price_updates(d, dep)
        updates = tuple(PriceUpdate(f, data) for f, data in raw)
        acc = await math_account(d, dep, ca, raw)
        st = await account_state(d, dep, ca, raw)
        full = gm.full_liquidation(acc, st.total_value, min_add=1)
        held = list(full.withdrawn)
        full_data = liquidate_gearbox_full(
            GearboxFullLiquidation(dep.credit_facade, dep.credit_manager, usdc, ca, full.add, tuple(held), updates),
            flash, [_swap(world, t, router) for t in held], Profit(usdc, 0))
        full_profit = await preview(d, world, full_data) or 0
        partial_profit = 0
        for t in held:
            found = gm.partial_range(acc, t, 10)
            for amount in grid(*found, 12) if found else []:
                data = liquidate_gearbox_partial(
                    GearboxPartialLiquidation(dep.credit_facade, dep.credit_manager, usdc, ca, t, amount, 0, updates),
                    flash, _swap(world, t, router), Profit(usdc, 0))
                partial_profit = max(partial_profit, await preview(d, world, data) or 0)
        p = plans[ca]
        kept = await preview(d, world, p.txs[0].data)
        assert kept is not None
        out[i] = (p.details.liquidation, kept, full_profit, partial_profit)
    return out


async def test_the_keeper_sends_the_liquidation_that_pays_more(deployer, world, tmp_path, capsys):
    """Before anything is sent: the keeper's plan for each account with both options, previewed on
    chain, pays at least as much as the best of the test's own previews of the full liquidation and
    of partial liquidations over a grid of sizes and tokens (same flash lender, direct pools); and
    it is a full liquidation exactly when the test's full preview beats its best partial one. With
    deep pools selling everything pays most; once the WETH pool is made shallow, a partial
    liquidation (less WETH to sell) wins where its price impact bites."""
    d = deployer
    await crash_weth(d, world)
    seen = set()
    for depth in ("2M a side", "shallow"):
        if depth == "shallow":
            await shrink_pool(d, world.extra["uniswap"], world.extra["uniswap_pools"]["WETH/USDC"], 1_500)
        for i, (kind, kept, full, partial) in (await choices(d, world, tmp_path)).items():
            assert kept >= max(full, partial) * 998 // 1000, (depth, i, kept, full, partial)
            if abs(full - partial) > max(full, partial) // 200:
                assert kind == ("full" if full > partial else "partial"), (depth, i, full, partial)
            seen.add(kind)
            with capsys.disabled():
                print(f"\ngearbox flash choice ({depth}): account {i}: full {full / 1e6:,.2f} USDC, best partial "
                      f"{partial / 1e6:,.2f} USDC -> keeper: {kind} {kept / 1e6:,.2f} USDC")
    assert seen == {"full", "partial"}
    assert await balance_of(d, world.extra["gearbox"].underlying, world.extra["executor"]) == 0
