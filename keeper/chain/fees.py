"""EIP-1559 fees from eth_feeHistory."""
from __future__ import annotations

from dataclasses import dataclass

from keeper.chain.client import Chain, hexint

GWEI = 10**9


@dataclass(frozen=True)
class Fees:
    base_fee: int  # wei, the next block's base fee
    priority_fee: int  # wei, tip we offer
    max_fee: int  # wei, maxFeePerGas we sign

    @property
    def expected_price(self) -> int:
        """What one gas unit is expected to cost in the next block."""
        return min(self.max_fee, self.base_fee + self.priority_fee)


async def current_fees(chain: Chain, *, max_priority_fee: int, blocks: int = 5,
                       percentile: float = 50.0) -> Fees:
    """Next base fee from the last entry of baseFeePerGas (feeHistory gives the pending block's),
    tip = median of recent blocks' rewards at ``percentile``, capped at ``max_priority_fee``.
    maxFeePerGas = 2 x base fee + tip, which survives six full blocks of base-fee increases."""
    h = await chain.rpc.request("eth_feeHistory", [hex(blocks), "latest", [percentile]])
    base = hexint(h["baseFeePerGas"][-1])
    rewards = sorted(hexint(r[0]) for r in (h.get("reward") or []) if r)
    tip = rewards[len(rewards) // 2] if rewards else 0
    tip = min(max(tip, 1), max_priority_fee) if max_priority_fee > 0 else 0
    return Fees(base_fee=base, priority_fee=tip, max_fee=2 * base + tip)
