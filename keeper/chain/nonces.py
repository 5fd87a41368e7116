"""Nonce manager: hands out consecutive nonces for one sender, resyncs from the node on failure."""
from __future__ import annotations

import asyncio

from keeper.chain.client import Chain


class NonceManager:
    def __init__(self, chain: Chain, address: str):
        self.chain = chain
        self.address = address
        self._next: int | None = None
        self.lock = asyncio.Lock()  # held from nonce allocation until the tx is accepted by the node

    async def peek(self) -> int:
        if self._next is None:
            self._next = await self.chain.nonce(self.address, "pending")
        return self._next

    def advance(self) -> None:
        assert self._next is not None
        self._next += 1

    async def resync(self) -> None:
        self._next = await self.chain.nonce(self.address, "pending")
