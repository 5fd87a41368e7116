"""The keeper behind the fault-injecting JSON-RPC proxy: a node without eth_simulateV1 (many hosted
endpoints answer -32601), and one garbage answer to a receipt poll."""
from __future__ import annotations

import copy

import pytest
import structlog

from keeper.store import SqliteStore
from tests.helpers.keeper import make_keeper, run_until_quiet, step
from tests.helpers.rpc_proxy import Garbage, MethodNotFound, RpcProxy
from tests.protocols.aave_v3.helpers import drop_weth, open_scenario
from tests.txmanager.helpers import fresh_keeper, keeper_txs, liquidated_users

UNHEALTHY = (2, 3, 4, 6)


@pytest.fixture
async def world(deployer, real_world, snapshot):
    await fresh_keeper(deployer, real_world)
    yield copy.deepcopy(real_world)


async def test_without_eth_simulate_v1_a_fresh_wallet_liquidates(deployer, anvil, world, tmp_path):
    """The wallet has approved nothing: the keeper finds the method missing at start-up (asked once,
    logged once) and approves what Aave's inventory mode spends (every reserve, for the Pool) then;
    each liquidation is checked with eth_call and eth_estimateGas and sent."""
    users = await open_scenario(deployer, world)
    await drop_weth(deployer, world)
    start = await deployer.w3.eth.block_number
    async with RpcProxy(anvil.url) as proxy:
        proxy.on("eth_simulateV1", MethodNotFound())
        with structlog.testing.capture_logs() as logs:
            keeper = await make_keeper(world, tmp_path, rpc_url=proxy.url)
            try:
                await run_until_quiet(keeper)
            finally:
                await keeper.close()
    assert len(proxy.calls("eth_simulateV1")) == 1  # asked once, then known to be missing
    assert [e["event"] for e in logs].count("simulate.no_eth_simulateV1") == 1
    assert proxy.calls("eth_call") and proxy.calls("eth_estimateGas")
    txs = await keeper_txs(deployer, start)
    assert liquidated_users(txs) == {users[i]: [1] for i in UNHEALTHY}  # once each, status 1
    # One approval per reserve at start-up, then the four liquidations.
    startup = [e for e in logs if e["event"] == "approvals.startup"]
    assert len(startup) == len(world.tokens) and all(e["sent"] for e in startup)
    assert all(s == 1 for _, s in txs) and len(txs) == len(world.tokens) + 4
    report = keeper.recorder.report()
    assert len(report["liquidations"]) == 4 and report["failed"] == report["reverted"] == []
    assert not [o for o in report["skipped"] if o["reason_code"] == "approving"]  # nothing waits for one


async def test_one_garbage_receipt_poll_loses_no_confirmation(deployer, anvil, world, tmp_path):
    await open_scenario(deployer, world)
    await drop_weth(deployer, world)
    record = tmp_path / "out.jsonl"
    async with RpcProxy(anvil.url) as proxy:
        proxy.on("eth_getTransactionReceipt", Garbage(), times=1)
        keeper = await make_keeper(world, tmp_path, rpc_url=proxy.url, record_file=str(record))
        try:
            await step(keeper)
        finally:
            await keeper.close()
    # The first receipt poll's answer was an error page: asked again (the request is retried; when a
    # poll fails altogether the manager asks again on its next round), nothing decided from it.
    assert [s.batch for s in proxy.faults()] == [True]
    report = keeper.recorder.report()
    assert len(report["liquidations"]) == 4 and report["pending"] == report["failed"] == []
    store = await SqliteStore.open(str(tmp_path / "keeper.db"))
    try:
        outcomes = await store.outcomes()
    finally:
        await store.close()
    assert [o.status.value for o in outcomes] == ["confirmed"] * 4
    assert sorted(o.tx.tx_hash for o in outcomes) == sorted(o["tx_hash"] for o in report["liquidations"])


async def test_start_up_approves_every_spender_the_adapters_declare(deployer, anvil, world, tmp_path, monkeypatch):
    """An adapter that declares the allowance its plans need (Adapter.spenders) has it approved at
    start-up: on a node without eth_simulateV1 the first block's plans are then checked at once,
    none waits for an approval of its own."""
    from keeper.protocols.aave_v3.adapter import AaveV3Adapter
    usdc = world.tokens["USDC"].address
    monkeypatch.setattr(AaveV3Adapter, "spenders", lambda self: {(usdc, self.pool)})
    users = await open_scenario(deployer, world)
    await drop_weth(deployer, world)
    start = await deployer.w3.eth.block_number
    async with RpcProxy(anvil.url) as proxy:
        proxy.on("eth_simulateV1", MethodNotFound())
        keeper = await make_keeper(world, tmp_path, rpc_url=proxy.url)
        try:
            await keeper.settle(30)  # the start-up approval, mined
            await step(keeper)
        finally:
            await keeper.close()
    txs = await keeper_txs(deployer, start)
    assert bytes(txs[0][0]["input"])[:4] == bytes.fromhex("095ea7b3") and txs[0][0]["to"] == usdc  # approve
    assert liquidated_users(txs) == {users[i]: [1] for i in UNHEALTHY}  # all in the first block's step
    report = keeper.recorder.report()
    assert len(report["liquidations"]) == 4 and not any(o["reason_code"] == "approving" for o in report["skipped"])
