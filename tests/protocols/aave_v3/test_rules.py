"""Aave liquidation maths on hand-computed cases (the on-chain agreement is tested against the real
Pool and the v3.3 stand-in in tests/engine)."""
import pytest

from keeper.protocols.aave_v3.rules import (
    MustNotLeaveDust,
    Side,
    best_amount,
    liquidate,
    max_liquidatable_debt,
    percent_div,
    percent_mul,
)

E18 = 10**18
WETH = lambda bal: Side(1_800 * 10**8, 18, bal)  # noqa: E731
USDC = lambda bal: Side(10**8, 6, bal)  # noqa: E731


def test_percentage_math_rounds_half_up():
    assert percent_mul(1, 5_000) == 1  # 0.5 rounds up
    assert percent_mul(3, 3_333) == 1
    assert percent_div(100, 10_500) == 95  # 95.238 -> 95


def test_v30_close_factor_50_and_100():
    debt = USDC(15_000 * 10**6)
    assert max_liquidatable_debt("v3.0", 99 * 10**16, 0, WETH(10 * E18), debt) == 7_500 * 10**6
    assert max_liquidatable_debt("v3.0", 95 * 10**16, 0, WETH(10 * E18), debt) == 15_000 * 10**6


def test_real_aave_example_from_shared_docs():
    # 7,500 USDC repaid at WETH $1800 with a 5% bonus pays 4.375 WETH (no protocol fee), less the
    # wei lost by flooring 7500/1800 before the half-up percentMul.
    out = liquidate("v3.0", 99 * 10**16, 0, WETH(10 * E18), USDC(15_000 * 10**6), 10_500, 0, 2**256 - 1)
    assert out.debt_repaid == 7_500 * 10**6
    assert out.collateral_to_liquidator == 4_375 * 10**15 - 1


def test_protocol_fee_is_a_share_of_the_bonus():
    out = liquidate("v3.0", 99 * 10**16, 0, WETH(10 * E18), USDC(15_000 * 10**6), 10_500, 1_000, 7_500 * 10**6)
    seized = 4_375 * 10**15 - 1
    bonus_part = seized - percent_div(seized, 10_500)
    assert out.protocol_fee == percent_mul(bonus_part, 1_000)
    assert out.collateral_to_liquidator == seized - out.protocol_fee


def test_collateral_cap_reduces_debt_repaid():
    # 1 WETH of collateral cannot pay for 15,000 USDC: all of it is taken, the debt shrinks.
    out = liquidate("v3.0", 50 * 10**16, 0, WETH(E18), USDC(15_000 * 10**6), 10_500, 0, 2**256 - 1)
    assert out.collateral_seized == E18
    assert out.debt_repaid == percent_div(1_800 * 10**6, 10_500)


def test_v33_thresholds():
    total = 30_000 * 10**8
    big_debt = USDC(15_000 * 10**6)
    # HF above 0.95, both sides >= 2000 USD: 50% of TOTAL debt (15,000 USD) capped by the reserve.
    assert max_liquidatable_debt("v3.3", 99 * 10**16, total, WETH(20 * E18), big_debt) == 15_000 * 10**6
    assert max_liquidatable_debt("v3.3", 99 * 10**16, 20_000 * 10**8, WETH(20 * E18), big_debt) == 10_000 * 10**6
    # Debt reserve under 2000 USD: 100%.
    assert max_liquidatable_debt("v3.3", 99 * 10**16, 20_000 * 10**8, WETH(20 * E18), USDC(1_500 * 10**6)) == 1_500 * 10**6
    # HF <= 0.95: 100%.
    assert max_liquidatable_debt("v3.3", 95 * 10**16, 20_000 * 10**8, WETH(20 * E18), big_debt) == 15_000 * 10**6


def test_dust_rule_and_best_amount_avoid_it():
    coll, debt = WETH(2 * E18), USDC(3_000 * 10**6)  # 3,600 USD collateral, 3,000 USD debt
    # 50% of total debt (1,500) leaves 1,500 debt but only 3600-1575 = 2025 USD collateral: fine.
    ok = liquidate("v3.3", 99 * 10**16, 3_000 * 10**8, coll, debt, 10_500, 0, 2**256 - 1)
    assert ok.debt_repaid == 1_500 * 10**6
    # Debt under 2,000 USD: 100% close factor, but a wallet of 1,000 USDC would leave 800 USD of debt.
    coll2, debt2 = WETH(2 * E18), USDC(1_800 * 10**6)
    with pytest.raises(MustNotLeaveDust):
        liquidate("v3.3", 99 * 10**16, 1_800 * 10**8, coll2, debt2, 10_500, 0, 1_000 * 10**6)
    amount, out = best_amount("v3.3", 99 * 10**16, 1_800 * 10**8, coll2, debt2, 10_500, 0, 1_000 * 10**6)
    assert amount == 800 * 10**6  # leaves exactly 1,000 USD of debt
    liquidate("v3.3", 99 * 10**16, 1_800 * 10**8, coll2, debt2, 10_500, 0, amount)  # no revert
    with pytest.raises(MustNotLeaveDust):
        liquidate("v3.3", 99 * 10**16, 1_800 * 10**8, coll2, debt2, 10_500, 0, amount + 1)


def test_best_amount_searches_below_a_dusty_budget():
    # Small collateral left: 50% close factor would leave < 1000 USD of collateral.
    coll, debt = WETH(E18 + E18 // 10), USDC(2_100 * 10**6)  # 1,980 USD coll, 2,100 USD debt
    # (both under 2,000 USD? debt is above, collateral below -> 100% close factor)
    found = best_amount("v3.3", 99 * 10**16, 2_100 * 10**8, coll, debt, 10_500, 0, 2**256 - 1)
    assert found is not None
    amount, out = found
    assert out.collateral_seized == coll.balance or out.debt_repaid == debt.balance
    # With a budget that cannot clear anything, the answer leaves >= 1000 USD on both sides.
    amount, out = best_amount("v3.3", 99 * 10**16, 2_100 * 10**8, coll, debt, 10_500, 0, 1_000 * 10**6)
    assert coll.base(coll.balance - out.collateral_seized) >= 1_000 * 10**8
    assert debt.base(debt.balance - out.debt_repaid) >= 1_000 * 10**8
    with pytest.raises(MustNotLeaveDust):
        liquidate("v3.3", 99 * 10**16, 2_100 * 10**8, coll, debt, 10_500, 0, amount + 10**6)
