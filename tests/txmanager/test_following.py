"""The manager following the block loop (the daemon's run): the heads it is told replace its own
eth_blockNumber polls, and a round at a block where the loop already checked the nonces and read
the balance asks the node nothing while nothing is in flight; with something in flight it still
polls the receipts. Node-free, on FakeNode."""
from __future__ import annotations

import asyncio

import pytest
import structlog
from eth_account import Account

from keeper.chain.fees import Fees
from keeper.chain.sender import TxRequest
from keeper.chain.signer import Signer
from keeper.send.manager import Submission, TxManager
from keeper.send.policy import FeePolicy
from keeper.store import SqliteStore, TxKind
from tests.txmanager.fake_node import GWEI, FakeNode

KEY = "0x" + "4b" * 32
MARKET = Fees(base_fee=GWEI, priority_fee=GWEI, max_fee=3 * GWEI)


@pytest.fixture
async def store():
    s = await SqliteStore.open()
    yield s
    await s.close()


def manager(node: FakeNode, store: SqliteStore, **kw) -> TxManager:
    return TxManager(node, Signer(Account.from_key(KEY)), store, FeePolicy(cap=50 * GWEI, max_tip=2 * GWEI), 31337,
                     **kw)


def liquidation() -> Submission:
    tx = TxRequest("0x" + "a1" * 20, b"\x01liq", gas=300_000, what="liquidationCall")
    return Submission("stub", ("0x" + "cc" * 20,), "liquidation", 100, ((TxKind.LIQUIDATION, tx),),
                      gross_wei=10**17, gas=150_000)


async def test_a_round_at_a_block_the_loop_checked_asks_nothing_while_nothing_is_in_flight(store):
    node = FakeNode()
    m = manager(node, store, min_balance=10**21)  # the node says 10**20: low
    await m.sync(node.block)  # the block loop's nonce check at this block
    with structlog.testing.capture_logs() as logs:
        m.balance_seen(node.block, 10**20)  # ... and its balance read
    assert [e["event"] for e in logs] == ["wallet.low_balance"]
    node.calls.clear()
    await m.tick(node.block)
    assert node.calls == [] and m.head == node.block
    # Something in flight: the next block's round polls its receipt (one batch) and settles it.
    await m.submit(liquidation(), MARKET)
    node.mine()
    await m.sync(node.block)
    m.balance_seen(node.block, 10**20)
    node.calls.clear()
    await m.tick(node.block)
    assert "eth_getTransactionReceipt" in node.calls and not m.slots
    # Not told of the block (a manager on its own): it asks as before.
    node.mine()
    node.calls.clear()
    await m.tick(node.block)
    assert node.calls == ["eth_getTransactionCount"] * 3 + ["eth_getBalance"]  # the nonce check, then the poll


async def test_following_uses_the_heads_it_is_told_and_asks_the_node_when_poked(store):
    node = FakeNode()
    asked: list[int] = []
    block_number = node.block_number

    async def counted() -> int:
        asked.append(node.block)
        return await block_number()

    node.block_number = counted  # type: ignore[method-assign]
    m = manager(node, store, poll_interval=0.01)
    m.following = True
    await m.start()
    try:
        asked.clear()
        node.mine()
        m.head_seen(node.block)
        while m.head != node.block:
            await asyncio.sleep(0.01)
        assert asked == []  # the told head, not a poll
        node.mine()  # a block the loop has not told of: a poke asks the node
        m.poke()
        while m.head != node.block:
            await asyncio.sleep(0.01)
        assert asked == [node.block]
    finally:
        await m.close()


async def test_the_same_transaction_signed_again_after_a_refusal_is_its_own_journal_row(store):
    node = FakeNode(refuse_next=["insufficient funds for gas * price + value"])
    m = manager(node, store)
    first = await m.submit(liquidation(), MARKET)
    assert first.hashes == () and "insufficient funds" in (first.error or "")
    again = await m.submit(liquidation(), MARKET)  # same nonce, fees and calldata: the gas limit one unit up
    (h,) = again.hashes
    assert [t.gas for t in node.sent] == [300_001] and node.sent[0].hash == h
    assert (await store.transaction(h)).gas_limit == 300_001
