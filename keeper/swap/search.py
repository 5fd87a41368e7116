"""The most profitable size of a capital-free liquidation, with quotes.

An adapter describes each opportunity as a ``Problem``: the range of its size argument and, for a
size, what the protocol would do (``Candidate``: collateral received and sold, what the liquidation
pulls, what must be flash-borrowed). The profit of a size is what selling the collateral returns
on its best route (QuoterV2: price impact and swap fees included), less what the liquidation pulls
and the flash fee of the cheapest lender that holds the borrowed amount. Gas does not depend on the
size: the engine subtracts it afterwards.

The profit is concave in the size (the protocols pay collateral linearly in the repayment, a pool's
output is concave in its input), so a grid search that keeps the neighbours of the best point each
round converges on the maximum. Requests stay bounded: one batch of route-selection quotes, then
``search_rounds`` batches of at most ``search_points`` sizes per problem, every problem of the
block in the same batches."""
from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace

from keeper.executor import FlashSource
from keeper.swap.lenders import Lender, cheapest
from keeper.swap.routes import Route
from keeper.swap.routing import Swaps

TIE_BPS = 1  # profits this close to the best are ties, won by the larger size


@dataclass(frozen=True)
class Sale:
    token: str  # sold for the profit token
    amount: int


@dataclass(frozen=True)
class Candidate:
    """A liquidation of one size, as the protocol computes it (profit-token units)."""
    size: int  # the searched argument (repaid amount, seized assets, base paid...)
    sales: tuple[Sale, ...]  # what the executor receives and sells
    cost: int  # profit token the liquidation pulls from the executor
    borrow: int  # profit token flash-borrowed (0: none, e.g. Morpho's liquidation callback)
    refund: int = 0  # profit token the protocol pays back directly (Gearbox's remaining funds)


@dataclass
class Problem:
    key: Hashable  # the adapter's own reference
    profit_token: str
    lo: int  # sizes searched: [lo, hi]
    hi: int
    at: Callable[[int], Candidate | None]  # None: the protocol refuses that size
    extra: tuple[int, ...] = ()  # sizes tried besides the grid (e.g. a full repayment outside [lo, hi])
    aave_pool: str | None = None  # an Aave Pool that may lend too (the adapter's own)


@dataclass(frozen=True)
class Leg:
    route: Route
    amount_in: int
    amount_out: int  # QuoterV2's quote


@dataclass(frozen=True)
class Solution:
    candidate: Candidate
    legs: tuple[Leg, ...]  # one per sale
    lender: Lender | None  # None when nothing is borrowed
    flash_fee: int
    profit: int  # sum(out) + refund - cost - flash_fee, in the profit token (<= 0: no size pays; the
    # solution is then the largest size quoted)
    quoted: int  # sizes quoted

    @property
    def out(self) -> int:
        return sum(leg.amount_out for leg in self.legs)


@dataclass(frozen=True)
class Unsolved:
    why: str  # "no_route": no pool path; "no_quote": every quote reverted; "no_lender": nobody lends enough
    message: str


@dataclass
class _State:
    p: Problem
    lo: int
    hi: int
    routes: dict[str, list[Route]] = field(default_factory=dict)  # token sold -> routes still considered
    lenders: list[Lender] = field(default_factory=list)
    best: Solution | None = None
    evaluated: list[Solution] = field(default_factory=list)
    largest: Solution | None = None  # at the largest size quoted: what a skip describes when nothing pays
    grid_best: tuple[int, int] | None = None  # (profit, size) of the best size inside [lo, hi]
    seen: set[int] = field(default_factory=set)
    failure: Unsolved | None = None


def grid(lo: int, hi: int, n: int) -> list[int]:
    """n sizes evenly spread over [lo, hi] (fewer when the range is narrower), ends included."""
    if hi <= lo:
        return [lo]
    return sorted({lo + (hi - lo) * i // (n - 1) for i in range(n)})


async def solve(swaps: Swaps, problems: list[Problem], block: int) -> dict[Hashable, Solution | Unsolved]:
    """The best size, routes and lender of every problem (see the module docstring)."""
    states = [_State(p, max(p.lo, 1), p.hi) for p in problems if p.hi >= max(p.lo, 1)]
    out: dict[Hashable, Solution | Unsolved] = {
        p.key: Unsolved("no_size", "no size the protocol accepts") for p in problems if p.hi < max(p.lo, 1)}
    if not states:
        return out
    first = {id(s): s.p.at(s.hi) for s in states}
    sold = {(sale.token, s.p.profit_token) for s in states if (c := first[id(s)]) for sale in c.sales}
    await swaps.load_pools({h for a, b in sold for h in swaps.hops(a, b)}, block)
    await swaps.load_symbols({t for pair in sold for t in pair} | {swaps.cfg.weth, swaps.cfg.stablecoin})
    borrowed = {s.p.profit_token for s in states if (c := first[id(s)]) and c.borrow}
    aave_pools = {s.p.aave_pool for s in states if s.p.aave_pool}
    lenders = await swaps.lenders(borrowed, block, aave_pools=aave_pools) if borrowed else {}
    for s in states:
        c = first[id(s)]
        s.lenders = [x for x in lenders.get(s.p.profit_token, [])
                     if x.source is not FlashSource.AAVE_V3 or x.address in (s.p.aave_pool, swaps.flash_cfg.aave_pool)]
        for sale in c.sales if c else ():
            s.routes[sale.token] = swaps.routes(sale.token, s.p.profit_token)
            if not s.routes[sale.token]:
                s.failure = Unsolved("no_route", f"no Uniswap V3 pool path from {swaps.symbol(sale.token)} to "
                                                 f"{swaps.symbol(s.p.profit_token)} (fee tiers {swaps.cfg.fee_tiers})")
    live = [s for s in states if s.failure is None]
    await _select_routes(swaps, live, block)
    rounds = swaps.cfg.search_rounds
    for r in range(rounds):
        todo = [(s, [x for x in grid(s.lo, s.hi, swaps.cfg.search_points) + list(s.p.extra if r == 0 else ())
                     if x not in s.seen]) for s in live if s.failure is None]
        todo = [(s, xs) for s, xs in todo if xs]
        if not todo:
            break
        await _evaluate(swaps, todo, block)
        for s, _ in todo:
            _narrow(s, swaps.cfg.search_points)
    for s in states:
        if s.best is not None:
            # Nothing pays: report the largest size (the whole liquidation), not a 1-unit one.
            shown = _prefer_larger(s) if s.best.profit > 0 or s.largest is None else s.largest
            out[s.p.key] = replace(shown, quoted=len(s.seen))
        else:
            out[s.p.key] = s.failure or Unsolved("no_quote", "every quote of every route failed (no liquidity?)")
    return out


def _prefer_larger(s: _State) -> Solution:
    """The largest size within TIE_BPS of the best profit: a repayment a unit short of the whole
    debt earns the same (rounding) and leaves dust nobody can liquidate at a profit."""
    assert s.best is not None
    floor = s.best.profit - max(1, s.best.profit * TIE_BPS // 10_000)
    return max((x for x in s.evaluated if x.profit >= floor), key=lambda x: x.candidate.size)


async def _select_routes(swaps: Swaps, states: list[_State], block: int) -> None:
    """Quote every route of every sale at the largest size and at a quarter of the range; keep the
    routes that win at either (a shallow low-fee pool may win small sizes, a deep one large sizes)."""
    reqs: list[tuple[Route, int]] = []
    slots: list[tuple[_State, str, int]] = []  # (state, token, index of the probe)
    for s in states:
        for probe, size in enumerate({s.hi, s.lo + (s.hi - s.lo) // 4}):
            c = s.p.at(size)
            for sale in c.sales if c else ():
                if len(s.routes.get(sale.token, [])) > 1:
                    for route in s.routes[sale.token]:
                        reqs.append((route, sale.amount))
                        slots.append((s, sale.token, probe))
    if not reqs:
        return
    quotes = await swaps.quote(reqs, block)
    winners: dict[tuple[int, str, int], tuple[int, Route]] = {}
    for (s, token, probe), (route, _), q in zip(slots, reqs, quotes):
        key = (id(s), token, probe)
        if q is not None and (key not in winners or q > winners[key][0]):
            winners[key] = (q, route)
    for s in states:
        for token, routes in s.routes.items():
            if len(routes) > 1:
                keep = [w[1] for (sid, t, _), w in winners.items() if sid == id(s) and t == token]
                s.routes[token] = list(dict.fromkeys(keep)) or routes


async def _evaluate(swaps: Swaps, todo: list[tuple[_State, list[int]]], block: int) -> None:
    """Quote each size of each problem on each route still considered (one batch) and keep the best."""
    reqs: list[tuple[Route, int]] = []
    plans: list[tuple[_State, Candidate, list[list[int]]]] = []  # per size: per sale, indices into reqs
    for s, sizes in todo:
        for size in sizes:
            s.seen.add(size)
            c = s.p.at(size)
            if c is None:
                continue
            idx = []
            for sale in c.sales:
                idx.append([len(reqs) + i for i in range(len(s.routes.get(sale.token, [])))])
                reqs += [(route, sale.amount) for route in s.routes.get(sale.token, [])]
            plans.append((s, c, idx))
    quotes = await swaps.quote(reqs, block)
    for s, c, idx in plans:
        legs: list[Leg] = []
        for sale, ids in zip(c.sales, idx):
            got = [(q, reqs[i][0]) for i in ids if (q := quotes[i]) is not None]
            if not got:
                break
            q, route = max(got, key=lambda x: x[0])
            legs.append(Leg(route, sale.amount, q))
        if len(legs) != len(c.sales):
            continue
        lender, fee = None, 0
        if c.borrow:
            lender = cheapest(s.lenders, c.borrow, {p for leg in legs for p in leg.route.pools})
            if lender is None:
                if s.best is None:
                    s.failure = Unsolved("no_lender", f"no flash lender holds {c.borrow} of "
                                                      f"{swaps.symbol(s.p.profit_token)}")
                continue
            fee = lender.fee(c.borrow)
        profit = sum(leg.amount_out for leg in legs) + c.refund - c.cost - fee
        if s.lo <= c.size <= s.hi and (s.grid_best is None or profit > s.grid_best[0]):
            s.grid_best = (profit, c.size)
        sol = Solution(c, tuple(legs), lender, fee, profit, 0)
        s.evaluated.append(sol)
        if s.best is None or profit > s.best.profit:
            s.best = sol
            s.failure = None
        if s.largest is None or c.size > s.largest.candidate.size:
            s.largest = sol


def _narrow(s: _State, points: int) -> None:
    """Keep the grid neighbours of the best size of the range (the profit is concave in the size)."""
    if s.grid_best is None:
        return
    xs = grid(s.lo, s.hi, points)
    best = s.grid_best[1]
    i = min(range(len(xs)), key=lambda j: abs(xs[j] - best))
    s.lo, s.hi = xs[max(i - 1, 0)], xs[min(i + 1, len(xs) - 1)]
