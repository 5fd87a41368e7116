"""New block heads: ``eth_subscribe("newHeads")`` over a WebSocket when the node has one, polling
``eth_blockNumber`` over HTTP when it has none or the stream drops, and back to the stream later.

A background task notes the newest block number seen; ``next()`` hands the consumer the range of
blocks new since its last call (``Head.first``..``Head.number``), so every number is covered once,
in order, and a consumer slower than the chain gets one range instead of a backlog. A head below
the newest seen (a lagging endpoint, a stream that went back) is never handed out: it is logged
(``heads.behind``) and counted; a stream message whose block number is not a hex quantity is logged
(``heads.rejected``) and skipped.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import aiohttp
import structlog

from keeper.chain.capabilities import quantity

log = structlog.get_logger()

Source = Literal["ws", "poll"]


@dataclass(frozen=True)
class Head:
    first: int  # first block number not handed out before (== number unless blocks were skipped)
    number: int  # the newest block
    seen: float  # time.monotonic() when ``number`` was first seen
    via: Source


class HeadSource:
    """``async with HeadSource(block_number, ws_url, poll_interval) as heads: head = await heads.next(stop)``.

    ``block_number`` is the HTTP call (eth_blockNumber) used while polling; ``ws_url`` (ws:// or
    wss://) may be None, or a callable asked before each (re)connection (the endpoint in use's URL,
    None when its probe found no newHeads there). After a stream failure, polling runs and the
    stream is retried every ``ws_retry_seconds``."""

    def __init__(self, block_number: Callable[[], Awaitable[int]], ws_url: str | Callable[[], str | None] | None,
                 poll_interval: float, *,
                 ws_retry_seconds: float = 5.0, ws_timeout: float = 10.0, keep_seen: int = 512):
        self._block_number = block_number
        self.ws_url = ws_url
        self.poll_interval = poll_interval
        self.ws_retry_seconds = ws_retry_seconds
        self.ws_timeout = ws_timeout
        self.keep_seen = keep_seen
        self.latest = -1  # newest number seen
        self.via: Source = "poll"
        self.seen: dict[int, float] = {}  # block number -> monotonic time first seen (the last keep_seen)
        self.ws_connects = 0  # streams opened (a reconnect counts again)
        self.ws_drops = 0
        self.polls = 0
        self.behind = 0  # heads seen below the newest (not handed out)
        self._yielded = -1
        self._new = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def __aenter__(self) -> HeadSource:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._produce(), name="heads")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def drop_stream(self) -> None:
        """Close the current WebSocket (for tests and operators): polling takes over until it returns."""
        if self._ws is not None:
            await self._ws.close()

    def seen_at(self, number: int) -> float | None:
        """When ``number`` (or, if it was skipped over, the first later block) was first seen."""
        times = [t for n, t in self.seen.items() if n >= number]
        return min(times) if times else None

    def next_nowait(self) -> Head | None:
        """The blocks new since the last call, or None if there are none yet."""
        if self.latest <= self._yielded:
            return None
        number = self.latest
        first = number if self._yielded < 0 else self._yielded + 1
        self._yielded = number
        return Head(first, number, self.seen.get(number, time.monotonic()), self.via)

    async def next(self, stop: asyncio.Event | None = None) -> Head | None:
        """The blocks new since the last call (waiting for one); None once ``stop`` is set."""
        self.start()
        if stop is not None and stop.is_set():
            return None
        while self.latest <= self._yielded:
            self._new.clear()
            waits = [asyncio.ensure_future(self._new.wait())]
            if stop is not None:
                waits.append(asyncio.ensure_future(stop.wait()))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
            if stop is not None and stop.is_set():
                return None
        return self.next_nowait()

    def _ws_url(self) -> str | None:
        return self.ws_url() if callable(self.ws_url) else self.ws_url

    def _note(self, number: int, via: Source) -> None:
        if number < self.latest:
            self.behind += 1
            log.warning("heads.behind", head=number, newest=self.latest, via=via,
                        reason="below the newest head seen: not handed out, no block is processed again")
            return
        if number == self.latest:
            return  # the same height again (after a reorg): nothing new to hand out
        now = time.monotonic()
        start = number if self.latest < 0 else max(self.latest + 1, number - self.keep_seen + 1)
        for n in range(start, number + 1):
            self.seen[n] = now
        while len(self.seen) > self.keep_seen:
            del self.seen[min(self.seen)]
        self.latest = number
        self.via = via
        self._new.set()

    async def _produce(self) -> None:
        next_ws = 0.0
        async with aiohttp.ClientSession() as session:
            while True:
                url = self._ws_url()
                if url and time.monotonic() >= next_ws:
                    try:
                        await self._stream(session, url)
                    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as e:
                        log.warning("heads.ws_failed", error=type(e).__name__, detail=str(e)[:200])
                    next_ws = time.monotonic() + self.ws_retry_seconds
                await self._poll_once()
                await asyncio.sleep(self.poll_interval)

    async def _poll_once(self) -> None:
        try:
            self.polls += 1
            self._note(await self._block_number(), "poll")
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("heads.poll_failed", error=type(e).__name__, detail=str(e)[:200])

    async def _stream(self, session: aiohttp.ClientSession, url: str) -> None:
        """Subscribe and note every head until the stream closes (a normal return) or fails."""
        async with session.ws_connect(url, heartbeat=self.ws_timeout, timeout=aiohttp.ClientWSTimeout(
                ws_close=self.ws_timeout), max_msg_size=16 << 20) as ws:
            await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe",
                                          "params": ["newHeads"]}))
            reply = await ws.receive_json(timeout=self.ws_timeout)
            if not isinstance(reply, dict) or "result" not in reply:
                raise ValueError(f"eth_subscribe newHeads refused: {str(reply)[:200]}")
            sub = reply["result"]
            self._ws = ws
            self.ws_connects += 1
            log.info("heads.ws_subscribed")
            try:
                await self._poll_once()  # blocks mined while the stream was down or connecting
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    data = json.loads(msg.data)
                    params = data.get("params") if isinstance(data, dict) else None
                    if isinstance(params, dict) and params.get("subscription") == sub:
                        result = params.get("result")
                        number = quantity(result.get("number")) if isinstance(result, dict) else None
                        if number is None:
                            log.warning("heads.rejected", reason=f"a newHeads message without a hex block "
                                                                 f"number: {str(result)[:120]}")
                            continue
                        self._note(number, "ws")
            finally:
                self._ws = None
                self.ws_drops += 1
                log.warning("heads.ws_dropped", fallback="poll")
