"""The transaction journal: attempts and transactions written before a send, the status changes a
transaction may go through (with when), in-flight accounts, and outcomes rebuilt from it alone."""
from __future__ import annotations

from dataclasses import replace

import pytest

from keeper.store import (
    Decision,
    JournalError,
    NewAttempt,
    NewTx,
    OutcomeStatus,
    SqliteStore,
    TxKind,
    TxStatus,
)

SENDER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
GWEI = 10**9


def th(i: int) -> str:
    return "0x" + i.to_bytes(32, "big").hex()


class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        self.t += 1.5
        return self.t


@pytest.fixture
async def store():
    s = await SqliteStore.open(":memory:", clock=Clock())
    yield s
    await s.close()


def liq(aid: int, nonce: int, i: int, fee: int = 30 * GWEI, replaces: str | None = None,
        kind: TxKind = TxKind.LIQUIDATION) -> NewTx:
    return NewTx(aid, kind, SENDER, nonce, th(i), fee, 2 * GWEI, 800_000, "0x02f9" + f"{i:04x}", replaces=replaces)


async def test_pending_replaced_then_the_replacement_confirmed(store):
    aid = await store.add_attempt(NewAttempt("aave_v3", ("0xA",), "liquidationCall", Decision.SEND, 100,
                                             details={"expected_profit_usd8": 12 * 10**40, "pair": "WETH/USDC"}))
    first = await store.add_transaction(liq(aid, 7, 1))
    assert first.status == TxStatus.PENDING and first.max_fee == 30 * GWEI
    assert await store.in_flight_accounts() == {("aave_v3", "0xA")}
    assert (await store.outcome(aid)).status == OutcomeStatus.PENDING

    # Not mined within K blocks: the fee-bumped replacement is journaled (and the first marked
    # replaced) in one write, before it is sent.
    bumped = await store.add_transaction(liq(aid, 7, 2, fee=40 * GWEI, replaces=th(1)))
    assert (await store.transaction(th(1))).status == TxStatus.REPLACED
    assert [t.tx_hash for t in await store.unfinished(SENDER)] == [th(2)]
    assert await store.in_flight_accounts("aave_v3") == {("aave_v3", "0xA")}

    assert await store.set_status(bumped.tx_hash, TxStatus.CONFIRMED, block=103, gas_used=412_345)
    assert not await store.set_status(bumped.tx_hash, TxStatus.CONFIRMED, block=103)  # already: no-op
    assert await store.in_flight_accounts() == set()
    assert await store.unfinished() == []

    steps = await store.transitions(th(1))
    assert [(s.status, s.note) for s in steps] == [(TxStatus.PENDING, None), (TxStatus.REPLACED, f"by {th(2)}")]
    steps = await store.transitions(th(2))
    assert [(s.status, s.block) for s in steps] == [(TxStatus.PENDING, None), (TxStatus.CONFIRMED, 103)]
    assert steps[0].at < steps[1].at

    out = await store.outcome(aid)
    assert out.status == OutcomeStatus.CONFIRMED
    assert (out.tx.tx_hash, out.block, out.gas_used) == (th(2), 103, 412_345)
    assert out.attempt.details == {"expected_profit_usd8": 12 * 10**40, "pair": "WETH/USDC"}  # exact big ints
    assert [t.status for t in out.txs] == [TxStatus.REPLACED, TxStatus.CONFIRMED]


async def test_a_replaced_transaction_can_still_win(store):
    aid = await store.add_attempt(NewAttempt("comet", ("0xB",), "absorb", Decision.SEND, 5))
    await store.add_transaction(liq(aid, 1, 1))
    await store.add_transaction(liq(aid, 1, 2, replaces=th(1)))
    await store.set_status(th(1), TxStatus.CONFIRMED, block=6, gas_used=100_000)  # mined before its replacement
    await store.set_status(th(2), TxStatus.DROPPED)
    out = await store.outcome(aid)
    assert (out.status, out.tx.tx_hash) == (OutcomeStatus.CONFIRMED, th(1))
    assert [s.status for s in await store.transitions(th(1))] == [TxStatus.PENDING, TxStatus.REPLACED,
                                                                  TxStatus.CONFIRMED]


async def test_pending_then_dropped_then_rebroadcast(store):
    aid = await store.add_attempt(NewAttempt("morpho_blue", ("0xC",), "liquidate", Decision.SEND, 50))
    await store.add_transaction(liq(aid, 3, 1))
    await store.set_status(th(1), TxStatus.DROPPED, note="not in the node's mempool after a restart")
    assert await store.in_flight_accounts() == set()
    assert (await store.outcome(aid)).status == OutcomeStatus.DROPPED
    # The same raw transaction re-broadcast: pending again, in flight again.
    await store.set_status(th(1), TxStatus.PENDING, note="re-broadcast")
    assert await store.in_flight_accounts() == {("morpho_blue", "0xC")}
    await store.set_status(th(1), TxStatus.REVERTED, block=52, gas_used=60_000)
    out = await store.outcome(aid)
    assert (out.status, out.block, out.gas_used) == (OutcomeStatus.REVERTED, 52, 60_000)
    assert [s.status for s in await store.transitions(th(1))] == [
        TxStatus.PENDING, TxStatus.DROPPED, TxStatus.PENDING, TxStatus.REVERTED]


async def test_a_cancel_at_the_same_nonce(store):
    aid = await store.add_attempt(NewAttempt("aave_v3", ("0xD", "0xE"), "liquidationCall", Decision.SEND, 70))
    await store.add_transaction(liq(aid, 0, 1, kind=TxKind.APPROVAL))
    await store.set_status(th(1), TxStatus.CONFIRMED, block=71, gas_used=46_000)
    await store.add_transaction(liq(aid, 1, 2))
    # Someone else liquidated: a self-transfer at nonce 1 cancels ours.
    await store.add_transaction(liq(aid, 1, 3, replaces=th(2), kind=TxKind.CANCEL))
    assert (await store.transaction(th(2))).status == TxStatus.CANCELLED
    assert await store.in_flight_accounts() == {("aave_v3", "0xD"), ("aave_v3", "0xE")}  # the cancel is in flight
    await store.set_status(th(3), TxStatus.CONFIRMED, block=73, gas_used=21_000)
    out = await store.outcome(aid)
    assert out.status == OutcomeStatus.CANCELLED
    assert out.gas_used == 46_000 + 21_000
    assert await store.open_attempts() == []


async def test_forbidden_changes_and_bad_writes_are_named(store):
    aid = await store.add_attempt(NewAttempt("aave_v3", ("0xA",), "liquidationCall", Decision.SEND, 1))
    await store.add_transaction(liq(aid, 0, 1))
    with pytest.raises(JournalError, match="needs the block it was mined in"):
        await store.set_status(th(1), TxStatus.CONFIRMED)
    await store.set_status(th(1), TxStatus.CONFIRMED, block=2, gas_used=1)
    with pytest.raises(JournalError, match="confirmed -> replaced is not allowed"):
        await store.set_status(th(1), TxStatus.REPLACED)
    with pytest.raises(JournalError, match="confirmed -> replaced is not allowed"):
        await store.add_transaction(liq(aid, 0, 2, replaces=th(1)))
    assert await store.transaction(th(2)) is None  # nothing of the refused write
    with pytest.raises(JournalError, match="already journaled"):
        await store.add_transaction(liq(aid, 0, 1))
    with pytest.raises(JournalError, match="sender and nonce"):
        await store.add_transaction(liq(aid, 5, 4, replaces=th(1)))
    with pytest.raises(JournalError, match="no attempt 999"):
        await store.add_transaction(liq(999, 0, 5))
    with pytest.raises(JournalError, match="no journaled transaction"):
        await store.set_status(th(77), TxStatus.DROPPED)
    with pytest.raises(JournalError, match="64 hex digits"):
        await store.set_status("0x12", TxStatus.DROPPED)


async def test_skips_and_dry_runs_are_outcomes_too(store):
    skip = await store.add_attempt(NewAttempt("aave_v3", ("0xA",), "liquidationCall", Decision.SKIP, 9,
                                              code="below_min_profit"))
    dry = await store.add_attempt(NewAttempt("aave_v3", ("0xB",), "liquidationCall", Decision.DRY_RUN, 9))
    unsent = await store.add_attempt(NewAttempt("aave_v3", ("0xC",), "liquidationCall", Decision.SEND, 9))
    out = await store.outcome(skip)
    assert (out.status, out.attempt.code) == (OutcomeStatus.SKIPPED, "below_min_profit")
    assert (await store.outcome(dry)).status == OutcomeStatus.DRY_RUN
    assert (await store.outcome(unsent)).status == OutcomeStatus.NOT_SENT
    assert await store.in_flight_accounts() == set()
    assert [o.status for o in await store.outcomes()] == [OutcomeStatus.SKIPPED, OutcomeStatus.DRY_RUN,
                                                          OutcomeStatus.NOT_SENT]
    assert [o.attempt.id for o in await store.outcomes(since_id=skip)] == [dry, unsent]


async def test_a_reorg_makes_mined_transactions_pending_again(store):
    aid = await store.add_attempt(NewAttempt("aave_v3", ("0xA",), "liquidationCall", Decision.SEND, 10))
    await store.add_transaction(liq(aid, 0, 1))
    await store.add_transaction(liq(aid, 1, 2))
    await store.set_status(th(1), TxStatus.CONFIRMED, block=11, gas_used=1)
    await store.set_status(th(2), TxStatus.CONFIRMED, block=12, gas_used=1)
    rb = await store.rollback(11)
    assert rb.unmined == 1
    t2 = await store.transaction(th(2))
    assert (t2.status, t2.block, t2.gas_used) == (TxStatus.PENDING, None, None)
    assert (await store.transaction(th(1))).status == TxStatus.CONFIRMED
    assert await store.in_flight_accounts() == {("aave_v3", "0xA")}
    assert (await store.transitions(th(2)))[-1].note == "reorg: block 12 rolled back to 11"
    assert await store.open_attempts() == [aid]


async def test_an_attempt_and_its_first_transaction_are_journaled_together_or_not_at_all():
    store = await SqliteStore.open()
    try:
        attempt = NewAttempt(protocol="stub", accounts=("0x" + "cc" * 20,), plan_kind="liquidation",
                             decision="send", created_block=5)
        tx = NewTx(attempt_id=0, kind=TxKind.LIQUIDATION, sender="0x" + "aa" * 20, nonce=3, tx_hash="0x" + "01" * 32,
                   max_fee=10, max_priority=1, gas_limit=21_000, raw="0x02ff")
        aid, rec = await store.add_attempt_with(attempt, tx)
        assert (rec.attempt_id, rec.status, rec.nonce) == (aid, TxStatus.PENDING, 3)
        assert [t.tx_hash for t in await store.transactions(aid)] == [tx.tx_hash]
        with pytest.raises(JournalError, match="already journaled"):  # the same hash: neither is written
            await store.add_attempt_with(attempt, tx)
        assert await store.add_attempt(attempt) == aid + 1  # the refused attempt was not written
        with pytest.raises(JournalError, match="sender is not an address"):
            await store.add_attempt_with(attempt, replace(tx, tx_hash="0x" + "02" * 32, sender="me"))
    finally:
        await store.close()
