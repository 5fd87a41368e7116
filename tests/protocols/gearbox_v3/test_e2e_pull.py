"""The keeper end to end on Gearbox V3 with WETH priced by Gearbox's own PythPriceFeed (a pull feed
over MockPyth): a WETH drop visible only through the pull oracle (the Chainlink mock its
mock_feeds read; Pyth on chain untouched) is found through on-demand updates batched before the
credit manager's views, and liquidated with the same updates as priceUpdates. Everything asserted
on chain."""
from __future__ import annotations

import copy

import pytest
from eth_abi import decode
from keeper_devnet.protocols.gearbox_v3.world import (
    account_state,
    add_gearbox_to_world,
    facade_events,
    gearbox_config_entry,
    math_account,
    push_pyth_price,
)
from keeper_devnet.tokens import balance_of, set_price
from keeper_devnet.world import KEEPER_ADDRESS, World, bare_world

from keeper.abi import load
from keeper.protocols.gearbox_v3 import maths as gm
from keeper.protocols.gearbox_v3.adapter import FULL_ONLY
from tests.helpers.keeper import Wallet, run_until_quiet, startup_error, step
from tests.protocols.gearbox_v3.helpers import gearbox, keeper_for

KEEPER_USDC = 100_000
PARTIAL = {0: "WETH", 1: "WBTC", 2: "WBTC", 3: "WETH"}  # as in test_gearbox_e2e (GEARBOX_DEMO_POSITIONS)
HEALTHY, BAD_DEBT = 4, 5
FACADE = load("gearbox_v3/gearbox_credit_facade_v3")


@pytest.fixture(scope="module")
async def gb_world(deployer) -> World:
    """Multicall3, fresh tokens, Gearbox V3 (WETH on PythPriceFeed over a new MockPyth, with the
    world's [pull_oracle] table) with the demo accounts and a keeper holding USDC."""
    world = await bare_world(deployer)
    await add_gearbox_to_world(deployer, world, keeper_usdc=KEEPER_USDC)
    assert "pull_oracle" in world.sections and world.extra["gearbox"].pyth_feed_ids
    return world


@pytest.fixture
async def world(gb_world, snapshot):
    yield copy.deepcopy(gb_world)


async def drop_weth_off_chain(d, world, bps=3_000):
    """Only the Chainlink mock the pull oracle prices from moves; Pyth keeps the old price."""
    weth = world.tokens["WETH"]
    await set_price(d, weth, weth.price * (10_000 - bps) // 10_000)
    await d.rpc("evm_increaseTime", [5])
    await d.rpc("evm_mine", [])


async def nonce(d) -> int:
    return await d.w3.eth.get_transaction_count(KEEPER_ADDRESS)


async def test_pull_price_drop_is_liquidated_with_price_updates(deployer, world, tmp_path, capsys):
    d, dep, cas = deployer, gearbox(world), world.extra["gearbox_accounts"]
    weth = world.tokens["WETH"]
    feed = dep.price_feeds["WETH"]
    keeper = await keeper_for(world, tmp_path, full_liquidation=False)  # partial liquidations (full ones: test_full.py)
    try:
        n0 = await nonce(d)
        await step(keeper)
        assert keeper.recorder.outcomes == [] and await nonce(d) == n0
        await drop_weth_off_chain(d, world)
        # The plain views (Pyth on chain) see nothing; after the on-demand update they see the drop.
        assert not any([(await account_state(d, dep, ca, updates=[])).liquidatable for ca in cas])
        liquidatable = [i for i, ca in enumerate(cas) if (await account_state(d, dep, ca)).liquidatable]
        assert liquidatable == [*PARTIAL, BAD_DEBT]
        expected = {}
        for i in PARTIAL:
            expected[i] = gm.best_partial(await math_account(d, dep, cas[i]), KEEPER_USDC * 10**6, 10)
            assert expected[i].token == world.tokens[PARTIAL[i]].address
        wallet = await Wallet(d, world).start()
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == [] and report["dry_run"] == []
    assert [(s["account"], s["reason"]) for s in report["skipped"]] == [(cas[BAD_DEBT], FULL_ONLY)]
    liqs = {o["account"]: o for o in report["liquidations"]}
    assert set(liqs) == {cas[i] for i in PARTIAL}
    assert await nonce(d) == n0 + 1 + len(PARTIAL)  # the approval, then one liquidation each
    fn = FACADE.fn("partiallyLiquidateCreditAccount")
    update_events = 0
    figures = []
    for i, plan in expected.items():
        o = liqs[cas[i]]
        (h,) = o["details"]["tx_hashes"]
        rc = await d.w3.eth.get_transaction_receipt(h)
        tx = await d.w3.eth.get_transaction(h)
        assert rc["status"] == 1 and rc["to"] == dep.credit_facade
        # priceUpdates = [(WETH's PythPriceFeed, abi.encode(publishTime, [MockPyth blob]))]
        assert bytes(tx["input"])[:4] == fn.selector
        args = decode(["address", "address", "uint256", "uint256", "address", "(address,bytes)[]"],
                      bytes(tx["input"])[4:])
        ((upd_feed, data),) = args[5]
        publish, blobs = decode(["uint256", "bytes[]"], data)
        assert upd_feed.lower() == feed.lower()
        assert len(blobs) == 1 and publish <= (await d.w3.eth.get_block(rc["blockNumber"]))["timestamp"]
        update_events += sum(1 for lg in rc["logs"] if lg["address"] == feed)  # UpdatePrice when Pyth moved
        (ev,) = facade_events(d, dep, rc, "PartiallyLiquidateCreditAccount")
        assert ev["creditAccount"] == cas[i] and ev["liquidator"] == KEEPER_ADDRESS
        assert ev["token"] == plan.token == o["details"]["token"] and o["details"]["price_updates"] == 1
        assert int(o["details"]["repaid_amount"]) == plan.amount
        assert ev["seizedCollateral"] == plan.seized == int(o["details"]["seized"])
        after = await account_state(d, dep, cas[i])
        assert not after.liquidatable and after.hf >= 1 and after.debt >= dep.min_debt
        assert o["predicted_profit_usd"] > 0
        assert o["realised_profit_usd"] == pytest.approx(o["predicted_profit_usd"], rel=0.005)
        figures.append((i, o["label"], plan.amount / 1e6, o["predicted_profit_usd"], o["realised_profit_usd"],
                        rc["gasUsed"], after.hf))
    assert update_events >= 1  # the first liquidation moved Pyth; later identical updates are no-ops
    # Pyth on chain now holds the pulled price: the plain views agree with the keeper.
    assert (await account_state(d, dep, cas[BAD_DEBT], updates=[])).liquidatable
    oracle = d.at(dep.price_oracle, dep.abis["PriceOracleV3"])
    assert await oracle.functions.getPrice(weth.address).call() == weth.price
    realised = sum(o["realised_profit_usd"] for o in liqs.values())
    assert await wallet.net_usd() == pytest.approx(realised, rel=0.005)
    with capsys.disabled():
        for f in figures:
            print(f"\ngearbox pull e2e: account {f[0]} {f[1]}: repaid {f[2]:.2f} USDC, predicted {f[3]:.4f} "
                  f"realised {f[4]:.4f} USD, gas {f[5]}, HF after {f[6]:.4f}")


async def test_start_up_refuses_a_pull_feed_without_a_pull_oracle(world, tmp_path):
    dep = gearbox(world)
    world.sections = {}  # no [pull_oracle] table
    world.entries = {"gearbox_v3": gearbox_config_entry(dep)}
    e = await startup_error(world, tmp_path, r"a \[pull_oracle\] table is needed")
    assert dep.price_feeds["WETH"] in str(e) and "WETH" in str(e)


async def test_pull_oracle_failure_skips_with_the_reason(deployer, world, tmp_path):
    """Even when Pyth on chain already shows the drop (so the plain views call the accounts
    liquidatable), a block without fresh updates is not acted on: skipped with why, nothing sent."""
    d, dep, cas = deployer, gearbox(world), world.extra["gearbox_accounts"]
    await drop_weth_off_chain(d, world)
    await push_pyth_price(d, dep.pyth, dep.pyth_feed_ids["WETH"], world.tokens["WETH"].price)
    assert (await account_state(d, dep, cas[0], updates=[])).liquidatable
    keeper = await keeper_for(world, tmp_path)

    async def down(feed_ids):
        raise RuntimeError("price service unreachable")
    keeper.pull_oracle.fetch = down
    n0 = await nonce(d)
    try:
        await step(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    assert await nonce(d) == n0 and report["liquidations"] == [] and report["reverted"] == []
    reasons = {s["account"]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {cas[i] for i in [*PARTIAL, BAD_DEBT]}
    assert all(r == "pull oracle failed: RuntimeError: price service unreachable" for r in reasons.values())
    for i in PARTIAL:
        assert await balance_of(d, world.tokens[PARTIAL[i]], cas[i]) > 0


async def test_failing_price_update_skips_with_the_feeds_revert(deployer, world, tmp_path):
    """A PythPriceFeed that cannot pay Pyth's fee (no ETH left) fails its on-demand update inside
    the read batch: the market is reported with that reason and nothing is sent."""
    d, dep, cas = deployer, gearbox(world), world.extra["gearbox_accounts"]
    await drop_weth_off_chain(d, world)
    await push_pyth_price(d, dep.pyth, dep.pyth_feed_ids["WETH"], world.tokens["WETH"].price)
    await d.rpc("evm_increaseTime", [5])
    await d.rpc("evm_mine", [])
    feed = dep.price_feeds["WETH"]
    await d.rpc("anvil_setBalance", [feed, "0x0"])
    keeper = await keeper_for(world, tmp_path)
    n0 = await nonce(d)
    try:
        await step(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    assert await nonce(d) == n0 and report["liquidations"] == []
    reasons = {s["account"]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {cas[i] for i in [*PARTIAL, BAD_DEBT]}
    assert all(r.startswith(f"on-demand price update of {feed} fails") for r in reasons.values()), reasons
