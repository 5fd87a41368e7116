"""Perennial V2 maths (keeper/protocols/perennial_v2/maths.py) against hand-worked figures from
Perennial's rules (PositionLib, InvariantLib, VersionLib, PController6 / PAccumulator6, PythFactory,
KeeperFactory, KeeperOracle, PriceResponseLib)."""
from __future__ import annotations

import pytest

from keeper.protocols.perennial_v2 import maths as pm

U = pm.UNIT
RISK = pm.Risk(margin=100_000, maintenance=50_000, liquidation_fee=10 * U, min_margin=10 * U,
               min_maintenance=10 * U, stale_after=60)


def test_truncation_is_solidity_like():
    assert pm.tdiv(-7, 2) == -3 and pm.tdiv(7, -2) == -3 and pm.tdiv(7, 2) == 3
    assert pm.mul6(-1_500_000, 1_500_001) == -2_250_001  # -2.2500015 -> toward zero


def test_maintenance_is_the_larger_of_ratio_and_minimum():
    long2 = pm.Position(0, 0, 2 * U, 0)
    # 2 ETH x $2,100 x 5% = $210
    assert pm.maintenance(long2, 2_100 * U, RISK) == 210 * U
    tiny = pm.Position(0, 0, U // 10, 0)
    assert pm.maintenance(tiny, 2_100 * U, RISK) == 10_500_000  # 10.5 > minMaintenance 10
    assert pm.maintenance(pm.Position(0, 0, U // 100, 0), 2_100 * U, RISK) == 10 * U  # floor applies
    assert pm.maintenance(pm.Position(0, 0, 0, 0), 2_100 * U, RISK) == 0  # no position, no requirement
    # |price|: a negative price counts by magnitude
    assert pm.maintenance(long2, -2_100 * U, RISK) == 210 * U
    # truncation in Perennial's order: (magnitude x price / 1e6) x ratio / 1e6
    assert pm.requirement(333_333, 2_999_999_999, 33_333, 0) == 333_333 * 2_999_999_999 // U * 33_333 // U


def test_maintained_edge_and_negative_collateral():
    long1 = pm.Position(0, 0, U, 0)
    m = pm.maintenance(long1, 2_100 * U, RISK)
    assert pm.maintained(long1, 2_100 * U, RISK, m)
    assert not pm.maintained(long1, 2_100 * U, RISK, m - 1)
    assert not pm.maintained(long1, 2_100 * U, RISK, -5 * U)  # unsafeFrom: negative counts as 0
    assert pm.maintained(pm.Position(0, 0, 0, 0), 2_100 * U, RISK, -5 * U)  # no position: maintained


def glob(long=0, short=0, maker=10_000 * U, price=3_000 * U, ts=1_000, rate=0, skew=0) -> pm.GlobalView:
    return pm.GlobalView(pm.Position(ts, maker, long, short), price, rate, skew)


def test_price_pnl_from_the_latest_version():
    long2, short1 = pm.Position(1_000, 0, 2 * U, 0), pm.Position(1_000, 0, 0, U)
    g = glob(long=8 * U, short=U)
    assert pm.collateral_at(1_900 * U, long2, g, RISK, 1_010, 2_100 * U) == 100 * U  # the demo's 2 ETH long
    assert pm.collateral_at(500 * U, short1, g, RISK, 1_010, 2_100 * U) == 1_400 * U
    assert pm.collateral_at(500 * U, short1, g, RISK, 1_000, 2_100 * U) == 500 * U  # no newer version
    # takers beyond what makers and the other side carry are socialised: 20 long vs 5 maker + 5 short
    small = glob(long=20 * U, short=5 * U, maker=5 * U)
    assert pm.step_values(small, RISK, 1_010, 2_900 * U).long == -50 * U  # -100 x 10/20 per unit


def test_funding_at_a_flat_rate():
    # rate pinned at 100% a year (min = max): longs pay notional x rate x time, shorts receive their
    # share (2 of 8 long), makers the rest
    risk = pm.Risk(**{**RISK.__dict__, "p_controller": pm.PController(0, U, U)})
    g = glob(long=8 * U, short=2 * U, rate=U)
    v, rate = pm.funding(g, risk.p_controller, 1_000 + pm.YEAR // 1_000)
    per_long = -(3_000 * U) // 1_000  # 8 ETH x $3,000 x 100% / 1000 of a year, per long unit
    assert rate == U and abs(v.long - per_long) <= 1
    assert abs(v.short + v.long) <= 1  # the 2 shorts receive what 2 longs pay
    assert v.maker > 0 and abs(v.maker * 10_000 - (-per_long) * 6) <= 10_000  # 6 longs' worth to makers
    assert pm.funding(g, risk.p_controller, 1_000) == (pm.Values(), U)  # no time, no funding


def test_p_controller_moves_with_skew_and_stops_at_its_bound():
    c = pm.PController(k=100 * U, min=-U, max=U)
    # full long skew: +1/100 a second; from 0 the bound (1.0) is reached after 100 s
    assert pm.p_compute(c, 0, U, 0, 50) == (U // 2, 50 * U)
    new, intercept = pm.p_compute(c, 0, U, 0, 300)
    assert new == U and intercept == 100 * U
    assert pm.p_compute(c, 0, 0, 0, 300) == (0, 300 * U)  # no skew: unchanged
    # rate area: 0 -> 1.0 over 100 s (average 0.5), then 1.0 for 200 s
    g = glob(long=U, short=0, rate=0, skew=U, ts=0, price=pm.YEAR * U // 1_000)
    v, _ = pm.funding(g, c, 300)
    assert abs(v.long + 250 * U // 1_000) <= 2


def test_keeper_fees_round_up_and_respect_the_maximum():
    assert pm.to6_round_up(1) == 1 and pm.to6_round_up(10**12) == 1 and pm.to6_round_up(10**12 + 1) == 2
    sync, async_ = pm.keeper_fees(346_500 * 10**12, 69_300 * 10**12 + 1, 3, 1_000 * U)
    assert (sync, async_) == (346_500, 69_301)
    # over the maximum: both scaled by max / total
    sync, async_ = pm.keeper_fees(4 * U * 10**12, U * 10**12, 4, 4 * U)
    assert (sync, async_) == (2 * U, U // 2) and pm.settlement_fee(sync, async_, 4) == 4 * U


def test_liquidation_fee_and_settlement_fee():
    assert pm.liquidation_fee(pm.settlement_fee(U, 0, 3), 10 * U) == 10 * U
    assert pm.settlement_fee(500_000, 100_000, 3) == 800_000
    assert pm.liquidation_fee(800_000, 2_500_000) == 2 * U
    assert pm.liquidation_fee(1, 500_000) == 0  # truncates


@pytest.mark.parametrize("price,expo,want", [
    (2_100_12345678, -8, 2_100_123456), (-2_100_12345678, -8, -2_100_123456), (3, 0, 3 * U),
    (123_456_789, -20, 0), (5, 2, 500 * U),
])
def test_pyth_price_to_fixed6(price, expo, want):
    assert pm.pyth_price6(price, expo) == want


def test_stale_and_current_version():
    assert pm.current_version(1_000, 10) == 1_000 and pm.current_version(1_001, 10) == 1_010
    assert pm.is_stale(1_060, 1_000, True, 60) and not pm.is_stale(1_059, 1_000, True, 60)
    assert pm.is_stale(1_001, 1_000, False, 60)  # invalid latest version


def test_commit_plan():
    plan = lambda pub, latest=900, out=(), now=None: pm.commit_plan(pub, latest, list(out), now or pub, 60, 4, 10)
    # no request outstanding: a fresh unrequested version publish - validFrom
    assert plan(1_000) == [pm.Commit(996, False)]
    assert "no newer price" in plan(1_000, latest=996)
    # a requested version whose window holds the publish time is committed (requested)
    assert plan(1_005, out=[1_000]) == [pm.Commit(1_000, True)]
    # before the window: an unrequested version older than next() is still possible
    assert plan(1_003, out=[1_000]) == [pm.Commit(999, False)]
    # past the window, within the timeout: neither
    r = plan(1_011, out=[1_000])
    assert isinstance(r, str) and "outside its window" in r
    # past the timeout: the requested version can only be committed invalid, then the fresh price
    assert plan(1_100, out=[1_000]) == [pm.Commit(1_000, True, False), pm.Commit(1_096, False)]
    # two timed out, the third's window holds the price
    assert plan(1_206, out=[1_000, 1_010, 1_200]) == [
        pm.Commit(1_000, True, False), pm.Commit(1_010, True, False), pm.Commit(1_200, True)]


def test_risk_from_the_risk_parameter_tuple():
    t = (100_000, 50_000, (1, 2, 3, 4), (5, 6, 7), 8, 9, 10 * U, (0, 0, 0, 0), (13, -14, 15), 11, 12, 60, False)
    assert pm.Risk.from_tuple(t) == pm.Risk(100_000, 50_000, 10 * U, 11, 12, 60, 4, pm.PController(13, -14, 15))
