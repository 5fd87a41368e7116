"""The Aave adapter's planning on a hand-made mirror (no node): which liquidation bonus an eMode
user's collateral gets under each rule set, and what it offers after simulation refuses a plan."""
from __future__ import annotations

from dataclasses import asdict, replace

import pytest

from keeper.protocols.aave_v3.adapter import AaveV3Adapter, EMode, Reserve, UserState
from keeper.protocols.aave_v3.config import AaveV3Config
from keeper.protocols.aave_v3.rules import UINT_MAX
from keeper.protocols.base import Plan, Services

USD = 10**8
WETH, USDC, WBTC = ("0x" + c * 40 for c in "abc")
USER = "0x" + "d" * 40


def config_word(ltv: int, threshold: int, bonus: int, decimals: int, emode_bits: int = 0, fee: int = 1_000) -> int:
    """ReserveConfiguration: ltv 0-15, threshold 16-31, bonus 32-47, decimals 48-55, active 56,
    protocol fee 152-167, eMode category 168-175 (v3.0; unused from v3.2)."""
    return ltv | threshold << 16 | bonus << 32 | decimals << 48 | 1 << 56 | fee << 152 | emode_bits << 168


def adapter(rules: str, *, weth_emode_bits: int, emode: EMode) -> AaveV3Adapter:
    """One user in eMode category 1 with 1.55 WETH of collateral and 0.05 WBTC + 1,100 USDC of debt
    at WETH 2,800 (HF 0.984, 4,100 USD of debt). Reserve ids: USDC 0, WBTC 1, WETH 2."""
    a = AaveV3Adapter(AaveV3Config(kind="aave_v3", addresses_provider="0x" + "1" * 40, close_factor_rules=rules),
                      Services(liquidator="0x" + "2" * 40))
    a.reserves = {
        USDC: Reserve(USDC, 0, "0x" + "3" * 40, "", "", config_word(7_700, 8_000, 10_450, 6), "USDC", USD),
        WBTC: Reserve(WBTC, 1, "0x" + "4" * 40, "", "", config_word(7_000, 7_500, 10_650, 8), "WBTC", 60_000 * USD),
        WETH: Reserve(WETH, 2, "0x" + "5" * 40, "", "", config_word(8_000, 8_250, 10_500, 18, weth_emode_bits),
                      "WETH", 2_800 * USD),
    }
    a.users = {USER: UserState(total_collateral_base=4_340 * USD, total_debt_base=4_100 * USD,
                               health_factor=984 * 10**15, emode=1, collateral={WETH: 155 * 10**16},
                               debt={WBTC: 5_000_000, USDC: 1_100 * 10**6})}
    a.emode = {1: emode}
    return a


BUDGET = {USDC: 10**12, WBTC: 10**9, WETH: 10**21}
CAT_V30 = EMode(9_000, 9_300, 10_300, "0x" + "00" * 20, None)
CAT_V32 = EMode(9_000, 9_300, 10_300, None, 0b100)  # WETH (reserve 2) in the collateral bitmap


class Planned:
    """The account's plan (or its view when there is none), with its details as a dict."""

    def __init__(self, a: AaveV3Adapter):
        got = a.assess(BUDGET)
        [self.view] = got.views
        self.plan = got.plans[0] if got.plans else None
        self.label = self.view.label
        self.details = asdict(self.plan.details) if self.plan and self.plan.details else {}
        self.reason = self.view.skip.message if self.view.skip else None


def plan(a: AaveV3Adapter) -> Planned:
    return Planned(a)


def details(p: Plan) -> dict:
    return asdict(p.details)


def test_v30_category_bonus_from_the_reserve_bits():
    assert plan(adapter("v3.0", weth_emode_bits=1, emode=CAT_V30)).details["liquidation_bonus"] == 10_300
    assert plan(adapter("v3.0", weth_emode_bits=0, emode=CAT_V30)).details["liquidation_bonus"] == 10_500
    with_oracle = replace(CAT_V30, price_source="0x" + "9" * 40)
    assert plan(adapter("v3.0", weth_emode_bits=1, emode=with_oracle)).reason == (
        "eMode category with its own price source is not supported")


def test_v33_category_bonus_from_the_collateral_bitmap_not_the_reserve_bits():
    # In the bitmap: the category's bonus, whatever bits 168-175 say (unused since v3.2).
    assert plan(adapter("v3.3", weth_emode_bits=0, emode=CAT_V32)).details["liquidation_bonus"] == 10_300
    # Bits 168-175 naming the category while the bitmap leaves WETH out: the reserve's bonus.
    out = adapter("v3.3", weth_emode_bits=1, emode=replace(CAT_V32, collateral_bitmap=0b010))
    assert plan(out).details["liquidation_bonus"] == 10_500


def test_best_plan_stops_at_the_dust_limit_with_the_category_bonus():
    opp = plan(adapter("v3.3", weth_emode_bits=0, emode=CAT_V32))
    d = opp.details
    # 50% of the 4,100 USD total (2,050) would leave 950 USD of WBTC debt: 3,333,333 sats instead.
    assert (opp.label, d["debt_to_cover_arg"], d["debt_to_cover"]) == ("WETH/WBTC", 3_333_333, 3_333_333)
    assert d["collateral_received"] + d["protocol_fee"] == (3_333_333 * 60_000 * 10**18 // 2_800 // 10**8
                                                            ) * 10_300 // 10_000


def test_after_a_dust_refusal_a_smaller_amount_then_the_other_pair_and_the_refusal_is_remembered():
    a = adapter("v3.3", weth_emode_bits=0, emode=CAT_V32)
    first = plan(a)
    nxt = a.alternatives(first.plan, "liquidationCall WETH/WBTC would revert: MustNotLeaveDust", BUDGET)
    # By profit: WBTC leaving 1,010 / 1,100 / 1,500 USD of debt (3% bonus on ~1,990 / 1,900 / 1,500
    # USD), then USDC cleared (3% on 1,100 USD).
    assert [(o.label, details(o)["dust_margin_bps"]) for o in nxt] == [
        ("WETH/WBTC", 100), ("WETH/WBTC", 1_000), ("WETH/WBTC", 5_000), ("WETH/USDC", 0)]
    assert all(details(o)["debt_to_cover"] < first.details["debt_to_cover"] for o in nxt if o.label == "WETH/WBTC")
    # 1% over the limit: 1,010 USD of WBTC debt left (1,683,334 sats).
    assert 5_000_000 - details(nxt[0])["debt_to_cover"] == 1_683_334
    # The same state planned again (next block): the refused plan is not offered again.
    assert plan(a).details["debt_to_cover_arg"] == details(nxt[0])["debt_to_cover_arg"]
    # A refusal of that one too: the next.
    nxt2 = a.alternatives(nxt[0], "MustNotLeaveDust", BUDGET)
    assert details(nxt2[0])["dust_margin_bps"] == 1_000 and plan(a).details["dust_margin_bps"] == 1_000
    # Interest (balances within 10 bps) keeps the memory; a price move clears it.
    a.users[USER].debt[WBTC] += 1
    assert plan(a).details["dust_margin_bps"] == 1_000
    a.reserves[WETH].price -= 1
    assert plan(a).details["dust_margin_bps"] == 0


def test_a_pair_refused_for_another_reason_is_dropped_and_a_healthy_account_has_no_next_plan():
    a = adapter("v3.3", weth_emode_bits=0, emode=CAT_V32)
    first = plan(a)
    nxt = a.alternatives(first.plan, "liquidationCall WETH/WBTC would revert: 29 RESERVE_PAUSED", BUDGET)
    assert [o.label for o in nxt] == ["WETH/USDC"]
    assert details(nxt[0])["debt_to_cover_arg"] == UINT_MAX  # clears the 1,100 USDC
    assert plan(a).label == "WETH/USDC"
    b = adapter("v3.3", weth_emode_bits=0, emode=CAT_V32)
    assert b.alternatives(plan(b).plan, "HealthFactorNotBelowThreshold()", BUDGET) == []
    assert plan(b).label == "WETH/WBTC"  # nothing remembered


def test_every_plan_refused_leaves_a_reason():
    a = adapter("v3.3", weth_emode_bits=0, emode=CAT_V32)
    opp = plan(a).plan
    for _ in range(10):  # (bounded: a keeper that forgot refusals would offer plans for ever)
        nxt = a.alternatives(opp, "29 RESERVE_PAUSED", BUDGET)
        if not nxt:
            break
        opp = nxt[0]
    assert plan(a).reason == "every valid plan was refused by simulation in this state"


@pytest.mark.parametrize("rules", ["v3.1", ""])
def test_unknown_rules_refused_by_the_config(rules):
    with pytest.raises(ValueError):
        AaveV3Config(kind="aave_v3", addresses_provider="0x" + "1" * 40, close_factor_rules=rules)


def test_a_refusal_is_forgotten_when_the_pools_quotes_move():
    """In flash mode the pools are part of the state a refusal was made in: an earlier trade of the
    block (another liquidation's sale) can make a flash plan fail that the next block's quote makes
    good. A refusal is remembered while the quotes are the same, forgotten when they change."""
    from keeper.swap.search import Candidate, Solution

    def quote(out: int) -> Solution:
        return Solution(Candidate(size=1, sales=(), cost=0, borrow=0), legs=(), lender=None, flash_fee=0,
                        profit=out, quoted=1)

    a = adapter("v3.3", weth_emode_bits=0, emode=CAT_V32)
    a.quotes = {USER: {(WETH, WBTC): quote(500)}}
    first = plan(a)
    a.alternatives(first.plan, "29 RESERVE_PAUSED", BUDGET)
    assert plan(a).label == "WETH/USDC"  # same prices, same quotes: WETH/WBTC stays refused
    a.quotes = {USER: {(WETH, WBTC): quote(500)}}  # re-quoted in the next block, unchanged
    assert plan(a).label == "WETH/USDC"
    a.quotes = {USER: {(WETH, WBTC): quote(480)}}  # the pool moved: the pair may be tried again
    assert plan(a).label == "WETH/WBTC"


def test_each_block_only_liquidatable_accounts_get_views_the_healthy_are_counted():
    """The daemon's per-block assessment leaves out healthy accounts' views (what a liquidation
    would look like is for scan), so a block's work follows the liquidatable accounts."""
    a = adapter("v3.3", weth_emode_bits=0, emode=CAT_V32)
    healthy = "0x" + "e" * 40
    a.users[healthy] = replace(a.users[USER], health_factor=12 * 10**17)
    full, each_block = a.assess(BUDGET), a.assess_liquidatable(BUDGET)
    assert sorted(v.account for v in full.views) == sorted([USER, healthy]) and full.healthy == 0
    assert [v.account for v in each_block.views] == [USER] and each_block.healthy == 1
    assert each_block.tracked == full.tracked == 2
    assert [p.label for p in each_block.plans] == [p.label for p in full.plans] == ["WETH/WBTC"]
