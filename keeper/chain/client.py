"""The chain as the keeper sees it: typed reads on top of Rpc (eth_call, Multicall3 batches,
chunked logs, blocks, balances)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from eth_utils import to_checksum_address

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
from keeper.errors import RpcError

ERC20_TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


def hexint(x: str | int) -> int:
    return x if isinstance(x, int) else int(x, 16)


def block_tag(block: int | str) -> str:
    return hex(block) if isinstance(block, int) else block


@dataclass(frozen=True)
class Log:
    address: str
    topics: list[str]
    data: bytes
    block_number: int
    log_index: int
    tx_hash: str

    @classmethod
    def from_rpc(cls, raw: dict) -> "Log":
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
                 log_chunk_blocks: int = 5_000):
        self.rpc = rpc
        self.multicall_address = multicall_address
        self.multicall_chunk = multicall_chunk
        self.log_chunk_blocks = log_chunk_blocks

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

    async def nonce(self, address: str, block: int | str = "pending") -> int:
        return hexint(await self.rpc.request("eth_getTransactionCount", [address, block_tag(block)]))

    async def eth_call(self, to: str, data: bytes, *, sender: str | None = None,
                       block: int | str = "latest", value: int = 0) -> bytes:
        tx: dict[str, Any] = {"to": to, "data": "0x" + data.hex()}
        if sender:
            tx["from"] = sender
        if value:
            tx["value"] = hex(value)
        return bytes.fromhex((await self.rpc.request("eth_call", [tx, block_tag(block)]))[2:])

    async def call(self, to: str, signature: str, types=(), args=(), out=(), block: int | str = "latest"):
        raw = await self.eth_call(to, calldata(signature, types, args), block=block)
        return returns(*out)(raw) if out else raw

    async def multicall(self, calls: Sequence[Call], block: int | str = "latest") -> list[Any]:
        """aggregate3 with allowFailure on every call; a failed call comes back as CallFailed.
        Large lists are split into chunks sent together in one JSON-RPC batch."""
        if not calls:
            return []
        chunks = [calls[i:i + self.multicall_chunk] for i in range(0, len(calls), self.multicall_chunk)]
        reqs = [("eth_call", [{"to": self.multicall_address, "data": "0x" + encode_aggregate3(c).hex()},
                              block_tag(block)]) for c in chunks]
        raws = await self.rpc.batch(reqs)
        out: list[Any] = []
        for chunk, raw in zip(chunks, raws):
            out.extend(decode_aggregate3(chunk, bytes.fromhex(raw[2:])))
        return out

    async def multicall_strict(self, calls: Sequence[Call], block: int | str = "latest") -> list[Any]:
        res = await self.multicall(calls, block)
        for c, r in zip(calls, res):
            if isinstance(r, CallFailed):
                raise RpcError(f"call to {c.target} (selector 0x{c.data[:4].hex()}) failed: {r}")
        return res

    async def get_logs(self, address: str | list[str], topics: list, from_block: int, to_block: int) -> list[Log]:
        """eth_getLogs in chunks of log_chunk_blocks (sent as one batch); halves a chunk the node
        refuses as too large."""
        out: list[Log] = []
        start = from_block
        chunk = self.log_chunk_blocks
        while start <= to_block:
            ranges = []
            s = start
            while s <= to_block and len(ranges) < 10:
                ranges.append((s, min(s + chunk - 1, to_block)))
                s += chunk
            reqs = [("eth_getLogs", [{"address": address, "topics": topics,
                                      "fromBlock": hex(a), "toBlock": hex(b)}]) for a, b in ranges]
            try:
                results = await self.rpc.batch(reqs)
            except RpcError as e:
                if chunk > 1 and (asks_too_much(str(e)) or "too many" in str(e).lower()
                                  or "limit" in str(e).lower()):
                    chunk = max(1, min(chunk, to_block - start + 1) // 2)  # half of what was refused
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
