"""The transaction journal on SQLite: attempts, their transactions written before a send, every
status change with when, and the queries a transaction manager reconciles from. A mixin of
SqliteStore (its connection, worker thread and transactions)."""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from eth_utils import is_hex_address, to_checksum_address

from keeper.store.types import (
    MINED,
    TRANSITIONS,
    Attempt,
    AttemptOutcome,
    Decision,
    JournalError,
    NewAttempt,
    NewTx,
    Transition,
    TxKind,
    TxRecord,
    TxStatus,
    outcome_of,
)

T = TypeVar("T")
_TX_COLUMNS = ("id, attempt_id, kind, sender, nonce, hash, max_fee, max_priority, gas_limit, raw, replaces, "
               "status, block, gas_used, created_at, updated_at")


def _hash(h: str, what: str) -> str:
    if not isinstance(h, str) or not h.startswith("0x") or len(h) != 66:
        raise JournalError(f"{what}: a transaction hash is 0x and 64 hex digits, got {h!r}")
    return h.lower()


def _tx(row: tuple) -> TxRecord:
    (id_, attempt_id, kind, sender, nonce, h, max_fee, max_priority, gas_limit, raw, replaces,
     status, block, gas_used, created_at, updated_at) = row
    return TxRecord(attempt_id=attempt_id, kind=TxKind(kind), sender=sender, nonce=nonce, tx_hash=h,
                    max_fee=int(max_fee), max_priority=int(max_priority), gas_limit=gas_limit, raw=raw,
                    replaces=replaces, id=id_, status=TxStatus(status), block=block, gas_used=gas_used,
                    created_at=created_at, updated_at=updated_at)


class SqliteJournal:
    _clock: Callable[[], float]

    if TYPE_CHECKING:  # provided by SqliteStore
        async def _run(self, fn: Callable[..., T], *args: Any) -> T: ...

        def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

        def _c(self) -> sqlite3.Connection: ...

    async def add_attempt(self, attempt: NewAttempt) -> int:
        return await self._run(self._write, self._attempt_writer(attempt))

    async def add_attempt_with(self, attempt: NewAttempt, tx: NewTx) -> tuple[int, TxRecord]:
        write_attempt = self._attempt_writer(attempt)

        def w(c: sqlite3.Connection) -> tuple[int, TxRecord]:
            aid = write_attempt(c)
            return aid, self._tx_writer(replace(tx, attempt_id=aid))(c)
        return await self._run(self._write, w)

    def _attempt_writer(self, attempt: NewAttempt) -> Callable[[sqlite3.Connection], int]:
        if not attempt.protocol or not attempt.accounts or any(not a for a in attempt.accounts):
            raise JournalError(f"attempt needs a protocol and at least one account, got {attempt.protocol!r} "
                               f"{attempt.accounts!r}")
        if attempt.created_block < 0:
            raise JournalError(f"attempt created_block must be >= 0, got {attempt.created_block}")
        decision = Decision(attempt.decision)
        try:
            details = json.dumps(dict(attempt.details), sort_keys=True)
        except (TypeError, ValueError) as e:
            raise JournalError(f"attempt details must be JSON values: {e}") from None

        def w(c: sqlite3.Connection) -> int:
            cur = c.execute("INSERT INTO attempts (protocol, plan_kind, decision, code, created_block, created_at, "
                            "details) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (attempt.protocol, attempt.plan_kind, decision, attempt.code, attempt.created_block,
                             self._clock(), details))
            aid = cur.lastrowid
            assert aid is not None
            c.executemany("INSERT OR IGNORE INTO attempt_accounts VALUES (?, ?, ?)",
                          [(aid, a, i) for i, a in enumerate(attempt.accounts)])
            return aid
        return w

    async def add_transaction(self, tx: NewTx) -> TxRecord:
        return await self._run(self._write, self._tx_writer(tx))

    def _tx_writer(self, tx: NewTx) -> Callable[[sqlite3.Connection], TxRecord]:
        h = _hash(tx.tx_hash, "add_transaction")
        replaces = _hash(tx.replaces, "add_transaction replaces") if tx.replaces else None
        if not is_hex_address(tx.sender):
            raise JournalError(f"add_transaction {h}: sender is not an address: {tx.sender!r}")
        sender = to_checksum_address(tx.sender)
        if min(tx.nonce, tx.max_fee, tx.max_priority, tx.gas_limit) < 0:
            raise JournalError(f"add_transaction {h}: nonce, fees and gas limit must be >= 0")
        if not tx.raw.startswith("0x") or len(tx.raw) < 4:
            raise JournalError(f"add_transaction {h}: raw must be the signed transaction as 0x-hex")
        kind = TxKind(tx.kind)

        def w(c: sqlite3.Connection) -> TxRecord:
            now = self._clock()
            if c.execute("SELECT 1 FROM attempts WHERE id = ?", (tx.attempt_id,)).fetchone() is None:
                raise JournalError(f"add_transaction {h}: no attempt {tx.attempt_id}")
            if c.execute("SELECT 1 FROM transactions WHERE hash = ?", (h,)).fetchone():
                raise JournalError(f"add_transaction: {h} is already journaled")
            if replaces is not None:
                old = c.execute("SELECT sender, nonce, status FROM transactions WHERE hash = ?", (replaces,)).fetchone()
                if old is None:
                    raise JournalError(f"add_transaction {h}: replaces unknown transaction {replaces}")
                if (old[0], old[1]) != (sender, tx.nonce):
                    raise JournalError(f"add_transaction {h}: a replacement must use the sender and nonce of "
                                       f"{replaces} ({old[0]} nonce {old[1]})")
                new_status = TxStatus.CANCELLED if kind == TxKind.CANCEL else TxStatus.REPLACED
                self._transition(c, replaces, new_status, None, None, f"by {h}", now)
            cur = c.execute(
                "INSERT INTO transactions (attempt_id, kind, sender, nonce, hash, max_fee, max_priority, gas_limit, "
                "raw, replaces, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (tx.attempt_id, kind, sender, tx.nonce, h, str(tx.max_fee), str(tx.max_priority), tx.gas_limit,
                 tx.raw.lower(), replaces, TxStatus.PENDING, now, now))
            c.execute("INSERT INTO tx_transitions (tx_id, status, block, at, note) VALUES (?, ?, NULL, ?, NULL)",
                      (cur.lastrowid, TxStatus.PENDING, now))
            return _tx(c.execute(f"SELECT {_TX_COLUMNS} FROM transactions WHERE id = ?", (cur.lastrowid,)).fetchone())
        return w

    def _transition(self, c: sqlite3.Connection, h: str, status: TxStatus, block: int | None,
                    gas_used: int | None, note: str | None, now: float) -> bool:
        row = c.execute("SELECT id, status FROM transactions WHERE hash = ?", (h,)).fetchone()
        if row is None:
            raise JournalError(f"no journaled transaction {h}")
        tx_id, old = row[0], TxStatus(row[1])
        if old == status:
            return False
        if status not in TRANSITIONS[old]:
            raise JournalError(f"transaction {h}: {old} -> {status} is not allowed")
        if status in MINED and block is None:
            raise JournalError(f"transaction {h}: {status} needs the block it was mined in")
        mined = status in MINED
        c.execute("UPDATE transactions SET status = ?, block = ?, gas_used = ?, updated_at = ? WHERE id = ?",
                  (status, block if mined else None, gas_used if mined else None, now, tx_id))
        c.execute("INSERT INTO tx_transitions (tx_id, status, block, at, note) VALUES (?, ?, ?, ?, ?)",
                  (tx_id, status, block, now, note))
        return True

    async def set_status(self, tx_hash: str, status: TxStatus, *, block: int | None = None,
                         gas_used: int | None = None, note: str | None = None) -> bool:
        h = _hash(tx_hash, "set_status")
        st = TxStatus(status)
        return await self._run(self._write, lambda c: self._transition(c, h, st, block, gas_used, note,
                                                                       self._clock()))

    async def transaction(self, tx_hash: str) -> TxRecord | None:
        h = _hash(tx_hash, "transaction")

        def q() -> TxRecord | None:
            row = self._c().execute(f"SELECT {_TX_COLUMNS} FROM transactions WHERE hash = ?", (h,)).fetchone()
            return _tx(row) if row else None
        return await self._run(q)

    async def transactions(self, attempt_id: int) -> list[TxRecord]:
        def q() -> list[TxRecord]:
            return [_tx(r) for r in self._c().execute(
                f"SELECT {_TX_COLUMNS} FROM transactions WHERE attempt_id = ? ORDER BY id", (attempt_id,))]
        return await self._run(q)

    async def unfinished(self, sender: str | None = None) -> list[TxRecord]:
        where, args = "status = ?", [TxStatus.PENDING.value]
        if sender is not None:
            where += " AND sender = ?"
            args.append(to_checksum_address(sender))

        def q() -> list[TxRecord]:
            return [_tx(r) for r in self._c().execute(
                f"SELECT {_TX_COLUMNS} FROM transactions WHERE {where} ORDER BY sender, nonce, id", args)]
        return await self._run(q)

    async def transactions_from_nonce(self, sender: str, nonce: int) -> list[TxRecord]:
        s = to_checksum_address(sender)

        def q() -> list[TxRecord]:
            return [_tx(r) for r in self._c().execute(
                f"SELECT {_TX_COLUMNS} FROM transactions WHERE sender = ? AND nonce >= ? ORDER BY nonce, id",
                (s, nonce))]
        return await self._run(q)

    async def max_nonce(self, sender: str) -> int | None:
        s = to_checksum_address(sender)
        return await self._run(lambda: self._c().execute(
            "SELECT max(nonce) FROM transactions WHERE sender = ?", (s,)).fetchone()[0])

    async def in_flight_accounts(self, protocol: str | None = None) -> set[tuple[str, str]]:
        sql = ("SELECT DISTINCT a.protocol, acc.account FROM transactions t JOIN attempts a ON a.id = t.attempt_id "
               "JOIN attempt_accounts acc ON acc.attempt_id = a.id WHERE t.status = ?")
        args: list[Any] = [TxStatus.PENDING.value]
        if protocol is not None:
            sql += " AND a.protocol = ?"
            args.append(protocol)
        return await self._run(lambda: {(p, a) for p, a in self._c().execute(sql, args)})

    async def transitions(self, tx_hash: str) -> list[Transition]:
        h = _hash(tx_hash, "transitions")

        def q() -> list[Transition]:
            return [Transition(h, TxStatus(s), b, at, note) for s, b, at, note in self._c().execute(
                "SELECT x.status, x.block, x.at, x.note FROM tx_transitions x JOIN transactions t ON t.id = x.tx_id "
                "WHERE t.hash = ? ORDER BY x.id", (h,))]
        return await self._run(q)

    def _attempt(self, c: sqlite3.Connection, attempt_id: int) -> Attempt:
        row = c.execute("SELECT protocol, plan_kind, decision, code, created_block, created_at, details "
                        "FROM attempts WHERE id = ?", (attempt_id,)).fetchone()
        if row is None:
            raise JournalError(f"no attempt {attempt_id}")
        protocol, plan_kind, decision, code, created_block, created_at, details = row
        accounts = tuple(a for (a,) in c.execute(
            "SELECT account FROM attempt_accounts WHERE attempt_id = ? ORDER BY position", (attempt_id,)))
        return Attempt(protocol=protocol, accounts=accounts, plan_kind=plan_kind, decision=Decision(decision),
                       created_block=created_block, code=code, details=json.loads(details), id=attempt_id,
                       created_at=created_at)

    async def attempt(self, attempt_id: int) -> Attempt:
        return await self._run(lambda: self._attempt(self._c(), attempt_id))

    async def outcome(self, attempt_id: int) -> AttemptOutcome:
        def q() -> AttemptOutcome:
            c = self._c()
            a = self._attempt(c, attempt_id)
            txs = tuple(_tx(r) for r in c.execute(
                f"SELECT {_TX_COLUMNS} FROM transactions WHERE attempt_id = ? ORDER BY id", (attempt_id,)))
            return outcome_of(a, txs)
        return await self._run(q)

    async def outcomes(self, since_id: int = 0) -> list[AttemptOutcome]:
        def q() -> list[AttemptOutcome]:
            c = self._c()
            txs: dict[int, list[TxRecord]] = {}
            for r in c.execute(f"SELECT {_TX_COLUMNS} FROM transactions WHERE attempt_id > ? ORDER BY id", (since_id,)):
                t = _tx(r)
                txs.setdefault(t.attempt_id, []).append(t)
            ids = [i for (i,) in c.execute("SELECT id FROM attempts WHERE id > ? ORDER BY id", (since_id,))]
            return [outcome_of(self._attempt(c, i), tuple(txs.get(i, ()))) for i in ids]
        return await self._run(q)

    async def open_attempts(self) -> list[int]:
        return await self._run(lambda: [i for (i,) in self._c().execute(
            "SELECT DISTINCT attempt_id FROM transactions WHERE status = ? ORDER BY attempt_id",
            (TxStatus.PENDING.value,))])


