"""Inconsistent answers rejected with a logged reason and never handed on (scripted endpoints, no
node): a block number that is not a hex quantity, a head that goes back on the same endpoint or lags
on the next one after a failover, a block of another number than the one asked, a receipt of another
transaction; each counted per endpoint and kind in /metrics; a head source never hands out an old
head again."""
from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
import structlog

from keeper.chain.client import Chain
from keeper.chain.failover import FailoverTransport
from keeper.chain.heads import Head, HeadSource
from keeper.chain.rpc import Rpc
from keeper.errors import TransientRpcError
from keeper.observe.metrics import exposition, registry_for
from keeper.observe.telemetry import Telemetry
from tests.helpers.fake_rpc import FakeTransport

TX = "0x" + "ab" * 32
OTHER_TX = "0x" + "cd" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def endpoint(*heads: Any, blocks: Any = None) -> FakeTransport:
    """An endpoint answering ``heads`` in turn; ``blocks`` answers eth_getBlockByNumber (by default
    the endpoint still has every block asked)."""
    fake = FakeTransport()
    fake.on("eth_chainId", "0x1").on("eth_simulateV1", []).on("eth_blockNumber", *heads)
    fake.on("eth_getBlockByNumber", blocks or (lambda p: {"number": p[0], "hash": "0x" + "11" * 32}))
    return fake


def failover(*fakes: FakeTransport, **kw: Any) -> tuple[Chain, FailoverTransport, Telemetry, Clock]:
    telemetry, clock = Telemetry(), Clock()
    ft = FailoverTransport([(f"node{i}:8545", f) for i, f in enumerate(fakes)], chain_id=1, clock=clock,
                           on_reject=telemetry.rpc_rejected, **kw)
    return Chain(Rpc(transport=ft, retry_wait=0, attempts=2)), ft, telemetry, clock


def rejected(logs: list[dict]) -> list[tuple[str, str]]:
    return [(e["kind"], e["reason"]) for e in logs if e["event"] == "rpc.rejected"]


@pytest.mark.parametrize("answer", ["16", 16, "0xzz", "0x", "-0x10", None])
async def test_a_block_number_that_is_not_a_hex_quantity_is_rejected(answer):
    chain, _ft, telemetry, _ = failover(endpoint(answer))
    with structlog.testing.capture_logs() as logs, pytest.raises(TransientRpcError, match="not a hex quantity"):
        await chain.block_number()
    assert [k for k, _ in rejected(logs)] == ["not_quantity"] * 2  # each of Rpc's two attempts
    assert telemetry.rpc_rejects[("node0:8545", "not_quantity")] == 2


async def test_a_head_that_goes_back_is_rejected_until_the_endpoint_is_past_it():
    fake = endpoint("0x64", "0x5f", "0x5f", "0x65")  # 100, then 95 (twice), then 101
    chain, _ft, telemetry, _ = failover(fake)
    assert await chain.block_number() == 100
    with structlog.testing.capture_logs() as logs, pytest.raises(TransientRpcError, match="below head 100"):
        await chain.block_number()
    assert rejected(logs) == [("head_backwards", "head 95 is below head 100 it gave before")] * 2
    assert await chain.block_number() == 101
    assert telemetry.rpc_rejects == {("node0:8545", "head_backwards"): 2}
    text = exposition(registry_for(telemetry)).decode()
    assert 'keeper_rpc_rejected_total{endpoint="node0:8545",kind="head_backwards"} 2.0' in text


async def test_a_rollback_the_node_shows_is_believed_at_once():
    """A lower head with the earlier block gone from the node (a reorg to a shorter chain, an
    evm_revert): the node's own chain, taken at once and logged, not rejected."""
    fake = FakeTransport()
    fake.on("eth_chainId", "0x1").on("eth_simulateV1", []).on("eth_blockNumber", "0x64", "0x5f", "0x60")
    fake.on("eth_getBlockByNumber", lambda p: None if int(p[0], 16) > 0x5f else {"number": p[0], "hash": "0x" + "11" * 32})
    chain, _, telemetry, _ = failover(fake)
    assert await chain.block_number() == 100
    with structlog.testing.capture_logs() as logs:
        assert await chain.block_number() == 95
        assert await chain.block_number() == 96
    assert rejected(logs) == [] and not telemetry.rpc_rejects
    assert [(e["head"], e["before"]) for e in logs if e["event"] == "rpc.rollback"] == [(95, 100)]


async def test_an_endpoint_that_stays_below_its_old_head_is_believed_again_after_stale_seconds():
    fake = endpoint("0x64", "0x50")  # 100, then 80 from then on (a resynced node)
    chain, _ft, _, clock = failover(fake, stale_seconds=30)
    await chain.block_number()
    with pytest.raises(TransientRpcError):
        await chain.block_number()
    clock.now += 31
    with structlog.testing.capture_logs() as logs:
        assert await chain.block_number() == 80
    assert [e["before"] for e in logs if e["event"] == "rpc.head_reset"] == [100]


async def test_after_a_failover_a_lagging_endpoint_is_not_taken_for_a_new_head():
    a = endpoint("0x64", aiohttp.ClientConnectionError("down"))  # 100, then gone
    b_head = [95]
    b = endpoint(lambda p: hex(b_head[0]))
    chain, ft, telemetry, _ = failover(a, b, errors=1, lag_blocks=3)
    assert await chain.block_number() == 100
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(TransientRpcError, match="5 blocks behind head 100 from node0:8545"):
            await chain.block_number()  # node0 fails: node1 answers 95
        with pytest.raises(TransientRpcError):
            await chain.block_number()
        b_head[0] = 98
        assert await chain.block_number() == 98  # within lag_blocks of 100: handed on (not a new head)
        b_head[0] = 101
        assert await chain.block_number() == 101
    assert ft.endpoint == "node1:8545"
    assert [k for k, _ in rejected(logs)] == ["head_behind"]  # logged once while it lags
    assert telemetry.rpc_rejects[("node1:8545", "head_behind")] == 3  # every one counted
    assert ft.endpoints[1].failures == 0  # a lag is not held against the endpoint as an error


async def test_a_block_of_another_number_than_asked_is_rejected():
    fake = endpoint("0x10", blocks=lambda p: {"number": "0xb", "hash": "0x" + "11" * 32})
    chain, _, telemetry, _ = failover(fake)
    with structlog.testing.capture_logs() as logs, pytest.raises(TransientRpcError, match="block 16 asked"):
        await chain.get_block(16)
    assert rejected(logs)[0] == ("mismatch", "block 16 asked, block '0xb' answered")
    with pytest.raises(TransientRpcError, match="block 16 asked"):  # in a batch too
        await chain.batch([("eth_getBlockByNumber", ["0x10", False])])
    assert telemetry.rpc_rejects[("node0:8545", "mismatch")] == 4


async def test_a_block_asked_by_number_that_matches_is_handed_on():
    fake = endpoint("0x10", blocks=lambda p: {"number": p[0], "hash": "0x" + "11" * 32} if p[0] != "latest"
                    else {"number": "0x10", "hash": "0x" + "22" * 32})
    chain, _, _, _ = failover(fake)
    assert (await chain.get_block(16))["number"] == "0x10"
    assert (await chain.get_block("latest"))["hash"] == "0x" + "22" * 32


async def test_a_receipt_of_another_transaction_is_rejected():
    fake = endpoint("0x10")
    fake.on("eth_getTransactionReceipt", {"transactionHash": OTHER_TX, "status": "0x1"},
            {"transactionHash": TX.upper().replace("0X", "0x"), "status": "0x1"})
    chain, _, _, _ = failover(fake)
    with structlog.testing.capture_logs() as logs:
        receipt = await chain.rpc.request("eth_getTransactionReceipt", [TX])  # Rpc's retry gets the right one
    assert receipt["status"] == "0x1"
    assert rejected(logs) == [("mismatch", f"transactionHash {TX} asked, {OTHER_TX!r} answered")]


async def test_the_head_source_never_hands_out_an_older_head():
    answers = iter([10, 12, 7, 12, 13])
    done = asyncio.Event()

    async def block_number() -> int:
        try:
            return next(answers)
        except StopIteration:
            done.set()
            return 13

    got: list[Head] = []
    with structlog.testing.capture_logs() as logs:
        async with HeadSource(block_number, None, 0.001) as heads:
            while not got or got[-1].number < 13:
                h = await asyncio.wait_for(heads.next(), 5)
                assert h is not None
                got.append(h)
            await asyncio.wait_for(done.wait(), 5)
    assert [(h.first, h.number) for h in got] == [(10, 10), (11, 12), (13, 13)]
    assert heads.behind == 1
    assert [(e["head"], e["newest"]) for e in logs if e["event"] == "heads.behind"] == [(7, 12)]


async def test_an_earlier_requests_answer_arriving_after_a_later_ones_is_not_a_head_gone_back():
    release = asyncio.Event()

    class Slow(FakeTransport):
        async def send(self, method: str, params: list[Any]) -> Any:
            if method == "eth_blockNumber" and not release.is_set():
                release.set()
                await asyncio.sleep(0.05)  # answered (with 100) after the next request's 101
            return await super().send(method, params)

    fake = Slow()
    fake.on("eth_chainId", "0x1").on("eth_simulateV1", []).on("eth_blockNumber", "0x64", "0x65")
    chain, _, telemetry, _ = failover(fake)
    await chain.chain_id()  # probed

    async def second() -> int:
        await release.wait()
        return await chain.block_number()
    assert sorted(await asyncio.gather(chain.block_number(), second())) == [100, 101]
    assert not telemetry.rpc_rejects
