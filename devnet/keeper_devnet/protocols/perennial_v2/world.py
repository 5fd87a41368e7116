"""Perennial V2 in the local world: the Solidity stand-ins beside this module (Perennial publishes no
deployable package) for one WETH-USD market settled in DSU (a TestERC20 with 18 decimals), split as
deployed: a MarketFactory whose markets must use an Oracle router of the OracleFactory; the router
backed by a KeeperOracle that a PythFactory (KeeperFactory) made over MockPyth (through a forwarder
that answers singleUpdateFeeInWei); keeper fees priced by two GasOracles. Helpers open taker
positions and commit prices as Perennial's users and oracle keepers do."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_utils import keccak, to_checksum_address

from keeper_devnet.deploy import Deployer
from keeper_devnet.pyth import mock_pyth_artifact, price_update_data, update_price_feeds
from keeper_devnet.solc import Artifact, artifact, compile_standard_json
from keeper_devnet.tokens import Token, approve, erc20_artifact, mint

if TYPE_CHECKING:
    from keeper_devnet.world import World

PERENNIAL_CODE = "stand-in"
_DIR = "devnet/keeper_devnet/protocols/perennial_v2"
SOURCES = {  # artifact key -> (source, contract)
    "market": (f"{_DIR}/MarketStandIn.sol", "MarketStandIn"),
    "factory": (f"{_DIR}/MarketFactoryStandIn.sol", "MarketFactoryStandIn"),
    "oracle": (f"{_DIR}/OracleStandIn.sol", "OracleStandIn"),
    "oracle_factory": (f"{_DIR}/OracleFactoryStandIn.sol", "OracleFactoryStandIn"),
    "keeper_oracle": (f"{_DIR}/KeeperOracleStandIn.sol", "KeeperOracleStandIn"),
    "keeper_factory": (f"{_DIR}/PythFactoryStandIn.sol", "PythFactoryStandIn"),
    "gas_oracle": (f"{_DIR}/GasOracleStandIn.sol", "GasOracleStandIn"),
    "pyth_forwarder": (f"{_DIR}/MockPythStaticFee.sol", "MockPythStaticFee"),
}
# The factories' creation events (root IFactory, IMarketFactory with MarketDefinition(token, oracle)).
INSTANCE_REGISTERED = "0x" + keccak(b"InstanceRegistered(address)").hex()
MARKET_CREATED = "0x" + keccak(b"MarketCreated(address,(address,address))").hex()
UNIT = 10**6  # UFixed6 / Fixed6
DSU_TO_18 = 10**12
# Pyth's ETH/USD price feed id, and the id of the Perennial oracle built on it.
ETH_USD_FEED = "0xff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace"
ORACLE_ID = "0x" + keccak(b"perennial-devnet:ETH-USD").hex()
GWEI = 10**9


@dataclass(frozen=True)
class PerennialRisk:
    """RiskParameter figures the keeper relies on (UFixed6 unless said); the rest are zero."""
    margin: int = 100_000  # 10% of notional to open
    maintenance: int = 50_000  # 5% of notional to stay open
    liquidation_fee: int = 10 * UNIT  # 10 x the version's settlement fee
    min_margin: int = 10 * UNIT  # DSU
    min_maintenance: int = 10 * UNIT  # DSU
    stale_after: int = 60  # seconds
    taker_scale: int = 10 * UNIT  # takerFee.scale: the skew that moves the funding rate at full speed
    # PController6 (k, min, max): the annual funding rate moves by skew / k per second within
    # [min, max]; the default is a flat 0 (no funding).
    p_controller: tuple[int, int, int] = (0, 0, 0)

    def as_tuple(self) -> tuple:
        return (self.margin, self.maintenance, (0, 0, 0, self.taker_scale), (0, 0, 0), 0, 0, self.liquidation_fee,
                (0, 0, 0, 0), self.p_controller, self.min_margin, self.min_maintenance, self.stale_after, False)


@dataclass(frozen=True)
class PerennialOracleParams:
    granularity: int = 10  # seconds per version
    valid_from: int = 4  # publish time window relative to the version
    valid_to: int = 10
    timeout: int = 60  # a requested version left uncommitted this long can only be committed invalid
    # GasOracle figures: cost(value) = (value + basefee x COMPUTE_GAS + calldataBaseFee x CALLDATA_GAS)
    # x ETH price. Anvil's base fee decays towards 0, so the calldata part (the L1 base fee an L2
    # reports) carries the fees here: about 0.35 DSU per commit and 0.07 per callback at $2,100.
    calldata_base_fee: int = 5 * GWEI
    commit_gas: tuple[int, int] = (100_000, 33_000)  # (compute, calldata) gas of a commit
    settle_gas: tuple[int, int] = (50_000, 6_600)  # of one settlement callback
    max_settlement_fee: int = 1_000 * UNIT  # OracleFactory parameter: DSU


@dataclass
class PerennialDeployment:
    market: str
    oracle: str  # the market's Oracle router (OracleFactory instance)
    keeper_oracle: str  # its current provider (PythFactory instance)
    keeper_factory: str  # the PythFactory
    oracle_factory: str  # the OracleFactory
    pyth: str  # MockPyth
    pyth_forwarder: str  # what PythFactory calls as Pyth
    commitment_gas_oracle: str
    settlement_gas_oracle: str
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
    out = await compile_standard_json(sorted({s for s, _ in SOURCES.values()}), evm_version="cancun", via_ir=True)
    return {key: artifact(out, src, name) for key, (src, name) in SOURCES.items()}


async def abi_of(key: str) -> list:
    return (await perennial_artifacts())[key].abi


async def market_abi() -> list:
    return await abi_of("market")


async def oracle_abi() -> list:
    """The KeeperOracle's (next, global, status, localCallbacks, ...)."""
    return await abi_of("keeper_oracle")


async def factory_abi() -> list:
    return await abi_of("factory")


async def deploy_dsu(d: Deployer) -> Token:
    """DSU: an 18-decimal TestERC20 valued at 1 USD (no feed)."""
    addr = await d.deploy(await erc20_artifact(), "Test DSU", "DSU", 18)
    return Token("DSU", addr, 18, "", 1_00000000)


def _created(rc: dict, emitter: str, topic: str) -> str:
    for lg in rc["logs"]:
        topics = ["0x" + t.hex().removeprefix("0x") for t in lg["topics"]]
        if lg["address"] == emitter and topics and topics[0] == topic:
            return to_checksum_address("0x" + topics[1][-40:])
    raise RuntimeError(f"{emitter} emitted no {topic}")


async def _ensure_feed(d: Deployer, pyth: str, feed_id: str, price_8: int) -> None:
    """MockPyth knows a feed once an update was stored (PythFactory.create requires it)."""
    if not await d.call(pyth, mock_pyth_artifact().abi, "priceFeedExists", bytes.fromhex(feed_id[2:])):
        now = (await d.w3.eth.get_block("latest"))["timestamp"]
        await update_price_feeds(d, pyth, [await price_update_data(d, pyth, feed_id, price_8, 0, -8, now)])


async def deploy_perennial(d: Deployer, tokens: dict[str, Token], pyth: str, *,
                           risk: PerennialRisk = PerennialRisk(),
                           oracle_params: PerennialOracleParams = PerennialOracleParams(),
                           maker_pool: int = 10_000 * UNIT, dsu: Token | None = None,
                           feed_id: str = ETH_USD_FEED, oracle_id: str = ORACLE_ID,
                           base: PerennialDeployment | None = None) -> PerennialDeployment:
    """A WETH-USD market priced from the Pyth feed ``feed_id`` on MockPyth ``pyth`` (updates are
    built from ``tokens['WETH']``'s Chainlink feed), settled in DSU, as Perennial's owner sets one up:
    GasOracles, OracleFactory, PythFactory (registered with the OracleFactory), its KeeperOracle for
    ``oracle_id``, the Oracle router over it, MarketFactory.create((DSU, router)), the router and the
    KeeperOracle registered, updateRiskParameter; a first price committed. ``base``: reuse another
    deployment's factories (a second market; ``oracle_id`` must then differ)."""
    arts = await perennial_artifacts()
    weth = tokens["WETH"]
    dsu = dsu or (base.dsu if base else await deploy_dsu(d))
    p = oracle_params
    if base is None:
        gas = []
        for compute, calldata in (p.commit_gas, p.settle_gas):
            gas.append(await d.deploy(arts["gas_oracle"], weth.feed, 8, compute, 10**18, 0, calldata, 10**18, 0,
                                      p.calldata_base_fee))
        forwarder = await d.deploy(arts["pyth_forwarder"], pyth)
        oracle_factory = await d.deploy(arts["oracle_factory"], (3600, p.max_settlement_fee, 0))
        keeper_factory = await d.deploy(arts["keeper_factory"], forwarder, gas[0], gas[1], oracle_factory, p.timeout)
        await d.transact(keeper_factory, arts["keeper_factory"].abi, "updateParameter", p.granularity, 0,
                         p.valid_from, p.valid_to)
        await d.transact(oracle_factory, arts["oracle_factory"].abi, "register", keeper_factory)
        factory = await d.deploy(arts["factory"], oracle_factory, maker_pool)
    else:
        gas = [base.commitment_gas_oracle, base.settlement_gas_oracle]
        forwarder, oracle_factory, keeper_factory, factory = (base.pyth_forwarder, base.oracle_factory,
                                                              base.keeper_factory, base.factory)
        p = base.oracle_params
        await d.transact(factory, arts["factory"].abi, "updateMakerPool", maker_pool)
    await _ensure_feed(d, pyth, feed_id, weth.price)
    oid = bytes.fromhex(oracle_id[2:])
    rc = await d.transact(keeper_factory, arts["keeper_factory"].abi, "create", oid, bytes.fromhex(feed_id[2:]),
                          ("0x" + "00" * 20, 0))
    keeper_oracle = _created(rc, keeper_factory, INSTANCE_REGISTERED)
    rc = await d.transact(oracle_factory, arts["oracle_factory"].abi, "create", oid, keeper_factory, "ETH-USD")
    oracle = _created(rc, oracle_factory, INSTANCE_REGISTERED)
    await d.transact(keeper_oracle, arts["keeper_oracle"].abi, "register", oracle)
    market = await create_market(d, factory, dsu.address, oracle)
    await d.transact(oracle, arts["oracle"].abi, "register", market)
    await d.transact(market, arts["market"].abi, "updateRiskParameter", risk.as_tuple())
    dep = PerennialDeployment(market, oracle, keeper_oracle, keeper_factory, oracle_factory, pyth, forwarder,
                              gas[0], gas[1], dsu, weth, feed_id, oracle_id, risk, p, factory)
    await commit_price(d, dep)
    return dep


async def create_market(d: Deployer, factory: str, token: str, oracle: str) -> str:
    """MarketFactory.create((token, oracle)); the new market's address, read from MarketCreated."""
    rc = await d.transact(factory, await factory_abi(), "create", (token, oracle))
    return _created(rc, factory, MARKET_CREATED)


async def market_call(d: Deployer, dep: PerennialDeployment, fn: str, *args) -> Any:
    return await d.call(dep.market, await market_abi(), fn, *args)


async def oracle_call(d: Deployer, dep: PerennialDeployment, fn: str, *args) -> Any:
    """A view of the market's KeeperOracle (next, global, status, at, localCallbacks, ...)."""
    return await d.call(dep.keeper_oracle, await oracle_abi(), fn, *args)


async def router_call(d: Deployer, dep: PerennialDeployment, fn: str, *args) -> Any:
    return await d.call(dep.oracle, await abi_of("oracle"), fn, *args)


async def market_transact(d: Deployer, dep: PerennialDeployment, fn: str, *args, sender: str | None = None) -> dict:
    return await d.transact(dep.market, await market_abi(), fn, *args, sender=sender)


async def now(d: Deployer) -> int:
    return (await d.w3.eth.get_block("latest"))["timestamp"]


async def advance_to(d: Deployer, timestamp: int) -> None:
    if await now(d) < timestamp:
        await d.rpc("evm_setNextBlockTimestamp", [timestamp])
        await d.rpc("evm_mine", [])


async def commit_price(d: Deployer, dep: PerennialDeployment, price_8: int | None = None, *,
                       sender: str | None = None) -> tuple[int, bool]:
    """What Perennial's oracle keepers do: commit the next requested version (moving time to its
    publish window if needed) or, if none is outstanding, a fresh unrequested version, with a MockPyth
    update at ``price_8`` (default: the WETH feed's price) published at the block's timestamp, through
    PythFactory.commit paying Pyth's fee. Returns (version, requested)."""
    p = dep.oracle_params
    requested = await oracle_call(d, dep, "next")
    if requested:
        await advance_to(d, requested + p.valid_from)
        version = requested
    else:  # a version newer than the latest (block timestamps may repeat on Anvil)
        latest = (await oracle_call(d, dep, "global"))[0]
        await advance_to(d, latest + p.valid_from + 1)
        version = await now(d) - p.valid_from
    publish = await now(d)
    price = dep.weth.price if price_8 is None else price_8
    data = await price_update_data(d, dep.pyth, dep.feed_id, price, 0, -8, publish)
    fee = await d.call(dep.pyth, mock_pyth_artifact().abi, "getUpdateFee", [data])
    await d.transact(dep.keeper_factory, await abi_of("keeper_factory"), "commit",
                     [bytes.fromhex(dep.oracle_id[2:])], version, data, value=fee, sender=sender)
    return version, bool(requested)


async def commit_invalid(d: Deployer, dep: PerennialDeployment, *, sender: str | None = None) -> int:
    """Commit the next requested version with no price (only accepted once it timed out)."""
    version = await oracle_call(d, dep, "next")
    await d.transact(dep.keeper_factory, await abi_of("keeper_factory"), "commit",
                     [bytes.fromhex(dep.oracle_id[2:])], version, b"", sender=sender)
    return version


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
# collateral - 900 x size - fees >= max(2,100 x 0.05 x size, 10) (fees: well under 1 DSU).
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
    """Deploy MockPyth (unless given) and Perennial's stand-ins on the world's WETH feed, open
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
