"""StubNode: an in-memory stand-in for the node as the engine's Executor and the transaction
manager see it, so that ranking, re-planning, skipping, simulation verdicts and settlement can be
tested without Anvil.

It answers only what they ask: allowance reads (multicall_strict), eth_simulateV1,
eth_sendRawTransaction (the signed transaction decoded), and the manager's per-block batch (the
signer's nonce and balance, receipts). Sent transactions stay pending until ``mine_pending``; then
they are all mined in one block, emitting the ERC20 Transfer logs the test declared for their
calldata. It is a stub, not a node: the contracts' behaviour is whatever the test says.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_abi import decode, encode
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes

from keeper.chain.capabilities import Capabilities
from keeper.chain.client import ERC20_TRANSFER_TOPIC, AtHash
from keeper.chain.fees import GWEI
from keeper.chain.multicall import MULTICALL3, Call
from keeper.chain.sender import TxRequest
from keeper.chain.signer import Signer
from keeper.engine.record import Recorder
from keeper.engine.settle import settled_outcome
from keeper.send.manager import TxManager
from keeper.send.policy import FeePolicy
from keeper.store import SqliteStore

KEY = "0x" + "42" * 32  # the stub keeper's signing key
WALLET = Account.from_key(KEY).address
ERROR_STRING = keccak(text="Error(string)")[:4]
APPROVE = keccak(text="approve(address,uint256)")[:4]


def _topic(address: str) -> str:
    return "0x" + address.lower()[2:].rjust(64, "0")


@dataclass
class StubNode:
    wallet: str = WALLET
    gas_used: int = 100_000  # every transaction's gas in simulation and receipts (but those in ``gas``)
    gas: dict[bytes, int] = field(default_factory=dict)  # calldata -> its own gas
    allowances: dict[tuple[str, str], int] = field(default_factory=dict)  # (token, spender) -> allowance
    balances: dict[str, int] = field(default_factory=dict)  # token -> the wallet's balance
    reverts: dict[bytes, str] = field(default_factory=dict)  # calldata -> Error(string) reason (simulation)
    fails_on_chain: set[bytes] = field(default_factory=set)  # calldata whose receipt has status 0
    # calldata -> (token, amount) transfers it makes when mined: > 0 to the wallet, < 0 from it
    transfers: dict[bytes, list[tuple[str, int]]] = field(default_factory=dict)
    simulated: list[list[TxRequest]] = field(default_factory=list)  # each eth_simulateV1's calls
    sent: list[TxRequest] = field(default_factory=list)
    pending: list[tuple[str, TxRequest]] = field(default_factory=list)  # (hash, tx) sent, not mined
    block: int = 100
    _receipts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.chain = StubChain(self)  # what the Executor and the manager hold as their Chain

    def send_raw(self, raw: str) -> str:
        d = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        tx = TxRequest(to_checksum_address(d["to"]), bytes(d["data"]), int(d["value"]), gas=int(d["gas"]))
        assert tx.gas > self.gas.get(tx.data, self.gas_used)  # the simulated gas plus the margin
        tx_hash = "0x" + keccak(HexBytes(raw)).hex()
        self.sent.append(tx)
        self.pending.append((tx_hash, tx))
        return tx_hash

    def mine_pending(self) -> None:
        """Every pending transaction, in the order sent, in one new block."""
        self.block += 1
        for tx_hash, tx in self.pending:
            self._mine(tx_hash, tx)
        self.pending = []

    def simulate(self, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        txs = [TxRequest(c["to"], bytes.fromhex(c["data"][2:]), int(c["value"], 16)) for c in calls]
        self.simulated.append(txs)
        out = []
        for t in txs:
            if t.data in self.reverts:
                data = ERROR_STRING + encode(["string"], [self.reverts[t.data]])
                out.append({"status": "0x0", "gasUsed": hex(30_000), "returnData": "0x" + data.hex()})
            else:
                out.append({"status": "0x1", "gasUsed": hex(self.gas.get(t.data, self.gas_used)),
                            "logs": self._logs(t.data, "0x0")})
        return [{"calls": out}]

    def _logs(self, data: bytes, tx_hash: str) -> list[dict[str, Any]]:
        """The Transfer logs the test declared for this calldata."""
        logs = []
        for token, amount in self.transfers.get(data, []):
            src, dst = ("0x" + "11" * 20, self.wallet) if amount > 0 else (self.wallet, "0x" + "22" * 20)
            logs.append({"address": token, "topics": [ERC20_TRANSFER_TOPIC, _topic(src), _topic(dst)],
                         "data": "0x" + abs(amount).to_bytes(32, "big").hex(), "blockNumber": hex(self.block),
                         "logIndex": hex(len(logs)), "transactionHash": tx_hash})
        return logs

    def _mine(self, tx_hash: str, tx: TxRequest) -> None:
        if tx.data[:4] == APPROVE:
            spender, amount = decode(["address", "uint256"], tx.data[4:])
            self.allowances[(tx.to, spender)] = amount
        logs = self._logs(tx.data, tx_hash)
        for token, amount in self.transfers.get(tx.data, []):
            self.balances[token] = self.balances.get(token, 0) + amount
        self._receipts[tx_hash] = {"status": "0x0" if tx.data in self.fails_on_chain else "0x1",
                                   "blockNumber": hex(self.block),
                                   "gasUsed": hex(self.gas.get(tx.data, self.gas_used)),
                                   "effectiveGasPrice": hex(10**9), "logs": logs}


class StubRpc:
    def __init__(self, node: StubNode):
        self.node = node

    async def request(self, method: str, params: list[Any]) -> Any:
        if method == "eth_simulateV1":
            return self.node.simulate(params[0]["blockStateCalls"][0]["calls"])
        if method == "eth_sendRawTransaction":
            return self.node.send_raw(params[0])
        return self._answer(method, params)

    async def batch(self, calls: list[tuple[str, list[Any]]], *, raise_errors: bool = True) -> list[Any]:
        return [self._answer(m, p) for m, p in calls]

    def _answer(self, method: str, params: list[Any]) -> Any:
        n = self.node
        if method == "eth_getTransactionReceipt":
            return n._receipts.get(params[0])
        if method == "eth_getTransactionCount":
            return hex(len(n.sent) - (len(n.pending) if params[1] == "latest" else 0))
        if method == "eth_getBalance":
            return hex(10**21)
        if method == "eth_blockNumber":
            return hex(n.block)
        raise AssertionError(f"StubRpc: the engine was not expected to call {method}")


class StubChain:
    def __init__(self, node: StubNode):
        self.node = node
        self.rpc = StubRpc(node)
        self.multicall_address = MULTICALL3
        self.capabilities = Capabilities(simulate_v1=True)  # the stub node answers eth_simulateV1

    async def multicall_strict(self, calls: list[Call], block: int | str = "latest") -> list[Any]:
        """Only allowance(owner, spender) reads are expected."""
        out = []
        for c in calls:
            owner, spender = decode(["address", "address"], c.data[4:])
            assert owner.lower() == self.node.wallet.lower(), owner
            out.append(self.node.allowances.get((c.target, spender), 0))
        return out

    async def erc20_balances(self, pairs: list[tuple[str, str]], block: int | str = "latest") -> list[int]:
        return [self.node.balances.get(t, 0) for t, _ in pairs]

    async def block_number(self) -> int:
        return self.node.block

    async def head(self) -> AtHash:
        return AtHash(self.node.block, "0x" + self.node.block.to_bytes(32, "big").hex())

    async def nonce(self, address: str, block: int | str = "pending") -> int:
        return len(self.node.sent) - (0 if block == "pending" else len(self.node.pending))


async def stub_manager(node: StubNode, recorder: Recorder) -> TxManager:
    """A transaction manager on ``node`` with a throw-away journal; settled plans go to ``recorder``."""
    async def settled(s) -> None:
        o = settled_outcome(s, node.wallet)
        if o is not None:
            recorder.add(o)

    policy = FeePolicy(cap=50 * GWEI, max_tip=2 * GWEI)
    return TxManager(node.chain, Signer(Account.from_key(KEY)), await SqliteStore.open(), policy, 31337,
                     on_settled=settled)


async def mine_and_settle(node: StubNode, manager: TxManager) -> None:
    """The next block mines what was sent; the manager's poll of that block settles it."""
    node.mine_pending()
    await manager.tick(node.block)
