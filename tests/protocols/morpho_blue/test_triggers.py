"""Morpho Blue's per-block check through trigger prices, node-free (a hand-made market of 3,000
random positions): after oracle moves either way and interest within and past the margin,
assess_liquidatable plans exactly the positions assess() finds liquidatable, having checked only
the positions whose trigger the price is below."""
from __future__ import annotations

import random
from dataclasses import replace

from keeper.protocols.base import Services
from keeper.protocols.morpho_blue import maths as mm
from keeper.protocols.morpho_blue.adapter import MarketState, MorphoBlueAdapter
from keeper.protocols.morpho_blue.config import MorphoBlueConfig

LOAN, COLL = "0x" + "a" * 40, "0x" + "b" * 40
PRICE = 3_000 * 10**36 * 10**6 // 10**18  # 3,000 USDC (6 dec) per WETH (18 dec), Morpho's 1e36 scale


def test_only_the_positions_past_their_trigger_are_checked(monkeypatch):
    cfg = MorphoBlueConfig(kind="morpho_blue", morpho="0x" + "1" * 40, usd_feeds={LOAN: "0x" + "2" * 40})
    a = MorphoBlueAdapter(cfg, Services(liquidator="0x" + "3" * 40))
    a.usd = {LOAN: 10**8}
    m = MarketState(b"\x01" * 32, (LOAN, COLL, "0x" + "4" * 40, "0x" + "5" * 40, 86 * 10**16), 6, 18, "USDC", "WETH")
    m.market = mm.Market(10**14, 10**20, 5 * 10**13, 5 * 10**19, 0, 0)
    m.price = PRICE
    rng = random.Random(4)
    for i in range(3_000):
        coll = rng.randint(10**17, 10**20)
        value = coll * PRICE // 10**36 * 86 // 100  # borrowable, USDC units
        debt = int(value / rng.uniform(1.02, 3.0))
        shares = mm.to_shares_down(debt, m.market.total_borrow_assets, m.market.total_borrow_shares)
        m.positions["0x%040x" % (i + 1)] = (shares, coll)
    a.markets = {m.id: m}
    a._index(m, [])
    checked: list[str] = []
    plan = a._plan
    monkeypatch.setattr(a, "_plan", lambda mk, b, budget: (checked.append(b), plan(mk, b, budget))[1])
    budget = {LOAN: 10**15}
    for bps, growth in [(10_000, 0), (9_500, 5), (9_000, 5), (10_500, 0), (8_000, 30), (7_000, 0)]:
        m.price = PRICE * bps // 10_000
        m.market = replace(m.market, total_borrow_assets=m.market.total_borrow_assets * (10_000 + growth) // 10_000)
        a._index(m, [])  # what refresh does once the market and positions are read
        checked.clear()
        fast = a.assess_liquidatable(budget)
        small = len(checked)
        full = a.assess(budget)
        liquidatable = sorted(v.account for v in full.views if v.liquidatable)
        assert sorted(v.account for v in fast.views) == liquidatable, bps
        assert sorted(p.account for p in fast.plans) == sorted(p.account for p in full.plans)
        assert fast.tracked == len(full.views) == 3_000
        assert small <= len(liquidatable) + 3_000 // 100  # hardly more than the liquidatable ones
    assert len(liquidatable) > 300
