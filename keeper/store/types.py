"""What the durable store holds: checkpoints, mirror rows, journal attempts and transactions, and
the write operations a WriteBatch groups into one atomic commit."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

from keeper.errors import KeeperError

# JSON values an attempt's details may hold (integers of any size are kept exactly).
JsonValue: TypeAlias = bool | int | str | list["JsonValue"] | dict[str, "JsonValue"] | None


class StoreError(KeeperError):
    """The store cannot do what was asked (closed, bad argument, database of a newer keeper)."""


class JournalError(StoreError):
    """A journal write that breaks its rules (unknown transaction, forbidden status change)."""


# ---- index, checkpoints, mirror -------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """The last block a (protocol, stream) has fully processed, e.g. ("aave_v3", "discovery")."""
    protocol: str
    stream: str
    block: int
    block_hash: str
    updated_at: float = 0.0


@dataclass(frozen=True)
class MirrorRow:
    """One key of an adapter's mirror (an account, or any key the adapter chooses): ``data`` is the
    adapter's own encoding (``version`` says which), valid as of the end of ``block``."""
    key: str
    version: int
    block: int
    data: bytes


@dataclass(frozen=True)
class Blob:
    """An opaque, versioned piece of an adapter's mirror (e.g. market parameters), valid as of
    the end of ``block``."""
    version: int
    block: int
    data: bytes


@dataclass(frozen=True)
class Rollback:
    """What rollback(to_block) removed or moved back."""
    to_block: int
    accounts: int  # accounts first seen after to_block, forgotten
    mirror_rows: int
    blobs: int
    checkpoints: int  # checkpoints moved back (or removed when no older one was kept)
    unmined: int  # journal transactions mined after to_block, pending again


@dataclass(frozen=True)
class AddAccounts:
    protocol: str
    accounts: tuple[tuple[str, int], ...]  # (account, block first seen)


@dataclass(frozen=True)
class SetCheckpoint:
    protocol: str
    stream: str
    block: int
    block_hash: str


@dataclass(frozen=True)
class PutMirror:
    protocol: str
    rows: tuple[MirrorRow, ...]


@dataclass(frozen=True)
class DeleteMirror:
    protocol: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class PutBlob:
    protocol: str
    name: str
    blob: Blob


Op: TypeAlias = AddAccounts | SetCheckpoint | PutMirror | DeleteMirror | PutBlob


def _check_block(block: int, what: str) -> None:
    if not isinstance(block, int) or isinstance(block, bool) or block < 0:
        raise StoreError(f"{what}: block must be a non-negative integer, got {block!r}")


def _check_hash(h: str, what: str) -> str:
    if not isinstance(h, str) or not h.startswith("0x") or len(h) != 66:
        raise StoreError(f"{what}: block hash must be 0x and 64 hex digits, got {h!r}")
    return h.lower()


@dataclass
class WriteBatch:
    """Writes committed together by Store.apply: all of them or none (e.g. a block's new accounts,
    its mirror rows and the checkpoint that says the block is done)."""
    ops: list[Op] = field(default_factory=list)

    def add_accounts(self, protocol: str, accounts: Mapping[str, int]) -> WriteBatch:
        """account -> block first seen; an account already known keeps the earlier block."""
        for a, b in accounts.items():
            if not a:
                raise StoreError(f"add_accounts({protocol}): empty account")
            _check_block(b, f"add_accounts({protocol}, {a})")
        self.ops.append(AddAccounts(protocol, tuple(accounts.items())))
        return self

    def set_checkpoint(self, protocol: str, stream: str, block: int, block_hash: str) -> WriteBatch:
        _check_block(block, f"set_checkpoint({protocol}, {stream})")
        self.ops.append(SetCheckpoint(protocol, stream, block,
                                      _check_hash(block_hash, f"set_checkpoint({protocol}, {stream})")))
        return self

    def put_mirror(self, protocol: str, rows: list[MirrorRow] | tuple[MirrorRow, ...]) -> WriteBatch:
        for r in rows:
            _check_block(r.block, f"put_mirror({protocol}, {r.key})")
            if not isinstance(r.data, bytes):
                raise StoreError(f"put_mirror({protocol}, {r.key}): data must be bytes")
        self.ops.append(PutMirror(protocol, tuple(rows)))
        return self

    def delete_mirror(self, protocol: str, keys: list[str] | tuple[str, ...]) -> WriteBatch:
        self.ops.append(DeleteMirror(protocol, tuple(keys)))
        return self

    def put_blob(self, protocol: str, name: str, blob: Blob) -> WriteBatch:
        _check_block(blob.block, f"put_blob({protocol}, {name})")
        if not isinstance(blob.data, bytes):
            raise StoreError(f"put_blob({protocol}, {name}): data must be bytes")
        self.ops.append(PutBlob(protocol, name, blob))
        return self


# ---- journal ------------------------------------------------------------------------------


class Decision(StrEnum):
    SEND = "send"  # transactions follow
    SKIP = "skip"  # nothing sent; ``code`` says why
    DRY_RUN = "dry-run"  # simulated, not sent


class TxKind(StrEnum):
    APPROVAL = "approval"
    LIQUIDATION = "liquidation"  # any transaction of the plan itself
    CANCEL = "cancel"  # a self-transfer at the nonce of a transaction no longer wanted


class TxStatus(StrEnum):
    PENDING = "pending"  # signed and journaled; sent or about to be; not mined
    CONFIRMED = "confirmed"  # mined, status 1
    REVERTED = "reverted"  # mined, status 0
    DROPPED = "dropped"  # gone: not mined, not in the mempool, its nonce used by nothing of ours
    REPLACED = "replaced"  # superseded by a fee-bumped transaction at the same nonce
    CANCELLED = "cancelled"  # superseded by a cancel transaction at the same nonce


S = TxStatus
# Status changes the journal accepts. A replaced or cancelled transaction can still be mined (it
# won the race against its replacement); a dropped one can be re-broadcast or turn up mined; a
# mined one becomes pending again only when a reorg takes its block away (Store.rollback).
TRANSITIONS: dict[TxStatus, frozenset[TxStatus]] = {
    S.PENDING: frozenset({S.CONFIRMED, S.REVERTED, S.DROPPED, S.REPLACED, S.CANCELLED}),
    S.REPLACED: frozenset({S.CONFIRMED, S.REVERTED, S.DROPPED}),
    S.CANCELLED: frozenset({S.CONFIRMED, S.REVERTED, S.DROPPED}),
    S.DROPPED: frozenset({S.PENDING, S.CONFIRMED, S.REVERTED}),
    S.CONFIRMED: frozenset({S.PENDING}),
    S.REVERTED: frozenset({S.PENDING}),
}
MINED = frozenset({S.CONFIRMED, S.REVERTED})


@dataclass(frozen=True)
class NewAttempt:
    """A decision about one opportunity, journaled before anything is sent for it."""
    protocol: str
    accounts: tuple[str, ...]  # accounts the plan covers (one, or several for a batch plan)
    plan_kind: str  # the plan's kind, e.g. "liquidationCall", "absorb+buyCollateral"
    decision: Decision
    created_block: int
    code: str | None = None  # skip code when decision is SKIP
    details: Mapping[str, JsonValue] = field(default_factory=dict)  # figures for reports


@dataclass(frozen=True)
class Attempt(NewAttempt):
    id: int = 0
    created_at: float = 0.0


@dataclass(frozen=True)
class NewTx:
    """A signed transaction, journaled before it is sent (raw: the signed bytes as 0x-hex; public
    once sent, and enough to re-broadcast it)."""
    attempt_id: int
    kind: TxKind
    sender: str
    nonce: int
    tx_hash: str
    max_fee: int  # maxFeePerGas, wei
    max_priority: int  # maxPriorityFeePerGas, wei
    gas_limit: int
    raw: str
    replaces: str | None = None  # hash of the transaction this one replaces (same nonce)


@dataclass(frozen=True)
class TxRecord(NewTx):
    id: int = 0
    status: TxStatus = TxStatus.PENDING
    block: int | None = None
    gas_used: int | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True)
class Transition:
    tx_hash: str
    status: TxStatus
    block: int | None
    at: float
    note: str | None = None


class OutcomeStatus(StrEnum):
    SKIPPED = "skipped"
    DRY_RUN = "dry-run"
    NOT_SENT = "not-sent"  # decided to send, nothing journaled (stopped before signing)
    PENDING = "pending"  # something still in flight
    CONFIRMED = "confirmed"
    REVERTED = "reverted"
    CANCELLED = "cancelled"  # a cancel transaction was mined in its place
    DROPPED = "dropped"  # nothing of it was mined


@dataclass(frozen=True)
class AttemptOutcome:
    """An attempt's result rebuilt from the journal alone."""
    attempt: Attempt
    status: OutcomeStatus
    txs: tuple[TxRecord, ...]
    tx: TxRecord | None  # the plan's last mined transaction (confirmed or reverted), if any
    block: int | None  # block of that transaction
    gas_used: int  # all mined transactions of the attempt (approvals and cancels included)


def outcome_of(attempt: Attempt, txs: tuple[TxRecord, ...]) -> AttemptOutcome:
    """Rules: skip and dry-run decisions are final; anything pending means pending; a mined cancel
    means cancelled; else a reverted plan transaction means reverted, a confirmed one confirmed;
    else dropped."""
    mined = [t for t in txs if t.status in MINED]
    gas = sum(t.gas_used or 0 for t in mined)
    plan_mined = sorted((t for t in mined if t.kind != TxKind.CANCEL), key=lambda t: t.nonce)
    last = plan_mined[-1] if plan_mined else None
    if attempt.decision == Decision.SKIP:
        status = OutcomeStatus.SKIPPED
    elif attempt.decision == Decision.DRY_RUN:
        status = OutcomeStatus.DRY_RUN
    elif not txs:
        status = OutcomeStatus.NOT_SENT
    elif any(t.status == TxStatus.PENDING for t in txs):
        status = OutcomeStatus.PENDING
    elif any(t.kind == TxKind.CANCEL and t.status in MINED for t in txs):
        status = OutcomeStatus.CANCELLED
    elif any(t.status == TxStatus.REVERTED for t in plan_mined):
        status = OutcomeStatus.REVERTED
        last = next(t for t in reversed(plan_mined) if t.status == TxStatus.REVERTED)
    elif any(t.kind == TxKind.LIQUIDATION and t.status == TxStatus.CONFIRMED for t in plan_mined):
        status = OutcomeStatus.CONFIRMED
    else:
        status = OutcomeStatus.DROPPED
    return AttemptOutcome(attempt, status, txs, last, last.block if last else None, gas)
