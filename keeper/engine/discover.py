"""Discover: read each adapter's logs from its start block (then block by block) to find accounts."""
from __future__ import annotations

import structlog

from keeper.protocols.base import Adapter

log = structlog.get_logger()


class Discovery:
    def __init__(self, adapters: list[Adapter]):
        self.adapters = adapters
        self.next_block = {a.name: a.start_block for a in adapters}

    async def advance(self, to_block: int) -> None:
        for a in self.adapters:
            start = self.next_block[a.name]
            if start > to_block:
                continue
            new = await a.discover(start, to_block)
            self.next_block[a.name] = to_block + 1
            if new:
                log.info("discover.accounts", protocol=a.name, new=new, blocks=f"{start}-{to_block}")
