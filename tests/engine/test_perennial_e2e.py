"""The keeper end to end on Perennial V2 (the stand-ins in contracts/perennial, MockPyth from
@pythnetwork/pyth-sdk-solidity as the pull oracle): a WETH drop seen only by the pull oracle is
committed and the accounts below maintenance are closed with protected updates, exactly once; the
liquidation fee is credited at the next version's settlement and claimed; a stale oracle and
dry-run send nothing."""
from __future__ import annotations

import copy

import pytest

from keeper.devnet.multicall3 import install_multicall3
from keeper.devnet.perennial import (
    DEMO_UNHEALTHY, DSU_TO_18, UNIT, PerennialDeployment, add_perennial_to_world, commit_price, market_abi,
    market_call, market_transact, oracle_call, perennial_config_entry, settle,
)
from keeper.devnet.tokens import balance_of, deploy_default_tokens, set_price
from keeper.devnet.world import KEEPER_ADDRESS, World
from keeper.protocols.perennial_v2 import STALE
from tests.engine.conftest import make_keeper, run_and_close, run_until_quiet

REWARD = 10 * UNIT  # settlement fee 1 DSU x liquidationFee 10 (keeper/devnet/perennial.py defaults)


@pytest.fixture(scope="module")
async def perennial_world(deployer) -> World:
    await install_multicall3(deployer)
    tokens = await deploy_default_tokens(deployer)
    accounts = [a for a in await deployer.w3.eth.accounts if a not in (deployer.sender, KEEPER_ADDRESS)]
    world = World(deployer.w3.provider.endpoint_uri, await deployer.w3.eth.chain_id, tokens, None,
                  deployer.sender, accounts)
    await add_perennial_to_world(deployer, world)
    return world


@pytest.fixture
async def world(perennial_world, snapshot):
    yield copy.deepcopy(perennial_world)


def dep_of(world: World) -> PerennialDeployment:
    return world.extra["perennial"]


def traders(world: World) -> list[str]:
    return world.extra["perennial_accounts"]


async def keeper_for(world, tmp_path, *, mode="live", claim_min_gas_multiple="2", **kw):
    world.entries = {"perennial_v2": perennial_config_entry(dep_of(world), claim_min_gas_multiple=claim_min_gas_multiple)}
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
            await keeper.step(await keeper.chain.block_number())


async def test_drop_liquidates_once_then_reward_is_credited_and_claimed(deployer, world, tmp_path, capsys):
    d, dep, users = deployer, dep_of(world), traders(world)
    unhealthy = {users[i] for i in DEMO_UNHEALTHY}
    keeper = await keeper_for(world, tmp_path)
    try:
        n0 = await nonce(d)
        await keeper.step(await keeper.chain.block_number())
        assert keeper.recorder.outcomes == [] and await nonce(d) == n0  # healthy at $3,000
        await drop_weth(d, world)  # seen by the pull oracle only: nothing committed on chain yet
        latest_before = (await oracle_call(d, dep, "status"))[0]
        assert latest_before[1] == 3_000 * UNIT
        eth0 = await d.w3.eth.get_balance(KEEPER_ADDRESS)
        await run_until_quiet(keeper)
        report = keeper.recorder.report()
        assert report["reverted"] == [] and report["failed"] == [] and report["skipped"] == []
        (liq,) = report["liquidations"]
        assert set(liq["details"]["accounts"]) == unhealthy and len(liq["details"]["accounts"]) == 3
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
    assert all(o["details"]["kind"] == "claim" for o in claims)
    assert [o for o in report["liquidations"] if o["details"].get("kind") == "claim"] == []
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
        await keeper.step(await keeper.chain.block_number())
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
    assert claim["details"]["kind"] == "claim" and claim["details"]["collects"] == {
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
    assert set(o["details"]["accounts"]) == {users[i] for i in DEMO_UNHEALTHY}
    assert o["predicted_profit_usd"] > 0 and o["details"]["gas_simulated"] > 0
    assert (await oracle_call(d, dep, "status"))[0] == latest  # nothing committed
    for i in DEMO_UNHEALTHY:
        assert (await market_call(d, dep, "pendings", users[i]))[1] == 0  # nobody closed
