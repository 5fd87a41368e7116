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
    return (value * pct + 5_000) // 10_000


def pdiv(value: int, pct: int) -> int:
    return (value * 10_000 + pct // 2) // pct


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


class Dust(Exception):
    pass


def close_factor_max(rules: str, hf: int, total_debt_base: int, coll: Leg, debt: Leg) -> int:
    """Most debt of the debt reserve one call may repay."""
    if rules == "v3.0":  # 50% of the reserve's debt while HF > 0.95, in token units
        return pmul(debt.balance, 5_000 if hf > 95 * 10**16 else 10_000)
    if coll.base(coll.balance) >= 2_000 * USD and debt.base(debt.balance) >= 2_000 * USD and hf > 95 * 10**16:
        half = pmul(total_debt_base, 5_000)  # 50% of the TOTAL debt, in base currency
        if debt.base(debt.balance) > half:
            return half * debt.unit // debt.price
    return debt.balance


def liquidation(rules: str, hf: int, total_debt_base: int, coll: Leg, debt: Leg, bonus: int, fee_bps: int,
                to_cover: int) -> tuple[int, int, int]:
    """(debt repaid, collateral to the liquidator, protocol fee) of liquidationCall(to_cover)."""
    repaid = min(to_cover, close_factor_max(rules, hf, total_debt_base, coll, debt))
    seized = pmul(debt.price * repaid * coll.unit // (coll.price * debt.unit), bonus)
    if seized > coll.balance:
        seized = coll.balance
        repaid = pdiv(coll.price * seized * debt.unit // (debt.price * coll.unit), bonus)
    fee = pmul(seized - pdiv(seized, bonus), fee_bps) if fee_bps else 0
    if rules == "v3.3" and repaid < debt.balance and seized < coll.balance:
        # leftovers: debt minus repaid; collateral minus the liquidator's part (fee not subtracted)
        if debt.base(debt.balance - repaid) < 1_000 * USD or coll.base(coll.balance - (seized - fee)) < 1_000 * USD:
            raise Dust
    return repaid, seized - fee, fee


