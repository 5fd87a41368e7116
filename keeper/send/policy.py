"""Fee policy: the tip offered, the maxFeePerGas signed, and the fees of a replacement or a cancel.

- First fees: tip = the configured percentile of recent tips (eth_feeHistory), at least the floor
  and, when set, a share of the plan's expected profit spread over its gas; never above
  max_priority_fee_gwei. maxFeePerGas = 2 x next base fee + tip (six full blocks of EIP-1559 base
  fee increases), never above max_gas_price_gwei.
- A replacement at the same nonce raises both fees by at least ``fee_bump_percent`` (geth's
  txpool refuses less than its price bump, 10% by default) and to the market's current level,
  within the plan's fee budget per gas and the cap. A cancel is a replacement by a 21,000-gas
  self-transfer, within the cap alone.
- ``max_gas_price_gwei`` caps every maxFeePerGas signed; when a valid bump would need more, nothing
  is signed and the transaction waits.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from keeper.chain.fees import GWEI, Fees

PPM = 1_000_000


def _ppm(x: Decimal) -> int:
    return int(x * PPM)


@dataclass(frozen=True)
class FeePolicy:
    cap: int  # wei: no maxFeePerGas above it, ever
    max_tip: int  # wei: the first tip's ceiling
    tip_floor: int = 0  # wei
    tip_percentile: float = 50.0
    tip_profit_ppm: int = 0  # share of the expected profit offered as tip, parts per million
    budget_ppm: int = 500_000  # share of the expected profit a plan may spend on gas
    bump_ppm: int = 125_000  # raise of both fees in a replacement
    replace_after: int = 3  # blocks without being mined before a replacement

    @classmethod
    def from_config(cls, *, max_gas_price_gwei: Decimal, max_priority_fee_gwei: Decimal, tip_floor_gwei: Decimal,
                    tip_percentile: float, tip_profit_share: Decimal, fee_budget_share: Decimal,
                    fee_bump_percent: Decimal, replace_after_blocks: int) -> FeePolicy:
        return cls(cap=int(max_gas_price_gwei * GWEI), max_tip=int(max_priority_fee_gwei * GWEI),
                   tip_floor=int(tip_floor_gwei * GWEI), tip_percentile=tip_percentile,
                   tip_profit_ppm=_ppm(tip_profit_share), budget_ppm=_ppm(fee_budget_share),
                   bump_ppm=_ppm(fee_bump_percent / 100), replace_after=replace_after_blocks)

    def market(self, base_fee: int, recent_tip: int) -> Fees:
        """The fees a plan is ranked with: the recent tip within floor and ceiling, 2 x base + tip
        within the cap."""
        tip = min(max(recent_tip, self.tip_floor), self.max_tip)
        return Fees(base_fee=base_fee, priority_fee=tip, max_fee=min(2 * base_fee + tip, self.cap))

    def budget_per_gas(self, gross_wei: int, gas: int) -> int:
        """The most a plan expected to earn ``gross_wei`` (before gas) may pay per gas unit."""
        return gross_wei * self.budget_ppm // PPM // max(gas, 1)

    def first(self, market: Fees, *, gross_wei: int, gas: int) -> Fees:
        """Fees of a plan's transactions when first sent."""
        share = gross_wei * self.tip_profit_ppm // PPM // max(gas, 1) if self.tip_profit_ppm else 0
        tip = min(max(market.priority_fee, self.tip_floor, share), self.max_tip)
        max_fee = min(2 * market.base_fee + tip, self.cap)
        return Fees(base_fee=market.base_fee, priority_fee=min(tip, max_fee), max_fee=max_fee)

    def bumped(self, old_max: int, old_tip: int, market: Fees, *, ceiling: int | None = None) -> Fees | None:
        """Fees for a replacement of a transaction signed with (old_max, old_tip): each raised by the
        bump (and by one wei at least) and to the market's level; None when the cap (or ``ceiling``,
        the plan's budget per gas) leaves no valid bump."""
        need_max = max(-(-old_max * (PPM + self.bump_ppm) // PPM), old_max + 1)
        need_tip = max(-(-old_tip * (PPM + self.bump_ppm) // PPM), old_tip + 1)
        tip = max(need_tip, market.priority_fee)
        want = max(need_max, 2 * market.base_fee + tip)
        limit = self.cap if ceiling is None else min(self.cap, ceiling)
        max_fee = min(want, limit)
        if max_fee < need_max or min(tip, max_fee) < need_tip:
            return None
        return Fees(base_fee=market.base_fee, priority_fee=min(tip, max_fee), max_fee=max_fee)
