"""Morpho Blue in flash mode: liquidate() with callback data, the seized collateral sold inside
onMorphoLiquidate before Morpho pulls the repayment (no flash loan). The search runs over the
seized assets: from 1 up to the largest liquidation morpho_blue.maths.plan allows (every share
repaid, or all the collateral when the rest is bad debt)."""
from __future__ import annotations

from collections.abc import Hashable

from keeper.executor import MarketParams, MorphoBlueLiquidation, liquidate_morpho_blue
from keeper.protocols.morpho_blue import maths as mm
from keeper.swap.search import Candidate, Problem, Sale, Solution

UNLIMITED = 2**255
FLASH_GAS = 320_000  # before simulation (the executor's flow on the real Morpho Blue: ~290k)


def liquidation_at(seized: int, full: mm.Liquidation, m: mm.Market, price: int, lltv: int) -> mm.Liquidation:
    """The whole liquidation at its top size, else by seized assets."""
    return full if seized >= full.seized else mm.by_seized(seized, m, price, lltv)


def problem(key: Hashable, loan: str, collateral_token: str, shares: int, collateral: int, m: mm.Market, price: int,
            lltv: int) -> Problem | None:
    full = mm.plan(shares, collateral, m, price, lltv, UNLIMITED)
    if full is None or full.seized == 0:
        return None

    def at(seized: int) -> Candidate:
        liq = liquidation_at(seized, full, m, price, lltv)
        return Candidate(seized, (Sale(collateral_token, liq.seized),), liq.repaid_assets, 0)

    return Problem(key, loan, 1, full.seized, at)


def calldata(sol: Solution, morpho: str, params: tuple, borrower: str, shares: int, collateral: int, m: mm.Market,
             price: int, lltv: int, swaps: tuple, profit) -> tuple[bytes, mm.Liquidation]:
    """liquidateMorphoBlue for the solution's size (seizedAssets, or every share for the whole)."""
    full = mm.plan(shares, collateral, m, price, lltv, UNLIMITED)
    assert full is not None
    liq = liquidation_at(sol.candidate.size, full, m, price, lltv)
    args = MorphoBlueLiquidation(morpho, MarketParams(*params), borrower, liq.seized_assets, liq.repaid_shares)
    (swap,) = swaps
    return liquidate_morpho_blue(args, swap, profit), liq
