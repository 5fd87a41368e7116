"""eth_getLogs against a provider with a range limit (Infura's -32005 "query returned more than
10000 results", played by the fault proxy in front of Anvil): the keeper halves its block chunks
until the provider answers, and finds every log and every borrower exactly as on the node itself."""
from __future__ import annotations

import copy

import pytest

from keeper.chain.client import Chain
from keeper.chain.rpc import Rpc
from tests.helpers.keeper import make_keeper, run_and_close
from tests.helpers.rpc_proxy import RpcProxy, TooManyResults, wider_than
from tests.protocols.aave_v3.helpers import drop_weth, open_scenario

LIMIT = 10  # blocks the "provider" serves per eth_getLogs


@pytest.fixture
async def world(real_world, snapshot):
    yield copy.deepcopy(real_world)


@pytest.fixture
async def proxy(anvil):
    async with RpcProxy(anvil.url) as p:
        yield p


def spans(params: list) -> list[int]:
    return [int(p[0]["toBlock"], 16) - int(p[0]["fromBlock"], 16) + 1 for p in params]


async def test_chunks_are_halved_until_the_provider_answers(deployer, world, proxy):
    await open_scenario(deployer, world)  # logs spread over many more blocks
    proxy.on("eth_getLogs", TooManyResults(), when=wider_than(LIMIT))
    head = await deployer.w3.eth.block_number
    assert head > 4 * LIMIT  # the world's history needs several chunks even at the limit
    addresses = [t.address for t in world.tokens.values()] + [world.aave.pool]
    expected = await deployer.rpc("eth_getLogs", [{"address": addresses, "fromBlock": "0x0", "toBlock": hex(head)}])
    assert len(expected) > 80
    rpc = Rpc(proxy.url, attempts=2)
    try:
        logs = await Chain(rpc, log_chunk_blocks=5_000).get_logs(addresses, [], 0, head)
    finally:
        await rpc.close()
    assert [(lg.block_number, lg.log_index, lg.tx_hash) for lg in logs] == [
        (int(r["blockNumber"], 16), int(r["logIndex"], 16), r["transactionHash"]) for r in expected]
    refused = [(p[0]["fromBlock"], p[0]["toBlock"]) for p in (s.params for s in proxy.faults("eth_getLogs"))]
    answered = [s.params for s in proxy.seen if s.method == "eth_getLogs" and not s.fault]
    assert refused and max(spans(answered)) <= LIMIT
    # A refusal is not retried as a transient error: each refused range was asked for once.
    assert len(refused) == len(set(refused))

async def test_keeper_discovers_and_liquidates_through_a_range_limited_provider(deployer, world, proxy, tmp_path):
    await open_scenario(deployer, world)
    await drop_weth(deployer, world)
    proxy.on("eth_getLogs", TooManyResults(), when=wider_than(LIMIT))
    world.url = proxy.url
    keeper = await run_and_close(await make_keeper(world, tmp_path))
    report = keeper.recorder.report()
    assert proxy.faults("eth_getLogs")  # the keeper did meet the limit
    assert report["failed"] == [] and report["reverted"] == []
    assert len(report["liquidations"]) == 4  # every unhealthy borrower of the scenario, found in the logs
