"""FailoverTransport's rules with scripted endpoints and a scripted clock (no node): repeated
failures, a lagging head and a frozen head switch to the next endpoint; the keeper goes back to the
primary when it is well again; a malformed answer or an endpoint on another chain is rejected with
a logged reason; batch support is probed once per endpoint and respected."""
from __future__ import annotations

from typing import Any

import aiohttp
import pytest
import structlog

from keeper.chain.failover import FailoverTransport
from keeper.chain.rpc import Rpc
from keeper.errors import TransientRpcError


class Node:
    """A scripted endpoint: its head, whether it answers, batches, garbage, its chain."""

    def __init__(self, head: int = 100, chain_id: int = 1, batches: bool = True):
        self.head, self.chain_id, self.batches = head, chain_id, batches
        self.alive = True
        self.garbage = False
        self.requests: list[str] = []
        self.batch_posts = 0

    def _answer(self, method: str) -> Any:
        if self.garbage:
            return "<html>502</html>"
        result = {"eth_blockNumber": hex(self.head), "eth_chainId": hex(self.chain_id)}.get(method, "0x1")
        return {"jsonrpc": "2.0", "id": 1, "result": result}

    async def send(self, method: str, params: list[Any]) -> Any:
        if not self.alive:
            raise aiohttp.ClientConnectionError("connection refused")
        self.requests.append(method)
        return self._answer(method)

    async def send_batch(self, requests: list[tuple[str, list[Any]]]) -> Any:
        if not self.alive:
            raise aiohttp.ClientConnectionError("connection refused")
        self.batch_posts += 1
        if not self.batches:
            return {"jsonrpc": "2.0", "id": None,
                    "error": {"code": -32600, "message": "batch requests are not supported"}}
        self.requests += [m for m, _ in requests]
        return [self._answer(m) for m, _ in requests]

    async def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def setup(*nodes: Node, **kw: Any) -> tuple[Rpc, FailoverTransport, Clock]:
    clock = Clock()
    ft = FailoverTransport([(f"node{i}:8545", n) for i, n in enumerate(nodes)], clock=clock, chain_id=1,
                           stale_seconds=30, lag_blocks=3, recheck_seconds=60, **kw)
    return Rpc(transport=ft, retry_wait=0.001), ft, clock


async def test_repeated_failures_switch_to_the_next_within_one_request():
    a, b = Node(), Node()
    rpc, ft, _ = setup(a, b, errors=3)
    assert await rpc.request("eth_blockNumber", []) == hex(100) and ft.endpoint == "node0:8545"
    a.alive = False
    with structlog.testing.capture_logs() as logs:
        assert await rpc.request("eth_blockNumber", []) == hex(100)  # Rpc's retries reach node1
    assert ft.endpoint == "node1:8545"
    assert [(e["from_endpoint"], e["to_endpoint"]) for e in logs if e["event"] == "rpc.failover"] == [
        ("node0:8545", "node1:8545")]


async def test_a_lagging_head_switches_and_the_primary_is_taken_back_when_well():
    a, b = Node(head=100), Node(head=100)
    rpc, ft, clock = setup(a, b)
    await rpc.request("eth_blockNumber", [])
    b.head = 110  # the primary is 10 blocks behind
    clock.now += 61  # the periodic check is due
    assert await rpc.request("eth_blockNumber", []) == hex(110)
    assert ft.endpoint == "node1:8545"
    a.head = 111  # caught up
    clock.now += 61
    await rpc.request("eth_blockNumber", [])
    assert ft.endpoint == "node0:8545"


async def test_a_frozen_head_switches_before_the_periodic_check():
    a, b = Node(head=100), Node(head=100)
    rpc, ft, clock = setup(a, b)
    await rpc.request("eth_blockNumber", [])
    clock.now += 10
    b.head = 101  # one block ahead: not a lag, but node0 has not moved for 31 s
    clock.now += 21
    assert await rpc.request("eth_blockNumber", []) == hex(101)
    assert ft.endpoint == "node1:8545"


async def test_a_malformed_answer_is_rejected_with_a_reason_and_not_handed_on():
    a, b = Node(), Node(head=100)
    rpc, ft, _ = setup(a, b, errors=2)
    await rpc.request("eth_blockNumber", [])
    a.garbage = True
    with structlog.testing.capture_logs() as logs:
        assert await rpc.request("eth_blockNumber", []) == hex(100)  # node1's answer, not the garbage
    rejected = [e for e in logs if e["event"] == "rpc.rejected"]
    assert rejected and "not a JSON-RPC response" in rejected[0]["reason"]
    assert ft.endpoint == "node1:8545"


async def test_an_endpoint_on_another_chain_is_never_used():
    a, b = Node(chain_id=5), Node()
    rpc, ft, _ = setup(a, b)
    with structlog.testing.capture_logs() as logs:
        assert await rpc.request("eth_chainId", []) == hex(1)
    await rpc.request("eth_blockNumber", [])
    assert ft.endpoint == "node1:8545" and a.requests == ["eth_chainId", "eth_chainId"]  # the probe only
    assert any(e["event"] == "rpc.wrong_chain" and e["chain_id"] == 5 for e in logs)


async def test_batch_support_is_probed_once_and_respected():
    a = Node(batches=False)
    rpc, _, _ = setup(a)
    for _ in range(3):
        assert await rpc.batch([("eth_blockNumber", []), ("eth_chainId", [])]) == [hex(100), hex(1)]
    assert a.batch_posts == 1  # the probe; then one by one
    assert a.requests.count("eth_blockNumber") == 3


async def test_a_single_dead_endpoint_still_fails_the_request():
    a = Node()
    a.alive = False
    rpc, _, _ = setup(a)
    with pytest.raises((aiohttp.ClientConnectionError, TransientRpcError)):
        await rpc.request("eth_blockNumber", [])
