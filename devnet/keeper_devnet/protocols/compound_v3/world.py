"""Compound III (Comet) in the local world: the Solidity stand-in (Comet publishes no installable
package) with mainnet-like parameters, and the user actions that build positions through Comet's
real function signatures."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keeper_devnet.deploy import Deployer
from keeper_devnet.solc import Artifact, compile_contract
from keeper_devnet.tokens import Token, approve, mint

if TYPE_CHECKING:
    from keeper_devnet.world import World

COMET_CODE = "stand-in"
COMET_SOURCE = "devnet/keeper_devnet/protocols/compound_v3/CometStandIn.sol"
FACTOR = 10**18  # Comet's FACTOR_SCALE: collateral factors, rates and the store-front factor


@dataclass(frozen=True)
class CometAssetParams:
    """One collateral's AssetConfig (factors 1e18-scaled, kept by Comet with 4 decimals)."""
    borrow_cf: int
    liquidate_cf: int
    liquidation_factor: int
    supply_cap: int  # whole tokens (Comet keeps the cap in whole units)


@dataclass(frozen=True)
class CometRates:
    """Per-year kinked rate model (1e18-scaled), as in a deployment's configuration.json."""
    supply_kink: int
    supply_slope_low: int
    supply_slope_high: int
    supply_base: int
    borrow_kink: int
    borrow_slope_low: int
    borrow_slope_high: int
    borrow_base: int


def _f(x: str) -> int:
    """Decimal string -> 1e18-scaled integer, without float rounding."""
    whole, _, frac = x.partition(".")
    return int(whole) * FACTOR + int((frac + "0" * 18)[:18])


# cUSDCv3 on mainnet (compound-finance/comet deployments/mainnet/usdc/configuration.json), with
# WETH at the factors it has carried since (0.825 / 0.895 / 0.95).
DEFAULT_ASSET_PARAMS = {
    "WETH": CometAssetParams(_f("0.825"), _f("0.895"), _f("0.95"), 100_000),
    "WBTC": CometAssetParams(_f("0.7"), _f("0.77"), _f("0.95"), 10_000),
}
MAINNET_USDC_RATES = CometRates(
    supply_kink=_f("0.8"), supply_slope_low=_f("0.0325"), supply_slope_high=_f("0.4"), supply_base=0,
    borrow_kink=_f("0.8"), borrow_slope_low=_f("0.035"), borrow_slope_high=_f("0.25"), borrow_base=_f("0.015"),
)


@dataclass
class CometDeployment:
    comet: str
    base: Token
    collaterals: dict[str, Token]
    code: str = COMET_CODE


async def comet_artifact() -> Artifact:
    return await compile_contract(COMET_SOURCE, "CometStandIn")


async def comet_abi() -> list:
    return (await comet_artifact()).abi


async def deploy_comet(
    d: Deployer,
    tokens: dict[str, Token],
    *,
    base: str = "USDC",
    collaterals: tuple[str, ...] = ("WETH", "WBTC"),
    target_reserves: int = 5_000_000 * 10**6,
    store_front_price_factor: int = 6 * 10**17,
    base_borrow_min: int = 100 * 10**6,
    rates: CometRates = MAINNET_USDC_RATES,
    asset_params: dict[str, CometAssetParams] | None = None,
    governor: str | None = None,
) -> CometDeployment:
    """Deploy the stand-in with ``tokens[base]`` as base and ``collaterals`` in that order
    (getAssetInfo(i) follows it). ``target_reserves`` and ``base_borrow_min`` are in base units."""
    params = asset_params or DEFAULT_ASSET_PARAMS
    gov = governor or d.sender
    base_token = tokens[base]
    asset_configs = [
        (t.address, t.feed, t.decimals, p.borrow_cf, p.liquidate_cf, p.liquidation_factor,
         p.supply_cap * 10**t.decimals)
        for t, p in ((tokens[s], params[s]) for s in collaterals)
    ]
    config = (
        gov, gov, base_token.address, base_token.feed,
        rates.supply_kink, rates.supply_slope_low, rates.supply_slope_high, rates.supply_base,
        rates.borrow_kink, rates.borrow_slope_low, rates.borrow_slope_high, rates.borrow_base,
        store_front_price_factor, base_borrow_min, target_reserves, asset_configs,
    )
    addr = await d.deploy(await comet_artifact(), config)
    return CometDeployment(addr, base_token, {s: tokens[s] for s in collaterals})


async def comet_call(d: Deployer, dep: CometDeployment, fn: str, *args) -> Any:
    return await d.call(dep.comet, await comet_abi(), fn, *args)


async def comet_transact(d: Deployer, dep: CometDeployment, fn: str, *args, sender: str | None = None) -> dict:
    return await d.transact(dep.comet, await comet_abi(), fn, *args, sender=sender)


async def _supply(d: Deployer, dep: CometDeployment, user: str, token: Token, amount: int) -> dict:
    await mint(d, token, user, amount)
    await approve(d, token, user, dep.comet, amount)
    return await comet_transact(d, dep, "supply", token.address, amount, sender=user)


async def supply_base(d: Deployer, dep: CometDeployment, user: str, amount: int) -> dict:
    """Mint ``amount`` base units to a lender and supply them (repays debt first, as Comet does)."""
    return await _supply(d, dep, user, dep.base, amount)


async def supply_collateral(d: Deployer, dep: CometDeployment, user: str, symbol: str, amount: int) -> dict:
    """Mint ``amount`` units of collateral ``symbol`` to ``user`` and supply them."""
    return await _supply(d, dep, user, dep.collaterals[symbol], amount)


async def borrow(d: Deployer, dep: CometDeployment, user: str, amount: int) -> dict:
    """Borrow = withdraw base beyond the supplied balance (emits Withdraw(src, to, amount))."""
    return await comet_transact(d, dep, "withdraw", dep.base.address, amount, sender=user)


async def fund_reserves(d: Deployer, dep: CometDeployment, amount: int) -> None:
    """Raise getReserves() by ``amount``: base held beyond net supply is reserves in Comet."""
    await mint(d, dep.base, dep.comet, amount)


async def withdraw_reserves(d: Deployer, dep: CometDeployment, to: str, amount: int) -> dict:
    """Lower getReserves() by ``amount`` (governor only; reverts InsufficientReserves beyond them)."""
    return await comet_transact(d, dep, "withdrawReserves", to, amount)


# Demo borrowers: (collateral in whole tokens, USDC debt). At WETH $3,000 / WBTC $60,000 the borrow
# limit of 10 WETH is 10 x 3000 x 0.825 = $24,750. After a 30% WETH drop (to $2,100) 10 WETH is
# liquidatable below 10 x 2100 x 0.895 = $18,795 of debt; WBTC counts at 0.77.
COMET_DEMO_POSITIONS: list[tuple[dict[str, float], int]] = [
    ({"WETH": 10}, 12_000),  # healthy
    ({"WETH": 10}, 18_000),  # healthy after the drop, just
    ({"WETH": 10}, 20_000),  # liquidatable after the drop
    ({"WETH": 10}, 24_000),  # liquidatable
    ({"WBTC": 1}, 40_000),  # untouched by the WETH drop (limit $46,200)
    ({"WETH": 10, "WBTC": 0.2}, 28_500),  # liquidatable: 18,795 + 9,240 = $28,035 < $28,500
    ({"WETH": 0.2}, 450),  # small: 0.2 x 2100 x 0.895 = $375.9 < $450
]


async def open_comet_position(d: Deployer, dep: CometDeployment, user: str, collateral: dict[str, float],
                              debt: int) -> None:
    """Supply whole-token amounts of collateral, then borrow ``debt`` whole base tokens."""
    for sym, amount in collateral.items():
        await supply_collateral(d, dep, user, sym, dep.collaterals[sym].units(amount))
    await borrow(d, dep, user, dep.base.units(debt))


async def add_comet_to_world(d: Deployer, world: World, *, positions=COMET_DEMO_POSITIONS,
                             lender_liquidity: int = 1_000_000, keeper_base: int = 0,
                             **deploy_kw) -> CometDeployment:
    """Deploy the Comet stand-in on the world's tokens (USDC base; WETH, WBTC collateral), supply
    ``lender_liquidity`` whole USDC from a lender, open ``positions`` from fresh accounts, mint
    ``keeper_base`` whole USDC to the keeper wallet, and register the market in the world:
    extra["comet"], extra["comet_borrowers"], contracts and entries["compound_v3"]."""
    dep = await deploy_comet(d, world.tokens, **deploy_kw)
    lender, *users = world.take_accounts(1 + len(positions))
    await supply_base(d, dep, lender, dep.base.units(lender_liquidity))
    for user, (collateral, debt) in zip(users, positions):
        await open_comet_position(d, dep, user, collateral, debt)
    if keeper_base:
        await mint(d, dep.base, world.keeper_address, dep.base.units(keeper_base))
    world.extra["comet"] = dep
    world.extra["comet_borrowers"] = users
    world.contracts["compound_v3"] = dep.code
    world.entries["compound_v3"] = comet_config_entry(dep)
    return dep


def comet_config_entry(dep: CometDeployment, *, name: str = "compound_v3", absorb_without_profit: bool = False,
                       buy_slippage_bps: int = 50, max_absorb_batch: int = 10) -> str:
    """The `[[protocols]]` TOML block that points the keeper at ``dep``."""
    return f"""
[[protocols]]
kind = "compound_v3"
name = "{name}"
comet = "{dep.comet}"
start_block = 0
absorb_without_profit = {str(absorb_without_profit).lower()}
buy_slippage_bps = {buy_slippage_bps}
max_absorb_batch = {max_absorb_batch}
"""
