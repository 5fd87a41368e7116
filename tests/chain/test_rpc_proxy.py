"""The fault-injecting proxy (tests/helpers/rpc_proxy.py) does on the wire what its faults say, seen
by a plain HTTP client in front of the session Anvil: forwarding untouched, per-request errors
inside a batch, once-only rules, and the HTTP-level faults."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.helpers.rpc_proxy import (
    Delay,
    Drop,
    Error,
    Garbage,
    Hang,
    Hold,
    HttpStatus,
    MethodNotFound,
    RefuseBatch,
    RpcProxy,
    TooManyResults,
    wider_than,
)


def rq(method: str, params: list | None = None, id_: int = 1) -> dict:
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": params or []}


@pytest.fixture
async def proxy(anvil):
    async with RpcProxy(anvil.url) as p:
        yield p


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
        yield s


async def post(http: aiohttp.ClientSession, proxy: RpcProxy, body) -> tuple[int, str]:
    async with http.post(proxy.url, json=body) as r:
        return r.status, await r.text()


async def test_forwards_untouched_and_records(proxy, http):
    status, text = await post(http, proxy, rq("eth_chainId"))
    assert status == 200 and '"result":"0x7a69"' in text.replace(" ", "")
    assert [(s.method, s.batch, s.fault) for s in proxy.seen] == [("eth_chainId", False, None)] and proxy.posts == 1


async def test_request_faults_in_a_batch_leave_the_others_to_the_node(proxy, http):
    proxy.on("eth_blockNumber", MethodNotFound())
    proxy.on("eth_getLogs", TooManyResults(), when=wider_than(10))
    proxy.on("eth_chainId", Error(-32000, "header not found", data="0x01"), times=1)
    logs = lambda a, b: rq("eth_getLogs", [{"fromBlock": hex(a), "toBlock": hex(b)}], 10 + b)
    body = [rq("eth_chainId", id_=1), rq("eth_blockNumber", id_=2), logs(0, 20), logs(0, 5), rq("eth_chainId", id_=3)]
    async with http.post(proxy.url, json=body) as r:
        out = await r.json()
    assert [a["id"] for a in out] == [1, 2, 30, 15, 3]  # in the order asked
    assert out[0]["error"] == {"code": -32000, "message": "header not found", "data": "0x01"}
    assert out[1]["error"]["code"] == -32601
    assert out[2]["error"] == {"code": -32005, "message": "query returned more than 10000 results"}
    assert isinstance(out[3]["result"], list) and out[4]["result"] == "0x7a69"  # from the node; once-only rule used up
    assert [s.fault for s in proxy.seen] == ["Error", "MethodNotFound", "TooManyResults", None, None]


async def test_http_faults(proxy, http):
    proxy.on("eth_chainId", Garbage(), times=1)
    status, text = await post(http, proxy, rq("eth_chainId"))
    assert status == 200 and text.startswith("<html>")
    proxy.on("eth_chainId", HttpStatus(503), times=1)
    assert (await post(http, proxy, rq("eth_chainId")))[0] == 503
    proxy.on(None, RefuseBatch())
    status, text = await post(http, proxy, [rq("eth_chainId"), rq("eth_blockNumber", id_=2)])
    assert '"code": -32600' in text and "batch requests are not supported" in text
    assert '"0x7a69"' in (await post(http, proxy, rq("eth_chainId")))[1]  # a single request still goes through
    proxy.clear()
    proxy.on("eth_chainId", Drop(), times=1)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(http, proxy, rq("eth_chainId"))
    proxy.on("eth_chainId", Hang(), times=1)
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(proxy.url, json=rq("eth_chainId"), timeout=aiohttp.ClientTimeout(total=0.3)):
            pass
    proxy.on("eth_chainId", Delay(0.05), times=1)
    assert '"0x7a69"' in (await post(http, proxy, rq("eth_chainId")))[1]


async def test_hold_waits_for_the_test(proxy, http, deployer, snapshot):
    held = proxy.on("eth_blockNumber", Hold(), times=1).fault
    before = await deployer.w3.eth.block_number
    answer = asyncio.create_task(post(http, proxy, rq("eth_blockNumber")))
    await asyncio.wait_for(held.arrived.wait(), 5)
    await deployer.rpc("evm_mine", [])  # acts on the node while the request is held
    held.release()
    status, text = await answer
    assert status == 200 and hex(before + 1) in text  # answered by the node after the block was mined
