"""Mirror: bring every adapter's account and price state to one block."""
from __future__ import annotations

import asyncio

from keeper.protocols.base import Adapter


async def mirror(adapters: list[Adapter], block: int, *, all_details: bool = False) -> None:
    await asyncio.gather(*(a.refresh(block, all_details=all_details) for a in adapters))
