"""Perennial V2 oracle routing as deployed: a Market's oracle() is an Oracle router (an OracleFactory
instance, as MarketFactory.create requires); the router's current provider,
Oracle.oracles(Oracle.global().current).provider, is a KeeperOracle made by a KeeperFactory (here a
PythFactory), whose request() only the router may call (onlyOracle) and whose factory takes commits.
resolve() follows that chain and checks each link the way the contracts check it."""
from __future__ import annotations

from dataclasses import dataclass

from keeper.abi import Abi, load
from keeper.chain.client import Chain
from keeper.chain.multicall import Call

MARKET = load("perennial_v2/perennial_market")
MARKET_FACTORY = load("perennial_v2/perennial_market_factory")
ORACLE = load("perennial_v2/perennial_oracle")
ORACLE_FACTORY = load("perennial_v2/perennial_oracle_factory")
KEEPER_ORACLE = load("perennial_v2/perennial_keeper_oracle")
KEEPER_FACTORY = load("perennial_v2/perennial_keeper_factory")


class RouteError(ValueError):
    """The market is not priced through an Oracle router by a Pyth keeper oracle, or a link of the
    chain is not what the contracts require; the message names it."""


@dataclass(frozen=True)
class Route:
    market: str
    market_factory: str
    dsu: str
    oracle: str  # the Oracle router (Market.oracle())
    oracle_factory: str
    epoch: int  # Oracle.global().current
    provider: str  # the KeeperOracle of that epoch
    keeper_factory: str  # the provider's factory (commit, settle, parameter)
    oracle_id: bytes
    feed_id: str  # the Pyth price feed (toUnderlyingId)
    pyth: str
    timeout: int
    commitment_gas_oracle: str
    settlement_gas_oracle: str


async def _read(chain: Chain, calls: list[tuple[str, Abi, str, tuple]], what: str) -> list:
    try:
        return await chain.multicall_strict([Call(to, abi.fn(name).encode(*args), abi.fn(name).decode)
                                             for to, abi, name, args in calls])
    except Exception as e:
        raise RouteError(f"{what}: {e}") from None


async def resolve(chain: Chain, market: str) -> Route:
    """Market -> MarketFactory, Oracle router -> OracleFactory, current KeeperOracle -> KeeperFactory,
    with the links each contract relies on:
    - MarketFactory.instances(market) and MarketFactory.oracleFactory().instances(oracle)
      (MarketFactory.create: FactoryInvalidOracleError otherwise);
    - Oracle.market() == market (Oracle.request is onlyMarket);
    - OracleFactory.factories(keeper factory) (OracleFactory.create / update take registered
      factories only), KeeperFactory.instances(provider), KeeperFactory.oracles(ids(provider)) ==
      provider, OracleFactory.ids(oracle) == that id, KeeperFactory.oracleFactory() == OracleFactory;
    - KeeperOracle.oracle() == Oracle (KeeperOracle.request is onlyOracle)."""
    if not await chain.get_code(market):
        raise RouteError(f"no contract at market {market}")
    m = MARKET
    market_factory, oracle, dsu = await _read(
        chain, [(market, m, "factory", ()), (market, m, "oracle", ()), (market, m, "token", ())],
        f"{market} does not answer as a Perennial Market")
    made, oracle_factory = await _read(
        chain, [(market_factory, MARKET_FACTORY, "instances", (market,)),
                (market_factory, MARKET_FACTORY, "oracleFactory", ())],
        f"market {market}'s factory {market_factory} does not answer as a MarketFactory")
    if not made:
        raise RouteError(f"market {market} is not an instance of its factory {market_factory}")
    is_oracle, oracle_id = await _read(
        chain, [(oracle_factory, ORACLE_FACTORY, "instances", (oracle,)),
                (oracle_factory, ORACLE_FACTORY, "ids", (oracle,))],
        f"oracle factory {oracle_factory} does not answer as a Perennial OracleFactory")
    if not is_oracle:
        raise RouteError(f"market {market}'s oracle {oracle} is not an Oracle of the OracleFactory {oracle_factory}")
    (epoch, _latest_epoch), registered = await _read(
        chain, [(oracle, ORACLE, "global", ()), (oracle, ORACLE, "market", ())],
        f"oracle {oracle} does not answer as a Perennial Oracle router")
    if registered != market:
        raise RouteError(f"oracle {oracle} serves market {registered}, not {market} (Oracle.request is onlyMarket)")
    ((provider, _ts),) = await _read(chain, [(oracle, ORACLE, "oracles", (epoch,))],
                                     f"oracle {oracle} has no provider for epoch {epoch}")
    keeper_factory, provider_oracle, timeout = await _read(
        chain, [(provider, KEEPER_ORACLE, "factory", ()), (provider, KEEPER_ORACLE, "oracle", ()),
                (provider, KEEPER_ORACLE, "timeout", ())],
        f"oracle {oracle}'s provider {provider} does not answer as a Perennial KeeperOracle")
    if provider_oracle != oracle:
        raise RouteError(f"keeper oracle {provider} is registered to oracle {provider_oracle}, not {oracle} "
                         "(KeeperOracle.request is onlyOracle)")
    k = KEEPER_FACTORY
    kid, = await _read(chain, [(keeper_factory, k, "ids", (provider,))],
                       f"keeper oracle {provider}'s factory {keeper_factory} does not answer as a KeeperFactory")
    registered_f, instance, by_id, of, feed, commit_go, settle_go = await _read(
        chain, [(oracle_factory, ORACLE_FACTORY, "factories", (keeper_factory,)),
                (keeper_factory, k, "instances", (provider,)), (keeper_factory, k, "oracles", (kid,)),
                (keeper_factory, k, "oracleFactory", ()), (keeper_factory, k, "toUnderlyingId", (kid,)),
                (keeper_factory, k, "commitmentGasOracle", ()), (keeper_factory, k, "settlementGasOracle", ())],
        f"keeper factory {keeper_factory} does not answer as a Perennial KeeperFactory")
    if not registered_f:
        raise RouteError(f"keeper factory {keeper_factory} is not registered with the OracleFactory {oracle_factory}")
    if not instance or by_id != provider:
        raise RouteError(f"keeper oracle {provider} is not the instance of {keeper_factory} for its id")
    if of != oracle_factory:
        raise RouteError(f"keeper factory {keeper_factory} belongs to oracle factory {of}, not {oracle_factory}")
    if kid != oracle_id:
        raise RouteError(f"oracle {oracle} has id 0x{oracle_id.hex()} but its provider 0x{kid.hex()}")
    pyth, = await _read(chain, [(keeper_factory, k, "pyth", ())],
                        f"keeper factory {keeper_factory} is not a PythFactory (no pyth())")
    return Route(market, market_factory, dsu, oracle, oracle_factory, epoch, provider, keeper_factory, kid,
                 "0x" + feed.hex(), pyth, timeout, commit_go, settle_go)
