"""Aave V3 account data in integers, exactly as the Pool computes it, from a local mirror of scaled
balances and reserve indexes.

Sources (aave/aave-v3-core, the @aave/core-v3 1.19.3 release): WadRayMath (half-up rayMul, wadDiv),
MathUtils.calculateLinearInterest / calculateCompoundedInterest (3-term binomial approximation),
ReserveLogic.getNormalizedIncome / getNormalizedDebt, GenericLogic.calculateUserAccountData and its
_getUserBalanceInBaseCurrency / _getUserDebtInBaseCurrency.
"""
from __future__ import annotations

from dataclasses import dataclass, field

RAY = 10**27
HALF_RAY = RAY // 2
WAD = 10**18
SECONDS_PER_YEAR = 365 * 24 * 3600
UINT_MAX = 2**256 - 1


def ray_mul(a: int, b: int) -> int:
    return (a * b + HALF_RAY) // RAY


def wad_div(a: int, b: int) -> int:
    return (a * WAD + b // 2) // b


def percent_mul(value: int, pct: int) -> int:
    return (value * pct + 5_000) // 10_000


def linear_interest(rate: int, last: int, now: int) -> int:
    """MathUtils.calculateLinearInterest (supply side)."""
    return RAY + rate * (now - last) // SECONDS_PER_YEAR


def compounded_interest(rate: int, last: int, now: int) -> int:
    """MathUtils.calculateCompoundedInterest (borrow side): RAY + x + x^2/2 + x^3/6 per second."""
    exp = now - last
    if exp == 0:
        return RAY
    exp1 = exp - 1
    exp2 = exp - 2 if exp > 2 else 0
    pow2 = ray_mul(rate, rate) // (SECONDS_PER_YEAR * SECONDS_PER_YEAR)
    pow3 = ray_mul(pow2, rate) // SECONDS_PER_YEAR
    second = exp * exp1 * pow2 // 2
    third = exp * exp1 * exp2 * pow3 // 6
    return RAY + rate * exp // SECONDS_PER_YEAR + second + third


@dataclass
class ReserveIndex:
    """What ReserveLogic needs to accrue one reserve (getReserveData fields)."""
    liquidity_index: int = RAY
    variable_borrow_index: int = RAY
    liquidity_rate: int = 0
    variable_borrow_rate: int = 0
    last_update: int = 0

    def normalized_income(self, now: int) -> int:
        if self.last_update == now:
            return self.liquidity_index
        return ray_mul(linear_interest(self.liquidity_rate, self.last_update, now), self.liquidity_index)

    def normalized_debt(self, now: int) -> int:
        if self.last_update == now:
            return self.variable_borrow_index
        return ray_mul(compounded_interest(self.variable_borrow_rate, self.last_update, now),
                       self.variable_borrow_index)


@dataclass(frozen=True)
class ReserveTerms:
    """One reserve at one instant: its id, decimals, liquidation threshold, eMode category,
    oracle price and normalized income / debt."""
    id: int
    decimals: int
    liquidation_threshold: int
    emode_category: int
    price: int
    income: int
    debt_index: int


@dataclass
class MirrorUser:
    """A user's positions as the tokens store them: scaled aToken and variable-debt balances
    (stable debt as read: its balance accrues at the user's own rate, so a user holding any is
    re-read from chain each block)."""
    config: int = 0
    emode: int = 0
    scaled_collateral: dict[str, int] = field(default_factory=dict)  # asset -> aToken scaledBalanceOf
    scaled_debt: dict[str, int] = field(default_factory=dict)  # asset -> variableDebt scaledBalanceOf
    stable_debt: dict[str, int] = field(default_factory=dict)  # asset -> stableDebt balanceOf

    @property
    def exact(self) -> bool:
        return not any(self.stable_debt.values())

    def assets(self) -> set[str]:
        return {a for a, v in self.scaled_collateral.items() if v} | {a for a, v in self.scaled_debt.items() if v}


@dataclass(frozen=True)
class AccountData:
    total_collateral_base: int
    total_debt_base: int
    liquidation_threshold: int
    health_factor: int


def account_data(user: MirrorUser, terms: dict[str, ReserveTerms], emode_threshold: int) -> AccountData:
    """GenericLogic.calculateUserAccountData: each balance valued in base currency and rounded
    down on its own; value-weighted liquidation threshold (eMode's for assets of the user's
    category); HF = collateral percentMul threshold, wadDiv debt."""
    if user.config == 0:
        return AccountData(0, 0, 0, UINT_MAX)
    coll = debt = weighted = 0
    for asset, t in terms.items():
        bits = (user.config >> (2 * t.id)) & 3
        if not bits:
            continue
        unit = 10**t.decimals
        if bits & 2 and t.liquidation_threshold:
            value = ray_mul(user.scaled_collateral.get(asset, 0), t.income) * t.price // unit
            coll += value
            in_emode = user.emode != 0 and user.emode == t.emode_category
            weighted += value * (emode_threshold if in_emode else t.liquidation_threshold)
        if bits & 1:
            scaled = user.scaled_debt.get(asset, 0)
            total = (ray_mul(scaled, t.debt_index) if scaled else 0) + user.stable_debt.get(asset, 0)
            debt += t.price * total // unit
    threshold = weighted // coll if coll else 0
    hf = UINT_MAX if debt == 0 else wad_div(percent_mul(coll, threshold), debt)
    return AccountData(coll, debt, threshold, hf)
