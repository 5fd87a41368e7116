"""Morpho Blue's maths in integers, as morpho-org/morpho-blue src/Morpho.sol and its libraries
(MathLib, SharesMathLib) compute it: shares <-> assets with virtual shares, interest accrual with a
three-term Taylor expansion, the health check, the liquidation incentive factor (LIF) and the two
ways of sizing a liquidation (seizedAssets or repaidShares)."""
from __future__ import annotations

from dataclasses import dataclass, replace

WAD = 10**18
ORACLE_PRICE_SCALE = 10**36
LIQUIDATION_CURSOR = 3 * 10**17
MAX_LIF = 115 * 10**16
VIRTUAL_SHARES = 10**6
VIRTUAL_ASSETS = 1
NEVER_HEALTHY = 2**256  # a trigger price no oracle price reaches


def mul_div_down(x: int, y: int, d: int) -> int:
    return x * y // d


def mul_div_up(x: int, y: int, d: int) -> int:
    return (x * y + d - 1) // d


def w_mul_down(x: int, y: int) -> int:
    return x * y // WAD


def w_div_down(x: int, y: int) -> int:
    return x * WAD // y


def w_div_up(x: int, y: int) -> int:
    return mul_div_up(x, WAD, y)


def w_taylor_compounded(x: int, n: int) -> int:
    first = x * n
    second = mul_div_down(first, first, 2 * WAD)
    third = mul_div_down(second, first, 3 * WAD)
    return first + second + third


def to_shares_down(assets: int, total_assets: int, total_shares: int) -> int:
    return mul_div_down(assets, total_shares + VIRTUAL_SHARES, total_assets + VIRTUAL_ASSETS)


def to_shares_up(assets: int, total_assets: int, total_shares: int) -> int:
    return mul_div_up(assets, total_shares + VIRTUAL_SHARES, total_assets + VIRTUAL_ASSETS)


def to_assets_down(shares: int, total_assets: int, total_shares: int) -> int:
    return mul_div_down(shares, total_assets + VIRTUAL_ASSETS, total_shares + VIRTUAL_SHARES)


def to_assets_up(shares: int, total_assets: int, total_shares: int) -> int:
    return mul_div_up(shares, total_assets + VIRTUAL_ASSETS, total_shares + VIRTUAL_SHARES)


@dataclass(frozen=True)
class Market:
    total_supply_assets: int
    total_supply_shares: int
    total_borrow_assets: int
    total_borrow_shares: int
    last_update: int
    fee: int


def accrue(m: Market, borrow_rate: int, timestamp: int) -> Market:
    """_accrueInterest: the market as the next transaction at ``timestamp`` will see it
    (``borrow_rate`` per second, WAD, from the IRM's borrowRateView on the un-accrued market)."""
    elapsed = timestamp - m.last_update
    if elapsed <= 0 or borrow_rate == 0:
        return m
    interest = w_mul_down(m.total_borrow_assets, w_taylor_compounded(borrow_rate, elapsed))
    supply_assets = m.total_supply_assets + interest
    supply_shares = m.total_supply_shares
    if m.fee:
        fee_amount = w_mul_down(interest, m.fee)
        supply_shares += to_shares_down(fee_amount, supply_assets - fee_amount, supply_shares)
    return replace(m, total_supply_assets=supply_assets, total_supply_shares=supply_shares,
                   total_borrow_assets=m.total_borrow_assets + interest, last_update=timestamp)


def borrowed(borrow_shares: int, m: Market) -> int:
    return to_assets_up(borrow_shares, m.total_borrow_assets, m.total_borrow_shares)


def max_borrow(collateral: int, price: int, lltv: int) -> int:
    return w_mul_down(mul_div_down(collateral, price, ORACLE_PRICE_SCALE), lltv)


def is_healthy(borrow_shares: int, collateral: int, m: Market, price: int, lltv: int) -> bool:
    if borrow_shares == 0:
        return True
    return max_borrow(collateral, price, lltv) >= borrowed(borrow_shares, m)


def trigger_price(borrow_shares: int, collateral: int, m: Market, lltv: int, margin_bps: int = 0) -> int | None:
    """The oracle price from which the position is healthy (is_healthy at every price >= it) even
    once its debt has grown by ``margin_bps``: below it, it may be liquidatable. None without debt.
    healthy <=> floor(floor(c x p / 1e36) x lltv / 1e18) >= debt <=> floor(c x p / 1e36) >=
    ceil(debt x 1e18 / lltv) =: need <=> p >= ceil(need x 1e36 / c): exact, in integers."""
    if borrow_shares == 0:
        return None
    debt = borrowed(borrow_shares, m)
    debt = -(-debt * (10_000 + margin_bps) // 10_000)
    if lltv == 0 or collateral == 0:
        return NEVER_HEALTHY if debt else 0
    need = -(-debt * WAD // lltv)
    return -(-need * ORACLE_PRICE_SCALE // collateral)


def lif(lltv: int) -> int:
    """min(1.15, 1 / (1 - 0.3 x (1 - lltv)))."""
    return min(MAX_LIF, w_div_down(WAD, WAD - w_mul_down(LIQUIDATION_CURSOR, WAD - lltv)))


@dataclass(frozen=True)
class Liquidation:
    seized_assets: int  # argument (0 when sized by shares)
    repaid_shares: int  # argument (0 when sized by seized assets)
    seized: int  # collateral the liquidator receives
    repaid_assets: int  # loan tokens pulled from the liquidator
    bad_debt: bool  # the whole collateral goes: the rest of the debt is socialised


def by_shares(repaid_shares: int, m: Market, price: int, lltv: int) -> Liquidation:
    seized = mul_div_down(w_mul_down(to_assets_down(repaid_shares, m.total_borrow_assets, m.total_borrow_shares),
                                     lif(lltv)), ORACLE_PRICE_SCALE, price)
    return Liquidation(0, repaid_shares, seized, to_assets_up(repaid_shares, m.total_borrow_assets,
                                                               m.total_borrow_shares), False)


def by_seized(seized: int, m: Market, price: int, lltv: int) -> Liquidation:
    quoted = mul_div_up(seized, price, ORACLE_PRICE_SCALE)
    shares = to_shares_up(w_div_up(quoted, lif(lltv)), m.total_borrow_assets, m.total_borrow_shares)
    return Liquidation(seized, 0, seized, to_assets_up(shares, m.total_borrow_assets, m.total_borrow_shares), False)


def plan(borrow_shares: int, collateral: int, m: Market, price: int, lltv: int, budget: int,
         margin_bps: int = 5) -> Liquidation | None:
    """The largest liquidation that cannot revert on rounding or on interest accrued by execution:
    repay every share when the collateral covers them with a margin; otherwise seize all the
    collateral (the rest is bad debt, realised by Morpho). ``budget`` caps the loan tokens paid."""
    full = by_shares(borrow_shares, m, price, lltv)
    if full.seized * (10_000 + margin_bps) // 10_000 <= collateral:
        liq = full
    else:
        liq = by_seized(collateral, m, price, lltv)
        liq = replace(liq, bad_debt=True)
        # Shares are rounded up from the seized amount: never more than the position holds.
        if to_shares_up(w_div_up(mul_div_up(collateral, price, ORACLE_PRICE_SCALE), lif(lltv)),
                        m.total_borrow_assets, m.total_borrow_shares) > borrow_shares:
            return None
    if liq.repaid_assets * (10_000 + margin_bps) // 10_000 + 1 <= budget:
        return liq
    # Partial: as many shares as the wallet pays for (with the margin for accrual).
    affordable = budget * 10_000 // (10_000 + margin_bps) - 1
    shares = to_shares_down(affordable, m.total_borrow_assets, m.total_borrow_shares)
    while shares > 0 and to_assets_up(shares, m.total_borrow_assets, m.total_borrow_shares) > affordable:
        shares -= 1
    if shares <= 0:
        return None
    part = by_shares(min(shares, borrow_shares), m, price, lltv)
    return part if part.seized <= collateral and part.seized > 0 else None
