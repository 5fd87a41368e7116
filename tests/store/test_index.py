"""The store's accounts index, checkpoints and mirror state: round trips, a reorg on a scripted
chain of hashes rolled back to the fork point, and atomic batches."""
from __future__ import annotations

import pytest

from keeper.store import Blob, MirrorRow, SqliteStore, StoreError, WriteBatch
from keeper.store import sqlite as store_sqlite
from keeper.store.types import PutMirror


def h(n: int, fork: str = "a") -> str:
    """The hash of block n on branch ``fork`` of a scripted chain."""
    return "0x" + f"{fork}{n}".encode().hex().rjust(64, "0")


@pytest.fixture
async def store():
    s = await SqliteStore.open(":memory:", history=8)
    yield s
    await s.close()


async def test_accounts_keep_the_block_first_seen(store):
    assert await store.add_accounts("aave_v3", {"0xA": 10, "0xB": 12}) == 2
    assert await store.add_accounts("aave_v3", {"0xB": 11, "0xC": 15, "0xA": 20}) == 1
    assert await store.accounts("aave_v3") == {"0xA": 10, "0xB": 11, "0xC": 15}
    assert await store.accounts("comet") == {}


async def test_mirror_rows_and_blobs_round_trip(store):
    rows = [MirrorRow("0xA", 1, 5, b"\x00\x01"), MirrorRow("0xB", 1, 6, bytes(range(256)))]
    await store.put_mirror("morpho", rows)
    await store.put_mirror("morpho", [MirrorRow("0xA", 2, 7, b"new")])
    got = await store.mirror("morpho")
    assert got == {"0xA": MirrorRow("0xA", 2, 7, b"new"), "0xB": rows[1]}
    await store.delete_mirror("morpho", ["0xB"])
    assert list(await store.mirror("morpho")) == ["0xA"]
    await store.put_blob("morpho", "markets", Blob(3, 9, b"\xff" * 1000))
    assert await store.blob("morpho", "markets") == Blob(3, 9, b"\xff" * 1000)
    assert await store.blob("morpho", "other") is None


async def test_checkpoints_keep_recent_hashes_and_never_move_back(store):
    for n in range(1, 21):
        await store.set_checkpoint("aave_v3", "mirror", n, h(n))
    cp = await store.checkpoint("aave_v3", "mirror")
    assert (cp.block, cp.block_hash) == (20, h(20))
    assert await store.recent_blocks("aave_v3", "mirror") == [(n, h(n)) for n in range(20, 12, -1)]  # history=8
    with pytest.raises(StoreError, match="cannot set it back to 19"):
        await store.set_checkpoint("aave_v3", "mirror", 19, h(19))
    with pytest.raises(StoreError, match="block hash"):
        await store.set_checkpoint("aave_v3", "mirror", 21, "0x1234")
    assert await store.checkpoint("aave_v3", "discovery") is None


async def test_reorg_is_rolled_back_to_the_fork_point(store):
    chain = {n: h(n) for n in range(11)}

    async def get_hash(n: int) -> str | None:
        return chain.get(n)

    # Block by block: accounts, mirror rows and checkpoints of two streams (one every block, one
    # every 4 blocks), each block committed as one batch.
    for n in range(1, 11):
        b = WriteBatch().add_accounts("aave_v3", {f"0x{n:040x}": n})
        b.put_mirror("aave_v3", [MirrorRow(f"0x{n:040x}", 1, n, n.to_bytes(2, "big")),
                                 MirrorRow("0xshared", 1, n, b"at %d" % n)])
        b.set_checkpoint("aave_v3", "mirror", n, chain[n])
        if n % 4 == 0:
            b.set_checkpoint("aave_v3", "discovery", n, chain[n])
            b.put_blob("aave_v3", "reserves", Blob(1, n, b"reserves at %d" % n))
        await store.apply(b)
    assert await store.fork_point(get_hash) == 10  # nothing changed

    # The chain reorganises from block 7: blocks 7.. get other hashes, and the chain is shorter.
    for n in range(7, 10):
        chain[n] = h(n, "b")
    del chain[10]
    assert await store.fork_point(get_hash) == 6
    rb = await store.rollback(6)
    assert (rb.accounts, rb.checkpoints, rb.blobs) == (4, 2, 1)
    assert rb.mirror_rows == 5  # rows of accounts 7..10 and the shared row (valid at block 10)
    assert sorted((await store.accounts("aave_v3")).values()) == [1, 2, 3, 4, 5, 6]
    mirror = await store.mirror("aave_v3")
    assert sorted(r.block for r in mirror.values()) == [1, 2, 3, 4, 5, 6]
    assert "0xshared" not in mirror  # its state at block 6 is unknown: the adapter re-reads it
    assert await store.blob("aave_v3", "reserves") is None  # written at 8
    cp = await store.checkpoint("aave_v3", "mirror")
    assert (cp.block, cp.block_hash) == (6, h(6))
    cp = await store.checkpoint("aave_v3", "discovery")
    assert (cp.block, cp.block_hash) == (4, h(4))  # its newest kept block at or below 6
    assert await store.fork_point(get_hash) == 6

    # Re-indexing the new branch goes on from there.
    await store.set_checkpoint("aave_v3", "mirror", 7, chain[7])
    assert await store.fork_point(get_hash) == 7


async def test_a_reorg_deeper_than_the_history_has_no_fork_point(store):
    for n in range(1, 31):
        await store.set_checkpoint("comet", "mirror", n, h(n))

    async def other_chain(n: int) -> str | None:
        return h(n, "z")
    assert await store.fork_point(other_chain) is None  # only 8 blocks kept: re-index from the start
    rb = await store.rollback(-1)
    assert rb.checkpoints == 1
    assert await store.checkpoints() == []


async def test_a_failed_batch_writes_nothing(store, monkeypatch):
    await store.apply(WriteBatch().add_accounts("comet", {"0xA": 1}).set_checkpoint("comet", "mirror", 1, h(1)))

    def boom(self, c, op):
        raise RuntimeError("disk on fire")
    monkeypatch.setitem(store_sqlite._OPS, PutMirror, boom)
    batch = (WriteBatch().add_accounts("comet", {"0xB": 2}).set_checkpoint("comet", "mirror", 2, h(2))
             .put_mirror("comet", [MirrorRow("0xB", 1, 2, b"x")]))
    with pytest.raises(RuntimeError, match="disk on fire"):
        await store.apply(batch)
    # Accounts and checkpoint were written before the failing operation: rolled back with it.
    assert await store.accounts("comet") == {"0xA": 1}
    assert (await store.checkpoint("comet", "mirror")).block == 1
    assert await store.recent_blocks("comet", "mirror") == [(1, h(1))]
    monkeypatch.undo()
    await store.apply(batch)  # the store is still usable
    assert await store.accounts("comet") == {"0xA": 1, "0xB": 2}


def test_bad_writes_are_named():
    with pytest.raises(StoreError, match="block must be a non-negative integer"):
        WriteBatch().add_accounts("aave_v3", {"0xA": -1})
    with pytest.raises(StoreError, match="data must be bytes"):
        WriteBatch().put_mirror("aave_v3", [MirrorRow("0xA", 1, 1, "text")])  # type: ignore[arg-type]
