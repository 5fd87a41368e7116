"""Rpc.coalescing: reads that concurrent tasks begin together go to the node as one JSON-RPC batch
(what the block loop does with its independent reads each block), each caller getting its own
answer or error; batches are kept within the request limits and a caller's requests never split.
Node-free, on the scripted FakeTransport. Also: aggregate3 encoded and decoded by hand, byte for byte
as eth_abi does."""
from __future__ import annotations

import asyncio
import random

import pytest
from eth_abi import encode

from keeper.chain.limits import RequestLimits
from keeper.chain.multicall import _AGGREGATE3, Call, CallFailed, decode_aggregate3, encode_aggregate3
from keeper.errors import RpcError
from tests.helpers.fake_rpc import Fault, fake_chain


async def test_concurrent_reads_go_in_one_batch_each_with_its_own_answer_or_error():
    chain, fake = fake_chain()
    fake.on("eth_blockNumber", "0x10").on("eth_chainId", "0x1").on("eth_getBalance", Fault(-32000, "no such account"))
    fake.on("eth_getTransactionCount", "0x7")

    async def balance() -> str:
        with pytest.raises(RpcError, match="no such account"):
            await chain.rpc.request("eth_getBalance", ["0x" + "11" * 20, "latest"])
        return "refused"

    with chain.rpc.coalescing(chain.limits):
        out = await asyncio.gather(chain.block_number(), chain.chain_id(), balance(),
                                   chain.rpc.batch([("eth_getTransactionCount", ["0x" + "11" * 20, "latest"]),
                                                    ("eth_getTransactionCount", ["0x" + "11" * 20, "pending"])]))
    assert out == [16, 1, "refused", ["0x7", "0x7"]]
    assert len(fake.round_trips) == 1 and [m for m, _ in fake.round_trips[0]] == [
        "eth_blockNumber", "eth_chainId", "eth_getBalance", "eth_getTransactionCount", "eth_getTransactionCount"]
    # outside it: each its own round trip, a lone request a plain one (not a batch of one)
    await asyncio.gather(chain.block_number(), chain.chain_id())
    assert len(fake.round_trips) == 3


async def test_a_lone_request_inside_goes_as_itself_and_later_requests_of_a_task_still_coalesce():
    chain, fake = fake_chain()
    fake.on("eth_blockNumber", "0x10").on("eth_chainId", "0x1")

    async def two_steps() -> int:
        await chain.block_number()  # alone in its turn
        return await chain.chain_id()

    with chain.rpc.coalescing(chain.limits):
        assert await asyncio.gather(two_steps(), chain.block_number()) == [1, 16]
    assert [[m for m, _ in rt] for rt in fake.round_trips] == [["eth_blockNumber", "eth_blockNumber"],
                                                                ["eth_chainId"]]


async def test_the_batch_stays_within_the_limits_and_a_callers_requests_are_not_split():
    chain, fake = fake_chain()
    fake.on("eth_getTransactionCount", "0x1")
    acct = "0x" + "22" * 20
    three = [("eth_getTransactionCount", [acct, t]) for t in ("latest", "pending", "earliest")]
    with chain.rpc.coalescing(RequestLimits(1 << 20, 4)):
        out = await asyncio.gather(chain.rpc.batch(three), chain.rpc.batch(three), chain.rpc.batch(three[:1]))
    assert out == [["0x1"] * 3, ["0x1"] * 3, ["0x1"]]
    assert [len(rt) for rt in fake.round_trips] == [3, 4]  # 3 + 3 > 4: the second caller's go with the third's


def test_aggregate3_by_hand_is_eth_abis_encoding_and_decoding():
    rnd = random.Random(7)
    for _ in range(200):
        calls = [Call("0x" + rnd.randbytes(20).hex(), rnd.randbytes(rnd.choice([0, 1, 4, 31, 32, 33, 68])))
                 for _ in range(rnd.randint(0, 9))]
        for allow in (True, False):
            assert encode_aggregate3(calls, allow_failure=allow) == _AGGREGATE3 + encode(
                ["(address,bool,bytes)[]"], [[(c.target, allow, c.data) for c in calls]])
        answers = [(rnd.random() < 0.8, rnd.randbytes(rnd.choice([0, 1, 32, 65]))) for _ in calls]
        out = decode_aggregate3(calls, encode(["(bool,bytes)[]"], [answers]))
        assert [(not isinstance(o, CallFailed), o if not isinstance(o, CallFailed) else o.args[0]) for o in out] \
            == answers
    with pytest.raises(ValueError, match="not an address"):
        encode_aggregate3([Call("0x1234", b"")])
    with pytest.raises(Exception):  # noqa: B017 - a truncated answer is refused (eth_abi says how)
        decode_aggregate3([Call("0x" + "11" * 20, b"")], encode(["(bool,bytes)[]"], [[(True, b"x" * 40)]])[:-40])
