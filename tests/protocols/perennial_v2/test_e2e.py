"""The keeper end to end on Perennial V2 as deployed (the stand-ins' Market -> Oracle router ->
KeeperOracle of a PythFactory, MockPyth as the pull oracle): started from the Market alone, it
follows the router; a WETH drop seen only by the pull oracle is committed and the accounts below
maintenance are closed with protected updates, exactly once; the keeper commits the version its
closes requested within the timeout (its sync fee), settles the callbacks (the async fees) and claims,
the DSU received within 0.5% of what it predicted; a version left to time out is reported as lost
and nothing is claimed for it; an account that only accrued funding pushes below maintenance is
judged as the Market judges it; a stale oracle and dry-run send nothing. Configured with only the
MarketFactory, the keeper finds the market (and one created while it runs) from the factory's
creation logs and liquidates the same way."""
from __future__ import annotations

import copy
from dataclasses import replace

import pytest
from eth_utils import keccak
from keeper_devnet.protocols.perennial_v2.world import (
    DEMO_UNHEALTHY,
    DSU_TO_18,
    UNIT,
    PerennialDeployment,
    abi_of,
    add_perennial_to_world,
    advance_to,
    commit_price,
    deploy_perennial,
    deposit_and_trade,
    market_abi,
    market_call,
    market_transact,
    now,
    open_positions,
    oracle_call,
    perennial_artifacts,
    perennial_config_entry,
    router_call,
    settle,
)
from keeper_devnet.tokens import balance_of, set_price
from keeper_devnet.world import KEEPER_ADDRESS, World, bare_world

from keeper.protocols.perennial_v2 import maths as pm
from keeper.protocols.perennial_v2.adapter import LOST, STALE
from tests.helpers.keeper import (
    make_keeper,
    run_and_close,
    run_until_quiet,
    startup_error,
    step,
)


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


async def dsu_transfers_to(d, dep, receipt, to: str) -> list[tuple[str, int]]:
    """(sender, amount) of the DSU Transfer logs to ``to`` in a receipt."""
    topic = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
    out = []
    for lg in receipt["logs"]:
        t = ["0x" + x.hex().removeprefix("0x") for x in lg["topics"]]
        if lg["address"] == dep.dsu.address and t[0] == topic and t[2][-40:] == to[2:].lower():
            out.append(("0x" + t[1][-40:], int(lg["data"].hex(), 16)))
    return out


async def receipts(d, outcome: dict) -> list:
    return [await d.w3.eth.get_transaction_receipt(h) for h in outcome["details"]["tx_hashes"]]


async def test_drop_liquidates_once_then_reward_is_credited_and_claimed(deployer, world, tmp_path, capsys):
    d, dep, users = deployer, dep_of(world), traders(world)
    unhealthy = {users[i] for i in DEMO_UNHEALTHY}
    keeper = await keeper_for(world, tmp_path)
    try:
        # started from the Market alone: its oracle is the router, followed to the keeper oracle
        adapter = keeper.by_name["perennial_v2"]
        route = adapter.markets[dep.market].route
        assert (route.oracle, route.provider, route.keeper_factory, route.oracle_factory) == (
            dep.oracle, dep.keeper_oracle, dep.keeper_factory, dep.oracle_factory)
        assert await market_call(d, dep, "oracle") == dep.oracle != dep.keeper_oracle
        n0 = await nonce(d)
        await step(keeper)
        assert keeper.recorder.outcomes == [] and await nonce(d) == n0  # healthy at $3,000
        await drop_weth(d, world)  # seen by the pull oracle only: nothing committed on chain yet
        latest_before = (await router_call(d, dep, "status"))[0]
        assert latest_before[1] == 3_000 * UNIT
        eth0 = await d.w3.eth.get_balance(KEEPER_ADDRESS)
        await run_until_quiet(keeper)
        report = keeper.recorder.report()
        assert report["reverted"] == [] and report["failed"] == [] and report["skipped"] == []
        (liq,) = report["liquidations"]
        assert set(liq["accounts"]) == unhealthy and len(liq["accounts"]) == 3
        rcs = await receipts(d, liq)
        assert len(rcs) == 4 and all(rc["status"] == 1 for rc in rcs)  # commit + one close per account
        assert (await router_call(d, dep, "status"))[0][1] == 2_100 * UNIT  # the fresh price was committed
        closed = []
        for rc in rcs[1:]:
            (ev,) = await events(d, dep.market, await market_abi(), rc, "OrderCreated")
            assert ev["liquidator"] == KEEPER_ADDRESS and ev["order"]["protection"] == 1
            closed.append(ev["account"])
        assert sorted(closed) == sorted(unhealthy)  # each exactly once
        for u in users:
            pending = await market_call(d, dep, "pendings", u)
            assert (pending[9] == 1) == (u in unhealthy)  # healthy accounts untouched
            if u not in unhealthy:
                assert pending[1] == 0 and (await market_call(d, dep, "positions", u))[2:] != (0, 0)
        liq_eth = eth0 - await d.w3.eth.get_balance(KEEPER_ADDRESS)  # gas of the 4 txs + the Pyth fee
        version = await oracle_call(d, dep, "next")
        assert await oracle_call(d, dep, "localCallbacks", version) == closed

        # The reward is owed, not credited: the liquidations' version is not committed yet.
        assert (await market_call(d, dep, "locals", KEEPER_ADDRESS))[3] == 0
        assert report["pending_rewards"] == {}

        # The keeper commits the requested version when its window opens (within the timeout),
        # settles its callbacks and claims.
        dsu0 = await balance_of(d, dep.dsu, KEEPER_ADDRESS)
        await commit_requested_versions(d, dep, keeper)
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    (claim,) = report["claims"]
    assert report["failed"] == [] and report["reverted"] == []
    assert claim["details"]["commit_version"] == version and claim["details"]["settled_versions"] == [version]
    assert sorted(claim["details"]["settled_now"]) == sorted(unhealthy)
    crcs = await receipts(d, claim)
    assert len(crcs) == 3  # commit, KeeperFactory.settle, claimFee
    (v, _) = await oracle_call(d, dep, "at", version)
    assert v[2] is True and (await d.w3.eth.get_block(crcs[0]["blockNumber"]))["timestamp"] <= (
        version + dep.oracle_params.timeout)
    sync, async_ = (await oracle_call(d, dep, "responses", version))[1:3]
    # the commit paid the keeper the sync fee, the settlement the async fee per callback
    assert await dsu_transfers_to(d, dep, crcs[0], KEEPER_ADDRESS) == [(dep.keeper_oracle.lower(), sync * DSU_TO_18)]
    assert await dsu_transfers_to(d, dep, crcs[1], KEEPER_ADDRESS) == [
        (dep.keeper_oracle.lower(), async_ * DSU_TO_18)] * 3
    # the liquidation fee is the version's own settlement fee (3 callbacks) x 10, per account
    reward = pm.liquidation_fee(pm.settlement_fee(sync, async_, 3), dep.risk.liquidation_fee)
    (fee_claimed,) = await events(d, dep.market, await market_abi(), crcs[2], "FeeClaimed")
    assert fee_claimed["account"] == fee_claimed["receiver"] == KEEPER_ADDRESS
    assert fee_claimed["amount"] == 3 * reward
    claimed = await balance_of(d, dep.dsu, KEEPER_ADDRESS) - dsu0
    assert claimed == (3 * reward + sync + 3 * async_) * DSU_TO_18
    # predicted: the liquidation's deferred reward, the claim's keeper fees (sync fee included)
    predicted = int(liq["details"]["deferred"][dep.dsu.address]) + int(claim["details"]["keeper_fees"]) * DSU_TO_18
    assert claimed == pytest.approx(predicted, rel=0.005)
    assert int(liq["details"]["reward_each"]) == pytest.approx(reward, rel=0.005)
    for u in unhealthy:
        assert (await market_call(d, dep, "positions", u))[2] == 0  # closed at settlement
    assert (await market_call(d, dep, "locals", KEEPER_ADDRESS))[3] == 0
    assert report["pending_rewards"] == {}
    # realised (reward received - gas - oracle fee, independently measured) vs the plan's prediction
    weth_price = world.tokens["WETH"].price
    realised = (3 * reward * DSU_TO_18) * 10**8 // 10**18 - liq_eth * weth_price // 10**18
    assert realised / 1e8 == pytest.approx(liq["predicted_profit_usd"], rel=0.005)
    assert liq["realised_profit_usd"] == pytest.approx(liq["predicted_profit_usd"], rel=0.005)
    assert claim["realised_profit_usd"] == pytest.approx(claim["predicted_profit_usd"], rel=0.01)
    with capsys.disabled():
        gas = [rc["gasUsed"] for rc in rcs]
        print(f"\nperennial e2e: reward {claimed / 1e18:.6f} DSU received, {predicted / 1e18:.6f} predicted "
              f"(sync {sync / 1e6}, async {async_ / 1e6} x 3); profit predicted {liq['predicted_profit_usd']:.4f} "
              f"realised {realised / 1e8:.4f} USD; gas commit {gas[0]}, closes {gas[1:]}; "
              f"claim plan gas {[rc['gasUsed'] for rc in crcs]}")


async def test_reward_shows_as_claimable_then_is_claimed(deployer, world, tmp_path):
    """Outside oracle keepers commit the version and settle the accounts: the reward shows in the
    report as credited but not claimed while it is worth less than claim_min_gas_multiple x gas."""
    d, dep, users = deployer, dep_of(world), traders(world)
    keeper = await keeper_for(world, tmp_path, claim_min_gas_multiple="1000000")
    try:
        await drop_weth(d, world)
        await step(keeper)
        version = await oracle_call(d, dep, "next")
        await commit_requested_versions(d, dep)
        await settle(d, dep, [users[i] for i in DEMO_UNHEALTHY])
        sync, async_ = (await oracle_call(d, dep, "responses", version))[1:3]
        reward = pm.liquidation_fee(pm.settlement_fee(sync, async_, 3), dep.risk.liquidation_fee)
        assert (await market_call(d, dep, "locals", KEEPER_ADDRESS))[3] == 3 * reward
        await run_until_quiet(keeper)
        report = keeper.recorder.report()
        assert report["pending_rewards"] == {"perennial_v2": {dep.dsu.address: str(3 * reward * DSU_TO_18)}}
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
        dep.dsu.address: str(3 * reward * DSU_TO_18)}
    # the callbacks were left: the keeper settled them through the KeeperFactory (async fees its own)
    assert claim["details"]["settled_versions"] == [version]
    assert await oracle_call(d, dep, "localCallbacks", version) == []
    # booked at the liquidation: the claim's own profit is the async fees less its gas
    assert claim["realised_profit_usd"] == pytest.approx(claim["predicted_profit_usd"], rel=0.01)
    assert report["pending_rewards"] == {}
    assert await balance_of(d, dep.dsu, KEEPER_ADDRESS) == (3 * reward + 3 * async_) * DSU_TO_18


async def test_timed_out_version_is_reported_lost_and_nothing_claimed(deployer, world, tmp_path):
    """Nobody commits the closes' requested version within the oracle's timeout: the keeper reports the
    three rewards lost with the reason, claims nothing, and its next plan commits that version
    invalid (voiding the closes) before liquidating the same accounts again."""
    d, dep, users = deployer, dep_of(world), traders(world)
    unhealthy = {users[i] for i in DEMO_UNHEALTHY}
    keeper = await keeper_for(world, tmp_path)
    try:
        await drop_weth(d, world)
        await step(keeper)
        version = await oracle_call(d, dep, "next")
        assert version
        await advance_to(d, version + dep.oracle_params.timeout + 1)
        await drop_weth(d, world, bps=0)  # a fresh pull-oracle price, the same WETH price
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    assert report["failed"] == [] and report["reverted"] == []
    lost = {s["account"]: s["reason"] for s in report["skipped"] if s["reason"].startswith(LOST)}
    assert set(lost) == unhealthy
    assert all(f"version {version} was not committed within the oracle's 60s timeout" in r for r in lost.values())
    assert report["claims"] == [] and report["pending_rewards"] == {}
    assert (await market_call(d, dep, "locals", KEEPER_ADDRESS))[3] == 0
    # the timed-out version was committed invalid by the keeper's next plan, then the same accounts
    # (their closes voided) liquidated again at a new version
    _, second = report["liquidations"]
    assert second["details"]["commit_versions"][0] == version
    assert (await oracle_call(d, dep, "at", version))[0][2] is False
    assert set(second["accounts"]) == unhealthy
    assert second["details"]["close_version"] > version


async def test_borderline_account_pushed_below_maintenance_by_funding(deployer, world, tmp_path):
    """Funding at a flat 10000%/year: one account is maintained at the fresh price without the
    funding accrued since its checkpoint, unmaintained with it; another keeps a margin funding does not
    eat. The keeper closes the first only, and the Market agrees on both."""
    d, dep, users = deployer, dep_of(world), traders(world)
    r = list(dep.risk.as_tuple())
    r[8] = (0, 100 * UNIT, 100 * UNIT)
    await market_transact(d, dep, "updateRiskParameter", tuple(r))
    risk = pm.Risk.from_tuple(tuple(r))
    border, safe = world.take_accounts(2)
    for u, collateral in ((border, 1_000), (safe, 1_040)):
        await deposit_and_trade(d, dep, u, long=UNIT, collateral=collateral * UNIT)
    await commit_price(d, dep)
    await settle(d, dep, [border, safe])
    coll = (await market_call(d, dep, "locals", border))[2]
    # the price at which `border` (1 ETH long) sits 1 DSU above maintenance: coll + P - P0 = 5% x P + 1
    # (`safe` 41 DSU above)
    p0 = (await router_call(d, dep, "status"))[0][1]
    target = (coll - p0 - UNIT) * 100 // -95
    await set_price(d, world.tokens["WETH"], target * 100 + 99)  # 8 decimals
    await advance_to(d, await now(d) + 300)  # funding: 100 x ~$2,100 x 300 s / year ~ 2 DSU a long
    keeper = await keeper_for(world, tmp_path)
    try:
        await step(keeper)
        adapter = keeper.by_name["perennial_v2"]
        m = adapter.markets[dep.market]
        st = m.accounts[border]
        _, version, at_price, _ = adapter._commit_plan(m)
        judged = pm.collateral_at(st.local.collateral, st.position, m.glob, m.risk, version, at_price)
        no_funding = pm.collateral_at(st.local.collateral, st.position, replace(m.glob, rate=0),
                                      pm.Risk(**{**risk.__dict__, "p_controller": pm.PController(0, 0, 0)}),
                                      version, at_price)
        maint = pm.maintenance(st.position, at_price, m.risk)
        assert no_funding >= maint > judged  # only the funding accrued since the checkpoint flips it
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == []
    closed = {a for o in report["liquidations"] for a in o["accounts"]}
    assert border in closed and safe not in closed
    assert (await market_call(d, dep, "pendings", border))[9] == 1  # the Market took the protected close
    # and refuses one for `safe` at the same (now latest) version: it is maintained
    with pytest.raises(Exception, match="MarketInvalidProtectionError|0x534f7fe6"):
        await market_transact(d, dep, "update", safe, 0, 0, 0, 0, True, sender=users[0])
    await market_transact(d, dep, "settle", safe)
    loc, pos = await market_call(d, dep, "locals", safe), await market_call(d, dep, "positions", safe)
    latest = (await router_call(d, dep, "status"))[0]
    assert pm.maintained(pm.Position(*pos), latest[1], risk, loc[2])


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
    assert (await router_call(d, dep, "status"))[0][1] == 2_100 * UNIT
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
        dep2 = await deploy_perennial(d, world.tokens, dep.pyth, base=dep,
                                      oracle_id="0x" + keccak(b"perennial-devnet:ETH-USD:2").hex())
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
    other = await d.deploy((await perennial_artifacts())["factory"], dep.oracle_factory, 0)  # made no market
    entry = perennial_config_entry(dep)
    world.entries = {"perennial_v2": entry.replace("markets = [", f'market_factory = "{other}"\nmarkets = [')}
    e = await startup_error(world, tmp_path, r"were not created by market_factory .*instances\(\) is false")
    assert dep.market in str(e) and other in str(e)
    # the factory that did create it is accepted, with the market named in the config as well
    world.entries = {"perennial_v2": entry.replace("markets = [", f'market_factory = "{dep.factory}"\nmarkets = [')}
    keeper = await make_keeper(world, tmp_path)
    await keeper.close()
    assert list(keeper.by_name["perennial_v2"].markets) == [dep.market]


async def move_to_a_new_keeper_factory(d, dep: PerennialDeployment) -> tuple[str, str]:
    """What Perennial's owner does to move a market's oracle: a new PythFactory registered with the
    OracleFactory, its KeeperOracle for the same id registered to the router, OracleFactory.update."""
    kf_abi, ko_abi, of_abi = await abi_of("keeper_factory"), await abi_of("keeper_oracle"), await abi_of("oracle_factory")
    p = dep.oracle_params
    kf2 = await d.deploy((await perennial_artifacts())["keeper_factory"], dep.pyth_forwarder, dep.commitment_gas_oracle,
                         dep.settlement_gas_oracle, dep.oracle_factory, p.timeout)
    await d.transact(kf2, kf_abi, "updateParameter", p.granularity, 0, p.valid_from, p.valid_to)
    await d.transact(dep.oracle_factory, of_abi, "register", kf2)
    oid = bytes.fromhex(dep.oracle_id[2:])
    await d.transact(kf2, kf_abi, "create", oid, bytes.fromhex(dep.feed_id[2:]), ("0x" + "00" * 20, 0))
    ko2 = await d.call(kf2, kf_abi, "oracles", oid)
    await d.transact(ko2, ko_abi, "register", dep.oracle)
    await d.transact(dep.oracle_factory, of_abi, "update", oid, kf2)
    return kf2, ko2


async def test_route_followed_again_when_the_router_moves_to_a_new_provider(deployer, world, tmp_path):
    d, dep, users = deployer, dep_of(world), traders(world)
    keeper = await keeper_for(world, tmp_path)
    try:
        await step(keeper)
        m = keeper.by_name["perennial_v2"].markets[dep.market]
        assert m.route.epoch == 1 and m.route.provider == dep.keeper_oracle
        kf2, ko2 = await move_to_a_new_keeper_factory(d, dep)
        assert (await router_call(d, dep, "global"))[0] == 2
        await drop_weth(d, world)
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    assert m.route.epoch == 2 and (m.route.provider, m.route.keeper_factory) == (ko2, kf2)
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == []
    (liq,) = report["liquidations"]
    rcs = await receipts(d, liq)
    assert rcs[0]["to"] == kf2  # the fresh price committed through the new provider's factory
    assert sorted(await closes_in(d, dep.market, liq)) == sorted(users[i] for i in DEMO_UNHEALTHY)
    assert await d.call(ko2, await abi_of("keeper_oracle"), "next") > 0  # the closes requested from it


async def test_profit_gate_uses_the_simulated_gas(deployer, world, tmp_path, monkeypatch):
    """An estimate far above the real gas does not keep a profitable liquidation from being sent: the
    plan is simulated and judged on the simulated gas."""
    from keeper.protocols.perennial_v2 import adapter as adapter_module
    monkeypatch.setattr(adapter_module, "CLOSE_GAS", 10**12)
    d, dep, users = deployer, dep_of(world), traders(world)
    await drop_weth(d, world)
    keeper = await keeper_for(world, tmp_path)
    await run_and_close(keeper, until_quiet=True)
    report = keeper.recorder.report()
    (liq,) = report["liquidations"]
    assert liq["details"]["gas_simulated"] < 10**7 and liq["predicted_profit_usd"] > 0
    assert sorted(await closes_in(d, dep.market, liq)) == sorted(users[i] for i in DEMO_UNHEALTHY)
