"""Aave liquidation maths (keeper/protocols/aave_v3/rules.py) on hand-computed cases, one or more per
rule of each rule set, each chosen where the rule changes the result (the on-chain agreement is
tested against the real v3.0 Pool and the v3.3 stand-in in test_differential / test_standin)."""
import pytest

from keeper.protocols.aave_v3.rules import (
    MustNotLeaveDust,
    Side,
    best_amount,
    collateral_for,
    liquidate,
    max_liquidatable_debt,
    percent_div,
    percent_div_ceil,
    percent_div_floor,
    percent_mul,
    percent_mul_ceil,
    percent_mul_floor,
    takes_last_collateral,
)

E18 = 10**18
USD = 10**8
HF_099 = 99 * 10**16
WETH = lambda bal: Side(1_800 * USD, 18, bal)  # noqa: E731
USDC = lambda bal: Side(USD, 6, bal)  # noqa: E731
WBTC = lambda bal: Side(60_000 * USD, 8, bal)  # noqa: E731
# 1.111111111111111111 WETH at 1,800 USD is worth 1,999.99999999(99...) USD: 199,999,999,999 base
# units rounded down, 200,000,000,000 rounded up. One wei more: 200,000,000,000(.00000016).
WETH_2000_LESS = 1_111_111_111_111_111_111
WETH_2000_MORE = 1_111_111_111_111_111_112


def test_percentage_math_roundings():
    assert percent_mul(1, 5_000) == 1  # 0.5 rounds up
    assert percent_mul(3, 3_333) == 1
    assert percent_div(100, 10_500) == 95  # 95.238 -> 95
    assert (percent_mul_floor(19, 10_500), percent_mul(19, 10_500), percent_mul_ceil(19, 10_500)) == (19, 20, 20)
    assert (percent_div_floor(22, 10_500), percent_div(22, 10_500), percent_div_ceil(22, 10_500)) == (20, 21, 21)


def test_v30_close_factor_50_and_100():
    debt = USDC(15_000 * 10**6)
    assert max_liquidatable_debt("v3.0", HF_099, 0, WETH(10 * E18), debt) == 7_500 * 10**6
    assert max_liquidatable_debt("v3.0", 95 * 10**16, 0, WETH(10 * E18), debt) == 15_000 * 10**6


def test_real_aave_example_from_shared_docs():
    # 7,500 USDC repaid at WETH $1800 with a 5% bonus pays 4.375 WETH (no protocol fee), less the
    # wei lost by flooring 7500/1800 before the half-up percentMul.
    out = liquidate("v3.0", HF_099, 0, WETH(10 * E18), USDC(15_000 * 10**6), 10_500, 0, 2**256 - 1)
    assert out.debt_repaid == 7_500 * 10**6
    assert out.collateral_to_liquidator == 4_375 * 10**15 - 1


def test_protocol_fee_is_a_share_of_the_bonus():
    out = liquidate("v3.0", HF_099, 0, WETH(10 * E18), USDC(15_000 * 10**6), 10_500, 1_000, 7_500 * 10**6)
    seized = 4_375 * 10**15 - 1
    bonus_part = seized - percent_div(seized, 10_500)
    assert out.protocol_fee == percent_mul(bonus_part, 1_000)
    assert out.collateral_to_liquidator == seized - out.protocol_fee


def test_collateral_cap_reduces_debt_repaid():
    # 1 WETH of collateral cannot pay for 15,000 USDC: all of it is taken, the debt shrinks.
    out = liquidate("v3.0", 50 * 10**16, 0, WETH(E18), USDC(15_000 * 10**6), 10_500, 0, 2**256 - 1)
    assert out.collateral_seized == E18
    assert out.debt_repaid == percent_div(1_800 * 10**6, 10_500)


def test_collateral_and_fee_rounding_v30_half_up_v33_as_released():
    """v3.7 _calculateAvailableCollateralToLiquidate: the collateral with the bonus percentMulFloor,
    the base part of it percentDivFloor, the fee percentMulCeil; v3.0 rounds all three half up.
    999.9924 USDC is worth 1,666,654 sats of WBTC at 60,000 USD; with a 6.5% bonus 1,774,986.51."""
    coll, debt = WBTC(10**8), USDC(10**12)
    to_cover = 999_992_400
    assert debt.price * to_cover * coll.unit // (coll.price * debt.unit) == 1_666_654
    # Seized: floor 1,774,986 (v3.0: 1,774,987). Its base part 1,774,986 / 1.065 = 1,666,653.52:
    # floor 1,666,653, so the bonus part is 108,333 (half up: 108,332); the fee, 10% of it, is
    # 10,833.3: ceil 10,834 (half up: 10,833).
    v33 = collateral_for("v3.3", to_cover, coll, debt, 10_650, 1_000)
    assert (v33.collateral_seized, v33.protocol_fee, v33.collateral_to_liquidator) == (1_774_986, 10_834, 1_764_152)
    assert collateral_for("v3.3", to_cover, coll, debt, 10_650, 10_000).protocol_fee == 108_333  # the bonus part
    v30 = collateral_for("v3.0", to_cover, coll, debt, 10_650, 1_000)
    # v3.0: 1,774,987 seized; base part 1,666,654.46 -> 1,666,654; bonus part 108,333; fee 10,833.
    assert (v30.collateral_seized, v30.protocol_fee, v30.collateral_to_liquidator) == (1_774_987, 10_833, 1_764_154)


def test_v33_capped_collateral_repays_debt_rounded_up():
    # 1 WETH at 1,800 covers 1,714.285714(28) USDC with a 5% bonus: percentDivCeil -> ...286,
    # v3.0's half up percentDiv -> ...286 too; at 1,801 USD: 1,715.238095(238) -> ceil ...239,
    # half up ...238.
    coll, debt = Side(1_801 * USD, 18, E18), USDC(15_000 * 10**6)
    assert liquidate("v3.3", 50 * 10**16, 0, coll, debt, 10_500, 0, 2**256 - 1).debt_repaid == 1_715_238_096
    assert liquidate("v3.0", 50 * 10**16, 0, coll, debt, 10_500, 0, 2**256 - 1).debt_repaid == 1_715_238_095


def test_v33_thresholds():
    total = 30_000 * USD
    big_debt = USDC(15_000 * 10**6)
    # HF above 0.95, both sides >= 2000 USD: 50% of TOTAL debt (15,000 USD) capped by the reserve.
    assert max_liquidatable_debt("v3.3", HF_099, total, WETH(20 * E18), big_debt) == 15_000 * 10**6
    assert max_liquidatable_debt("v3.3", HF_099, 20_000 * USD, WETH(20 * E18), big_debt) == 10_000 * 10**6
    # Debt reserve under 2000 USD: 100%.
    assert max_liquidatable_debt("v3.3", HF_099, 20_000 * USD, WETH(20 * E18), USDC(1_500 * 10**6)) == 1_500 * 10**6
    # Collateral reserve under 2000 USD: 100%.
    assert max_liquidatable_debt("v3.3", HF_099, 20_000 * USD, WETH(E18), big_debt) == 15_000 * 10**6
    # HF <= 0.95: 100%.
    assert max_liquidatable_debt("v3.3", 95 * 10**16, 20_000 * USD, WETH(20 * E18), big_debt) == 15_000 * 10**6


def test_v33_2000_usd_threshold_values_the_debt_rounding_up():
    """A WETH debt worth 1,999.99999999(99) USD is 2,000 USD rounded up (mulDivCeil): the 50% close
    factor applies (half of 3,000 USD of total debt), where rounding down would allow all of it."""
    debt = WETH(WETH_2000_LESS)
    assert debt.base(debt.balance) < 2_000 * USD <= debt.base_ceil(debt.balance)
    got = max_liquidatable_debt("v3.3", HF_099, 3_000 * USD, USDC(5_000 * 10**6), debt)
    assert got == 1_500 * USD * E18 // (1_800 * USD) == 833_333_333_333_333_333


def test_v33_more_than_half_of_total_debt_values_the_debt_rounding_up():
    """A WETH debt of 2,000.00000000(00016) USD against 4,000 USD of total debt: rounded up it is
    above half of the total (2,000 USD), so the cap is 2,000 USD of WETH, 1 wei below the debt."""
    debt = WETH(WETH_2000_MORE)
    assert debt.base(debt.balance) == 2_000 * USD < debt.base_ceil(debt.balance)
    got = max_liquidatable_debt("v3.3", HF_099, 4_000 * USD, USDC(5_000 * 10**6), debt)
    assert got == WETH_2000_LESS == WETH_2000_MORE - 1


def test_v33_half_of_total_debt_rounds_half_up():
    # 16,250.00000001 USD of total debt (5.000000000003508772 WETH at 2,850 and 2,000 USDC): half
    # is 8,125.000000005 -> 812,500,000,001 base units (v3.7 keeps the half-up percentMul here).
    debt = Side(2_850 * USD, 18, 5 * E18 + 3_508_772)
    assert debt.base(debt.balance) == 1_425_000_000_001
    got = max_liquidatable_debt("v3.3", HF_099, 1_625_000_000_001, WBTC(10**8), debt)
    assert got == 812_500_000_001 * E18 // (2_850 * USD) == 2_850_877_192_985_964_912  # (down: ..._982_456_140)


def test_dust_rule_and_best_amount_avoid_it():
    coll, debt = WETH(2 * E18), USDC(3_000 * 10**6)  # 3,600 USD collateral, 3,000 USD debt
    # 50% of total debt (1,500) leaves 1,500 debt but only 3600-1575 = 2025 USD collateral: fine.
    ok = liquidate("v3.3", HF_099, 3_000 * USD, coll, debt, 10_500, 0, 2**256 - 1)
    assert ok.debt_repaid == 1_500 * 10**6
    # Debt under 2,000 USD: 100% close factor, but a wallet of 1,000 USDC would leave 800 USD of debt.
    coll2, debt2 = WETH(2 * E18), USDC(1_800 * 10**6)
    with pytest.raises(MustNotLeaveDust):
        liquidate("v3.3", HF_099, 1_800 * USD, coll2, debt2, 10_500, 0, 1_000 * 10**6)
    amount, out = best_amount("v3.3", HF_099, 1_800 * USD, coll2, debt2, 10_500, 0, 1_000 * 10**6)
    assert amount == 800 * 10**6  # leaves exactly 1,000 USD of debt
    liquidate("v3.3", HF_099, 1_800 * USD, coll2, debt2, 10_500, 0, amount)  # no revert
    with pytest.raises(MustNotLeaveDust):
        liquidate("v3.3", HF_099, 1_800 * USD, coll2, debt2, 10_500, 0, amount + 1)
    # v3.0 has no dust rule.
    assert liquidate("v3.0", HF_099, 1_800 * USD, coll2, debt2, 10_500, 0, 1_000 * 10**6).debt_repaid == 900 * 10**6


def test_dust_rule_counts_the_collateral_left_after_the_protocol_fee():
    """0.05 WBTC (3,000 USD) of collateral, 25,000 USDC of debt (HF <= 0.95: 100%). Repaying X USDC
    seizes 1.065 X USD of WBTC, the fee (10% of the bonus part, 0.0065 X) included. X = 1,885 leaves
    992.5 USD after the fee, 1,004.7 USD before it: refused. X = 1,877 leaves 1,000.9: accepted."""
    coll, debt = WBTC(5_000_000), USDC(25_000 * 10**6)
    args = ("v3.3", 90 * 10**16, 25_000 * USD, coll, debt, 10_650, 1_000)
    with pytest.raises(MustNotLeaveDust):
        liquidate(*args, 1_885 * 10**6)
    out = collateral_for("v3.3", 1_885 * 10**6, coll, debt, 10_650, 1_000)
    assert coll.base(coll.balance - out.collateral_seized) < 1_000 * USD  # after the fee: dust
    assert coll.base(coll.balance - out.collateral_to_liquidator) >= 1_000 * USD  # before it: not
    out = liquidate(*args, 1_877 * 10**6)
    assert 1_000 * USD <= coll.base(coll.balance - out.collateral_seized) < 1_001 * USD
    # The best amount stops where the collateral left after the fee reaches 1,000 USD.
    amount, out = best_amount(*args, 2_000 * 10**6)  # a wallet that cannot take all the WBTC
    assert coll.base(coll.balance - out.collateral_seized) >= 1_000 * USD
    assert 1_877 * 10**6 < amount < 1_878 * 10**6
    with pytest.raises(MustNotLeaveDust):
        liquidate(*args, amount + 10_000)  # 0.01 USDC more


def test_dust_rule_values_the_debt_left_rounding_up():
    """Leaving 0.555555555555555555 WETH of debt (999.99999999(99) USD rounded down, 1,000 USD
    rounded up) is allowed: the Pool values the debt left with mulDivCeil."""
    debt = WETH(2 * WETH_2000_LESS)
    left = 555_555_555_555_555_555
    assert debt.base(left) < 1_000 * USD == debt.base_ceil(left)
    coll = USDC(10_000 * 10**6)
    out = liquidate("v3.3", 90 * 10**16, 4_000 * USD, coll, debt, 10_500, 0, debt.balance - left)
    assert out.debt_repaid == debt.balance - left


def test_best_amount_searches_below_a_dusty_budget():
    # Small collateral left: 50% close factor would leave < 1000 USD of collateral.
    coll, debt = WETH(E18 + E18 // 10), USDC(2_100 * 10**6)  # 1,980 USD coll, 2,100 USD debt
    # (both under 2,000 USD? debt is above, collateral below -> 100% close factor)
    found = best_amount("v3.3", HF_099, 2_100 * USD, coll, debt, 10_500, 0, 2**256 - 1)
    assert found is not None
    amount, out = found
    assert out.collateral_seized == coll.balance or out.debt_repaid == debt.balance
    # With a budget that cannot clear anything, the answer leaves >= 1000 USD on both sides.
    amount, out = best_amount("v3.3", HF_099, 2_100 * USD, coll, debt, 10_500, 0, 1_000 * 10**6)
    assert coll.base(coll.balance - out.collateral_seized) >= 1_000 * USD
    assert debt.base(debt.balance - out.debt_repaid) >= 1_000 * USD
    with pytest.raises(MustNotLeaveDust):
        liquidate("v3.3", HF_099, 2_100 * USD, coll, debt, 10_500, 0, amount + 10**6)


def test_best_amount_with_a_margin_over_the_dust_limit():
    coll, debt = WETH(2 * E18), USDC(1_800 * 10**6)
    amount, _ = best_amount("v3.3", HF_099, 1_800 * USD, coll, debt, 10_500, 0, 1_000 * 10**6,
                            min_leftover=1_010 * USD)
    assert amount == 790 * 10**6  # leaves 1,010 USD of debt


def test_bad_debt_when_the_last_collateral_goes():
    """v3.3: a call that takes all the user's collateral (its base value is the user's whole
    collateral) leaves bad debt that the Pool burns; the liquidator pays what the collateral covers."""
    coll, debt = Side(30_000 * USD, 8, 10_000_000), USDC(4_000 * 10**6)  # 3,000 USD of WBTC
    out = liquidate("v3.3", 60 * 10**16, 4_000 * USD, coll, debt, 10_650, 1_000, 2**256 - 1)
    assert out.collateral_seized == coll.balance
    assert out.debt_repaid == percent_div_ceil(3_000 * 10**6, 10_650) == 2_816_901_409
    assert takes_last_collateral("v3.3", 3_000 * USD, coll, out)
    assert not takes_last_collateral("v3.3", 3_001 * USD, coll, out)  # other collateral is left
    assert not takes_last_collateral("v3.0", 3_000 * USD, coll, out)  # v3.0 burns nothing


def test_unknown_rules_are_refused_by_name():
    with pytest.raises(ValueError, match="v3.9"):
        max_liquidatable_debt("v3.9", HF_099, 0, WETH(E18), USDC(10**6))
