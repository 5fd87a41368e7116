"""Rpc over a scripted transport: what is retried (dropped connections, timeouts, rate limits,
a transient error inside a batch) and what is not (reverts, malformed answers, a refused batch),
how batches map back to requests, and the round-trip count."""
from __future__ import annotations

import aiohttp
import pytest

from keeper.chain.rpc import HttpTransport, Rpc
from keeper.errors import RpcError, TransientRpcError, decode_revert
from tests.helpers.fake_rpc import FakeTransport, Fault, NoAnswer, revert

CHAIN_ID = "0x7a69"
AAVE_45 = "0x08c379a0" + "00" * 31 + "20" + "00" * 31 + "02" + "3435" + "00" * 30  # Error("45")


def rpc_on(fake: FakeTransport, attempts: int = 5) -> Rpc:
    return Rpc(transport=fake, attempts=attempts, retry_wait=0)


@pytest.mark.parametrize("failure", [
    aiohttp.ClientConnectionError("connection reset"),
    aiohttp.ServerDisconnectedError(),
    TimeoutError(),
    Fault(-32005, "rate limited"),
    Fault(429, "too many requests"),
    Fault(-32603, "internal error"),
])
async def test_transient_failure_is_retried(failure):
    fake = FakeTransport().on("eth_chainId", failure, failure, CHAIN_ID)
    rpc = rpc_on(fake)
    assert await rpc.request("eth_chainId", []) == CHAIN_ID
    assert len(fake.round_trips) == 3 and rpc.requests == 3


async def test_gives_up_after_the_attempts():
    fake = FakeTransport().on("eth_blockNumber", Fault(-32005, "rate limited"))
    with pytest.raises(TransientRpcError, match="eth_blockNumber: -32005 rate limited"):
        await rpc_on(fake, attempts=3).request("eth_blockNumber", [])
    assert len(fake.round_trips) == 3


async def test_revert_is_not_retried_and_keeps_its_data():
    fake = FakeTransport().on("eth_call", Fault(3, "execution reverted", AAVE_45))
    with pytest.raises(RpcError) as e:
        await rpc_on(fake).request("eth_call", [{"to": "0x" + "11" * 20, "data": "0x"}, "latest"])
    assert len(fake.round_trips) == 1
    assert e.value.code == 3 and decode_revert(e.value.data) == "45 HEALTH_FACTOR_NOT_BELOW_THRESHOLD"
    assert not isinstance(e.value, TransientRpcError)


async def test_internal_error_mentioning_a_revert_is_not_retried():
    fake = FakeTransport().on("eth_estimateGas", Fault(-32603, "execution reverted: 45"))
    with pytest.raises(RpcError, match="execution reverted"):
        await rpc_on(fake).request("eth_estimateGas", [{}])
    assert len(fake.round_trips) == 1


@pytest.mark.parametrize("answer", [{"jsonrpc": "2.0", "id": 1}, "not json-rpc", None])
async def test_malformed_answer_is_an_error(answer):
    class Garbage(FakeTransport):
        async def send(self, method, params):
            self.round_trips.append([(method, params)])
            return answer
    fake = Garbage()
    with pytest.raises(RpcError, match="eth_chainId: malformed answer from node"):
        await rpc_on(fake).request("eth_chainId", [])
    assert len(fake.round_trips) == 1


async def test_batch_results_in_request_order_in_one_round_trip():
    fake = FakeTransport().on("eth_chainId", CHAIN_ID).on("eth_blockNumber", "0x10")
    rpc = rpc_on(fake)
    out = await rpc.batch([("eth_blockNumber", []), ("eth_chainId", []), ("eth_blockNumber", [])])
    assert out == ["0x10", CHAIN_ID, "0x10"]
    assert rpc.requests == 1 and len(fake.round_trips[0]) == 3
    assert await rpc.batch([]) == [] and rpc.requests == 1  # nothing to send, nothing sent


async def test_batch_error_raises_or_comes_back_in_place():
    fake = FakeTransport().on("eth_chainId", CHAIN_ID).on("eth_call", revert(bytes.fromhex(AAVE_45[2:])))
    rpc = rpc_on(fake)
    calls = [("eth_chainId", []), ("eth_call", [{}, "latest"])]
    with pytest.raises(RpcError, match="eth_call: execution reverted"):
        await rpc.batch(calls)
    ok, err = await rpc.batch(calls, raise_errors=False)
    assert ok == CHAIN_ID and isinstance(err, RpcError)
    assert decode_revert(err.data) == "45 HEALTH_FACTOR_NOT_BELOW_THRESHOLD"
    assert len(fake.round_trips) == 2  # neither was retried


async def test_transient_error_inside_a_batch_retries_the_whole_batch():
    fake = FakeTransport().on("eth_chainId", CHAIN_ID).on("eth_blockNumber", Fault(-32005, "slow down"), "0x5")
    rpc = rpc_on(fake)
    assert await rpc.batch([("eth_chainId", []), ("eth_blockNumber", [])], raise_errors=False) == [CHAIN_ID, "0x5"]
    assert len(fake.round_trips) == 2 and rpc.requests == 2


async def test_refused_batch_is_named():
    fake = FakeTransport().on("batch", Fault(-32600, "batch requests are not supported"))
    with pytest.raises(RpcError, match="batch: batch requests are not supported"):
        await rpc_on(fake).batch([("eth_chainId", []), ("eth_blockNumber", [])])
    fake.on("batch", [{"jsonrpc": "2.0", "id": 0, "result": CHAIN_ID}])
    with pytest.raises(RpcError, match="batch: malformed answer"):
        await rpc_on(fake).batch([("eth_chainId", []), ("eth_blockNumber", [])])


async def test_close_closes_the_transport():
    fake = FakeTransport()
    await Rpc(transport=fake).close()
    assert fake.closed


async def test_unscripted_request_fails_the_test_loudly():
    with pytest.raises(NoAnswer, match="eth_getBalance"):
        await rpc_on(FakeTransport()).request("eth_getBalance", ["0x" + "00" * 20, "latest"])


def test_rpc_needs_a_url_or_a_transport():
    with pytest.raises(ValueError, match="url or a transport"):
        Rpc()
    rpc = Rpc("http://127.0.0.1:1")
    assert isinstance(rpc.transport, HttpTransport) and rpc.transport.url == rpc.url == "http://127.0.0.1:1"
