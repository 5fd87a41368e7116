"""Aave V3 test helpers: the e2e scenario and the independent model of the Pool's liquidation maths."""
from __future__ import annotations

from dataclasses import dataclass

from keeper_devnet.tokens import set_price
from keeper_devnet.world import open_position

UINT_MAX = 2**256 - 1
WAD = 10**18
USD = 10**8  # base currency unit


# WETH collateral / USDC debt at fraction f of the 80% LTV; after a 30% WETH drop
# HF = 0.7 x 0.825 / (0.8 f): f=0.5 -> 1.44, 0.7 -> 1.03, 0.74 -> 0.975 (50%), 0.8 -> 0.90 (100%),
# 0.95 -> 0.76 (100%, but the collateral runs out before the debt: all of it is seized).
SCENARIO = [({"WETH": 10}, {"USDC": 24_000 * f}) for f in (0.5, 0.7, 0.74, 0.8, 0.95)] + [
    ({"WBTC": 1}, {"USDC": 40_000}),  # untouched by the drop
    ({"WETH": 10, "WBTC": 0.2}, {"USDC": 27_000}),  # two collaterals: HF ~0.97 after the drop
]


async def open_scenario(deployer, world):
    users = world.take_accounts(len(SCENARIO))
    for u, (c, d) in zip(users, SCENARIO):
        await open_position(deployer, world, u, c, d)
    return users


async def drop_weth(deployer, world, bps=3_000):
    weth = world.tokens["WETH"]
    await set_price(deployer, weth, weth.price * (10_000 - bps) // 10_000)




def pmul(value: int, pct: int) -> int:
    """PercentageMath.percentMul: half up."""
    return (value * pct + 5_000) // 10_000


def pdiv(value: int, pct: int) -> int:
    """PercentageMath.percentDiv: half up."""
    return (value * 10_000 + pct // 2) // pct


def ceil_div(a: int, b: int) -> int:
    return (a + b - 1) // b


@dataclass(frozen=True)
class Leg:
    """One reserve in a liquidation: oracle price (8 dec), decimals, the user's balance in it."""
    price: int
    decimals: int
    balance: int

    @property
    def unit(self) -> int:
        return 10**self.decimals

    def base(self, amount: int) -> int:
        return amount * self.price // self.unit

    def base_up(self, amount: int) -> int:
        return ceil_div(amount * self.price, self.unit)


class Dust(Exception):
    pass


def close_factor_max(rules: str, hf: int, total_debt_base: int, coll: Leg, debt: Leg) -> int:
    """Most debt of the debt reserve one call may repay."""
    if rules == "v3.0":  # 50% of the reserve's debt while HF > 0.95, in token units
        return pmul(debt.balance, 5_000 if hf > 95 * 10**16 else 10_000)
    # v3.3+ (aave-v3-origin v3.7): the reserve's debt valued rounding up
    debt_usd = debt.base_up(debt.balance)
    if coll.base(coll.balance) >= 2_000 * USD and debt_usd >= 2_000 * USD and hf > 95 * 10**16:
        half = pmul(total_debt_base, 5_000)  # 50% of the TOTAL debt, in base currency, half up
        if debt_usd > half:
            return half * debt.unit // debt.price
    return debt.balance


def liquidation(rules: str, hf: int, total_debt_base: int, coll: Leg, debt: Leg, bonus: int, fee_bps: int,
                to_cover: int) -> tuple[int, int, int]:
    """(debt repaid, collateral to the liquidator, protocol fee) of liquidationCall(to_cover):
    v3.0 rounds half up; the latest release (v3.7) floors the bonus, ceils the debt for capped
    collateral, floors the base part of the fee and ceils the fee; its dust rule counts the
    collateral left after the fee and the debt left rounded up."""
    repaid = min(to_cover, close_factor_max(rules, hf, total_debt_base, coll, debt))
    base_coll = debt.price * repaid * coll.unit // (coll.price * debt.unit)
    seized = pmul(base_coll, bonus) if rules == "v3.0" else base_coll * bonus // 10_000
    if seized > coll.balance:
        seized = coll.balance
        worth = coll.price * seized * debt.unit // (debt.price * coll.unit)
        repaid = pdiv(worth, bonus) if rules == "v3.0" else ceil_div(worth * 10_000, bonus)
    fee = 0
    if fee_bps and rules == "v3.0":
        fee = pmul(seized - pdiv(seized, bonus), fee_bps)
    elif fee_bps:
        fee = ceil_div((seized - seized * 10_000 // bonus) * fee_bps, 10_000)
    if rules == "v3.3" and repaid < debt.balance and seized < coll.balance:
        # leftovers: the debt left (rounded up); the collateral left after the fee (rounded down)
        if debt.base_up(debt.balance - repaid) < 1_000 * USD or coll.base(coll.balance - seized) < 1_000 * USD:
            raise Dust
    return repaid, seized - fee, fee
