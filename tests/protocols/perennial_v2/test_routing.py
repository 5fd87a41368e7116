"""Perennial V2 oracle routing (keeper/protocols/perennial_v2/routing.py) without a node: a deployed
chain Market -> MarketFactory, Oracle router -> OracleFactory, KeeperOracle -> KeeperFactory is
scripted on FakeTransport, resolve() follows it, and each link the contracts rely on is then broken
on its own: resolve() refuses with a RouteError naming that link. Each refusal test starts from the
scripted chain the first test shows resolving, so it fails if its check is removed from resolve()."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from eth_abi import decode, encode

from keeper.abi import Abi
from keeper.protocols.perennial_v2.routing import (
    KEEPER_FACTORY,
    KEEPER_ORACLE,
    MARKET,
    MARKET_FACTORY,
    ORACLE,
    ORACLE_FACTORY,
    Route,
    RouteError,
    resolve,
)
from tests.helpers.fake_rpc import FakeTransport, Revert, fake_chain


def addr(n: int) -> str:
    return "0x" + f"{n:040x}"


MARKET_ADDR, MARKET_FACTORY_ADDR, DSU = addr(0x10), addr(0x11), addr(0x12)
ORACLE_ADDR, ORACLE_FACTORY_ADDR = addr(0x20), addr(0x21)
PROVIDER, KEEPER_FACTORY_ADDR, PYTH = addr(0x30), addr(0x31), addr(0x32)
COMMIT_GO, SETTLE_GO = addr(0x33), addr(0x34)
OTHER = addr(0x99)  # an address the deployed chain does not know
ORACLE_ID = b"\x0e" * 32
FEED_ID = b"\xfe" * 32
EPOCH = 2
TIMEOUT = 60


@dataclass(frozen=True)
class Deployed:
    """What each contract answers; the defaults are a consistent deployed chain. A mapping's answer
    for a key the contract does not know is its zero value, as on chain."""
    market_factory: str = MARKET_FACTORY_ADDR  # Market.factory()
    market_oracle: str = ORACLE_ADDR  # Market.oracle()
    market_instances: frozenset[str] = frozenset({MARKET_ADDR})  # MarketFactory.instances
    oracle_factory: str = ORACLE_FACTORY_ADDR  # MarketFactory.oracleFactory()
    oracle_instances: frozenset[str] = frozenset({ORACLE_ADDR})  # OracleFactory.instances
    oracle_ids: dict[str, bytes] = field(default_factory=lambda: {ORACLE_ADDR: ORACLE_ID})  # OracleFactory.ids
    registered_factories: frozenset[str] = frozenset({KEEPER_FACTORY_ADDR})  # OracleFactory.factories
    oracle_market: str = MARKET_ADDR  # Oracle.market()
    provider: str = PROVIDER  # Oracle.oracles(current).provider
    provider_factory: str = KEEPER_FACTORY_ADDR  # KeeperOracle.factory()
    provider_oracle: str = ORACLE_ADDR  # KeeperOracle.oracle()
    keeper_ids: dict[str, bytes] = field(default_factory=lambda: {PROVIDER: ORACLE_ID})  # KeeperFactory.ids
    keeper_instances: frozenset[str] = frozenset({PROVIDER})  # KeeperFactory.instances
    keeper_oracles: dict[bytes, str] = field(default_factory=lambda: {ORACLE_ID: PROVIDER})  # KeeperFactory.oracles
    keeper_oracle_factory: str = ORACLE_FACTORY_ADDR  # KeeperFactory.oracleFactory()


def _answer(abi: Abi, name: str, value: Any | Callable[[Any], Any]) -> Callable[[bytes], bytes]:
    """An on_call answer: ``value`` (or ``value(argument)``) encoded as ``name``'s outputs."""
    fn = abi.fn(name)

    def answer(calldata: bytes) -> bytes:
        out = value
        if callable(value):
            (arg,) = decode(list(fn.inputs), calldata[4:])
            out = value(arg)
        outs = out if len(fn.outputs) > 1 else (out,)
        return encode(list(fn.outputs), list(outs))
    return answer


def script(d: Deployed, *, market_code: str = "0x6080") -> FakeTransport:
    fake = FakeTransport()
    fake.on("eth_getCode", market_code)

    def on(to: str, abi: Abi, name: str, value: Any) -> None:
        fake.on_call(to, abi.fn(name).signature, _answer(abi, name, value))

    def lower(keys: frozenset[str]) -> Callable[[str], bool]:
        return lambda a: a.lower() in {k.lower() for k in keys}

    on(MARKET_ADDR, MARKET, "factory", d.market_factory)
    on(MARKET_ADDR, MARKET, "oracle", d.market_oracle)
    on(MARKET_ADDR, MARKET, "token", DSU)
    on(MARKET_FACTORY_ADDR, MARKET_FACTORY, "instances", lower(d.market_instances))
    on(MARKET_FACTORY_ADDR, MARKET_FACTORY, "oracleFactory", d.oracle_factory)
    on(ORACLE_FACTORY_ADDR, ORACLE_FACTORY, "instances", lower(d.oracle_instances))
    on(ORACLE_FACTORY_ADDR, ORACLE_FACTORY, "ids", lambda a: {k.lower(): v for k, v in d.oracle_ids.items()}
       .get(a.lower(), b"\0" * 32))
    on(ORACLE_FACTORY_ADDR, ORACLE_FACTORY, "factories", lower(d.registered_factories))
    on(ORACLE_ADDR, ORACLE, "global", (EPOCH, EPOCH))
    on(ORACLE_ADDR, ORACLE, "market", d.oracle_market)
    on(ORACLE_ADDR, ORACLE, "oracles", lambda epoch: (d.provider, 0) if epoch == EPOCH else (addr(0), 0))
    for provider in {PROVIDER, d.provider}:
        on(provider, KEEPER_ORACLE, "factory", d.provider_factory)
        on(provider, KEEPER_ORACLE, "oracle", d.provider_oracle)
        on(provider, KEEPER_ORACLE, "timeout", TIMEOUT)
    for kf in {KEEPER_FACTORY_ADDR, d.provider_factory}:
        on(kf, KEEPER_FACTORY, "ids", lambda a: {k.lower(): v for k, v in d.keeper_ids.items()}
           .get(a.lower(), b"\0" * 32))
        on(kf, KEEPER_FACTORY, "instances", lower(d.keeper_instances))
        on(kf, KEEPER_FACTORY, "oracles", lambda i: d.keeper_oracles.get(i, addr(0)))
        on(kf, KEEPER_FACTORY, "oracleFactory", d.keeper_oracle_factory)
        on(kf, KEEPER_FACTORY, "toUnderlyingId", lambda i: FEED_ID if i == ORACLE_ID else b"\0" * 32)
        on(kf, KEEPER_FACTORY, "commitmentGasOracle", COMMIT_GO)
        on(kf, KEEPER_FACTORY, "settlementGasOracle", SETTLE_GO)
        on(kf, KEEPER_FACTORY, "pyth", PYTH)
    return fake


async def resolve_on(d: Deployed) -> Route:
    chain, _ = fake_chain(script(d))
    return await resolve(chain, MARKET_ADDR)


def same(a: str, b: str) -> bool:
    return a.lower() == b.lower()


async def test_the_deployed_chain_resolves_to_its_route():
    r = await resolve_on(Deployed())
    assert [same(x, y) for x, y in [(r.market, MARKET_ADDR), (r.market_factory, MARKET_FACTORY_ADDR),
                                    (r.dsu, DSU), (r.oracle, ORACLE_ADDR), (r.oracle_factory, ORACLE_FACTORY_ADDR),
                                    (r.provider, PROVIDER), (r.keeper_factory, KEEPER_FACTORY_ADDR), (r.pyth, PYTH),
                                    (r.commitment_gas_oracle, COMMIT_GO),
                                    (r.settlement_gas_oracle, SETTLE_GO)]] == [True] * 10
    assert r.epoch == EPOCH and r.oracle_id == ORACLE_ID and r.feed_id == "0x" + FEED_ID.hex()
    assert r.timeout == TIMEOUT


async def test_a_market_its_factory_did_not_make_is_refused():
    with pytest.raises(RouteError, match="is not an instance of its factory"):
        await resolve_on(Deployed(market_instances=frozenset()))


async def test_an_oracle_of_another_oracle_factory_is_refused():
    # The market's oracle() is not an instance of the OracleFactory its MarketFactory uses
    # (MarketFactory.create: FactoryInvalidOracleError).
    with pytest.raises(RouteError, match=f"oracle {ORACLE_ADDR}.* is not an Oracle of the OracleFactory"):
        await resolve_on(Deployed(oracle_instances=frozenset({OTHER})))


async def test_an_oracle_serving_another_market_is_refused():
    with pytest.raises(RouteError, match=f"serves market {OTHER}.*onlyMarket"):
        await resolve_on(Deployed(oracle_market=OTHER))


async def test_a_provider_registered_to_another_oracle_is_refused():
    with pytest.raises(RouteError, match=f"is registered to oracle {OTHER}.*onlyOracle"):
        await resolve_on(Deployed(provider_oracle=OTHER))


async def test_a_keeper_factory_not_registered_with_the_oracle_factory_is_refused():
    with pytest.raises(RouteError, match=f"keeper factory {KEEPER_FACTORY_ADDR} is not registered with the "
                                         f"OracleFactory"):
        await resolve_on(Deployed(registered_factories=frozenset({OTHER})))


async def test_a_provider_that_is_not_its_factorys_instance_for_its_id_is_refused():
    with pytest.raises(RouteError, match="is not the instance of"):
        await resolve_on(Deployed(keeper_instances=frozenset()))
    # an instance, but the factory's oracle for that id is another one
    with pytest.raises(RouteError, match="is not the instance of"):
        await resolve_on(Deployed(keeper_oracles={ORACLE_ID: OTHER}))


async def test_a_keeper_factory_of_another_oracle_factory_is_refused():
    with pytest.raises(RouteError, match=f"belongs to oracle factory {OTHER}"):
        await resolve_on(Deployed(keeper_oracle_factory=OTHER))


async def test_an_oracle_whose_id_is_not_its_providers_is_refused():
    other_id = b"\x0f" * 32
    d = Deployed(oracle_ids={ORACLE_ADDR: other_id})
    with pytest.raises(RouteError, match=f"has id 0x{other_id.hex()} but its provider 0x{ORACLE_ID.hex()}"):
        await resolve_on(d)
    # the same chain with the ids agreeing resolves: the id is the only broken link
    assert (await resolve_on(replace(d, oracle_ids={ORACLE_ADDR: ORACLE_ID}))).oracle_id == ORACLE_ID


async def test_no_contract_at_the_market_is_refused():
    chain, _ = fake_chain(script(Deployed(), market_code="0x"))
    with pytest.raises(RouteError, match=f"no contract at market {MARKET_ADDR}"):
        await resolve(chain, MARKET_ADDR)


async def test_a_keeper_factory_without_pyth_is_refused():
    fake = script(Deployed())
    fake.on_call(KEEPER_FACTORY_ADDR, KEEPER_FACTORY.fn("pyth").signature, Revert(b""))
    chain, _ = fake_chain(fake)
    with pytest.raises(RouteError, match="is not a PythFactory"):
        await resolve(chain, MARKET_ADDR)
