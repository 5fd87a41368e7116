"""Compound III (Comet) integer maths, as compound-finance/comet contracts/Comet.sol computes it:
the liquidation check and the collateral store front. Every division truncates, in Comet's order.

Units: prices are Comet's getPrice() answers (8 decimals), factors are 1e18-scaled (FACTOR_SCALE),
``scale`` / ``base_scale`` are 10**decimals of the collateral / base token."""
from __future__ import annotations

from dataclasses import dataclass

FACTOR = 10**18  # FACTOR_SCALE


def mul_factor(n: int, factor: int) -> int:
    """Comet.mulFactor: n x factor / FACTOR_SCALE."""
    return n * factor // FACTOR


def mul_price(n: int, price: int, from_scale: int) -> int:
    """Comet.mulPrice: an amount in ``from_scale`` units -> value with the price's 8 decimals."""
    return n * price // from_scale


def signed_mul_price(n: int, price: int, from_scale: int) -> int:
    """Comet.signedMulPrice: Solidity's signed division truncates toward zero."""
    q = abs(n) * price // from_scale
    return q if n >= 0 else -q


@dataclass(frozen=True)
class Holding:
    """One collateral of an account, with what its valuation needs."""
    balance: int
    price: int
    scale: int
    liquidate_cf: int  # liquidateCollateralFactor, 1e18


def liquidity(debt: int, base_price: int, base_scale: int, holdings: list[Holding]) -> int:
    """Comet.isLiquidatable's sum (8-decimal value): -debt x basePrice + sum of
    mulFactor(mulPrice(balance, price, scale), liquidateCollateralFactor); liquidatable below 0.
    Comet stops adding once the sum is non-negative, which does not change its sign.
    ``debt`` is the present borrow balance (Comet uses the stored index; pass the accrued balance
    from borrowBalanceOf to see the account as absorb() will after accruing)."""
    total = signed_mul_price(-debt, base_price, base_scale)
    for h in holdings:
        total += mul_factor(mul_price(h.balance, h.price, h.scale), h.liquidate_cf)
    return total


def collateral_value(holdings: list[Holding]) -> tuple[int, int]:
    """(plain value, liquidation-weighted value) of the holdings, 8 decimals."""
    plain = weighted = 0
    for h in holdings:
        v = mul_price(h.balance, h.price, h.scale)
        plain += v
        weighted += mul_factor(v, h.liquidate_cf)
    return plain, weighted


@dataclass(frozen=True)
class StoreFront:
    """What Comet.quoteCollateral reads for one collateral."""
    asset_price: int
    base_price: int
    scale: int  # the collateral's
    base_scale: int
    liquidation_factor: int  # 1e18
    store_front_price_factor: int  # 1e18

    @property
    def discount_factor(self) -> int:
        """storeFrontPriceFactor x (1 - liquidationFactor)."""
        return mul_factor(self.store_front_price_factor, FACTOR - self.liquidation_factor)

    @property
    def discounted_price(self) -> int:
        return mul_factor(self.asset_price, FACTOR - self.discount_factor)

    def quote(self, base_amount: int) -> int:
        """Comet.quoteCollateral: basePrice x baseAmount x scale / discountedPrice / baseScale."""
        dp = self.discounted_price
        if dp == 0:
            return 0
        return self.base_price * base_amount * self.scale // dp // self.base_scale

    def max_base_for(self, collateral: int) -> int:
        """The largest baseAmount whose quote does not exceed ``collateral``.

        quote(b) = floor(floor(basePrice x b x scale / dp) / baseScale) = floor(basePrice x b x scale /
        (dp x baseScale)) for non-negative integers, so quote(b) <= C  <=>  basePrice x b x scale <
        (C + 1) x dp x baseScale  <=>  b <= ((C + 1) x dp x baseScale - 1) // (basePrice x scale)."""
        dp = self.discounted_price
        if collateral <= 0 or dp == 0 or self.base_price == 0:
            return 0
        return ((collateral + 1) * dp * self.base_scale - 1) // (self.base_price * self.scale)


def min_amount(quote: int, slippage_bps: int) -> int:
    """buyCollateral's minAmount: the quote less ``slippage_bps`` (rounded down)."""
    return quote * (10_000 - slippage_bps) // 10_000
