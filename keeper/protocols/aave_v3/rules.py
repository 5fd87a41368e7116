"""Aave V3 liquidation maths, in integers, exactly as the Pool computes it.

Sources: aave/aave-v3-core LiquidationLogic.sol (v3.0, the @aave/core-v3 1.19.3 release) and
aave-dao/aave-v3-origin LiquidationLogic.sol (v3.3+: base-currency close-factor thresholds and the
dust rule). PercentageMath rounds half up; prices are in the oracle's base currency (USD, 8 dec).
"""
from __future__ import annotations

from dataclasses import dataclass

PERCENTAGE_FACTOR = 10_000
HALF_PERCENT = 5_000
CLOSE_FACTOR_HF_THRESHOLD = 95 * 10**16  # 0.95e18
DEFAULT_CLOSE_FACTOR = 5_000  # 50%
MAX_CLOSE_FACTOR = 10_000  # 100%
MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD = 2_000 * 10**8  # v3.3: 2000 USD
MIN_LEFTOVER_BASE = 1_000 * 10**8  # v3.3: 1000 USD
UINT_MAX = 2**256 - 1


def percent_mul(value: int, pct: int) -> int:
    return (value * pct + HALF_PERCENT) // PERCENTAGE_FACTOR


def percent_div(value: int, pct: int) -> int:
    return (value * PERCENTAGE_FACTOR + pct // 2) // pct


@dataclass(frozen=True)
class Side:
    """One reserve as seen in a liquidation: price (base units), decimals, the user's balance."""
    price: int
    decimals: int
    balance: int  # collateral aToken balance, or total debt (variable + stable) in the reserve

    @property
    def unit(self) -> int:
        return 10**self.decimals

    def base(self, amount: int) -> int:
        return amount * self.price // self.unit


@dataclass(frozen=True)
class Outcome:
    debt_repaid: int
    collateral_to_liquidator: int  # received by the liquidator (protocol fee already taken out)
    protocol_fee: int  # collateral sent to the treasury

    @property
    def collateral_seized(self) -> int:
        return self.collateral_to_liquidator + self.protocol_fee


class MustNotLeaveDust(Exception):
    pass


def max_liquidatable_debt(rules: str, health_factor: int, total_debt_base: int,
                          coll: Side, debt: Side) -> int:
    """The most debt of this reserve one call may repay (the close factor)."""
    if rules == "v3.0":
        factor = DEFAULT_CLOSE_FACTOR if health_factor > CLOSE_FACTOR_HF_THRESHOLD else MAX_CLOSE_FACTOR
        return percent_mul(debt.balance, factor)
    # v3.3: the whole reserve debt, unless both the collateral and the debt of these reserves are
    # worth at least 2000 USD and HF > 0.95: then 50% of the user's TOTAL debt, capped at the reserve.
    max_debt = debt.balance
    if (coll.base(coll.balance) >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
            and debt.base(debt.balance) >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
            and health_factor > CLOSE_FACTOR_HF_THRESHOLD):
        default_base = percent_mul(total_debt_base, DEFAULT_CLOSE_FACTOR)
        if debt.base(debt.balance) > default_base:
            max_debt = default_base * debt.unit // debt.price
    return max_debt


def collateral_for(debt_to_cover: int, coll: Side, debt: Side, bonus: int, protocol_fee_bps: int) -> Outcome:
    """_calculateAvailableCollateralToLiquidate: collateral for ``debt_to_cover`` with the bonus,
    capped by the user's collateral (then the debt repaid shrinks to match), minus the protocol fee
    (a share of the bonus part)."""
    base_collateral = debt.price * debt_to_cover * coll.unit // (coll.price * debt.unit)
    max_collateral = percent_mul(base_collateral, bonus)
    if max_collateral > coll.balance:
        collateral = coll.balance
        debt_needed = percent_div(coll.price * collateral * debt.unit // (debt.price * coll.unit), bonus)
    else:
        collateral = max_collateral
        debt_needed = debt_to_cover
    fee = 0
    if protocol_fee_bps:
        bonus_collateral = collateral - percent_div(collateral, bonus)
        fee = percent_mul(bonus_collateral, protocol_fee_bps)
    return Outcome(debt_needed, collateral - fee, fee)


def liquidate(rules: str, health_factor: int, total_debt_base: int, coll: Side, debt: Side,
              bonus: int, protocol_fee_bps: int, debt_to_cover: int) -> Outcome:
    """What liquidationCall(debtToCover) does; raises MustNotLeaveDust where v3.3 reverts."""
    actual = min(debt_to_cover, max_liquidatable_debt(rules, health_factor, total_debt_base, coll, debt))
    out = collateral_for(actual, coll, debt, bonus, protocol_fee_bps)
    if rules == "v3.3" and out.debt_repaid < debt.balance and out.collateral_seized < coll.balance:
        # Dust rule: unless one side is cleared, both leftovers must be worth >= 1000 USD. The check
        # is the stricter of the releases: v3.3.0 floors the debt leftover and does not subtract
        # the protocol fee from the collateral leftover; v3.4+ subtracts it but rounds the debt
        # leftover up (mulDivCeil). Floor + fee subtracted never trips either.
        debt_left = debt.base(debt.balance - out.debt_repaid)
        coll_left = coll.base(coll.balance - out.collateral_seized)
        if debt_left < MIN_LEFTOVER_BASE or coll_left < MIN_LEFTOVER_BASE:
            raise MustNotLeaveDust(f"would leave {debt_left} debt / {coll_left} collateral (base units)")
    return out


def best_amount(rules: str, health_factor: int, total_debt_base: int, coll: Side, debt: Side,
                bonus: int, protocol_fee_bps: int, budget: int) -> tuple[int, Outcome] | None:
    """The largest debtToCover within ``budget`` that the Pool accepts (profit grows with the
    amount repaid, so the largest valid amount is the most profitable). Returns (amount, outcome)."""
    cap = min(budget, max_liquidatable_debt(rules, health_factor, total_debt_base, coll, debt))
    if cap <= 0:
        return None

    def ok(a: int) -> Outcome | None:
        try:
            return liquidate(rules, health_factor, total_debt_base, coll, debt, bonus, protocol_fee_bps, a)
        except MustNotLeaveDust:
            return None

    out = ok(cap)
    if out is not None:
        return cap, out
    # The dust rule bites at the cap: the valid amounts below it form one interval [1, hi]
    # (leftovers shrink as the amount grows), so search its top.
    lo, hi = 0, cap
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid) is not None:
            lo = mid
        else:
            hi = mid
    if lo == 0:
        return None
    return lo, ok(lo)
