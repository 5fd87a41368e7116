"""The Perennial V2 stand-in (contracts/perennial): the real selectors and event topics, the
maintenance rule at the latest committed version, who may send a protected close and when, the
stale-price guard, and the liquidation fee credited at settlement of the next version, then claimed."""
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
    commit_price,
    create_market,
    deploy_perennial,
    factory_abi,
    market_abi,
    market_call,
    market_transact,
    open_positions,
    oracle_call,
)
from keeper_devnet.pyth import deploy_mock_pyth
from keeper_devnet.tokens import balance_of, deploy_default_tokens, set_price

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
    accounts = [a for a in await d.w3.eth.accounts if a != d.sender][:len(PERENNIAL_DEMO_POSITIONS) + 2]
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


async def view(d, dep, user) -> tuple[pm.AccountView, pm.OracleView]:
    pos = await market_call(d, dep, "positions", user)
    loc = await market_call(d, dep, "locals", user)
    latest, current = await oracle_call(d, dep, "status")
    return (pm.AccountView(position=pm.Position(*pos), local=pm.Local(*loc)),
            pm.OracleView(latest_timestamp=latest[0], latest_price=latest[1], latest_valid=latest[2], current=current))


def risk(dep) -> pm.Risk:
    r = dep.risk
    return pm.Risk(r.margin, r.maintenance, r.liquidation_fee, r.min_margin, r.min_maintenance, r.stale_after)


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


async def test_maintenance_rule_and_protected_close(deployer, world):
    d = deployer
    dep, users, (liquidator, _) = world
    for u in users:  # everyone healthy at $3,000: a protected close is refused
        with pytest.raises(DeployError, match="0x534f7fe6|MarketInvalidProtectionError"):
            await market_transact(d, dep, "update", u, 0, 0, 0, 0, True, sender=liquidator)
    await drop_and_commit(d, dep)
    r = risk(dep)
    seen = set()
    for i, u in enumerate(users):
        acct, orc = await view(d, dep, u)
        # the account is settled lazily: its collateral at the new latest version includes the PnL since
        # its checkpoint, which the maths computes from the checkpoint price
        cp_price = (await oracle_call(d, dep, "at", acct.position.timestamp))[0][1]
        coll = pm.collateral_at(acct.local.collateral, acct.position, cp_price, orc.latest_price)
        maintained = pm.maintained(acct.position, orc.latest_price, r, coll)
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
            loc = await market_call(d, dep, "locals", u)
            assert loc[2] == coll  # settled to the new version: exactly the maths' collateral
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


async def test_reward_credited_at_settlement_then_claimed(deployer, world):
    d = deployer
    dep, users, (liquidator, _) = world
    await drop_and_commit(d, dep)
    u = users[0]
    await market_transact(d, dep, "update", u, 0, 0, 0, 0, True, sender=liquidator)
    version = await oracle_call(d, dep, "next")
    assert version and (await market_call(d, dep, "liquidators", u, 2)) == liquidator
    assert (await market_call(d, dep, "locals", liquidator))[3] == 0  # nothing before the version settles
    await market_transact(d, dep, "settle", u)
    assert (await market_call(d, dep, "locals", liquidator))[3] == 0  # version not committed yet
    coll_before = (await market_call(d, dep, "locals", u))[2]
    await commit_price(d, dep)  # the requested version
    (_, receipt) = await oracle_call(d, dep, "at", version)
    reward = pm.liquidation_fee(receipt[0], dep.risk.liquidation_fee)
    assert reward == 10 * UNIT  # 1 DSU settlement fee x 10
    await market_transact(d, dep, "settle", u)
    loc = await market_call(d, dep, "locals", u)
    assert loc[3] == 0 and (await market_call(d, dep, "positions", u))[2] == 0  # closed
    # the account paid its settlement fee share (alone at that version) plus the liquidation fee
    assert loc[2] == coll_before - receipt[0] - reward
    assert (await market_call(d, dep, "locals", liquidator))[3] == reward
    with pytest.raises(DeployError, match="0x3222db45|MarketNotOperatorError"):
        await market_transact(d, dep, "claimFee", liquidator, sender=users[2])
    before = await balance_of(d, dep.dsu, liquidator)
    rc = await market_transact(d, dep, "claimFee", liquidator, sender=liquidator)
    ev = d.at(dep.market, await market_abi()).events.FeeClaimed().process_log(rc["logs"][-1])["args"]
    assert (ev["account"], ev["receiver"], ev["amount"]) == (liquidator, liquidator, reward)
    assert await balance_of(d, dep.dsu, liquidator) - before == reward * DSU_TO_18
    assert (await market_call(d, dep, "locals", liquidator))[3] == 0


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
    # the market answers to the factory's owner (root Instance.onlyOwner)
    assert await market_call(d, dep, "factory") == dep.factory
    assert await market_call(d, dep, "owner") == d.sender


async def test_factory_create_is_owner_only_one_market_per_oracle(deployer, world):
    d = deployer
    dep, users, _ = world
    abi = await factory_abi()
    with pytest.raises(DeployError, match="0x213e2260|FactoryAlreadyRegisteredError"):
        await d.transact(dep.factory, abi, "create", (dep.dsu.address, dep.oracle))
    other_oracle = users[0]  # the stand-in does not check the oracle against an oracle factory
    with pytest.raises(DeployError, match="0x99bf6359|OwnableNotOwnerError"):
        await d.transact(dep.factory, abi, "create", (dep.dsu.address, other_oracle), sender=users[1])
    block = await d.w3.eth.block_number
    market = await create_market(d, dep.factory, dep.dsu.address, other_oracle)
    logs = await d.w3.eth.get_logs({"address": dep.factory, "fromBlock": block + 1})
    assert [(_topic(lg["topics"][0]), _topic(lg["topics"][1])[-40:]) for lg in logs] == [
        (INSTANCE_REGISTERED, market[2:].lower()), (MARKET_CREATED, market[2:].lower())]
    assert market != dep.market and await d.call(dep.factory, abi, "instances", market) is True
    assert await d.call(dep.factory, abi, "markets", other_oracle) == market
    with pytest.raises(DeployError):  # governance answers to the factory's owner only
        await d.transact(market, await market_abi(), "updateRiskParameter", dep.risk.as_tuple(), sender=users[1])
    await d.transact(market, await market_abi(), "updateRiskParameter", dep.risk.as_tuple())
