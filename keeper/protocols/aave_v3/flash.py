"""Aave V3 in flash mode: the executor borrows the debt asset (Morpho Blue's free flashLoan when
Morpho holds it, else the Pool's own flashLoanSimple with its premium, else a Uniswap V3 pool),
calls liquidationCall, sells the collateral received for the debt asset on Uniswap V3 and repays.
The search runs over debtToCover for each (collateral, debt) pair, within the rules' close factor
and dust limit (aave_v3.rules), the whole reserve debt tried as well."""
from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from keeper.executor import AaveV3Liquidation, Profit, Swap, liquidate_aave_v3
from keeper.protocols.aave_v3.rules import (
    MustNotLeaveDust,
    Outcome,
    Side,
    best_amount,
    liquidate,
    max_liquidatable_debt,
)
from keeper.swap.search import Candidate, Problem, Sale, Solution

FLASH_GAS = 600_000  # before simulation (the executor's flow on the real Pool: ~540-570k)
MAX_PAIRS = 3  # (collateral, debt) pairs quoted per account, best first at oracle prices


@dataclass(frozen=True)
class Pair:
    """One (collateral, debt) pair of an account as liquidationCall would see it."""
    collateral: str
    debt: str
    coll: Side
    debt_side: Side
    bonus: int
    protocol_fee: int


def outcome(pair: Pair, rules: str, health_factor: int, total_debt_base: int, amount: int) -> Outcome | None:
    """What liquidationCall(debtToCover = amount) does, or None where the Pool reverts on dust."""
    try:
        return liquidate(rules, health_factor, total_debt_base, pair.coll, pair.debt_side, pair.bonus,
                         pair.protocol_fee, amount)
    except MustNotLeaveDust:
        return None


def problem(key: Hashable, pair: Pair, rules: str, health_factor: int, total_debt_base: int, pool: str,
            clear_margin_bps: int) -> Problem | None:
    cap = max_liquidatable_debt(rules, health_factor, total_debt_base, pair.coll, pair.debt_side)
    if cap <= 0 or pair.collateral == pair.debt:
        return None

    def at(amount: int) -> Candidate | None:
        out = outcome(pair, rules, health_factor, total_debt_base, amount)
        if out is None or out.collateral_to_liquidator == 0:
            return None
        balance = pair.debt_side.balance
        # Clearing the reserve debt: borrow (and offer as debtToCover) a margin over it, for the
        # interest accrued by execution; the Pool takes only what is owed, the rest repays the loan.
        borrow = balance + balance * clear_margin_bps // 10_000 + 1 if out.debt_repaid >= balance else amount
        return Candidate(amount, (Sale(pair.collateral, out.collateral_to_liquidator),), out.debt_repaid, borrow)

    below = best_amount(rules, health_factor, total_debt_base, pair.coll, pair.debt_side, pair.bonus,
                        pair.protocol_fee, cap - 1) if cap > 1 else None
    extra = (cap,) if outcome(pair, rules, health_factor, total_debt_base, cap) is not None else ()
    if below is None:
        return Problem(key, pair.debt, cap, cap, at, aave_pool=pool) if extra else None
    return Problem(key, pair.debt, 1, below[0], at, extra, aave_pool=pool)


def calldata(sol: Solution, pool: str, user: str, pair: Pair, swap: Swap, profit: Profit) -> bytes:
    """liquidateAaveV3: debtToCover = the amount borrowed (what the Pool does not pull repays it)."""
    assert sol.lender is not None
    liq = AaveV3Liquidation(pool, pair.collateral, pair.debt, user, sol.candidate.borrow)
    return liquidate_aave_v3(liq, sol.lender.flash(), swap, profit)
