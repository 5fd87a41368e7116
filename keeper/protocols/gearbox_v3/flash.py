"""Gearbox V3 in flash mode. Partial: the executor borrows the underlying, calls
partiallyLiquidateCreditAccount (the credit manager pulls it), sells the seized token on Uniswap V3
and repays; the search runs over repaidAmount within the interval the facade accepts
(maths.partial_range). Full: it borrows what the liquidation adds, calls liquidateCreditAccount with
[onDemandPriceUpdates, addCollateral(underlying), withdrawCollateral(token, max, executor) per
collateral], sells every collateral, and keeps the underlying the credit manager sends back."""
from __future__ import annotations

from collections.abc import Hashable, Sequence

from keeper.executor import (
    GearboxFullLiquidation,
    GearboxPartialLiquidation,
    PriceUpdate,
    Profit,
    Swap,
    liquidate_gearbox_full,
    liquidate_gearbox_partial,
)
from keeper.protocols.gearbox_v3 import maths as gm
from keeper.swap.search import Candidate, Problem, Sale, Solution

# Before simulation (the executor's flows on the real contracts, a Pyth update and the flash loan
# included: partial ~745k, full ~595k with one collateral, ~770k with two).
PARTIAL_FLASH_GAS = 650_000
FULL_FLASH_GAS = 420_000
FULL_FLASH_GAS_PER_TOKEN = 175_000
# The wallet's own full liquidation (no flash loan, no swap), before simulation.
FULL_GAS = 330_000
FULL_GAS_PER_TOKEN = 60_000


def partial_problem(key: Hashable, acc: gm.Account, token: str, margin_bps: int) -> Problem | None:
    found = gm.partial_range(acc, token, margin_bps)
    if found is None:
        return None
    lo, hi = found

    def at(amount: int) -> Candidate | None:
        p = gm.simulate_partial(acc, token, amount)
        return Candidate(amount, (Sale(token, p.seized),), amount, amount) if p.seized else None

    return Problem(key, acc.underlying, lo, hi, at)


def full_problem(key: Hashable, acc: gm.Account, total_value: int) -> Problem | None:
    full = gm.full_liquidation(acc, total_value, min_add=1)  # a flash loan of 0 is refused
    if not full.withdrawn:
        return None
    sales = tuple(Sale(t, a) for t, a in full.withdrawn.items())
    return Problem(key, acc.underlying, 1, 1, lambda _: Candidate(1, sales, full.add, full.add, full.returned))


def updates(raw: Sequence[tuple[str, bytes]]) -> tuple[PriceUpdate, ...]:
    return tuple(PriceUpdate(feed, data) for feed, data in raw)


def partial_calldata(sol: Solution, facade: str, cm: str, underlying: str, ca: str, token: str, min_seized: int,
                     raw_updates: Sequence[tuple[str, bytes]], swap: Swap, profit: Profit) -> bytes:
    assert sol.lender is not None
    liq = GearboxPartialLiquidation(facade, cm, underlying, ca, token, sol.candidate.size, min_seized,
                                    updates(raw_updates))
    return liquidate_gearbox_partial(liq, sol.lender.flash(), swap, profit)


def full_calldata(sol: Solution, facade: str, cm: str, underlying: str, ca: str,
                  raw_updates: Sequence[tuple[str, bytes]], swaps: Sequence[Swap], profit: Profit) -> bytes:
    assert sol.lender is not None
    liq = GearboxFullLiquidation(facade, cm, underlying, ca, sol.candidate.borrow,
                                 tuple(s.token for s in sol.candidate.sales), updates(raw_updates))
    return liquidate_gearbox_full(liq, sol.lender.flash(), list(swaps), profit)
