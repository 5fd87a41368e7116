"""Rank: value each plan after gas at the current fee and order all protocols' plans together."""
from __future__ import annotations

from dataclasses import dataclass

from keeper.protocols.base import Opportunity


def gas_cost_usd(gas: int, gas_price_wei: int, native_price_8: int) -> int:
    """gas x price (wei) valued at the native token's USD price (8 dec), rounded up."""
    return -(-gas * gas_price_wei * native_price_8 // 10**18)


@dataclass(frozen=True)
class Ranked:
    opp: Opportunity
    gas_usd: int
    net_usd: int


def rank(opps: list[Opportunity], gas_price_wei: int, native_price_8: int) -> list[Ranked]:
    """Planned opportunities, most profitable after gas first (ties: larger debt first)."""
    # Native value the transactions send (a pull-oracle fee) costs like gas.
    out = [Ranked(o, g, o.gross_usd - g) for o in opps if o.planned
           for g in [gas_cost_usd(o.gas_estimate, gas_price_wei, native_price_8)
                     + gas_cost_usd(o.native_spent, 1, native_price_8)]]
    out.sort(key=lambda r: (r.net_usd, r.opp.debt_usd), reverse=True)
    return out
