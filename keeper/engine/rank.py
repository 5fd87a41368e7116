"""Rank: value each plan after gas at the current fee and order all protocols' plans together."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from keeper.protocols.plan import Plan


def gas_cost_usd(gas: int, gas_price_wei: int, native_price_8: int) -> int:
    """gas x price (wei) valued at the native token's USD price (8 dec), rounded up."""
    return -(-gas * gas_price_wei * native_price_8 // 10**18)


@dataclass(frozen=True)
class Ranked:
    plan: Plan
    gas_usd: int
    net_usd: int
    position: int  # 0: the most profitable plan of the block


def rank(plans: list[Plan], gas_price_wei: int, native_price_8: int,
         l1_fees_wei: Sequence[int] = ()) -> list[Ranked]:
    """Plans, most profitable after gas first (ties: larger debt first, then the adapters' order).
    ``l1_fees_wei``: on a rollup, each plan's L1 fee (keeper.chain.l1fee), a cost like gas."""
    if l1_fees_wei and len(l1_fees_wei) != len(plans):
        raise ValueError(f"{len(l1_fees_wei)} L1 fees for {len(plans)} plans")
    l1 = l1_fees_wei or [0] * len(plans)
    # Native value the transactions send (a pull-oracle fee) costs like gas, and so does the L1 fee.
    valued = [(p, g, p.gross_usd - g) for p, fee in zip(plans, l1)
              for g in [gas_cost_usd(p.gas_estimate, gas_price_wei, native_price_8)
                        + gas_cost_usd(p.native_spent + fee, 1, native_price_8)]]
    valued.sort(key=lambda x: (x[2], x[0].debt_usd), reverse=True)
    return [Ranked(p, g, net, i) for i, (p, g, net) in enumerate(valued)]
