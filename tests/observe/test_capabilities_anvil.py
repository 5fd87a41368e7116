"""Capabilities and rejected answers through the fault proxy in front of the session Anvil: an
endpoint without eth_simulateV1 is probed once, logged once and never asked again, and the keeper
still liquidates (with eth_estimateGas); an endpoint whose eth_blockNumber goes back is not believed,
no block is processed twice and the keeper goes on to liquidate."""
from __future__ import annotations

import copy

import pytest
import structlog
from keeper_devnet.protocols.aave_v3.common import account_data

from keeper.chain.capabilities import SIMULATE_PROBE
from keeper.chain.counting import endpoint_label
from keeper.engine.record import Status
from tests.helpers.keeper import make_keeper, run_and_close
from tests.helpers.rpc_proxy import MethodNotFound, Result, RpcProxy
from tests.observe.helpers import observed_keeper, running, scrape, until
from tests.protocols.aave_v3.helpers import drop_weth, open_scenario


@pytest.fixture
async def world(real_world, snapshot):
    yield copy.deepcopy(real_world)


async def test_an_endpoint_without_simulate_v1_is_probed_once_and_the_keeper_still_liquidates(
        anvil, deployer, world, tmp_path):
    users = await open_scenario(deployer, world)
    await drop_weth(deployer, world)
    unhealthy = {u for u in users if (await account_data(deployer, world.aave, u))[5] < 10**18}
    async with RpcProxy(anvil.url) as proxy:
        proxy.on("eth_simulateV1", MethodNotFound())
        world.url = proxy.url
        with structlog.testing.capture_logs() as logs:
            keeper = await run_and_close(await make_keeper(world, tmp_path), until_quiet=True)
        assert proxy.calls("eth_simulateV1") == [SIMULATE_PROBE]  # the probe, never a plan
        assert len(proxy.calls("eth_estimateGas")) >= len(unhealthy)
    [probe] = [e for e in logs if e["event"] == "rpc.capabilities"]
    assert (probe["endpoint"], probe["simulate_v1"], probe["batches"]) == (endpoint_label(proxy.url), False, True)
    assert keeper.chain.capabilities.simulate_v1 is False
    report = keeper.recorder.report()
    assert report["failed"] == [] and report["reverted"] == []
    assert sorted(o["account"] for o in report["liquidations"]) == sorted(unhealthy)
    for o in report["liquidations"]:
        assert (await deployer.w3.eth.get_transaction_receipt(o["tx_hash"]))["status"] == 1


async def test_a_head_that_goes_back_is_not_processed_again_and_the_keeper_goes_on(anvil, deployer, world,
                                                                                  tmp_path):
    await open_scenario(deployer, world)
    async with RpcProxy(anvil.url) as proxy:
        world.url = proxy.url
        keeper = await observed_keeper(world, tmp_path)
        steps: list[int] = []
        step = keeper.step

        async def recorded(block: int) -> list:
            steps.append(block)
            return await step(block)
        keeper.step = recorded  # type: ignore[method-assign]
        try:
            with structlog.testing.capture_logs() as logs:
                async with running(keeper):
                    await until(lambda: keeper.telemetry.blocks_processed >= 1, what="a first block")
                    head = keeper.last_block
                    assert head >= 5
                    backwards = proxy.on("eth_blockNumber", Result(hex(head - 5)), times=8)
                    await until(lambda: backwards.used == 8, what="eight old heads answered")
                    await drop_weth(deployer, world)
                    confirmed = lambda: [o for o in keeper.recorder.outcomes if o.status is Status.CONFIRMED]  # noqa: E731
                    await until(lambda: len(confirmed()) == 4, what="four liquidations")
                    metrics = await scrape(keeper)
        finally:
            await keeper.close()
    label = endpoint_label(proxy.url)
    assert steps == sorted(set(steps)) and steps[0] <= head < steps[-1]  # each block once, in order
    reasons = {e["reason"] for e in logs if e["event"] == "rpc.rejected"}
    assert reasons == {f"head {head - 5} is below head {head} it gave before"}
    assert keeper.telemetry.rpc_rejects[(label, "head_backwards")] == 8
    assert metrics[("keeper_rpc_rejected_total", (("endpoint", label), ("kind", "head_backwards")))] == 8
    assert not [e for e in logs if e["event"] in ("step.failed", "heads.behind")]
