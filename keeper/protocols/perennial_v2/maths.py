"""Perennial V2 integer maths, as equilibria-xyz/perennial-v2 computes it (types/Position.sol,
libs/InvariantLib.sol, libs/VersionLib.sol, oracle/pyth/PythFactory.sol, oracle/keeper/*), for what a
liquidation keeper decides on. UFixed6/Fixed6 are 6-decimal integers; mul = a x b / 1e6 truncated
(toward zero for signed values, as Solidity divides)."""
from __future__ import annotations

from dataclasses import dataclass

UNIT = 10**6


def tdiv(a: int, b: int) -> int:
    """Solidity integer division: truncates toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def mul6(a: int, b: int) -> int:
    """UFixed6/Fixed6 mul."""
    return tdiv(a * b, UNIT)


@dataclass(frozen=True)
class Position:
    timestamp: int
    maker: int
    long: int
    short: int

    @property
    def magnitude(self) -> int:
        return max(self.maker, self.long, self.short)

    @property
    def skew(self) -> int:
        return self.long - self.short


@dataclass(frozen=True)
class Local:
    current_id: int
    latest_id: int
    collateral: int  # Fixed6
    claimable: int  # UFixed6


@dataclass(frozen=True)
class PController:
    """RiskParameter.pController (PController6): the annual funding rate moves by skew / k per
    second, within [min, max] (Fixed6)."""
    k: int
    min: int
    max: int


@dataclass(frozen=True)
class Risk:
    margin: int
    maintenance: int
    liquidation_fee: int  # multiple of the settlement fee
    min_margin: int
    min_maintenance: int
    stale_after: int
    taker_scale: int = 0  # takerFee.scale: normalises the skew fed to the P controller
    p_controller: PController = PController(0, 0, 0)

    @classmethod
    def from_tuple(cls, t: tuple) -> Risk:
        """riskParameter() answer -> the figures used here."""
        return cls(margin=t[0], maintenance=t[1], liquidation_fee=t[6], min_margin=t[9], min_maintenance=t[10],
                   stale_after=t[11], taker_scale=t[2][3], p_controller=PController(*t[8]))


@dataclass(frozen=True)
class OracleView:
    latest_timestamp: int
    latest_price: int  # Fixed6
    latest_valid: bool
    current: int


@dataclass(frozen=True)
class GlobalView:
    """The market at its latest settled version: Market.position() and global().pAccumulator."""
    position: Position  # timestamp = the latest settled version
    price: int  # Global.latestPrice, Fixed6
    rate: int  # pAccumulator._value: the annual funding rate, Fixed6
    skew: int  # pAccumulator._skew: the normalised skew moving it until the next version


@dataclass(frozen=True)
class Values:
    """Per-unit collateral change of maker, long and short positions between two versions
    (Version accumulators' differences, Fixed6)."""
    maker: int = 0
    long: int = 0
    short: int = 0

    def plus(self, o: Values) -> Values:
        return Values(self.maker + o.maker, self.long + o.long, self.short + o.short)


def requirement(magnitude: int, price: int, ratio: int, fixed: int) -> int:
    """PositionLib._collateralRequirement: max(magnitude x |price| x ratio, fixed); 0 without a position."""
    if magnitude == 0:
        return 0
    return max(magnitude * abs(price) // UNIT * ratio // UNIT, fixed)


def maintenance(position: Position, price: int, risk: Risk) -> int:
    return requirement(position.magnitude, price, risk.maintenance, risk.min_maintenance)


def maintained(position: Position, price: int, risk: Risk, collateral: int) -> bool:
    """PositionLib.maintained: UFixed6Lib.unsafeFrom(collateral) >= maintenance (negative -> 0)."""
    return max(collateral, 0) >= maintenance(position, price, risk)


# ---- VersionLib / CheckpointLib: what a position earns between two versions -------------------

YEAR = 365 * 24 * 3600


def socialized(p: Position) -> tuple[int, int]:
    """PositionLib: (longSocialized, shortSocialized), takers capped by the other side plus makers."""
    return min(p.long, p.maker + p.short), min(p.short, p.maker + p.long)


def taker_socialized(p: Position) -> int:
    major, minor = max(p.long, p.short), min(p.long, p.short)
    return min(major, minor + p.maker)


def _increment(amount_maker: int, amount_long: int, amount_short: int, p: Position) -> Values:
    """Accumulator6.increment: value += amount / total (Fixed6 div, truncated toward zero)."""
    return Values(tdiv(amount_maker * UNIT, p.maker) if p.maker else 0,
                  tdiv(amount_long * UNIT, p.long) if p.long else 0,
                  tdiv(amount_short * UNIT, p.short) if p.short else 0)


def p_compute(c: PController, value: int, skew: int, from_ts: int, to_ts: int) -> tuple[int, int]:
    """PController6.compute: (the rate at ``to_ts`` clamped to [min, max], the UFixed6 timestamp at
    which the linear move reached the bound)."""
    elapsed = (to_ts - from_ts) * UNIT
    uncapped = value + (tdiv(tdiv(elapsed * skew, UNIT) * UNIT, c.k) if c.k else 0)
    new = max(min(uncapped, c.max), c.min)
    rng = uncapped - value
    to6 = to_ts * UNIT
    if rng == 0:
        return new, to6
    buffer = 0 if (value > c.max or value < c.min) else (c.max - value if rng > 0 else value - c.min)
    return new, min(from_ts * UNIT + elapsed * buffer // abs(rng), to6)


def _rate_times_notional(rate: int, from6: int, to6: int, notional: int) -> int:
    """PAccumulator6._accumulate: rate x elapsed x notional / 365 days (Fixed6 products)."""
    return tdiv(tdiv(tdiv(rate * (to6 - from6), UNIT) * notional, UNIT) * UNIT, YEAR * UNIT)


def funding(g: GlobalView, c: PController, to_ts: int) -> tuple[Values, int]:
    """VersionLib._accumulateFunding from the latest version to ``to_ts``: PAccumulator6.accumulate of
    the controller's rate on the socialised taker notional at the latest price (positive: longs
    pay), the minor side receiving up to its size and makers the rest. Returns the per-unit values
    and the new rate."""
    p, from_ts = g.position, g.position.timestamp
    if to_ts <= from_ts:
        return Values(), g.rate
    soc = taker_socialized(p)
    notional = soc * abs(g.price) // UNIT
    new, intercept = p_compute(c, g.rate, g.skew, from_ts, to_ts)
    f = (tdiv(_rate_times_notional(g.rate + new, from_ts * UNIT, intercept, notional), 2)
         + _rate_times_notional(new, intercept, to_ts * UNIT, notional))
    f_long, f_short = -f, f
    minor = min(p.long, p.short)
    maker_portion = 0 if soc == 0 else UNIT - minor * UNIT // soc
    if p.long > p.short:
        f_maker = tdiv(f_short * maker_portion, UNIT)
        f_short -= f_maker
    else:
        f_maker = tdiv(f_long * maker_portion, UNIT)
        f_long -= f_maker
    return _increment(f_maker, f_long, f_short, p), new


def step_values(g: GlobalView, risk: Risk, to_ts: int, to_price: int) -> Values:
    """The per-unit values a settlement from the latest version to a version at (``to_ts``,
    ``to_price``) accumulates, no order between: the socialised takers' price PnL (makers take the
    other side), then funding."""
    d = to_price - g.price
    long_soc, short_soc = socialized(g.position)
    pnl_long, pnl_short = tdiv(d * long_soc, UNIT), tdiv(-d * short_soc, UNIT)
    pnl = _increment(-(pnl_long + pnl_short), pnl_long, pnl_short, g.position)
    return pnl.plus(funding(g, risk.p_controller, to_ts)[0])


def accumulated(v: Values, p: Position) -> int:
    """CheckpointLib: accumulated values x the position held, each side truncated toward zero."""
    return tdiv(v.maker * p.maker, UNIT) + tdiv(v.long * p.long, UNIT) + tdiv(v.short * p.short, UNIT)


def collateral_at(collateral: int, position: Position, g: GlobalView, risk: Risk, to_ts: int, to_price: int) -> int:
    """The collateral of an account settled to the latest version (``collateral``) once the market
    settles a version at (``to_ts``, ``to_price``) with no order of its own between."""
    if to_ts <= g.position.timestamp:
        return collateral
    return collateral + accumulated(step_values(g, risk, to_ts, to_price), position)


# ---- keeper oracle fees -------------------------------------------------------------------------

def to6_round_up(amount18: int) -> int:
    """UFixed6Lib.from(UFixed18, roundOut = true)."""
    return -(-amount18 // 10**12)


def keeper_fees(sync_cost18: int, async_cost18: int, callbacks: int, max_settlement_fee: int) -> tuple[int, int]:
    """KeeperOracle._commitRequested: (syncFee, asyncFee) of a requested version from its gas
    oracles' cost (18 decimals), scaled down together when syncFee + asyncFee x callbacks exceeds
    the oracle factory's maxSettlementFee (PriceResponseLib.applyFeeMaximum)."""
    sync, async_ = to6_round_up(sync_cost18), to6_round_up(async_cost18)
    total = settlement_fee(sync, async_, callbacks)
    if total > max_settlement_fee:
        sync, async_ = sync * max_settlement_fee // total, async_ * max_settlement_fee // total
    return sync, async_


def settlement_fee(sync_fee: int, async_fee: int, callbacks: int) -> int:
    """PriceResponseLib.settlementFee: a requested version's receipt, syncFee + asyncFee x callbacks."""
    return sync_fee + async_fee * callbacks


def liquidation_fee(settlement_fee: int, multiple: int) -> int:
    """VersionLib._accumulateLiquidationFee: receipt.settlementFee x riskParameter.liquidationFee (0
    at an invalid version)."""
    return settlement_fee * multiple // UNIT


def pyth_price6(price: int, expo: int) -> int:
    """PythFactory._parsePrices then Fixed6Lib.from(Fixed18): significand x 10^(expo + 18) as an
    18-decimal value, truncated (toward zero) to 6 decimals."""
    e = expo + 18
    raw18 = price * 10**e if e >= 0 else tdiv(price, 10**-e)
    return tdiv(raw18, 10**12)


def is_stale(current: int, latest_timestamp: int, latest_valid: bool, stale_after: int) -> bool:
    """InvariantLib: !latest.valid || currentTimestamp - latest.timestamp >= staleAfter."""
    return not latest_valid or current - latest_timestamp >= stale_after


def current_version(timestamp: int, granularity: int) -> int:
    """KeeperFactory.current(): the timestamp rounded up to the granularity."""
    return -(-timestamp // granularity) * granularity


@dataclass(frozen=True)
class Commit:
    version: int
    requested: bool
    valid: bool = True  # False: a timed-out requested version committed without a price


def commit_plan(publish_time: int, latest: int, outstanding: list[int], now: int, timeout: int,
                valid_from: int, valid_to: int) -> list[Commit] | str:
    """The commits that make a price published at ``publish_time`` the market's latest version, or
    why none can (KeeperFactory: the publish time in [version + validFrom, version + validTo];
    KeeperOracle: requested versions (``outstanding``, oldest first) are committed in order, and once
    ``timeout`` has passed only without a price (invalid); an unrequested version must be newer than
    latest and older than the next requested one)."""
    commits = []
    pending = list(outstanding)
    while pending and now > pending[0] + timeout:
        commits.append(Commit(pending[0], True, False))
        latest = pending.pop(0)
    nxt = pending[0] if pending else 0
    if nxt and nxt + valid_from <= publish_time <= nxt + valid_to:
        return [*commits, Commit(nxt, True)]
    version = publish_time - valid_from
    if version <= latest:
        return "no newer price than the latest committed version"
    if nxt and version >= nxt:
        return (f"requested version {nxt} is outstanding and the price (published {publish_time}) "
                f"is outside its window [{nxt + valid_from}, {nxt + valid_to}]")
    return [*commits, Commit(version, False)]
