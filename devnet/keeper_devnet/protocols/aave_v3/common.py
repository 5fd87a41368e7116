"""What the real Aave V3 deployment and the v3.3 stand-in have in common in the local world:
the deployment record, the reserve parameters and the user actions (through the Pool's real ABI)."""
from __future__ import annotations

from dataclasses import dataclass, field

from keeper_devnet.deploy import Deployer
from keeper_devnet.tokens import Token, approve, mint

# Pool functions used to build positions, exactly as Aave V3's IPool declares them.
POOL_USER_ABI = [
    {"type": "function", "name": "supply", "stateMutability": "nonpayable", "outputs": [],
     "inputs": [{"name": "asset", "type": "address"}, {"name": "amount", "type": "uint256"},
                {"name": "onBehalfOf", "type": "address"}, {"name": "referralCode", "type": "uint16"}]},
    {"type": "function", "name": "borrow", "stateMutability": "nonpayable", "outputs": [],
     "inputs": [{"name": "asset", "type": "address"}, {"name": "amount", "type": "uint256"},
                {"name": "interestRateMode", "type": "uint256"}, {"name": "referralCode", "type": "uint16"},
                {"name": "onBehalfOf", "type": "address"}]},
    {"type": "function", "name": "setUserEMode", "stateMutability": "nonpayable", "outputs": [],
     "inputs": [{"name": "categoryId", "type": "uint8"}]},
    {"type": "function", "name": "getUserAccountData", "stateMutability": "view",
     "inputs": [{"name": "user", "type": "address"}],
     "outputs": [{"name": "totalCollateralBase", "type": "uint256"}, {"name": "totalDebtBase", "type": "uint256"},
                 {"name": "availableBorrowsBase", "type": "uint256"},
                 {"name": "currentLiquidationThreshold", "type": "uint256"},
                 {"name": "ltv", "type": "uint256"}, {"name": "healthFactor", "type": "uint256"}]},
]


@dataclass(frozen=True)
class ReserveParams:
    ltv: int  # bps
    liquidation_threshold: int  # bps
    liquidation_bonus: int  # bps, 10500 = +5%
    protocol_fee: int = 1000  # bps of the bonus part (Aave's liquidationProtocolFee)


DEFAULT_RESERVE_PARAMS = {
    "USDC": ReserveParams(7700, 8000, 10450),
    "WBTC": ReserveParams(7000, 7500, 10650),
    "WETH": ReserveParams(8000, 8250, 10500),
}


@dataclass
class AaveDeployment:
    provider: str  # PoolAddressesProvider: the one address an operator configures
    pool: str
    oracle: str
    tokens: dict[str, Token]
    code: str  # "@aave/core-v3@1.19.3" or "stand-in"
    rules: str  # close-factor rule set the code implements: "v3.0" or "v3.3"
    extra: dict[str, str] = field(default_factory=dict)  # configurator, data provider, ...


async def supply(d: Deployer, dep: AaveDeployment, user: str, token: Token, amount: int) -> None:
    await mint(d, token, user, amount)
    await approve(d, token, user, dep.pool, amount)
    await d.transact(dep.pool, POOL_USER_ABI, "supply", token.address, amount, user, 0, sender=user)


async def borrow(d: Deployer, dep: AaveDeployment, user: str, token: Token, amount: int) -> None:
    await d.transact(dep.pool, POOL_USER_ABI, "borrow", token.address, amount, 2, 0, user, sender=user)


async def set_user_emode(d: Deployer, dep: AaveDeployment, user: str, category: int) -> None:
    await d.transact(dep.pool, POOL_USER_ABI, "setUserEMode", category, sender=user)


@dataclass(frozen=True)
class EModeParams:
    """An eMode category: ltv, liquidation threshold, bonus (bps) and its assets by symbol
    (v3.0: the reserves assigned to it; v3.2+: its collateral and borrowable bitmaps)."""
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    collateral: tuple[str, ...]
    borrowable: tuple[str, ...] = ()
    label: str = "test"


async def account_data(d: Deployer, dep: AaveDeployment, user: str) -> tuple:
    return tuple(await d.call(dep.pool, POOL_USER_ABI, "getUserAccountData", user))
