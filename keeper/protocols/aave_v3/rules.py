"""Aave V3 liquidation maths, in integers, exactly as the Pool computes it.

Two rule sets (``close_factor_rules``):
- "v3.0": aave/aave-v3-core LiquidationLogic.sol as in the @aave/core-v3 1.19.3 release: 50% / 100%
  close factor on the reserve's debt, no dust rule, PercentageMath rounding half up everywhere.
- "v3.3": v3.3 and later, as of the latest release of aave-dao/aave-v3-origin (v3.7, POOL_REVISION
  11; LiquidationLogic.executeLiquidationCall / _calculateAvailableCollateralToLiquidate):
  close factor on the user's TOTAL debt above the 2,000 USD thresholds, the dust rule (both sides;
  the collateral side after the protocol fee), a reserve's debt valued rounding up (mulDivCeil, from
  v3.5), and the collateral and fee maths with explicit rounding (v3.7, docs/3.7/liquidation-rounding.md):
  collateral with bonus percentMulFloor, debt for capped collateral percentDivCeil, the base part of
  the seized collateral percentDivFloor, the protocol fee percentMulCeil. The close factor's 50% of the
  total debt stays the half-up percentMul. Bad debt: when a call takes the user's last collateral the
  Pool burns all its debt and books the unpaid part as the reserve's deficit (v3.3); the liquidator
  pays and receives the same either way.
Prices are in the oracle's base currency (USD, 8 decimals).
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
RULES = ("v3.0", "v3.3")


# PercentageMath: the half-up pair (all of v3.0) and the explicit directions of v3.5+ / v3.7.
def percent_mul(value: int, pct: int) -> int:
    return (value * pct + HALF_PERCENT) // PERCENTAGE_FACTOR


def percent_div(value: int, pct: int) -> int:
    return (value * PERCENTAGE_FACTOR + pct // 2) // pct


def percent_mul_floor(value: int, pct: int) -> int:
    return value * pct // PERCENTAGE_FACTOR


def percent_mul_ceil(value: int, pct: int) -> int:
    return -(-value * pct // PERCENTAGE_FACTOR)


def percent_div_floor(value: int, pct: int) -> int:
    return value * PERCENTAGE_FACTOR // pct


def percent_div_ceil(value: int, pct: int) -> int:
    return -(-value * PERCENTAGE_FACTOR // pct)


def mul_div_ceil(a: int, b: int, c: int) -> int:
    """MathUtils.mulDivCeil."""
    return -(-a * b // c)


def check_rules(rules: str) -> None:
    if rules not in RULES:
        raise ValueError(f"unknown Aave close_factor_rules {rules!r}; expected one of {RULES}")


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
        """Value in base currency, rounded down (collateral)."""
        return amount * self.price // self.unit

    def base_ceil(self, amount: int) -> int:
        """Value in base currency, rounded up (a debt from v3.5: MathUtils.mulDivCeil)."""
        return mul_div_ceil(amount, self.price, self.unit)


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
    check_rules(rules)
    if rules == "v3.0":
        factor = DEFAULT_CLOSE_FACTOR if health_factor > CLOSE_FACTOR_HF_THRESHOLD else MAX_CLOSE_FACTOR
        return percent_mul(debt.balance, factor)
    # v3.3: the whole reserve debt, unless the collateral (rounded down) and the debt (rounded up) of
    # these reserves are both worth at least 2000 USD and HF > 0.95: then 50% of the user's TOTAL
    # debt (half up), converted back rounding down, if the reserve's debt is above it.
    max_debt = debt.balance
    debt_base = debt.base_ceil(debt.balance)
    if (coll.base(coll.balance) >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
            and debt_base >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
            and health_factor > CLOSE_FACTOR_HF_THRESHOLD):
        default_base = percent_mul(total_debt_base, DEFAULT_CLOSE_FACTOR)
        if debt_base > default_base:
            max_debt = default_base * debt.unit // debt.price
    return max_debt


def collateral_for(rules: str, debt_to_cover: int, coll: Side, debt: Side, bonus: int,
                   protocol_fee_bps: int) -> Outcome:
    """_calculateAvailableCollateralToLiquidate: collateral for ``debt_to_cover`` with the bonus,
    capped by the user's collateral (then the debt repaid shrinks to match), minus the protocol fee
    (a share of the bonus part)."""
    check_rules(rules)
    v30 = rules == "v3.0"
    base_collateral = debt.price * debt_to_cover * coll.unit // (coll.price * debt.unit)
    max_collateral = (percent_mul if v30 else percent_mul_floor)(base_collateral, bonus)
    if max_collateral > coll.balance:
        collateral = coll.balance
        worth = coll.price * collateral * debt.unit // (debt.price * coll.unit)
        debt_needed = (percent_div if v30 else percent_div_ceil)(worth, bonus)
    else:
        collateral = max_collateral
        debt_needed = debt_to_cover
    fee = 0
    if protocol_fee_bps:
        bonus_collateral = collateral - (percent_div if v30 else percent_div_floor)(collateral, bonus)
        fee = (percent_mul if v30 else percent_mul_ceil)(bonus_collateral, protocol_fee_bps)
    return Outcome(debt_needed, collateral - fee, fee)


def liquidate(rules: str, health_factor: int, total_debt_base: int, coll: Side, debt: Side,
              bonus: int, protocol_fee_bps: int, debt_to_cover: int, *,
              min_leftover: int = MIN_LEFTOVER_BASE) -> Outcome:
    """What liquidationCall(debtToCover) does; raises MustNotLeaveDust where v3.3 reverts.
    ``min_leftover``: the dust limit (the Pool's; a larger one keeps a safety margin)."""
    actual = min(debt_to_cover, max_liquidatable_debt(rules, health_factor, total_debt_base, coll, debt))
    out = collateral_for(rules, actual, coll, debt, bonus, protocol_fee_bps)
    if rules == "v3.3" and out.debt_repaid < debt.balance and out.collateral_seized < coll.balance:
        # Dust rule: unless one side is cleared, both leftovers must be worth >= 1000 USD: the debt
        # left rounded up (mulDivCeil), the collateral left AFTER the protocol fee rounded down.
        debt_left = debt.base_ceil(debt.balance - out.debt_repaid)
        coll_left = coll.base(coll.balance - out.collateral_seized)
        if debt_left < min_leftover or coll_left < min_leftover:
            raise MustNotLeaveDust(f"would leave {debt_left} debt / {coll_left} collateral (base units)")
    return out


def takes_last_collateral(rules: str, total_collateral_base: int, coll: Side, out: Outcome) -> bool:
    """v3.3 bad debt: the call takes all the user's collateral (the seized part, fee included, is
    worth the user's whole collateral in base currency), so the Pool burns every debt the user has
    and books the unpaid rest as deficit."""
    return rules == "v3.3" and coll.base(out.collateral_seized) == total_collateral_base


def best_amount(rules: str, health_factor: int, total_debt_base: int, coll: Side, debt: Side,
                bonus: int, protocol_fee_bps: int, budget: int, *,
                min_leftover: int = MIN_LEFTOVER_BASE) -> tuple[int, Outcome] | None:
    """The largest debtToCover within ``budget`` that the Pool accepts (profit grows with the
    amount repaid, so the largest valid amount is the most profitable). Returns (amount, outcome)."""
    cap = min(budget, max_liquidatable_debt(rules, health_factor, total_debt_base, coll, debt))
    if cap <= 0:
        return None

    def ok(a: int) -> Outcome | None:
        try:
            return liquidate(rules, health_factor, total_debt_base, coll, debt, bonus, protocol_fee_bps, a,
                             min_leftover=min_leftover)
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
    found = ok(lo) if lo else None
    return None if found is None else (lo, found)
