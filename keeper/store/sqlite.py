"""The Store on SQLite (stdlib sqlite3): one connection owned by one worker thread, so writes from
any number of tasks are serialised and the event loop never blocks on the disk. WAL mode for a file;
every write is one BEGIN IMMEDIATE ... COMMIT, rolled back on any error (and by SQLite itself
after a crash), so nothing is ever half-written."""
from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

from keeper.store.base import GetHash
from keeper.store.schema import BOOTSTRAP, MIGRATIONS
from keeper.store.sqlite_journal import SqliteJournal
from keeper.store.types import (
    MINED,
    AddAccounts,
    Blob,
    Checkpoint,
    DeleteMirror,
    MirrorRow,
    Op,
    PutBlob,
    PutMirror,
    Rollback,
    SetCheckpoint,
    StoreError,
    TxStatus,
    WriteBatch,
)

T = TypeVar("T")
MEMORY = ":memory:"
class SqliteStore(SqliteJournal):
    """Open with ``await SqliteStore.open(path)``; ``":memory:"`` for a throw-away store."""

    def __init__(self, path: str, *, history: int, clock: Callable[[], float]):
        self.path = path
        self.history = history  # (number, hash) pairs kept per stream
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keeper-store")
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    @classmethod
    async def open(cls, path: str | Path = MEMORY, *, synchronous: Literal["normal", "full"] = "normal",
                   history: int = 256, clock: Callable[[], float] = time.time) -> SqliteStore:
        if history < 1:
            raise StoreError(f"store history must keep at least 1 block, got {history}")
        store = cls(str(path), history=history, clock=clock)
        try:
            await store._run(store._connect, synchronous)
        except BaseException:
            store._pool.shutdown(wait=False)
            raise
        return store

    # ---- plumbing ----

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StoreError(f"store {self.path} is closed")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _c(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"store {self.path} is not open")
        return self._conn

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run fn in one transaction (worker thread): committed whole or rolled back whole."""
        c = self._c()
        c.execute("BEGIN IMMEDIATE")
        try:
            out = fn(c)
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")
        return out

    def _connect(self, synchronous: str) -> None:
        if self.path != MEMORY:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            c = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open store {self.path}: {e}") from None
        self._conn = c
        try:
            if self.path != MEMORY:
                mode = c.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if mode != "wal":
                    raise StoreError(f"store {self.path}: WAL mode refused (journal_mode is {mode})")
            c.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
            c.execute("PRAGMA foreign_keys=ON")
            self._migrate(c)
        except sqlite3.DatabaseError as e:
            c.close()
            self._conn = None
            raise StoreError(f"store {self.path} is not a usable SQLite database: {e}") from None
        except BaseException:
            c.close()
            self._conn = None
            raise

    def _migrate(self, c: sqlite3.Connection) -> None:
        c.execute(BOOTSTRAP)
        done = {v for (v,) in c.execute("SELECT version FROM schema_migrations")}
        known = {v for v, _, _ in MIGRATIONS}
        if done - known:
            raise StoreError(f"store {self.path} has schema version {max(done)}, newer than this keeper "
                             f"knows ({max(known)}): use a newer keeper or another store path")
        for version, description, sql in MIGRATIONS:
            if version in done:
                continue
            c.execute("BEGIN IMMEDIATE")
            try:
                for stmt in sql.split(";"):
                    if stmt.strip():
                        c.execute(stmt)
                c.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, description, self._clock()))
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")

    async def schema_version(self) -> int:
        return await self._run(lambda: self._c().execute("SELECT max(version) FROM schema_migrations").fetchone()[0])

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True  # refuse new calls; those already queued run first (one FIFO thread)

        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        await asyncio.get_running_loop().run_in_executor(self._pool, _close)
        self._pool.shutdown(wait=True)

    # ---- batched writes ----

    async def apply(self, batch: WriteBatch) -> None:
        ops = list(batch.ops)
        if ops:
            await self._run(self._write, lambda c: self._apply_ops(c, ops))

    def _apply_ops(self, c: sqlite3.Connection, ops: list[Op]) -> None:
        for op in ops:
            _OPS[type(op)](self, c, op)

    def _op_add_accounts(self, c: sqlite3.Connection, op: AddAccounts) -> int:
        before = c.total_changes
        c.executemany("INSERT OR IGNORE INTO accounts VALUES (?, ?, ?)",
                      [(op.protocol, a, b) for a, b in op.accounts])
        new = c.total_changes - before
        c.executemany("UPDATE accounts SET first_block = ? WHERE protocol = ? AND account = ? AND first_block > ?",
                      [(b, op.protocol, a, b) for a, b in op.accounts])
        return new

    def _op_set_checkpoint(self, c: sqlite3.Connection, op: SetCheckpoint) -> None:
        row = c.execute("SELECT block FROM checkpoints WHERE protocol = ? AND stream = ?",
                        (op.protocol, op.stream)).fetchone()
        if row is not None and op.block < row[0]:
            raise StoreError(f"checkpoint {op.protocol}/{op.stream} is at block {row[0]}: cannot set it back to "
                             f"{op.block} (rollback moves checkpoints back)")
        c.execute("INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?) ON CONFLICT (protocol, stream) DO UPDATE SET "
                  "block = excluded.block, hash = excluded.hash, updated_at = excluded.updated_at",
                  (op.protocol, op.stream, op.block, op.block_hash, self._clock()))
        c.execute("INSERT OR REPLACE INTO checkpoint_history VALUES (?, ?, ?, ?)",
                  (op.protocol, op.stream, op.block, op.block_hash))
        c.execute("DELETE FROM checkpoint_history WHERE protocol = ? AND stream = ? AND block <= ("
                  "SELECT block FROM checkpoint_history WHERE protocol = ? AND stream = ? "
                  "ORDER BY block DESC LIMIT 1 OFFSET ?)",
                  (op.protocol, op.stream, op.protocol, op.stream, self.history))

    def _op_put_mirror(self, c: sqlite3.Connection, op: PutMirror) -> None:
        c.executemany("INSERT OR REPLACE INTO mirror_rows VALUES (?, ?, ?, ?, ?)",
                      [(op.protocol, r.key, r.version, r.block, r.data) for r in op.rows])

    def _op_delete_mirror(self, c: sqlite3.Connection, op: DeleteMirror) -> None:
        c.executemany("DELETE FROM mirror_rows WHERE protocol = ? AND key = ?", [(op.protocol, k) for k in op.keys])

    def _op_put_blob(self, c: sqlite3.Connection, op: PutBlob) -> None:
        c.execute("INSERT OR REPLACE INTO mirror_blobs VALUES (?, ?, ?, ?, ?)",
                  (op.protocol, op.name, op.blob.version, op.blob.block, op.blob.data))

    # ---- accounts index ----

    async def add_accounts(self, protocol: str, accounts: Mapping[str, int]) -> int:
        op = WriteBatch().add_accounts(protocol, accounts).ops[0]
        assert isinstance(op, AddAccounts)
        return await self._run(self._write, lambda c: self._op_add_accounts(c, op))

    async def accounts(self, protocol: str) -> dict[str, int]:
        def q() -> dict[str, int]:
            return dict(self._c().execute("SELECT account, first_block FROM accounts WHERE protocol = ?",
                                          (protocol,)).fetchall())
        return await self._run(q)

    # ---- checkpoints and reorgs ----

    async def set_checkpoint(self, protocol: str, stream: str, block: int, block_hash: str) -> None:
        await self.apply(WriteBatch().set_checkpoint(protocol, stream, block, block_hash))

    async def checkpoint(self, protocol: str, stream: str) -> Checkpoint | None:
        def q() -> Checkpoint | None:
            row = self._c().execute("SELECT protocol, stream, block, hash, updated_at FROM checkpoints "
                                    "WHERE protocol = ? AND stream = ?", (protocol, stream)).fetchone()
            return Checkpoint(*row) if row else None
        return await self._run(q)

    async def checkpoints(self) -> list[Checkpoint]:
        def q() -> list[Checkpoint]:
            return [Checkpoint(*r) for r in self._c().execute(
                "SELECT protocol, stream, block, hash, updated_at FROM checkpoints ORDER BY protocol, stream")]
        return await self._run(q)

    async def recent_blocks(self, protocol: str, stream: str) -> list[tuple[int, str]]:
        def q() -> list[tuple[int, str]]:
            return [(b, h) for b, h in self._c().execute(
                "SELECT block, hash FROM checkpoint_history WHERE protocol = ? AND stream = ? ORDER BY block DESC",
                (protocol, stream))]
        return await self._run(q)

    async def fork_point(self, get_hash: GetHash) -> int | None:
        def q() -> dict[int, set[str]]:
            out: dict[int, set[str]] = {}
            for b, h in self._c().execute("SELECT block, hash FROM checkpoint_history"):
                out.setdefault(b, set()).add(h)
            return out
        recorded = await self._run(q)
        for block in sorted(recorded, reverse=True):
            chain = await get_hash(block)
            if chain is not None and recorded[block] == {chain.lower()}:
                return block
        return None

    async def rollback(self, to_block: int) -> Rollback:
        if not isinstance(to_block, int) or to_block < -1:
            raise StoreError(f"rollback: to_block must be an integer >= -1 (-1: forget everything), got {to_block!r}")

        def w(c: sqlite3.Connection) -> Rollback:
            accounts = c.execute("DELETE FROM accounts WHERE first_block > ?", (to_block,)).rowcount
            rows = c.execute("DELETE FROM mirror_rows WHERE block > ?", (to_block,)).rowcount
            blobs = c.execute("DELETE FROM mirror_blobs WHERE block > ?", (to_block,)).rowcount
            c.execute("DELETE FROM checkpoint_history WHERE block > ?", (to_block,))
            moved = 0
            now = self._clock()
            for protocol, stream in c.execute("SELECT protocol, stream FROM checkpoints WHERE block > ?",
                                              (to_block,)).fetchall():
                moved += 1
                kept = c.execute("SELECT block, hash FROM checkpoint_history WHERE protocol = ? AND stream = ? "
                                 "ORDER BY block DESC LIMIT 1", (protocol, stream)).fetchone()
                if kept is None:
                    c.execute("DELETE FROM checkpoints WHERE protocol = ? AND stream = ?", (protocol, stream))
                else:
                    c.execute("UPDATE checkpoints SET block = ?, hash = ?, updated_at = ? WHERE protocol = ? "
                              "AND stream = ?", (kept[0], kept[1], now, protocol, stream))
            mined = c.execute(f"SELECT id, block FROM transactions WHERE block > ? AND status IN "
                              f"({','.join('?' * len(MINED))})", (to_block, *MINED)).fetchall()
            for tx_id, block in mined:
                c.execute("UPDATE transactions SET status = ?, block = NULL, gas_used = NULL, updated_at = ? "
                          "WHERE id = ?", (TxStatus.PENDING, now, tx_id))
                c.execute("INSERT INTO tx_transitions (tx_id, status, block, at, note) VALUES (?, ?, NULL, ?, ?)",
                          (tx_id, TxStatus.PENDING, now, f"reorg: block {block} rolled back to {to_block}"))
            return Rollback(to_block, accounts, rows, blobs, moved, len(mined))
        return await self._run(self._write, w)

    # ---- mirror state ----

    async def put_mirror(self, protocol: str, rows: list[MirrorRow]) -> None:
        await self.apply(WriteBatch().put_mirror(protocol, rows))

    async def delete_mirror(self, protocol: str, keys: list[str]) -> None:
        await self.apply(WriteBatch().delete_mirror(protocol, keys))

    async def mirror(self, protocol: str) -> dict[str, MirrorRow]:
        def q() -> dict[str, MirrorRow]:
            return {k: MirrorRow(k, v, b, d) for k, v, b, d in self._c().execute(
                "SELECT key, version, block, data FROM mirror_rows WHERE protocol = ?", (protocol,))}
        return await self._run(q)

    async def put_blob(self, protocol: str, name: str, blob: Blob) -> None:
        await self.apply(WriteBatch().put_blob(protocol, name, blob))

    async def bind_chain(self, chain_id: int, genesis_hash: str) -> None:
        want = f"{chain_id}:{genesis_hash.lower()}"

        def w(c: sqlite3.Connection) -> str:
            c.execute("INSERT OR IGNORE INTO store_meta (key, value) VALUES ('chain', ?)", (want,))
            return str(c.execute("SELECT value FROM store_meta WHERE key = 'chain'").fetchone()[0])
        have = await self._run(self._write, w)
        if have != want:
            cid, _, genesis = have.partition(":")
            raise StoreError(f"store {self.path} holds the state of chain {cid} (genesis {genesis[:12]}...), not of "
                             f"chain {chain_id} (genesis {genesis_hash[:12]}...): a devnet restarted or another "
                             "network; give [store] path another file (or delete this one if nothing is in flight)")

    async def blob(self, protocol: str, name: str) -> Blob | None:
        def q() -> Blob | None:
            row = self._c().execute("SELECT version, block, data FROM mirror_blobs WHERE protocol = ? AND name = ?",
                                    (protocol, name)).fetchone()
            return Blob(*row) if row else None
        return await self._run(q)


_OPS: dict[type, Callable[[SqliteStore, sqlite3.Connection, Any], Any]] = {
    AddAccounts: SqliteStore._op_add_accounts,
    SetCheckpoint: SqliteStore._op_set_checkpoint,
    PutMirror: SqliteStore._op_put_mirror,
    DeleteMirror: SqliteStore._op_delete_mirror,
    PutBlob: SqliteStore._op_put_blob,
}
