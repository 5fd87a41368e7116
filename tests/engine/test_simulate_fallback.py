"""A node without eth_simulateV1 (the fault proxy answers -32601 "method not found" for it, as
nodes and providers that lack it do): the keeper falls back to eth_estimateGas of the liquidation
alone, still liquidates, and still refuses a plan the node says would revert, with the Pool's reason."""
from __future__ import annotations

import asyncio
import copy

import pytest
from keeper_devnet.protocols.aave_v3.common import account_data
from keeper_devnet.tokens import approve, set_price
from keeper_devnet.world import KEEPER_ADDRESS, open_position

from keeper.abi import load
from tests.helpers.keeper import make_keeper, run_and_close
from tests.helpers.rpc_proxy import Hold, MethodNotFound, RpcProxy
from tests.protocols.aave_v3.helpers import UINT_MAX, drop_weth, open_scenario

LIQUIDATION_CALL = "0x" + load("aave_v3/AaveV3Pool").fn("liquidationCall").selector.hex()


@pytest.fixture
async def world(real_world, snapshot):
    yield copy.deepcopy(real_world)


@pytest.fixture
async def proxy(anvil):
    async with RpcProxy(anvil.url) as p:
        p.on("eth_simulateV1", MethodNotFound())
        yield p


def estimated_liquidations(proxy: RpcProxy) -> list[dict]:
    return [p[0] for p in proxy.calls("eth_estimateGas") if p[0]["data"].startswith(LIQUIDATION_CALL)]


async def test_liquidates_with_estimate_gas_when_simulate_v1_is_missing(deployer, world, proxy, tmp_path):
    users = await open_scenario(deployer, world)
    await drop_weth(deployer, world)
    unhealthy = {u for u in users if (await account_data(deployer, world.aave, u))[5] < 10**18}
    world.url = proxy.url
    keeper = await run_and_close(await make_keeper(world, tmp_path), until_quiet=True)
    report = keeper.recorder.report()
    assert proxy.faults("eth_simulateV1")  # the keeper asked, the "node" said it has no such method
    assert report["failed"] == [] and report["reverted"] == []
    assert sorted(o["account"] for o in report["liquidations"]) == sorted(unhealthy)
    # Each liquidation sent was first run by eth_estimateGas from the keeper's address.
    assert {e["from"].lower() for e in estimated_liquidations(proxy)} == {KEEPER_ADDRESS.lower()}
    assert len(estimated_liquidations(proxy)) >= len(unhealthy)
    for o in report["liquidations"]:
        receipt = await deployer.w3.eth.get_transaction_receipt(o["tx_hash"])
        assert receipt["status"] == 1 and o["details"]["gas_simulated"] >= receipt["gasUsed"]


async def test_a_plan_that_would_revert_is_refused_with_the_pools_reason(deployer, world, proxy, tmp_path):
    [user] = world.take_accounts(1)
    await open_position(deployer, world, user, {"WETH": 10}, {"USDC": 19_000})
    usdc = world.tokens["USDC"]
    await approve(deployer, usdc, KEEPER_ADDRESS, world.aave.pool, UINT_MAX)  # no approval pending
    weth = world.tokens["WETH"]
    price = weth.price
    await drop_weth(deployer, world)
    world.url = proxy.url
    keeper = await make_keeper(world, tmp_path)  # approves the other reserves at start-up (no eth_simulateV1)
    await keeper.settle()
    sent_before = await deployer.w3.eth.get_transaction_count(KEEPER_ADDRESS)
    held = proxy.on("eth_estimateGas", Hold(), times=1).fault
    step = asyncio.create_task(run_and_close(keeper))
    await asyncio.wait_for(held.arrived.wait(), 60)  # planned on HF < 1, about to be estimated
    await set_price(deployer, weth, price)  # the price is back before the node runs it
    held.release()
    await asyncio.wait_for(step, 60)
    report = keeper.recorder.report()
    assert report["liquidations"] == [] and report["reverted"] == []
    [skip] = report["skipped"]
    assert skip["account"] == user
    assert "would revert" in skip["reason"] and "HEALTH_FACTOR_NOT_BELOW_THRESHOLD" in skip["reason"]
    assert await deployer.w3.eth.get_transaction_count(KEEPER_ADDRESS) == sent_before  # nothing sent
