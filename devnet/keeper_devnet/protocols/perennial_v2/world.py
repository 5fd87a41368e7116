"""Perennial V2 in the local world: the Solidity stand-ins (contracts/perennial: Perennial publishes
no deployable package) for one WETH-USD market settled in DSU (a TestERC20 with 18 decimals),
created through a MarketFactory and priced by a Pyth keeper oracle that verifies MockPyth updates;
helpers to open taker positions and commit prices as Perennial's users and oracle keepers do."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_utils import keccak, to_checksum_address

from keeper_devnet.deploy import Deployer
from keeper_devnet.pyth import mock_pyth_artifact, price_update_data
from keeper_devnet.solc import Artifact, artifact, compile_standard_json
from keeper_devnet.tokens import Token, approve, erc20_artifact, mint

if TYPE_CHECKING:
    from keeper_devnet.world import World

PERENNIAL_CODE = "stand-in"
MARKET_SOURCE = "devnet/keeper_devnet/protocols/perennial_v2/MarketStandIn.sol"
ORACLE_SOURCE = "devnet/keeper_devnet/protocols/perennial_v2/KeeperOracleStandIn.sol"
FACTORY_SOURCE = "devnet/keeper_devnet/protocols/perennial_v2/MarketFactoryStandIn.sol"
# The MarketFactory's creation events (root IFactory, IMarketFactory with MarketDefinition(token, oracle)).
INSTANCE_REGISTERED = "0x" + keccak(b"InstanceRegistered(address)").hex()
MARKET_CREATED = "0x" + keccak(b"MarketCreated(address,(address,address))").hex()
UNIT = 10**6  # UFixed6 / Fixed6
DSU_TO_18 = 10**12
# Pyth's ETH/USD price feed id, and the id of the Perennial oracle built on it.
ETH_USD_FEED = "0xff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace"
ORACLE_ID = "0x" + keccak(b"perennial-devnet:ETH-USD").hex()


@dataclass(frozen=True)
class PerennialRisk:
    """RiskParameter figures the keeper relies on (UFixed6 unless said); the rest are zero."""
    margin: int = 100_000  # 10% of notional to open
    maintenance: int = 50_000  # 5% of notional to stay open
    liquidation_fee: int = 10 * UNIT  # 10 x the version's settlement fee
    min_margin: int = 10 * UNIT  # DSU
    min_maintenance: int = 10 * UNIT  # DSU
    stale_after: int = 60  # seconds

    def as_tuple(self) -> tuple:
        return (self.margin, self.maintenance, (0, 0, 0, 0), (0, 0, 0), 0, 0, self.liquidation_fee,
                (0, 0, 0, 0), (0, 0, 0), self.min_margin, self.min_maintenance, self.stale_after, False)


@dataclass(frozen=True)
class PerennialOracleParams:
    granularity: int = 10  # seconds per version
    valid_from: int = 4  # publish time window relative to the version
    valid_to: int = 10
    timeout: int = 60  # a requested version left uncommitted this long can only be committed invalid
    sync_fee: int = 1 * UNIT  # DSU per requested version (the commit keeper's fee)
    async_fee: int = 0  # DSU per settlement callback (0: the reward does not depend on batching)


@dataclass
class PerennialDeployment:
    market: str
    oracle: str  # the keeper oracle (factory side and oracle side in one stand-in)
    pyth: str  # MockPyth
    dsu: Token
    weth: Token  # the Chainlink feed MockPyth prices are taken from
    feed_id: str
    oracle_id: str
    risk: PerennialRisk
    oracle_params: PerennialOracleParams
    factory: str = ""  # the MarketFactory that created the market
    code: str = PERENNIAL_CODE


async def perennial_artifacts() -> dict[str, Artifact]:
    # via-IR for the Market's update path; cancun for OpenZeppelin's EnumerableSet (mcopy).
    out = await compile_standard_json([MARKET_SOURCE, ORACLE_SOURCE, FACTORY_SOURCE], evm_version="cancun",
                                      via_ir=True)
    return {"market": artifact(out, MARKET_SOURCE, "MarketStandIn"),
            "oracle": artifact(out, ORACLE_SOURCE, "KeeperOracleStandIn"),
            "factory": artifact(out, FACTORY_SOURCE, "MarketFactoryStandIn")}


async def market_abi() -> list:
    return (await perennial_artifacts())["market"].abi


async def oracle_abi() -> list:
    return (await perennial_artifacts())["oracle"].abi


async def factory_abi() -> list:
    return (await perennial_artifacts())["factory"].abi


async def deploy_dsu(d: Deployer) -> Token:
    """DSU: an 18-decimal TestERC20 valued at 1 USD (no feed)."""
    addr = await d.deploy(await erc20_artifact(), "Test DSU", "DSU", 18)
    return Token("DSU", addr, 18, "", 1_00000000)


async def deploy_perennial(d: Deployer, tokens: dict[str, Token], pyth: str, *,
                           risk: PerennialRisk = PerennialRisk(),
                           oracle_params: PerennialOracleParams = PerennialOracleParams(),
                           maker_pool: int = 10_000 * UNIT, dsu: Token | None = None,
                           feed_id: str = ETH_USD_FEED, factory: str | None = None) -> PerennialDeployment:
    """A WETH-USD market priced from the Pyth feed ``feed_id`` on MockPyth ``pyth`` (updates are
    built from ``tokens['WETH']``'s Chainlink feed), settled in DSU, created by the MarketFactory
    ``factory`` (a new one unless given; the deployer must own it) as Perennial's owner does:
    create(definition), then updateRiskParameter; a first price committed."""
    arts = await perennial_artifacts()
    dsu = dsu or await deploy_dsu(d)
    p = oracle_params
    oracle = await d.deploy(arts["oracle"], pyth, bytes.fromhex(ORACLE_ID[2:]), bytes.fromhex(feed_id[2:]),
                            p.granularity, p.valid_from, p.valid_to, p.timeout, p.sync_fee, p.async_fee)
    if factory is None:
        factory = await d.deploy(arts["factory"], maker_pool)
    else:
        await d.transact(factory, arts["factory"].abi, "updateMakerPool", maker_pool)
    market = await create_market(d, factory, dsu.address, oracle)
    await d.transact(market, arts["market"].abi, "updateRiskParameter", risk.as_tuple())
    await d.transact(oracle, arts["oracle"].abi, "register", market)
    dep = PerennialDeployment(market, oracle, pyth, dsu, tokens["WETH"], feed_id, ORACLE_ID, risk, p, factory)
    await commit_price(d, dep)
    return dep


async def create_market(d: Deployer, factory: str, token: str, oracle: str) -> str:
    """MarketFactory.create((token, oracle)); the new market's address, read from MarketCreated."""
    rc = await d.transact(factory, await factory_abi(), "create", (token, oracle))
    for lg in rc["logs"]:
        topics = ["0x" + t.hex().removeprefix("0x") for t in lg["topics"]]
        if lg["address"] == factory and topics and topics[0] == MARKET_CREATED:
            return to_checksum_address("0x" + topics[1][-40:])
    raise RuntimeError(f"create on {factory} emitted no MarketCreated")


async def market_call(d: Deployer, dep: PerennialDeployment, fn: str, *args) -> Any:
    return await d.call(dep.market, await market_abi(), fn, *args)


async def oracle_call(d: Deployer, dep: PerennialDeployment, fn: str, *args) -> Any:
    return await d.call(dep.oracle, await oracle_abi(), fn, *args)


async def market_transact(d: Deployer, dep: PerennialDeployment, fn: str, *args, sender: str | None = None) -> dict:
    return await d.transact(dep.market, await market_abi(), fn, *args, sender=sender)


async def _now(d: Deployer) -> int:
    return (await d.w3.eth.get_block("latest"))["timestamp"]


async def _advance_to(d: Deployer, timestamp: int) -> None:
    if await _now(d) < timestamp:
        await d.rpc("evm_setNextBlockTimestamp", [timestamp])
        await d.rpc("evm_mine", [])


async def commit_price(d: Deployer, dep: PerennialDeployment, price_8: int | None = None, *,
                       sender: str | None = None) -> tuple[int, bool]:
    """What Perennial's oracle keepers do: commit the next requested version (moving time to its
    publish window if needed) or, if none is outstanding, a fresh unrequested version, with a MockPyth
    update at ``price_8`` (default: the WETH feed's price) published at the block's timestamp.
    Returns (version, requested)."""
    p = dep.oracle_params
    requested = await oracle_call(d, dep, "next")
    if requested:
        await _advance_to(d, requested + p.valid_from)
        version = requested
    else:  # a version newer than the latest (block timestamps may repeat on Anvil)
        latest = (await oracle_call(d, dep, "global"))[2]
        await _advance_to(d, latest + p.valid_from + 1)
        version = await _now(d) - p.valid_from
    publish = await _now(d)
    price = dep.weth.price if price_8 is None else price_8
    data = await price_update_data(d, dep.pyth, dep.feed_id, price, 0, -8, publish)
    fee = await d.call(dep.pyth, mock_pyth_artifact().abi, "getUpdateFee", [data])
    await d.transact(dep.oracle, await oracle_abi(), "commit", [bytes.fromhex(dep.oracle_id[2:])], version, data,
                     value=fee, sender=sender)
    return version, bool(requested)


async def deposit_and_trade(d: Deployer, dep: PerennialDeployment, user: str, *, long: int = 0, short: int = 0,
                            collateral: int = 0) -> dict:
    """update(user, 0, long, short, collateral, false) with ``collateral`` DSU (6 decimals) minted
    and approved first (the market pulls collateral x 1e12 of the 18-decimal token)."""
    if collateral > 0:
        await mint(d, dep.dsu, user, collateral * DSU_TO_18)
        await approve(d, dep.dsu, user, dep.market, collateral * DSU_TO_18)
    return await market_transact(d, dep, "update", user, 0, long, short, collateral, False, sender=user)


async def settle(d: Deployer, dep: PerennialDeployment, accounts: list[str]) -> None:
    for a in accounts:
        await market_transact(d, dep, "settle", a)


# Demo traders: (side, size in ETH, collateral in DSU). WETH at $3,000, maintenance 5%, margin 10%.
# After a 30% drop (to $2,100) a long loses $900 per ETH; it stays maintained while
# collateral - 900 x size >= max(2,100 x 0.05 x size, 10).
PERENNIAL_DEMO_POSITIONS: list[tuple[str, float, int]] = [
    ("long", 1, 900),  # 0 after the drop < 105: liquidatable
    ("long", 2, 1_900),  # 100 < 210: liquidatable
    ("long", 1, 1_200),  # 300 >= 105: healthy
    ("long", 0.5, 1_000),  # 550 >= 52.5: healthy
    ("short", 1, 500),  # gains: healthy
    ("long", 3, 3_000),  # 300 < 315: liquidatable, just
]
DEMO_UNHEALTHY = (0, 1, 5)


async def open_positions(d: Deployer, dep: PerennialDeployment, users: list[str],
                         positions: list[tuple[str, float, int]]) -> None:
    """Open every position, commit the version they requested, settle them."""
    for user, (side, size, collateral) in zip(users, positions):
        amount = round(size * UNIT)
        await deposit_and_trade(d, dep, user, long=amount if side == "long" else 0,
                                short=amount if side == "short" else 0, collateral=collateral * UNIT)
    while await oracle_call(d, dep, "next"):
        await commit_price(d, dep)
    await settle(d, dep, users)


async def add_perennial_to_world(d: Deployer, world: World, *, positions=PERENNIAL_DEMO_POSITIONS,
                                 pyth: str | None = None, claim_min_gas_multiple: str = "2",
                                 **deploy_kw) -> PerennialDeployment:
    """Deploy MockPyth (unless given) and the Perennial stand-in on the world's WETH feed, open
    ``positions`` from fresh accounts, and register the market in the world: extra["perennial"],
    extra["perennial_accounts"], contracts and entries["perennial_v2"], sections["pull_oracle"]."""
    from keeper_devnet.pyth import deploy_mock_pyth
    pyth = pyth or await deploy_mock_pyth(d, valid_time_period=60, fee_wei=1)
    dep = await deploy_perennial(d, world.tokens, pyth, **deploy_kw)
    users = world.take_accounts(len(positions))
    await open_positions(d, dep, users, positions)
    world.extra["perennial"] = dep
    world.extra["perennial_accounts"] = users
    world.contracts["perennial_v2"] = dep.code
    world.entries["perennial_v2"] = perennial_config_entry(dep, claim_min_gas_multiple=claim_min_gas_multiple)
    world.sections["pull_oracle"] = pull_oracle_section(dep)
    return dep


def perennial_config_entry(dep: PerennialDeployment, *, name: str = "perennial_v2",
                           claim_min_gas_multiple: str = "2", from_factory: bool = False) -> str:
    """The [[protocols]] block naming the market, or (from_factory) only its MarketFactory."""
    source = f'market_factory = "{dep.factory}"' if from_factory else f'markets = ["{dep.market}"]'
    return f"""
[[protocols]]
kind = "perennial_v2"
name = "{name}"
{source}
start_block = 0
claim_min_gas_multiple = {claim_min_gas_multiple}
"""


def pull_oracle_section(dep: PerennialDeployment) -> str:
    return f"""
[pull_oracle]
source = "mock_pyth"
mock_pyth = "{dep.pyth}"

[pull_oracle.mock_feeds]
"{dep.feed_id}" = "{dep.weth.feed}"
"""
