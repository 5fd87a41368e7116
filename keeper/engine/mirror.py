"""Mirror: bring every adapter's account and price state to one block; with a store, persist what
the mirrors changed (one WriteBatch a block, with each protocol's "mirror" checkpoint) and restore
it at start-up, so that a restart reads only the users named by the logs since the checkpoint."""
from __future__ import annotations

import asyncio

import structlog

from keeper.protocols.base import Adapter
from keeper.store import Store, WriteBatch

log = structlog.get_logger()
STREAM = "mirror"


async def mirror(adapters: list[Adapter], block: int, *, all_details: bool = False) -> None:
    await asyncio.gather(*(a.refresh(block, all_details=all_details) for a in adapters))


def changes(adapters: list[Adapter], block: int, block_hash: str) -> WriteBatch:
    """The mirrors' rows changed at ``block`` and each protocol's mirror checkpoint."""
    batch = WriteBatch()
    for a in adapters:
        rows = a.mirror_rows()
        if rows:
            batch.put_mirror(a.name, rows)
        batch.set_checkpoint(a.name, STREAM, block, block_hash)
    return batch


async def restore(store: Store, adapters: list[Adapter]) -> None:
    """Give each adapter the rows of its last run, valid at the protocol's mirror checkpoint (never
    past its discovery checkpoint: accounts found later are read from chain)."""
    for a in adapters:
        cp = await store.checkpoint(a.name, STREAM)
        found = await store.checkpoint(a.name, "discovery")
        if cp is None or found is None or cp.block > found.block:
            continue
        rows = await store.mirror(a.name)
        if rows:
            a.restore_mirror(rows, cp.block)
            log.info("mirror.restored", protocol=a.name, rows=len(rows), block=cp.block)
