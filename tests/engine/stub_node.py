"""StubNode: an in-memory stand-in for the node as the engine's Executor sees it, so that ranking,
re-planning, skipping, simulation verdicts and settlement can be tested without Anvil.

It answers only what the Executor asks: allowance reads (multicall_strict), eth_simulateV1, the
receipts of sent transactions (eth_getTransactionReceipt in a batch), and it stands in for the Sender
(send / wait). Sent transactions stay pending until the first receipt is awaited; then they are all
mined in one block, emitting the ERC20 Transfer logs the test declared for their calldata. It is a
stub, not a node: the contracts' behaviour is whatever the test says.
(A fake JSON-RPC transport for keeper/chain is being added separately; this helper can move onto it.)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_abi import decode, encode
from eth_utils import keccak

from keeper.chain.capabilities import Capabilities
from keeper.chain.client import ERC20_TRANSFER_TOPIC
from keeper.chain.multicall import MULTICALL3, Call
from keeper.chain.sender import TxRequest

WALLET = "0x000000000000000000000000000000000000bEEF"
ERROR_STRING = keccak(text="Error(string)")[:4]
APPROVE = keccak(text="approve(address,uint256)")[:4]


def _topic(address: str) -> str:
    return "0x" + address.lower()[2:].rjust(64, "0")


@dataclass
class StubNode:
    wallet: str = WALLET
    gas_used: int = 100_000  # every transaction's gas in simulation and receipts
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
        self.chain = StubChain(self)  # what the Executor holds as its Chain and its Sender
        self.sender = StubSender(self)

    def send(self, tx: TxRequest) -> str:
        tx_hash = "0x" + keccak(len(self.sent).to_bytes(8, "big") + tx.data).hex()
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
                out.append({"status": "0x1", "gasUsed": hex(self.gas_used), "logs": self._logs(t.data, "0x0")})
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
                                   "blockNumber": hex(self.block), "gasUsed": hex(self.gas_used),
                                   "effectiveGasPrice": hex(10**9), "logs": logs}


class StubRpc:
    def __init__(self, node: StubNode):
        self.node = node

    async def request(self, method: str, params: list[Any]) -> Any:
        if method == "eth_simulateV1":
            return self.node.simulate(params[0]["blockStateCalls"][0]["calls"])
        raise AssertionError(f"StubRpc: the executor was not expected to call {method}")

    async def batch(self, calls: list[tuple[str, list[Any]]], *, raise_errors: bool = True) -> list[Any]:
        assert all(m == "eth_getTransactionReceipt" for m, _ in calls), calls
        return [self.node._receipts.get(p[0]) for _, p in calls]


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


@dataclass
class StubSigner:
    address: str


class StubNonces:
    async def resync(self) -> None:
        pass


class StubSender:
    def __init__(self, node: StubNode):
        self.node = node
        self.signer = StubSigner(node.wallet)
        self.nonces = StubNonces()

    async def send(self, req: TxRequest, fees: Any) -> str:
        assert req.gas is not None and req.gas > self.node.gas_used  # the simulated gas plus the margin
        return self.node.send(req)

    async def wait(self, tx_hash: str) -> Any:
        from keeper.chain.client import Log, hexint
        from keeper.chain.sender import Receipt
        if self.node.pending:
            self.node.mine_pending()
        r = self.node._receipts[tx_hash]
        return Receipt(tx_hash, hexint(r["status"]), hexint(r["blockNumber"]), hexint(r["gasUsed"]),
                       hexint(r["effectiveGasPrice"]), [Log.from_rpc(lg) for lg in r["logs"]])
