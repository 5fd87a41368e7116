"""Build, sign, send EIP-1559 transactions and track their receipts."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from keeper.chain.client import Chain, Log, hexint
from keeper.chain.fees import Fees
from keeper.chain.l1fee import receipt_l1_fee
from keeper.chain.nonces import NonceManager
from keeper.chain.relay import Submitter
from keeper.chain.signer import Signer
from keeper.errors import RpcError


@dataclass
class TxRequest:
    to: str
    data: bytes
    value: int = 0
    gas: int | None = None
    what: str = ""  # for logs: "approve USDC", "liquidationCall ..."


@dataclass
class Receipt:
    tx_hash: str
    status: int
    block_number: int
    gas_used: int
    effective_gas_price: int
    logs: list[Log] = field(default_factory=list)
    l1_fee: int = 0  # OP stack: the receipt's l1Fee, paid beside gasUsed x effectiveGasPrice

    @property
    def fee_paid(self) -> int:
        return self.gas_used * self.effective_gas_price + self.l1_fee


class Sender:
    def __init__(self, chain: Chain, signer: Signer, chain_id: int, *, receipt_timeout: float = 120.0,
                 poll_interval: float = 0.05, submitter: Submitter | None = None):
        self.chain = chain
        self.signer = signer
        self.chain_id = chain_id
        self.nonces = NonceManager(chain, signer.address)
        self.receipt_timeout = receipt_timeout
        self.poll_interval = poll_interval
        self.submitter = submitter  # private submission (a relay) instead of the public mempool

    async def send(self, req: TxRequest, fees: Fees) -> str:
        """Sign and broadcast; returns the tx hash once the node accepted it."""
        if req.gas is None:
            raise ValueError("gas must be set (from the simulation) before sending")
        async with self.nonces.lock:
            nonce = await self.nonces.peek()
            tx = {
                "type": 2, "chainId": self.chain_id, "nonce": nonce, "to": req.to,
                "data": "0x" + req.data.hex(), "value": req.value, "gas": req.gas,
                "maxFeePerGas": fees.max_fee, "maxPriorityFeePerGas": fees.priority_fee,
            }
            raw, tx_hash = self.signer.sign(tx)
            try:
                if self.submitter is not None:
                    await self.submitter.submit("0x" + raw.hex(), tx_hash)
                else:
                    await self.chain.rpc.request("eth_sendRawTransaction", ["0x" + raw.hex()])
            except RpcError as e:
                if "already known" not in str(e).lower():
                    await self.nonces.resync()
                    raise
            self.nonces.advance()
        return tx_hash

    async def wait(self, tx_hash: str) -> Receipt:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.receipt_timeout
        while True:
            r = await self.chain.rpc.request("eth_getTransactionReceipt", [tx_hash])
            if r is not None:
                return Receipt(
                    tx_hash=tx_hash, status=hexint(r["status"]), block_number=hexint(r["blockNumber"]),
                    gas_used=hexint(r["gasUsed"]), effective_gas_price=hexint(r["effectiveGasPrice"]),
                    logs=[Log.from_rpc(lg) for lg in r["logs"]], l1_fee=receipt_l1_fee(r),
                )
            if self.submitter is not None and (why := self.submitter.abandoned(tx_hash)):
                raise RpcError(f"{tx_hash}: {why}")
            if loop.time() > deadline:
                raise RpcError(f"no receipt for {tx_hash} after {self.receipt_timeout}s")
            await asyncio.sleep(self.poll_interval)
