"""Several JSON-RPC endpoints of one chain in priority order, used as one Transport.

Requests go to the endpoint in use. It is left for the next one (in priority order) that is well
when it fails ``errors`` times in a row (no answer, a malformed answer), when its head has not moved
for ``stale_seconds`` while another's has, or when it is ``lag_blocks`` behind another; every
``recheck_seconds`` the endpoints ahead of it in priority are asked for their head and the keeper
goes back to the first that is well. Rpc's retries carry a failed request over to the next endpoint.

Each endpoint's capabilities are probed once, on its first use, and logged in one line
(``rpc.capabilities``): JSON-RPC batches (a batch of two eth_chainId; an endpoint without them gets
the requests one by one), eth_simulateV1 (an endpoint without it is not asked again: the transport
answers -32601 itself), a WebSocket answering eth_subscribe newHeads (its ``ws_url``); the widest
eth_getLogs range is learned by Chain.get_logs from the first refusal. ``capabilities`` are those
of the endpoint in use: after a failover, the next endpoint's apply.

An endpoint on another chain, an answer that is not a JSON-RPC response, a block number that is not
a hex quantity, a block of another number than the one asked, a receipt or transaction of another
hash, or a head below one the endpoint gave before (or ``lag_blocks`` below one already handed on)
is rejected with a logged reason (``rpc.rejected``), counted (``on_reject``) and never handed on: a
TransientRpcError, so Rpc's retries and the failover take over. An endpoint whose head stays below
its earlier one for ``stale_seconds`` (a node resynced, a deep reorg) is believed again."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from keeper.chain.capabilities import (
    SIMULATE_PROBE,
    Capabilities,
    mismatch,
    probe_websocket,
    quantity,
    simulate_answer,
)
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
    ws_url: str | None = None
    caps: Capabilities = field(default_factory=Capabilities)
    probed: bool = False
    chain_id: int | None = None
    wrong_chain: bool = False
    back_since: float | None = None  # when its head first went below its earlier head (None: it has not)
    lag_logged: bool = False  # a "behind" rejection was logged and no head was accepted since
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def batches(self) -> bool | None:
        return self.caps.batches


def _well_formed(resp: Any) -> bool:
    return isinstance(resp, dict) and ("result" in resp or isinstance(resp.get("error"), dict))


class FailoverTransport:
    def __init__(self, endpoints: list[tuple[str, Transport]], *, errors: int = 3, stale_seconds: float = 30.0,
                 lag_blocks: int = 3, recheck_seconds: float = 60.0, chain_id: int | None = None,
                 clock: Callable[[], float] = time.monotonic, ws_urls: Sequence[str | None] = (),
                 on_switch: Callable[[str, str], None] | None = None,
                 on_reject: Callable[[str, str], None] | None = None, ws_timeout: float = 5.0):
        """``ws_urls``: each endpoint's WebSocket URL, in the same order (missing ones: none);
        ``on_reject(endpoint, kind)`` is told of every answer rejected."""
        if not endpoints:
            raise ValueError("FailoverTransport needs at least one endpoint")
        now = clock()
        ws = list(ws_urls) + [None] * (len(endpoints) - len(ws_urls))
        self.endpoints = [Endpoint(label, t, head_at=now, ws_url=w) for (label, t), w in zip(endpoints, ws)]
        self.errors, self.stale, self.lag, self.recheck = errors, stale_seconds, lag_blocks, recheck_seconds
        self.chain_id = chain_id
        self.clock = clock
        self.on_switch = on_switch
        self.on_reject = on_reject
        self.ws_timeout = ws_timeout
        self.high = -1  # the highest head handed on
        self.high_from = ""
        self.rejected = 0
        self.active = 0
        self.switches = 0
        self._checked_at = now
        self._checking = False

    @property
    def endpoint(self) -> str:
        return self.endpoints[self.active].label

    @property
    def capabilities(self) -> Capabilities:
        """The endpoint in use's (its probe's results once it has been used)."""
        return self.endpoints[self.active].caps

    def ws_url(self) -> str | None:
        """The endpoint in use's WebSocket URL, unless its probe found it does not serve newHeads."""
        ep = self.endpoints[self.active]
        return None if ep.caps.websocket is False else ep.ws_url

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
        before = ep.head
        try:
            resp = await asyncio.wait_for(ep.transport.send("eth_blockNumber", []), timeout=5.0)
        except Exception:
            return None
        head = quantity(resp.get("result")) if isinstance(resp, dict) else None
        if head is None or head < before:  # garbage, or gone back: not a head to compare
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
        """Once per endpoint: its chain and capabilities, logged in one line."""
        if ep.probed:
            return
        async with ep.lock:
            if not ep.probed:
                await self._probe_once(ep)
                ep.probed = True
                c = ep.caps
                log.info("rpc.capabilities", endpoint=ep.label, batches=c.batches, simulate_v1=c.simulate_v1,
                         websocket=c.websocket, max_log_range=c.max_log_range)

    async def _probe_once(self, ep: Endpoint) -> None:
        try:
            resp = await ep.transport.send_batch([("eth_chainId", []), ("eth_chainId", [])])
        except TransientRpcError:
            raise
        except Exception as e:
            if _connection_trouble(e):
                raise
            resp = None
        ep.caps.batches = isinstance(resp, list) and len(resp) == 2 and all(_well_formed(r) for r in resp)
        if not ep.caps.batches:
            log.warning("rpc.no_batches", endpoint=ep.label,
                        reason=f"a batch of two requests was answered with {str(resp)[:120]}")
        if self.chain_id is not None and len(self.endpoints) > 1:  # alone, the keeper's start-up check says it
            single = (resp[0] if ep.caps.batches and isinstance(resp, list)
                      else await ep.transport.send("eth_chainId", []))
            try:
                ep.chain_id = int(single["result"], 16)
            except (KeyError, TypeError, ValueError):
                ep.chain_id = None
            if ep.chain_id is not None and ep.chain_id != self.chain_id:
                ep.wrong_chain = True
                log.error("rpc.wrong_chain", endpoint=ep.label, chain_id=ep.chain_id, expected=self.chain_id)
                return
        try:
            sim = await ep.transport.send("eth_simulateV1", SIMULATE_PROBE)
        except TransientRpcError:
            raise
        except Exception as e:
            if _connection_trouble(e):
                raise
            sim = None
        ep.caps.simulate_v1 = simulate_answer(sim)
        if ep.caps.simulate_v1 is False:
            log.warning("rpc.no_simulate_v1", endpoint=ep.label, answer=str(sim)[:160])
        ep.caps.websocket = bool(ep.ws_url) and await probe_websocket(ep.ws_url or "", self.ws_timeout)

    # -- answers --
    def _reject(self, ep: Endpoint, method: str, kind: str, why: str, *, failed: bool = True,
                quiet: bool = False) -> TransientRpcError:
        """Log (unless ``quiet``), count and (``failed``) hold it against the endpoint; the error to raise."""
        self.rejected += 1
        if not quiet:
            log.warning("rpc.rejected", endpoint=ep.label, method=method, kind=kind, reason=why)
        if self.on_reject is not None:
            self.on_reject(ep.label, kind)
        if failed:
            self._failed(ep, why)
        return TransientRpcError(f"{method}: {ep.label} gave {why}")

    def _head(self, ep: Endpoint, result: Any, before: tuple[int, int]) -> None:
        """An eth_blockNumber result: a hex quantity not below what this endpoint, or (by
        ``lag_blocks``) another, gave before the request was sent (``before``: the endpoint's head
        and the highest head handed on then; an answer to a request sent earlier may arrive after
        a later one's); raises the rejection otherwise."""
        ep_head, high = before
        head = quantity(result)
        if head is None:
            raise self._reject(ep, "eth_blockNumber", "not_quantity",
                               f"block number {str(result)[:40]!r} is not a hex quantity")
        now = self.clock()
        if head < ep_head:
            if ep.back_since is None:
                ep.back_since = now
            if now - ep.back_since < self.stale:
                raise self._reject(ep, "eth_blockNumber", "head_backwards",
                                   f"head {head} is below head {ep_head} it gave before")
            log.warning("rpc.head_reset", endpoint=ep.label, head=head, before=ep_head,
                        reason=f"below its earlier head for {now - ep.back_since:.0f}s: believed again")
            ep.head, ep.head_at = head, now
            self.high = min(self.high, head)
        elif head <= high - self.lag:
            why = f"head {head} is {high - head} blocks behind head {high} from {self.high_from}"
            quiet, ep.lag_logged = ep.lag_logged, True  # logged once until it catches up
            self._checked_at = -float("inf")  # look for a better-placed endpoint on the next request
            raise self._reject(ep, "eth_blockNumber", "head_behind", why, failed=False, quiet=quiet)
        ep.back_since, ep.lag_logged = None, False
        self._saw_head(ep, head)
        if head > self.high:
            self.high, self.high_from = head, ep.label

    def _accept(self, ep: Endpoint, method: str, params: list[Any], resp: Any, before: tuple[int, int]) -> Any:
        if not _well_formed(resp):
            raise self._reject(ep, method, "malformed", f"not a JSON-RPC response: {str(resp)[:120]}")
        if "result" in resp:
            if method == "eth_blockNumber":
                self._head(ep, resp["result"], before)
            elif why := mismatch(method, params, resp["result"]):
                raise self._reject(ep, method, "mismatch", why)
        ep.failures = 0
        return resp

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
            if method == "eth_simulateV1" and ep.caps.simulate_v1 is False:  # probed: not asked again
                return {"jsonrpc": "2.0", "id": None, "error": {
                    "code": -32601, "message": f"eth_simulateV1 is not supported by {ep.label} (probed)"}}
            before = (ep.head, self.high)
            resp = await ep.transport.send(method, params)
            if method == "eth_blockNumber" and await self._rolled_back(ep, resp, before[0]):
                before = (-1, -1)  # the node's own rollback: its lower head is the chain now
        except Exception as e:
            if _connection_trouble(e) or isinstance(e, TransientRpcError):
                self._failed(ep, f"{type(e).__name__}: {e}"[:200])
            raise
        return self._accept(ep, method, params, resp, before)

    async def _rolled_back(self, ep: Endpoint, resp: Any, ep_head: int) -> bool:
        """A head below one this endpoint gave before is a rollback (a reorg to a shorter chain, an
        evm_revert) when the endpoint no longer has that earlier block; while it still has it, the
        lower head is inconsistent and rejected (see _head)."""
        head = quantity(resp.get("result")) if isinstance(resp, dict) else None
        if head is None or head >= ep_head:
            return False
        gone = await ep.transport.send("eth_getBlockByNumber", [hex(ep_head), False])
        if not (isinstance(gone, dict) and "result" in gone and gone["result"] is None):
            return False
        log.warning("rpc.rollback", endpoint=ep.label, head=head, before=ep_head,
                    reason=f"block {ep_head} is gone from the node: its chain is shorter now")
        ep.head, ep.back_since = head, None
        self.high, self.high_from = head, ep.label
        return True

    async def send_batch(self, requests: list[Request]) -> Any:
        await self._maybe_check()
        ep = self.endpoints[self.active]
        try:
            await self._probe(ep)
            before = (ep.head, self.high)
            if ep.caps.batches:
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
            if len(resp) == len(requests):
                if not all(_well_formed(r) for r in resp):
                    raise self._reject(ep, "batch", "malformed",
                                       "a batch answer holds entries that are not JSON-RPC responses")
                for (m, p), r in zip(requests, resp, strict=True):
                    if "result" in r and m == "eth_blockNumber":
                        self._head(ep, r["result"], before)
                    elif "result" in r and (why := mismatch(m, p, r["result"])):
                        raise self._reject(ep, m, "mismatch", why)
            ep.failures = 0
        return resp

    async def close(self) -> None:
        for ep in self.endpoints:
            await ep.transport.close()


def _connection_trouble(e: BaseException) -> bool:
    import aiohttp
    return isinstance(e, (aiohttp.ClientError, asyncio.TimeoutError, OSError))
