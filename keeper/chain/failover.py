"""Several JSON-RPC endpoints of one chain in priority order, used as one Transport.

Requests go to the endpoint in use. It is left for the next one (in priority order) that is well
when it fails ``errors`` times in a row (no answer, a malformed answer), when its head has not moved
for ``stale_seconds`` while another's has, or when it is ``lag_blocks`` behind another; every
``recheck_seconds`` the endpoints ahead of it in priority are asked for their head and the keeper
goes back to the first that is well. Rpc's retries carry a failed request over to the next endpoint.

Each endpoint's support for JSON-RPC batches is probed once (a batch of two eth_chainId); an endpoint
without it gets the requests one by one. An endpoint on another chain, or an answer that is not a
JSON-RPC response, is rejected with a logged reason and never handed on."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from keeper.chain.rpc import Request, Transport
from keeper.errors import TransientRpcError

log = structlog.get_logger()

ONE_BY_ONE_CONCURRENCY = 8  # requests in flight at once to an endpoint without batches


@dataclass
class Endpoint:
    label: str  # host:port, never the URL (it may hold credentials)
    transport: Transport
    head: int = -1
    head_at: float = 0.0  # when its head last moved
    failures: int = 0  # consecutive
    batches: bool | None = None  # None: not probed yet
    chain_id: int | None = None
    wrong_chain: bool = False


def _well_formed(resp: Any) -> bool:
    return isinstance(resp, dict) and ("result" in resp or isinstance(resp.get("error"), dict))


class FailoverTransport:
    def __init__(self, endpoints: list[tuple[str, Transport]], *, errors: int = 3, stale_seconds: float = 30.0,
                 lag_blocks: int = 3, recheck_seconds: float = 60.0, chain_id: int | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 on_switch: Callable[[str, str], None] | None = None):
        if not endpoints:
            raise ValueError("FailoverTransport needs at least one endpoint")
        now = clock()
        self.endpoints = [Endpoint(label, t, head_at=now) for label, t in endpoints]
        self.errors, self.stale, self.lag, self.recheck = errors, stale_seconds, lag_blocks, recheck_seconds
        self.chain_id = chain_id
        self.clock = clock
        self.on_switch = on_switch
        self.active = 0
        self.switches = 0
        self._checked_at = now
        self._checking = False

    @property
    def endpoint(self) -> str:
        return self.endpoints[self.active].label

    # -- switching --
    def _switch(self, to: int, why: str) -> None:
        if to == self.active:
            return
        old = self.endpoints[self.active].label
        self.active = to
        self.switches += 1
        new = self.endpoints[to].label
        log.warning("rpc.failover", from_endpoint=old, to_endpoint=new, reason=why)
        if self.on_switch is not None:
            self.on_switch(new, why)

    def _next_usable(self, after: int) -> int | None:
        n = len(self.endpoints)
        for k in range(1, n):
            i = (after + k) % n
            if not self.endpoints[i].wrong_chain:
                return i
        return None

    def _failed(self, ep: Endpoint, why: str) -> None:
        ep.failures += 1
        if ep is self.endpoints[self.active] and ep.failures >= self.errors:
            nxt = self._next_usable(self.active)
            if nxt is not None:
                self._switch(nxt, f"{ep.failures} failed requests in a row, last: {why}")
                ep.failures = 0

    def _saw_head(self, ep: Endpoint, head: int) -> None:
        if head > ep.head:
            ep.head, ep.head_at = head, self.clock()

    async def _head_of(self, ep: Endpoint) -> int | None:
        try:
            resp = await asyncio.wait_for(ep.transport.send("eth_blockNumber", []), timeout=5.0)
            head = int(resp["result"], 16)
        except Exception:
            return None
        self._saw_head(ep, head)
        return head

    async def _check(self) -> None:
        """Ask every endpoint for its head; move to the best-placed well one."""
        if len(self.endpoints) < 2 or self._checking:
            return
        self._checking = True
        try:
            heads = await asyncio.gather(*(self._head_of(ep) for ep in self.endpoints))
        finally:
            self._checking = False
            self._checked_at = self.clock()
        known = [h for h, ep in zip(heads, self.endpoints, strict=True) if h is not None and not ep.wrong_chain]
        if not known:
            return
        best = max(known)
        now = self.clock()
        cur = self.endpoints[self.active]
        for i, (h, ep) in enumerate(zip(heads, self.endpoints, strict=True)):
            if h is None or ep.wrong_chain or h < best - self.lag + 1 or (now - ep.head_at > self.stale and h < best):
                continue
            if i < self.active:
                self._switch(i, f"{ep.label} is well again (head {h})")
            elif i != self.active:
                ch = heads[self.active]
                if ch is None:
                    self._switch(i, f"{cur.label} does not answer")
                elif ch <= best - self.lag:
                    self._switch(i, f"{cur.label} lags: head {ch}, {ep.label} has {h}")
                elif now - cur.head_at > self.stale and ch < best:
                    self._switch(i, f"{cur.label}'s head {ch} has not moved for {now - cur.head_at:.0f}s, "
                                    f"{ep.label} has {h}")
                else:
                    continue
            break

    async def _maybe_check(self) -> None:
        if len(self.endpoints) < 2:
            return
        now = self.clock()
        cur = self.endpoints[self.active]
        due = now - self._checked_at >= self.recheck
        stale = now - cur.head_at > self.stale and now - self._checked_at >= min(1.0, self.stale)
        if due or stale:
            await self._check()

    async def _probe(self, ep: Endpoint) -> None:
        """Once per endpoint: its chain and whether it takes batches."""
        if ep.batches is not None:
            return
        try:
            resp = await ep.transport.send_batch([("eth_chainId", []), ("eth_chainId", [])])
        except TransientRpcError:
            raise
        except Exception as e:
            if _connection_trouble(e):
                raise
            resp = None
        ep.batches = isinstance(resp, list) and len(resp) == 2 and all(_well_formed(r) for r in resp)
        if not ep.batches:
            log.warning("rpc.no_batches", endpoint=ep.label,
                        reason=f"a batch of two requests was answered with {str(resp)[:120]}")
        if self.chain_id is not None and len(self.endpoints) > 1:  # alone, the keeper's start-up check says it
            single = resp[0] if ep.batches and isinstance(resp, list) else await ep.transport.send("eth_chainId", [])
            try:
                ep.chain_id = int(single["result"], 16)
            except (KeyError, TypeError, ValueError):
                return
            if ep.chain_id != self.chain_id:
                ep.wrong_chain = True
                log.error("rpc.wrong_chain", endpoint=ep.label, chain_id=ep.chain_id, expected=self.chain_id)

    # -- Transport --
    async def send(self, method: str, params: list[Any]) -> Any:
        await self._maybe_check()
        ep = self.endpoints[self.active]
        try:
            await self._probe(ep)
            if ep.wrong_chain:
                nxt = self._next_usable(self.active)
                if nxt is not None:
                    self._switch(nxt, f"{ep.label} is on chain {ep.chain_id}")
                raise TransientRpcError(f"{ep.label} is on chain {ep.chain_id}, not {self.chain_id}")
            resp = await ep.transport.send(method, params)
        except Exception as e:
            if _connection_trouble(e) or isinstance(e, TransientRpcError):
                self._failed(ep, f"{type(e).__name__}: {e}"[:200])
            raise
        return self._accept(ep, method, resp)

    def _accept(self, ep: Endpoint, method: str, resp: Any) -> Any:
        if not _well_formed(resp):
            why = f"not a JSON-RPC response: {str(resp)[:120]}"
            log.warning("rpc.rejected", endpoint=ep.label, method=method, reason=why)
            self._failed(ep, why)
            raise TransientRpcError(f"{method}: {ep.label} gave {why}")
        if method == "eth_blockNumber" and "result" in resp:
            try:
                head = int(resp["result"], 16)
            except (TypeError, ValueError):
                why = f"block number {str(resp['result'])[:40]!r} is not a hex quantity"
                log.warning("rpc.rejected", endpoint=ep.label, method=method, reason=why)
                self._failed(ep, why)
                raise TransientRpcError(f"{method}: {ep.label} gave {why}") from None
            self._saw_head(ep, head)
        ep.failures = 0
        return resp

    async def send_batch(self, requests: list[Request]) -> Any:
        await self._maybe_check()
        ep = self.endpoints[self.active]
        try:
            await self._probe(ep)
            if ep.batches:
                resp = await ep.transport.send_batch(requests)
            else:
                sem = asyncio.Semaphore(ONE_BY_ONE_CONCURRENCY)

                async def one(m: str, p: list[Any]) -> Any:
                    async with sem:
                        return await ep.transport.send(m, p)
                resp = list(await asyncio.gather(*(one(m, p) for m, p in requests)))
        except Exception as e:
            if _connection_trouble(e) or isinstance(e, TransientRpcError):
                self._failed(ep, f"{type(e).__name__}: {e}"[:200])
            raise
        if isinstance(resp, list):
            if len(resp) == len(requests) and not all(_well_formed(r) for r in resp):
                why = "a batch answer holds entries that are not JSON-RPC responses"
                log.warning("rpc.rejected", endpoint=ep.label, method="batch", reason=why)
                self._failed(ep, why)
                raise TransientRpcError(f"batch: {ep.label} gave {why}")
            ep.failures = 0
        return resp

    async def close(self) -> None:
        for ep in self.endpoints:
            await ep.transport.close()


def _connection_trouble(e: BaseException) -> bool:
    import aiohttp
    return isinstance(e, (aiohttp.ClientError, asyncio.TimeoutError, OSError))
