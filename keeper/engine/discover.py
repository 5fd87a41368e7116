"""Discover: read each adapter's logs from its start block (then block by block) to find accounts.

With a store, every block's new accounts and each protocol's checkpoint (block number and hash) are
committed in one WriteBatch; a restart resumes after the checkpoint without reading older logs
again, and a changed hash of the last indexed block (a reorg) rolls the index back to the fork
point (Store.fork_point) and reads the logs again from there."""
from __future__ import annotations

import asyncio
import time

import structlog

from keeper.chain.client import Chain
from keeper.protocols.base import Adapter
from keeper.store import Store, WriteBatch

log = structlog.get_logger()
STREAM = "discovery"
WINDOW_RANGES = 10  # a cold window: this many log_chunk_blocks ranges, read in one batch (in parallel)


class Progress:
    """The cold-discovery progress line: blocks done of total, accounts found, rate, ETA; logged at
    most every ``every`` seconds (and once at the end)."""

    def __init__(self, total: int, every: float):
        self.total, self.every = total, every
        self.done = self.found = 0
        self.t0 = self.last = time.monotonic()

    def add(self, blocks: int, found: int) -> None:
        self.done += blocks
        self.found += found
        now = time.monotonic()
        if now - self.last >= self.every or self.done >= self.total:
            self.last = now
            rate = self.done / max(now - self.t0, 1e-9)
            eta = (self.total - self.done) / rate if rate else None
            log.info("discover.progress", blocks=f"{self.done}/{self.total}", accounts=self.found,
                     rate_blocks_s=round(rate), eta_s=None if eta is None else round(eta, 1))


class Discovery:
    def __init__(self, adapters: list[Adapter], store: Store | None = None, *, parallel: int = 4,
                 progress_every: float = 5.0, defer_commit: bool = False):
        self.adapters = adapters
        # defer_commit: a block's writes wait in ``pending`` for the caller to commit them with its
        # own (the keeper adds the mirror's rows: one WriteBatch a block); kept until committed.
        self.defer_commit = defer_commit
        self.pending = WriteBatch()
        self.parallel = parallel  # protocols read at once during a cold discovery
        self.progress_every = progress_every
        self.store = store
        self.next_block = {a.name: a.start_block for a in adapters}
        self.indexed: tuple[int, str] | None = None  # last block indexed and its hash
        self.reorgs = 0
        self.stored: dict[str, set[str]] = {}  # per adapter: the keys the store holds (or is given)

    def _fresh(self, a: Adapter, new: int) -> set[str]:
        """The adapter's keys the store does not hold yet (also those it had before its first
        discovery, e.g. configured markets), noted as held; asked only when discovery found
        something, or nothing was stored yet (a block with no new account costs nothing)."""
        known = self.stored.setdefault(a.name, set())
        if not new and known:
            return set()
        fresh = a.account_keys() - known
        known |= fresh
        return fresh

    async def load(self) -> None:
        """Resume every adapter that can take its stored accounts after its checkpoint."""
        if self.store is None:
            return
        for a in self.adapters:
            cp = await self.store.checkpoint(a.name, STREAM)
            if cp is None or cp.block < a.start_block:
                continue
            accounts = await self.store.accounts(a.name)
            if a.restore_accounts(set(accounts)):
                self.stored[a.name] = set(accounts)
                self.next_block[a.name] = cp.block + 1
                if self.indexed is None or cp.block < self.indexed[0]:
                    self.indexed = (cp.block, cp.block_hash)
                log.info("discover.resumed", protocol=a.name, accounts=len(accounts), after_block=cp.block)

    async def advance(self, to_block: int, chain: Chain | None = None) -> None:
        block_hash = None
        if self.store is not None and chain is not None:
            header = await chain.get_block(to_block)
            block_hash = header["hash"]
            await self._check_reorg(chain, to_block, header)
        if chain is not None:
            window = chain.log_chunk_blocks * WINDOW_RANGES
            if any(to_block - self.next_block[a.name] + 1 > window for a in self.adapters):
                await self._cold(chain, to_block, block_hash, window)
                return
        batch = WriteBatch()
        for a in self.adapters:
            start = self.next_block[a.name]
            if start > to_block:
                continue
            new = await a.discover(start, to_block)
            self.next_block[a.name] = to_block + 1
            if block_hash is not None:
                # First seen at most at ``start``: a rollback to a block inside the range keeps them.
                batch.add_accounts(a.name, {k: start for k in self._fresh(a, new)})
                batch.set_checkpoint(a.name, STREAM, to_block, block_hash)
            if new:
                log.info("discover.accounts", protocol=a.name, new=new, blocks=f"{start}-{to_block}")
        if self.store is not None and block_hash is not None and batch.ops:
            self.pending.ops += batch.ops
            if not self.defer_commit:
                await self.commit()
            self.indexed = (to_block, block_hash)

    async def commit(self, extra: WriteBatch | None = None) -> None:
        """Apply the pending writes (and ``extra``) in one WriteBatch."""
        if self.store is None:
            return
        batch = WriteBatch(self.pending.ops + (extra.ops if extra else []))
        if batch.ops:
            await self.store.apply(batch)
        self.pending = WriteBatch()

    async def _cold(self, chain: Chain, to_block: int, to_hash: str | None, window: int) -> None:
        """Every protocol read window by window (its windows in order: a market's creation comes
        before its positions), up to ``parallel`` protocols at once; each window's accounts and
        checkpoint committed together, so an interrupted discovery resumes after the last window."""
        todo = [a for a in self.adapters if self.next_block[a.name] <= to_block]
        progress = Progress(sum(to_block - self.next_block[a.name] + 1 for a in todo), self.progress_every)
        slots = asyncio.Semaphore(self.parallel)

        async def one(a: Adapter) -> None:
            async with slots:
                while (start := self.next_block[a.name]) <= to_block:
                    end = min(start + window - 1, to_block)
                    new = await a.discover(start, end)
                    if self.store is not None:
                        h = to_hash if end == to_block and to_hash else (await chain.get_block(end))["hash"]
                        await self.store.apply(WriteBatch()
                                               .add_accounts(a.name, {k: start for k in self._fresh(a, new)})
                                               .set_checkpoint(a.name, STREAM, end, h))
                    self.next_block[a.name] = end + 1
                    progress.add(end - start + 1, new)
        tasks = [asyncio.ensure_future(one(a)) for a in todo]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            raise
        if to_hash is not None:
            self.indexed = (to_block, to_hash)

    async def _check_reorg(self, chain: Chain, to_block: int, header: dict) -> None:
        if self.indexed is None or self.store is None:
            return
        block, known = self.indexed
        if block == to_block - 1:
            same = header["parentHash"].lower() == known.lower()
        elif block < to_block:
            same = (await chain.get_block(block))["hash"].lower() == known.lower()
        else:
            same = header["hash"].lower() == known.lower() if block == to_block else False
        if same:
            return

        async def get_hash(n: int) -> str | None:
            try:
                return str((await chain.get_block(n))["hash"])
            except Exception:
                return None
        self.pending = WriteBatch()  # writes about the replaced blocks
        fork = await self.store.fork_point(get_hash)
        to = -1 if fork is None else fork
        rolled = await self.store.rollback(to)
        self.reorgs += 1
        log.warning("discover.reorg", indexed_block=block, fork_point=fork, forgotten_accounts=rolled.accounts)
        for a in self.adapters:
            self.next_block[a.name] = min(self.next_block[a.name], max(a.start_block, to + 1))
            a.forget_state()
            # What the rollback left; what the adapter still holds from the replaced blocks is not
            # written again (the adapter drops nothing on a rollback; its mirror is read again).
            self.stored[a.name] = set(await self.store.accounts(a.name)) | a.account_keys()
        self.indexed = None if fork is None else (fork, (await get_hash(fork)) or "")
