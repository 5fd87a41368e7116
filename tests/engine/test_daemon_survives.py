"""The daemon's loop (`Keeper.run`) when a block's step raises: here the node (the fault proxy)
answers one eth_feeHistory with an error no retry can help (geth's -32602 invalid argument). The failure is logged with its type and the
daemon goes on: the same borrower is liquidated on a later pass, and later blocks are processed."""
from __future__ import annotations

import asyncio
import copy

import pytest
import structlog.testing
from keeper_devnet.world import open_position

from tests.helpers.keeper import make_keeper
from tests.helpers.rpc_proxy import Error, RpcProxy
from tests.protocols.aave_v3.helpers import drop_weth


@pytest.fixture
async def world(real_world, snapshot):
    yield copy.deepcopy(real_world)


async def until(cond, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_daemon_survives_a_step_that_raises(deployer, world, anvil, tmp_path):
    first, second = world.take_accounts(2)
    await open_position(deployer, world, first, {"WETH": 10}, {"USDC": 19_000})
    await open_position(deployer, world, second, {"WETH": 10}, {"USDC": 16_000})  # HF 1.08 after a 30% drop
    await drop_weth(deployer, world)
    async with RpcProxy(anvil.url) as proxy:
        proxy.on("eth_feeHistory", Error(-32602, "invalid argument 0: hex number with leading zero digits"), times=1)
        world.url = proxy.url
        keeper = await make_keeper(world, tmp_path)
        stop = asyncio.Event()
        with structlog.testing.capture_logs() as logs:
            daemon = asyncio.create_task(keeper.run(stop))
            try:
                confirmed = lambda: [o for o in keeper.recorder.outcomes if o.status == "confirmed"]
                await until(lambda: len(confirmed()) == 1 or daemon.done())
                failed = [e for e in logs if e["event"] == "step.failed"]
                assert len(failed) == 1 and "invalid argument 0" in failed[0]["error"]
                assert logs.index(failed[0]) < next(i for i, e in enumerate(logs) if e["event"] == "liquidation.confirmed")
                assert confirmed()[0].account == first
                # A later block: a further drop makes the second borrower liquidatable.
                await drop_weth(deployer, world, bps=1_500)
                await until(lambda: second in {o.account for o in confirmed()} or daemon.done())
                assert not daemon.done()  # still watching blocks
            finally:
                stop.set()
                await asyncio.wait_for(daemon, 10)
                await keeper.close()
    assert proxy.faults("eth_feeHistory") and len(proxy.calls("eth_feeHistory")) >= 3
