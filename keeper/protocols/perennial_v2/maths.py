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
class Risk:
    margin: int
    maintenance: int
    liquidation_fee: int  # multiple of the settlement fee
    min_margin: int
    min_maintenance: int
    stale_after: int

    @classmethod
    def from_tuple(cls, t: tuple) -> Risk:
        """riskParameter() answer -> the figures used here."""
        return cls(margin=t[0], maintenance=t[1], liquidation_fee=t[6], min_margin=t[9], min_maintenance=t[10],
                   stale_after=t[11])


@dataclass(frozen=True)
class OracleView:
    latest_timestamp: int
    latest_price: int  # Fixed6
    latest_valid: bool
    current: int


@dataclass(frozen=True)
class AccountView:
    position: Position
    local: Local


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


def pnl(position: Position, from_price: int, to_price: int) -> int:
    """Taker PnL of holding ``position`` from one version's price to another's (the stand-in realises
    skew x price change, truncated toward zero, at each settlement)."""
    return tdiv(position.skew * (to_price - from_price), UNIT)


def collateral_at(collateral: int, position: Position, checkpoint_price: int, price: int) -> int:
    """The account's collateral once settled to a version at ``price`` (no pending order between)."""
    return collateral + pnl(position, checkpoint_price, price)


def liquidation_fee(settlement_fee: int, multiple: int) -> int:
    """VersionLib._accumulateLiquidationFee: receipt.settlementFee x riskParameter.liquidationFee."""
    return settlement_fee * multiple // UNIT


def settlement_fee(sync_fee: int, async_fee: int, callbacks: int) -> int:
    """KeeperOracle receipt of a requested version: syncFee + asyncFee x settlement callbacks."""
    return sync_fee + async_fee * callbacks


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
class CommitChoice:
    version: int
    requested: bool


def commit_version(publish_time: int, latest: int, next_requested: int, valid_from: int, valid_to: int
                   ) -> CommitChoice | str:
    """Which version a price published at ``publish_time`` can be committed to (KeeperFactory
    _validatePrices: publish time in [version + validFrom, version + validTo]; KeeperOracle: a
    requested version is next(); an unrequested one must be newer than latest and older than next()),
    or why it cannot."""
    if next_requested and next_requested + valid_from <= publish_time <= next_requested + valid_to:
        return CommitChoice(next_requested, True)
    version = publish_time - valid_from
    if version <= latest:
        return "no newer price than the latest committed version"
    if next_requested and version >= next_requested:
        return (f"requested version {next_requested} is outstanding and the price (published {publish_time}) "
                f"is outside its window [{next_requested + valid_from}, {next_requested + valid_to}]")
    return CommitChoice(version, False)
