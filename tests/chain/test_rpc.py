"""Rpc retries transient failures only: HTTP 503 / rate limits are retried, a revert is not, and a
malformed answer is a clear error."""
from __future__ import annotations

import pytest
from aiohttp import web

from keeper.chain.client import Chain
from keeper.chain.rpc import Rpc
from keeper.errors import RpcError, decode_revert


@pytest.fixture
async def flaky_node(unused_tcp_port):
    state = {"hits": 0, "script": []}

    async def handler(request):
        state["hits"] += 1
        body = await request.json()
        kind = state["script"].pop(0) if state["script"] else "ok"
        if kind == "503":
            return web.Response(status=503)
        if kind == "ratelimit":
            return web.json_response({"jsonrpc": "2.0", "id": body["id"], "error": {"code": -32005, "message": "rate limited"}})
        if kind == "revert":
            return web.json_response({"jsonrpc": "2.0", "id": body["id"], "error": {
                "code": 3, "message": "execution reverted", "data": "0x08c379a0" + "00" * 31 + "20" + "00" * 31 + "02" + "3435" + "00" * 30}})
        if kind == "garbage":
            return web.json_response({"jsonrpc": "2.0", "id": body["id"]})
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": "0x7a69"})

    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", unused_tcp_port)
    await site.start()
    rpc = Rpc(f"http://127.0.0.1:{unused_tcp_port}")
    yield rpc, state
    await rpc.close()
    await runner.cleanup()


async def test_transient_errors_are_retried(flaky_node):
    rpc, state = flaky_node
    state["script"] = ["503", "ratelimit", "ok"]
    assert await Chain(rpc).chain_id() == 31337
    assert state["hits"] == 3


async def test_revert_is_not_retried_and_is_readable(flaky_node):
    rpc, state = flaky_node
    state["script"] = ["revert"]
    with pytest.raises(RpcError) as e:
        await rpc.request("eth_call", [{}, "latest"])
    assert state["hits"] == 1
    assert decode_revert(e.value.data) == "45 HEALTH_FACTOR_NOT_BELOW_THRESHOLD"


async def test_malformed_answer_is_an_error(flaky_node):
    rpc, state = flaky_node
    state["script"] = ["garbage"]
    with pytest.raises(RpcError, match="malformed answer"):
        await rpc.request("eth_chainId", [])


def test_decode_revert_known_forms():
    from eth_utils import keccak
    assert decode_revert("0x" + keccak(text="MustNotLeaveDust()")[:4].hex()) == "MustNotLeaveDust"
    assert decode_revert("0x") == "reverted without reason"
    assert decode_revert("0x4e487b71" + "00" * 31 + "11") == "panic 0x11"
