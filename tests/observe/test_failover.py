"""Several RPC endpoints against the session Anvil: the primary (the fault proxy in front of Anvil)
is stopped mid-run and the keeper goes on through the second URL without losing a block step, then
liquidates what becomes liquidatable; a primary that refuses batches or limits eth_getLogs is used
as it is, without a failover and without a failed step."""
from __future__ import annotations

import copy

import pytest
import structlog

from keeper.chain.counting import endpoint_label
from keeper.engine.record import Status
from tests.helpers.rpc_proxy import RefuseBatch, RpcProxy, TooManyResults, wider_than
from tests.observe.helpers import observed_keeper, running, until
from tests.protocols.aave_v3.helpers import drop_weth, open_scenario


@pytest.fixture
async def world(real_world, snapshot):
    yield copy.deepcopy(real_world)


async def test_primary_stopped_mid_run_the_keeper_goes_on_with_the_second(anvil, deployer, world, tmp_path):
    await open_scenario(deployer, world)
    proxy = await RpcProxy(anvil.url).start()
    try:
        world.url = proxy.url
        keeper = await observed_keeper(world, tmp_path, chain_extra=f'rpc_urls = ["{anvil.url}"]')
        try:
            with structlog.testing.capture_logs() as logs:
                async with running(keeper):
                    await until(lambda: keeper.telemetry.blocks_processed >= 1, what="a first block")
                    assert keeper.telemetry.rpc_active == endpoint_label(proxy.url)
                    await proxy.stop()  # the primary is gone: connections refused from now on
                    await drop_weth(deployer, world)
                    seconds = await until(lambda: keeper.telemetry.rpc_active == endpoint_label(anvil.url),
                                          what="the switch")
                    confirmed = lambda: [o for o in keeper.recorder.outcomes if o.status is Status.CONFIRMED]  # noqa: E731
                    await until(lambda: len(confirmed()) == 4, what="four liquidations")
        finally:
            await keeper.close()
    finally:
        await proxy.stop()
    print(f"switched to the second endpoint {seconds:.2f}s after the primary stopped")
    switches = [e for e in logs if e["event"] == "rpc.failover"]
    assert len(switches) == 1 and switches[0]["to_endpoint"] == endpoint_label(anvil.url)
    assert keeper.telemetry.step_failures == 0  # the switch happened within a step's retries
    assert [o.tx_hash is not None for o in confirmed()] == [True] * 4
    errors = keeper.telemetry.rpc_errors
    assert sum(n for (ep, _), n in errors.items() if ep == endpoint_label(proxy.url)) >= 3
    assert sum(n for (ep, _), n in errors.items() if ep == endpoint_label(anvil.url)) == 0


async def test_a_primary_without_batches_and_with_a_log_range_limit_is_used_as_it_is(anvil, deployer, world,
                                                                                     tmp_path):
    await open_scenario(deployer, world)
    await drop_weth(deployer, world)
    async with RpcProxy(anvil.url) as proxy:
        proxy.on(None, RefuseBatch())
        proxy.on("eth_getLogs", TooManyResults(), when=wider_than(10))
        world.url = proxy.url
        with structlog.testing.capture_logs() as logs:
            keeper = await observed_keeper(world, tmp_path, chain_extra=f'rpc_urls = ["{anvil.url}"]')
            try:
                async with running(keeper):
                    confirmed = lambda: [o for o in keeper.recorder.outcomes if o.status is Status.CONFIRMED]  # noqa: E731
                    await until(lambda: len(confirmed()) == 4, what="four liquidations")
            finally:
                await keeper.close()
        batches = [s for s in proxy.seen if s.batch]
        # One probe (a batch of two eth_chainId), refused; every later request went one by one.
        assert [(s.method, s.fault) for s in batches] == [("eth_chainId", "RefuseBatch")] * 2
        assert proxy.faults("eth_getLogs")
    assert [e["endpoint"] for e in logs if e["event"] == "rpc.no_batches"] == [endpoint_label(proxy.url)]
    assert not [e for e in logs if e["event"] in ("rpc.failover", "step.failed")]
    assert keeper.telemetry.rpc_active == endpoint_label(proxy.url)
