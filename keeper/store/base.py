"""The one interface of the keeper's durable state: the accounts index, checkpoints with the recent
block hashes that reveal a reorg, the adapters' mirror state, and the transaction journal.

Every method is a coroutine; every write is atomic (a WriteBatch commits all of its operations or
none). Nothing secret is stored: signed transactions are public once sent, keys never enter."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from keeper.store.types import (
    Attempt,
    AttemptOutcome,
    Blob,
    Checkpoint,
    MirrorRow,
    NewAttempt,
    NewTx,
    Rollback,
    Transition,
    TxRecord,
    TxStatus,
    WriteBatch,
)

# The chain's hash of a block number (None when the chain has no such block, e.g. shorter now).
GetHash = Callable[[int], Awaitable[str | None]]


class Store(Protocol):
    async def close(self) -> None:
        """Finish pending writes and release the database; later calls raise StoreError."""

    async def apply(self, batch: WriteBatch) -> None:
        """Commit every operation of the batch in one transaction."""

    # ---- accounts index ----
    async def add_accounts(self, protocol: str, accounts: Mapping[str, int]) -> int:
        """account -> block first seen; returns how many were new."""

    async def accounts(self, protocol: str) -> dict[str, int]:
        """Every account of the protocol -> the block it was first seen at."""

    # ---- checkpoints and reorgs ----
    async def set_checkpoint(self, protocol: str, stream: str, block: int, block_hash: str) -> None:
        """Record that the stream has processed everything up to ``block`` (never below its current
        checkpoint: moving back is rollback's job)."""

    async def checkpoint(self, protocol: str, stream: str) -> Checkpoint | None: ...

    async def checkpoints(self) -> list[Checkpoint]: ...

    async def recent_blocks(self, protocol: str, stream: str) -> list[tuple[int, str]]:
        """The (number, hash) pairs kept for the stream, newest first."""

    async def fork_point(self, get_hash: GetHash) -> int | None:
        """The highest recorded block whose every recorded hash still matches the chain (the
        highest recorded block when nothing changed); None when no recorded block matches (the
        reorg is deeper than the history kept, or nothing is recorded): re-index from the start."""

    async def rollback(self, to_block: int) -> Rollback:
        """Forget what was recorded after ``to_block``: accounts first seen later, mirror rows and
        blobs valid later, recent hashes; checkpoints move back to their newest kept block at or
        below it; journal transactions mined later are pending again."""

    # ---- mirror state ----
    async def put_mirror(self, protocol: str, rows: list[MirrorRow]) -> None: ...

    async def mirror(self, protocol: str) -> dict[str, MirrorRow]: ...

    async def delete_mirror(self, protocol: str, keys: list[str]) -> None: ...

    async def put_blob(self, protocol: str, name: str, blob: Blob) -> None: ...

    async def blob(self, protocol: str, name: str) -> Blob | None: ...

    # ---- transaction journal ----
    async def bind_chain(self, chain_id: int, genesis_hash: str) -> None:
        """Record the chain the store's contents belong to (its id and block 0's hash) on first use;
        afterwards raise StoreError if another chain is named (a devnet restarted, another network):
        its index and journal would be wrong there, and its signed transactions valid."""
        ...

    async def add_attempt(self, attempt: NewAttempt) -> int:
        """Journal a decision; returns the attempt id."""

    async def add_transaction(self, tx: NewTx) -> TxRecord:
        """Journal a signed transaction as pending, before it is sent."""

    async def add_attempt_with(self, attempt: NewAttempt, tx: NewTx) -> tuple[int, TxRecord]:
        """``add_attempt`` and ``add_transaction`` of its first transaction (``tx.attempt_id`` is set
        to the new attempt's) in one commit: both or neither."""

    async def set_status(self, tx_hash: str, status: TxStatus, *, block: int | None = None,
                         gas_used: int | None = None, note: str | None = None) -> bool:
        """Move a transaction to ``status`` (JournalError if the change is not allowed); False when
        it already had that status (nothing written)."""

    async def attempt(self, attempt_id: int) -> Attempt: ...

    async def transaction(self, tx_hash: str) -> TxRecord | None: ...

    async def transactions(self, attempt_id: int) -> list[TxRecord]: ...

    async def unfinished(self, sender: str | None = None) -> list[TxRecord]:
        """Pending transactions (of one sender, or all), by sender and nonce."""

    async def transactions_from_nonce(self, sender: str, nonce: int) -> list[TxRecord]:
        """Every journaled transaction of the sender at ``nonce`` or above, whatever its status (what
        a rollback of the sender's nonce may have taken back), by nonce."""

    async def max_nonce(self, sender: str) -> int | None:
        """The highest nonce the journal holds for the sender."""

    async def in_flight_accounts(self, protocol: str | None = None) -> set[tuple[str, str]]:
        """(protocol, account) of every attempt with a pending transaction."""

    async def transitions(self, tx_hash: str) -> list[Transition]:
        """Every status the transaction had, oldest first, with when it changed."""

    async def outcome(self, attempt_id: int) -> AttemptOutcome:
        """The attempt's result rebuilt from the journal."""

    async def outcomes(self, since_id: int = 0) -> list[AttemptOutcome]:
        """Outcomes of every attempt after ``since_id``, oldest first (records rebuilt in bulk)."""

    async def open_attempts(self) -> list[int]:
        """Ids of attempts whose outcome is still pending."""
