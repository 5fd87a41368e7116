"""The keeper end to end on Perennial V2 (the stand-ins in contracts/perennial, MockPyth from
@pythnetwork/pyth-sdk-solidity as the pull oracle): a WETH drop seen only by the pull oracle is
committed and the accounts below maintenance are closed with protected updates, exactly once; the
liquidation fee is credited at the next version's settlement and claimed; a stale oracle and
dry-run send nothing. Configured with only the MarketFactory, the keeper finds the market (and one
created while it runs) from the factory's creation logs and liquidates the same way."""
from __future__ import annotations

import copy

import pytest
from keeper_devnet.protocols.perennial_v2.world import (
    DEMO_UNHEALTHY,
    DSU_TO_18,
    UNIT,
    PerennialDeployment,
    add_perennial_to_world,
    commit_price,
    deploy_perennial,
    market_abi,
    market_call,
    market_transact,
    open_positions,
    oracle_call,
    perennial_artifacts,
    perennial_config_entry,
    settle,
)
from keeper_devnet.tokens import balance_of, set_price
from keeper_devnet.world import KEEPER_ADDRESS, World, bare_world

from keeper.protocols.perennial_v2.adapter import STALE
from tests.helpers.keeper import (
    make_keeper,
    run_and_close,
    run_until_quiet,
    startup_error,
    step,
)

REWARD = 10 * UNIT  # settlement fee 1 DSU x liquidationFee 10 (keeper/devnet/perennial.py defaults)


@pytest.fixture(scope="module")
async def perennial_world(deployer) -> World:
    world = await bare_world(deployer)
    await add_perennial_to_world(deployer, world)
    return world


@pytest.fixture
async def world(perennial_world, snapshot):
    yield copy.deepcopy(perennial_world)


def dep_of(world: World) -> PerennialDeployment:
    return world.extra["perennial"]


def traders(world: World) -> list[str]:
    return world.extra["perennial_accounts"]


async def keeper_for(world, tmp_path, *, mode="live", claim_min_gas_multiple="2", from_factory=False, **kw):
    entry = perennial_config_entry(dep_of(world), claim_min_gas_multiple=claim_min_gas_multiple,
                                   from_factory=from_factory)
    world.entries = {"perennial_v2": entry}
    return await make_keeper(world, tmp_path, mode=mode, **kw)


async def nonce(d) -> int:
    return await d.w3.eth.get_transaction_count(KEEPER_ADDRESS)


async def drop_weth(d, world, bps=3_000):
    """A new Chainlink answer, which MockPyth updates carry; then a few seconds pass, so that a price
    published now can be committed as a version newer than the latest (publish time - validFrom)."""
    weth = world.tokens["WETH"]
    await set_price(d, weth, weth.price * (10_000 - bps) // 10_000)
    await d.rpc("evm_increaseTime", [10])
    await d.rpc("evm_mine", [])


async def events(d, address, abi, receipt, name) -> list[dict]:
    ev = d.at(address, abi).events[name]()
    topic = ev.topic.removeprefix("0x")
    return [dict(ev.process_log(lg)["args"]) for lg in receipt["logs"]
            if lg["address"] == address and lg["topics"] and lg["topics"][0].hex() == topic]


async def commit_requested_versions(d, dep, keeper=None) -> None:
    """Move time into each outstanding requested version's publish window; the keeper (if given)
    commits it in its claim plan, else an outside oracle keeper does."""
    for _ in range(4):
        v = await oracle_call(d, dep, "next")
        if not v:
            return
        await d.rpc("evm_setNextBlockTimestamp", [max(v + 5, (await d.w3.eth.get_block("latest"))["timestamp"] + 1)])
        await d.rpc("evm_mine", [])
        if keeper is None:
            await commit_price(d, dep)
        else:
            await step(keeper)


async def test_drop_liquidates_once_then_reward_is_credited_and_claimed(deployer, world, tmp_path, capsys):
    d, dep, users = deployer, dep_of(world), traders(world)
    unhealthy = {users[i] for i in DEMO_UNHEALTHY}
    keeper = await keeper_for(world, tmp_path)
    try:
        n0 = await nonce(d)
        await step(keeper)
        assert keeper.recorder.outcomes == [] and await nonce(d) == n0  # healthy at $3,000
        await drop_weth(d, world)  # seen by the pull oracle only: nothing committed on chain yet
        latest_before = (await oracle_call(d, dep, "status"))[0]
        assert latest_before[1] == 3_000 * UNIT
        eth0 = await d.w3.eth.get_balance(KEEPER_ADDRESS)
        await run_until_quiet(keeper)
        report = keeper.recorder.report()
        assert report["reverted"] == [] and report["failed"] == [] and report["skipped"] == []
        (liq,) = report["liquidations"]
        assert set(liq["accounts"]) == unhealthy and len(liq["accounts"]) == 3
        rcs = [await d.w3.eth.get_transaction_receipt(h) for h in liq["details"]["tx_hashes"]]
        assert len(rcs) == 4 and all(rc["status"] == 1 for rc in rcs)  # commit + one close per account
        assert (await oracle_call(d, dep, "status"))[0][1] == 2_100 * UNIT  # the fresh price was committed
        closed = []
        for rc in rcs[1:]:
            (ev,) = await events(d, dep.market, await market_abi(), rc, "OrderCreated")
            assert ev["liquidator"] == KEEPER_ADDRESS and ev["order"]["protection"] == 1
            closed.append(ev["account"])
        assert sorted(closed) == sorted(unhealthy)  # each exactly once
        for i, u in enumerate(users):
            pending = await market_call(d, dep, "pendings", u)
            assert (pending[9] == 1) == (u in unhealthy)  # healthy accounts untouched
            if u not in unhealthy:
                assert pending[1] == 0 and (await market_call(d, dep, "positions", u))[2:] != (0, 0)
        oracle_fee = liq["details"]["native_spent_wei"]
        liq_eth = eth0 - await d.w3.eth.get_balance(KEEPER_ADDRESS)  # gas of the 4 txs + the Pyth fee

        # The reward is owed, not credited: the liquidations' version is not committed yet.
        assert (await market_call(d, dep, "locals", KEEPER_ADDRESS))[3] == 0
        assert report["pending_rewards"] == {}

        # The keeper commits the requested version when its window opens, settles and claims.
        dsu0 = await balance_of(d, dep.dsu, KEEPER_ADDRESS)
        await commit_requested_versions(d, dep, keeper)
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    claims = report["claims"]
    assert all(o["kind"] == "claim" for o in claims)
    # The three settle(account) calls went in one Multicall3 transaction: commit, settles, claimFee.
    assert sorted(a for o in claims for a in o["details"]["settled_now"]) == sorted(unhealthy)
    assert sum(len(o["details"]["tx_hashes"]) for o in claims) == 3
    assert [o for o in report["liquidations"] if o["kind"] == "claim"] == []
    assert claims and report["failed"] == [] and report["reverted"] == []
    claimed = await balance_of(d, dep.dsu, KEEPER_ADDRESS) - dsu0
    assert claimed == 3 * REWARD * DSU_TO_18
    fee_claimed = []
    for o in claims:
        for h in o["details"]["tx_hashes"]:
            rc = await d.w3.eth.get_transaction_receipt(h)
            fee_claimed += await events(d, dep.market, await market_abi(), rc, "FeeClaimed")
    assert sum(e["amount"] for e in fee_claimed) == 3 * REWARD
    assert all(e["account"] == e["receiver"] == KEEPER_ADDRESS for e in fee_claimed)
    for u in unhealthy:
        assert (await market_call(d, dep, "positions", u))[2] == 0  # closed at settlement
    assert (await market_call(d, dep, "locals", KEEPER_ADDRESS))[3] == 0
    assert report["pending_rewards"] == {}
    # realised (reward claimed - gas - oracle fee, independently measured) vs the plan's prediction
    weth_price = world.tokens["WETH"].price
    realised = claimed * 10**8 // 10**18 - liq_eth * weth_price // 10**18
    assert realised / 1e8 == pytest.approx(liq["predicted_profit_usd"], rel=0.005)
    assert liq["realised_profit_usd"] == pytest.approx(liq["predicted_profit_usd"], rel=0.005)
    assert oracle_fee == 1
    with capsys.disabled():
        gas = [(await d.w3.eth.get_transaction_receipt(h))["gasUsed"] for h in liq["details"]["tx_hashes"]]
        cgas = [(await d.w3.eth.get_transaction_receipt(h))["gasUsed"] for o in claims for h in o["details"]["tx_hashes"]]
        print(f"\nperennial e2e: predicted {liq['predicted_profit_usd']:.4f} realised {realised / 1e8:.4f} USD; "
              f"gas commit {gas[0]}, closes {gas[1:]}; claim plan gas {cgas}")


async def test_reward_shows_as_claimable_then_is_claimed(deployer, world, tmp_path):
    """Outside oracle keepers commit the version and settle the accounts: the reward shows in the
    report as credited but not claimed while it is worth less than claim_min_gas_multiple x gas."""
    d, dep, users = deployer, dep_of(world), traders(world)
    keeper = await keeper_for(world, tmp_path, claim_min_gas_multiple="1000000")
    try:
        await drop_weth(d, world)
        await step(keeper)
        await commit_requested_versions(d, dep)
        await settle(d, dep, [users[i] for i in DEMO_UNHEALTHY])
        assert (await market_call(d, dep, "locals", KEEPER_ADDRESS))[3] == 3 * REWARD
        await run_until_quiet(keeper)
        report = keeper.recorder.report()
        assert report["pending_rewards"] == {"perennial_v2": {dep.dsu.address: str(3 * REWARD * DSU_TO_18)}}
        (skip,) = [s for s in report["skipped"] if s["account"] == KEEPER_ADDRESS]
        assert "below 1000000 x its gas cost" in skip["reason"]
    finally:
        await keeper.close()
    keeper = await keeper_for(world, tmp_path)
    await run_and_close(keeper, until_quiet=True)
    report = keeper.recorder.report()
    assert report["liquidations"] == []
    (claim,) = report["claims"]
    assert claim["kind"] == "claim" and claim["details"]["collects"] == {
        dep.dsu.address: str(3 * REWARD * DSU_TO_18)}
    # booked at the liquidation: the claim's own profit is only its gas
    assert claim["realised_profit_usd"] < 0 and claim["realised_profit_usd"] == pytest.approx(
        claim["predicted_profit_usd"], rel=0.01)
    assert report["pending_rewards"] == {}
    assert await balance_of(d, dep.dsu, KEEPER_ADDRESS) == 3 * REWARD * DSU_TO_18


async def test_stale_oracle_sends_nothing_and_says_why(deployer, world, tmp_path):
    d, dep, users = deployer, dep_of(world), traders(world)
    risk = list(dep.risk.as_tuple())
    risk[11] = 4  # staleAfter below what any committable price can be (validFrom 4)
    await market_transact(d, dep, "updateRiskParameter", tuple(risk))
    await drop_weth(d, world)
    keeper = await keeper_for(world, tmp_path)
    n0 = await nonce(d)
    await run_and_close(keeper, until_quiet=True)
    report = keeper.recorder.report()
    assert await nonce(d) == n0 and report["liquidations"] == [] and report["dry_run"] == []
    skipped = {s["account"]: s["reason"] for s in report["skipped"]}
    assert set(skipped) == {users[i] for i in DEMO_UNHEALTHY}
    assert all(r.startswith(STALE) and "staleAfter 4s" in r for r in skipped.values())


async def test_dry_run_sends_nothing(deployer, world, tmp_path):
    d, dep, users = deployer, dep_of(world), traders(world)
    await drop_weth(d, world)
    keeper = await keeper_for(world, tmp_path, mode="dry-run")
    n0 = await nonce(d)
    latest = (await oracle_call(d, dep, "status"))[0]
    await run_and_close(keeper)
    report = keeper.recorder.report()
    assert await nonce(d) == n0 and report["liquidations"] == [] and report["skipped"] == []
    (o,) = report["dry_run"]
    assert set(o["accounts"]) == {users[i] for i in DEMO_UNHEALTHY}
    assert o["predicted_profit_usd"] > 0 and o["details"]["gas_simulated"] > 0
    assert (await oracle_call(d, dep, "status"))[0] == latest  # nothing committed
    for i in DEMO_UNHEALTHY:
        assert (await market_call(d, dep, "pendings", users[i]))[1] == 0  # nobody closed


async def closes_in(d, market: str, liq: dict) -> list[str]:
    """The accounts a liquidation plan closed on ``market`` (protected OrderCreated by the keeper)."""
    rcs = [await d.w3.eth.get_transaction_receipt(h) for h in liq["details"]["tx_hashes"]]
    assert all(rc["status"] == 1 for rc in rcs)
    out = []
    for rc in rcs:
        for ev in await events(d, market, await market_abi(), rc, "OrderCreated"):
            assert ev["liquidator"] == KEEPER_ADDRESS and ev["order"]["protection"] == 1
            out.append(ev["account"])
    return out


async def test_market_factory_alone_finds_the_market_and_liquidates(deployer, world, tmp_path):
    d, dep, users = deployer, dep_of(world), traders(world)
    unhealthy = {users[i] for i in DEMO_UNHEALTHY}
    keeper = await keeper_for(world, tmp_path, from_factory=True)
    assert 'market_factory = "' in world.entries["perennial_v2"] and "markets" not in world.entries["perennial_v2"]
    try:
        n0 = await nonce(d)
        await step(keeper)
        adapter = keeper.by_name["perennial_v2"]
        assert list(adapter.markets) == [dep.market] and adapter.contracts()["MarketFactory"] == dep.factory
        assert set(adapter.markets[dep.market].accounts) == set(users)  # its OrderCreated logs read too
        assert keeper.recorder.outcomes == [] and await nonce(d) == n0
        await drop_weth(d, world)
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == [] and report["skipped"] == []
    (liq,) = report["liquidations"]  # as with the configured list: one commit + a close per account
    assert set(liq["accounts"]) == unhealthy and len(liq["details"]["tx_hashes"]) == 4
    assert sorted(await closes_in(d, dep.market, liq)) == sorted(unhealthy)
    assert (await oracle_call(d, dep, "status"))[0][1] == 2_100 * UNIT
    for u in users:
        assert ((await market_call(d, dep, "pendings", u))[9] == 1) == (u in unhealthy)


async def test_market_created_while_running_is_found_and_liquidated(deployer, world, tmp_path):
    """A second market the factory creates after the keeper started is picked up by discovery (its
    creation and its first OrderCreated logs in the same block range) and liquidated too."""
    d, dep, users = deployer, dep_of(world), traders(world)
    keeper = await keeper_for(world, tmp_path, from_factory=True)
    try:
        await step(keeper)
        adapter = keeper.by_name["perennial_v2"]
        assert list(adapter.markets) == [dep.market]
        dep2 = await deploy_perennial(d, world.tokens, dep.pyth, dsu=dep.dsu, factory=dep.factory)
        assert dep2.factory == dep.factory and dep2.market != dep.market
        users2 = world.take_accounts(2)
        await open_positions(d, dep2, users2, [("long", 1, 900), ("long", 1, 1_200)])  # unhealthy, healthy
        await drop_weth(d, world)
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    assert list(adapter.markets) == [dep.market, dep2.market]
    assert set(adapter.markets[dep2.market].accounts) == set(users2)
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == []
    by_market = {o["details"]["market"]: o for o in report["liquidations"]}
    assert set(by_market) == {dep.market, dep2.market}
    assert sorted(await closes_in(d, dep.market, by_market[dep.market])) == sorted(users[i] for i in DEMO_UNHEALTHY)
    assert await closes_in(d, dep2.market, by_market[dep2.market]) == [users2[0]]
    assert (await market_call(d, dep2, "pendings", users2[0]))[9] == 1
    assert (await market_call(d, dep2, "pendings", users2[1]))[1] == 0  # healthy: untouched


async def test_configured_market_not_made_by_the_factory_is_refused(deployer, world, tmp_path):
    d, dep = deployer, dep_of(world)
    other = await d.deploy((await perennial_artifacts())["factory"], 0)  # a factory that made no market
    entry = perennial_config_entry(dep)
    world.entries = {"perennial_v2": entry.replace("markets = [", f'market_factory = "{other}"\nmarkets = [')}
    e = await startup_error(world, tmp_path, r"were not created by market_factory .*instances\(\) is false")
    assert dep.market in str(e) and other in str(e)
    # the factory that did create it is accepted, with the market named in the config as well
    world.entries = {"perennial_v2": entry.replace("markets = [", f'market_factory = "{dep.factory}"\nmarkets = [')}
    keeper = await make_keeper(world, tmp_path)
    await keeper.close()
    assert list(keeper.by_name["perennial_v2"].markets) == [dep.market]
