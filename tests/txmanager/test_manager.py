"""The transaction manager without a node (tests/txmanager/fake_node.py): journal before broadcast,
replacement after K blocks with bumped fees under the cap and the budget, cancellation when the
re-simulation says the opportunity is gone, a bad poll answer that changes nothing, and the
reconciliation of a journal left by an earlier process (kill -9) or undone by a rollback."""
from __future__ import annotations

import sqlite3

import pytest
from eth_account import Account

from keeper.chain.fees import Fees
from keeper.chain.sender import TxRequest
from keeper.chain.signer import Signer
from keeper.send.manager import CANCEL_GAS, Settled, Submission, TxManager
from keeper.send.policy import FeePolicy
from keeper.store import OutcomeStatus, SqliteStore, TxKind, TxStatus
from tests.txmanager.fake_node import GWEI, FakeNode

KEY = "0x" + "4b" * 32
ME = Account.from_key(KEY).address
POOL = "0x" + "a1" * 20
MARKET = Fees(base_fee=GWEI, priority_fee=GWEI, max_fee=3 * GWEI)
POLICY = FeePolicy(cap=50 * GWEI, max_tip=2 * GWEI, replace_after=3)


def liquidation(n: int = 1, gas: int = 300_000) -> TxRequest:
    return TxRequest(POOL, b"\x01liq" + n.to_bytes(4, "big"), gas=gas, what=f"liquidationCall {n}")


def submission(*txs: TxRequest, account: str = "0x" + "cc" * 20, gross_wei: int = 10**17) -> Submission:
    return Submission("stub", (account,), "liquidation", 100, tuple((TxKind.LIQUIDATION, t) for t in txs),
                      gross_wei=gross_wei, gas=sum(t.gas or 0 for t in txs) // 2)


class Harness:
    def __init__(self, node: FakeNode, store: SqliteStore, policy: FeePolicy = POLICY, gone: set[bytes] = frozenset()):
        self.node, self.store = node, store
        self.settled: list[Settled] = []
        self.gone = set(gone)  # calldata whose re-simulation now reverts

        async def check(before, tx: TxRequest, block: int) -> str | None:
            return "45 HEALTH_FACTOR_NOT_BELOW_THRESHOLD" if tx.data in self.gone else None

        async def on_settled(s: Settled) -> None:
            self.settled.append(s)

        self.manager = TxManager(node, Signer(Account.from_key(KEY)), store, policy, 31337, check=check,
                                 on_settled=on_settled)

    async def next_block(self) -> None:
        self.node.mine()
        await self.manager.tick(self.node.block)


@pytest.fixture
async def store(tmp_path):
    s = await SqliteStore.open(str(tmp_path / "journal.db"))
    yield s
    await s.close()


# ---- policy -----------------------------------------------------------------------------------

def test_first_fees_follow_the_tip_policy_and_never_pass_the_cap():
    p = FeePolicy(cap=10 * GWEI, max_tip=3 * GWEI, tip_floor=GWEI // 2, tip_profit_ppm=100_000)
    assert p.market(GWEI, 0) == Fees(GWEI, GWEI // 2, 2 * GWEI + GWEI // 2)  # floor
    assert p.market(GWEI, 5 * GWEI).priority_fee == 3 * GWEI  # the recent percentile, within max_tip
    # 10% of 0.001 ETH over 100,000 gas = 1 gwei of tip per gas, above the market's 0.5.
    f = p.first(p.market(GWEI, 0), gross_wei=10**15, gas=100_000)
    assert (f.priority_fee, f.max_fee) == (GWEI, 3 * GWEI)
    assert p.first(p.market(6 * GWEI, 0), gross_wei=10**15, gas=100_000).max_fee == 10 * GWEI  # capped


def test_a_bump_raises_both_fees_by_the_minimum_or_to_the_market_within_cap_and_budget():
    p = FeePolicy(cap=10 * GWEI, max_tip=2 * GWEI, bump_ppm=125_000)
    quiet = Fees(GWEI, GWEI, 3 * GWEI)
    b = p.bumped(4 * GWEI, GWEI, quiet)
    assert (b.max_fee, b.priority_fee) == (45 * GWEI // 10, 1_125_000_000)  # +12.5% each
    spike = Fees(4 * GWEI, GWEI, 9 * GWEI)
    assert p.bumped(4 * GWEI, GWEI, spike).max_fee == 2 * 4 * GWEI + 1_125_000_000  # the market's level
    assert p.bumped(4 * GWEI, GWEI, Fees(20 * GWEI, GWEI, 41 * GWEI)).max_fee == 10 * GWEI  # the cap
    assert p.bumped(9 * GWEI, GWEI, quiet) is None  # 10.125 > cap: no valid bump
    assert p.bumped(4 * GWEI, GWEI, quiet, ceiling=4 * GWEI) is None  # the plan's budget per gas
    assert p.budget_per_gas(10**16, 500_000) == 10 * GWEI  # half of 0.01 ETH over 500k gas


# ---- manager ----------------------------------------------------------------------------------

async def test_each_transaction_is_journaled_before_the_node_sees_it(store):
    node = FakeNode()
    h = Harness(node, store)
    seen_at_send: list[str] = []
    send = node.send

    def spy(raw: str) -> str:
        # The journal row is committed (pending) when the node receives the bytes: read it from
        # the file with a connection of our own.
        with sqlite3.connect(store.path) as c:
            assert c.execute("SELECT status FROM transactions WHERE raw = ?", (raw.lower(),)).fetchone() == ("pending",)
        seen_at_send.append(raw)
        return send(raw)

    node.send = spy
    sub = submission(liquidation(1), liquidation(2))
    out = await h.manager.submit(sub, MARKET)
    assert len(out.hashes) == 2 and out.error is None
    txs = await store.transactions(out.attempt_id)
    assert [(t.nonce, t.status, t.kind) for t in txs] == [(0, TxStatus.PENDING, TxKind.LIQUIDATION),
                                                           (1, TxStatus.PENDING, TxKind.LIQUIDATION)]
    assert [t.raw for t in txs] == seen_at_send  # the journal holds the exact bytes the node got
    assert h.manager.in_flight() == {("stub", "0x" + "cc" * 20)}
    await h.next_block()
    assert [s.outcome.status for s in h.settled] == [OutcomeStatus.CONFIRMED]
    assert h.manager.in_flight() == set()
    # A plan made on a state from before that block would not see the liquidation: still left alone.
    assert h.manager.in_flight(node.block - 1) == {("stub", "0x" + "cc" * 20)}
    assert h.manager.in_flight(node.block) == set()


async def test_stuck_is_replaced_after_k_blocks_with_bumped_fees_under_the_cap(store):
    node = FakeNode(hold=True)
    h = Harness(node, store)
    out = await h.manager.submit(submission(liquidation()), MARKET)
    (first,) = await store.transactions(out.attempt_id)
    for _ in range(POLICY.replace_after - 1):
        await h.next_block()
    assert len(node.sent) == 1  # not yet: K blocks
    node.base_fee = 3 * GWEI  # the market moved
    await h.next_block()
    assert len(node.sent) == 2
    old, new = await store.transactions(out.attempt_id)
    assert (old.status, new.status, new.replaces, new.nonce) == (TxStatus.REPLACED, TxStatus.PENDING,
                                                                 first.tx_hash, first.nonce)
    assert new.max_fee >= first.max_fee * 1125 // 1000 and new.max_priority >= first.max_priority * 1125 // 1000
    assert new.max_fee >= 2 * node.base_fee and new.max_fee <= POLICY.cap
    node.hold = False
    await h.next_block()
    (s,) = h.settled
    assert s.outcome.status == OutcomeStatus.CONFIRMED and node.mined_hashes() == [new.tx_hash]
    assert (await store.transaction(first.tx_hash)).status == TxStatus.DROPPED


async def test_no_bump_above_the_cap_the_transaction_waits(store):
    node = FakeNode(hold=True)
    h = Harness(node, store, FeePolicy(cap=3 * GWEI, max_tip=GWEI, replace_after=1))
    out = await h.manager.submit(submission(liquidation()), MARKET)
    for _ in range(3):
        await h.next_block()
    assert len(node.sent) == 1 and all(t.max_fee <= 3 * GWEI for t in node.sent)
    assert [t.status for t in await store.transactions(out.attempt_id)] == [TxStatus.PENDING]


async def test_gone_opportunity_is_cancelled_by_a_self_transfer_at_its_nonce(store):
    node = FakeNode(hold=True)
    tx = liquidation()
    h = Harness(node, store)
    await h.manager.submit(submission(tx), MARKET)
    await h.next_block()  # still valid: nothing happens
    assert len(node.sent) == 1
    h.gone.add(tx.data)  # a competitor liquidated it
    await h.next_block()
    assert len(node.sent) == 2
    cancel = node.sent[1]
    assert (cancel.to, cancel.value, cancel.data, cancel.gas, cancel.nonce) == (ME, 0, b"", CANCEL_GAS, 0)
    assert cancel.max_fee > node.sent[0].max_fee and cancel.max_fee <= POLICY.cap
    node.hold = False
    await h.next_block()
    (s,) = h.settled
    assert s.outcome.status == OutcomeStatus.CANCELLED and node.mined_hashes() == [cancel.hash]
    assert [t.kind for t in s.outcome.txs] == [TxKind.LIQUIDATION, TxKind.CANCEL]


async def test_a_garbage_poll_decides_nothing_and_the_next_one_settles(store):
    node = FakeNode()
    h = Harness(node, store)
    await h.manager.submit(submission(liquidation(1)), MARKET)
    node.mine()
    node.garbage_next = 1
    await h.manager.tick(node.block)
    assert h.settled == [] and h.manager.head != node.block and h.manager.polls_failed == 1
    await h.manager.tick(node.block)  # the same block, asked again
    assert [s.outcome.status for s in h.settled] == [OutcomeStatus.CONFIRMED]


async def test_refused_send_is_dropped_with_the_reason_and_the_nonce_is_reused(store):
    node = FakeNode(refuse_next=["insufficient funds for gas * price + value"])
    h = Harness(node, store)
    out = await h.manager.submit(submission(liquidation(1)), MARKET)
    assert out.hashes == () and "insufficient funds" in out.error
    (t,) = await store.transactions(out.attempt_id)
    assert t.status == TxStatus.DROPPED and h.manager.in_flight() == set()
    again = await h.manager.submit(submission(liquidation(1)), MARKET)
    (t2,) = await store.transactions(again.attempt_id)
    assert t2.nonce == t.nonce and t2.tx_hash != t.tx_hash  # same transaction, its own journal row


async def test_restart_reconciles_every_unfinished_entry_with_the_chain(store):
    """A first manager sends four plans and dies (nothing settled). On restart: the mined one is
    found and settled, the one still in the pool is kept, the one the node lost is sent again as
    the same bytes, and the lost one whose opportunity is gone is cancelled; nothing is planned
    meanwhile for any of their accounts."""
    node = FakeNode(hold=True)
    first = Harness(node, store)
    subs = [submission(liquidation(i), account=f"0x{i:040x}") for i in range(4)]
    sent = [await first.manager.submit(s, MARKET) for s in subs]
    hashes = [o.hashes[0] for o in sent]
    # kill -9: the first manager is simply gone. The node mined nonce 0 and lost nonces 2 and 3.
    node.hold = False
    node.pool = {n: t for n, t in node.pool.items() if n == 0}
    node.mine()
    node.pool.update({1: next(t for t in node.sent if t.nonce == 1)})
    node.hold = True
    second = Harness(node, store, gone={subs[3].txs[0][1].data})
    await second.manager.start()
    assert [s.outcome.attempt.id for s in second.settled] == [sent[0].attempt_id]
    assert second.settled[0].outcome.status == OutcomeStatus.CONFIRMED
    assert second.manager.in_flight() == {("stub", f"0x{i:040x}") for i in (1, 2, 3)}
    assert node.pool[1].hash == hashes[1]  # kept as it was
    assert node.pool[2].hash == hashes[2]  # the same signed bytes, sent again
    assert node.pool[3].to == ME and node.pool[3].data == b""  # cancelled
    assert second.manager.next_nonce == 4
    node.hold = False
    await second.next_block()
    assert sorted((s.outcome.attempt.id, s.outcome.status) for s in second.settled[1:]) == [
        (sent[1].attempt_id, OutcomeStatus.CONFIRMED), (sent[2].attempt_id, OutcomeStatus.CONFIRMED),
        (sent[3].attempt_id, OutcomeStatus.CANCELLED)]


async def test_a_rollback_puts_mined_transactions_back_in_flight_and_sends_them_again(store):
    node = FakeNode()
    h = Harness(node, store)
    out = await h.manager.submit(submission(liquidation(1)), MARKET)
    fork = node.block
    await h.next_block()
    assert [s.outcome.status for s in h.settled] == [OutcomeStatus.CONFIRMED]
    node.rollback(fork)  # evm_revert: the block and its transaction are gone
    node.block += 1  # a new head on the other branch
    await h.manager.sync(node.block)
    (t,) = await store.transactions(out.attempt_id)
    assert t.status == TxStatus.PENDING
    assert [x.status for x in await store.transitions(t.tx_hash)] == [TxStatus.PENDING, TxStatus.CONFIRMED,
                                                                      TxStatus.PENDING]
    assert node.pool[0].hash == t.tx_hash and h.manager.in_flight() == {("stub", "0x" + "cc" * 20)}
    await h.next_block()
    assert [s.outcome.status for s in h.settled] == [OutcomeStatus.CONFIRMED] * 2
    assert node.mined_hashes() == [t.tx_hash]  # mined once on the chain that stayed


async def test_a_lost_pool_is_noticed_and_refilled_with_the_same_bytes(store):
    node = FakeNode(hold=True)
    h = Harness(node, store)
    out = await h.manager.submit(submission(liquidation(1), liquidation(2)), MARKET)
    await h.next_block()
    node.pool.clear()  # the node restarted without its mempool
    node.block += 1
    await h.manager.sync(node.block)
    assert [node.pool[n].hash for n in (0, 1)] == list(out.hashes)


async def test_what_a_simulation_runs_first_is_decided_by_receipts_not_by_a_nonce_ahead_of_them(store):
    """Anvil answers the signer's nonce at its newest block from the state it is mining: right after
    a send, the nonce already counts a transaction mined into the NEXT block. A plan simulated on
    the pinned block must still run that transaction first (else it is planned without its own
    previous sale and reverts on chain). FakeNode's nonce is always the newest state, as Anvil's."""
    node = FakeNode()
    h = Harness(node, store)
    await h.manager.submit(submission(liquidation(1)), MARKET)
    await h.manager.submit(submission(liquidation(2), account="0x" + "dd" * 20), MARKET)
    pinned = node.block
    node.mine()  # both mined into pinned + 1; no poll has run, the manager still holds them
    assert await node.nonce(ME, pinned) == 2  # what a nonce-based decision would see: nothing unmined
    unmined = await h.manager.unmined_at(pinned)
    assert [t.data for t in unmined] == [liquidation(1).data, liquidation(2).data]
    assert await h.manager.unmined_at(node.block) == []  # at the block that mined them: nothing to run
    node.garbage_next = 1  # receipts unreadable: the nonce at that block decides instead
    assert await h.manager.unmined_at(pinned) == []
