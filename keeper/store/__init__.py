"""The keeper's durable state behind one interface (Store); SQLite is the embedded default."""
from __future__ import annotations

from typing import TYPE_CHECKING

from keeper.store.base import GetHash, Store
from keeper.store.sqlite import MEMORY, SqliteStore
from keeper.store.types import (
    Attempt,
    AttemptOutcome,
    Blob,
    Checkpoint,
    Decision,
    JournalError,
    MirrorRow,
    NewAttempt,
    NewTx,
    OutcomeStatus,
    Rollback,
    StoreError,
    Transition,
    TxKind,
    TxRecord,
    TxStatus,
    WriteBatch,
)

if TYPE_CHECKING:
    from keeper.config import StoreConfig

__all__ = [
    "MEMORY", "Attempt", "AttemptOutcome", "Blob", "Checkpoint", "Decision", "GetHash", "JournalError",
    "MirrorRow", "NewAttempt", "NewTx", "OutcomeStatus", "Rollback", "SqliteStore", "Store", "StoreError",
    "Transition", "TxKind", "TxRecord", "TxStatus", "WriteBatch", "open_store",
]


async def open_store(cfg: StoreConfig) -> Store:
    """The store the config names ([store] path; load_config makes a relative path relative to the
    config file)."""
    return await SqliteStore.open(cfg.path, synchronous=cfg.synchronous, history=cfg.history_blocks)
