"""Capital-free liquidation against pools of limited depth, end to end on the real Morpho Blue and
Aave V3 (wallet: ETH only):
- a pool too shallow for the whole position: the keeper liquidates the part that pays most, and a
  larger or a smaller part would have earned less (the test previews them on chain, at the block
  before the keeper's transaction, through the executor whose entry points return the profit);
- a pool so shallow that no part of the position repays what it borrows: skipped with the reason
  (quotes named), nothing sent;
- the pool moves between planning and sending: the simulation of the executor call reverts with its
  profit check, the plan is skipped with that reason, no transaction reverts on chain;
- `keeper scan` shows the route, the quoted output and the profit in both modes."""
from __future__ import annotations

import copy

import pytest
from keeper_devnet.tokens import mint, set_price
from keeper_devnet.uniswap import shrink_pool, swap_exact_input_single
from keeper_devnet.world import KEEPER_ADDRESS, open_position

from keeper.executor import (
    AaveV3Liquidation,
    Flash,
    FlashSource,
    MarketParams,
    MorphoBlueLiquidation,
    Profit,
    Swap,
    encode_path,
    liquidate_aave_v3,
    liquidate_morpho_blue,
)
from tests.helpers.flash import check_flash_outcome, crash_weth, flash_keeper, flash_world, preview
from tests.helpers.keeper import run_until_quiet, scan_rows, step

AAVE_POSITION = ({"WETH": 10}, {"USDC": 20_000})  # HF 0.866 after the crash


@pytest.fixture(scope="module")
async def flash_base(deployer):
    world = await flash_world(deployer, ("aave_v3", "morpho_blue"), pool_usd=10_000_000)
    (user,) = world.take_accounts(1)
    await open_position(deployer, world, user, *AAVE_POSITION)
    world.extra["aave_borrowers"] = [user]
    return world


@pytest.fixture
async def world(flash_base, snapshot):
    yield copy.deepcopy(flash_base)


async def shallow(d, world, keep_bps: int) -> None:
    await shrink_pool(d, world.extra["uniswap"], world.extra["uniswap_pools"]["WETH/USDC"], keep_bps)


def weth_usdc(world) -> bytes:
    return encode_path([world.tokens["WETH"].address, world.tokens["USDC"].address], [3000])


def morpho_call(world, borrower: str, seized: int) -> bytes:
    dep = world.extra["morpho"]
    m = dep.markets["WETH/USDC"]
    liq = MorphoBlueLiquidation(dep.morpho, MarketParams(*m.params), borrower, seized, 0)
    return liquidate_morpho_blue(liq, Swap(world.extra["uniswap"].router, weth_usdc(world), 0, 0),
                                 Profit(m.loan.address, 0))


def aave_call(world, user: str, debt_to_cover: int) -> bytes:
    liq = AaveV3Liquidation(world.aave.pool, world.tokens["WETH"].address, world.tokens["USDC"].address, user,
                            debt_to_cover)
    return liquidate_aave_v3(liq, Flash(FlashSource.MORPHO_BLUE, world.extra["morpho"].morpho),
                             Swap(world.extra["uniswap"].router, weth_usdc(world), 0, 0),
                             Profit(world.tokens["USDC"].address, 0))


CASES = {
    # protocol: (the keeper's size in the outcome's details, calldata of a size, the whole size)
    "morpho_blue": ("seized", lambda w: w.extra["morpho_borrowers"][0], morpho_call),
    "aave_v3": ("debt_to_cover_arg", lambda w: w.extra["aave_borrowers"][0], aave_call),
}


@pytest.mark.parametrize("protocol", list(CASES))
async def test_a_shallow_pool_gets_the_part_that_pays_most(deployer, world, tmp_path, protocol, capsys):
    d = deployer
    size_key, account_of, call = CASES[protocol]
    account = account_of(world)
    await crash_weth(d, world)
    await shallow(d, world, 300)  # ~$300k a side: selling ~10 WETH ($21k) costs ~7% in price impact
    keeper = await flash_keeper(world, tmp_path, [protocol])
    try:
        await step(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    (o,) = [o for o in report["liquidations"] if o["account"] == account]
    await check_flash_outcome(d, world, o)
    chosen = int(o["details"][size_key])
    block = o["block"] - 1  # the state the keeper planned on
    at = {k: await preview(d, world, call(world, account, int(chosen * k)), block) for k in (0.9, 1.0, 1.1)}
    assert at[1.0] is not None and at[1.0] > 0
    assert (at[0.9] or 0) < at[1.0] and (at[1.1] or 0) < at[1.0], at
    # The part the keeper realised is what it previewed at that block (a single plan in the block).
    assert int(o["details"]["token_deltas"][world.tokens["USDC"].address]) == at[1.0]
    with capsys.disabled():
        print(f"\n{protocol} shallow pool: size {chosen}, profit at 0.9x/1x/1.1x: "
              f"{[None if v is None else v / 1e6 for v in at.values()]} USDC")


async def test_a_sale_that_cannot_repay_is_skipped_with_the_quotes(deployer, world, tmp_path):
    """The market is below the oracle: the pools trade WETH at $1,900 while the feed still says
    $2,100. Seized at the oracle's price with a 4-5% bonus, the WETH sells for ~10% less than the
    debt it repays, at every size: skipped with the quotes named, nothing sent."""
    d = deployer
    await crash_weth(d, world, 1_900_00000000)  # the pools follow the market down...
    await set_price(d, world.tokens["WETH"], 2_100_00000000)  # ...the oracle lags at $2,100
    nonce = await d.w3.eth.get_transaction_count(KEEPER_ADDRESS)
    keeper = await flash_keeper(world, tmp_path, ["aave_v3", "morpho_blue"])
    try:
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    assert report["liquidations"] == [] and report["reverted"] == [] and report["failed"] == []
    skipped = {s["account"]: s for s in report["skipped"]}
    accounts = [world.extra["aave_borrowers"][0], *(world.extra["morpho_borrowers"][i] for i in (0, 2, 3))]
    for account in accounts:
        s = skipped[account]
        assert s["reason_code"] == "swap_cannot_repay", s
        assert " quotes " in s["reason"] and "no smaller size pays either" in s["reason"]
    assert "selling 9.95" in skipped[accounts[0]]["reason"]  # Aave: the whole 20,000 USDC of debt
    assert await d.w3.eth.get_transaction_count(KEEPER_ADDRESS) == nonce  # nothing sent


async def test_a_pool_moved_after_planning_fails_the_simulation_not_the_chain(deployer, world, tmp_path):
    """The keeper plans on the block's quotes; before it sends, a trader dumps WETH into the pool.
    The simulation of the executor call reverts with the executor's profit check (its minimum is
    the quoted profit less the slippage; a wide slippage lets the swap itself through), the plan is
    skipped with that reason and nothing is sent."""
    d = deployer
    await crash_weth(d, world)
    keeper = await flash_keeper(world, tmp_path, ["morpho_blue"], swap={"slippage_bps": 3_000})
    try:
        block = await keeper.chain.block_number()
        fees, native, budget = await keeper._state(block)
        assessments = [a.assess(budget) for a in keeper.adapters]
        assert any(a.plans for a in assessments)
        weth, usdc = world.tokens["WETH"], world.tokens["USDC"]
        (trader,) = world.take_accounts(1)
        await mint(d, weth, trader, weth.units(300))  # ~12% off the price: more than Morpho's 4.4% incentive
        await swap_exact_input_single(d, world.extra["uniswap"], trader, weth, usdc, weth.units(300))
        nonce = await d.w3.eth.get_transaction_count(KEEPER_ADDRESS)
        outcomes = await keeper.act(assessments, budget, fees, native, block)
        await keeper.settle()  # what was sent, as the chain decided it
        final = {o.attempt: o for o in keeper.recorder.outcomes if o.attempt is not None}
        outcomes = [final.get(o.attempt, o) if o.attempt is not None else o for o in outcomes]
    finally:
        await keeper.close()
    by = {o.account: o for o in outcomes}
    assert all(o.status.value in ("skipped", "confirmed") for o in outcomes)  # nothing reverted on chain
    for i in (0, 2):  # the WETH/USDC positions (the WETH/WBTC one sells in its own, untouched pool)
        o = by[world.extra["morpho_borrowers"][i]]
        assert o.status.value == "skipped" and o.reason_code.value == "simulation_revert"
        assert "InsufficientProfit(-" in o.reason, o.reason  # the executor's check: the sale cannot repay
    sent = sum(o.status.value == "confirmed" for o in outcomes)
    assert await d.w3.eth.get_transaction_count(KEEPER_ADDRESS) == nonce + sent


async def test_scan_shows_the_route_the_quote_and_both_modes(deployer, world, tmp_path):
    d = deployer
    await crash_weth(d, world)
    rows = {r.account: r for r in await scan_rows(world, tmp_path, execution="inventory",
                                                   protocols=["aave_v3", "morpho_blue"])}
    r = rows[world.extra["aave_borrowers"][0]]
    assert r.execution == "inventory" and r.route == "WETH -0.30%-> USDC"
    assert r.quoted.startswith("9.95") and r.quoted.endswith(" USDC") and " WETH -> " in r.quoted
    assert r.inventory_profit_usd is None  # the wallet holds no USDC: no inventory plan
    assert r.flash_profit_usd > 0
    rows = {r.account: r for r in await scan_rows(world, tmp_path, execution="flash", protocols=["morpho_blue"])}
    r = rows[world.extra["morpho_borrowers"][0]]
    assert r.execution == "flash" and r.route and r.flash_profit_usd == pytest.approx(r.expected_profit_usd)


async def test_flash_mode_refuses_an_executor_the_signer_does_not_own(deployer, world, tmp_path):
    """Only the executor's owner may start a flow: the keeper checks at start-up that its signer owns
    the configured executor, and that there is one."""
    from keeper_devnet.world import deploy_executor

    from tests.helpers.keeper import startup_error
    (other,) = world.take_accounts(1)
    world.extra["executor"] = await deploy_executor(deployer, other)
    e = await startup_error(world, tmp_path, "is owned by", execution="flash", protocols=["morpho_blue"])
    assert other in str(e) and KEEPER_ADDRESS in str(e)
    world.extra["executor"] = world.extra["uniswap"].quoter  # a contract without owner(): no executor
    await startup_error(world, tmp_path, "does not answer owner", execution="flash", protocols=["morpho_blue"])
