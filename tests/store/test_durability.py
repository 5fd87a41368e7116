"""The store on disk: a restart resumes from what was committed, concurrent writers all land,
a crash in the middle of a write leaves nothing of it, and a database of a newer keeper is
refused."""
from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
import textwrap

import pytest

from keeper.store import (
    Decision,
    MirrorRow,
    NewAttempt,
    NewTx,
    SqliteStore,
    StoreError,
    TxKind,
    WriteBatch,
)

HASH_A = "0x" + "aa" * 32
SENDER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def tx_hash(i: int) -> str:
    return "0x" + i.to_bytes(32, "big").hex()


async def test_a_restart_resumes_from_the_file(tmp_path):
    path = tmp_path / "state" / "keeper.db"
    s = await SqliteStore.open(path)
    await s.apply(WriteBatch().add_accounts("aave_v3", {"0xA": 3}).set_checkpoint("aave_v3", "mirror", 9, HASH_A)
                  .put_mirror("aave_v3", [MirrorRow("0xA", 1, 9, b"state")]))
    aid = await s.add_attempt(NewAttempt("aave_v3", ("0xA",), "liquidationCall", Decision.SEND, 9))
    await s.add_transaction(NewTx(aid, TxKind.LIQUIDATION, SENDER, 4, tx_hash(1), 3 * 10**9, 10**9, 500_000, "0x02f8"))
    await s.close()
    with pytest.raises(StoreError, match="closed"):
        await s.accounts("aave_v3")

    s = await SqliteStore.open(path)
    try:
        assert await s.schema_version() == 2  # migrations 1 (tables) and 2 (store_meta)
        assert await s.accounts("aave_v3") == {"0xA": 3}
        cp = await s.checkpoint("aave_v3", "mirror")
        assert (cp.block, cp.block_hash) == (9, HASH_A)
        assert (await s.mirror("aave_v3"))["0xA"].data == b"state"
        assert [t.tx_hash for t in await s.unfinished(SENDER)] == [tx_hash(1)]
        assert await s.in_flight_accounts() == {("aave_v3", "0xA")}
        assert await s.max_nonce(SENDER) == 4
        out = await s.outcome(aid)
        assert (out.status, out.attempt.plan_kind, out.txs[0].max_fee) == ("pending", "liquidationCall", 3 * 10**9)
    finally:
        await s.close()
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert c.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == 2  # each applied once


async def test_a_database_of_a_newer_keeper_is_refused(tmp_path):
    path = tmp_path / "keeper.db"
    await (await SqliteStore.open(path)).close()
    with sqlite3.connect(path) as c:
        c.execute("INSERT INTO schema_migrations VALUES (99, 'from the future', 0)")
    with pytest.raises(StoreError, match="schema version 99, newer than this keeper knows"):
        await SqliteStore.open(path)


async def test_a_file_that_is_not_a_database_is_named(tmp_path):
    path = tmp_path / "keeper.db"
    path.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(StoreError, match="keeper.db is not a usable SQLite database"):
        await SqliteStore.open(path)


async def test_concurrent_writers_all_land(tmp_path):
    s = await SqliteStore.open(tmp_path / "keeper.db")
    try:
        async def writer(w: int) -> list[int]:
            ids = []
            for i in range(15):
                n = w * 100 + i
                await s.apply(WriteBatch().add_accounts("p", {f"0x{n:040x}": n})
                              .set_checkpoint("p", f"stream{w}", i, tx_hash(n)))
                aid = await s.add_attempt(NewAttempt("p", (f"0x{n:040x}",), "k", Decision.SEND, n))
                await s.add_transaction(NewTx(aid, TxKind.LIQUIDATION, SENDER, n, tx_hash(n), 1, 1, 21_000, "0x01"))
                ids.append(aid)
            return ids
        results = await asyncio.gather(*(writer(w) for w in range(12)))
        ids = [i for r in results for i in r]
        assert len(set(ids)) == 12 * 15
        assert len(await s.accounts("p")) == 12 * 15
        assert len(await s.unfinished()) == 12 * 15
        assert len(await s.in_flight_accounts("p")) == 12 * 15
        assert {c.stream: c.block for c in await s.checkpoints()} == {f"stream{w}": 14 for w in range(12)}
    finally:
        await s.close()


CRASH = textwrap.dedent("""
    import asyncio, os, signal, sys
    from keeper.store import MirrorRow, SqliteStore, WriteBatch
    from keeper.store import sqlite as store_sqlite
    from keeper.store.types import PutMirror

    async def main(path):
        s = await SqliteStore.open(path)
        await s.apply(WriteBatch().add_accounts("p", {"0xA": 1}).set_checkpoint("p", "mirror", 1, "0x" + "11" * 32))
        real = store_sqlite._OPS[PutMirror]

        def die_halfway(self, c, op):  # the first rows are written, then the process dies
            real(self, c, PutMirror(op.protocol, op.rows[:2]))
            os.kill(os.getpid(), signal.SIGKILL)
        store_sqlite._OPS[PutMirror] = die_halfway
        batch = WriteBatch().add_accounts("p", {"0xB": 2}).set_checkpoint("p", "mirror", 2, "0x" + "22" * 32)
        batch.put_mirror("p", [MirrorRow(f"0x{i}", 1, 2, b"x" * 1000) for i in range(50)])
        print("writing", flush=True)
        await s.apply(batch)
        print("not reached", flush=True)

    asyncio.run(main(sys.argv[1]))
""")


async def test_a_crash_in_the_middle_of_a_write_leaves_nothing_of_it(tmp_path):
    path = tmp_path / "keeper.db"
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", CRASH, str(path),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == -signal.SIGKILL, err.decode()
    assert out.decode().strip() == "writing"
    s = await SqliteStore.open(path)
    try:
        assert await s.accounts("p") == {"0xA": 1}
        assert (await s.checkpoint("p", "mirror")).block == 1
        assert await s.mirror("p") == {}
        await s.apply(WriteBatch().add_accounts("p", {"0xB": 2}))  # writable again: no stale lock
        assert await s.accounts("p") == {"0xA": 1, "0xB": 2}
    finally:
        await s.close()


async def test_a_store_belongs_to_one_chain(tmp_path):
    """The first keeper to use a store binds it to its chain (id and genesis hash); another chain
    (a devnet restarted under the same id, another network) is refused: the index would be wrong
    there and the journal's signed transactions valid."""
    path = tmp_path / "keeper.db"
    genesis_a, genesis_b = "0x" + "a1" * 32, "0x" + "b2" * 32
    s = await SqliteStore.open(path)
    await s.bind_chain(31337, genesis_a)
    await s.bind_chain(31337, genesis_a)  # the same chain again: fine
    await s.close()
    s = await SqliteStore.open(path)  # after a restart too
    try:
        await s.bind_chain(31337, genesis_a)
        with pytest.raises(StoreError, match=r"holds the state of chain 31337 .* not of chain 31337"):
            await s.bind_chain(31337, genesis_b)
        with pytest.raises(StoreError, match="not of chain 1 "):
            await s.bind_chain(1, genesis_a)
    finally:
        await s.close()
