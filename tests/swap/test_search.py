"""The size search of keeper.swap.search against a stand-in for Swaps whose pools price like a
constant-product pool (node-free): it finds the most profitable size of a concave profit within a
bounded number of quotes, reports the whole position when no size pays, and picks the cheapest
flash lender that holds the amount and is not a pool the sale goes through."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from keeper.executor import FlashSource
from keeper.swap.config import FlashConfig, SwapConfig
from keeper.swap.lenders import Lender, cheapest
from keeper.swap.routes import Route
from keeper.swap.search import Candidate, Problem, Sale, Solution, Unsolved, grid, solve

WETH, USDC, WBTC = "0x" + "e7" * 20, "0x" + "05" * 20, "0x" + "b7" * 20
POOL, MORPHO, AAVE = "0x" + "01" * 20, "0x" + "02" * 20, "0x" + "03" * 20
CFG = SwapConfig(factory=POOL, quoter=POOL, router=POOL, weth=WETH, stablecoin=USDC, fee_tiers=[3000],
                 search_points=8, search_rounds=4)


@dataclass
class FakeSwaps:
    """One WETH/USDC pool of ``depth`` USDC a side at 2,000 USDC per WETH (x * y = k, 0.3% fee)."""
    depth: int
    lenders_held: dict[FlashSource, int] = field(default_factory=dict)
    cfg: SwapConfig = CFG
    flash_cfg: FlashConfig = field(default_factory=lambda: FlashConfig(morpho=MORPHO, aave_pool=AAVE))
    batches: list[int] = field(default_factory=list)  # quotes per batch

    async def load_pools(self, pairs, block): ...
    async def load_symbols(self, tokens): ...

    def hops(self, a, b):
        return {(a, b)}

    def symbol(self, t):
        return {WETH: "WETH", USDC: "USDC"}.get(t, t[:6])

    def routes(self, a, b):
        return [Route((a, b), (3000,), (POOL,))] if {a, b} == {WETH, USDC} else []

    async def quote(self, requests, block):
        self.batches.append(len(requests))
        return [self.out(amount) for _, amount in requests]

    def out(self, amount_weth: int) -> int:
        x, y = self.depth * 10**18 // 2_000, self.depth * 10**6
        a = amount_weth * 997 // 1000
        return y * a // (x + a)

    async def lenders(self, tokens, block, *, aave_pools=()):
        fees = {FlashSource.MORPHO_BLUE: (MORPHO, 0), FlashSource.AAVE_V3: (AAVE, 5),
                FlashSource.UNISWAP_V3: (POOL, 3000)}
        return {t: [Lender(s, fees[s][0], held, fees[s][1]) for s, held in self.lenders_held.items()] for t in tokens}


def liquidation(key="a", size=10**18 * 10, bonus_bps=500, borrow=True) -> Problem:
    """Repay ``x`` USDC (6 dec) for x x (1 + bonus) worth of WETH at 2,000 USDC: up to ``size``."""
    top = size * 2_000 // 10**12

    def at(x: int) -> Candidate:
        seized = x * 10**12 * (10_000 + bonus_bps) // 10_000 // 2_000
        return Candidate(x, (Sale(WETH, seized),), x, x if borrow else 0)

    return Problem(key, USDC, 1, top, at)


async def test_the_search_finds_the_most_profitable_size_with_few_quotes():
    swaps = FakeSwaps(depth=500_000)  # 500k USDC a side: a 20k sale loses ~4% to impact
    swaps.lenders_held = {FlashSource.MORPHO_BLUE: 10**15}
    p = liquidation(size=10 * 10**18)  # the whole position: 20,000 USDC for 10.5 WETH
    (sol,) = (await solve(swaps, [p], 1)).values()  # type: ignore[arg-type]
    assert isinstance(sol, Solution) and sol.profit > 0
    profit = lambda x: swaps.out(p.at(x).sales[0].amount) - x  # (Morpho: no fee)
    assert profit(p.hi) < sol.profit  # the whole position pays less than the chosen part
    best = max(profit(x) for x in range(1, p.hi, p.hi // 20_000))  # an exhaustive scan
    assert sol.profit >= best * 0.999 and sol.profit == profit(sol.candidate.size)
    assert sol.lender is not None and sol.lender.source is FlashSource.MORPHO_BLUE and sol.flash_fee == 0
    assert len(swaps.batches) <= 1 + CFG.search_rounds and sum(swaps.batches) <= CFG.search_rounds * CFG.search_points
    assert sol.quoted == sum(swaps.batches)


async def test_nothing_pays_the_whole_position_is_reported_and_no_route_is_said():
    swaps = FakeSwaps(depth=3_000)
    swaps.lenders_held = {FlashSource.MORPHO_BLUE: 10**15}
    # A 0.2% bonus never covers the pool's 0.3% fee: no size pays.
    res = await solve(swaps, [liquidation("shallow", bonus_bps=20), Problem("btc", USDC, 1, 10, lambda x: Candidate(
        x, (Sale(WBTC, x),), x, x))], 1)
    shallow, btc = res["shallow"], res["btc"]
    assert isinstance(shallow, Solution) and shallow.profit <= 0
    assert shallow.candidate.size == liquidation().hi  # the largest size: what a skip describes
    assert isinstance(btc, Unsolved) and btc.why == "no_route"


async def test_no_lender_holds_enough():
    swaps = FakeSwaps(depth=10_000_000)
    swaps.lenders_held = {FlashSource.MORPHO_BLUE: 0}
    (res,) = (await solve(swaps, [liquidation()], 1)).values()
    assert isinstance(res, Unsolved) and res.why == "no_lender"
    swaps.lenders_held = {}
    (res,) = (await solve(swaps, [liquidation(borrow=False)], 1)).values()  # Morpho's callback: no loan
    assert isinstance(res, Solution) and res.lender is None and res.profit > 0


def test_cheapest_lender_and_fees():
    morpho = Lender(FlashSource.MORPHO_BLUE, MORPHO, 100, 0)
    aave = Lender(FlashSource.AAVE_V3, AAVE, 10**12, 5)
    uni = Lender(FlashSource.UNISWAP_V3, POOL, 10**12, 100)  # a 0.01% pool
    assert cheapest([aave, morpho, uni], 100) is morpho  # free, and it holds the amount
    assert cheapest([aave, morpho, uni], 10**6) is uni  # 100 units < Aave's 5 bps (500)
    # Aave: percentMul rounds half up; Uniswap: mulDivRoundingUp.
    assert (aave.fee(10**6), aave.fee(1_000), aave.fee(999), uni.fee(10**6), uni.fee(1)) == (500, 1, 0, 100, 1)
    assert cheapest([aave, uni], 10**6, avoid={POOL}) is aave  # the swap's own pool is locked
    assert cheapest([morpho], 101) is None


@pytest.mark.parametrize("lo, hi, n", [(1, 1, 8), (1, 5, 8), (0, 10**18, 8), (7, 100, 3)])
def test_grid_spans_the_range(lo, hi, n):
    g = grid(lo, hi, n)
    assert g[0] == lo and g[-1] == hi and len(g) <= n and g == sorted(set(g))
