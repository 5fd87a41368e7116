"""`keeper run` killed with SIGKILL while its liquidations wait in the node's pool, then started
again with blocks mined on an interval: it finds its transactions in the journal, sends nothing
new for their opportunities, and records each as confirmed once mined. On chain: one liquidation
per unhealthy account, none reverted."""
from __future__ import annotations

import asyncio
import copy
import signal
import sqlite3

import pytest
from keeper_devnet.world import config_text

from tests.protocols.aave_v3.helpers import drop_weth, open_scenario
from tests.txmanager.helpers import (
    KEY_HEX,
    fresh_keeper,
    keeper_txs,
    last_status,
    liquidated_users,
    log_events,
    mining,
    spawn_keeper,
    wait_for,
)


@pytest.fixture
async def world(deployer, real_world, snapshot):
    await fresh_keeper(deployer, real_world)
    yield copy.deepcopy(real_world)


def journal(db) -> list[tuple[int, str, str]]:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT nonce, status, hash FROM transactions ORDER BY nonce, id").fetchall()


async def test_kill_9_with_transactions_pending_then_restart_sends_no_second_liquidation(deployer, world, tmp_path):
    users = await open_scenario(deployer, world)
    await drop_weth(deployer, world)
    cfg, record, db, out = tmp_path / "k.toml", tmp_path / "out.jsonl", tmp_path / "keeper.db", tmp_path / "out.txt"
    cfg.write_text(config_text(world, record_file=str(record)))
    start = await deployer.w3.eth.block_number
    keeper = world.keeper_address
    async with mining(deployer):  # nothing is mined while the first process runs
        first = await spawn_keeper(cfg, out)
        try:
            async def all_sent() -> bool:  # an approval and four liquidations in the pool
                pending = await deployer.w3.eth.get_transaction_count(keeper, "pending")
                return pending - await deployer.w3.eth.get_transaction_count(keeper, "latest") >= 5
            await wait_for("the first run's transactions in the pool", all_sent)
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        before = journal(db)
        assert [s for _, s, _ in before] == ["pending"] * 5
        assert {r["status"] for r in last_status(record).values()} == {"pending"}
        await deployer.rpc("evm_setIntervalMining", [1])  # blocks every second from now on
        second = await spawn_keeper(cfg, out)
        try:
            async def all_confirmed() -> bool:
                last = last_status(record)
                return len(last) == 4 and all(r["status"] == "confirmed" for r in last.values())
            await wait_for("four confirmed records", all_confirmed)
            head = await deployer.w3.eth.block_number
            await wait_for("three more blocks", lambda: _past(deployer, head + 3), timeout=30)
        finally:
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), 20) == 0
    txs = await keeper_txs(deployer, start)
    by_user = liquidated_users(txs)
    hf_below_one = set(users[2:5]) | {users[6]}  # the scenario's four unhealthy accounts
    assert set(by_user) == hf_below_one
    assert all(statuses == [1] for statuses in by_user.values())  # once each, none reverted
    assert len(txs) == 5 and all(status == 1 for _, status in txs)  # the approval and four liquidations
    # The records confirm the very transactions the first process journaled before it was killed.
    assert {r["tx_hash"] for r in last_status(record).values()} == {h for _, _, h in before[1:]}
    assert [s for _, s, _ in journal(db)] == ["confirmed"] * 5
    events = [e["event"] for e in log_events(out)]
    assert events.count("keeper.started") == 2 and "txm.reconcile" in events
    assert KEY_HEX not in out.read_text().lower()


async def _past(d, block: int) -> bool:
    return await d.w3.eth.block_number >= block
