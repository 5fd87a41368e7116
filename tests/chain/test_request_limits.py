"""Requests that fit: batches and multicalls are split so no POST exceeds the request limits, and a
node's "too large" answer (Anvil's -32600, HTTP 413, geth's "batch too large", -32005 wordings)
lowers the limits and the step still succeeds. Against a scripted node that enforces its own
limits and answers aggregate3 by echoing each call's calldata."""
from __future__ import annotations

import json
import random

import pytest
from aiohttp import web
from eth_abi import decode, encode
from web3.providers.rpc import AsyncHTTPProvider

from keeper.chain.client import Chain
from keeper.chain.limits import (
    RequestLimits,
    batch_refusal,
    batch_size,
    is_too_large,
    pack,
    request_size,
    too_large_message,
)
from keeper.chain.multicall import MULTICALL3, Call
from keeper.chain.rpc import Rpc
from keeper.errors import RequestTooLarge, RpcError

KIB = 1024


class ScriptedNode:
    """Refuses any POST over ``max_bytes`` in the given style, and batches over ``max_batch``
    entries the way geth does."""

    def __init__(self, style: str, max_bytes: int | None = None, max_batch: int | None = None):
        self.style, self.max_bytes, self.max_batch = style, max_bytes, max_batch
        self.sizes: list[int] = []  # every POST body received
        self.refused: list[int] = []

    def answer(self, req: dict) -> dict:
        if req["method"] == "eth_call" and req["params"][0]["to"].lower() == MULTICALL3.lower():
            (calls,) = decode(["(address,bool,bytes)[]"], bytes.fromhex(req["params"][0]["data"][10:]))
            out = encode(["(bool,bytes)[]"], [[(True, data) for _, _, data in calls]])
            return {"jsonrpc": "2.0", "id": req["id"], "result": "0x" + out.hex()}
        if req["method"] == "test_echo":
            return {"jsonrpc": "2.0", "id": req["id"], "result": req["params"][0]}
        return {"jsonrpc": "2.0", "id": req["id"], "result": "0x7a69"}

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.sizes.append(len(body))
        payload = json.loads(body)
        if self.max_bytes is not None and len(body) > self.max_bytes:
            self.refused.append(len(body))
            if self.style == "413":
                return web.Response(status=413, text="Request Entity Too Large")
            if self.style == "anvil":
                return web.json_response({"jsonrpc": "2.0", "id": None,
                                          "error": {"code": -32600, "message": "Invalid request"}})
            if self.style == "32005":
                return web.json_response({"jsonrpc": "2.0", "id": None,
                                          "error": {"code": -32005, "message": "request entity too large"}})
        if isinstance(payload, list) and self.max_batch is not None and len(payload) > self.max_batch:
            self.refused.append(len(body))
            return web.json_response([{"jsonrpc": "2.0", "id": payload[0]["id"],
                                       "error": {"code": -32600, "message": "batch too large"}}])
        if isinstance(payload, list):
            return web.json_response([self.answer(r) for r in payload])
        return web.json_response(self.answer(payload))


@pytest.fixture
async def scripted(unused_tcp_port):
    runners, rpcs = [], []

    async def start(style: str, **kw) -> tuple[ScriptedNode, Rpc]:
        node = ScriptedNode(style, **kw)
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/", node.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
        runners.append(runner)
        rpc = Rpc(f"http://127.0.0.1:{unused_tcp_port}")
        rpcs.append(rpc)
        return node, rpc
    yield start
    for rpc in rpcs:
        await rpc.close()
    for r in runners:
        await r.cleanup()


def calls(n: int, seed: int = 1) -> list[Call]:
    rnd = random.Random(seed)
    return [Call("0x" + f"{i + 1:040x}", rnd.randbytes(rnd.choice([4, 36, 68, 100, 260]))) for i in range(n)]


def test_a_too_large_answer_with_a_rate_limit_code_is_not_retried():
    from keeper.chain.rpc import _check
    from keeper.errors import TransientRpcError
    with pytest.raises(RpcError) as e:
        _check("eth_call", {"jsonrpc": "2.0", "id": 1, "error": {"code": -32005, "message": "request entity too large"}})
    assert not isinstance(e.value, TransientRpcError)
    with pytest.raises(TransientRpcError):
        _check("eth_call", {"jsonrpc": "2.0", "id": 1, "error": {"code": -32005, "message": "rate limited"}})


def test_request_sizes_match_what_web3_sends():
    provider = AsyncHTTPProvider("http://127.0.0.1:1")
    reqs = [("eth_call", [{"to": MULTICALL3, "data": "0x" + "ab" * n}, "latest"]) for n in (0, 1, 500)]
    reqs += [("eth_getLogs", [{"address": MULTICALL3, "topics": [None], "fromBlock": "0x1", "toBlock": "0x10"}])]
    for _ in range(3):  # ids grow as the provider is used
        sent = provider.encode_batch_rpc_request(reqs)
        estimate = batch_size([request_size(m, p) for m, p in reqs])
        assert 0 <= estimate - len(sent) <= 4 * 16  # an upper bound, by at most the id digits reserved


def test_packing_respects_bytes_and_count():
    rnd = random.Random(7)
    sizes = [rnd.randint(50, 3000) for _ in range(2000)]
    limits = RequestLimits(max_bytes=16 * KIB, max_batch=37)
    groups = pack(sizes, limits)
    assert [i for g in groups for i in g] == list(range(2000))
    assert all(limits.fits([sizes[i] for i in g]) for g in groups)
    assert len(groups) < 2 * (batch_size(sizes) // (16 * KIB) + 2000 // 37 + 1)  # greedy, not one by one


@pytest.mark.parametrize("message, code, size, too_large, by_count", [
    ("batch: Invalid request", -32600, 2_200_000, True, False),  # Anvil above ~2 MiB
    ("eth_call: Invalid request", -32600, 2_000, False, False),  # a small malformed request is not size
    ("batch: malformed answer from node: [{'error': {'code': -32600, 'message': 'batch too large'}}]",
     None, 50_000, True, True),  # geth's batch limit
    ("eth_call: response too large", -32003, 100, True, False),  # geth's response size limit
    ("eth_call: Response size is larger than 150MB limit", -32000, 100, True, False),
    ("batch: request entity too large", -32005, 100, True, False),
    ("batch: exceeded the maximum batch size", -32000, 100, True, True),
    ("eth_getLogs: query returned more than 10000 results", -32005, 100, False, False),
    ("eth_getLogs: block range is too large", -32000, 100, False, False),
    ("eth_call: daily request count exceeded, request rate limited", -32005, 100, False, False),
    ("eth_call: execution reverted", 3, 10**7, False, False),
])
def test_too_large_answers_are_recognised(message, code, size, too_large, by_count):
    e = RpcError(message, code=code)
    assert is_too_large(e, size) is too_large
    if too_large:
        assert batch_refusal(e) is by_count
    assert not too_large_message("rate limited")


@pytest.mark.parametrize("style", ["anvil", "413", "32005"])
async def test_a_too_large_answer_shrinks_the_next_requests(scripted, style):
    node, rpc = await scripted(style, max_bytes=96 * KIB)
    chain = Chain(rpc, max_request_bytes=512 * KIB, max_batch=100)
    cs = calls(2500)
    out = await chain.multicall(cs)
    assert out == [c.data for c in cs]
    assert node.refused  # the node did refuse the first ones...
    assert chain.limits.max_bytes <= 96 * KIB  # ...and the limit came down under the node's
    # Halving from 512 KiB to under 96 KiB: three rounds, at most one refusal per POST in flight
    # (4) each, however many requests the step has.
    assert len(node.refused) <= 3 * 4
    # The next step sends nothing over the node's limit.
    node.sizes.clear()
    node.refused.clear()
    assert await chain.multicall(cs[::-1]) == [c.data for c in cs[::-1]]
    assert node.refused == [] and max(node.sizes) <= chain.limits.max_bytes


async def test_batches_stay_under_the_configured_limits(scripted):
    node, rpc = await scripted("anvil")
    chain = Chain(rpc, max_request_bytes=64 * KIB, max_batch=50)
    payloads = ["0x" + "cd" * random.Random(i).randint(0, 4000) for i in range(700)]
    out = await chain.batch([("test_echo", [p]) for p in payloads])
    assert out == payloads
    assert max(node.sizes) <= 64 * KIB
    assert len(node.sizes) >= 700 // 50
    cs = calls(2500, seed=3)
    node.sizes.clear()
    assert await chain.multicall(cs) == [c.data for c in cs]
    assert max(node.sizes) <= 64 * KIB
    assert max(node.sizes) > 48 * KIB  # chunks are filled close to the limit, not tiny


async def test_a_batch_count_limit_lowers_max_batch(scripted):
    node, rpc = await scripted("anvil", max_batch=30)
    chain = Chain(rpc, max_batch=100)
    out = await chain.batch([("test_echo", [hex(i)]) for i in range(250)])
    assert out == [hex(i) for i in range(250)]
    node.refused.clear()
    await chain.batch([("test_echo", [hex(i)]) for i in range(250)])
    assert node.refused == []
    assert chain.limits.max_batch <= 30
    assert chain.limits.max_bytes == 1 << 20  # the bytes were not the problem


async def test_what_cannot_be_split_is_a_clear_error(scripted):
    _node, rpc = await scripted("413", max_bytes=20 * KIB)
    chain = Chain(rpc, max_request_bytes=64 * KIB)
    with pytest.raises(RequestTooLarge, match="over the request limit of 65536 bytes"):
        await chain.batch([("test_echo", ["0x" + "00" * 40_000])])
    with pytest.raises(RequestTooLarge, match="does not fit in one request of 65536 bytes"):
        await chain.multicall([Call(MULTICALL3, b"\x01" * 40_000)])
    with pytest.raises(RequestTooLarge, match="refuses one request of .* bytes as too large"):
        await chain.batch([("test_echo", ["0x" + "00" * 15_000])])
    # Its neighbours, small enough, still get their answers when errors are returned, not raised.
    res = await chain.batch([("test_echo", ["0x01"]), ("test_echo", ["0x" + "00" * 15_000])], raise_errors=False)
    assert res[0] == "0x01" and isinstance(res[1], RequestTooLarge)


async def test_a_small_invalid_request_is_not_taken_for_size(scripted):
    _node, rpc = await scripted("anvil", max_bytes=20 * KIB)
    chain = Chain(rpc)
    with pytest.raises(RpcError, match="Invalid request") as e:
        await chain.batch([("test_echo", ["0x" + "00" * 15_000])])
    assert not isinstance(e.value, RequestTooLarge)
    assert chain.limits.max_bytes == 1 << 20
