"""The Perennial V2 stand-ins (devnet/keeper_devnet/protocols/perennial_v2): the real selectors and
event topics; the deployed split (Market -> Oracle router -> KeeperOracle of a PythFactory, each link
checked as the real contracts check it); the maintenance rule at the latest committed version, the
collateral there exactly as the keeper's maths projects it (price PnL and funding); who may send a
protected close and when; the stale-price guard; keeper fees (sync to the committer, async per
callback) and the liquidation fee credited at settlement, then claimed; the commit timeout, after
which a requested version is committed invalid, voiding its orders and paying no liquidation fee."""
from __future__ import annotations

import copy

import pytest
from eth_utils import abi_to_signature, keccak
from keeper_devnet.deploy import DeployError
from keeper_devnet.multicall3 import install_multicall3
from keeper_devnet.protocols.perennial_v2.world import (
    DEMO_UNHEALTHY,
    DSU_TO_18,
    PERENNIAL_DEMO_POSITIONS,
    UNIT,
    PerennialDeployment,
    abi_of,
    advance_to,
    commit_invalid,
    commit_price,
    deploy_perennial,
    factory_abi,
    market_abi,
    market_call,
    market_transact,
    now,
    open_positions,
    oracle_call,
    router_call,
)
from keeper_devnet.pyth import deploy_mock_pyth
from keeper_devnet.tokens import balance_of, deploy_default_tokens, set_price
from keeper_devnet.world import KEEPER_ADDRESS

from keeper.protocols.perennial_v2 import maths as pm

ORDER_CREATED = "0x5e4268eb130bdc972ec0e271b55ee1ff04e99ca5a1375c4f151ba9afad962b4a"
FEE_CLAIMED = "0x4a34429a0ef883c4301d5b40aa8ae85d4eb024946062f2c7ebd8320acedc831a"
# root IFactory.InstanceRegistered(IInstance indexed) and IMarketFactory.MarketCreated(IMarket indexed,
# IMarket.MarketDefinition(Token18 token, IOracleProvider oracle)), keccak of the canonical signatures.
INSTANCE_REGISTERED = "0x4fe45192317a7d3ad19c3eaa395c0c3a1b7a0f53c3536fb96764c3561a8e9dad"
MARKET_CREATED = "0xf5090e340ccc5b9c692d172ce09471d5c14bbf23d179b6a67c36a0846a17b42d"
FACTORY_SELECTORS = {"instances(address)": "032bb443", "markets(address)": "8e8f294b",
                     "create((address,address))": "ba2f5f2d"}
SELECTORS = {"update(address,uint256,uint256,uint256,int256,bool)": "91eece28", "claimFee(address)": "6ebc51e1",
             "settle(address)": "6a256b29", "positions(address)": "55f57510", "locals(address)": "5b4b9695",
             "riskParameter()": "4549a629", "oracle()": "7dc0d1d0"}


@pytest.fixture(scope="module")
async def setup(deployer):
    d = deployer
    await install_multicall3(d)
    tokens = await deploy_default_tokens(d)
    pyth = await deploy_mock_pyth(d, valid_time_period=60, fee_wei=1)
    dep = await deploy_perennial(d, tokens, pyth)
    # Not the keeper's address: this module's set-up is not reverted, and later tests count its nonce.
    accounts = [a for a in await d.w3.eth.accounts
                if a not in (d.sender, KEEPER_ADDRESS)][:len(PERENNIAL_DEMO_POSITIONS) + 2]
    users, others = accounts[:len(PERENNIAL_DEMO_POSITIONS)], accounts[len(PERENNIAL_DEMO_POSITIONS):]
    await open_positions(d, dep, users, PERENNIAL_DEMO_POSITIONS)
    return dep, users, others


@pytest.fixture
async def world(setup, snapshot):
    dep, users, others = setup
    yield copy.deepcopy(dep), users, others


async def drop_and_commit(d, dep: PerennialDeployment, bps=3_000):
    await set_price(d, dep.weth, dep.weth.price * (10_000 - bps) // 10_000)
    return await commit_price(d, dep)


def risk(dep) -> pm.Risk:
    r = dep.risk
    return pm.Risk(r.margin, r.maintenance, r.liquidation_fee, r.min_margin, r.min_maintenance, r.stale_after,
                   r.taker_scale, pm.PController(*r.p_controller))


async def global_view(d, dep) -> pm.GlobalView:
    """The market settled to its latest version (as the keeper reads it)."""
    await market_transact(d, dep, "settle", dep.market)
    g = await market_call(d, dep, "global")
    return pm.GlobalView(pm.Position(*await market_call(d, dep, "position")), g[5], g[7][0], g[7][1])


async def settled(d, dep, user) -> tuple[pm.Position, pm.Local]:
    await market_transact(d, dep, "settle", user)
    return pm.Position(*await market_call(d, dep, "positions", user)), pm.Local(*await market_call(d, dep, "locals", user))


async def test_real_selectors_and_topics(deployer, world):
    dep, users, _ = world
    abi = await market_abi()
    fns = {f"{e['name']}({','.join(i['type'] for i in e['inputs'])})" for e in abi if e["type"] == "function"}
    for sig, sel in SELECTORS.items():
        assert sig in fns and keccak(text=sig)[:4].hex() == sel
    c = deployer.at(dep.market, abi)
    assert "0x" + c.events.OrderCreated().topic.removeprefix("0x") == ORDER_CREATED
    assert "0x" + c.events.FeeClaimed().topic.removeprefix("0x") == FEE_CLAIMED
    # the OrderCreated logs of the demo trades carry the account as topic 1 and no liquidator
    logs = await deployer.w3.eth.get_logs({"address": dep.market, "fromBlock": 0, "topics": [ORDER_CREATED]})
    assert {"0x" + lg["topics"][1].hex()[-40:] for lg in logs} == {u.lower() for u in users}
    ev = c.events.OrderCreated().process_log(logs[0])["args"]
    assert ev["liquidator"] == "0x" + "00" * 20 and ev["order"]["orders"] == 1 and ev["order"]["invalidation"] == 1


async def test_deployed_split_market_router_keeper_oracle(deployer, world):
    """Market.oracle() is the Oracle router; its current provider is the KeeperOracle; requests only
    flow market -> router -> keeper oracle; the router has no keeper-oracle views."""
    d = deployer
    dep, users, (other, _) = world
    assert await market_call(d, dep, "oracle") == dep.oracle
    current, latest = await router_call(d, dep, "global")
    assert current == latest == 1
    assert (await router_call(d, dep, "oracles", current))[0] == dep.keeper_oracle
    assert await router_call(d, dep, "market") == dep.market
    ko = await abi_of("keeper_oracle")
    assert await d.call(dep.keeper_oracle, ko, "oracle") == dep.oracle
    assert await d.call(dep.keeper_oracle, ko, "factory") == dep.keeper_factory
    with pytest.raises(DeployError, match="KeeperOracleNotOracleError|0x"):
        await d.transact(dep.keeper_oracle, ko, "request", dep.market, users[0], sender=other)
    with pytest.raises(DeployError, match="OracleNotMarketError|0x"):
        await d.transact(dep.oracle, await abi_of("oracle"), "request", dep.market, users[0], sender=other)
    with pytest.raises(Exception):  # noqa: B017 - the router answers no timeout() (selector 0x70dea79a)
        await d.call(dep.oracle, ko, "timeout")
    assert await d.call(dep.keeper_oracle, ko, "timeout") == dep.oracle_params.timeout
    # the keeper factory's records and the oracle factory's agree on the id
    kf, of = await abi_of("keeper_factory"), await abi_of("oracle_factory")
    oid = bytes.fromhex(dep.oracle_id[2:])
    assert await d.call(dep.keeper_factory, kf, "oracles", oid) == dep.keeper_oracle
    assert await d.call(dep.keeper_factory, kf, "ids", dep.keeper_oracle) == oid
    assert await d.call(dep.oracle_factory, of, "ids", dep.oracle) == oid
    assert await d.call(dep.oracle_factory, of, "factories", dep.keeper_factory) is True
    # Pyth's singleUpdateFeeInWei, through the forwarder, is MockPyth's fee for one update
    assert await d.call(dep.pyth_forwarder, await abi_of("pyth_forwarder"), "singleUpdateFeeInWei") == 1


async def test_collateral_at_the_committed_version_is_the_maths_projection(deployer, world):
    """A price move and funding at a flat 1000%/year between the latest version and the next
    commit: every account's settled collateral is exactly what pm.collateral_at projects."""
    d = deployer
    dep, users, _ = world
    r = list(dep.risk.as_tuple())
    r[8] = (0, 10 * UNIT, 10 * UNIT)
    await market_transact(d, dep, "updateRiskParameter", tuple(r))
    await commit_price(d, dep)  # the rate takes effect from this version
    g = await global_view(d, dep)
    rk = pm.Risk.from_tuple(tuple(r))
    before = {u: await settled(d, dep, u) for u in users}
    await advance_to(d, await now(d) + 600)
    await set_price(d, dep.weth, dep.weth.price * 9 // 10)
    version, _ = await commit_price(d, dep)
    price = (await oracle_call(d, dep, "at", version))[0][1]
    funding_seen = False
    for u in users:
        pos, loc = before[u]
        want = pm.collateral_at(loc.collateral, pos, g, rk, version, price)
        no_funding = pm.collateral_at(loc.collateral, pos, g, risk(dep), version, price)
        _, after = await settled(d, dep, u)
        assert after.collateral == want
        funding_seen |= want != no_funding
    assert funding_seen


async def test_maintenance_rule_and_protected_close(deployer, world):
    d = deployer
    dep, users, (liquidator, _) = world
    for u in users:  # everyone healthy at $3,000: a protected close is refused
        with pytest.raises(DeployError, match="0x534f7fe6|MarketInvalidProtectionError"):
            await market_transact(d, dep, "update", u, 0, 0, 0, 0, True, sender=liquidator)
    await drop_and_commit(d, dep)
    r = risk(dep)
    latest = (await router_call(d, dep, "status"))[0]
    seen = set()
    for i, u in enumerate(users):
        pos, loc = await settled(d, dep, u)
        maintained = pm.maintained(pos, latest[1], r, loc.collateral)
        assert maintained == (i not in DEMO_UNHEALTHY)
        seen.add(maintained)
        if maintained:
            with pytest.raises(DeployError, match="0x534f7fe6|MarketInvalidProtectionError"):
                await market_transact(d, dep, "update", u, 0, 0, 0, 0, True, sender=liquidator)
        else:
            rc = await market_transact(d, dep, "update", u, 0, 0, 0, 0, True, sender=liquidator)
            ev = d.at(dep.market, await market_abi()).events.OrderCreated().process_log(rc["logs"][-1])["args"]
            assert ev["account"] == u and ev["liquidator"] == liquidator and ev["order"]["protection"] == 1
            size = int(round(PERENNIAL_DEMO_POSITIONS[i][1] * UNIT))
            assert ev["order"]["longNeg"] == size and ev["order"]["collateral"] == 0
            # the account cannot trade while the liquidation is pending (MarketProtectedError)
            with pytest.raises(DeployError):
                await market_transact(d, dep, "update", u, 0, size, 0, 0, False, sender=u)
    assert seen == {True, False}


async def test_partial_or_collateral_moving_protected_orders_are_refused(deployer, world):
    d = deployer
    dep, users, (liquidator, _) = world
    await drop_and_commit(d, dep)
    u = users[1]  # 2 ETH long, unhealthy
    with pytest.raises(DeployError, match="0x534f7fe6|MarketInvalidProtectionError"):
        await market_transact(d, dep, "update", u, 0, UNIT, 0, 0, True, sender=liquidator)  # closes half
    with pytest.raises(DeployError, match="0x534f7fe6|MarketInvalidProtectionError"):
        await market_transact(d, dep, "update", u, 0, 0, 0, -1, True, sender=liquidator)  # takes collateral


async def test_stale_price_refuses_the_liquidation(deployer, world):
    d = deployer
    dep, users, (liquidator, _) = world
    await drop_and_commit(d, dep)
    await d.rpc("evm_increaseTime", [dep.risk.stale_after + dep.oracle_params.granularity])
    await d.rpc("evm_mine", [])
    with pytest.raises(DeployError, match="0xab1e3a00|MarketStalePriceError"):
        await market_transact(d, dep, "update", users[0], 0, 0, 0, 0, True, sender=liquidator)
    await commit_price(d, dep)  # a fresh version: allowed again
    await market_transact(d, dep, "update", users[0], 0, 0, 0, 0, True, sender=liquidator)


async def test_keeper_fees_and_the_reward_credited_at_settlement_then_claimed(deployer, world):
    d = deployer
    dep, users, (liquidator, committer) = world
    await drop_and_commit(d, dep)
    a, b = users[0], users[1]
    for u in (a, b):
        await market_transact(d, dep, "update", u, 0, 0, 0, 0, True, sender=liquidator)
    version = await oracle_call(d, dep, "next")
    assert version and (await market_call(d, dep, "liquidators", a, 2)) == liquidator
    assert await oracle_call(d, dep, "localCallbacks", version) == [a, b]
    await market_transact(d, dep, "settle", a)
    assert (await market_call(d, dep, "locals", liquidator))[3] == 0  # version not committed yet
    coll_before = (await settled(d, dep, a))[1].collateral
    dsu0 = await balance_of(d, dep.dsu, committer)
    await commit_price(d, dep, sender=committer)  # the requested version: the sync fee is the committer's
    sync, async_ = (await oracle_call(d, dep, "responses", version))[1:3]
    assert sync > 0 and async_ > 0
    assert await balance_of(d, dep.dsu, committer) - dsu0 == sync * DSU_TO_18
    settlement = pm.settlement_fee(sync, async_, 2)
    assert (await oracle_call(d, dep, "at", version))[1][0] == settlement
    reward = pm.liquidation_fee(settlement, dep.risk.liquidation_fee)
    # KeeperFactory.settle runs both callbacks and pays the caller the async fee for each
    dsu0 = await balance_of(d, dep.dsu, committer)
    await d.transact(dep.keeper_factory, await abi_of("keeper_factory"), "settle",
                     [bytes.fromhex(dep.oracle_id[2:])], [version], [5], sender=committer)
    assert await balance_of(d, dep.dsu, committer) - dsu0 == 2 * async_ * DSU_TO_18
    assert await oracle_call(d, dep, "localCallbacks", version) == []
    loc = await market_call(d, dep, "locals", a)
    assert loc[3] == 0 and (await market_call(d, dep, "positions", a))[2] == 0  # closed
    # the account paid its settlement fee share (half: 2 orders at that version) plus the liquidation fee
    assert loc[2] == coll_before - settlement // 2 - reward
    assert (await market_call(d, dep, "locals", liquidator))[3] == 2 * reward
    with pytest.raises(DeployError, match="0x3222db45|MarketNotOperatorError"):
        await market_transact(d, dep, "claimFee", liquidator, sender=users[2])
    before = await balance_of(d, dep.dsu, liquidator)
    rc = await market_transact(d, dep, "claimFee", liquidator, sender=liquidator)
    ev = d.at(dep.market, await market_abi()).events.FeeClaimed().process_log(rc["logs"][-1])["args"]
    assert (ev["account"], ev["receiver"], ev["amount"]) == (liquidator, liquidator, 2 * reward)
    assert await balance_of(d, dep.dsu, liquidator) - before == 2 * reward * DSU_TO_18
    assert (await market_call(d, dep, "locals", liquidator))[3] == 0


async def test_timed_out_version_is_committed_invalid_and_voids_the_liquidation(deployer, world):
    d = deployer
    dep, users, (liquidator, committer) = world
    await drop_and_commit(d, dep)
    u = users[0]
    await market_transact(d, dep, "update", u, 0, 0, 0, 0, True, sender=liquidator)
    version = await oracle_call(d, dep, "next")
    coll_before = (await settled(d, dep, u))[1].collateral
    ko = await abi_of("keeper_oracle")
    with pytest.raises(DeployError, match="KeeperOracleInvalidPriceError|0x"):  # within the timeout: a price
        await commit_invalid(d, dep, sender=committer)
    await advance_to(d, version + dep.oracle_params.timeout + 1)
    dsu0 = await balance_of(d, dep.dsu, committer)
    await commit_invalid(d, dep, sender=committer)
    (v, receipt) = await oracle_call(d, dep, "at", version)
    assert v[0] == version and v[2] is False  # committed invalid, the latest price carried over
    sync = (await d.call(dep.keeper_oracle, ko, "responses", version))[1]
    assert await balance_of(d, dep.dsu, committer) - dsu0 == sync * DSU_TO_18  # the committer is still paid
    pos, loc = await settled(d, dep, u)
    assert pos.long == UNIT  # the protected close was voided: still 1 ETH long
    assert loc.collateral == coll_before - receipt[0]  # its settlement fee share, no liquidation fee
    assert (await market_call(d, dep, "locals", liquidator))[3] == 0
    assert (await market_call(d, dep, "pendings", u))[9] == 0  # no longer protected: liquidatable again
    await commit_price(d, dep)
    await market_transact(d, dep, "update", u, 0, 0, 0, 0, True, sender=liquidator)


def _topic(t) -> str:
    return "0x" + t.hex().removeprefix("0x")


async def test_factory_emits_the_real_creation_events(deployer, world):
    d = deployer
    dep, _, _ = world
    abi = await factory_abi()
    fns = {abi_to_signature(e) for e in abi if e["type"] == "function"}
    for sig, sel in FACTORY_SELECTORS.items():
        assert sig in fns and keccak(text=sig)[:4].hex() == sel
    f = d.at(dep.factory, abi)
    assert "0x" + f.events.InstanceRegistered().topic.removeprefix("0x") == INSTANCE_REGISTERED
    assert "0x" + f.events.MarketCreated().topic.removeprefix("0x") == MARKET_CREATED
    # deploy_perennial created the market through the factory: registered, then MarketCreated
    logs = await d.w3.eth.get_logs({"address": dep.factory, "fromBlock": 0})
    assert [_topic(lg["topics"][0]) for lg in logs] == [INSTANCE_REGISTERED, MARKET_CREATED]
    assert {_topic(lg["topics"][1])[-40:] for lg in logs} == {dep.market[2:].lower()}
    ev = f.events.MarketCreated().process_log(logs[1])["args"]
    assert (ev["market"], tuple(ev["definition"].values())) == (dep.market, (dep.dsu.address, dep.oracle))
    assert await d.call(dep.factory, abi, "instances", dep.market) is True
    assert await d.call(dep.factory, abi, "instances", dep.oracle) is False
    assert await d.call(dep.factory, abi, "markets", dep.oracle) == dep.market
    assert await d.call(dep.factory, abi, "oracleFactory") == dep.oracle_factory
    # the market answers to the factory's owner (root Instance.onlyOwner)
    assert await market_call(d, dep, "factory") == dep.factory
    assert await market_call(d, dep, "owner") == d.sender


async def test_factory_create_takes_routers_only_one_market_per_oracle(deployer, world):
    d = deployer
    dep, users, _ = world
    abi = await factory_abi()
    with pytest.raises(DeployError, match="0x213e2260|FactoryAlreadyRegisteredError"):
        await d.transact(dep.factory, abi, "create", (dep.dsu.address, dep.oracle))
    with pytest.raises(DeployError, match="FactoryInvalidOracleError|0x"):  # a keeper oracle is no router
        await d.transact(dep.factory, abi, "create", (dep.dsu.address, dep.keeper_oracle))
    dep2 = await deploy_perennial(d, {"WETH": dep.weth}, dep.pyth, base=dep,
                                  oracle_id="0x" + keccak(b"perennial-devnet:ETH-USD:2").hex())
    assert dep2.factory == dep.factory and dep2.oracle != dep.oracle and dep2.market != dep.market
    with pytest.raises(DeployError, match="0x99bf6359|OwnableNotOwnerError"):
        await d.transact(dep.factory, abi, "create", (dep.dsu.address, dep2.oracle), sender=users[1])
    assert await d.call(dep.factory, abi, "instances", dep2.market) is True
    assert await d.call(dep.factory, abi, "markets", dep2.oracle) == dep2.market
    with pytest.raises(DeployError):  # governance answers to the factory's owner only
        await d.transact(dep2.market, await market_abi(), "updateRiskParameter", dep.risk.as_tuple(), sender=users[1])
