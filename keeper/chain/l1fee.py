"""The L1 part of a rollup transaction's cost, which the L2 gas x gas price leaves out.

- OP stack (Base, Optimism; ``chain.l2 = "op_stack"``): every transaction also pays an L1 data fee,
  taken from the sender's balance beside gasUsed x gasPrice (receipts carry it as ``l1Fee``). The
  GasPriceOracle predeploy computes it from the L1Block predeploy's values: ``getL1Fee(bytes)`` over
  the unsigned RLP-encoded transaction (since Fjord: FastLZ-compressed size + 68 bytes of signature,
  times 16 x baseFeeScalar x l1BaseFee + blobBaseFeeScalar x blobBaseFee), or the cheaper
  ``getL1FeeUpperBound(uint256 unsignedTxSize)`` (Fjord and later only).
- Arbitrum (``chain.l2 = "arbitrum"``): the L1 component is charged as extra L2 gas (the receipt's
  gasUsed includes it, so the gas limit must cover it) at the L2 base fee. The node answers
  ``NodeInterface.gasEstimateL1Component(to, contractCreation, data)`` at 0x..C8 (a virtual
  contract: no code there) with (gasEstimateForL1, baseFee, l1BaseFeeEstimate).

The engine adds ``L1Fee.wei`` of every transaction of a plan to the plan's gas cost before ranking
and before the min-profit check (and, on Arbitrum, ``L1Fee.l1_gas`` to a gas limit taken from a
simulation that does not count it).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import rlp  # type: ignore[import-untyped]
from eth_abi import decode, encode
from eth_utils import to_canonical_address, to_checksum_address

from keeper.chain.client import Chain, block_tag, hexint
from keeper.chain.multicall import selector

L2Kind = Literal["none", "op_stack", "arbitrum"]
GAS_PRICE_ORACLE = "0x420000000000000000000000000000000000000F"  # OP stack predeploy
NODE_INTERFACE = "0x00000000000000000000000000000000000000C8"  # Arbitrum virtual contract

_GET_L1_FEE = selector("getL1Fee(bytes)")
_GET_L1_FEE_UPPER_BOUND = selector("getL1FeeUpperBound(uint256)")
_GAS_ESTIMATE_L1_COMPONENT = selector("gasEstimateL1Component(address,bool,bytes)")


@dataclass(frozen=True)
class UnsignedTx:
    """An EIP-1559 transaction as it will be signed. On the OP stack its encoded size is what the L1
    fee charges for, so nonce, gas and fees should be the ones that will be signed (their encodings
    are a few bytes each)."""
    chain_id: int
    to: str | None  # None: contract creation
    data: bytes
    value: int = 0
    nonce: int = 0
    gas: int = 0
    max_fee: int = 0
    priority_fee: int = 0

    def rlp(self) -> bytes:
        """0x02 || rlp([chainId, nonce, maxPriorityFeePerGas, maxFeePerGas, gas, to, value, data,
        accessList]) (EIP-1559's payload without the signature fields)."""
        to = b"" if self.to is None else to_canonical_address(self.to)
        fields = [self.chain_id, self.nonce, self.priority_fee, self.max_fee, self.gas, to, self.value,
                  self.data, []]
        return b"\x02" + rlp.encode(fields)


@dataclass(frozen=True)
class L1Fee:
    wei: int  # what the transaction's L1 part costs, on top of its L2 gas x price
    l1_gas: int = 0  # Arbitrum: the L2 gas units that pay it (counted in gasUsed; 0 elsewhere)

    def __add__(self, other: L1Fee) -> L1Fee:
        return L1Fee(self.wei + other.wei, self.l1_gas + other.l1_gas)


NO_FEE = L1Fee(0)


def _to_and_data(raw: bytes) -> tuple[str | None, bytes]:
    """``to`` and ``data`` of an RLP-encoded transaction: typed (EIP-2718: type byte, then
    [chainId, nonce, (gasPrice | tip, maxFee), gas, to, value, data, ...]) or legacy
    ([nonce, gasPrice, gas, to, value, data, ...])."""
    if not raw:
        raise ValueError("empty transaction bytes")
    if raw[0] >= 0xC0:
        fields = rlp.decode(raw)
        to, data = fields[3], fields[5]
    elif raw[0] == 0x01:  # EIP-2930: chainId, nonce, gasPrice, gas, to, value, data, accessList
        fields = rlp.decode(raw[1:])
        to, data = fields[4], fields[6]
    elif raw[0] in (0x02, 0x03, 0x04):  # EIP-1559 / 4844 / 7702: chainId, nonce, tip, maxFee, gas, to, ...
        fields = rlp.decode(raw[1:])
        to, data = fields[5], fields[7]
    else:
        raise ValueError(f"unknown transaction type 0x{raw[0]:02x}")
    return (to_checksum_address(to) if to else None), bytes(data)


def _op_stack_call(tx_rlp: bytes) -> tuple[str, bytes]:
    return GAS_PRICE_ORACLE, _GET_L1_FEE + encode(["bytes"], [tx_rlp])


def _arbitrum_call(to: str | None, data: bytes) -> tuple[str, bytes]:
    args = encode(["address", "bool", "bytes"], [to or "0x" + "00" * 20, to is None, data])
    return NODE_INTERFACE, _GAS_ESTIMATE_L1_COMPONENT + args


def _answer(where: str, out: bytes, size: int) -> bytes:
    if len(out) < size:  # e.g. no code at the predeploy: the node answers 0x
        raise ValueError(f"chain.l2: {where} answered 0x{out.hex()} (is this chain of that kind?)")
    return out


def _op_stack_fee(out: bytes) -> L1Fee:
    (fee,) = decode(["uint256"], _answer(f"GasPriceOracle at {GAS_PRICE_ORACLE}", out, 32))
    return L1Fee(int(fee))


def _arbitrum_fee(out: bytes) -> L1Fee:
    gas_for_l1, base_fee, _l1_base_fee = decode(["uint64", "uint256", "uint256"],
                                                _answer(f"NodeInterface at {NODE_INTERFACE}", out, 96))
    return L1Fee(wei=int(gas_for_l1) * int(base_fee), l1_gas=int(gas_for_l1))


def _call_of(l2: L2Kind, tx: UnsignedTx | bytes) -> tuple[str, bytes]:
    if l2 == "op_stack":
        return _op_stack_call(tx.rlp() if isinstance(tx, UnsignedTx) else tx)
    if l2 == "arbitrum":
        return _arbitrum_call(*((tx.to, tx.data) if isinstance(tx, UnsignedTx) else _to_and_data(tx)))
    raise ValueError(f"unknown chain.l2 kind {l2!r}")


async def op_stack_l1_fee(chain: Chain, tx_rlp: bytes, block: int | str = "latest") -> int:
    """GasPriceOracle.getL1Fee over ``tx_rlp``: the unsigned RLP-encoded transaction, as the
    predeploy expects (a signed one is charged for its signature twice: a slight overestimate)."""
    return _op_stack_fee(await chain.eth_call(*_op_stack_call(tx_rlp), block=block)).wei


async def op_stack_l1_fee_upper_bound(chain: Chain, unsigned_tx_size: int,
                                      block: int | str = "latest") -> int:
    """GasPriceOracle.getL1FeeUpperBound: the fee of the worst-compressing transaction of that many
    unsigned bytes (Fjord and later; the predeploy reverts before Fjord)."""
    out = await chain.eth_call(GAS_PRICE_ORACLE,
                               _GET_L1_FEE_UPPER_BOUND + encode(["uint256"], [unsigned_tx_size]), block=block)
    (fee,) = decode(["uint256"], out)
    return int(fee)


async def arbitrum_l1_fee(chain: Chain, to: str | None, data: bytes, block: int | str = "latest") -> L1Fee:
    """NodeInterface.gasEstimateL1Component: the L1 component in L2 gas units, priced at the L2 base
    fee it returns."""
    return _arbitrum_fee(await chain.eth_call(*_arbitrum_call(to, data), block=block))


async def l1_fees(chain: Chain, l2: L2Kind, txs: Sequence[UnsignedTx | bytes],
                  block: int | str = "latest") -> list[L1Fee]:
    """The L1 part of each transaction's cost on a chain of kind ``l2`` (``NO_FEE`` each on "none"),
    read with one JSON-RPC batch of eth_calls. Each ``tx`` is the transaction to be signed, or its
    RLP encoding (unsigned preferred)."""
    if l2 == "none" or not txs:
        return [NO_FEE] * len(txs)
    calls = [_call_of(l2, tx) for tx in txs]
    tag = block_tag(block)
    answers = await chain.batch([("eth_call", [{"to": to, "data": "0x" + data.hex()}, tag]) for to, data in calls])
    parse = _op_stack_fee if l2 == "op_stack" else _arbitrum_fee
    return [parse(bytes.fromhex(a[2:])) for a in answers]


async def l1_fee(chain: Chain, l2: L2Kind, tx: UnsignedTx | bytes, block: int | str = "latest") -> L1Fee:
    """The L1 part of one transaction's cost (see l1_fees)."""
    if l2 == "none":
        return NO_FEE
    to, data = _call_of(l2, tx)
    out = await chain.eth_call(to, data, block=block)
    return _op_stack_fee(out) if l2 == "op_stack" else _arbitrum_fee(out)


async def l1_fee_wei(chain: Chain, l2: L2Kind, tx: UnsignedTx | bytes, block: int | str = "latest") -> int:
    return (await l1_fee(chain, l2, tx, block)).wei


def total(fees: Sequence[L1Fee]) -> L1Fee:
    out = NO_FEE
    for f in fees:
        out = out + f
    return out


async def plan_l1_fee(chain: Chain, l2: L2Kind, txs: Sequence[UnsignedTx | bytes],
                      block: int | str = "latest") -> L1Fee:
    """The L1 part of every transaction of a plan, summed (one batch)."""
    return total(await l1_fees(chain, l2, txs, block))


def receipt_l1_fee(receipt: dict[str, Any]) -> int:
    """The L1 fee an OP-stack receipt says was paid (``l1Fee``; 0 where the chain has none). On
    Arbitrum the L1 part is already in gasUsed x effectiveGasPrice."""
    raw = receipt.get("l1Fee")
    return 0 if raw is None else hexint(raw)
