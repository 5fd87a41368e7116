"""gearbox_v3_math: the contracts' integer maths, and the partial-liquidation search checked against
an exhaustive scan on small units."""
from __future__ import annotations

import random

import pytest

from keeper.protocols.gearbox_v3 import maths as gm

U, W, B = "USDC", "WETH", "WBTC"
USDC = gm.Price(10**8, 10**6)
FEES = gm.Fees(1_000, 150, 9_600, 100, 9_800)  # the world's credit manager
RAY = 10**27


def account(weth: float, wbtc: float, debt: int, q_weth: int, q_wbtc: int, *, weth_price=2_100, min_debt=1_000,
            debt_data: gm.Debt | None = None, usdc_on_account: int = 0) -> gm.Account:
    h = {U: gm.Holding(U, usdc_on_account, USDC, 9_450, None),
         W: gm.Holding(W, int(weth * 10**18), gm.Price(weth_price * 10**8, 10**18), 8_500, q_weth * 10**6),
         B: gm.Holding(B, int(wbtc * 10**8), gm.Price(60_000 * 10**8, 10**8), 8_000, q_wbtc * 10**6)}
    d = debt_data or gm.Debt(debt * 10**6, RAY, RAY, 0, 0, 0)
    return gm.Account(d, h, U, FEES, min_debt * 10**6)


def test_oracle_conversions():
    weth = gm.Price(1_234_56789012, 10**18)
    assert gm.to_usd(3 * 10**18, weth) == 3 * 1_234_56789012
    # convert = amount x priceFrom x scaleTo / (priceTo x scaleFrom), one floor at the end
    assert gm.convert(1_000 * 10**6, USDC, weth) == (1_000 * 10**6 * 10**8 * 10**18) // (1_234_56789012 * 10**6)


def test_partial_payments_match_the_documented_example():
    """Repaying 3,000 USDC for WETH at $1,200: 2,955 repays debt, 45 (1.5%) is the fee, 3000/1200/0.96
    = 2.604166... WETH is seized (shared/real_contracts_gearbox.md section 5)."""
    repaid, fee, seized = gm.partial_payments(3_000 * 10**6, USDC, gm.Price(1_200 * 10**8, 10**18), FEES)
    assert (repaid, fee) == (2_955 * 10**6, 45 * 10**6)
    assert seized == 2_500_000_000_000_000_000 * 10_000 // 9_600 == 2_604166666666666666


def test_calc_decrease_repays_fees_then_quota_interest_then_interest_then_principal():
    fi = 1_000
    debt, now, last = 10_000 * 10**6, 11 * RAY // 10, RAY  # base interest 1,000 (10%)
    cqi, qf = 50 * 10**6, 7 * 10**6
    # Only part of the quota fees.
    assert gm.calc_decrease(5 * 10**6, debt, now, last, cqi, qf, fi) == (debt, last, 5 * 10**6, cqi, 2 * 10**6)
    # Fees, then part of the quota interest (split pro rata with the DAO's 10%).
    nd, ni, profit, ncqi, nqf = gm.calc_decrease(7 * 10**6 + 11 * 10**6, debt, now, last, cqi, qf, fi)
    assert (nd, ni, nqf) == (debt, last, 0) and ncqi == cqi - 10 * 10**6 and profit == 7 * 10**6 + 10**6
    # Everything but principal: fees 7 + quota 55 + base 1,100; then 1,000 of principal.
    nd, ni, profit, ncqi, nqf = gm.calc_decrease((7 + 55 + 1_100 + 1_000) * 10**6, debt, now, last, cqi, qf, fi)
    assert (nd, ni, ncqi, nqf) == (debt - 1_000 * 10**6, now, 0, 0) and profit == (7 + 5 + 100) * 10**6
    # Part of the base interest: the index moves so that the interest left is what was not repaid.
    nd, ni, profit, ncqi, nqf = gm.calc_decrease((7 + 55 + 550) * 10**6, debt, now, last, cqi, qf, fi)
    assert nd == debt and last < ni < now and profit == (7 + 5 + 50) * 10**6
    assert gm.calc_accrued_interest(debt, ni, now) == pytest.approx(500 * 10**6, abs=2)


def test_debt_after_repay_keeps_the_total_consistent():
    fi = 1_000
    cdd = gm.Debt(10_000 * 10**6, 11 * RAY // 10, RAY, 50 * 10**6, 1_050 * 10**6, 7 * 10**6 + 105 * 10**6)
    assert cdd.quota_fees(fi) == 7 * 10**6 and cdd.base_interest() == 1_000 * 10**6
    assert cdd.total == (10_000 + 1_050 + 112) * 10**6
    for amount in (10**6, 60 * 10**6, 600 * 10**6, 5_000 * 10**6):
        after = gm.debt_after_repay(cdd, amount, fi)
        assert after.total == pytest.approx(cdd.total - amount, abs=3)  # each unit repays one unit of total debt
    assert gm.debt_after_repay(cdd, cdd.total, fi).total == 0


def test_quota_caps_the_weighted_value():
    h = gm.Holding(W, 10 * 10**18, gm.Price(3_000 * 10**8, 10**18), 8_500, 16_000 * 10**6)
    assert gm.token_collateral(h, USDC) == (30_000 * 10**8, 16_000 * 10**8)  # 25,500 capped at the quota
    assert gm.token_collateral(h, USDC, 5 * 10**18) == (15_000 * 10**8, 12_750 * 10**8)
    assert gm.token_collateral(h, USDC, 0) == (0, 0)
    # The underlying is not quoted: value x LT, never capped.
    assert gm.token_collateral(gm.Holding(U, 100 * 10**6, USDC, 9_450, None), USDC) == (100 * 10**8, 9_450 * 10**6)


def feasible(acc: gm.Account, token: str, amount: int, budget: int, margin: int = 0) -> bool:
    """Every check of partiallyLiquidateCreditAccount (and the keeper's budget and margin)."""
    if amount <= 0 or amount > budget:
        return False
    p = gm.simulate_partial(acc, token, amount)
    # Debt 0 reverts DebtToZeroWithActiveQuotasException: an account holding quoted collateral has quotas.
    return (p.seized <= acc.holdings[token].balance and p.debt_after.debt >= max(acc.min_debt, 1)
            and p.twv_usd_after * 10_000 >= p.total_debt_usd_after * (10_000 + margin))


@pytest.mark.parametrize("case, token, bound", [
    (account(10, 0, 18_000, 25_500, 0), W, "min_debt"),
    (account(6, 0.2, 22_000, 15_300, 9_600), B, "balance"),  # WETH cannot restore HF: WBTC, all of it
    (account(5, 0.5, 21_000, 12_750, 10_000), B, "min_debt"),  # WBTC's quota binds
    (account(1, 0, 1_850, 2_550, 0), W, "min_debt"),
])
def test_best_partial_on_the_demo_accounts(case, token, bound):
    p = gm.best_partial(case, 10**15, 10)
    assert p is not None and p.token == token
    assert feasible(case, token, p.amount, 10**15, 10) and not feasible(case, token, p.amount + 1, 10**15, 10)
    if bound == "balance":
        h = case.holdings[token]
        assert gm.partial_payments(p.amount + 1, USDC, h.price, FEES)[2] > h.balance
    else:
        assert gm.simulate_partial(case, token, p.amount + 1).debt_after.debt < case.min_debt
    assert p.hf_after >= 1.001
    # Profit = seized value - amount = amount x (1/0.96 - 1), the same for every token.
    assert p.profit_usd == pytest.approx(p.amount * 100 * (1 / 0.96 - 1), rel=1e-5)
    other = [t for t in (W, B) if t != token and case.holdings[t].balance]
    for t in other:
        q = gm.best_partial_for(case, t, 10**15, 10)
        assert q is None or q.profit_usd <= p.profit_usd


def test_bad_debt_and_deep_accounts_have_no_partial():
    assert gm.best_partial(account(5, 0, 12_500, 12_750, 0), 10**15) is None  # value < debt
    # Not bad debt (value 10,500 > debt 10,000) but above 0.9456 x value: with one collateral every
    # repayment lowers twv by more than debt x HF (fee 1.5%, discount 96%).
    assert gm.best_partial(account(5, 0, 10_000, 12_750, 0, min_debt=0), 10**15) is None
    # Below that ratio, restoring HF >= 1 needs ~9,790 of 9,900 repaid: only possible without minDebt.
    assert gm.best_partial(account(5, 0, 9_900, 12_750, 0), 10**15) is None
    p = gm.best_partial(account(5, 0, 9_900, 12_750, 0, min_debt=0), 10**15)
    assert p is not None and p.hf_after >= 1 and 0 < p.debt_after.debt < 1_000 * 10**6


def test_budget_caps_the_amount_and_too_little_is_nothing():
    acc = account(10, 0, 18_000, 25_500, 0)
    p = gm.best_partial(acc, 5_000 * 10**6)
    assert p is not None and p.amount == 5_000 * 10**6
    # Below the smallest repayment that restores HF >= 1 ((18,000 - 17,850) / (0.985 - 0.85/0.96) ~ 1,506).
    assert gm.best_partial(acc, 1_400 * 10**6) is None
    low = gm.best_partial(acc, 1_600 * 10**6)
    assert low is not None and low.amount == 1_600 * 10**6 and low.hf_after >= 1


def test_margin_raises_the_smallest_amount():
    acc = account(10, 0, 18_000, 25_500, 0)
    no_margin_min = min(a for a in range(1_400 * 10**6, 1_700 * 10**6, 10**6) if feasible(acc, W, a, 10**15, 0))
    margin_min = min(a for a in range(2_900 * 10**6, 3_200 * 10**6, 10**6) if feasible(acc, W, a, 10**15, 100))
    assert margin_min > no_margin_min
    assert gm.best_partial(acc, margin_min - 10**6, 100) is None
    assert gm.best_partial(acc, margin_min, 100).amount == margin_min


def test_min_seized():
    assert gm.min_seized(10**18, 10) == 999 * 10**15
    assert gm.min_seized(12345, 0) == 12345


def _small_account(rng: random.Random) -> gm.Account:
    """Coarse units (USDC with 1 decimal, tokens with 3) so that every amount can be tried."""
    up = gm.Price(10**8, 10)
    tw = gm.Price(rng.randint(500, 3_000) * 10**8, 1_000)
    tb = gm.Price(rng.randint(10_000, 60_000) * 10**8, 1_000)
    bw, bb = rng.randint(0, 300), rng.randint(0, 12)
    vw, vb = bw * tw.price // 1_000 // 10**8, bb * tb.price // 1_000 // 10**8  # whole USD
    qw = rng.choice([vw, vw // 2, vw * 2]) * 10
    qb = rng.choice([vb, vb // 3, vb * 2]) * 10
    twv = min(vw * 85 // 100, qw // 10) + min(vb * 80 // 100, qb // 10)
    debt = max(1, int(twv * rng.uniform(1.0, 1.2))) * 10
    h = {U: gm.Holding(U, 0, up, 9_450, None), W: gm.Holding(W, bw, tw, 8_500, qw),
         B: gm.Holding(B, bb, tb, 8_000, qb)}
    return gm.Account(gm.Debt(debt, RAY, RAY, 0, 0, 0), h, U, FEES, rng.choice([0, 100, 1_000]))


def test_search_matches_an_exhaustive_scan():
    """The search returns the largest feasible amount; its profit is the best there is, up to the
    value of one unit of the token (seized amounts are floored)."""
    rng = random.Random(7)
    checked = found = 0
    while checked < 40:
        acc = _small_account(rng)
        if acc.twv_usd() >= acc.total_debt_usd():
            continue
        checked += 1
        budget = rng.choice([10**9, acc.debt.debt // 3])
        for token in (W, B):
            unit = gm.to_usd(1, acc.holdings[token].price)
            scan = [a for a in range(1, min(budget, 2 * acc.debt.debt) + 1) if feasible(acc, token, a, budget, 10)
                    and gm.simulate_partial(acc, token, a).seized > 0]
            best_profit = max((gm.simulate_partial(acc, token, a).profit_usd for a in scan), default=0)
            p = gm.best_partial_for(acc, token, budget, 10)
            if p is None:
                assert best_profit <= unit, (acc, token)
                continue
            found += 1
            assert p.amount == max(scan) and p.profit_usd >= best_profit - unit, (acc, token)
    assert found > 10
