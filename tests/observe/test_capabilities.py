"""Each endpoint's capabilities probed once and respected (scripted endpoints, no node): JSON-RPC
batches, eth_simulateV1, a WebSocket answering newHeads (a small local WebSocket server), the widest
eth_getLogs range (learned from the first refusal); after a failover the next endpoint's apply."""
from __future__ import annotations

from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web

from keeper.chain.capabilities import SIMULATE_PROBE, Capabilities, simulate_answer, stated_log_range
from keeper.chain.client import Chain
from keeper.chain.failover import FailoverTransport
from keeper.chain.rpc import Rpc
from keeper.chain.sender import TxRequest
from keeper.engine.simulate import simulate
from tests.helpers.fake_rpc import FakeTransport, Fault

SENDER = "0x" + "11" * 20
POOL = "0x" + "22" * 20
BLOCK = {"number": "0x10", "calls": []}


def endpoint(*heads: Any, simulate_v1: Any = (BLOCK,)) -> FakeTransport:
    """A scripted endpoint on chain 1 (its eth_blockNumber answers in turn, the last repeating)."""
    fake = FakeTransport()
    fake.on("eth_chainId", "0x1").on("eth_blockNumber", *(heads or ("0x10",)))
    fake.on("eth_simulateV1", list(simulate_v1) if isinstance(simulate_v1, tuple) else simulate_v1)
    return fake


def failover(*fakes: FakeTransport, **kw: Any) -> tuple[Chain, FailoverTransport]:
    ft = FailoverTransport([(f"node{i}:8545", f) for i, f in enumerate(fakes)], chain_id=1, **kw)
    return Chain(Rpc(transport=ft, retry_wait=0), log_chunk_blocks=5_000), ft


def probes(logs: list[dict]) -> list[dict]:
    return [e for e in logs if e["event"] == "rpc.capabilities"]


async def test_an_endpoint_with_simulate_v1_is_probed_once_and_logged_in_one_line():
    fake = endpoint()
    chain, _ft = failover(fake)
    assert chain.capabilities.simulate_v1 is None  # not used yet: not probed
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            assert await chain.block_number() == 16
    assert fake.calls_of("eth_simulateV1") == [SIMULATE_PROBE]  # once, not per request
    assert chain.capabilities == Capabilities(batches=True, simulate_v1=True, websocket=False)
    [line] = probes(logs)
    assert (line["endpoint"], line["batches"], line["simulate_v1"], line["websocket"]) == (
        "node0:8545", True, True, False)


@pytest.mark.parametrize("answer", [
    Fault(-32601, "the method eth_simulateV1 does not exist/is not available"),
    Fault(-32602, "invalid params"),
    Fault(-32000, "eth_simulateV1 is not supported on this network"),
])
async def test_an_endpoint_without_simulate_v1_is_not_asked_again_and_simulation_estimates(answer):
    fake = endpoint(simulate_v1=answer)
    fake.on("eth_call", "0x")  # the fallback: eth_call for a revert reason, eth_estimateGas for the gas
    fake.on("eth_estimateGas", hex(90_000))
    chain, _ = failover(fake)
    await chain.block_number()
    assert chain.capabilities.simulate_v1 is False
    sim = await simulate(chain, SENDER, [TxRequest(POOL, b"\x12\x34", what="liquidationCall")])
    assert sim.ok and sim.estimated and sim.gas_used == [90_000]
    sim = await simulate(chain, SENDER, [TxRequest(POOL, b"\x12"), TxRequest(POOL, b"\x34")])
    assert not sim.ok and "no eth_simulateV1" in (sim.reason or "")
    assert len(fake.calls_of("eth_simulateV1")) == 1  # the probe only
    # A caller that asks anyway gets the method-not-found answer from the transport, not the node.
    resp = await chain.rpc.transport.send("eth_simulateV1", SIMULATE_PROBE)
    assert resp["error"]["code"] == -32601 and len(fake.calls_of("eth_simulateV1")) == 1


def test_what_a_simulate_probe_answer_says():
    assert simulate_answer({"result": [BLOCK]}) is True
    assert simulate_answer(Fault(-32601, "Method not found").response()) is False
    assert simulate_answer(Fault(-32005, "rate limit exceeded").response()) is None  # cannot tell
    assert simulate_answer({"result": "0x1"}) is None
    assert simulate_answer("<html>") is None


async def test_after_a_failover_the_next_endpoints_capabilities_apply():
    a = endpoint("0x10", aiohttp.ClientConnectionError("down"))
    b = endpoint("0x10", simulate_v1=Fault(-32601, "Method not found"))
    b.on("batch", Fault(-32600, "batch requests are not supported"))
    chain, ft = failover(a, b, errors=2)
    with structlog.testing.capture_logs() as logs:
        await chain.block_number()
        assert chain.capabilities.simulate_v1 is True and chain.capabilities.batches is True
        await chain.block_number()  # node0 is down: Rpc's retries reach node1
    assert ft.endpoint == "node1:8545"
    assert chain.capabilities.simulate_v1 is False and chain.capabilities.batches is False
    assert [(e["endpoint"], e["simulate_v1"], e["batches"]) for e in probes(logs)] == [
        ("node0:8545", True, True), ("node1:8545", False, False)]
    assert ft.endpoints[0].caps.simulate_v1 is True  # each endpoint keeps its own


# ---- WebSocket ----

async def ws_server(answer: dict | None) -> tuple[web.AppRunner, str, list[str]]:
    """A WebSocket endpoint answering eth_subscribe with ``answer`` (None: no WebSocket at all, HTTP 404)."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        if answer is None:
            return web.Response(status=404)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            req = msg.json()
            seen.append(req["method"])
            if req["method"] == "eth_subscribe":
                await ws.send_json({"jsonrpc": "2.0", "id": req["id"], **answer})
            else:
                await ws.send_json({"jsonrpc": "2.0", "id": req["id"], "result": True})
        return ws

    app = web.Application()
    app.router.add_get("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"ws://127.0.0.1:{runner.addresses[0][1]}/", seen


@pytest.mark.parametrize("answer, found", [
    ({"result": "0xcd0c3e8af590364c09d0fa6a1210faf5"}, True),
    ({"error": {"code": -32601, "message": "notifications not supported"}}, False),
    (None, False),
])
async def test_the_websocket_is_probed_for_new_heads_and_a_refusing_one_is_not_used(answer, found):
    runner, url, seen = await ws_server(answer)
    try:
        chain, ft = failover(endpoint(), ws_urls=[url])
        assert ft.ws_url() == url  # not probed yet: the head source may try it
        await chain.block_number()
    finally:
        await runner.cleanup()
    assert chain.capabilities.websocket is found
    assert ft.ws_url() == (url if found else None)
    if found:
        assert seen == ["eth_subscribe", "eth_unsubscribe"]


async def test_an_endpoint_without_a_websocket_url_has_none():
    runner, url, _ = await ws_server({"result": "0x1"})
    await runner.cleanup()  # nothing listens there any more
    chain, ft = failover(endpoint(), endpoint(), ws_urls=[url])
    await chain.block_number()
    assert chain.capabilities.websocket is False and ft.ws_url() is None
    assert ft.endpoints[1].ws_url is None


# ---- eth_getLogs range ----

def range_limited(limit: int, message: str) -> Any:
    def answer(params: list) -> Any:
        f = params[0]
        if int(f["toBlock"], 16) - int(f["fromBlock"], 16) + 1 > limit:
            return Fault(-32005, message)
        return [{"address": POOL, "topics": [], "data": "0x", "blockNumber": f["fromBlock"], "logIndex": "0x0",
                 "transactionHash": "0x" + "ab" * 32}]
    return answer


def spans(fake: FakeTransport) -> list[int]:
    return [int(p[0]["toBlock"], 16) - int(p[0]["fromBlock"], 16) + 1 for p in fake.calls_of("eth_getLogs")]


@pytest.mark.parametrize("message, learned", [
    ("exceed maximum block range: 2000", 2000),  # the stated limit
    ("block range is too wide", 625),  # no number: halved from 5000 until it passes
    ("query returned more than 10000 results", 625),  # a count of results, not a range: halved
])
async def test_the_log_range_is_learned_from_the_first_refusal_and_kept(message, learned):
    fake = endpoint()
    fake.on("eth_getLogs", range_limited(1000, message) if learned == 625 else range_limited(2000, message))
    chain, ft = failover(fake)
    with structlog.testing.capture_logs() as logs:
        first = await chain.get_logs(POOL, [], 0, 9_999)
    assert chain.capabilities.max_log_range == learned == ft.endpoints[0].caps.max_log_range
    assert [e["blocks"] for e in logs if e["event"] == "rpc.log_range_limit"][-1] == learned
    assert sorted({lg.block_number for lg in first}) == list(range(0, 10_000, learned))
    before = len(fake.calls_of("eth_getLogs"))
    await chain.get_logs(POOL, [], 10_000, 19_999)  # later reads start within the learned range
    assert max(spans(fake)[before:]) == learned and len(spans(fake)) - before == -(-10_000 // learned)


async def test_a_plain_endpoint_keeps_what_its_chain_learned():
    fake = FakeTransport().on("eth_getLogs", range_limited(500, "exceed maximum block range: 500"))
    chain = Chain(Rpc(transport=fake, retry_wait=0), log_chunk_blocks=5_000)
    await chain.get_logs(POOL, [], 0, 999)
    assert chain.capabilities.max_log_range == 500 and chain.capabilities.simulate_v1 is None


@pytest.mark.parametrize("message, blocks", [
    ("exceed maximum block range: 2000", 2000),
    ("query returned more than 10000 results. Try with this block range [0x1E8480, 0x1E8CAB].", 2092),
    ("Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range", 2000),
    ("eth_getLogs and eth_newFilter are limited to a 10,000 blocks range", 10_000),
    ("range too large, max range: 1000", 1000),
    ("query returned more than 10000 results", None),
    ("block range is too wide", None),
    ("Block range limit exceeded", None),
])
def test_a_providers_stated_log_range_is_read_from_its_answer(message, blocks):
    assert stated_log_range(message) == blocks
