"""Perennial V2 maths (keeper/protocols/perennial_v2_math.py) against hand-worked figures from
Perennial's rules (PositionLib, InvariantLib, VersionLib, PythFactory, KeeperFactory)."""
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


def test_pnl_and_collateral_at_a_new_price():
    long2, short1 = pm.Position(0, 0, 2 * U, 0), pm.Position(0, 0, 0, U)
    assert pm.collateral_at(1_900 * U, long2, 3_000 * U, 2_100 * U) == 100 * U  # the demo's 2 ETH long
    assert pm.pnl(short1, 3_000 * U, 2_100 * U) == 900 * U
    assert pm.pnl(pm.Position(0, 0, 3, 0), 0, -1) == 0  # 3e-6 x -1e-6 truncates toward zero


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


def test_commit_version_choice():
    # no request outstanding: a fresh unrequested version publish - validFrom
    assert pm.commit_version(1_000, 900, 0, 4, 10) == pm.CommitChoice(996, False)
    # nothing newer than latest
    assert "no newer price" in pm.commit_version(1_000, 996, 0, 4, 10)
    # a requested version whose window holds the publish time is committed (requested)
    assert pm.commit_version(1_005, 900, 1_000, 4, 10) == pm.CommitChoice(1_000, True)
    # before the window: an unrequested version older than next() is still possible
    assert pm.commit_version(1_003, 900, 1_000, 4, 10) == pm.CommitChoice(999, False)
    # past the window: neither
    r = pm.commit_version(1_011, 900, 1_000, 4, 10)
    assert isinstance(r, str) and "outside its window" in r


def test_risk_from_the_risk_parameter_tuple():
    t = (100_000, 50_000, (1, 2, 3, 4), (5, 6, 7), 8, 9, 10 * U, (0, 0, 0, 0), (0, 0, 0), 11, 12, 60, False)
    assert pm.Risk.from_tuple(t) == pm.Risk(100_000, 50_000, 10 * U, 11, 12, 60)
