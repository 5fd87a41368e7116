"""Private submission: transactions go to a relay (a Flashbots-style builder endpoint) instead of the
public mempool, so that no one sees a liquidation before it is mined.

``Submitter`` is what the transaction manager (keeper.send.manager) calls instead of
eth_sendRawTransaction. ``RelaySubmitter`` sends
``eth_sendBundle`` (one transaction, ``blockNumber`` = the next block; sent again for every block
it misses) or ``eth_sendPrivateTransaction`` (``maxBlockNumber`` = head + max_blocks), then tracks
inclusion by the transaction's receipt. After ``max_blocks`` blocks without it, it falls back to
the public mempool or gives up, as configured, and logs why; the manager drops a transaction given
up on (past its target blocks it cannot be included) and reuses its nonce."""
from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from typing import Any, Literal, Protocol

import aiohttp
import structlog
from pydantic import Field, field_validator

from keeper.chain.client import Chain
from keeper.chain.counting import endpoint_label
from keeper.config_types import Strict

log = structlog.get_logger()


class RelayConfig(Strict):
    """Private submission through a relay; without this table transactions go to the public mempool."""
    url: str = Field(description="The relay's JSON-RPC endpoint (http or https).",
                     examples=["https://relay.flashbots.net"])
    method: Literal["eth_sendBundle", "eth_sendPrivateTransaction"] = Field(
        default="eth_sendBundle",
        description='"eth_sendBundle": a one-transaction bundle for the next block, sent again for each block '
                    'it misses; "eth_sendPrivateTransaction": sent once, valid up to max_blocks blocks.')
    max_blocks: int = Field(default=3, ge=1,
                            description="Blocks a transaction may miss before the fallback applies.")
    fallback: Literal["public", "give_up"] = Field(
        default="public",
        description='After max_blocks missed blocks: "public" sends it to the public mempool through the node, '
                    '"give_up" drops it (the liquidation is recorded as failed, why included).')
    timeout_seconds: float = Field(default=5.0, gt=0, description="Per request to the relay.")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v


class Submitter(Protocol):
    """How a signed transaction leaves the keeper (the sender calls it instead of
    eth_sendRawTransaction)."""

    async def submit(self, raw_hex: str, tx_hash: str) -> None:
        """Hand the signed transaction on; raise RpcError when it cannot be."""
        ...

    def abandoned(self, tx_hash: str) -> str | None:
        """Why the transaction will never be mined (given up on), or None while it may be."""
        ...

    async def close(self) -> None: ...


class RelaySubmitter:
    def __init__(self, cfg: RelayConfig, chain: Chain, *, poll_interval: float = 0.1,
                 on_submit: Callable[[str], None] | None = None):
        self.cfg = cfg
        self.on_submit = on_submit  # told of every transaction handed to the relay (telemetry)
        self.chain = chain
        self.poll = poll_interval
        self.relay = endpoint_label(cfg.url)
        self._ids = itertools.count(1)
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._abandoned: dict[str, str] = {}
        self.included: dict[str, int] = {}  # tx hash -> blocks it waited (through the relay)
        self.fell_back: dict[str, int] = {}  # tx hash -> blocks missed before the public mempool

    async def _call(self, method: str, params: list[Any]) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_seconds))
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        async with self._session.post(self.cfg.url, json=body) as r:
            answer = await r.json(content_type=None)
        if not isinstance(answer, dict) or "error" in answer or "result" not in answer:
            raise RuntimeError(f"relay {self.relay} answered {method} with {str(answer)[:160]}")
        return answer["result"]

    async def _send(self, raw_hex: str, head: int) -> str | None:
        """One submission for the blocks after ``head``; the reason when the relay refused it."""
        if self.cfg.method == "eth_sendBundle":
            params: list[Any] = [{"txs": [raw_hex], "blockNumber": hex(head + 1)}]
        else:
            params = [{"tx": raw_hex, "maxBlockNumber": hex(head + self.cfg.max_blocks)}]
        try:
            await self._call(self.cfg.method, params)
        except (aiohttp.ClientError, TimeoutError, RuntimeError, ValueError) as e:
            return f"{type(e).__name__}: {e}"[:200]
        return None

    async def submit(self, raw_hex: str, tx_hash: str) -> None:
        head = await self.chain.block_number()
        refused = await self._send(raw_hex, head)
        if refused is not None:
            await self._fall_back(raw_hex, tx_hash, 0, f"the relay refused it: {refused}")
            return
        if self.on_submit is not None:
            self.on_submit(tx_hash)
        log.info("relay.submitted", tx_hash=tx_hash, relay=self.relay, method=self.cfg.method, target=head + 1)
        task = asyncio.create_task(self._track(raw_hex, tx_hash, head))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _mined(self, tx_hash: str) -> bool:
        return await self.chain.rpc.request("eth_getTransactionReceipt", [tx_hash]) is not None

    async def _track(self, raw_hex: str, tx_hash: str, first: int) -> None:
        last = first
        try:
            while True:
                await asyncio.sleep(self.poll)
                if await self._mined(tx_hash):
                    self.included[tx_hash] = (await self.chain.block_number()) - first
                    log.info("relay.included", tx_hash=tx_hash, blocks=self.included[tx_hash])
                    return
                head = await self.chain.block_number()
                if head <= last:
                    continue
                if await self._mined(tx_hash):  # mined in the block that just came
                    continue
                missed = head - first
                if missed >= self.cfg.max_blocks:
                    await self._fall_back(raw_hex, tx_hash, missed,
                                          f"not included in {missed} blocks through {self.relay}")
                    return
                if self.cfg.method == "eth_sendBundle":
                    refused = await self._send(raw_hex, head)
                    if refused is not None:
                        await self._fall_back(raw_hex, tx_hash, missed, f"the relay refused it: {refused}")
                        return
                last = head
        except Exception as e:
            await self._fall_back(raw_hex, tx_hash, last - first, f"tracking failed: {type(e).__name__}: {e}")

    async def _fall_back(self, raw_hex: str, tx_hash: str, missed: int, why: str) -> None:
        if self.cfg.fallback == "give_up":
            self._abandoned[tx_hash] = f"given up: {why}"
            log.warning("relay.gave_up", tx_hash=tx_hash, missed_blocks=missed, reason=why)
            return
        log.warning("relay.fallback", tx_hash=tx_hash, missed_blocks=missed, reason=why, to="public mempool")
        self.fell_back[tx_hash] = missed
        try:
            await self.chain.rpc.request("eth_sendRawTransaction", [raw_hex])
        except Exception as e:
            if "already known" not in str(e).lower() and "nonce too low" not in str(e).lower():
                self._abandoned[tx_hash] = f"public fallback failed: {e}"
                log.warning("relay.fallback_failed", tx_hash=tx_hash, error=str(e)[:200])

    def abandoned(self, tx_hash: str) -> str | None:
        return self._abandoned.get(tx_hash)

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._session is not None:
            await self._session.close()
            self._session = None
