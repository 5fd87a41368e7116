"""Morpho Blue maths on hand-checked values (the on-chain agreement is tested on the real Morpho)."""
from keeper.protocols.morpho_blue import maths as mm

E18 = 10**18


def test_lif_matches_the_documented_values():
    assert mm.lif(86 * 10**16) == E18 * E18 // (E18 - 3 * 10**17 * 14 * 10**16 // E18)  # ~1.0438
    assert 1_043_800 * 10**12 < mm.lif(86 * 10**16) < 1_043_900 * 10**12
    assert mm.lif(0) == mm.MAX_LIF  # capped at 1.15


def test_shares_round_trip_with_virtual_shares():
    m = mm.Market(1_000_000, 10**12, 500_000, 5 * 10**11, 0, 0)
    shares = mm.to_shares_up(1_000, m.total_borrow_assets, m.total_borrow_shares)
    assert mm.to_assets_up(shares, m.total_borrow_assets, m.total_borrow_shares) >= 1_000
    assert mm.to_assets_down(shares, m.total_borrow_assets, m.total_borrow_shares) <= 1_000 + 1


def test_accrue_taylor_and_fee_shares():
    m = mm.Market(10**12, 10**18, 5 * 10**11, 5 * 10**17, 1_000, 10**17)  # 10% fee
    rate = 3_170_979_198  # ~10% a year per second, WAD
    a = mm.accrue(m, rate, 1_000 + 365 * 86_400)
    interest = a.total_borrow_assets - m.total_borrow_assets
    assert 5 * 10**10 < interest < 5.3 * 10**10  # e^0.1 - 1 ~ 10.5%
    assert a.total_supply_assets - m.total_supply_assets == interest
    assert a.total_supply_shares > m.total_supply_shares  # the fee recipient's shares
    assert mm.accrue(m, rate, 1_000) == m


def test_plan_full_repay_or_seize_everything():
    # 10 WETH at 2000 USDC (price 2000e24 in 1e36 units for 18 -> 6 decimals), lltv 0.86.
    price = 2_000 * 10**24
    m = mm.Market(10**12, 10**18, 18_000 * 10**6, 18_000 * 10**12, 0, 0)
    shares = 18_000 * 10**12  # 18,000 USDC of debt: unhealthy (max 17,200)
    assert not mm.is_healthy(shares, 10 * E18, m, price, 86 * 10**16)
    liq = mm.plan(shares, 10 * E18, m, price, 86 * 10**16, 10**12)
    assert liq.repaid_shares == shares and not liq.bad_debt
    assert liq.seized < 10 * E18
    # Price crash: the collateral cannot cover the debt x LIF -> seize it all, bad debt follows.
    crash = 1_000 * 10**24
    liq = mm.plan(shares, 10 * E18, m, crash, 86 * 10**16, 10**12)
    assert liq.seized_assets == 10 * E18 and liq.bad_debt and liq.repaid_assets < 18_000 * 10**6
    # A small wallet: a partial repay it can afford.
    liq = mm.plan(shares, 10 * E18, m, price, 86 * 10**16, 1_000 * 10**6)
    assert liq.repaid_assets <= 1_000 * 10**6 and liq.repaid_shares < shares


def test_trigger_price_is_the_exact_health_boundary_and_holds_within_its_margin():
    """Random positions: healthy at the trigger price and above, unhealthy one unit below it (no
    margin); with a margin, still healthy at its trigger once the debt per share grew by less."""
    import random
    rng = random.Random(9)
    for _ in range(2_000):
        m = mm.Market(10**15, 10**21, rng.randint(10**9, 10**14), rng.randint(10**15, 10**20), 0, 0)
        lltv = rng.choice([625, 770, 860, 915, 945]) * 10**15
        shares = rng.randint(1, m.total_borrow_shares)
        collateral = rng.randint(1, 10**24)
        t = mm.trigger_price(shares, collateral, m, lltv)
        assert t is not None and t > 0
        assert mm.is_healthy(shares, collateral, m, t, lltv)
        assert not mm.is_healthy(shares, collateral, m, t - 1, lltv)
        tm = mm.trigger_price(shares, collateral, m, lltv, 10)
        assert tm is not None and tm >= t
        grown = mm.Market(m.total_supply_assets, m.total_supply_shares, m.total_borrow_assets * 10_009 // 10_000,
                          m.total_borrow_shares, 0, 0)  # debt per share +0.09% < 0.1%
        assert mm.is_healthy(shares, collateral, grown, tm, lltv)
    assert mm.trigger_price(0, 10, m, lltv) is None
    assert mm.trigger_price(5, 0, m, lltv) == mm.NEVER_HEALTHY
