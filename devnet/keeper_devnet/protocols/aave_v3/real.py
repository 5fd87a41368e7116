"""The real Aave V3 (@aave/core-v3 1.19.3, code line v3.0) deployed from the package's artifacts:
PoolAddressesProvider, Pool and PoolConfigurator behind their proxies (logic libraries linked),
ACLManager, AaveOracle over Chainlink-style feeds, AaveProtocolDataProvider, one reserve per test
token with its aToken / debt tokens and a rate strategy, flash loans enabled with a premium."""
from __future__ import annotations

from keeper_devnet.artifacts import npm_artifact
from keeper_devnet.deploy import Deployer
from keeper_devnet.protocols.aave_v3.common import (
    DEFAULT_RESERVE_PARAMS,
    AaveDeployment,
    EModeParams,
    ReserveParams,
)
from keeper_devnet.solc import Artifact
from keeper_devnet.tokens import Token

AAVE_PACKAGE = "@aave/core-v3@1.19.3"
_A = "@aave/core-v3/artifacts/contracts"
TREASURY = "0x000000000000000000000000000000000000a77E"
RAY = 10**27
LIBRARIES = ["BorrowLogic", "BridgeLogic", "EModeLogic", "LiquidationLogic", "PoolLogic", "SupplyLogic",
             "ConfiguratorLogic"]


def art(path: str) -> Artifact:
    return npm_artifact(f"{_A}/{path}")


def pool_artifact() -> Artifact:
    return art("protocol/pool/Pool.sol/Pool.json")


def oracle_artifact() -> Artifact:
    return art("misc/AaveOracle.sol/AaveOracle.json")


def provider_artifact() -> Artifact:
    return art("protocol/configuration/PoolAddressesProvider.sol/PoolAddressesProvider.json")


def configurator_artifact() -> Artifact:
    return art("protocol/pool/PoolConfigurator.sol/PoolConfigurator.json")


def atoken_artifact() -> Artifact:
    return art("protocol/tokenization/AToken.sol/AToken.json")


def variable_debt_artifact() -> Artifact:
    return art("protocol/tokenization/VariableDebtToken.sol/VariableDebtToken.json")


async def deploy_aave_v3(d: Deployer, tokens: dict[str, Token],
                         params: dict[str, ReserveParams] = DEFAULT_RESERVE_PARAMS, *,
                         flash_premium_bps: int = 5) -> AaveDeployment:
    admin = d.sender
    prov_art = provider_artifact()
    provider = await d.deploy(prov_art, "Local", admin)
    call = lambda fn, *a: d.transact(provider, prov_art.abi, fn, *a)  # noqa: E731

    libs: dict[str, str] = {}
    for name in LIBRARIES:
        libs[name] = await d.deploy(art(f"protocol/libraries/logic/{name}.sol/{name}.json"))
    libs["FlashLoanLogic"] = await d.deploy(
        art("protocol/libraries/logic/FlashLoanLogic.sol/FlashLoanLogic.json"), libraries=libs)

    pool_impl = await d.deploy(pool_artifact(), provider, libraries=libs)
    await call("setPoolImpl", pool_impl)  # creates and initializes the proxy
    pool = await d.call(provider, prov_art.abi, "getPool")
    cfg_art = configurator_artifact()
    await call("setPoolConfiguratorImpl", await d.deploy(cfg_art, libraries=libs))
    cfg = await d.call(provider, prov_art.abi, "getPoolConfigurator")
    configure = lambda fn, *a: d.transact(cfg, cfg_art.abi, fn, *a)  # noqa: E731

    await call("setACLAdmin", admin)  # ACLManager's constructor reverts without it
    acl_art = art("protocol/configuration/ACLManager.sol/ACLManager.json")
    acl = await d.deploy(acl_art, provider)
    await call("setACLManager", acl)
    await d.transact(acl, acl_art.abi, "addPoolAdmin", admin)

    assets = [t.address for t in tokens.values()]
    oracle = await d.deploy(oracle_artifact(), provider, assets, [t.feed for t in tokens.values()],
                            "0x0000000000000000000000000000000000000000",
                            "0x0000000000000000000000000000000000000000", 10**8)
    await call("setPriceOracle", oracle)
    data_provider = await d.deploy(art("misc/AaveProtocolDataProvider.sol/AaveProtocolDataProvider.json"), provider)
    await call("setPoolDataProvider", data_provider)

    a_impl = await d.deploy(atoken_artifact(), pool)
    s_impl = await d.deploy(art("protocol/tokenization/StableDebtToken.sol/StableDebtToken.json"), pool)
    v_impl = await d.deploy(variable_debt_artifact(), pool)
    strategy = await d.deploy(
        art("protocol/pool/DefaultReserveInterestRateStrategy.sol/DefaultReserveInterestRateStrategy.json"),
        provider, 80 * RAY // 100, 0, 4 * RAY // 100, 60 * RAY // 100,  # optimal 80%, slopes 4% / 60%
        2 * RAY // 100, 60 * RAY // 100, 2 * RAY // 100, 8 * RAY // 100, 20 * RAY // 100)
    await configure("initReserves", [
        (a_impl, s_impl, v_impl, t.decimals, strategy, t.address, TREASURY,
         "0x0000000000000000000000000000000000000000", f"Aave {t.symbol}", f"a{t.symbol}",
         f"Aave variable debt {t.symbol}", f"variableDebt{t.symbol}",
         f"Aave stable debt {t.symbol}", f"stableDebt{t.symbol}", b"")
        for t in tokens.values()])
    for sym, t in tokens.items():
        p = params[sym]
        await configure("configureReserveAsCollateral", t.address, p.ltv, p.liquidation_threshold,
                        p.liquidation_bonus)
        await configure("setReserveBorrowing", t.address, True)
        await configure("setLiquidationProtocolFee", t.address, p.protocol_fee)
        await configure("setReserveFlashLoaning", t.address, True)
    await configure("updateFlashloanPremiumTotal", flash_premium_bps)
    pool_abi = pool_artifact().abi
    reserve = {sym: await d.call(pool, pool_abi, "getReserveData", t.address) for sym, t in tokens.items()}
    variable_debt = {sym: r[10] for sym, r in reserve.items()}
    a_tokens = {sym: r[8] for sym, r in reserve.items()}
    return AaveDeployment(provider=provider, pool=pool, oracle=oracle, tokens=tokens, code=AAVE_PACKAGE,
                          rules="v3.0", extra={"configurator": cfg, "data_provider": data_provider,
                                               "acl_manager": acl, "treasury": TREASURY,
                                               "variable_debt": variable_debt, "a_tokens": a_tokens})


async def configure_emode(d: Deployer, dep: AaveDeployment, category: int, e: EModeParams) -> None:
    """v3.0 eMode through the real PoolConfigurator: setEModeCategory (no price source), then
    setAssetEModeCategory for each collateral asset (a reserve belongs to one category; the
    configurator requires the category's threshold above the reserve's). In v3.0 the borrowable
    assets are the same reserves: ``borrowable`` is assigned too."""
    cfg_abi = configurator_artifact().abi
    cfg = dep.extra["configurator"]
    await d.transact(cfg, cfg_abi, "setEModeCategory", category, e.ltv, e.liquidation_threshold,
                     e.liquidation_bonus, "0x0000000000000000000000000000000000000000", e.label)
    for sym in dict.fromkeys(e.collateral + e.borrowable):
        await d.transact(cfg, cfg_abi, "setAssetEModeCategory", dep.tokens[sym].address, category)
