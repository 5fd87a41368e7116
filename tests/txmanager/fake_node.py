"""FakeNode: one sender's view of a node for the transaction manager's node-free tests: a pool by
nonce with EIP-1559 replacement rules, blocks the test mines one at a time (the pool's transactions
in nonce order whose maxFeePerGas covers the base fee, unless the test holds them), receipts, the
sender's latest and pending nonce, a rollback that takes blocks (and their receipts) away, and a
pool the test can empty. It answers only what the manager asks."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes

from keeper.errors import RpcError

GWEI = 10**9


@dataclass
class Tx:
    hash: str
    nonce: int
    to: str
    data: bytes
    value: int
    gas: int
    max_fee: int
    tip: int
    raw: str


@dataclass
class FakeNode:
    base_fee: int = GWEI
    reward: int = GWEI  # what eth_feeHistory says recent blocks tipped
    hold: bool = False  # mine empty blocks: the pool waits (a full chain, a low tip)
    block: int = 100
    pool: dict[int, Tx] = field(default_factory=dict)  # nonce -> the transaction the pool holds
    mined: list[tuple[int, Tx]] = field(default_factory=list)  # (block, tx) in order
    sent: list[Tx] = field(default_factory=list)  # every transaction accepted
    refuse_next: list[str] = field(default_factory=list)  # error messages for the next sends
    garbage_next: int = 0  # receipt polls answered with an exception (a non-JSON answer)
    calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rpc = _Rpc(self)

    # ---- the Chain surface the manager uses ----
    async def block_number(self) -> int:
        return self.block

    async def nonce(self, address: str, block: int | str = "pending") -> int:
        return self._pending() if block == "pending" else self._latest()

    # ---- test controls ----
    def mine(self) -> list[Tx]:
        """One block: the pool's transactions that can go, in nonce order."""
        self.block += 1
        out = []
        while not self.hold and self._latest() in self.pool and self.pool[self._latest()].max_fee >= self.base_fee:
            tx = self.pool.pop(self._latest())
            self.mined.append((self.block, tx))
            out.append(tx)
        return out

    def rollback(self, to_block: int) -> None:
        """Blocks after ``to_block`` are gone, and with them their transactions (not back in the pool)."""
        self.mined = [(b, t) for b, t in self.mined if b <= to_block]
        self.block = to_block

    def mined_hashes(self) -> list[str]:
        return [t.hash for _, t in self.mined]

    # ---- internals ----
    def _latest(self) -> int:
        return len(self.mined)

    def _pending(self) -> int:
        n = self._latest()
        while n in self.pool:
            n += 1
        return n

    def send(self, raw: str) -> str:
        if self.refuse_next:
            raise RpcError(self.refuse_next.pop(0), code=-32000)
        d = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        tx = Tx("0x" + keccak(HexBytes(raw)).hex(), d["nonce"], to_checksum_address(d["to"]), bytes(d["data"]),
                d["value"], d["gas"], d["maxFeePerGas"], d["maxPriorityFeePerGas"], raw)
        if any(t.hash == tx.hash for t in self.pool.values()):
            raise RpcError("already known", code=-32000)
        if tx.nonce < self._latest():
            raise RpcError("nonce too low", code=-32000)
        if tx.max_fee < self.base_fee:
            raise RpcError("max fee per gas less than block base fee", code=-32000)
        old = self.pool.get(tx.nonce)
        if old is not None and (tx.max_fee <= old.max_fee or tx.tip <= old.tip):
            raise RpcError("replacement transaction underpriced", code=-32000)
        self.pool[tx.nonce] = tx
        self.sent.append(tx)
        return tx.hash

    def answer(self, method: str, params: list[Any]) -> Any:
        self.calls.append(method)
        if method == "eth_getTransactionCount":
            return hex(self._pending() if params[1] == "pending" else self._latest())
        if method == "eth_getBalance":
            return hex(10**20)
        if method == "eth_blockNumber":
            return hex(self.block)
        if method == "eth_getTransactionReceipt":
            for b, t in self.mined:
                if t.hash == params[0]:
                    return {"status": "0x1", "blockNumber": hex(b), "gasUsed": hex(t.gas // 2),
                            "effectiveGasPrice": hex(min(t.max_fee, self.base_fee + t.tip)), "logs": []}
            return None
        if method == "eth_getTransactionByHash":
            for t in [*self.pool.values(), *(t for _, t in self.mined)]:
                if t.hash == params[0]:
                    return {"hash": t.hash, "nonce": hex(t.nonce), "blockNumber": None}
            return None
        if method == "eth_feeHistory":
            return {"baseFeePerGas": [hex(self.base_fee)] * 6, "reward": [[hex(self.reward)]] * 5}
        if method == "eth_sendRawTransaction":
            return self.send(params[0])
        raise AssertionError(f"FakeNode: not expected: {method}")


class _Rpc:
    def __init__(self, node: FakeNode):
        self.node = node

    async def request(self, method: str, params: list[Any]) -> Any:
        return self.node.answer(method, params)

    async def batch(self, calls: list[tuple[str, list[Any]]], *, raise_errors: bool = True) -> list[Any]:
        if self.node.garbage_next > 0 and any(m == "eth_getTransactionReceipt" for m, _ in calls):
            self.node.garbage_next -= 1
            raise RpcError("batch at http://fake: the answer is not JSON")
        return [self.node.answer(m, p) for m, p in calls]
