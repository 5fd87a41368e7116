"""Compound III in flash mode: absorb, then for each collateral the absorb freed, the executor
borrows the base token (Morpho Blue, an Aave Pool or a Uniswap V3 pool), buys the collateral at the
store-front price (buyCollateral), sells it on Uniswap V3 and repays. The search runs over the base
paid, up to what buys all the collateral for sale (StoreFront.max_base_for)."""
from __future__ import annotations

from collections.abc import Hashable

from keeper.executor import CompoundV3Liquidation, Profit, Swap, liquidate_compound_v3
from keeper.protocols.compound_v3 import maths as cm
from keeper.swap.search import Candidate, Problem, Sale, Solution

BUY_FLASH_GAS = 400_000  # per executor call, before simulation (~390k with one absorbed account)


def problem(key: Hashable, base: str, asset: str, sf: cm.StoreFront, for_sale: int) -> Problem | None:
    top = sf.max_base_for(for_sale)
    if top <= 0:
        return None

    def at(base_amount: int) -> Candidate | None:
        bought = sf.quote(base_amount)
        return Candidate(base_amount, (Sale(asset, bought),), base_amount, base_amount) if bought else None

    return Problem(key, base, 1, top, at)


def calldata(sol: Solution, comet: str, base: str, absorb: tuple[str, ...], asset: str, min_amount: int, swap: Swap,
             profit: Profit) -> bytes:
    """liquidateCompoundV3: absorb (first call only), flash the base, buyCollateral, sell, repay."""
    assert sol.lender is not None
    liq = CompoundV3Liquidation(comet, base, absorb, asset, sol.candidate.size, min_amount)
    return liquidate_compound_v3(liq, sol.lender.flash(), swap, profit)
