"""The chain as the keeper sees it: typed reads on top of Rpc (eth_call, Multicall3 batches,
chunked logs, blocks, balances). Batches and multicalls are split so no request exceeds the
request limits (keeper/chain/limits.py)."""
from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from eth_utils import to_checksum_address

from keeper.chain.capabilities import Capabilities, stated_log_range
from keeper.chain.limits import (
    RequestLimits,
    batch_refusal,
    batch_size,
    is_too_large,
    pack,
    request_size,
)
from keeper.chain.multicall import (
    MULTICALL3,
    Call,
    CallFailed,
    calldata,
    decode_aggregate3,
    encode_aggregate3,
    returns,
)
from keeper.chain.rpc import Rpc, asks_too_much
from keeper.errors import RequestTooLarge, RpcError

log = structlog.get_logger()
ERC20_TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


def hexint(x: str | int) -> int:
    return x if isinstance(x, int) else int(x, 16)


@dataclass(frozen=True)
class AtHash:
    """A block named by its hash (EIP-1898): its state, whatever the node mines meanwhile. Anvil
    answers a state asked by the number of its newest block from its live state while it mines the
    next one; by hash it answers that block's."""
    number: int
    hash: str


def block_tag(block: int | str | AtHash) -> Any:
    if isinstance(block, AtHash):
        return {"blockHash": block.hash}
    return hex(block) if isinstance(block, int) else block


# aggregate3((address,bool,bytes)[]) calldata: selector, offset and length of the array; then per call
# the offset of its tuple, the tuple's head (address, bool, offset of bytes), the bytes' length and
# the bytes padded to 32.
_AGG3_BASE = 4 + 32 + 32
_AGG3_PER_CALL = 32 + 3 * 32 + 32


def _agg3_hex_chars(c: Call) -> int:
    return 2 * (_AGG3_PER_CALL + -(-len(c.data) // 32) * 32)


def _answer(exc: BaseException) -> str:
    """The node's refusal, for logs (an HTTP error's text would carry the URL: status only)."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP {exc.status}"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


@dataclass(frozen=True)
class Log:
    address: str
    topics: list[str]
    data: bytes
    block_number: int
    log_index: int
    tx_hash: str

    @classmethod
    def from_rpc(cls, raw: dict) -> Log:
        return cls(
            address=to_checksum_address(raw["address"]),
            topics=[t.lower() for t in raw["topics"]],
            data=bytes.fromhex(raw["data"][2:]),
            block_number=hexint(raw["blockNumber"]),
            log_index=hexint(raw["logIndex"]),
            tx_hash=raw["transactionHash"],
        )


class Chain:
    def __init__(self, rpc: Rpc, *, multicall_address: str = MULTICALL3, multicall_chunk: int = 400,
                 log_chunk_blocks: int = 5_000, max_request_bytes: int = 1 << 20, max_batch: int = 100,
                 parallel_requests: int = 4):
        self.rpc = rpc
        self.multicall_address = multicall_address
        self.multicall_chunk = multicall_chunk  # most calls in one aggregate3
        self.log_chunk_blocks = log_chunk_blocks
        self.limits = RequestLimits(max_request_bytes, max_batch)
        self._slots = asyncio.Semaphore(parallel_requests)  # POSTs in flight at once
        self._capabilities = Capabilities()  # a transport without probes (one plain endpoint)

    @property
    def capabilities(self) -> Capabilities:
        """The endpoint in use's capabilities (keeper/chain/capabilities.py): probed by a failover
        transport, else only what this Chain has learned (eth_getLogs' range)."""
        caps = getattr(self.rpc.transport, "capabilities", None)
        return caps if isinstance(caps, Capabilities) else self._capabilities

    def _learn_log_range(self, refused: int, e: RpcError) -> int:
        """The range to ask for after a refusal of ``refused`` blocks: the provider's stated limit
        when its answer gives one below what was refused, else half; kept in the capabilities."""
        stated = stated_log_range(str(e))
        blocks = stated if stated is not None and stated < refused else max(1, refused // 2)
        caps = self.capabilities
        caps.max_log_range = blocks if caps.max_log_range is None else min(caps.max_log_range, blocks)
        log.warning("rpc.log_range_limit", endpoint=getattr(self.rpc.transport, "endpoint", None),
                    blocks=caps.max_log_range, stated=stated is not None, answer=str(e)[:160])
        return caps.max_log_range

    # ---- requests that fit ----

    async def batch(self, calls: Iterable[tuple[str, list]], *, raise_errors: bool = True) -> list[Any]:
        """JSON-RPC requests in as few batches as the limits allow (several at once); results in
        order. A batch the node refuses as too large lowers the limits and goes again in smaller
        pieces; a single request over the limit, or refused as too large, is RequestTooLarge (raised,
        or in its place in the results with raise_errors=False, like any other error)."""
        reqs = list(calls)
        if not reqs:
            return []
        return await self._send(reqs, [request_size(m, p) for m, p in reqs], raise_errors)

    async def _send(self, reqs: list[tuple[str, list]], sizes: list[int], raise_errors: bool) -> list[Any]:
        groups = pack(sizes, self.limits)
        if len(groups) == 1:
            return await self._post(reqs, sizes, raise_errors)
        tasks = [asyncio.ensure_future(self._post(reqs[g.start:g.stop], sizes[g.start:g.stop], raise_errors))
                 for g in groups]
        try:
            parts = await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            raise
        return [r for part in parts for r in part]

    async def _post(self, reqs: list[tuple[str, list]], sizes: list[int], raise_errors: bool) -> list[Any]:
        sent = batch_size(sizes)
        refusal: Exception | None = None
        async with self._slots:
            # Checked once a slot is free: a refusal meanwhile may have lowered the limits.
            if self.limits.fits(sizes):
                try:
                    return await self.rpc.batch(reqs, raise_errors=raise_errors)
                except Exception as e:
                    if not is_too_large(e, sent):
                        raise
                    refusal = e
        if refusal is not None:
            self._lower(sent, len(reqs), refusal)
        if len(reqs) > 1:
            return await self._send(reqs, sizes, raise_errors)
        if refusal is None:
            err = RequestTooLarge(f"{reqs[0][0]}: one request of {sent} bytes is over the request limit of "
                                  f"{self.limits.max_bytes} bytes (chain.max_request_bytes)")
        else:
            err = RequestTooLarge(f"{reqs[0][0]}: the node refuses one request of {sent} bytes as too large "
                                  f"({_answer(refusal)})")
        if raise_errors:
            raise err from refusal
        return [err]

    def _lower(self, sent: int, count: int, refusal: BaseException) -> None:
        before = (self.limits.max_bytes, self.limits.max_batch)
        self.limits.lower(sent, count, batch_refusal(refusal))
        if (self.limits.max_bytes, self.limits.max_batch) != before:
            log.warning("chain.request_limit_lowered", max_request_bytes=self.limits.max_bytes,
                        max_batch=self.limits.max_batch, refused_bytes=sent, refused_requests=count,
                        answer=_answer(refusal))

    async def chain_id(self) -> int:
        return hexint(await self.rpc.request("eth_chainId", []))

    async def block_number(self) -> int:
        return hexint(await self.rpc.request("eth_blockNumber", []))

    async def get_block(self, block: int | str = "latest") -> dict:
        b = await self.rpc.request("eth_getBlockByNumber", [block_tag(block), False])
        if b is None:
            raise RpcError(f"block {block} not found")
        return b

    async def get_code(self, address: str, block: int | str = "latest") -> bytes:
        return bytes.fromhex((await self.rpc.request("eth_getCode", [address, block_tag(block)]))[2:])

    async def get_balance(self, address: str, block: int | str = "latest") -> int:
        return hexint(await self.rpc.request("eth_getBalance", [address, block_tag(block)]))

    async def head(self) -> AtHash:
        """The newest block, by number and hash."""
        b = await self.get_block("latest")
        return AtHash(hexint(b["number"]), b["hash"])

    async def nonce(self, address: str, block: int | str | AtHash = "pending") -> int:
        return hexint(await self.rpc.request("eth_getTransactionCount", [address, block_tag(block)]))

    async def eth_call(self, to: str, data: bytes, *, sender: str | None = None,
                       block: int | str = "latest", value: int = 0) -> bytes:
        tx: dict[str, Any] = {"to": to, "data": "0x" + data.hex()}
        if sender:
            tx["from"] = sender
        if value:
            tx["value"] = hex(value)
        return bytes.fromhex((await self.rpc.request("eth_call", [tx, block_tag(block)]))[2:])

    async def call(self, to: str, signature: str, types: Sequence[str] = (), args: Sequence[Any] = (),
                   out: Sequence[str] = (), block: int | str = "latest") -> Any:
        raw = await self.eth_call(to, calldata(signature, types, args), block=block)
        return returns(*out)(raw) if out else raw

    async def multicall(self, calls: Sequence[Call], block: int | str = "latest") -> list[Any]:
        """aggregate3 with allowFailure on every call; a failed call comes back as CallFailed.
        Large lists are split into aggregate3 chunks of at most multicall_chunk calls, each one
        request within the byte limit, sent in batches; a chunk the node refuses as too large is
        split again under the lowered limit."""
        if not calls:
            return []
        tag = block_tag(block)
        return await self._multicall(self._chunks(list(calls), tag), tag)

    def _chunks(self, calls: list[Call], tag: str) -> list[list[Call]]:
        """Consecutive chunks of calls whose eth_call request (alone in a batch) fits the limits."""
        base = batch_size([request_size("eth_call", [{"to": self.multicall_address, "data": "0x"}, tag])])
        room = self.limits.max_bytes - base - 2 * _AGG3_BASE
        chunks: list[list[Call]] = []
        cur: list[Call] = []
        used = 0
        for c in calls:
            size = _agg3_hex_chars(c)
            if cur and (used + size > room or len(cur) >= self.multicall_chunk):
                chunks.append(cur)
                cur, used = [], 0
            if size > room:
                raise RequestTooLarge(f"a call to {c.target} ({len(c.data)} bytes of calldata) does not fit in one "
                                      f"request of {self.limits.max_bytes} bytes (chain.max_request_bytes)")
            cur.append(c)
            used += size
        if cur:
            chunks.append(cur)
        return chunks

    async def _multicall(self, chunks: list[list[Call]], tag: str) -> list[Any]:
        reqs = [("eth_call", [{"to": self.multicall_address, "data": "0x" + encode_aggregate3(c).hex()}, tag])
                for c in chunks]
        raws = await self.batch(reqs, raise_errors=False)
        parts: list[list[Any] | None] = [None] * len(chunks)
        again: list[int] = []
        for i, (chunk, raw) in enumerate(zip(chunks, raws)):
            if isinstance(raw, RpcError):
                sent = request_size(*reqs[i])
                if not (isinstance(raw, RequestTooLarge) or is_too_large(raw, sent)):
                    raise raw
                if not isinstance(raw, RequestTooLarge):  # the answer, not the request, was too large
                    self._lower(sent, 1, raw)
                again.append(i)
            else:
                parts[i] = decode_aggregate3(chunk, bytes.fromhex(raw[2:]))
        if again:  # split each refused chunk under the lowered limit
            redo = [self._chunks(chunks[i], tag) for i in again]
            for i, sub in zip(again, redo):
                if len(sub) == 1:
                    raise RequestTooLarge(f"eth_call of {len(chunks[i])} calls to Multicall3 refused as too large "
                                          f"and the limit ({self.limits.max_bytes} bytes) no longer splits it")
            results = await asyncio.gather(*(self._multicall(sub, tag) for sub in redo))
            for i, res in zip(again, results):
                parts[i] = res
        return [r for p in parts if p is not None for r in p]

    async def multicall_strict(self, calls: Sequence[Call], block: int | str = "latest") -> list[Any]:
        res = await self.multicall(calls, block)
        for c, r in zip(calls, res):
            if isinstance(r, CallFailed):
                raise RpcError(f"call to {c.target} (selector 0x{c.data[:4].hex()}) failed: {r}")
        return res

    async def get_logs(self, address: str | list[str], topics: list, from_block: int, to_block: int) -> list[Log]:
        """eth_getLogs in chunks of log_chunk_blocks, or of the endpoint's learned range if smaller
        (sent as one batch); a refused range teaches the endpoint's limit (the one its answer
        states, else half of what was refused) and is asked again within it."""
        out: list[Log] = []
        start = from_block
        chunk = min(self.log_chunk_blocks, self.capabilities.max_log_range or self.log_chunk_blocks)
        while start <= to_block:
            ranges: list[tuple[int, int]] = []
            s = start
            while s <= to_block and len(ranges) < 10:
                ranges.append((s, min(s + chunk - 1, to_block)))
                s += chunk
            reqs = [("eth_getLogs", [{"address": address, "topics": topics,
                                      "fromBlock": hex(a), "toBlock": hex(b)}]) for a, b in ranges]
            try:
                results = await self.batch(reqs)
            except RpcError as e:
                if chunk > 1 and (asks_too_much(str(e)) or "too many" in str(e).lower()
                                  or "limit" in str(e).lower()):
                    chunk = self._learn_log_range(min(chunk, to_block - start + 1), e)
                    continue
                raise
            for res in results:
                out.extend(Log.from_rpc(r) for r in res)
            start = s
        out.sort(key=lambda lg: (lg.block_number, lg.log_index))
        return out

    async def erc20_balances(self, pairs: Sequence[tuple[str, str]], block: int | str = "latest") -> list[int]:
        """balanceOf for (token, holder) pairs in one multicall."""
        calls = [Call(t, calldata("balanceOf(address)", ["address"], [h]), returns("uint256")) for t, h in pairs]
        return await self.multicall_strict(calls, block)
