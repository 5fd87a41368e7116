"""Aave V3 with the v3.3 liquidation rules in the local world: a Solidity stand-in
(contracts/aave_v33) with the Pool ABI of @aave/core-v3 1.19.3, so one keeper adapter drives both
this and the real package. Prices come from the package's real AaveOracle over the tokens'
Chainlink-style feeds, registered in the stand-in PoolAddressesProvider."""
from __future__ import annotations

from keeper_devnet.artifacts import npm_artifact
from keeper_devnet.deploy import Deployer
from keeper_devnet.protocols.aave_v3.common import (
    DEFAULT_RESERVE_PARAMS,
    AaveDeployment,
    EModeParams,
    ReserveParams,
)
from keeper_devnet.solc import Artifact, artifact, compile_standard_json
from keeper_devnet.tokens import Token

STANDIN_CODE = "stand-in"
RULES = "v3.3"
TREASURY = "0x000000000000000000000000000000000000a77E"
ZERO = "0x0000000000000000000000000000000000000000"
BASE_CURRENCY_UNIT = 10**8  # USD, 8 decimals

_DIR = "devnet/keeper_devnet/protocols/aave_v3"
POOL_SOURCE = f"{_DIR}/PoolV33StandIn.sol"
PROVIDER_SOURCE = f"{_DIR}/PoolAddressesProviderStandIn.sol"
TOKENS_SOURCE = f"{_DIR}/PoolTokensStandIn.sol"
AAVE_ORACLE = "@aave/core-v3/artifacts/contracts/misc/AaveOracle.sol/AaveOracle.json"

async def _compiled() -> dict:
    return await compile_standard_json([POOL_SOURCE, PROVIDER_SOURCE, TOKENS_SOURCE])


async def pool_artifact() -> Artifact:
    return artifact(await _compiled(), POOL_SOURCE, "PoolV33StandIn")


async def provider_artifact() -> Artifact:
    return artifact(await _compiled(), PROVIDER_SOURCE, "PoolAddressesProviderStandIn")


async def atoken_artifact() -> Artifact:
    return artifact(await _compiled(), TOKENS_SOURCE, "ATokenStandIn")


async def variable_debt_artifact() -> Artifact:
    return artifact(await _compiled(), TOKENS_SOURCE, "VariableDebtTokenStandIn")


def oracle_artifact() -> Artifact:
    """The real AaveOracle of @aave/core-v3 1.19.3 (its constructor only stores the provider)."""
    return npm_artifact(AAVE_ORACLE)


def reserve_configuration(p: ReserveParams, decimals: int) -> int:
    """ReserveConfiguration bitmap: ltv 0-15, liquidation threshold 16-31, bonus 32-47,
    decimals 48-55, active 56, frozen 57, borrowing enabled 58, paused 60, protocol fee 152-167."""
    return (p.ltv | p.liquidation_threshold << 16 | p.liquidation_bonus << 32 | decimals << 48
            | 1 << 56 | 1 << 58 | p.protocol_fee << 152)


def _id(name: str) -> bytes:
    return name.encode().ljust(32, b"\0")


async def deploy_aave_v33_standin(d: Deployer, tokens: dict[str, Token],
                                  params: dict[str, ReserveParams] = DEFAULT_RESERVE_PARAMS) -> AaveDeployment:
    """Provider (owner = d.sender), Pool, the real AaveOracle over the tokens' feeds, a mock stable
    debt token, and one reserve per token (in ``tokens`` order, so reserve ids follow it) with its
    aToken and variable debt token and ``params``; protocol fees go to TREASURY as aTokens."""
    prov_art, pool_art = await provider_artifact(), await pool_artifact()
    a_art, v_art = await atoken_artifact(), await variable_debt_artifact()
    provider = await d.deploy(prov_art, "Local v3.3 stand-in", d.sender)
    pool = await d.deploy(pool_art, provider)
    await d.transact(provider, prov_art.abi, "setAddress", _id("POOL"), pool)
    oracle = await d.deploy(oracle_artifact(), provider, [t.address for t in tokens.values()],
                            [t.feed for t in tokens.values()], ZERO, ZERO, BASE_CURRENCY_UNIT)
    await d.transact(provider, prov_art.abi, "setPriceOracle", oracle)
    # v3.2+: getReserveData reports this never-minted token as the stable debt token.
    mock_stable = await d.deploy(v_art, pool, ZERO, "Mock stable debt", "MOCK_STABLE_DEBT", 18)
    await d.transact(provider, prov_art.abi, "setAddress", _id("MOCK_STABLE_DEBT"), mock_stable)

    a_tokens: dict[str, str] = {}
    variable_debt: dict[str, str] = {}
    for sym, t in tokens.items():
        a_tokens[sym] = await d.deploy(a_art, pool, t.address, TREASURY, f"Aave {sym}", f"a{sym}", t.decimals)
        variable_debt[sym] = await d.deploy(v_art, pool, t.address, f"Aave variable debt {sym}",
                                            f"variableDebt{sym}", t.decimals)
        await d.transact(pool, pool_art.abi, "initReserve", t.address, a_tokens[sym], variable_debt[sym])
        await d.transact(pool, pool_art.abi, "setConfiguration", t.address,
                         (reserve_configuration(params[sym], t.decimals),))
    return AaveDeployment(provider=provider, pool=pool, oracle=oracle, tokens=tokens, code=STANDIN_CODE,
                          rules=RULES, extra={"treasury": TREASURY, "a_tokens": a_tokens,
                                              "variable_debt": variable_debt, "mock_stable_debt": mock_stable})


async def configure_emode(d: Deployer, dep: AaveDeployment, category: int, e: EModeParams) -> None:
    """v3.2+ eMode on the stand-in (its admin stands in for the PoolConfigurator): the category's
    ltv / threshold / bonus, and its collateral and borrowable bitmaps (bit = reserve id)."""
    abi = (await pool_artifact()).abi
    ids = {sym: i for i, sym in enumerate(dep.tokens)}  # reserve ids follow the tokens' order
    bitmap = lambda syms: sum(1 << ids[s] for s in set(syms))  # noqa: E731
    await d.transact(dep.pool, abi, "configureEModeCategory", category,
                     (e.ltv, e.liquidation_threshold, e.liquidation_bonus, e.label))
    await d.transact(dep.pool, abi, "configureEModeCategoryCollateralBitmap", category, bitmap(e.collateral))
    await d.transact(dep.pool, abi, "configureEModeCategoryBorrowableBitmap", category, bitmap(e.borrowable))
